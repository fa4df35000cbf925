//! A search promotes on validation when its runs have a validation split: an objective named
//! `test_acc_final` is read as `val_acc_final` (cg-core's rule for choosing), so results whose
//! test and validation accuracies disagree are promoted by validation, never by test. Without a
//! split, the same objective reads test accuracy.

mod common;

use std::path::Path;
use std::time::Duration;

use cg_core::{DecisionKind, Provenance, RunConfig, RunResult, SweepInfo};
use cg_store::{Store, SubmitOptions};
use cg_sweep::LoadOptions;

const SWEEP: &str = "name: val
method: mo-asha
n_samples: 2
fidelity: {min_epochs: 1, max_epochs: 2, eta: 2}
sampler: random
seed: 3
dataset: {kind: synthetic, synthetic: {n_train: 64, n_test: 32, side: 8, channels: 1}}
model: {depth: 8, width: 4}
parameters:
  gate.threshold: {values: [0.25, 0.5, 0.75, 1.0, 1.25, 1.5]}
objectives:
  - {metric: test_acc_final, direction: maximize}
reference_point: [0.0]
";

/// A result whose test accuracy grows with the gate threshold and whose validation accuracy
/// (when `val`) falls with it: the two disagree on every pair.
fn result(config: RunConfig, val: bool) -> RunResult {
    let t = config.gate.threshold;
    let base = common::result(config, 0.5 + 0.2 * t);
    RunResult {
        provenance: Provenance {
            val_split: val.then(|| "split".into()),
            ..base.provenance.clone()
        },
        val_acc_final: val.then_some(0.9 - 0.2 * t),
        val_acc_peak: val.then_some(0.9 - 0.2 * t),
        val_images: val.then_some(16),
        ..base
    }
}

/// Runs the search's first rung (both jobs complete) and returns the thresholds of the two
/// configurations it drew and of the one it promoted (⌊2/2⌋ = 1: the better of the two).
fn first_rung(val: bool) -> (Vec<f64>, Vec<f64>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("cg.db").as_path())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let sweep =
            cg_sweep::load_sweep_str(SWEEP, "val.yaml", Path::new("."), &LoadOptions::default())
                .unwrap_or_else(|d| panic!("{d}"));
        cg_daemon::submit_sweep(&store, &sweep, &SubmitOptions::default())
            .await
            .unwrap();
        for _ in 0..2 {
            let claim = store
                .claim_from("test:w", Duration::from_secs(60), Some("val"))
                .await
                .unwrap()
                .expect("a first-rung job");
            let done = result(claim.job.config.clone(), val);
            store
                .complete(&claim.job.id, claim.attempt, "test:w", &done)
                .await
                .unwrap();
        }
        cg_daemon::advance_search(&store, "val").await.unwrap();
        let records = store.job_records("val").await.unwrap();
        let decisions = store.search_decisions("val").await.unwrap();
        let thresholds = |kind: DecisionKind| -> Vec<f64> {
            let mut t: Vec<f64> = decisions
                .iter()
                .filter(|d| d.kind == kind)
                .map(|d| {
                    let r = records.iter().find(|r| r.job.id == d.job_id).unwrap();
                    r.job.config.gate.threshold
                })
                .collect();
            t.sort_by(f64::total_cmp);
            t
        };
        let out = (
            thresholds(DecisionKind::Draw),
            thresholds(DecisionKind::Promote),
        );
        store.close().await;
        out
    })
}

#[test]
fn a_search_with_validation_promotes_on_validation() {
    // The better validation accuracy is the lower threshold's (its test accuracy is worse).
    let (drawn, promoted) = first_rung(true);
    assert_eq!(drawn.len(), 2);
    assert_eq!(promoted, [drawn[0]]);
}

#[test]
fn a_search_without_validation_promotes_on_test() {
    let (drawn, promoted) = first_rung(false);
    assert_eq!(drawn.len(), 2);
    assert_eq!(promoted, [drawn[1]]);
}

#[test]
fn choice_values_read_validation_for_test_objectives() {
    let info = SweepInfo {
        name: "s".into(),
        objectives: vec![
            cg_core::Objective {
                metric: "test_acc_final".into(),
                direction: cg_core::Direction::Maximize,
            },
            cg_core::Objective {
                metric: "val_acc_final".into(),
                direction: cg_core::Direction::Maximize,
            },
            cg_core::Objective {
                metric: "savings_nominal".into(),
                direction: cg_core::Direction::Maximize,
            },
        ],
        reference_point: vec![0.0, 0.0, 0.0],
        axes: Vec::new(),
        controls: Vec::new(),
    };
    let base = cg_sweep::load_sweep_str(SWEEP, "val.yaml", Path::new("."), &LoadOptions::default())
        .unwrap_or_else(|d| panic!("{d}"))
        .base()
        .clone();
    let with = result(base.clone(), true);
    let t = base.gate.threshold;
    let val = 0.9 - 0.2 * t;
    assert_eq!(info.objective_values(&with), Some(vec![val, val, 0.5]));
    // Without a split, `val_acc_final` has no value: the result has no objectives.
    assert_eq!(info.objective_values(&result(base, false)), None);
}
