//! `method: mo-asha` sweeps: their search settings and the jobs of their points and rungs.

use std::path::Path;

use cg_core::{AxisSpace, Coord, Fidelity, Sampler};
use cg_sweep::{LoadOptions, Method, load_sweep_str};

const SWEEP: &str = "
name: mo
method: mo-asha
n_samples: 27
fidelity: {min_epochs: 1, max_epochs: 9, eta: 3}
sampler: nsga2
seed: 7
dataset: {kind: synthetic}
train: {seed: 3}
parameters:
  gate.threshold: {values: [0.5, 0.75, 1.0]}
  loss.flops_weight: {min: 0.01, max: 1.0, distribution: log_uniform_values}
  model.width: {min: 4, max: 8}
  gate.tau_end: {value: 0.4}
objectives:
  - {metric: test_acc_final, direction: maximize}
  - {metric: macs_executed_nominal, direction: minimize}
reference_point: [0.1, 1.0e9]
";

fn load(text: &str) -> Result<cg_sweep::Sweep, String> {
    load_sweep_str(text, "mo.yaml", Path::new("."), &LoadOptions::default())
        .map_err(|d| d.to_string())
}

#[test]
fn settings_and_rung_jobs() {
    let sweep = load(SWEEP).unwrap();
    assert_eq!(sweep.method(), Method::MoAsha);
    assert_eq!(
        sweep.base().train.epochs,
        9,
        "train.epochs is fidelity.max_epochs"
    );
    let s = sweep.search_settings().unwrap();
    assert_eq!(
        s.fidelity,
        Fidelity {
            min_epochs: 1,
            max_epochs: 9,
            eta: 3
        }
    );
    assert_eq!((s.n_samples, s.sampler, s.seed), (27, Sampler::Nsga2, 7));
    assert_eq!(
        s.space,
        [
            AxisSpace::Choice { n: 3 },
            AxisSpace::Float {
                min: 0.01,
                max: 1.0,
                log: true
            },
            AxisSpace::Int { min: 4, max: 8 },
        ]
    );
    let point = [Coord::Choice(1), Coord::Float(0.1), Coord::Int(6)];
    let rung = sweep.job_at(&point, Some(3)).unwrap();
    let full = sweep.job_at(&point, None).unwrap();
    assert_eq!(rung.config.train.stop_after, Some(3));
    assert_eq!(rung.config.train.epochs, 9);
    assert_eq!(rung.config.gate.threshold, 0.75);
    assert_eq!(rung.config.gate.tau_end, 0.4);
    assert_eq!(rung.config.loss.flops_weight, 0.1);
    assert_eq!(rung.config.model.width, 6);
    assert_eq!(rung.params["train.stop_after"], 3);
    assert!(!full.params.contains_key("train.stop_after"));
    assert_ne!(rung.id, full.id, "the stop changes what the job returns");
    assert_eq!(rung.config.without_stop(), full.config);
    // The same point always gives the same job; a point outside the space gives none.
    assert_eq!(sweep.job_at(&point, Some(3)).unwrap().id, rung.id);
    assert!(
        sweep
            .job_at(&[Coord::Choice(3), Coord::Float(0.1), Coord::Int(6)], None)
            .is_none()
    );
    assert!(
        sweep
            .job_at(&[Coord::Choice(0), Coord::Float(2.0), Coord::Int(6)], None)
            .is_none()
    );
    assert!(sweep.job_at(&point[..2], None).is_none());
    // Grid and random sweeps have no search.
    let grid = load("dataset: {kind: synthetic}\nname: g\nparameters:\n  gate.threshold: {values: [0.5, 1.0]}\n").unwrap();
    assert!(grid.search_settings().is_none());
}

#[test]
fn mo_asha_needs_its_keys() {
    let err = load("name: m\nmethod: mo-asha\ndataset: {kind: synthetic}\n").unwrap_err();
    for key in ["n_samples", "fidelity", "reference_point"] {
        assert!(err.contains(&format!("{key}: missing")), "{key}: {err}");
    }
    let err = load("name: m\nmethod: grid\nsampler: random\nfidelity: {min_epochs: 1, max_epochs: 2, eta: 2}\ndataset: {kind: synthetic}\n").unwrap_err();
    assert!(
        err.contains("sampler: only used by `method: mo-asha`"),
        "{err}"
    );
    assert!(
        err.contains("fidelity: only used by `method: mo-asha`"),
        "{err}"
    );
    let err = load("name: m\nmethod: asha\ndataset: {kind: synthetic}\n").unwrap_err();
    assert!(err.contains("did you mean `mo-asha`?"), "{err}");
}

#[test]
fn a_baseline_is_one_job_per_seed_beside_the_axes_and_the_search() {
    let grid = load(
        "name: g\ndataset: {kind: synthetic}\nbaseline: {model.kind: resnet}\nseeds: [0, 1]\n\
         parameters:\n  gate.threshold: {values: [0.5, 1.0]}\n",
    )
    .unwrap();
    assert_eq!(grid.count(), 6, "(2 points + the baseline) × 2 seeds");
    let jobs = grid.expand();
    assert_eq!(jobs.len(), 6);
    let baseline: Vec<_> = jobs
        .iter()
        .filter(|j| j.params.get("baseline") == Some(&serde_json::Value::Bool(true)))
        .collect();
    assert_eq!(baseline.len(), 2);
    for (job, seed) in baseline.iter().zip([0u64, 1]) {
        assert_eq!(job.config.model.kind, cg_core::ModelKind::Resnet);
        assert_eq!(job.config.train.seed, seed);
        assert_eq!(job.params["train.seed"], seed);
    }
    assert_ne!(baseline[0].id, baseline[1].id);
    assert_eq!(grid.baseline_jobs().len(), 2);

    let search = load(&format!(
        "{SWEEP}baseline: {{model.kind: resnet, model.width: 4}}\n"
    ))
    .unwrap();
    let b = search.baseline_jobs();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].config.train.epochs, 9, "the whole schedule");
    assert_eq!(b[0].config.train.stop_after, None);
    assert_eq!(b[0].config.train.seed, 3);
    assert_eq!(b[0].config.model.width, 4);
    assert_eq!(search.count(), 28);

    let err = load("name: g\ndataset: {kind: synthetic}\nbaseline:\n").unwrap_err();
    assert!(
        err.contains("baseline") && err.contains("empty baseline"),
        "{err}"
    );
    let err =
        load("name: g\ndataset: {kind: synthetic}\nbaseline: {model.kindd: resnet}\n").unwrap_err();
    assert!(
        err.contains(":3:") && err.contains("baseline.model.kindd"),
        "{err}"
    );
}

/// `seeds` with `method: mo-asha` loads (it used to be refused): each configuration's rung is one
/// job per seed, the seed in its params; the seeds' jobs differ only in `train.seed`. Objectives
/// may name validation accuracy.
#[test]
fn mo_asha_with_seeds_trains_each_configuration_once_per_seed() {
    let text = SWEEP
        .replace("train: {seed: 3}\n", "seeds: [4, 2]\n")
        .replace("test_acc_final", "val_acc_final");
    let sweep = load(&text).unwrap();
    assert_eq!(sweep.seeds(), [4, 2]);
    assert_eq!(sweep.info().objectives[0].metric, "val_acc_final");
    assert_eq!(sweep.count(), 27 * 2);
    let point = [Coord::Choice(1), Coord::Float(0.1), Coord::Int(6)];
    let jobs = sweep.search_jobs(&point, Some(3)).unwrap();
    assert_eq!(jobs.len(), 2);
    let alone = sweep.job_at(&point, Some(3)).unwrap();
    for (job, seed) in jobs.iter().zip([4u64, 2]) {
        assert_eq!(job.config.train.seed, seed);
        assert_eq!(job.params["train.seed"], seed);
        assert_eq!(job.params["train.stop_after"], 3);
        let mut same = job.config.clone();
        same.train.seed = alone.config.train.seed;
        assert_eq!(same, alone.config, "only the seed differs");
    }
    assert_ne!(jobs[0].id, jobs[1].id);
    // The seeds' jobs are those a grid over the same point would train (the same ids).
    let again = sweep.search_jobs(&point, Some(3)).unwrap();
    assert_eq!(again, jobs);
    // Without `seeds`, the one job of `job_at`.
    let plain = load(SWEEP).unwrap();
    assert_eq!(
        plain.search_jobs(&point, None).unwrap(),
        [plain.job_at(&point, None).unwrap()]
    );
    assert!(sweep.search_jobs(&point[..2], None).is_none());
}
