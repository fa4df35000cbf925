//! A search against its full grid, end to end on tiny synthetic jobs: the grid and the search
//! (with a `baseline`) run into two databases; the search's full-budget jobs are the grid's (same
//! ids, same results); `cg bench-replay --record` writes the grid's curves and replays the search
//! over them; `cg report --against --preface` states the shares in the search's report.

#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use cg_core::ModelKind;
use cg_store::Store;
use common::text;

const CG: &str = env!("CARGO_BIN_EXE_cg");

const SEARCH: &str = "name: moa
method: mo-asha
n_samples: 4
fidelity: {min_epochs: 1, max_epochs: 4, eta: 2}
sampler: nsga2
seed: 5
reference_point: [0.0, 0.0]
dataset: {kind: synthetic, synthetic: {n_train: 256, n_test: 64, side: 16, channels: 3}}
model: {depth: 8, width: 4}
train: {epochs: 4, batch_size: 16}
baseline: {model.kind: resnet}
parameters:
  gate.threshold: {values: [0.5, 1.5]}
  loss.flops_weight: {values: [0.1, 2.0]}
objectives:
  - {metric: test_acc_final, direction: maximize}
  - {metric: savings_nominal, direction: maximize}
";

fn grid_text() -> String {
    SEARCH
        .replace("name: moa", "name: grid")
        .replace("method: mo-asha\n", "method: grid\n")
        .replace("n_samples: 4\n", "")
        .replace("fidelity: {min_epochs: 1, max_epochs: 4, eta: 2}\n", "")
        .replace("sampler: nsga2\n", "")
        .replace("seed: 5\n", "")
}

fn cg(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(CG)
        .args(args)
        .current_dir(dir)
        .env_remove("CG_DB")
        .output()
        .unwrap()
}

fn records(db: PathBuf, sweep: &str) -> Vec<cg_core::JobRecord> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::open_existing(&db).await.unwrap();
        let out = store.job_records(sweep).await.unwrap();
        store.close().await;
        out
    })
}

#[test]
fn a_search_is_replayed_over_its_grid_and_reported_against_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("moa.yaml"), SEARCH).unwrap();
    std::fs::write(d.join("grid.yaml"), grid_text()).unwrap();
    for (file, db) in [("grid.yaml", "grid.db"), ("moa.yaml", "moa.db")] {
        let out = cg(
            d,
            &[
                "run",
                file,
                "--db",
                db,
                "--workers",
                "1",
                "--threads-per-job",
                "1",
                "--runs-dir",
                &format!("runs-{db}"),
            ],
        );
        assert!(out.status.success(), "{file}: {}", text(&out));
    }

    // The grid: 4 configurations + the baseline, all 4 epochs.
    let grid = records(d.join("grid.db"), "grid");
    assert_eq!(grid.len(), 5);
    let baseline: Vec<_> = grid
        .iter()
        .filter(|r| r.job.config.model.kind == ModelKind::Resnet)
        .collect();
    assert_eq!(baseline.len(), 1);
    // The search trained its baseline once, on the whole schedule, and its full-budget jobs are
    // the grid's: the same ids and the same results.
    let search = records(d.join("moa.db"), "moa");
    let search_baseline: Vec<_> = search
        .iter()
        .filter(|r| r.job.config.model.kind == ModelKind::Resnet)
        .collect();
    assert_eq!(search_baseline.len(), 1);
    assert_eq!(search_baseline[0].job.id, baseline[0].job.id);
    let full: Vec<_> = search
        .iter()
        .filter(|r| {
            r.job.config.train.stop_after.is_none() && r.job.config.model.kind != ModelKind::Resnet
        })
        .collect();
    assert!(!full.is_empty());
    for s in &full {
        let g = grid
            .iter()
            .find(|g| g.job.id == s.job.id)
            .expect("in the grid");
        let (a, b) = (s.result.as_ref().unwrap(), g.result.as_ref().unwrap());
        assert_eq!(a.test_acc_final, b.test_acc_final, "{:?}", s.job.params);
        assert_eq!(a.savings_nominal, b.savings_nominal);
    }

    // Record the curves and replay.
    let out = cg(
        d,
        &[
            "bench-replay",
            "--search",
            "moa.yaml",
            "--curves",
            "curves/grid.json",
            "--record",
            "grid",
            "--db",
            "grid.db",
            "--seeds",
            "3",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("over 4 recorded curves of `grid`"),
        "{printed}"
    );
    for sampler in ["random", "nsga2"] {
        assert!(
            printed
                .lines()
                .any(|l| l.starts_with(sampler) && l.contains("/3")),
            "{printed}"
        );
    }
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("curves/grid.json")).unwrap())
            .unwrap();
    let configs = fixture["configs"].as_array().unwrap();
    assert_eq!(configs.len(), 4);
    for c in configs {
        assert_eq!(c["values"].as_array().unwrap().len(), 4);
        assert_eq!(c["epoch_secs"].as_array().unwrap().len(), 4);
    }
    // The replay of the search's own seed and sampler spends what the real search spent.
    let out = cg(
        d,
        &[
            "bench-replay",
            "--search",
            "moa.yaml",
            "--curves",
            "curves/grid.json",
            "--seeds",
            "6",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 12);
    let replayed = lines
        .iter()
        .find(|l| l["sampler"] == "nsga2" && l["seed"] == 5)
        .unwrap();
    // The search's epochs: 4 × 1, 2 × 1 more, 1 × 2 more, out of the grid's 4 × 4.
    assert_eq!(replayed["epochs_share"].as_f64().unwrap(), 8.0 / 16.0);

    // The report against the grid, with a preface.
    std::fs::write(
        d.join("preface.md"),
        "First paragraph\nof the reading.\n\nSecond **one**.\n",
    )
    .unwrap();
    let out = cg(
        d,
        &[
            "report",
            "moa",
            "--db",
            "moa.db",
            "--against",
            "grid",
            "--against-db",
            "grid.db",
            "--preface",
            "preface.md",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let md = std::fs::read_to_string(d.join("reports/moa/report.md")).unwrap();
    assert!(md.contains("\nFirst paragraph of the reading.\n"), "{md}");
    assert!(md.contains("\nSecond **one**.\n"), "{md}");
    assert!(
        md.contains("Against the full grid `grid` over the same configurations")
            && md.contains("epochs (8 of 16)"),
        "{md}"
    );
    let html = std::fs::read_to_string(d.join("reports/moa/report.html")).unwrap();
    assert!(html.contains("Second <strong>one</strong>."), "{html}");
    // A grid report cannot be compared with a grid; a grid that holds none of the search's
    // configurations is refused.
    let out = cg(
        d,
        &["report", "grid", "--db", "grid.db", "--against", "grid"],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("is no search"), "{}", text(&out));
    let out = cg(
        d,
        &[
            "report",
            "moa",
            "--db",
            "moa.db",
            "--against",
            "grid",
            "--against-db",
            "moa.db",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no sweep named `grid`"),
        "{}",
        text(&out)
    );
}

/// The committed study: the grid file is the search file with `method: grid` (every one of the
/// search's configurations is a grid job with the same id, and the baselines agree), and the
/// committed curves replay through the search's decisions.
#[test]
fn the_fashion_mnist_grid_holds_the_search_configurations_and_its_curves_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let load = |f: &str| {
        cg_sweep::load_sweep(
            &root.join("experiments").join(f),
            &cg_sweep::LoadOptions::no_data_check(),
        )
        .unwrap()
    };
    let (search, grid) = (load("fashion-mnist.yaml"), load("fashion-mnist-grid.yaml"));
    let grid_jobs = grid.expand();
    assert_eq!(grid_jobs.len(), 28, "27 configurations and the baseline");
    let settings = search.search_settings().unwrap();
    assert_eq!(settings.n_samples, 27);
    let mut found = 0;
    for a in 0..3 {
        for b in 0..3 {
            for c in 0..3 {
                let point = [
                    cg_core::Coord::Choice(a),
                    cg_core::Coord::Choice(b),
                    cg_core::Coord::Choice(c),
                ];
                let job = search.job_at(&point, None).unwrap();
                assert!(grid_jobs.iter().any(|g| g.id == job.id), "{:?}", job.params);
                found += 1;
            }
        }
    }
    assert_eq!(found, 27);
    assert_eq!(search.baseline_jobs()[0].id, grid.baseline_jobs()[0].id);

    let out = Command::new(CG)
        .args(["bench-replay", "--seeds", "2", "--json"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    for l in &lines {
        let (hv, epochs) = (
            l["hv_share"].as_f64().unwrap(),
            l["epochs_share"].as_f64().unwrap(),
        );
        assert!(hv > 0.0 && hv <= 1.0 + 1e-9, "{l}");
        assert!(epochs > 0.0 && epochs < 1.0, "{l}");
        assert_eq!(l["finished"], true);
    }
}

// ---------------------------------------------------------------------------------------------
// Issue 18: `--against` takes only the full grid of the search, and no share is ever NaN.
// ---------------------------------------------------------------------------------------------

/// `SEARCH` without its baseline, under `name`, with `reference_point` (cheaper: no baseline job).
fn search_text(name: &str, reference_point: &str) -> String {
    SEARCH
        .replace("name: moa", &format!("name: {name}"))
        .replace("baseline: {model.kind: resnet}\n", "")
        .replace("reference_point: [0.0, 0.0]", reference_point)
}

/// The grid of [`search_text`] over the thresholds given.
fn half_grid_text(name: &str, thresholds: &str) -> String {
    search_text(name, "reference_point: [0.0, 0.0]")
        .replace("method: mo-asha\n", "method: grid\n")
        .replace("n_samples: 4\n", "")
        .replace("fidelity: {min_epochs: 1, max_epochs: 4, eta: 2}\n", "")
        .replace("sampler: nsga2\n", "")
        .replace("seed: 5\n", "")
        .replace("values: [0.5, 1.5]", &format!("values: [{thresholds}]"))
}

fn run_into(d: &Path, file: &str, db: &str) {
    let out = cg(
        d,
        &[
            "run",
            file,
            "--db",
            db,
            "--workers",
            "1",
            "--threads-per-job",
            "1",
            "--runs-dir",
            "runs",
        ],
    );
    assert!(out.status.success(), "{file}: {}", text(&out));
}

/// A grid that lacks some of the search's configurations (each half of the full grid holds the
/// search's top rung or not), the search itself, and a grid with zero hypervolume are refused;
/// the full grid is taken. `bench-replay` refuses a zero grid hypervolume and unusable
/// `--eta`, `--min-epochs`, `--workers` and `--seeds` before any work; nothing prints NaN.
#[test]
fn against_takes_only_the_full_grid_and_no_share_is_nan() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("moa.yaml"),
        search_text("moa", "reference_point: [0.0, 0.0]"),
    )
    .unwrap();
    // No result saves 99% of the MACs (ResNet-8 gates one block of three): zero hypervolume.
    std::fs::write(
        d.join("moz.yaml"),
        search_text("moz", "reference_point: [0.0, 0.99]"),
    )
    .unwrap();
    std::fs::write(d.join("low.yaml"), half_grid_text("low", "0.5")).unwrap();
    std::fs::write(d.join("high.yaml"), half_grid_text("high", "1.5")).unwrap();
    std::fs::write(d.join("full.yaml"), half_grid_text("full", "0.5, 1.5")).unwrap();
    // Each search in its own database (a second search over stored results is issue 18's defect
    // 1, fixed elsewhere).
    run_into(d, "moa.yaml", "moa.db");
    run_into(d, "moz.yaml", "moz.db");
    // The halves train every grid job; the full grid finds them all trained.
    for file in ["low.yaml", "high.yaml", "full.yaml"] {
        run_into(d, file, "grid.db");
    }
    let report = |sweep: &str, grid: &str, db: &str| {
        let own = format!("{sweep}.db");
        cg(
            d,
            &[
                "report",
                sweep,
                "--db",
                &own,
                "--against",
                grid,
                "--against-db",
                db,
                "--out",
                "out",
            ],
        )
    };
    for half in ["low", "high"] {
        let out = report("moa", half, "grid.db");
        assert!(!out.status.success(), "{half}: {}", text(&out));
        assert!(
            text(&out).contains(&format!(
                "the grid `{half}` is not the full grid of `moa`: it has no completed \
                 full-budget result for 2 of the search's 4 configurations"
            )),
            "{half}: {}",
            text(&out)
        );
    }
    let out = report("moa", "moa", "moa.db");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("`moa` is a `method: mo-asha` search, not a grid"),
        "{}",
        text(&out)
    );
    let out = report("moz", "full", "grid.db");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out)
            .contains("the grid `full` has no hypervolume against the search's reference point"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("NaN"), "{}", text(&out));
    let out = report("moa", "full", "grid.db");
    assert!(out.status.success(), "{}", text(&out));
    let md = std::fs::read_to_string(d.join("out/report.md")).unwrap();
    assert!(
        md.contains("Against the full grid `full` over the same configurations")
            && md.contains("epochs (8 of 16)")
            && !md.contains("NaN"),
        "{md}"
    );

    // bench-replay over the full grid's curves.
    let replay = |search: &str, extra: &[&str]| {
        let mut args = vec![
            "bench-replay",
            "--search",
            search,
            "--curves",
            "curves.json",
        ];
        args.extend_from_slice(extra);
        cg(d, &args)
    };
    let out = replay(
        "moa.yaml",
        &["--record", "full", "--db", "grid.db", "--seeds", "1"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("NaN"), "{}", text(&out));
    let out = replay("moz.yaml", &["--seeds", "1"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("the grid's hypervolume is zero"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("NaN"), "{}", text(&out));
    for (flag, value) in [
        ("--eta", "0"),
        ("--eta", "1"),
        ("--min-epochs", "0"),
        ("--workers", "0"),
        ("--seeds", "0"),
    ] {
        let out = replay("moa.yaml", &[flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {}", text(&out));
        assert!(text(&out).contains(flag), "{flag} {value}: {}", text(&out));
    }
    // Rungs 1 and 4 with eta 8: 4 configurations cannot fill the second; min 5 > max 4.
    for (flag, value, why) in [
        ("--eta", "8", "no configuration reaches `max_epochs` (4)"),
        (
            "--min-epochs",
            "5",
            "`max_epochs` (4) must be at least `min_epochs` (5)",
        ),
    ] {
        let out = replay("moa.yaml", &[flag, value, "--seeds", "1"]);
        assert!(!out.status.success(), "{flag} {value}: {}", text(&out));
        assert!(text(&out).contains(why), "{flag} {value}: {}", text(&out));
    }
}

/// A seeded search against its seeded grid (one grid job per seed per point): `cg report
/// --against` takes every seed's job, and `bench-replay --record` records each configuration's
/// curve as the mean over its seeds, as the search reads a configuration.
#[test]
fn a_seeded_search_is_compared_with_every_seed_of_its_grid() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let seeded = |text: String, name: &str| {
        text.replace(
            &format!("name: {name}\n"),
            &format!("name: {name}\nseeds: [0, 1]\n"),
        )
    };
    let search = seeded(search_text("moa", "reference_point: [0.0, 0.0]"), "moa");
    let grid = seeded(half_grid_text("grid", "0.5, 1.5"), "grid");
    std::fs::write(d.join("moa.yaml"), &search).unwrap();
    std::fs::write(d.join("grid.yaml"), &grid).unwrap();
    run_into(d, "moa.yaml", "moa.db");
    run_into(d, "grid.yaml", "grid.db");
    let grid_records = records(d.join("grid.db"), "grid");
    assert_eq!(grid_records.len(), 8, "4 points × 2 seeds");

    let out = cg(
        d,
        &[
            "report",
            "moa",
            "--db",
            "moa.db",
            "--against",
            "grid",
            "--against-db",
            "grid.db",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let md = std::fs::read_to_string(d.join("reports/moa/report.md")).unwrap();
    assert!(
        md.contains("Against the full grid `grid`") && md.contains(" of 32)"),
        "{md}"
    );

    let out = cg(
        d,
        &[
            "bench-replay",
            "--search",
            "moa.yaml",
            "--curves",
            "curves.json",
            "--record",
            "grid",
            "--db",
            "grid.db",
            "--seeds",
            "2",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("curves.json")).unwrap()).unwrap();
    let configs = fixture["configs"].as_array().unwrap();
    assert_eq!(
        configs.len(),
        4,
        "one curve per configuration, not per seed"
    );
    for c in configs {
        let threshold = &c["params"]["gate.threshold"];
        let weight = &c["params"]["loss.flops_weight"];
        let seeds: Vec<&cg_core::RunResult> = grid_records
            .iter()
            .filter(|r| {
                &r.job.params["gate.threshold"] == threshold
                    && &r.job.params["loss.flops_weight"] == weight
            })
            .map(|r| r.result.as_ref().unwrap())
            .collect();
        assert_eq!(seeds.len(), 2);
        let mean = (seeds[0].history[3].test_acc + seeds[1].history[3].test_acc) / 2.0;
        let recorded = c["values"][3][0].as_f64().unwrap();
        assert!((recorded - mean).abs() < 1e-12, "{recorded} vs {mean}");
    }
}
