//! What cg-daemon's tests share: a stored result built from a few figures.

use cg_core::{Provenance, RunConfig, RunResult};

/// A result of `config` with test accuracy `acc` (final and peak) and 1.0e6 of its 2,000,000
/// MACs executed (nominal and actual: 50% savings); no history, gates or validation split. A test
/// sets other fields with struct update syntax (`RunResult { gates, ..result(config, acc) }`).
pub fn result(config: RunConfig, acc: f64) -> RunResult {
    RunResult {
        config,
        provenance: Provenance {
            cg_version: "test".into(),
            git_commit: None,
            burn_version: "0.21.0".into(),
            device: "cpu".into(),
            backend: "flex".into(),
            hostname: None,
            finished_at: None,
            val_split: None,
        },
        history: Vec::new(),
        test_acc_final: acc,
        test_acc_peak: acc,
        peak_epoch: 0,
        val_acc_final: None,
        val_acc_peak: None,
        train_images: None,
        val_images: None,
        macs_full: 2_000_000,
        macs_executed_nominal: 1.0e6,
        macs_executed_actual: 1.0e6,
        savings_nominal: 0.5,
        savings_actual: 0.5,
        savings_measured: None,
        predictor_agreement: None,
        gates: Vec::new(),
        train_img_per_s: 1.0,
        infer_img_per_s: 1.0,
        wall_secs: 1.0,
    }
}
