//! Training end to end on the CPU backend: resume, failure modes, and learning on real digits.

use std::path::PathBuf;

use cg_core::{DatasetKind, DatasetSpec, GateMode, RunConfig, SyntheticSpec};
use cg_model::train::{Prepared, Silent, TrainOptions};
use cg_model::{BackendKind, DeviceSpec, Error};

fn tiny(mode: GateMode) -> RunConfig {
    let mut c = RunConfig::with_dataset(DatasetSpec {
        kind: DatasetKind::Synthetic,
        val_size: None,
        path: None,
        augment: Some(true),
        synthetic: Some(SyntheticSpec {
            n_train: 48,
            n_test: 24,
            channels: 3,
            side: 8,
            classes: 4,
        }),
    });
    c.model.depth = 14;
    c.model.width = 4;
    c.gate.mode = mode;
    c.train.epochs = 3;
    c.train.batch_size = 16;
    c.train.seed = 5;
    c
}

fn run(c: &RunConfig, opts: &TrainOptions) -> cg_model::Result<cg_core::RunResult> {
    let prep = Prepared::new(c)?;
    cg_model::run(&prep, BackendKind::Flex, DeviceSpec::Cpu, opts, &mut Silent)
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let c = tiny(GateMode::CirCtrl);
    let straight = run(&c, &TrainOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = TrainOptions {
        checkpoint_dir: Some(dir.path().to_path_buf()),
        resume: true,
        stop_after_epochs: Some(1),
        ..TrainOptions::default()
    };
    match run(&c, &ckpt) {
        Err(Error::Stopped { epoch: 1 }) => {}
        other => panic!("expected a stop after epoch 1, got {other:?}"),
    }
    assert!(dir.path().join("state.json").is_file());
    let resumed = run(
        &c,
        &TrainOptions {
            stop_after_epochs: None,
            ..ckpt
        },
    )
    .unwrap();
    assert_eq!(resumed.history.len(), 3);
    for (a, b) in straight.history.iter().zip(&resumed.history) {
        assert_eq!(a.epoch, b.epoch);
        assert!(
            (a.train_loss - b.train_loss).abs() < 1e-9,
            "epoch {}: {} vs {}",
            a.epoch,
            a.train_loss,
            b.train_loss
        );
        assert_eq!(a.test_acc, b.test_acc);
        assert_eq!(a.gates, b.gates);
    }
    assert_eq!(straight.test_acc_final, resumed.test_acc_final);
    assert_eq!(straight.savings_nominal, resumed.savings_nominal);
    // Completed: final weights kept, intermediate checkpoints dropped.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n.starts_with("final")), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("optim-")), "{names:?}");
}

/// Successive-halving rungs: `train.stop_after` ends a run early with a result and a kept
/// checkpoint; the next rung (a larger `stop_after`, same checkpoint folder) trains only the new
/// epochs and ends where an uninterrupted run ends.
#[test]
fn rung_by_rung_equals_uninterrupted_run() {
    let mut c = tiny(GateMode::CirCtrl);
    c.train.epochs = 4;
    let straight = run(&c, &TrainOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = TrainOptions {
        checkpoint_dir: Some(dir.path().to_path_buf()),
        resume: true,
        ..TrainOptions::default()
    };
    let mut last = None;
    for rung in [Some(1), Some(3), None] {
        let mut r = c.clone();
        r.train.stop_after = rung;
        let result = run(&r, &opts).unwrap();
        let end = rung.unwrap_or(4);
        assert_eq!(result.history.len(), end, "rung {rung:?}");
        assert_eq!(
            result.history[end - 1].test_acc,
            straight.history[end - 1].test_acc
        );
        if rung.is_some() {
            assert!(dir.path().join("state.json").is_file(), "rung {rung:?}");
            // Its last epoch evaluated and its final result agree.
            assert_eq!(result.test_acc_final, result.history[end - 1].test_acc);
        }
        last = Some(result);
    }
    let last = last.unwrap();
    assert_eq!(straight.test_acc_final, last.test_acc_final);
    assert_eq!(straight.savings_nominal, last.savings_nominal);
    assert_eq!(straight.savings_actual, last.savings_actual);
    assert_eq!(straight.gates, last.gates);
    for (a, b) in straight.history.iter().zip(&last.history) {
        assert_eq!((a.epoch, a.lr, a.tau), (b.epoch, b.lr, b.tau));
        assert!(
            (a.train_loss - b.train_loss).abs() < 1e-9,
            "epoch {}",
            a.epoch
        );
        assert_eq!(a.test_acc, b.test_acc);
    }
}

#[test]
fn result_fields_are_consistent() {
    for mode in [GateMode::CirCtrl, GateMode::Cir, GateMode::Ctrl] {
        let mut c = tiny(mode);
        c.train.epochs = 2;
        let r = run(&c, &TrainOptions::default()).unwrap();
        assert_eq!(r.history.len(), 2);
        assert_eq!(
            r.gates.len(),
            4,
            "ResNet-14 gates its four non-downsampling blocks"
        );
        assert!((0.0..=1.0).contains(&r.test_acc_final));
        assert!(r.test_acc_peak >= r.test_acc_final);
        assert!(r.macs_executed_nominal <= r.macs_full as f64);
        assert!(
            (r.savings_nominal - (1.0 - r.macs_executed_nominal / r.macs_full as f64)).abs()
                < 1e-12
        );
        if mode == GateMode::Ctrl {
            assert!(r.savings_measured.is_some());
            // Nothing computed to decide: actual = nominal + the gates' own cost.
            let table = cg_model::macs::MacsTable::new(
                &c.model,
                3,
                8,
                false,
                mode,
                c.gate.controller_hidden,
            );
            let overhead: u64 = table.gate_overhead.iter().sum();
            assert!(
                (r.macs_executed_actual - r.macs_executed_nominal - overhead as f64).abs() < 1e-6
            );
        } else {
            assert!(r.savings_measured.is_none());
            assert!(
                r.savings_actual < 0.0,
                "CIR modes compute every branch: actual savings must be negative"
            );
        }
        assert!(r.train_img_per_s > 0.0 && r.infer_img_per_s > 0.0);
    }
}

#[test]
fn diverging_loss_stops_with_a_reason() {
    let mut c = tiny(GateMode::CirCtrl);
    c.train.lr = Some(1e30);
    c.train.warmup = 0.0;
    match run(&c, &TrainOptions::default()) {
        Err(e @ Error::NonFiniteLoss { .. }) => {
            assert!(e.to_string().contains("loss became"), "{e}")
        }
        other => panic!("expected a non-finite loss, got {other:?}"),
    }
}

#[test]
fn missing_data_is_a_clear_error() {
    let mut c = tiny(GateMode::CirCtrl);
    c.dataset = DatasetSpec {
        kind: DatasetKind::Idx,
        val_size: None,
        path: Some("/nonexistent/mnist".into()),
        augment: None,
        synthetic: None,
    };
    let err = run(&c, &TrainOptions::default()).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/mnist"), "{err}");
}

/// A narrow ResNet-8 on 3,000 real MNIST digits (`../shared/data/mnist-10k`, sorted by class, so the
/// loader must shuffle) reaches at least 90% test accuracy.
#[test]
fn resnet8_learns_real_digits() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/mnist-10k");
    assert!(
        path.is_dir(),
        "{} is missing: the shared data sets sit beside the checkout",
        path.display()
    );
    let mut c = RunConfig::with_dataset(DatasetSpec {
        kind: DatasetKind::Idx,
        val_size: None,
        path: Some(path.display().to_string()),
        augment: None,
        synthetic: None,
    });
    c.model.depth = 8;
    c.model.width = 8;
    c.loss.cons_weight = 0.0;
    c.train.epochs = 4;
    c.train.batch_size = 32;
    c.train.lr = Some(0.1);
    c.train.limit_train = Some(3000);
    c.train.limit_test = Some(1000);
    let r = run(&c, &TrainOptions::default()).unwrap();
    eprintln!(
        "accuracy per epoch: {:?}",
        r.history.iter().map(|h| h.test_acc).collect::<Vec<_>>()
    );
    assert!(
        r.test_acc_final >= 0.90,
        "test accuracy {}",
        r.test_acc_final
    );
}
