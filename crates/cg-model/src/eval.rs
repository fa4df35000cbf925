//! Evaluation with hard gates: accuracy, executed MACs and per-block gate statistics (open rate,
//! mean CIR, routing share and open rate per class), the predictor's agreement with the CIR gate
//! (gates with a predictor, which then decide), and the wall-clock comparison of dense and sparse
//! inference on one fixed batch ([`measure_savings`]).

use std::time::Instant;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use cg_core::BlockGateStats;

use crate::data::{Batcher, Dataset};
use crate::model::{CgResNet, GateCtx};
use crate::predictor::Agreement;
use crate::prepared::{Prepared, host_f32, to_tensor};

/// Result of one evaluation with hard gates.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub accuracy: f64,
    pub macs_nominal: f64,
    pub macs_actual: f64,
    pub gates: Vec<BlockGateStats>,
    pub img_per_s: f64,
    /// Share of (block, input) decisions where the predictor and the CIR gate agree (gates with a
    /// predictor only).
    pub predictor_agreement: Option<f64>,
}

/// Gate decisions counted over an evaluation: per gated block, the samples it opened for (in all
/// and per class label), and its summed CIR.
struct GateCounts {
    open: Vec<usize>,
    class_open: Vec<Vec<usize>>,
    class_n: Vec<usize>,
    cir_sum: Vec<f64>,
}

impl GateCounts {
    fn new(blocks: usize, classes: usize) -> Self {
        Self {
            open: vec![0; blocks],
            class_open: vec![vec![0; classes]; blocks],
            class_n: vec![0; classes],
            cir_sum: vec![0.0; blocks],
        }
    }

    /// Adds one batch: its labels, each block's applied gate values (one per sample, read to the
    /// host) and CIRs.
    fn add<B: Backend>(&mut self, labels: &[i32], gate_rows: &[Vec<f32>], cirs: Vec<Tensor<B, 1>>) {
        let class = |l: &i32| usize::try_from(*l).unwrap_or(0);
        for l in labels {
            let c = class(l);
            if c >= self.class_n.len() {
                self.class_n.resize(c + 1, 0);
                for row in &mut self.class_open {
                    row.resize(c + 1, 0);
                }
            }
            self.class_n[c] += 1;
        }
        for (k, c) in cirs.into_iter().enumerate() {
            self.cir_sum[k] += host_f32(c).iter().map(|v| f64::from(*v)).sum::<f64>();
        }
        for (k, row) in gate_rows.iter().enumerate() {
            self.open[k] += row.iter().filter(|g| **g > 0.5).count();
            for (g, l) in row.iter().zip(labels) {
                if *g > 0.5 {
                    self.class_open[k][class(l)] += 1;
                }
            }
        }
    }

    /// The open rate of every block over `n` samples.
    fn open_rates(&self, n: f64) -> Vec<f64> {
        self.open.iter().map(|o| *o as f64 / n).collect()
    }

    /// The statistics of the gated blocks (`blocks`: their indices in the full block list) over `n`
    /// samples. `class_open_rates` is set
    /// only when every class has at least one sample (a rate per class, index = label; JSON has
    /// no NaN for a class without one).
    fn stats(&self, blocks: &[usize], n: f64) -> Vec<BlockGateStats> {
        let open_rate = self.open_rates(n);
        let every_class = self.class_n.iter().all(|c| *c > 0);
        blocks
            .iter()
            .enumerate()
            .map(|(k, b)| BlockGateStats {
                block_idx: *b,
                gate_open_rate: open_rate[k],
                mean_cir: self.cir_sum[k] / n,
                routing_share: Some(cg_core::routing_share_of(open_rate[k])),
                class_open_rates: every_class.then(|| {
                    self.class_open[k]
                        .iter()
                        .zip(&self.class_n)
                        .map(|(o, c)| *o as f64 / *c as f64)
                        .collect()
                }),
            })
            .collect()
    }
}

/// Evaluates on a data set with hard gates (σ(z) ≥ p_threshold), dense path. The gate statistics
/// are over `data`'s samples; classes are the data set's (`data.classes`).
pub fn evaluate<B: Backend>(
    model: &CgResNet<B>,
    prep: &Prepared,
    data: &Dataset,
    batch_size: usize,
    device: &B::Device,
) -> Evaluation {
    let batcher = Batcher {
        data,
        norm: &prep.norm,
        augment: false,
    };
    let ctx = GateCtx::Eval {
        p_threshold: prep.config.gate.p_threshold,
    };
    let gated = prep.macs.gated_indices();
    let mut correct = 0usize;
    let mut counts = GateCounts::new(gated.len(), data.classes);
    let mut agreement = Agreement::default();
    let start = Instant::now();
    let all: Vec<usize> = (0..data.len()).collect();
    for idx in all.chunks(batch_size.max(1)) {
        let mut batch = batcher.batch(idx, None);
        let x = to_tensor::<B>(&mut batch, device);
        let out = model.forward(x, &ctx);
        let pred: Vec<i64> = out.logits.argmax(1).into_data().iter::<i64>().collect();
        correct += pred
            .iter()
            .zip(&batch.labels)
            .filter(|(p, l)| **p == i64::from(**l))
            .count();
        // Read once: the counts and the predictor's agreement both use the applied decisions.
        let gate_rows: Vec<Vec<f32>> = out.gates.into_iter().map(host_f32).collect();
        counts.add(&batch.labels, &gate_rows, out.cirs);
        agreement.add(&gate_rows, out.predictions);
    }
    let secs = start.elapsed().as_secs_f64();
    let n = data.len().max(1) as f64;
    let open_rate = counts.open_rates(n);
    Evaluation {
        accuracy: correct as f64 / n,
        macs_nominal: prep.macs.mean_executed_nominal(&open_rate),
        macs_actual: prep
            .macs
            .mean_executed_actual(&open_rate, prep.config.gate.mode),
        gates: counts.stats(&gated, n),
        img_per_s: n / secs.max(1e-9),
        predictor_agreement: agreement.share(),
    }
}

/// Images timed by [`measure_savings`] (fewer when the data set is smaller).
pub const MEASURE_BATCH: usize = 256;
/// Timings of each path in [`measure_savings`], after one warm-up; the median is kept.
pub const MEASURE_TIMINGS: usize = 5;

/// Wall-clock of dense and sparse inference of the same weights on one fixed batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Median seconds of the backbone with every block executed and no gates.
    pub dense_secs: f64,
    /// Median seconds of real skipping ([`CgResNet::forward_sparse`]).
    pub sparse_secs: f64,
    /// Images in the batch.
    pub images: usize,
}

impl Measured {
    /// `1 − t_sparse / t_dense`.
    pub fn savings(&self) -> f64 {
        1.0 - self.sparse_secs / self.dense_secs.max(1e-12)
    }

    /// Images per second of sparse inference.
    pub fn sparse_img_per_s(&self) -> f64 {
        self.images as f64 / self.sparse_secs.max(1e-12)
    }
}

/// Times dense inference of the backbone (every block, no gates) against sparse inference of the
/// same weights, on the first [`MEASURE_BATCH`] images of `data` as one batch: one warm-up each,
/// then the median of [`MEASURE_TIMINGS`] timings each. Needs gates that decide without F(x)
/// (`ctrl`, or a predictor).
pub fn measure_savings<B: Backend>(
    model: &CgResNet<B>,
    prep: &Prepared,
    data: &Dataset,
    device: &B::Device,
) -> Measured {
    let batcher = Batcher {
        data,
        norm: &prep.norm,
        augment: false,
    };
    let idx: Vec<usize> = (0..data.len().min(MEASURE_BATCH)).collect();
    let x = to_tensor::<B>(&mut batcher.batch(&idx, None), device);
    let backbone = model.clone().without_gates();
    let p = prep.config.gate.p_threshold;
    let dense_secs = median_secs(|| {
        host_f32(backbone.forward(x.clone(), &GateCtx::Open).logits);
    });
    let sparse_secs = median_secs(|| {
        host_f32(model.forward_sparse(x.clone(), p).0);
    });
    Measured {
        dense_secs,
        sparse_secs,
        images: idx.len(),
    }
}

/// The median of [`MEASURE_TIMINGS`] timings of `f` after one untimed call.
fn median_secs(mut f: impl FnMut()) -> f64 {
    f();
    let mut secs: Vec<f64> = (0..MEASURE_TIMINGS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    secs.sort_by(f64::total_cmp);
    secs[secs.len() / 2]
}
