//! CIFAR-style ResNets of depth 6n+2 and their CosineGate variant.
//!
//! One module serves both: a plain ResNet is a [`CgResNet`] whose blocks carry no gate. A gated block
//! computes `y = relu(s(x) + g·F(x))` where `s` is the shortcut, `F` the residual branch and `g` a
//! per-sample gate from the Cosine Incompatibility Ratio `CIR = 1 − cos(s(x), F(x))` and/or a small
//! controller on the pooled input (see `METHOD.md`). This module does no IO and holds no randomness:
//! Gumbel noise comes in from the caller so that training is reproducible from a seed.
//!
//! With `gate.predictor` (CIR modes), each gate also carries a predictor with the controller's shape
//! on the same pooled input: during training it is fed the detached input and its logit is returned
//! beside the CIR gate's hard decision (its target, [`Prediction`]); at inference (`GateCtx::Eval`
//! and [`CgResNet::forward_sparse_with`]) it alone decides, open iff σ(pred) ≥ p_threshold, and the
//! CIR gate's decision is still computed on the dense path so that the two can be compared.
//! Blocks of `model.removed_blocks` are not built ([`NetSpec::blocks`]).

use burn::module::{Initializer, Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::backend::Backend;
use burn::tensor::{IndexingUpdateOp, Int, Tensor, TensorData};
use cg_core::{GateMode, GateSpec, ModelKind, ModelSpec, Shortcut};

use crate::macs::{BlockShape, PREDICTOR_HIDDEN, block_shapes};
pub use crate::norm::{BatchNorm, Stage};

/// Everything needed to build a network: the model and gate sections of a run file and the input shape.
#[derive(Debug, Clone)]
pub struct NetSpec {
    pub model: ModelSpec,
    pub gate: GateSpec,
    pub in_channels: usize,
    pub side: usize,
}

impl NetSpec {
    pub fn blocks(&self) -> Vec<BlockShape> {
        block_shapes(&self.model, self.side, self.gate.gate_downsample)
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> CgResNet<B> {
        let w = self.model.width;
        let stem_conv = conv3x3(self.in_channels, w, 1).init(device);
        let stem_bn = BatchNorm::new(w, device);
        let blocks = self
            .blocks()
            .into_iter()
            .map(|shape| BasicBlock::new(shape, &self.model, &self.gate, device))
            .collect();
        let fc = LinearConfig::new(4 * w, self.model.num_classes).init(device);
        CgResNet {
            stem_conv,
            stem_bn,
            blocks,
            fc,
        }
    }
}

fn conv3x3(cin: usize, cout: usize, stride: usize) -> Conv2dConfig {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .with_initializer(Initializer::KaimingNormal {
            gain: std::f64::consts::SQRT_2,
            fan_out_only: true,
        })
}

/// Runs conv → BN (→ ReLU) stages in order; on LibTorch as torch's own fused kernels (`fused`).
pub fn conv_bn<B: Backend>(x: Tensor<B, 4>, stages: &[Stage<'_, B>]) -> Tensor<B, 4> {
    #[cfg(feature = "libtorch")]
    let x = match crate::fused::chain(x, stages) {
        Ok(y) => return y,
        Err(x) => x,
    };
    stages.iter().fold(x, |h, s| {
        let y = s.bn.forward(s.conv.forward(h));
        if s.relu { relu(y) } else { y }
    })
}

/// A block's output: `relu(short + g·f)` with a per-sample gate `g` [batch], or `relu(short + f)`.
pub fn residual<B: Backend>(
    short: Tensor<B, 4>,
    f: Tensor<B, 4>,
    g: Option<Tensor<B, 1>>,
) -> Tensor<B, 4> {
    #[cfg(feature = "libtorch")]
    let (short, f, g) = match crate::fused::residual(short, f, g) {
        Ok(y) => return y,
        Err(inputs) => inputs,
    };
    match g {
        None => relu(short + f),
        Some(g) => {
            let [b, _, _, _] = f.dims();
            relu(short + f * g.reshape([b, 1, 1, 1]))
        }
    }
}

/// How gates decide in one forward pass.
#[derive(Debug, Clone)]
pub enum GateCtx<B: Backend> {
    /// Training: binary-concrete relaxation. `noise` holds logistic noise `log u − log(1−u)`, one row of
    /// `[batch]` per gated block (shape `[n_gated, batch]`).
    Train {
        tau: f64,
        hard: bool,
        noise: Tensor<B, 2>,
    },
    /// Inference: open iff σ(z) ≥ p_threshold (σ(pred) ≥ p_threshold for a gate with a predictor).
    Eval { p_threshold: f64 },
    /// Every gate open (g = 1).
    Open,
}

/// The CosineGate head of one block.
#[derive(Module, Debug)]
pub struct Gate<B: Backend> {
    /// Controller `W2·ReLU(W1·GAP(x) + b1) + b2` (modes `cir+ctrl` and `ctrl`).
    pub ctrl_in: Option<Linear<B>>,
    pub ctrl_out: Option<Linear<B>>,
    /// Learned bias instead of the controller (mode `cir`).
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// Predictor `P2·ReLU(P1·GAP(x) + c1) + c2` of the CIR decision (`gate.predictor`).
    pub pred_in: Option<Linear<B>>,
    pub pred_out: Option<Linear<B>>,
    #[module(skip)]
    pub mode: GateMode,
    pub threshold: f64,
    pub cir_scale: f64,
    /// `gate.p_threshold`: the hard decision (and the predictor's target) is σ(z) ≥ p_threshold.
    pub p_threshold: f64,
}

/// GAP then a two-layer MLP to one logit. Shapes: x [batch, channels, h, w] -> [batch].
fn pooled_mlp<B: Backend>(
    x: &Tensor<B, 4>,
    lin_in: &Linear<B>,
    lin_out: &Linear<B>,
) -> Tensor<B, 1> {
    let [batch, channels, _, _] = x.dims();
    let pooled = x.clone().mean_dims(&[2, 3]).reshape([batch, channels]);
    lin_out
        .forward(relu(lin_in.forward(pooled)))
        .reshape([batch])
}

/// A predictor's logit and what it is compared with: the CIR gate's hard decision on the same
/// input (1 or 0, detached). Each [batch].
#[derive(Debug, Clone)]
pub struct Prediction<B: Backend> {
    pub logit: Tensor<B, 1>,
    pub cir_open: Tensor<B, 1>,
}

impl<B: Backend> Gate<B> {
    fn new(channels: usize, spec: &GateSpec, device: &B::Device) -> Self {
        let (ctrl_in, ctrl_out, bias) = if spec.mode.has_controller() {
            let ctrl_in = LinearConfig::new(channels, spec.controller_hidden).init(device);
            let mut ctrl_out = LinearConfig::new(spec.controller_hidden, 1)
                .with_initializer(Initializer::Zeros)
                .init(device);
            ctrl_out.bias = Some(Param::from_tensor(Tensor::full(
                [1],
                spec.controller_bias_init,
                device,
            )));
            (Some(ctrl_in), Some(ctrl_out), None)
        } else {
            (
                None,
                None,
                Some(Param::from_tensor(Tensor::full(
                    [1],
                    spec.controller_bias_init,
                    device,
                ))),
            )
        };
        let (pred_in, pred_out) = if spec.predictor {
            (
                Some(LinearConfig::new(channels, PREDICTOR_HIDDEN).init(device)),
                Some(LinearConfig::new(PREDICTOR_HIDDEN, 1).init(device)),
            )
        } else {
            (None, None)
        };
        Self {
            ctrl_in,
            ctrl_out,
            bias,
            pred_in,
            pred_out,
            mode: spec.mode,
            threshold: spec.threshold,
            cir_scale: spec.cir_scale,
            p_threshold: spec.p_threshold,
        }
    }

    /// Controller output from the block input. Shapes: x [batch, channels, h, w] -> [batch].
    fn controller(&self, x: &Tensor<B, 4>) -> Option<Tensor<B, 1>> {
        Some(pooled_mlp(
            x,
            self.ctrl_in.as_ref()?,
            self.ctrl_out.as_ref()?,
        ))
    }

    /// The predictor's logit from the block input, when the gate has one. Shapes as the controller.
    pub fn predictor(&self, x: &Tensor<B, 4>) -> Option<Tensor<B, 1>> {
        Some(pooled_mlp(
            x,
            self.pred_in.as_ref()?,
            self.pred_out.as_ref()?,
        ))
    }

    /// Whether the gate decides without F(x) at inference (mode `ctrl`, or a predictor).
    pub fn decides_without_branch(&self) -> bool {
        !self.mode.needs_branch() || self.pred_in.is_some()
    }

    /// The logit that decides at inference, from the block input: the predictor's when there is
    /// one, else the controller's (mode `ctrl`). Shapes: x [batch, c, h, w] -> [batch].
    pub fn inference_logit(&self, x: &Tensor<B, 4>) -> Tensor<B, 1> {
        self.predictor(x).unwrap_or_else(|| {
            assert!(
                !self.mode.needs_branch(),
                "sparse inference needs gate mode `ctrl` or a predictor"
            );
            self.logit(x, None)
        })
    }

    /// The hard decision 1[σ(z) ≥ p_threshold] as 1.0 or 0.0. Shapes [batch] -> [batch].
    fn hard(&self, z: Tensor<B, 1>, p_threshold: f64) -> Tensor<B, 1> {
        sigmoid(z).greater_equal_elem(p_threshold).float()
    }

    /// Gate logit z. `cir` is needed in the CIR modes. Shapes: x [batch, c, h, w], cir [batch] -> [batch].
    pub fn logit(&self, x: &Tensor<B, 4>, cir: Option<&Tensor<B, 1>>) -> Tensor<B, 1> {
        let from_cir = || {
            cir.expect("CIR modes need F(x)")
                .clone()
                .sub_scalar(self.threshold)
                .mul_scalar(self.cir_scale)
        };
        match self.mode {
            GateMode::CirCtrl => from_cir() + self.controller(x).expect("controller present"),
            GateMode::Cir => {
                let bias = self.bias.as_ref().expect("bias present").val();
                from_cir() + bias.expand([x.dims()[0]])
            }
            GateMode::Ctrl => self.controller(x).expect("controller present"),
        }
    }
}

/// `1 − cos(a, b)` per sample over the flattened maps, ε = 1e-6 in the denominator.
/// Shapes: a, b [batch, c, h, w] -> [batch].
pub fn cosine_incompatibility<B: Backend>(a: &Tensor<B, 4>, b: &Tensor<B, 4>) -> Tensor<B, 1> {
    #[cfg(feature = "libtorch")]
    if let Some(cir) = crate::fused::cosine_incompatibility(a, b) {
        return cir;
    }
    let batch = a.dims()[0];
    let a: Tensor<B, 2> = a.clone().flatten(1, 3);
    let b: Tensor<B, 2> = b.clone().flatten(1, 3);
    let dot = (a.clone() * b.clone()).sum_dim(1);
    let na = a.square().sum_dim(1).sqrt();
    let nb = b.square().sum_dim(1).sqrt();
    let cos = dot / (na * nb).add_scalar(1e-6);
    cos.neg().add_scalar(1.0).reshape([batch])
}

/// Samples the relaxed gate. `noise` is logistic noise; shapes [batch] -> [batch].
pub fn relaxed_gate<B: Backend>(
    z: Tensor<B, 1>,
    noise: Tensor<B, 1>,
    tau: f64,
    hard: bool,
) -> Tensor<B, 1> {
    let soft = sigmoid((z + noise).div_scalar(tau));
    if hard {
        // Straight-through: forward 1[g̃ > 0.5], backward through g̃.
        let hard = soft.clone().greater_elem(0.5).float();
        soft.clone() + (hard - soft).detach()
    } else {
        soft
    }
}

/// `x[:, :, ::st, ::st]` as reshape + narrow, padding odd sides with zeros: a stepped slice's backward
/// fails on LibTorch (burn-tch views a non-contiguous tensor). Shapes: [b, c, h, w] ->
/// [b, c, ⌈h/st⌉, ⌈w/st⌉].
fn subsample<B: Backend>(x: Tensor<B, 4>, st: usize) -> Tensor<B, 4> {
    let [b, c, h, w] = x.dims();
    let (oh, ow) = (h.div_ceil(st), w.div_ceil(st));
    let device = x.device();
    let x = if oh * st > h {
        Tensor::cat(vec![x, Tensor::zeros([b, c, oh * st - h, w], &device)], 2)
    } else {
        x
    };
    let x = if ow * st > w {
        Tensor::cat(
            vec![x, Tensor::zeros([b, c, oh * st, ow * st - w], &device)],
            3,
        )
    } else {
        x
    };
    let x: Tensor<B, 6> = x.reshape([b, c, oh, st, ow, st]);
    x.narrow(3, 0, 1).narrow(5, 0, 1).reshape([b, c, oh, ow])
}

/// 1×1 convolution + batch norm (shortcut option B).
#[derive(Module, Debug)]
pub struct Projection<B: Backend> {
    pub conv: Conv2d<B>,
    pub bn: BatchNorm<B>,
}

#[derive(Module, Debug)]
pub struct BasicBlock<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: BatchNorm<B>,
    pub conv2: Conv2d<B>,
    pub bn2: BatchNorm<B>,
    pub projection: Option<Projection<B>>,
    pub gate: Option<Gate<B>>,
    pub stride: usize,
    pub in_channels: usize,
    pub out_channels: usize,
}

/// What one block produced.
#[derive(Debug)]
pub struct BlockOut<B: Backend> {
    pub y: Tensor<B, 4>,
    /// The gate applied to each sample (gated blocks only). Shape [batch].
    pub gate: Option<Tensor<B, 1>>,
    /// CIR of each sample, where computed. Shape [batch].
    pub cir: Option<Tensor<B, 1>>,
    /// The predictor's logit and its target, for a gate with a predictor (training and `Eval`).
    pub prediction: Option<Prediction<B>>,
}

impl<B: Backend> BasicBlock<B> {
    fn new(shape: BlockShape, model: &ModelSpec, gate: &GateSpec, device: &B::Device) -> Self {
        let (cin, cout, stride) = (shape.in_channels, shape.out_channels, shape.stride);
        let projection =
            (shape.downsamples() && model.shortcut == Shortcut::B).then(|| Projection {
                conv: Conv2dConfig::new([cin, cout], [1, 1])
                    .with_stride([stride, stride])
                    .with_bias(false)
                    .init(device),
                bn: BatchNorm::new(cout, device),
            });
        Self {
            conv1: conv3x3(cin, cout, stride).init(device),
            bn1: BatchNorm::new(cout, device),
            conv2: conv3x3(cout, cout, 1).init(device),
            bn2: BatchNorm::new(cout, device),
            projection,
            gate: (shape.gated && model.kind == ModelKind::Cosinegate)
                .then(|| Gate::new(cout, gate, device)),
            stride,
            in_channels: cin,
            out_channels: cout,
        }
    }

    /// Shapes: x [batch, in_channels, h, w] -> [batch, out_channels, h/stride, w/stride].
    pub fn shortcut(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        if let Some(p) = &self.projection {
            return conv_bn(
                x,
                &[Stage {
                    conv: &p.conv,
                    bn: &p.bn,
                    relu: false,
                }],
            );
        }
        let x = if self.stride > 1 {
            subsample(x, self.stride)
        } else {
            x
        };
        if self.out_channels == self.in_channels {
            return x;
        }
        // Option A: zero-pad the channels equally on both sides.
        let [b, c, h, w] = x.dims();
        let extra = self.out_channels - c;
        let before = extra / 2;
        let after = extra - before;
        let device = x.device();
        Tensor::cat(
            vec![
                Tensor::zeros([b, before, h, w], &device),
                x,
                Tensor::zeros([b, after, h, w], &device),
            ],
            1,
        )
    }

    /// The residual branch F(x) = BN(conv(ReLU(BN(conv(x))))).
    pub fn branch(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        conv_bn(
            x,
            &[
                Stage {
                    conv: &self.conv1,
                    bn: &self.bn1,
                    relu: true,
                },
                Stage {
                    conv: &self.conv2,
                    bn: &self.bn2,
                    relu: false,
                },
            ],
        )
    }

    /// `noise`: this block's logistic noise row when training. Shapes: x [batch, c, h, w].
    pub fn forward(
        &self,
        x: Tensor<B, 4>,
        ctx: &GateCtx<B>,
        noise: Option<Tensor<B, 1>>,
    ) -> BlockOut<B> {
        let short = self.shortcut(x.clone());
        let f = self.branch(x);
        let Some(gate) = &self.gate else {
            return BlockOut {
                y: residual(short, f, None),
                gate: None,
                cir: None,
                prediction: None,
            };
        };
        let cir = cosine_incompatibility(&short, &f);
        let (g, prediction) = match ctx {
            GateCtx::Open => (Tensor::ones([f.dims()[0]], &f.device()), None),
            GateCtx::Eval { p_threshold } => {
                let cir_open = gate.hard(gate.logit(&short, Some(&cir)), *p_threshold);
                match gate.predictor(&short) {
                    Some(logit) => (
                        gate.hard(logit.clone(), *p_threshold),
                        Some(Prediction { logit, cir_open }),
                    ),
                    None => (cir_open, None),
                }
            }
            GateCtx::Train { tau, hard, .. } => {
                let z = gate.logit(&short, Some(&cir));
                // The predictor imitates the gate on a detached input: it does not shape the
                // backbone, and its target is the gate's hard decision, detached.
                let prediction = gate
                    .predictor(&short.clone().detach())
                    .map(|logit| Prediction {
                        logit,
                        cir_open: gate.hard(z.clone().detach(), gate.p_threshold),
                    });
                let noise = noise.expect("training noise for a gated block");
                (relaxed_gate(z, noise, *tau, *hard), prediction)
            }
        };
        BlockOut {
            y: residual(short, f, Some(g.clone())),
            gate: Some(g),
            cir: Some(cir),
            prediction,
        }
    }
}

/// A CIFAR ResNet, gated or not.
#[derive(Module, Debug)]
pub struct CgResNet<B: Backend> {
    pub stem_conv: Conv2d<B>,
    pub stem_bn: BatchNorm<B>,
    pub blocks: Vec<BasicBlock<B>>,
    pub fc: Linear<B>,
}

/// Output of a forward pass.
#[derive(Debug)]
pub struct NetOut<B: Backend> {
    /// Shape [batch, classes].
    pub logits: Tensor<B, 2>,
    /// Gate values of the gated blocks, in order; each [batch].
    pub gates: Vec<Tensor<B, 1>>,
    /// CIR of the gated blocks, in order; each [batch].
    pub cirs: Vec<Tensor<B, 1>>,
    /// The predictors' logits and targets of the gated blocks, in order (gates with a predictor,
    /// training and `Eval` only).
    pub predictions: Vec<Prediction<B>>,
}

impl<B: Backend> CgResNet<B> {
    pub fn n_gated(&self) -> usize {
        self.blocks.iter().filter(|b| b.gate.is_some()).count()
    }

    fn stem(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        conv_bn(
            x,
            &[Stage {
                conv: &self.stem_conv,
                bn: &self.stem_bn,
                relu: true,
            }],
        )
    }

    fn head(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let [b, c, _, _] = x.dims();
        self.fc.forward(x.mean_dims(&[2, 3]).reshape([b, c]))
    }

    /// Dense forward: every branch is computed and multiplied by its gate.
    /// Shapes: x [batch, in_channels, side, side] -> logits [batch, classes].
    pub fn forward(&self, x: Tensor<B, 4>, ctx: &GateCtx<B>) -> NetOut<B> {
        let mut h = self.stem(x);
        let mut gates = Vec::new();
        let mut cirs = Vec::new();
        let mut predictions = Vec::new();
        let mut k = 0;
        for block in &self.blocks {
            let noise = match (ctx, &block.gate) {
                (GateCtx::Train { noise, .. }, Some(_)) => {
                    let batch = noise.dims()[1];
                    Some(noise.clone().narrow(0, k, 1).reshape([batch]))
                }
                _ => None,
            };
            let out = block.forward(h, ctx, noise);
            h = out.y;
            if let Some(g) = out.gate {
                gates.push(g);
                k += 1;
            }
            if let Some(c) = out.cir {
                cirs.push(c);
            }
            predictions.extend(out.prediction);
        }
        NetOut {
            logits: self.head(h),
            gates,
            cirs,
            predictions,
        }
    }

    /// Inference that really skips: for each gated block, only the samples whose gate is open go through
    /// the branch (gather, run, scatter back). Needs a decision that does not depend on F(x): mode
    /// `ctrl`, or a gate with a predictor (which then alone decides). Returns the logits and, per gated
    /// block, which samples executed it.
    pub fn forward_sparse(
        &self,
        x: Tensor<B, 4>,
        p_threshold: f64,
    ) -> (Tensor<B, 2>, Vec<Vec<bool>>) {
        self.forward_sparse_with(x, &mut |_, probs| {
            probs.iter().map(|p| f64::from(*p) >= p_threshold).collect()
        })
    }

    /// [`CgResNet::forward_sparse`] with the decision made by `decide(gated_block_k, gate_probabilities)`.
    pub fn forward_sparse_with(
        &self,
        x: Tensor<B, 4>,
        decide: &mut dyn FnMut(usize, &[f32]) -> Vec<bool>,
    ) -> (Tensor<B, 2>, Vec<Vec<bool>>) {
        let mut h = self.stem(x);
        let mut open_masks = Vec::new();
        for block in &self.blocks {
            let Some(gate) = &block.gate else {
                h = block.forward(h, &GateCtx::Open, None).y;
                continue;
            };
            let short = block.shortcut(h.clone());
            let probs: Vec<f32> = sigmoid(gate.inference_logit(&short))
                .into_data()
                .iter::<f32>()
                .collect();
            let open = decide(open_masks.len(), &probs);
            let idx: Vec<i32> = open
                .iter()
                .enumerate()
                .filter(|(_, o)| **o)
                .map(|(i, _)| i as i32)
                .collect();
            h = if idx.is_empty() {
                relu(short)
            } else if idx.len() == open.len() {
                residual(short, block.branch(h), None)
            } else {
                let device = h.device();
                let idx = Tensor::<B, 1, Int>::from_data(
                    TensorData::new(idx.clone(), [idx.len()]),
                    &device,
                );
                let f = block.branch(h.select(0, idx.clone()));
                relu(short.select_assign(0, idx, f, IndexingUpdateOp::Add))
            };
            open_masks.push(open);
        }
        (self.head(h), open_masks)
    }

    /// The same network with every gate removed (a plain ResNet sharing the backbone weights).
    pub fn without_gates(mut self) -> Self {
        for b in &mut self.blocks {
            b.gate = None;
        }
        self
    }
}
