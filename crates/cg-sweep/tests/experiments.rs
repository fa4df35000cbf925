//! Every file in `experiments/` loads as a sweep (data check off, `${CG_DATA}` unset) and expands to the
//! jobs its header promises.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cg_sweep::{LoadOptions, Method, load_sweep, plan_table_with_axes};

fn experiments_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments")
}

fn options() -> LoadOptions {
    LoadOptions {
        no_data_check: true,
        env: Some(BTreeMap::new()),
    }
}

#[test]
fn every_experiment_loads() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(experiments_dir())
        .expect("experiments/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    for path in files {
        let sweep = load_sweep(&path, &options()).unwrap_or_else(|d| panic!("{d}"));
        let jobs = sweep.expand();
        assert_eq!(jobs.len(), sweep.count(), "{}", path.display());
        assert!(!jobs.is_empty(), "{}", path.display());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with('#'),
            "{} needs a comment header",
            path.display()
        );
        assert_eq!(sweep.source_text(), text);
    }
}

/// The expansion of each experiment, axis values only (ids depend on the data present on the machine).
fn check(file: &str, expected_jobs: usize) -> String {
    let sweep =
        load_sweep(&experiments_dir().join(file), &options()).unwrap_or_else(|d| panic!("{d}"));
    let jobs = sweep.expand();
    assert_eq!(jobs.len(), expected_jobs, "{file}");
    let table = plan_table_with_axes(&jobs, &sweep.axes());
    // Drop the id column.
    table
        .lines()
        .map(|l| l.split_once("  ").map_or("", |(_, rest)| rest.trim_start()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn quickstart_is_small() {
    let sweep = load_sweep(&experiments_dir().join("quickstart.yaml"), &options()).unwrap();
    let base = sweep.base();
    // ResNet-14: 4 gated blocks; the whole 1,600-digit training split, 4 epochs, no consistency pass.
    assert_eq!((base.model.depth, base.model.width), (14, 8));
    assert!(base.train.epochs <= 4);
    assert_eq!(base.train.limit_train, None);
    assert_eq!(base.loss.cons_weight, 0.0);
    let data = Path::new(base.dataset.path.as_deref().unwrap());
    assert!(
        data.is_absolute() && data.ends_with("data/sample"),
        "{}",
        data.display()
    );
    assert!(
        !data
            .components()
            .any(|c| c == std::path::Component::ParentDir)
    );
    insta::assert_snapshot!(check("quickstart.yaml", 4), @r"
    gate.threshold  loss.flops_weight
    1.0             0.5
    1.0             1.0
    1.3             0.5
    1.3             1.0
    ");
}

#[test]
fn cifar10_study_has_baseline_and_presets() {
    let sweep = load_sweep(&experiments_dir().join("cifar10-resnet20.yaml"), &options()).unwrap();
    assert_eq!(sweep.base().train.epochs, 200);
    assert_eq!(sweep.base().model.depth, 20);
    assert!(
        sweep
            .base()
            .dataset
            .path
            .as_deref()
            .unwrap()
            .ends_with("data/cifar-10-batches-bin")
    );
    let jobs = sweep.expand();
    assert_eq!(
        jobs.iter()
            .filter(|j| j.config.model.kind == cg_core::ModelKind::Resnet)
            .count(),
        3
    );
    insta::assert_snapshot!(check("cifar10-resnet20.yaml", 12), @r"
    preset        train.seed
    baseline      0
    baseline      1
    baseline      2
    aggressive    0
    aggressive    1
    aggressive    2
    balanced      0
    balanced      1
    balanced      2
    conservative  0
    conservative  1
    conservative  2
    ");
}

#[test]
fn mnist_and_calibration() {
    check("mnist.yaml", 12);
    let sweep = load_sweep(
        &experiments_dir().join("cifar10-calibrate.yaml"),
        &options(),
    )
    .unwrap();
    assert_eq!(sweep.method(), Method::Random);
    let jobs = sweep.expand();
    assert_eq!(jobs.len(), 32);
    for job in &jobs {
        let g = &job.config.gate;
        assert!((0.6..1.4).contains(&g.threshold), "{}", g.threshold);
        assert!((0.05..=2.0).contains(&job.config.loss.flops_weight));
        assert!(job.config.problems().is_empty());
    }
}

#[test]
fn data_variable_is_used_when_set() {
    let mut env = BTreeMap::new();
    env.insert("CG_DATA".to_string(), "/datasets".to_string());
    let options = LoadOptions {
        no_data_check: true,
        env: Some(env),
    };
    let sweep = load_sweep(&experiments_dir().join("mnist.yaml"), &options).unwrap();
    assert_eq!(
        sweep.base().dataset.path.as_deref(),
        Some("/datasets/mnist")
    );
}
