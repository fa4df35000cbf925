//! LibTorch's own kernels for conv → BatchNorm (→ ReLU) chains (the stem, every residual branch, the
//! projections). Built from burn's primitives, one BatchNorm is ~6 elementwise passes forward and ~10
//! backward, and burn-tch computes a convolution's weight gradient as a generic convolution; PyTorch
//! runs the same chain as fused native BatchNorm and `convolution_backward`. So on
//! `Autodiff<LibTorch>` a chain is one burn autodiff node whose forward records a torch autograd graph
//! and whose backward runs it; on `LibTorch` (inference) it is torch's inference kernels.
//!
//! Same semantics as [`crate::model::BatchNorm`]: batch statistics while training, running statistics
//! with momentum 0.1 and unbiased variance, ε = 1e-5. Any other backend, a convolution with a bias or
//! asymmetric padding, or `CG_LIBTORCH_FUSED=0` in the environment takes the generic path.

use std::any::{Any, TypeId};
use std::cell::Cell;
use std::sync::{Arc, LazyLock, Mutex};

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::libtorch::TchTensor;
use burn::backend::{Autodiff, LibTorch};
use burn::module::RunningState;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::backend::{Backend, BackendTypes};
use burn::tensor::{Tensor, TensorPrimitive};

use crate::model::{BN_EPSILON, BN_MOMENTUM, Stage};

type Inner = LibTorch<f32>;
type Ad = Autodiff<Inner>;
type AdPrimitive = <Ad as BackendTypes>::FloatTensorPrimitive;

static ENV_ENABLED: LazyLock<bool> =
    LazyLock::new(|| std::env::var("CG_LIBTORCH_FUSED").map_or(true, |v| v != "0"));

thread_local! {
    static ENABLED: Cell<Option<bool>> = const { Cell::new(None) };
    static RUN: Cell<u64> = const { Cell::new(0) };
}

/// How many chains this thread has run on torch's kernels (tests check the path was taken).
pub fn chains_run() -> u64 {
    RUN.get()
}

/// Runs `f` with the fused path on or off on this thread (tests compare the two).
pub fn with_fused<R>(on: bool, f: impl FnOnce() -> R) -> R {
    let before = ENABLED.replace(Some(on));
    let r = f();
    ENABLED.set(before);
    r
}

fn enabled() -> bool {
    ENABLED.get().unwrap_or(*ENV_ENABLED)
}

fn cast<T: Any, U: Any>(t: T) -> U {
    *(Box::new(t) as Box<dyn Any>)
        .downcast::<U>()
        .unwrap_or_else(|_| unreachable!("types compared by TypeId"))
}

/// Stride, padding, dilation and groups of a convolution torch can run as burn does.
struct Geometry {
    stride: [i64; 2],
    padding: [i64; 2],
    dilation: [i64; 2],
    groups: i64,
}

fn geometry<B: Backend>(conv: &Conv2d<B>) -> Option<Geometry> {
    if conv.bias.is_some() {
        return None;
    }
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [0, 0],
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            [top as i64, left as i64]
        }
        _ => return None,
    };
    let pair = |v: [usize; 2]| [v[0] as i64, v[1] as i64];
    Some(Geometry {
        stride: pair(conv.stride),
        padding,
        dilation: pair(conv.dilation),
        groups: conv.groups as i64,
    })
}

/// The chain on LibTorch's kernels, or `Err(x)` back when this backend or chain has no fused path.
pub fn chain<B: Backend>(
    x: Tensor<B, 4>,
    stages: &[Stage<'_, B>],
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    if !enabled() {
        return Err(x);
    }
    let Some(geo) = stages
        .iter()
        .map(|s| geometry(s.conv))
        .collect::<Option<Vec<_>>>()
    else {
        return Err(x);
    };
    let id = TypeId::of::<B>();
    let y = if id == TypeId::of::<Ad>() {
        let stages: Vec<Stage<'_, Ad>> = stages.iter().map(Stage::downcast).collect();
        cast(match stages.len() {
            1 => train_chain::<4>(cast(x), &stages, &geo),
            2 => train_chain::<7>(cast(x), &stages, &geo),
            _ => return Err(x),
        })
    } else if id == TypeId::of::<Inner>() {
        let stages: Vec<Stage<'_, Inner>> = stages.iter().map(Stage::downcast).collect();
        cast(infer_chain(cast(x), &stages, &geo))
    } else {
        return Err(x);
    };
    RUN.set(RUN.get() + 1);
    Ok(y)
}

impl<'a, B: Backend> Stage<'a, B> {
    fn downcast<T: Backend>(&self) -> Stage<'a, T> {
        let conv: &dyn Any = self.conv;
        let bn: &dyn Any = self.bn;
        Stage {
            conv: conv.downcast_ref().expect("types compared by TypeId"),
            bn: bn.downcast_ref().expect("types compared by TypeId"),
            relu: self.relu,
        }
    }
}

fn torch_of(t: Tensor<Inner, 1>) -> tch::Tensor {
    t.into_primitive().tensor().tensor
}

fn stage_forward(
    h: &tch::Tensor,
    w: &tch::Tensor,
    gamma: &tch::Tensor,
    beta: &tch::Tensor,
    stats: (&tch::Tensor, &tch::Tensor),
    training: bool,
    g: &Geometry,
    relu: bool,
) -> tch::Tensor {
    let y = h
        .conv2d(
            w,
            None::<tch::Tensor>,
            g.stride,
            g.padding,
            g.dilation,
            g.groups,
        )
        .batch_norm(
            Some(gamma),
            Some(beta),
            Some(stats.0),
            Some(stats.1),
            training,
            BN_MOMENTUM,
            BN_EPSILON,
            true,
        );
    if relu { y.relu() } else { y }
}

fn infer_chain(
    x: Tensor<Inner, 4>,
    stages: &[Stage<'_, Inner>],
    geo: &[Geometry],
) -> Tensor<Inner, 4> {
    let x = x.into_primitive().tensor().tensor;
    let y = tch::no_grad(|| {
        stages.iter().zip(geo).fold(x, |h, (s, g)| {
            let rm = torch_of(s.bn.running_mean.value());
            let rv = torch_of(s.bn.running_var.value());
            stage_forward(
                &h,
                &s.conv.weight.val().into_primitive().tensor().tensor,
                &torch_of(s.bn.gamma.val()),
                &torch_of(s.bn.beta.val()),
                (&rm, &rv),
                false,
                g,
                s.relu,
            )
        })
    });
    Tensor::from_primitive(TensorPrimitive::Float(TchTensor::new(y)))
}

/// A fresh copy of a running statistic, for torch to update in place.
fn stat_copy(state: &RunningState<Tensor<Ad, 1>>) -> tch::Tensor {
    torch_of(state.value_sync().inner()).copy()
}

fn stat_tensor(t: tch::Tensor) -> Tensor<Ad, 1> {
    Tensor::from_inner(Tensor::from_primitive(TensorPrimitive::Float(
        TchTensor::new(t),
    )))
}

/// `N` = 1 + 3·stages inputs: x, then each stage's conv weight, γ and β.
fn train_chain<const N: usize>(
    x: Tensor<Ad, 4>,
    stages: &[Stage<'_, Ad>],
    geo: &[Geometry],
) -> Tensor<Ad, 4> {
    let mut inputs: Vec<AdPrimitive> = vec![x.into_primitive().tensor()];
    for s in stages {
        inputs.push(s.conv.weight.val().into_primitive().tensor());
        inputs.push(s.bn.gamma.val().into_primitive().tensor());
        inputs.push(s.bn.beta.val().into_primitive().tensor());
    }
    assert_eq!(inputs.len(), N, "a chain of {} stages", stages.len());
    // Leaves of the torch graph: the same storage, a gradient only where burn wants one.
    let leaves: Vec<tch::Tensor> = inputs
        .iter()
        .map(|p| {
            p.primitive
                .tensor
                .detach()
                .requires_grad_(!p.node.requirement.is_none())
        })
        .collect();
    let stats: Vec<_> = stages
        .iter()
        .map(|s| (stat_copy(&s.bn.running_mean), stat_copy(&s.bn.running_var)))
        .collect();
    let out = tch::with_grad(|| {
        let mut h = leaves[0].shallow_clone();
        for (i, (s, g)) in stages.iter().zip(geo).enumerate() {
            let p = &leaves[1 + 3 * i..4 + 3 * i];
            let (rm, rv) = &stats[i];
            h = stage_forward(&h, &p[0], &p[1], &p[2], (rm, rv), true, g, s.relu);
        }
        h
    });
    for (s, (rm, rv)) in stages.iter().zip(stats) {
        s.bn.running_mean.update(stat_tensor(rm));
        s.bn.running_var.update(stat_tensor(rv));
    }
    let output = TchTensor::new(out.detach());
    let nodes: [_; N] = std::array::from_fn(|i| inputs[i].node.clone());
    let y = match TorchGraph
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let saved = Saved(Arc::new(Mutex::new(Some(Graph {
                out,
                leaves,
                // Held so that burn sees these buffers shared and never writes into them in
                // place: torch saved them (or views of them) for the backward pass.
                _buffers: inputs
                    .iter()
                    .map(|p| p.primitive.clone())
                    .chain([output.clone()])
                    .collect(),
            }))));
            prep.finish(saved, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Tensor::from_primitive(TensorPrimitive::Float(y))
}

/// The burn node of a chain; its state is the torch graph, run once by the backward pass.
#[derive(Debug)]
struct TorchGraph;

struct Graph {
    out: tch::Tensor,
    leaves: Vec<tch::Tensor>,
    _buffers: Vec<TchTensor>,
}

#[derive(Clone)]
struct Saved(Arc<Mutex<Option<Graph>>>);

impl std::fmt::Debug for Saved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Saved(torch graph)")
    }
}

impl<const N: usize> Backward<Inner, N> for TorchGraph {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Inner>(&ops.node);
        let Some(graph) = ops.state.0.lock().ok().and_then(|mut g| g.take()) else {
            return;
        };
        let wanted: Vec<usize> = (0..N).filter(|&i| ops.parents[i].is_some()).collect();
        if wanted.is_empty() {
            return;
        }
        // run_backward seeds its roots with ones: the root ⟨out, grad⟩ gives out's vector-Jacobian
        // product with `grad`.
        let root = graph.out.reshape([-1]).dot(&grad.tensor.reshape([-1]));
        let inputs: Vec<&tch::Tensor> = wanted.iter().map(|&i| &graph.leaves[i]).collect();
        let computed = tch::Tensor::run_backward(&[root], &inputs, false, false);
        for (&i, g) in wanted.iter().zip(computed) {
            if let Some(node) = &ops.parents[i] {
                grads.register::<Inner>(node.id, TchTensor::new(g));
            }
        }
    }
}
