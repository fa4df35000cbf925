//! Batch normalisation as cg computes it ([`BatchNorm`], its constants) and one conv → BatchNorm
//! (→ ReLU) step of a chain ([`Stage`]): what the generic model code (`model`) and LibTorch's
//! fused kernels (`fused`) share, so that both compute the same thing.

use burn::module::{Module, Param, RunningState};
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// Batch normalisation over [batch, channels, h, w], computed on contiguous `[n, c, h·w]` views: burn's
/// own `BatchNorm` transposes the activations to `[c, n·h·w]`, which on the CPU backend costs a strided
/// copy of every activation twice per layer. Same parameters and semantics (running statistics with
/// momentum 0.1, unbiased running variance as in PyTorch, ε = 1e-5).
#[derive(Module, Debug)]
pub struct BatchNorm<B: Backend> {
    pub gamma: Param<Tensor<B, 1>>,
    pub beta: Param<Tensor<B, 1>>,
    pub running_mean: RunningState<Tensor<B, 1>>,
    pub running_var: RunningState<Tensor<B, 1>>,
}

/// The weight of a batch's statistics in the running ones.
pub(crate) const BN_MOMENTUM: f64 = 0.1;
/// Added to the variance before its square root.
pub(crate) const BN_EPSILON: f64 = 1e-5;

/// One conv → BatchNorm (→ ReLU) step of a [`conv_bn`](crate::model::conv_bn) chain.
pub struct Stage<'a, B: Backend> {
    pub conv: &'a Conv2d<B>,
    pub bn: &'a BatchNorm<B>,
    pub relu: bool,
}

impl<B: Backend> BatchNorm<B> {
    pub fn new(channels: usize, device: &B::Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([channels], device)),
            beta: Param::from_tensor(Tensor::zeros([channels], device)),
            running_mean: RunningState::new(Tensor::zeros([channels], device)),
            running_var: RunningState::new(Tensor::ones([channels], device)),
        }
    }

    /// Batch statistics while training (autodiff backend), running statistics otherwise.
    /// Shapes: x [batch, channels, h, w] -> same.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        let flat = x.reshape([n, c, h * w]);
        let gamma = self.gamma.val().reshape([1, c, 1]);
        let beta = self.beta.val().reshape([1, c, 1]);
        let y = if B::ad_enabled(&flat.device()) {
            let count = (n * h * w) as f64;
            let mean = flat.clone().sum_dim(2).sum_dim(0).div_scalar(count);
            let centered = flat - mean.clone();
            let var = centered
                .clone()
                .square()
                .sum_dim(2)
                .sum_dim(0)
                .div_scalar(count);
            let unbiased = count / (count - 1.0).max(1.0);
            let rm = self.running_mean.value_sync();
            let rv = self.running_var.value_sync();
            let device = rm.device();
            self.running_mean.update(
                (rm.mul_scalar(1.0 - BN_MOMENTUM)
                    + mean
                        .detach()
                        .reshape([c])
                        .to_device(&device)
                        .mul_scalar(BN_MOMENTUM))
                .detach(),
            );
            self.running_var.update(
                (rv.mul_scalar(1.0 - BN_MOMENTUM)
                    + var
                        .clone()
                        .detach()
                        .reshape([c])
                        .to_device(&device)
                        .mul_scalar(BN_MOMENTUM * unbiased))
                .detach(),
            );
            centered * (gamma / var.add_scalar(BN_EPSILON).sqrt()) + beta
        } else {
            let mean = self.running_mean.value().reshape([1, c, 1]);
            let var = self.running_var.value().reshape([1, c, 1]);
            let scale = gamma / var.add_scalar(BN_EPSILON).sqrt();
            let shift = beta - mean * scale.clone();
            flat * scale + shift
        };
        y.reshape([n, c, h, w])
    }
}
