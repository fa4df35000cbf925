//! On LibTorch, training runs the conv → BatchNorm (→ ReLU) chains, the block outputs and the CIR on
//! torch's own kernels (`cg_model::fused`). They must compute what burn's ops compute: the same
//! logits, the same gradient for every parameter, the same running statistics (seen through the
//! inference logits afterwards). Built only with `libtorch`.
#![cfg(feature = "libtorch")]

use burn::backend::libtorch::LibTorchDevice;
use burn::backend::{Autodiff, LibTorch};
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use cg_core::{GateSpec, ModelKind, ModelSpec, Shortcut};
use cg_model::fused::{nodes_run, with_fused};
use cg_model::model::{CgResNet, GateCtx, NetSpec};

type Inner = LibTorch<f32>;
type Ad = Autodiff<Inner>;

fn spec(shortcut: Shortcut) -> NetSpec {
    NetSpec {
        model: ModelSpec {
            kind: ModelKind::Cosinegate,
            depth: 14,
            width: 4,
            shortcut,
            ..ModelSpec::default()
        },
        gate: GateSpec::default(),
        in_channels: 3,
        side: 8,
    }
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

fn tensor<const D: usize>(n: usize, shape: [usize; D], salt: usize) -> Tensor<Ad, D> {
    let len: usize = shape.iter().product();
    assert_eq!(len % n, 0);
    let v: Vec<f32> = (0..len)
        .map(|i| (((i + salt) * 7919 % 997) as f32 / 498.0) - 1.0)
        .collect();
    Tensor::from_data(TensorData::new(v, shape), &LibTorchDevice::Cpu)
}

/// Every parameter's gradient (its value where it has none), in module order.
struct Collect<'a> {
    grads: &'a <Ad as burn::tensor::backend::AutodiffBackend>::Gradients,
    out: Vec<Vec<f32>>,
}

impl ModuleVisitor<Ad> for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Ad, D>>) {
        let v = match param.grad(self.grads) {
            Some(g) => values(g),
            None => values(param.val().inner()),
        };
        self.out.push(v);
    }
}

struct Step {
    logits: Vec<f32>,
    /// Gradients, in module order (running statistics show in the eval logits).
    state: Vec<Vec<f32>>,
    eval_logits: Vec<f32>,
}

fn step(shortcut: Shortcut, fused: bool) -> Step {
    let before = nodes_run();
    let step = with_fused(fused, || {
        let s = spec(shortcut);
        Ad::seed(&LibTorchDevice::Cpu, 11);
        let model: CgResNet<Ad> = s.init(&LibTorchDevice::Cpu);
        let batch = 6;
        let x = tensor(batch, [batch, 3, 8, 8], 0);
        let ctx = GateCtx::Train {
            tau: 1.0,
            hard: false,
            noise: tensor(batch, [model.n_gated(), batch], 5),
        };
        let out = model.forward(x.clone(), &ctx);
        let weights = tensor(batch, out.logits.dims(), 3);
        let gates = out
            .gates
            .iter()
            .fold(Tensor::zeros([batch], &LibTorchDevice::Cpu), |a, g| {
                a + g.clone()
            });
        let loss = (out.logits.clone() * weights).sum() + gates.sum();
        let grads = loss.backward();
        let mut collect = Collect {
            grads: &grads,
            out: Vec::new(),
        };
        model.visit(&mut collect);
        let eval = model
            .valid()
            .forward(x.inner(), &GateCtx::Eval { p_threshold: 0.5 });
        Step {
            logits: values(out.logits),
            state: collect.out,
            eval_logits: values(eval.logits),
        }
    });
    let run = nodes_run() - before;
    assert_eq!(run > 0, fused, "{run} fused nodes");
    step
}

fn assert_close(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = a.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 2e-4 * scale,
            "{what}[{i}]: burn ops {x}, torch kernels {y} (scale {scale})"
        );
    }
}

#[test]
fn libtorch_kernels_compute_what_burn_ops_compute() {
    for shortcut in [Shortcut::A, Shortcut::B] {
        let burn_ops = step(shortcut, false);
        let torch = step(shortcut, true);
        assert_close("logits", &burn_ops.logits, &torch.logits);
        assert_eq!(burn_ops.state.len(), torch.state.len());
        for (k, (a, b)) in burn_ops.state.iter().zip(&torch.state).enumerate() {
            assert_close(&format!("{shortcut:?} parameter {k}"), a, b);
        }
        assert_close("eval logits", &burn_ops.eval_logits, &torch.eval_logits);
        // Not vacuous: the gradients are not all zero.
        assert!(torch.state.iter().flatten().any(|v| *v != 0.0 && *v != 1.0));
    }
}
