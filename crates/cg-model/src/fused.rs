//! LibTorch's own kernels for the activation-sized work of a block: conv → BatchNorm (→ ReLU) chains
//! (the stem, every residual branch, the projections), the block output `relu(short + g·f)` and the
//! CIR. Built from burn's primitives, one BatchNorm is ~6 elementwise passes forward and ~10 backward,
//! a ReLU's backward is 3, and burn-tch computes a convolution's weight gradient as a generic
//! convolution; PyTorch runs fused native BatchNorm, `threshold_backward` and `convolution_backward`.
//! So on `Autodiff<LibTorch>` each of these is one burn autodiff node whose forward records a torch
//! autograd graph and whose backward runs it. Inference (`LibTorch`) keeps burn's ops: torch's
//! inference kernels measured 4–13% slower there.
//!
//! The semantics are those of the generic code in [`crate::model`] (BatchNorm: batch statistics,
//! running statistics updated with momentum 0.1 and unbiased variance, ε = 1e-5). Other backends, a
//! convolution with a bias or asymmetric padding, or `CG_LIBTORCH_FUSED=0` take the generic path.

use std::any::{Any, TypeId};
use std::cell::Cell;
use std::sync::{Arc, LazyLock, Mutex};

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::libtorch::TchTensor;
use burn::backend::{Autodiff, LibTorch};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::backend::{Backend, BackendTypes};
use burn::tensor::{Tensor, TensorPrimitive};

use crate::norm::{BN_EPSILON, BN_MOMENTUM, Stage};

type Inner = LibTorch<f32>;
type Ad = Autodiff<Inner>;
type AdPrimitive = <Ad as BackendTypes>::FloatTensorPrimitive;

static ENV_ENABLED: LazyLock<bool> =
    LazyLock::new(|| std::env::var("CG_LIBTORCH_FUSED").map_or(true, |v| v != "0"));

thread_local! {
    static ENABLED: Cell<Option<bool>> = const { Cell::new(None) };
    static RUN: Cell<u64> = const { Cell::new(0) };
}

/// How many fused nodes this thread has run (tests check the path was taken).
pub fn nodes_run() -> u64 {
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

/// Whether `B` is `Autodiff<LibTorch>` and the fused path is on.
fn active<B: Backend>() -> bool {
    enabled() && TypeId::of::<B>() == TypeId::of::<Ad>()
}

/// The torch tensor behind an `Ad` tensor (the same storage).
fn torch_of<B: Backend, const D: usize>(t: Tensor<B, D>) -> tch::Tensor {
    prim(t).primitive.tensor
}

/// A torch tensor as an `Ad` leaf that burn tracks no gradient for.
fn from_torch<B: Backend, const D: usize>(t: tch::Tensor) -> Tensor<B, D> {
    let p: AdPrimitive = AdPrimitive::new(TchTensor::new(t));
    Tensor::from_primitive(TensorPrimitive::Float(cast(p)))
}

fn prim<B: Backend, const D: usize>(t: Tensor<B, D>) -> AdPrimitive {
    cast(t.into_primitive().tensor())
}

/// `f` on the torch tensors behind `inputs`, as one node of burn's graph whose backward is torch's.
fn run<B: Backend, const N: usize, const D: usize>(
    inputs: [AdPrimitive; N],
    f: impl FnOnce(&[tch::Tensor]) -> tch::Tensor,
) -> Tensor<B, D> {
    let out = torch_node(inputs, f);
    RUN.set(RUN.get() + 1);
    Tensor::from_primitive(TensorPrimitive::Float(cast(out)))
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

/// conv → BN (→ ReLU) stages on torch's kernels, or `Err(x)` back where there is no such path.
pub fn chain<B: Backend>(
    x: Tensor<B, 4>,
    stages: &[Stage<'_, B>],
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    let geo: Option<Vec<Geometry>> = stages.iter().map(|s| geometry(s.conv)).collect();
    let (true, Some(geo), 1..=2) = (active::<B>(), geo, stages.len()) else {
        return Err(x);
    };
    // Copies of the running statistics, which torch updates in place.
    let stats: Vec<(tch::Tensor, tch::Tensor)> = stages
        .iter()
        .map(|s| {
            let (m, v) = (&s.bn.running_mean, &s.bn.running_var);
            (
                torch_of(m.value_sync()).copy(),
                torch_of(v.value_sync()).copy(),
            )
        })
        .collect();
    let forward = |t: &[tch::Tensor]| {
        let mut h = t[0].shallow_clone();
        for (i, (s, g)) in stages.iter().zip(&geo).enumerate() {
            let (w, gamma, beta) = (&t[1 + 3 * i], &t[2 + 3 * i], &t[3 + 3 * i]);
            h = h
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
                    Some(&stats[i].0),
                    Some(&stats[i].1),
                    true,
                    BN_MOMENTUM,
                    BN_EPSILON,
                    true,
                );
            if s.relu {
                h = h.relu();
            }
        }
        h
    };
    let mut inputs = vec![prim(x)];
    for s in stages {
        inputs.push(prim(s.conv.weight.val()));
        inputs.push(prim(s.bn.gamma.val()));
        inputs.push(prim(s.bn.beta.val()));
    }
    let inputs = inputs.into_iter();
    let y = if stages.len() == 1 {
        run::<B, 4, 4>(array(inputs), forward)
    } else {
        run::<B, 7, 4>(array(inputs), forward)
    };
    for (s, (m, v)) in stages.iter().zip(stats) {
        s.bn.running_mean.update(from_torch(m));
        s.bn.running_var.update(from_torch(v));
    }
    Ok(y)
}

fn array<T, const N: usize>(mut it: impl Iterator<Item = T>) -> [T; N] {
    std::array::from_fn(|_| it.next().expect("as many inputs as the chain has"))
}

/// A block's output `relu(short + g·f)` (`g` per sample) or `relu(short + f)`.
pub fn residual<B: Backend>(
    short: Tensor<B, 4>,
    f: Tensor<B, 4>,
    g: Option<Tensor<B, 1>>,
) -> Result<Tensor<B, 4>, (Tensor<B, 4>, Tensor<B, 4>, Option<Tensor<B, 1>>)> {
    if !active::<B>() {
        return Err((short, f, g));
    }
    Ok(match g {
        None => run::<B, 2, 4>([prim(short), prim(f)], |t| (&t[0] + &t[1]).relu()),
        Some(g) => run::<B, 3, 4>([prim(short), prim(f), prim(g)], |t| {
            (&t[0] + &t[1] * t[2].reshape([-1, 1, 1, 1])).relu()
        }),
    })
}

/// `1 − cos(a, b)` per sample, as [`crate::model::cosine_incompatibility`] computes it.
pub fn cosine_incompatibility<B: Backend>(
    a: &Tensor<B, 4>,
    b: &Tensor<B, 4>,
) -> Option<Tensor<B, 1>> {
    if !active::<B>() {
        return None;
    }
    Some(run::<B, 2, 1>([prim(a.clone()), prim(b.clone())], |t| {
        let (a, b) = (t[0].flatten(1, -1), t[1].flatten(1, -1));
        let dot = (&a * &b).sum_dim_intlist([1i64].as_slice(), false, None::<tch::Kind>);
        let norms = a.norm_scalaropt_dim(2, [1i64], false) * b.norm_scalaropt_dim(2, [1i64], false);
        (dot / (norms + 1e-6)).neg() + 1.0
    }))
}

/// A node of burn's graph running `f` under torch autograd; its backward runs torch's graph.
fn torch_node<const N: usize>(
    inputs: [AdPrimitive; N],
    f: impl FnOnce(&[tch::Tensor]) -> tch::Tensor,
) -> AdPrimitive {
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
    let out = tch::with_grad(|| f(&leaves));
    let output = TchTensor::new(out.detach());
    let nodes: [_; N] = std::array::from_fn(|i| inputs[i].node.clone());
    match TorchGraph
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
    }
}

/// The burn node of a fused op; its state is the torch graph, run once by the backward pass.
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
