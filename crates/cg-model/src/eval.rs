//! Evaluation with hard gates: accuracy, executed MACs and per-block gate statistics (open rate,
//! mean CIR, routing share and open rate per class), and the wall-clock comparison of dense and
//! sparse inference.

use std::time::Instant;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use cg_core::BlockGateStats;

use crate::data::{Batcher, Dataset};
use crate::model::{CgResNet, GateCtx};
use crate::prepared::{Prepared, to_tensor};

/// Result of one evaluation with hard gates.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub accuracy: f64,
    pub macs_nominal: f64,
    pub macs_actual: f64,
    pub gates: Vec<BlockGateStats>,
    pub img_per_s: f64,
}

pub(crate) fn host_f32<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
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

    /// Adds one batch: its labels, each block's gate values (one per sample) and CIRs.
    fn add<B: Backend>(
        &mut self,
        labels: &[i32],
        gates: Vec<Tensor<B, 1>>,
        cirs: Vec<Tensor<B, 1>>,
    ) {
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
        let gate_rows: Vec<Vec<f32>> = gates.into_iter().map(host_f32).collect();
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

    /// The statistics of the gated blocks `blocks` over `n` samples. `class_open_rates` is set
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
    let gated = prep.macs.gated_blocks();
    let mut correct = 0usize;
    let mut counts = GateCounts::new(gated.len(), data.classes);
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
        counts.add(&batch.labels, out.gates, out.cirs);
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
    }
}

/// Wall-clock inference of the full backbone (every block) vs real skipping (`ctrl` mode), over the
/// same images. Returns (dense img/s, sparse img/s).
pub fn measure_sparse<B: Backend>(
    model: &CgResNet<B>,
    prep: &Prepared,
    data: &Dataset,
    batch_size: usize,
    device: &B::Device,
) -> (f64, f64) {
    let batcher = Batcher {
        data,
        norm: &prep.norm,
        augment: false,
    };
    let backbone = model.clone().without_gates();
    let all: Vec<usize> = (0..data.len()).collect();
    let batches: Vec<_> = all
        .chunks(batch_size.max(1))
        .map(|idx| to_tensor::<B>(&mut batcher.batch(idx, None), device))
        .collect();
    // Warm up both paths once.
    if let Some(x) = batches.first() {
        let _ = host_f32(backbone.forward(x.clone(), &GateCtx::Open).logits);
        let _ = host_f32(
            model
                .forward_sparse(x.clone(), prep.config.gate.p_threshold)
                .0,
        );
    }
    let t = Instant::now();
    for x in &batches {
        let _ = host_f32(backbone.forward(x.clone(), &GateCtx::Open).logits);
    }
    let dense = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for x in &batches {
        let _ = host_f32(
            model
                .forward_sparse(x.clone(), prep.config.gate.p_threshold)
                .0,
        );
    }
    let sparse = t.elapsed().as_secs_f64();
    let n = data.len() as f64;
    (n / dense.max(1e-9), n / sparse.max(1e-9))
}
