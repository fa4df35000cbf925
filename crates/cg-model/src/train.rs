//! Training and evaluation of one run configuration: SGD with momentum, L2 on conv/linear weights,
//! warm-up + schedule, Gumbel gates with annealed temperature, progressive FLOPs loss, consistency loss,
//! the gate predictor's loss (`gate.predictor`, [`crate::predictor`]), per-epoch evaluation with hard
//! gates (on the test set, and on the validation split held out of the training split when
//! `dataset.val_size` asks for one), a checkpoint every epoch and exact resume.
//!
//! Accuracies are reported on both sets; gate statistics, executed MACs and savings (per epoch and
//! final), and the predictor's agreement, on validation when the run has a split, else on the test
//! set. A run whose gates decide without F(x) (`ctrl`, or a predictor) also measures
//! `savings_measured` on one fixed batch of that set ([`measure_savings`]).
//!
//! All training-time randomness (shuffling, augmentation, Gumbel and input noise) comes from a generator
//! seeded by (seed, epoch), so a run resumed from an epoch checkpoint replays the uninterrupted run.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use cg_core::{EpochRecord, Provenance, RunResult};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

use crate::checkpoint::{
    CheckpointState, finish_checkpoints, load_checkpoint, load_state, save_checkpoint,
};
use crate::data::{Batcher, HeldOut};
pub use crate::eval::{Evaluation, Measured, evaluate, measure_savings};
use crate::model::{CgResNet, GateCtx, NetOut};
use crate::predictor::predictor_loss;
pub use crate::prepared::Prepared;
use crate::prepared::host_f32;
use crate::prepared::to_tensor;
use crate::schedule::{flops_weight, learning_rate, temperature};
use crate::{Error, Result};

static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How a training run is carried out (as opposed to what is trained).
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Where epoch checkpoints go; none means no checkpoints.
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the checkpoint in `checkpoint_dir` when there is one.
    pub resume: bool,
    /// Stop (with [`Error::Stopped`]) once this many epochs are done and checkpointed.
    pub stop_after_epochs: Option<usize>,
    /// Set from outside (a signal) to stop at the next step; the last epoch checkpoint stays.
    pub stop_flag: Option<Arc<AtomicBool>>,
    /// Keep only the final weights once the run completes (drop optimizer state).
    pub keep_checkpoints: bool,
}

/// Progress of a running training, for bars and heartbeats.
#[derive(Debug, Clone)]
pub struct Progress {
    pub epoch: usize,
    pub epochs: usize,
    pub step: usize,
    pub steps_per_epoch: usize,
    pub loss: f64,
    pub img_per_s: f64,
    pub eta_secs: f64,
}

/// Receives progress; the CLI draws bars with it, the daemon heartbeats with it.
pub trait Observer {
    fn on_step(&mut self, _p: &Progress) {}
    fn on_epoch(&mut self, _record: &EpochRecord) {}
    /// A message worth showing (e.g. "resumed from epoch 3").
    fn on_note(&mut self, _msg: &str) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Silent;
impl Observer for Silent {}

/// Training steps whose loss and correct count are read to the host together: a GPU runs ahead
/// instead of waiting for the host at every step. A non-finite loss is still reported at its step.
const SYNC_EVERY: usize = 16;

/// One epoch's running totals, from the steps read so far.
#[derive(Default)]
struct EpochStats {
    loss_sum: f64,
    correct: usize,
    seen: usize,
    last_loss: f64,
}

/// Steps not yet read: their index, batch size, loss (`[1]`) and correct count (`[1]`), on the
/// device.
struct StepWindow<B: Backend> {
    steps: Vec<(usize, usize)>,
    losses: Vec<Tensor<B, 1>>,
    correct: Vec<Tensor<B, 1, Int>>,
}

impl<B: Backend> Default for StepWindow<B> {
    fn default() -> Self {
        Self {
            steps: Vec::new(),
            losses: Vec::new(),
            correct: Vec::new(),
        }
    }
}

impl<B: Backend> StepWindow<B> {
    fn push(&mut self, step: usize, n: usize, loss: Tensor<B, 1>, correct: Tensor<B, 1, Int>) {
        self.steps.push((step, n));
        self.losses.push(loss);
        self.correct.push(correct);
    }

    /// Samples in the steps not yet read.
    fn samples(&self) -> usize {
        self.steps.iter().map(|(_, n)| n).sum()
    }

    /// Reads the pending steps in one transfer each for losses and counts, adds them to `stats`
    /// and empties the window; the first non-finite loss is an error naming its step.
    fn flush(&mut self, epoch: usize, stats: &mut EpochStats) -> Result<()> {
        if self.steps.is_empty() {
            return Ok(());
        }
        let losses = host_f32(Tensor::cat(std::mem::take(&mut self.losses), 0));
        let correct: Vec<i64> = Tensor::cat(std::mem::take(&mut self.correct), 0)
            .into_data()
            .iter::<i64>()
            .collect();
        for (((step, n), loss), correct) in self.steps.drain(..).zip(losses).zip(correct) {
            let value = f64::from(loss);
            if !value.is_finite() {
                return Err(Error::NonFiniteLoss {
                    epoch: epoch + 1,
                    step: step + 1,
                    value,
                });
            }
            stats.loss_sum += value * n as f64;
            stats.correct += usize::try_from(correct).unwrap_or(0);
            stats.seen += n;
            stats.last_loss = value;
        }
        Ok(())
    }
}

fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    // SplitMix64 step: distinct, well-mixed streams per epoch.
    let mut z = seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The weights to decay: conv and linear weights, not batch norm or biases. Returns Σ w².
fn l2_of_weights<B: Backend>(model: &CgResNet<B>) -> Tensor<B, 1> {
    let mut terms: Vec<Tensor<B, 1>> = vec![
        model.stem_conv.weight.val().square().sum(),
        model.fc.weight.val().square().sum(),
    ];
    for b in &model.blocks {
        terms.push(b.conv1.weight.val().square().sum());
        terms.push(b.conv2.weight.val().square().sum());
        if let Some(p) = &b.projection {
            terms.push(p.conv.weight.val().square().sum());
        }
        if let Some(g) = &b.gate {
            let layers = [&g.ctrl_in, &g.ctrl_out, &g.pred_in, &g.pred_out];
            for l in layers.into_iter().flatten() {
                terms.push(l.weight.val().square().sum());
            }
        }
    }
    Tensor::cat(terms, 0).sum()
}

/// The initial weights of a run, the same on every backend: drawn on flex from the run's seed, then
/// moved to `B` through a full-precision record.
pub fn initial_model<B: Backend>(
    prep: &Prepared,
    seed: u64,
    device: &B::Device,
) -> Result<CgResNet<B>> {
    type Flex = burn::backend::Flex;
    let cpu = Default::default();
    // The backends' generator is process-global: hold a lock from seeding to the last initial weight
    // so that concurrent runs in one process (tests, benchmarks) still initialise from their own seed.
    let record = {
        let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        <Flex as Backend>::seed(&cpu, seed);
        let model: CgResNet<Flex> = prep.net.init(&cpu);
        // Parameters are initialised lazily; the record materialises them while the lock is held.
        Module::<Flex>::into_record(model)
    };
    let bytes = |e: burn::record::RecorderError| Error::Checkpoint {
        path: PathBuf::from("(initial weights)"),
        message: e.to_string(),
    };
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::new();
    let encoded = Recorder::<Flex>::record(&recorder, record, ()).map_err(bytes)?;
    let record = Recorder::<B>::load(&recorder, encoded, device).map_err(bytes)?;
    Ok(prep.net.init::<B>(device).load_record(record))
}

/// The optimizer of a run: SGD with momentum.
type Sgd<B> = burn::optim::adaptor::OptimizerAdaptor<
    burn::optim::Sgd<<B as AutodiffBackend>::InnerBackend>,
    CgResNet<B>,
    B,
>;

/// Trains one configuration on backend `B` (an autodiff backend).
pub fn train_on<B: AutodiffBackend>(
    prep: &Prepared,
    device: &B::Device,
    opts: &TrainOptions,
    observer: &mut dyn Observer,
) -> Result<(RunResult, CgResNet<B::InnerBackend>)> {
    let t = &prep.config.train;
    let model: CgResNet<B> = initial_model(prep, t.seed, device)?;
    let optim = SgdConfig::new()
        .with_momentum(Some(MomentumConfig {
            momentum: t.momentum,
            dampening: 0.0,
            nesterov: false,
        }))
        .init::<B, CgResNet<B>>();
    let (mut model, mut optim, mut run) = resume(prep, device, opts, model, optim, observer)?;
    let setup = Setup::<B>::new(prep, device, opts)?;
    // The evaluation after the last epoch trained here is the final one (same weights).
    let mut last_eval: Option<EpochEval> = None;
    for index in run.start_epoch..t.end_epoch() {
        let start = Instant::now();
        let trained;
        (model, trained) = setup.train_epoch(model, &mut optim, &run, index, start, observer)?;
        last_eval = Some(setup.record_epoch(&model, &mut run, trained, observer));
        setup.checkpoint(&model, &optim, &run, index + 1)?;
        if opts.stop_after_epochs.is_some_and(|s| index + 1 >= s) && index + 1 < t.epochs {
            return Err(Error::Stopped { epoch: index + 1 });
        }
    }
    setup.finish(model, run, last_eval)
}

/// What a run has done so far: before the first epoch here, what its checkpoint says.
#[derive(Default)]
struct RunSoFar {
    /// The first epoch to train here.
    start_epoch: usize,
    history: Vec<EpochRecord>,
    train_secs: f64,
    train_images: u64,
}

/// Continues from the checkpoint in `opts.checkpoint_dir` when asked to and there is one of
/// this run (not past its end): its weights, optimizer state and history.
fn resume<B: AutodiffBackend>(
    prep: &Prepared,
    device: &B::Device,
    opts: &TrainOptions,
    model: CgResNet<B>,
    optim: Sgd<B>,
    observer: &mut dyn Observer,
) -> Result<(CgResNet<B>, Sgd<B>, RunSoFar)> {
    let cfg = &prep.config;
    let (Some(dir), true) = (&opts.checkpoint_dir, opts.resume) else {
        return Ok((model, optim, RunSoFar::default()));
    };
    let Some(state) = load_state(dir)?
        // A checkpoint past this run's end (a later rung of the same run) is not resumed from.
        .filter(|state| state.epochs_done <= cfg.train.end_epoch())
    else {
        return Ok((model, optim, RunSoFar::default()));
    };
    if state.config.without_stop() != cfg.without_stop() {
        return Err(Error::Checkpoint {
            path: dir.clone(),
            message: "belongs to a different configuration; remove it or use another directory"
                .into(),
        });
    }
    let (model, optim) = load_checkpoint(dir, state.epochs_done, model, optim, device)?;
    let run = RunSoFar {
        start_epoch: state.epochs_done,
        history: state.history,
        train_secs: state.train_secs,
        train_images: state.train_images,
    };
    observer.on_note(&format!(
        "resumed from the checkpoint of epoch {}",
        run.start_epoch
    ));
    Ok((model, optim, run))
}

/// The learning rate, Gumbel temperature and FLOPs-loss weight of a step.
#[derive(Debug, Clone, Copy, Default)]
struct StepSchedule {
    lr: f64,
    tau: f64,
    lam: f64,
}

/// What one step trains on.
struct StepInputs<B: Backend> {
    /// The batch, doubled with its noisy copy under the consistency loss.
    x: Tensor<B, 4>,
    /// The labels of the first `n` samples.
    y: Tensor<B, 1, Int>,
    /// The batch's size before doubling.
    n: usize,
    /// The gates' logistic noise, `[n_gated, batch]`.
    noise: Tensor<B, 2>,
}

/// One epoch as trained, before it is evaluated.
struct TrainedEpoch {
    index: usize,
    start: Instant,
    stats: EpochStats,
    /// The schedule of its last step.
    schedule: StepSchedule,
}

/// Everything fixed for the steps of a run.
struct Setup<'a, B: AutodiffBackend> {
    prep: &'a Prepared,
    device: &'a B::Device,
    opts: &'a TrainOptions,
    batcher: Batcher<'a>,
    ce: CrossEntropyLoss<B>,
    /// The model has gates to train.
    gated: bool,
    /// The consistency loss is on: every batch is doubled with a noisy copy.
    cons: bool,
    noise_dist: Normal<f32>,
    n_train: usize,
    batch_size: usize,
    steps_per_epoch: usize,
    total_steps: f64,
    n_gated: usize,
    macs_full: f64,
    macs_fixed: f64,
    branch_macs: Vec<f64>,
}

impl<'a, B: AutodiffBackend> Setup<'a, B> {
    fn new(prep: &'a Prepared, device: &'a B::Device, opts: &'a TrainOptions) -> Result<Self> {
        let cfg = &prep.config;
        let t = &cfg.train;
        let gated = prep.gated();
        let n_train = prep.data.train.len();
        let batch_size = t.batch_size.min(n_train);
        let steps_per_epoch = n_train.div_ceil(batch_size);
        let augment = cfg.dataset.augment.unwrap_or(prep.data.train.channels == 3);
        let branch_macs: Vec<f64> = prep
            .macs
            .gated_blocks()
            .iter()
            .map(|b| prep.macs.branch[*b] as f64)
            .collect();
        let noise_dist = Normal::new(0.0f32, cfg.loss.cons_sigma as f32)
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Self {
            prep,
            device,
            opts,
            batcher: Batcher {
                data: &prep.data.train,
                norm: &prep.norm,
                augment,
            },
            ce: CrossEntropyLossConfig::new().init(device),
            gated,
            cons: gated && cfg.loss.cons_weight > 0.0,
            noise_dist,
            n_train,
            batch_size,
            steps_per_epoch,
            total_steps: (steps_per_epoch * t.epochs) as f64,
            n_gated: prep.macs.gated_blocks().len(),
            macs_full: prep.macs.full() as f64,
            macs_fixed: prep.macs.fixed() as f64,
            branch_macs,
        })
    }

    /// Trains epoch `index` (its shuffle, augmentation and noise drawn from its own seed),
    /// showing progress after every step; stops early when the stop flag is set.
    fn train_epoch(
        &self,
        mut model: CgResNet<B>,
        optim: &mut Sgd<B>,
        run: &RunSoFar,
        index: usize,
        start: Instant,
        observer: &mut dyn Observer,
    ) -> Result<(CgResNet<B>, TrainedEpoch)> {
        let mut rng = StdRng::seed_from_u64(epoch_seed(self.prep.config.train.seed, index));
        let mut order: Vec<usize> = (0..self.n_train).collect();
        order.shuffle(&mut rng);
        let mut stats = EpochStats::default();
        let mut window = StepWindow::<B::InnerBackend>::default();
        let mut schedule = StepSchedule::default();
        for (step, idx) in order.chunks(self.batch_size).enumerate() {
            if idx.len() < 2 {
                continue; // batch norm needs at least two samples
            }
            if self
                .opts
                .stop_flag
                .as_ref()
                .is_some_and(|f| f.load(Ordering::Relaxed))
            {
                return Err(Error::Stopped { epoch: index });
            }
            let global = index * self.steps_per_epoch + step;
            schedule = self.schedule(global);
            let inputs = self.inputs(idx, &mut rng);
            model = self.train_step(model, optim, inputs, step, schedule, &mut window);
            // The first step of an epoch is read at once, so progress shows a loss early.
            if window.steps.len() >= SYNC_EVERY || stats.seen == 0 {
                window.flush(index, &mut stats)?;
            }
            let seen = stats.seen + window.samples();
            let elapsed = run.train_secs + start.elapsed().as_secs_f64();
            let imgs = run.train_images + seen as u64;
            observer.on_step(&self.progress(index, step, global, stats.last_loss, imgs, elapsed));
        }
        window.flush(index, &mut stats)?;
        let trained = TrainedEpoch {
            index,
            start,
            stats,
            schedule,
        };
        Ok((model, trained))
    }

    /// The schedule at step `global` of the whole run.
    fn schedule(&self, global: usize) -> StepSchedule {
        let cfg = &self.prep.config;
        let p = global as f64 / self.total_steps;
        StepSchedule {
            lr: learning_rate(&cfg.train, p),
            tau: temperature(cfg.gate.tau_start, cfg.gate.tau_end, p),
            lam: if self.gated {
                flops_weight(&cfg.loss, p)
            } else {
                0.0
            },
        }
    }

    /// One SGD step on `inputs`; its loss and correct count go to `window`.
    fn train_step(
        &self,
        model: CgResNet<B>,
        optim: &mut Sgd<B>,
        inputs: StepInputs<B>,
        step: usize,
        schedule: StepSchedule,
        window: &mut StepWindow<B::InnerBackend>,
    ) -> CgResNet<B> {
        let cfg = &self.prep.config;
        let StepInputs { x, y, n, noise } = inputs;
        let ctx = GateCtx::Train {
            tau: schedule.tau,
            hard: cfg.gate.hard,
            noise,
        };
        let out = model.forward(x, &ctx);
        let logits = if self.cons {
            out.logits.clone().narrow(0, 0, n)
        } else {
            out.logits.clone()
        };
        let y_host = y.clone().inner();
        let loss = self.loss(out, logits.clone(), y, n, schedule.lam);
        window.push(
            step,
            n,
            loss.clone().inner(),
            logits
                .inner()
                .argmax(1)
                .reshape([n])
                .equal(y_host)
                .int()
                .sum(),
        );
        let t = &cfg.train;
        let total = if t.weight_decay > 0.0 {
            loss + l2_of_weights(&model).mul_scalar(0.5 * t.weight_decay)
        } else {
            loss
        };
        let grads = GradientsParams::from_grads(total.backward(), &model);
        optim.step(schedule.lr, model, grads)
    }

    /// The inputs of a step on the samples `idx`, drawn from `rng` in this order: the batch's
    /// augmentation, its noisy copy (under the consistency loss), the gates' logistic noise.
    fn inputs(&self, idx: &[usize], rng: &mut StdRng) -> StepInputs<B> {
        let device = self.device;
        let mut batch = self.batcher.batch(idx, Some(&mut *rng));
        let n = batch.n;
        if self.cons {
            let noisy: Vec<f32> = batch
                .images
                .iter()
                .map(|v| v + self.noise_dist.sample(&mut *rng))
                .collect();
            batch.images.extend(noisy);
            batch.n *= 2;
        }
        let x = to_tensor::<B>(&mut batch, device);
        let y = Tensor::<B, 1, Int>::from_data(
            TensorData::new(batch.labels[..n].to_vec(), [n]),
            device,
        );
        let noise: Vec<f32> = (0..self.n_gated * batch.n)
            .map(|_| {
                let u: f32 = rng.random_range(1e-6f32..1.0 - 1e-6);
                u.ln() - (1.0 - u).ln()
            })
            .collect();
        let noise = Tensor::from_data(TensorData::new(noise, [self.n_gated, batch.n]), device);
        StepInputs { x, y, n, noise }
    }

    /// Cross-entropy on the first `n` samples, plus the FLOPs loss (weight `lam`), the predictor's
    /// loss and the consistency loss when they are on.
    fn loss(
        &self,
        out: NetOut<B>,
        logits: Tensor<B, 2>,
        y: Tensor<B, 1, Int>,
        n: usize,
        lam: f64,
    ) -> Tensor<B, 1> {
        let cfg = &self.prep.config;
        let mut loss = self.ce.forward(logits, y);
        if self.gated && lam > 0.0 {
            let mut executed: Tensor<B, 1> = Tensor::full([1], self.macs_fixed, self.device);
            for (k, g) in out.gates.iter().enumerate() {
                executed = executed
                    + g.clone()
                        .narrow(0, 0, n)
                        .mean()
                        .mul_scalar(self.branch_macs[k]);
            }
            let frac = executed.div_scalar(self.macs_full);
            let lf = if cfg.loss.flops_target > 0.0 {
                relu(frac.sub_scalar(cfg.loss.flops_target)).square()
            } else {
                frac
            };
            loss = loss + lf.mul_scalar(lam);
        }
        if let Some(lp) = predictor_loss(&out.predictions, n) {
            loss = loss + lp.mul_scalar(cfg.loss.predictor_weight);
        }
        if self.cons {
            let pa = softmax(out.logits.clone().narrow(0, 0, n), 1);
            let pb = softmax(out.logits.narrow(0, n, n), 1);
            let lc = (pa - pb).square().sum_dim(1).mean();
            loss = loss + lc.mul_scalar(cfg.loss.cons_weight);
        }
        loss
    }

    /// Progress after step `step` (`global` of the run) of epoch `index`: `imgs` trained in
    /// `elapsed` seconds over the whole run.
    fn progress(
        &self,
        index: usize,
        step: usize,
        global: usize,
        loss: f64,
        imgs: u64,
        elapsed: f64,
    ) -> Progress {
        let rate = imgs as f64 / elapsed.max(1e-9);
        let remaining = (self.total_steps - (global + 1) as f64).max(0.0) * self.batch_size as f64;
        Progress {
            epoch: index + 1,
            epochs: self.prep.config.train.epochs,
            step: step + 1,
            steps_per_epoch: self.steps_per_epoch,
            loss,
            img_per_s: rate,
            eta_secs: remaining / rate.max(1e-9),
        }
    }

    /// Evaluates `model` on the test set and, when the run has a validation split, on it.
    fn evaluate(&self, model: &CgResNet<B::InnerBackend>) -> EpochEval {
        let data = &self.prep.data;
        let batch = eval_batch(self.batch_size);
        EpochEval {
            test: evaluate(model, self.prep, &data.test, batch, self.device),
            val: data
                .val
                .as_ref()
                .map(|v| evaluate(model, self.prep, &v.data, batch, self.device)),
        }
    }

    /// Evaluates the model after an epoch, and adds the epoch's record to the run's history
    /// (and tells the observer); returns the evaluation.
    fn record_epoch(
        &self,
        model: &CgResNet<B>,
        run: &mut RunSoFar,
        trained: TrainedEpoch,
        observer: &mut dyn Observer,
    ) -> EpochEval {
        let TrainedEpoch {
            index,
            start,
            stats,
            schedule,
        } = trained;
        let seen = stats.seen;
        run.train_secs += start.elapsed().as_secs_f64();
        run.train_images += seen as u64;
        let eval = self.evaluate(&model.valid());
        let record = EpochRecord {
            epoch: index + 1,
            train_loss: stats.loss_sum / seen.max(1) as f64,
            train_acc: stats.correct as f64 / seen.max(1) as f64,
            test_acc: eval.test.accuracy,
            val_acc: eval.val.as_ref().map(|v| v.accuracy),
            savings_nominal: 1.0 - eval.chosen().macs_nominal / self.macs_full,
            savings_actual: 1.0 - eval.chosen().macs_actual / self.macs_full,
            lr: schedule.lr,
            tau: schedule.tau,
            flops_weight: schedule.lam,
            wall_secs: start.elapsed().as_secs_f64(),
            gates: eval.chosen().gates.clone(),
        };
        observer.on_epoch(&record);
        run.history.push(record);
        eval
    }

    /// Saves the checkpoint of `epochs_done` epochs, when the run keeps checkpoints.
    fn checkpoint(
        &self,
        model: &CgResNet<B>,
        optim: &Sgd<B>,
        run: &RunSoFar,
        epochs_done: usize,
    ) -> Result<()> {
        let Some(dir) = &self.opts.checkpoint_dir else {
            return Ok(());
        };
        save_checkpoint(
            dir,
            model,
            optim,
            &CheckpointState {
                config: self.prep.config.clone(),
                epochs_done,
                history: run.history.clone(),
                train_secs: run.train_secs,
                train_images: run.train_images,
            },
        )
    }

    /// The run's result from its last evaluation (or a fresh one when no epoch was trained
    /// here) and its history; the final weights are saved when the run reached its end.
    fn finish(
        &self,
        model: CgResNet<B>,
        run: RunSoFar,
        last_eval: Option<EpochEval>,
    ) -> Result<(RunResult, CgResNet<B::InnerBackend>)> {
        let (prep, cfg) = (self.prep, &self.prep.config);
        let valid = model.valid();
        let eval = match last_eval {
            Some(eval) => eval,
            None => self.evaluate(&valid),
        };
        let (savings_measured, infer_img_per_s) = match self.measure(&valid) {
            Some(m) => (Some(m.savings()), m.sparse_img_per_s()),
            None => (None, eval.test.img_per_s),
        };
        let peak = peak(&run.history);
        let macs_full = self.macs_full;
        let chosen = eval.chosen().clone();
        let EpochEval { test, val } = eval;
        let result = RunResult {
            config: cfg.clone(),
            provenance: Provenance {
                val_split: prep.data.val.as_ref().map(HeldOut::hash),
                ..Provenance::default()
            },
            test_acc_final: test.accuracy,
            test_acc_peak: peak.test_acc,
            peak_epoch: peak.epoch,
            val_acc_final: val.map(|v| v.accuracy),
            val_acc_peak: peak.val_acc,
            train_images: Some(prep.data.train.len()),
            val_images: prep.data.val.as_ref().map(|v| v.data.len()),
            macs_full: prep.macs.full(),
            macs_executed_nominal: chosen.macs_nominal,
            macs_executed_actual: chosen.macs_actual,
            savings_nominal: 1.0 - chosen.macs_nominal / macs_full,
            savings_actual: 1.0 - chosen.macs_actual / macs_full,
            savings_measured,
            predictor_agreement: chosen.predictor_agreement,
            gates: chosen.gates,
            train_img_per_s: run.train_images as f64 / run.train_secs.max(1e-9),
            infer_img_per_s,
            wall_secs: run.train_secs,
            history: run.history,
        };
        // A rung that ends before the schedule does keeps its checkpoint for the next rung.
        if let Some(dir) = &self.opts.checkpoint_dir
            && cfg.train.end_epoch() == cfg.train.epochs
        {
            finish_checkpoints(dir, &valid, self.opts.keep_checkpoints)?;
        }
        Ok((result, valid))
    }

    /// Dense against sparse inference of the final weights ([`measure_savings`]), on validation
    /// when the run has a split, else on the test set; only when the gates decide without F(x).
    fn measure(&self, model: &CgResNet<B::InnerBackend>) -> Option<Measured> {
        let data = &self.prep.data;
        let set = data.val.as_ref().map_or(&data.test, |v| &v.data);
        let skips = self.gated && !self.prep.config.gate.decision_needs_branch();
        skips.then(|| measure_savings(model, self.prep, set, self.device))
    }
}

/// Both evaluations after an epoch.
struct EpochEval {
    test: Evaluation,
    /// On the validation split, when the run has one.
    val: Option<Evaluation>,
}

impl EpochEval {
    /// The evaluation whose gate statistics, executed MACs, savings and predictor agreement a
    /// record reports: on the validation split when the run has one, else on the test set.
    fn chosen(&self) -> &Evaluation {
        self.val.as_ref().unwrap_or(&self.test)
    }
}

/// The epoch a run reports as its best, with its test and validation accuracies.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Peak {
    epoch: usize,
    test_acc: f64,
    val_acc: Option<f64>,
}

/// The best epoch (the first of equals): by validation accuracy when the run has a validation
/// split (its test accuracy is then read at that epoch, not maximised), else by test accuracy.
/// Epoch 0 and −∞ for an empty history.
fn peak(history: &[EpochRecord]) -> Peak {
    let score = |r: &EpochRecord| r.val_acc.unwrap_or(r.test_acc);
    let mut best = Peak {
        epoch: 0,
        test_acc: f64::NEG_INFINITY,
        val_acc: None,
    };
    let mut best_score = f64::NEG_INFINITY;
    for r in history {
        if score(r) > best_score {
            best_score = score(r);
            best = Peak {
                epoch: r.epoch,
                test_acc: r.test_acc,
                val_acc: r.val_acc,
            };
        }
    }
    best
}

fn eval_batch(train_batch: usize) -> usize {
    train_batch.clamp(64, 256)
}

#[cfg(test)]
mod tests {
    use super::*;

    type B = burn::backend::Flex;

    fn push(window: &mut StepWindow<B>, step: usize, n: usize, loss: f32, correct: i64) {
        let device = Default::default();
        window.push(
            step,
            n,
            Tensor::from_data(TensorData::new(vec![loss], [1]), &device),
            Tensor::from_data(TensorData::new(vec![correct], [1]), &device),
        );
    }

    fn record(epoch: usize, test_acc: f64, val_acc: Option<f64>) -> EpochRecord {
        EpochRecord {
            epoch,
            train_loss: 0.0,
            train_acc: 0.0,
            test_acc,
            val_acc,
            savings_nominal: 0.0,
            savings_actual: 0.0,
            lr: 0.0,
            tau: 0.0,
            flops_weight: 0.0,
            wall_secs: 0.0,
            gates: Vec::new(),
        }
    }

    #[test]
    fn the_peak_is_the_first_best_validation_epoch_else_the_best_test_epoch() {
        // (test, validation) accuracy per epoch, and the expected (epoch, test, validation).
        let cases: [(&[(f64, Option<f64>)], Peak); 4] = [
            (
                &[
                    (0.5, Some(0.6)),
                    (0.9, Some(0.7)),
                    (0.6, Some(0.8)),
                    (0.7, Some(0.8)),
                ],
                Peak {
                    epoch: 3,
                    test_acc: 0.6,
                    val_acc: Some(0.8),
                },
            ),
            (
                &[(0.5, None), (0.9, None), (0.9, None), (0.7, None)],
                Peak {
                    epoch: 2,
                    test_acc: 0.9,
                    val_acc: None,
                },
            ),
            (
                &[(0.8, Some(0.1)), (0.2, Some(0.1))],
                Peak {
                    epoch: 1,
                    test_acc: 0.8,
                    val_acc: Some(0.1),
                },
            ),
            (
                &[],
                Peak {
                    epoch: 0,
                    test_acc: f64::NEG_INFINITY,
                    val_acc: None,
                },
            ),
        ];
        for (accs, expected) in cases {
            let history: Vec<EpochRecord> = accs
                .iter()
                .enumerate()
                .map(|(i, (t, v))| record(i + 1, *t, *v))
                .collect();
            assert_eq!(peak(&history), expected, "{accs:?}");
        }
    }

    fn evaluation(accuracy: f64, macs: f64) -> Evaluation {
        Evaluation {
            accuracy,
            macs_nominal: macs,
            macs_actual: macs,
            gates: Vec::new(),
            img_per_s: 1.0,
            predictor_agreement: Some(accuracy),
        }
    }

    #[test]
    fn gates_macs_and_agreement_are_reported_on_validation_when_there_is_one() {
        let test = evaluation(0.5, 10.0);
        let val = evaluation(0.7, 20.0);
        let both = EpochEval {
            test: test.clone(),
            val: Some(val.clone()),
        };
        assert_eq!(both.chosen(), &val);
        let test_only = EpochEval {
            test: test.clone(),
            val: None,
        };
        assert_eq!(test_only.chosen(), &test);
    }

    #[test]
    fn a_window_adds_its_steps_and_names_the_first_non_finite_one() {
        let mut stats = EpochStats::default();
        let mut window = StepWindow::<B>::default();
        push(&mut window, 0, 4, 1.0, 3);
        push(&mut window, 1, 2, 2.5, 1);
        assert_eq!(window.samples(), 6);
        window.flush(0, &mut stats).unwrap();
        assert_eq!((stats.seen, stats.correct), (6, 4));
        assert_eq!((stats.loss_sum, stats.last_loss), (4.0 + 5.0, 2.5));
        assert_eq!(window.samples(), 0);
        window.flush(0, &mut stats).unwrap();
        assert_eq!(stats.seen, 6, "an empty window adds nothing");

        push(&mut window, 2, 4, 0.5, 4);
        push(&mut window, 3, 4, f32::NAN, 0);
        push(&mut window, 4, 4, f32::INFINITY, 0);
        match window.flush(6, &mut stats) {
            Err(Error::NonFiniteLoss { epoch, step, value }) => {
                assert_eq!((epoch, step), (7, 4));
                assert!(value.is_nan());
            }
            other => panic!("expected the NaN of step 4, got {other:?}"),
        }
        assert_eq!(stats.seen, 10, "steps before the NaN are counted");
    }
}
