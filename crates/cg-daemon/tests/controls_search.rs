//! Controls of a `method: mo-asha` sweep: planned only once its search has finished, from its
//! top-rung (full-budget) configurations, never seen by the search's decisions; the sweep
//! finishes only once they have ended. Results are made up (no training).

mod common;

use std::path::Path;
use std::time::Duration;

use cg_core::{BlockGateStats, RunConfig, RunResult};
use cg_store::{Store, SubmitOptions};
use cg_sweep::LoadOptions;

const SWEEP: &str = "name: srch
method: mo-asha
n_samples: 2
fidelity: {min_epochs: 1, max_epochs: 2, eta: 2}
sampler: random
seed: 3
dataset: {kind: synthetic, synthetic: {n_train: 64, n_test: 32, side: 8, channels: 1}}
model: {depth: 8, width: 4}
parameters:
  gate.threshold: {values: [0.25, 0.5, 0.75, 1.0]}
objectives:
  - {metric: test_acc_final, direction: maximize}
reference_point: [0.0]
controls: [static]
";

/// A result whose accuracy grows with the threshold; block 0 closed for every input.
fn result(config: RunConfig) -> RunResult {
    let t = config.gate.threshold;
    RunResult {
        gates: vec![BlockGateStats {
            block_idx: 0,
            gate_open_rate: 0.0,
            mean_cir: 0.5,
            routing_share: Some(0.0),
            class_open_rates: None,
        }],
        ..common::result(config, 0.5 + 0.2 * t)
    }
}

#[test]
fn a_search_plans_its_controls_once_it_has_finished() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("cg.db").as_path())
            .await
            .unwrap();
        let sweep =
            cg_sweep::load_sweep_str(SWEEP, "srch.yaml", Path::new("."), &LoadOptions::default())
                .unwrap_or_else(|d| panic!("{d}"));
        cg_daemon::submit_sweep(&store, &sweep, &SubmitOptions::default())
            .await
            .unwrap();
        assert!(store.sweep("srch").await.unwrap().controls_pending);
        // Train what the search asks for, advancing it (and the controls) after each result.
        let mut controls_added = Vec::new();
        while let Some(claim) = store
            .claim_from("test:w", Duration::from_secs(60), Some("srch"))
            .await
            .unwrap()
        {
            let is_control = claim.job.params.contains_key("control");
            let done = result(claim.job.config.clone());
            store
                .complete(&claim.job.id, claim.attempt, "test:w", &done)
                .await
                .unwrap();
            cg_daemon::advance_search(&store, "srch").await.unwrap();
            let finished = cg_daemon::search_finished(&store, "srch").await.unwrap();
            let added = cg_daemon::advance_controls(&store, "srch").await.unwrap();
            if !finished {
                assert_eq!(added, 0, "controls before the search finished");
            }
            if is_control {
                assert_eq!(added, 0);
            }
            controls_added.push(added);
        }
        assert_eq!(
            controls_added.iter().sum::<usize>(),
            1,
            "{controls_added:?}"
        );
        let records = store.job_records("srch").await.unwrap();
        let controls: Vec<_> = records.iter().filter(|r| r.control().is_some()).collect();
        assert_eq!(controls.len(), 1);
        let control = controls[0];
        // The one configuration of the top rung (the front of one objective): its control.
        let top: Vec<_> = records
            .iter()
            .filter(|r| r.control().is_none() && r.job.config.train.stop_after.is_none())
            .collect();
        assert_eq!(top.len(), 1, "{records:#?}");
        let mut of = top[0].job.params.clone();
        of.remove("train.seed");
        assert_eq!(control.job.params["control_of"], serde_json::json!([of]));
        assert_eq!(control.job.config.model.removed_blocks, [0]);
        assert_eq!(control.job.config.train.epochs, 2);
        assert_eq!(control.status, cg_core::JobStatus::Completed);
        // The search never took the control's result.
        let log = store.search_log("srch").await.unwrap();
        assert!(log.iter().all(|l| l.job_id != control.job.id));
        let summary = store.sweep("srch").await.unwrap();
        assert!(
            summary.has_finished() && !summary.controls_pending,
            "{summary:?}"
        );
        store.close().await;
    });
}
