//! `cg bench`: training and inference throughput on synthetic data, and the speed-up of real skipping
//! against its theoretical value `macs_full / macs_executed`, for the gates that decide without F(x)
//! ([`SparseModel`]: `ctrl` gates, or `cir+ctrl` gates with a predictor), each with a forced fraction
//! of closed samples per gated block.

use std::time::Instant;

use burn::tensor::backend::{AutodiffBackend, Backend};
use cg_core::{DatasetKind, DatasetSpec, GateMode, ModelKind, RunConfig, SyntheticSpec};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use serde::Serialize;

use crate::data::{Batcher, DataSplits, synthetic};
use crate::model::GateCtx;
use crate::prepared::{Prepared, check_config, to_tensor};
use crate::train::{Silent, TrainOptions, train_on};
use crate::{BackendKind, DeviceSpec, Result};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub batches: Vec<usize>,
    /// Timed iterations per line (after one warm-up).
    pub iters: usize,
    /// Fractions of closed gates for the sparse inference lines.
    pub closed: Vec<f64>,
    pub depth: usize,
    pub width: usize,
    pub train: bool,
    /// The gated networks whose real skipping is timed (sparse lines), in order.
    pub sparse_models: Vec<SparseModel>,
}

/// A gated network that decides without F(x), so that sparse inference really skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SparseModel {
    /// Mode `ctrl`: the controller decides (`cosinegate{depth}-ctrl`).
    Ctrl,
    /// Mode `cir+ctrl` with `gate.predictor`: the predictor decides
    /// (`cosinegate{depth}-predictor`).
    Predictor,
}

impl SparseModel {
    /// `ctrl` or `predictor`.
    pub fn as_str(self) -> &'static str {
        match self {
            SparseModel::Ctrl => "ctrl",
            SparseModel::Predictor => "predictor",
        }
    }

    /// The name [`SparseModel::as_str`] gives, else `None`.
    pub fn parse(s: &str) -> Option<Self> {
        [SparseModel::Ctrl, SparseModel::Predictor]
            .into_iter()
            .find(|m| m.as_str() == s)
    }

    /// The configuration of this network for `batch`.
    fn config(self, opts: &BenchOptions, batch: usize) -> RunConfig {
        let mode = match self {
            SparseModel::Ctrl => GateMode::Ctrl,
            SparseModel::Predictor => GateMode::CirCtrl,
        };
        let mut c = config(ModelKind::Cosinegate, mode, opts, batch);
        c.gate.predictor = self == SparseModel::Predictor;
        c
    }
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            batches: vec![128, 256],
            iters: 2,
            closed: vec![0.0, 0.25, 0.5, 0.75, 1.0],
            depth: 20,
            width: 16,
            train: true,
            sparse_models: vec![SparseModel::Ctrl],
        }
    }
}

/// One measured line.
#[derive(Debug, Clone, Serialize)]
pub struct BenchLine {
    /// `resnet20`, `cosinegate20` (`cir+ctrl`, consistency off), `cosinegate20-ctrl` or
    /// `cosinegate20-predictor`.
    pub model: String,
    /// `train`, `infer-dense` or `infer-sparse`.
    pub mode: String,
    pub batch: usize,
    pub img_per_s: f64,
    /// Sparse lines: fraction of gated blocks' samples skipped.
    pub closed: Option<f64>,
    /// Sparse lines: measured speed-up over the dense backbone.
    pub speedup: Option<f64>,
    /// Sparse lines: `macs_full / macs_executed`.
    pub theoretical_speedup: Option<f64>,
    /// Seconds of the warm-up iteration (kernel compilation and autotuning on GPUs).
    pub warmup_secs: f64,
}

impl BenchLine {
    /// A train or dense-inference line: `iters` batches of `batch` images in `secs`.
    fn dense(
        model: &str,
        mode: &str,
        batch: usize,
        iters: usize,
        secs: f64,
        warmup_secs: f64,
    ) -> Self {
        BenchLine {
            model: model.to_string(),
            mode: mode.to_string(),
            batch,
            img_per_s: (batch * iters) as f64 / secs,
            closed: None,
            speedup: None,
            theoretical_speedup: None,
            warmup_secs,
        }
    }
}

fn config(kind: ModelKind, mode: GateMode, opts: &BenchOptions, batch: usize) -> RunConfig {
    let mut c = RunConfig::with_dataset(DatasetSpec {
        kind: DatasetKind::Synthetic,
        val_size: None,
        path: None,
        augment: Some(false),
        synthetic: Some(SyntheticSpec {
            n_train: batch.saturating_mul(opts.iters.saturating_add(1)),
            n_test: batch.saturating_mul(opts.iters.saturating_add(1)),
            ..SyntheticSpec::default()
        }),
    });
    c.model.kind = kind;
    c.model.depth = opts.depth;
    c.model.width = opts.width;
    c.gate.mode = mode;
    c.loss.cons_weight = 0.0;
    c.train.epochs = 1;
    c.train.batch_size = batch;
    c.train.warmup = 0.0;
    c
}

fn prepared(c: &RunConfig) -> Result<Prepared> {
    let spec = c.dataset.synthetic.clone().unwrap_or_default();
    let (train, test) = synthetic(&spec, 0);
    Prepared::with_data(
        c,
        DataSplits {
            train,
            test,
            val: None,
            source: "synthetic".into(),
        },
    )
}

/// Runs every measurement with the backend on the device, calling `line` as each one completes.
pub fn run_bench(
    backend: BackendKind,
    device: DeviceSpec,
    opts: &BenchOptions,
    line: &mut dyn FnMut(&BenchLine),
) -> Result<Vec<BenchLine>> {
    check_options(opts)?;
    match (backend.resolve(device)?, device) {
        (BackendKind::Libtorch, _) => bench_libtorch(device, opts, line),
        (_, DeviceSpec::Cpu) => bench_on::<burn::backend::Autodiff<burn::backend::Flex>>(
            &Default::default(),
            opts,
            line,
        ),
        #[cfg(feature = "cuda")]
        (_, DeviceSpec::Cuda(n)) => bench_on::<burn::backend::Autodiff<burn::backend::Cuda>>(
            &burn::backend::cuda::CudaDevice::new(n),
            opts,
            line,
        ),
        #[cfg(not(feature = "cuda"))]
        (_, DeviceSpec::Cuda(n)) => Err(crate::Error::Device {
            device: format!("cuda:{n}"),
            message: "this build of cg has no CUDA support; rebuild with `--features cuda`".into(),
        }),
    }
}

/// [`bench_on`] with burn's LibTorch backend; its panics (out of memory among them) become
/// errors.
#[cfg(feature = "libtorch")]
fn bench_libtorch(
    device: DeviceSpec,
    opts: &BenchOptions,
    line: &mut dyn FnMut(&BenchLine),
) -> Result<Vec<BenchLine>> {
    crate::libtorch::guarded(device, |d| bench_on::<crate::libtorch::B>(d, opts, line))
}

/// Without the `libtorch` feature: the error that says so.
#[cfg(not(feature = "libtorch"))]
fn bench_libtorch(
    device: DeviceSpec,
    _opts: &BenchOptions,
    _line: &mut dyn FnMut(&BenchLine),
) -> Result<Vec<BenchLine>> {
    crate::libtorch::check(device).map(|()| Vec::new())
}

/// Refuses, before anything is measured, options whose configurations cg-core bounds refuse (the
/// data set of a batch, the network's size) or that measure nothing.
fn check_options(opts: &BenchOptions) -> Result<()> {
    let bad = |m: String| Err(crate::Error::Config(m));
    if opts.batches.is_empty() || opts.iters == 0 {
        return bad("a benchmark needs at least one batch size and one iteration".into());
    }
    if let Some(f) = opts.closed.iter().find(|f| !(0.0..=1.0).contains(*f)) {
        return bad(format!(
            "a fraction of closed gates lies in [0, 1], got {f}"
        ));
    }
    for &batch in &opts.batches {
        check_config(&config(
            ModelKind::Cosinegate,
            GateMode::CirCtrl,
            opts,
            batch,
        ))?;
    }
    Ok(())
}

pub(crate) fn bench_on<B: AutodiffBackend>(
    device: &B::Device,
    opts: &BenchOptions,
    line: &mut dyn FnMut(&BenchLine),
) -> Result<Vec<BenchLine>> {
    let depth = opts.depth;
    let mut out = Vec::new();
    let mut emit = |l: BenchLine, out: &mut Vec<BenchLine>| {
        line(&l);
        out.push(l);
    };
    for &batch in &opts.batches {
        let models = [
            (
                format!("resnet{depth}"),
                ModelKind::Resnet,
                GateMode::CirCtrl,
            ),
            (
                format!("cosinegate{depth}"),
                ModelKind::Cosinegate,
                GateMode::CirCtrl,
            ),
        ];
        for (name, kind, mode) in &models {
            let prep = prepared(&config(*kind, *mode, opts, batch))?;
            if opts.train {
                let (secs, warm) = time_training::<B>(&prep, device)?;
                emit(
                    BenchLine::dense(name, "train", batch, opts.iters, secs, warm),
                    &mut out,
                );
            }
            let model = prep.net.init::<B::InnerBackend>(device);
            let (secs, warm) = time_inference(opts.iters, || {
                let x = input::<B::InnerBackend>(&prep, batch, device);
                let _ = model
                    .forward(x, &GateCtx::Eval { p_threshold: 0.5 })
                    .logits
                    .into_data();
            });
            emit(
                BenchLine::dense(name, "infer-dense", batch, opts.iters, secs, warm),
                &mut out,
            );
        }
        for &m in &opts.sparse_models {
            for l in sparse_lines::<B::InnerBackend>(m, opts, batch, device)? {
                emit(l, &mut out);
            }
        }
    }
    Ok(out)
}

/// The sparse lines of network `m` at `batch`: the dense backbone timed once, then real skipping
/// with each fraction of `opts.closed` closed per gated block (samples drawn at random).
fn sparse_lines<B: Backend>(
    m: SparseModel,
    opts: &BenchOptions,
    batch: usize,
    device: &B::Device,
) -> Result<Vec<BenchLine>> {
    let prep = prepared(&m.config(opts, batch))?;
    let model = prep.net.init::<B>(device);
    let backbone = model.clone().without_gates();
    let (dense_secs, warm) = time_inference(opts.iters, || {
        let x = input::<B>(&prep, batch, device);
        let _ = backbone.forward(x, &GateCtx::Open).logits.into_data();
    });
    let dense_rate = (batch * opts.iters) as f64 / dense_secs;
    let gated = prep.macs.gated_blocks();
    let all_branches: f64 = gated.iter().map(|b| prep.macs.branch[*b] as f64).sum();
    let mut lines = Vec::new();
    for &closed in &opts.closed {
        let n_closed = ((closed * batch as f64).round() as usize).min(batch);
        let mut rng = StdRng::seed_from_u64(7);
        let (secs, warm_s) = time_inference(opts.iters, || {
            let x = input::<B>(&prep, batch, device);
            let mut decide = |_: usize, probs: &[f32]| {
                let mut open = vec![true; probs.len()];
                for i in sample(&mut rng, probs.len(), n_closed) {
                    open[i] = false;
                }
                open
            };
            let _ = model.forward_sparse_with(x, &mut decide).0.into_data();
        });
        let executed =
            prep.macs.executed_nominal(&vec![true; gated.len()]) as f64 - closed * all_branches;
        let rate = (batch * opts.iters) as f64 / secs;
        lines.push(BenchLine {
            model: format!("cosinegate{}-{}", opts.depth, m.as_str()),
            mode: "infer-sparse".into(),
            batch,
            img_per_s: rate,
            closed: Some(closed),
            speedup: Some(rate / dense_rate),
            theoretical_speedup: Some(prep.macs.full() as f64 / executed),
            warmup_secs: warm.max(warm_s),
        });
    }
    Ok(lines)
}

fn input<B: Backend>(
    prep: &Prepared,
    batch: usize,
    device: &B::Device,
) -> burn::tensor::Tensor<B, 4> {
    let batcher = Batcher {
        data: &prep.data.test,
        norm: &prep.norm,
        augment: false,
    };
    let idx: Vec<usize> = (0..batch).collect();
    to_tensor::<B>(&mut batcher.batch(&idx, None), device)
}

/// (seconds for `iters` timed runs, seconds of the warm-up run).
fn time_inference(iters: usize, mut f: impl FnMut()) -> (f64, f64) {
    let t = Instant::now();
    f();
    let warm = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    (t.elapsed().as_secs_f64().max(1e-9), warm)
}

/// Times training steps: one warm-up epoch-step then `iters` steps, through the real training loop.
fn time_training<B: AutodiffBackend>(prep: &Prepared, device: &B::Device) -> Result<(f64, f64)> {
    // One step first, on a one-batch copy, as warm-up.
    let mut warm_cfg = prep.config.clone();
    let batch = warm_cfg.train.batch_size;
    warm_cfg.train.limit_train = Some(batch);
    let mut warm_data = prep.data.clone();
    warm_data.train = warm_data.train.clone().subset(Some(batch), 0);
    warm_data.test = warm_data.test.clone().subset(Some(2), 0);
    let warm_prep = Prepared::with_data(&warm_cfg, warm_data)?;
    let t = Instant::now();
    let _ = train_on::<B>(&warm_prep, device, &TrainOptions::default(), &mut Silent)?;
    let warm = t.elapsed().as_secs_f64();
    let mut data = prep.data.clone();
    let n = data.train.len() - batch;
    data.train = data.train.clone().subset(Some(n), 1);
    data.test = data.test.clone().subset(Some(2), 0);
    let timed = Prepared::with_data(&prep.config, data)?;
    let (result, _) = train_on::<B>(&timed, device, &TrainOptions::default(), &mut Silent)?;
    Ok((result.wall_secs.max(1e-9), warm))
}
