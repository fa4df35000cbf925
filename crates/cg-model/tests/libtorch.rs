//! flex against libtorch (CPU): the same configuration gives the same MAC figures, the same first-step
//! loss (the initial weights are drawn on flex for every backend) and close accuracies on real
//! digits; a checkpoint written on one backend resumes on the other. Built only with `libtorch`.
#![cfg(feature = "libtorch")]

use std::path::PathBuf;

use cg_core::{DatasetKind, DatasetSpec, RunConfig, RunResult, SyntheticSpec};
use cg_model::train::{Observer, Prepared, Progress, TrainOptions};
use cg_model::{BackendKind, DeviceSpec, Error};

/// Keeps the loss of the first training step (reported with the first progress).
#[derive(Default)]
struct FirstLoss(Option<f64>);

impl Observer for FirstLoss {
    fn on_step(&mut self, p: &Progress) {
        self.0.get_or_insert(p.loss);
    }
}

fn train(c: &RunConfig, backend: BackendKind, opts: &TrainOptions) -> (RunResult, Option<f64>) {
    let prep = Prepared::new(c).unwrap();
    let mut first = FirstLoss::default();
    let r = cg_model::run(&prep, backend, DeviceSpec::Cpu, opts, &mut first)
        .unwrap_or_else(|e| panic!("{backend}: {e}"));
    (r, first.0)
}

#[test]
fn flex_and_libtorch_agree_on_real_digits() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/mnist-10k");
    assert!(path.is_dir(), "{} is missing", path.display());
    let mut c = RunConfig::with_dataset(DatasetSpec {
        kind: DatasetKind::Idx,
        val_size: None,
        path: Some(path.display().to_string()),
        augment: None,
        synthetic: None,
    });
    c.model.depth = 8;
    c.model.width = 16;
    c.loss.cons_weight = 0.0;
    c.train.epochs = 2;
    c.train.batch_size = 64;
    c.train.limit_train = Some(4000);
    c.train.limit_test = Some(1000);
    let (flex, flex_loss) = train(&c, BackendKind::Flex, &TrainOptions::default());
    let (torch, torch_loss) = train(&c, BackendKind::Libtorch, &TrainOptions::default());
    eprintln!(
        "flex: first loss {flex_loss:?}, accuracy {:.4}, {:.0} img/s; libtorch: first loss {torch_loss:?}, accuracy {:.4}, {:.0} img/s",
        flex.test_acc_final, flex.train_img_per_s, torch.test_acc_final, torch.train_img_per_s
    );
    assert_eq!(flex.provenance.backend, "flex");
    assert_eq!(torch.provenance.backend, "libtorch");
    assert!(
        torch.provenance.device.contains("libtorch"),
        "{}",
        torch.provenance.device
    );
    assert_eq!(flex.macs_full, torch.macs_full);
    let prep = Prepared::new(&c).unwrap();
    assert_eq!(flex.macs_full, prep.macs.full());
    let (a, b) = (flex_loss.unwrap(), torch_loss.unwrap());
    assert!(
        ((a - b) / a).abs() <= 1e-3,
        "first-step loss: flex {a}, libtorch {b}"
    );
    assert!(
        flex.test_acc_final > 0.5,
        "flex learns: {}",
        flex.test_acc_final
    );
    assert!(
        (flex.test_acc_final - torch.test_acc_final).abs() <= 0.04,
        "test accuracy: flex {}, libtorch {}",
        flex.test_acc_final,
        torch.test_acc_final
    );
}

fn tiny() -> RunConfig {
    let mut c = RunConfig::with_dataset(DatasetSpec {
        kind: DatasetKind::Synthetic,
        val_size: None,
        path: None,
        augment: Some(true),
        synthetic: Some(SyntheticSpec {
            n_train: 96,
            n_test: 32,
            channels: 3,
            side: 8,
            classes: 4,
        }),
    });
    c.model.depth = 8;
    c.model.width = 4;
    c.train.epochs = 2;
    c.train.batch_size = 16;
    c.train.seed = 3;
    c
}

/// Epoch 1 on `first`, stopped with its checkpoint; epoch 2 resumed from it on `second`.
fn resume_across(first: BackendKind, second: BackendKind) {
    let c = tiny();
    let (straight, _) = train(&c, second, &TrainOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let ckpt = TrainOptions {
        checkpoint_dir: Some(dir.path().to_path_buf()),
        resume: true,
        stop_after_epochs: Some(1),
        ..TrainOptions::default()
    };
    let prep = Prepared::new(&c).unwrap();
    match cg_model::run(
        &prep,
        first,
        DeviceSpec::Cpu,
        &ckpt,
        &mut cg_model::train::Silent,
    ) {
        Err(Error::Stopped { epoch: 1 }) => {}
        other => panic!("expected a stop after epoch 1 on {first}, got {other:?}"),
    }
    let resume = TrainOptions {
        stop_after_epochs: None,
        ..ckpt
    };
    let (resumed, _) = train(&c, second, &resume);
    assert_eq!(resumed.history.len(), 2);
    assert_eq!(resumed.provenance.backend, second.to_string());
    // Epoch 2 continues from epoch 1's weights and optimiser state: float noise apart, it is the
    // straight run's epoch 2 (a checkpoint that did not load would start from fresh weights).
    let (r, s) = (&resumed.history[1], &straight.history[1]);
    assert!(
        (r.train_loss - s.train_loss).abs() <= 0.02 * s.train_loss.abs().max(1e-3),
        "epoch 2 loss after {first} → {second}: {} against {} straight on {second}",
        r.train_loss,
        s.train_loss
    );
}

#[test]
fn a_flex_checkpoint_resumes_on_libtorch() {
    resume_across(BackendKind::Flex, BackendKind::Libtorch);
}

#[test]
fn a_libtorch_checkpoint_resumes_on_flex() {
    resume_across(BackendKind::Libtorch, BackendKind::Flex);
}

#[test]
fn libtorch_on_a_missing_gpu_says_what_to_check() {
    // This machine may have a GPU; only a device index far beyond any is certain to be missing.
    let err = cg_model::check_device(BackendKind::Libtorch, DeviceSpec::Cuda(999)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("CUDA device") && text.contains("libtorch"),
        "{text}"
    );
}
