//! The gate predictor (`gate.predictor`) and removed blocks (`model.removed_blocks`): sparse
//! inference decided by the predictor equals dense inference with its decisions, a predictor run
//! records its agreement and measured savings, and a network without some blocks is the smaller one.

use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use cg_core::{
    DatasetKind, DatasetSpec, GateMode, GateSpec, ModelKind, ModelSpec, RunConfig, Shortcut,
    SyntheticSpec,
};
use cg_model::macs::MacsTable;
use cg_model::model::{CgResNet, GateCtx, NetSpec};
use cg_model::train::{Prepared, Silent, TrainOptions};
use cg_model::{BackendKind, DeviceSpec};

type Cpu = burn::backend::Flex;

fn predictor_net() -> NetSpec {
    NetSpec {
        model: ModelSpec {
            kind: ModelKind::Cosinegate,
            depth: 14,
            width: 4,
            shortcut: Shortcut::A,
            ..ModelSpec::default()
        },
        gate: GateSpec {
            mode: GateMode::CirCtrl,
            predictor: true,
            ..GateSpec::default()
        },
        in_channels: 3,
        side: 8,
    }
}

fn input<B: Backend>(n: usize, device: &B::Device) -> Tensor<B, 4> {
    let v: Vec<f32> = (0..n * 3 * 64)
        .map(|i| ((i * 7919 % 997) as f32 / 498.0) - 1.0)
        .collect();
    Tensor::from_data(TensorData::new(v, [n, 3, 8, 8]), device)
}

/// Gives every predictor output layer alternating ±4 weights and bias `bias`, so that decisions
/// vary per sample and a negative bias closes some.
fn set_predictors(model: &mut CgResNet<Cpu>, bias: f32) {
    let device = Default::default();
    for b in model.blocks.iter_mut() {
        let Some(g) = b.gate.as_mut() else { continue };
        let out = g.pred_out.as_mut().expect("a predictor");
        let [h, o] = out.weight.val().dims();
        let vals: Vec<f32> = (0..h * o)
            .map(|i| if i % 2 == 0 { 4.0 } else { -4.0 })
            .collect();
        out.weight = Param::from_tensor(Tensor::from_data(TensorData::new(vals, [h, o]), &device));
        out.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![bias], [1]),
            &device,
        )));
    }
}

fn argmax(logits: Tensor<Cpu, 2>) -> Vec<i64> {
    logits.argmax(1).into_data().iter::<i64>().collect()
}

#[test]
fn predictor_sparse_inference_equals_dense_inference_with_its_decisions() {
    let device = Default::default();
    let mut model: CgResNet<Cpu> = predictor_net().init(&device);
    let x = input::<Cpu>(16, &device);
    let p = 0.5;
    // Some bias at which the predictors close some samples and open others.
    let (dense, sparse, masks) = [-0.5f32, 0.0, -1.0, 0.5, -2.0, 1.0, -4.0]
        .into_iter()
        .map(|bias| {
            set_predictors(&mut model, bias);
            let dense = model.forward(x.clone(), &GateCtx::Eval { p_threshold: p });
            let (sparse, masks) = model.forward_sparse(x.clone(), p);
            (dense, sparse, masks)
        })
        .find(|(_, _, masks)| {
            let opened = masks.iter().flatten().filter(|o| **o).count();
            opened > 0 && opened < masks.iter().map(|m| m.len()).sum()
        })
        .expect("some bias mixes open and closed predictor decisions");
    assert_eq!(
        dense.predictions.len(),
        masks.len(),
        "one prediction per gated block"
    );
    for (k, (g, pred)) in dense.gates.iter().zip(&dense.predictions).enumerate() {
        let applied: Vec<bool> = g
            .clone()
            .into_data()
            .iter::<f32>()
            .map(|v| v > 0.5)
            .collect();
        let predicted: Vec<bool> = pred
            .logit
            .clone()
            .into_data()
            .iter::<f32>()
            .map(|l| 1.0 / (1.0 + (-l).exp()) >= 0.5)
            .collect();
        assert_eq!(
            applied, masks[k],
            "block {k}: dense and sparse open masks differ"
        );
        assert_eq!(
            applied, predicted,
            "block {k}: the dense gate is not the predictor's"
        );
    }
    let diff = (dense.logits.clone() - sparse.clone())
        .abs()
        .max()
        .into_scalar();
    assert!(diff < 1e-4, "sparse and dense logits differ by {diff}");
    assert_eq!(argmax(dense.logits), argmax(sparse));
}

fn tiny(mode: GateMode, predictor: bool) -> RunConfig {
    let mut c = RunConfig::with_dataset(DatasetSpec {
        kind: DatasetKind::Synthetic,
        val_size: None,
        path: None,
        augment: Some(false),
        synthetic: Some(SyntheticSpec {
            n_train: 32,
            n_test: 16,
            channels: 3,
            side: 8,
            classes: 4,
        }),
    });
    c.model.depth = 14;
    c.model.width = 4;
    c.gate.mode = mode;
    c.gate.predictor = predictor;
    c.train.epochs = 1;
    c.train.batch_size = 16;
    c.train.seed = 3;
    c
}

fn train(c: &RunConfig) -> cg_core::RunResult {
    let prep = Prepared::new(c).unwrap();
    cg_model::run(
        &prep,
        BackendKind::Flex,
        DeviceSpec::Cpu,
        &TrainOptions::default(),
        &mut Silent,
    )
    .unwrap()
}

#[test]
fn a_predictor_run_records_agreement_and_measured_savings() {
    for mode in [GateMode::Cir, GateMode::CirCtrl] {
        let c = tiny(mode, true);
        let r = train(&c);
        let agreement = r
            .predictor_agreement
            .expect("a predictor run records its agreement");
        assert!((0.0..=1.0).contains(&agreement), "{agreement}");
        assert!(
            r.savings_measured.is_some(),
            "{mode:?}: the predictor decides without F(x)"
        );
        // Nothing computed to decide: actual = nominal + the predictors' own cost.
        let table =
            MacsTable::new(&c.model, 3, 8, false, mode, c.gate.controller_hidden).with_predictor();
        let overhead: u64 = table.gate_overhead.iter().sum();
        assert!(
            (r.macs_executed_actual - r.macs_executed_nominal - overhead as f64).abs() < 1e-6,
            "{mode:?}"
        );
        assert_eq!(r.macs_full, table.full(), "the backbone alone");
    }
    for mode in [GateMode::Cir, GateMode::Ctrl] {
        let r = train(&tiny(mode, false));
        assert_eq!(r.predictor_agreement, None, "{mode:?}");
        assert_eq!(
            r.savings_measured.is_some(),
            mode == GateMode::Ctrl,
            "{mode:?}"
        );
    }
}

#[test]
fn a_resnet_without_removed_blocks_is_the_smaller_network_and_trains() {
    let mut c = tiny(GateMode::CirCtrl, false);
    c.model.kind = ModelKind::Resnet;
    c.model.depth = 20;
    let full = MacsTable::new(&c.model, 3, 8, false, c.gate.mode, 16);
    // Block 3 opens stage 2 (stride 2) and cannot be removed: blocks 1 and 4 instead.
    c.model.removed_blocks = vec![1, 4];
    let prep = Prepared::new(&c).unwrap();
    let indices: Vec<usize> = prep.macs.blocks.iter().map(|b| b.index).collect();
    assert_eq!(indices, [0, 2, 3, 5, 6, 7, 8]);
    let model: CgResNet<Cpu> = prep.net.init(&Default::default());
    assert_eq!(model.blocks.len(), 7);
    assert_eq!(
        prep.macs.full(),
        full.full() - full.branch[1] - full.branch[4],
        "the two branches' MACs are gone"
    );
    let r = train(&c);
    assert_eq!(r.macs_full, prep.macs.full());
    assert_eq!(r.history.len(), 1);
    assert!(r.history[0].train_loss.is_finite());
}

#[test]
fn gates_of_a_network_with_removed_blocks_keep_their_full_indices() {
    let mut c = tiny(GateMode::Ctrl, false);
    c.model.removed_blocks = vec![1];
    let r = train(&c);
    let idx: Vec<usize> = r.gates.iter().map(|g| g.block_idx).collect();
    // Depth 14: blocks 0..9, stage starts 2 and 4 downsample (ungated), block 1 removed.
    assert_eq!(idx, [0, 3, 5]);
}

#[test]
fn savings_are_measured_on_validation_when_there_is_a_split() {
    let mut c = tiny(GateMode::Ctrl, false);
    c.dataset.val_size = Some(8);
    c.train.epochs = 2;
    // Gates near their threshold and pushed to close, so that some close (the choice of set
    // itself is tested in train.rs's unit tests).
    c.gate.controller_bias_init = 0.0;
    c.loss.flops_weight = 0.1;
    c.loss.ramp_start = 0.0;
    c.loss.ramp_end = 0.0;
    let prep = Prepared::new(&c).unwrap();
    let r = train(&c);
    // The gate statistics are validation's; the executed MACs must be computed from the same.
    let rates: Vec<f64> = r.gates.iter().map(|g| g.gate_open_rate).collect();
    let nominal = prep.macs.mean_executed_nominal(&rates);
    assert!((r.macs_executed_nominal - nominal).abs() < 1e-6);
    let last = r.history.last().unwrap();
    let rates: Vec<f64> = last.gates.iter().map(|g| g.gate_open_rate).collect();
    let per_epoch = 1.0 - prep.macs.mean_executed_nominal(&rates) / r.macs_full as f64;
    assert!((last.savings_nominal - per_epoch).abs() < 1e-12);
    assert!(last.savings_nominal > 0.0, "some gates closed");
    assert!(r.savings_measured.is_some());
}

#[test]
fn the_predictor_loss_trains_the_predictor_and_not_the_backbone() {
    type Ad = burn::backend::Autodiff<Cpu>;
    let device = Default::default();
    let model: CgResNet<Ad> = predictor_net().init(&device);
    let x = input::<Ad>(6, &device);
    let noise = Tensor::zeros([model.n_gated(), 6], &device);
    let out = model.forward(
        x,
        &GateCtx::Train {
            tau: 1.0,
            hard: false,
            noise,
        },
    );
    assert_eq!(out.predictions.len(), model.n_gated());
    let loss = out
        .predictions
        .iter()
        .map(|p| p.logit.clone().mean())
        .reduce(|a, b| a + b)
        .unwrap();
    let grads = loss.backward();
    let gate = model.blocks[0].gate.as_ref().unwrap();
    let pred_grad = gate.pred_in.as_ref().unwrap().weight.grad(&grads);
    assert!(pred_grad.is_some(), "the predictor learns");
    let conv_grad = model.blocks[0].conv1.weight.grad(&grads);
    let stem_grad = model.stem_conv.weight.grad(&grads);
    assert!(
        conv_grad.is_none() && stem_grad.is_none(),
        "the predictor's input is detached"
    );
}
