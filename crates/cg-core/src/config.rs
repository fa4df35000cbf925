//! The run configuration: the schema of a run file (`dataset`, `model`, `gate`, `loss`, `train`).
//! Defaults are `METHOD.md`'s. Unknown keys are rejected by serde; value ranges by [`RunConfig::problems`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// A fully specified training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub dataset: DatasetSpec,
    #[serde(default)]
    pub model: ModelSpec,
    #[serde(default)]
    pub gate: GateSpec,
    #[serde(default)]
    pub loss: LossSpec,
    #[serde(default)]
    pub train: TrainSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// A directory with the standard MNIST file names (`train-images-idx3-ubyte[.gz]`, ...).
    Idx,
    /// The CIFAR-10 binary version: `data_batch_1..5.bin`, `test_batch.bin`.
    CifarBin,
    /// `train|test/<class>/*.jpg|png`; classes sorted by name.
    ImageFolder,
    /// Random images with a learnable class signal, made from the seed; for tests and benchmarks.
    Synthetic,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    pub kind: DatasetKind,
    /// Directory of the data; relative paths resolve against the run file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Random 4-px-pad crop + horizontal flip while training. Default: on for 3-channel sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augment: Option<bool>,
    /// Synthetic only: number of training and test images, channels and side length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<SyntheticSpec>,
    /// Images held out of the training split for validation: one seeded draw per data set (the
    /// same for every job over it, whatever `train.seed`), disjoint from the images trained on.
    /// When set, whatever chooses (the peak epoch, promotions, the front) uses validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_size: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSpec {
    #[serde(default = "d_synth_train")]
    pub n_train: usize,
    #[serde(default = "d_synth_test")]
    pub n_test: usize,
    #[serde(default = "d_synth_channels")]
    pub channels: usize,
    #[serde(default = "d_synth_side")]
    pub side: usize,
    #[serde(default = "d_classes")]
    pub classes: usize,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        Self {
            n_train: d_synth_train(),
            n_test: d_synth_test(),
            channels: d_synth_channels(),
            side: d_synth_side(),
            classes: d_classes(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Plain CIFAR ResNet (the baseline).
    Resnet,
    /// ResNet with a CosineGate on each gated block.
    Cosinegate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Shortcut {
    /// Subsample + zero-pad channels (no parameters).
    A,
    /// 1x1 convolution + batch norm.
    B,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    #[serde(default = "d_model_kind")]
    pub kind: ModelKind,
    /// 6n+2: 8, 14, 20, 32, 44, 56, 110, ...
    #[serde(default = "d_depth")]
    pub depth: usize,
    /// Channels of the first stage; the later stages double it.
    #[serde(default = "d_width")]
    pub width: usize,
    #[serde(default = "d_shortcut")]
    pub shortcut: Shortcut,
    /// Input channels; taken from the data set when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_channels: Option<usize>,
    #[serde(default = "d_classes")]
    pub num_classes: usize,
    /// Blocks (indices into all blocks, as `gates[].block_idx`) replaced by their shortcut: the
    /// network is built without them. Set by a sweep's `static` control (a plain ResNet without
    /// the blocks its configuration closes); only blocks that keep their shape (no stride 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_blocks: Vec<usize>,
}

impl ModelSpec {
    /// Whether block `b` (an index into all blocks, as `gates[].block_idx`) halves the side: the
    /// first block of the second and third stages. Such a block cannot be removed.
    pub fn block_downsamples(&self, b: usize) -> bool {
        let per_stage = self.depth.saturating_sub(2) / 6;
        per_stage > 0 && b > 0 && b.is_multiple_of(per_stage)
    }
}

impl Default for ModelSpec {
    fn default() -> Self {
        Self {
            kind: d_model_kind(),
            depth: d_depth(),
            width: d_width(),
            shortcut: d_shortcut(),
            in_channels: None,
            num_classes: d_classes(),
            removed_blocks: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GateMode {
    /// Logit from the CIR plus a small controller on the pooled input (default).
    #[serde(rename = "cir+ctrl")]
    CirCtrl,
    /// Logit from the CIR plus a learned bias.
    #[serde(rename = "cir")]
    Cir,
    /// Controller only: the decision does not need F(x), so skipped branches can really be skipped.
    #[serde(rename = "ctrl")]
    Ctrl,
}

impl GateMode {
    pub fn as_str(self) -> &'static str {
        match self {
            GateMode::CirCtrl => "cir+ctrl",
            GateMode::Cir => "cir",
            GateMode::Ctrl => "ctrl",
        }
    }
    /// Whether the gate's decision needs the branch output F(x).
    pub fn needs_branch(self) -> bool {
        !matches!(self, GateMode::Ctrl)
    }
    /// Whether the gate has a controller MLP on the pooled input.
    pub fn has_controller(self) -> bool {
        !matches!(self, GateMode::Cir)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSpec {
    #[serde(default = "d_gate_mode")]
    pub mode: GateMode,
    /// θ in `z = s·(CIR − θ) + c(x)`.
    #[serde(default = "d_threshold")]
    pub threshold: f64,
    /// s in `z = s·(CIR − θ) + c(x)`.
    #[serde(default = "d_cir_scale")]
    pub cir_scale: f64,
    /// Inference: execute the block iff σ(z) ≥ p_threshold.
    #[serde(default = "d_p_threshold")]
    pub p_threshold: f64,
    #[serde(default = "d_tau_start")]
    pub tau_start: f64,
    #[serde(default = "d_tau_end")]
    pub tau_end: f64,
    /// Straight-through hard gates while training (soft relaxed gates when false).
    #[serde(default = "d_true")]
    pub hard: bool,
    /// Gate the stride-2 blocks too.
    #[serde(default)]
    pub gate_downsample: bool,
    #[serde(default = "d_ctrl_hidden")]
    pub controller_hidden: usize,
    /// Initial bias of the controller's output (and of the learned bias in `cir` mode): gates start open.
    #[serde(default = "d_ctrl_bias")]
    pub controller_bias_init: f64,
    /// CIR modes: each gated block gets a predictor (GAP of the block input → 16 → 1) trained to
    /// predict the block's hard CIR decision; at inference the predictor alone decides, so a
    /// closed block's F(x) is never computed.
    #[serde(default)]
    pub predictor: bool,
}

impl GateSpec {
    /// Whether the inference decision needs the branch output F(x): the CIR modes without a
    /// predictor.
    pub fn decision_needs_branch(&self) -> bool {
        self.mode.needs_branch() && !self.predictor
    }
}

impl Default for GateSpec {
    fn default() -> Self {
        Self {
            mode: d_gate_mode(),
            threshold: d_threshold(),
            cir_scale: d_cir_scale(),
            p_threshold: d_p_threshold(),
            tau_start: d_tau_start(),
            tau_end: d_tau_end(),
            hard: true,
            gate_downsample: false,
            controller_hidden: d_ctrl_hidden(),
            controller_bias_init: d_ctrl_bias(),
            predictor: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossSpec {
    /// λ_max of the progressive FLOPs penalty.
    #[serde(default = "d_flops_weight")]
    pub flops_weight: f64,
    /// Target executed fraction T; 0 means the linear penalty, T > 0 means relu(frac − T)².
    #[serde(default)]
    pub flops_target: f64,
    /// Training progress (0..1) at which λ_flops starts to ramp up from 0.
    #[serde(default = "d_ramp_start")]
    pub ramp_start: f64,
    /// Training progress at which λ_flops reaches `flops_weight`.
    #[serde(default = "d_ramp_end")]
    pub ramp_end: f64,
    /// λ_cons; 0 skips the noisy pass.
    #[serde(default = "d_cons_weight")]
    pub cons_weight: f64,
    /// σ of the Gaussian input noise of the consistency term (on normalised inputs).
    #[serde(default = "d_cons_sigma")]
    pub cons_sigma: f64,
    /// Weight of the predictor's binary cross-entropy (`gate.predictor: true` only).
    #[serde(default = "d_predictor_weight")]
    pub predictor_weight: f64,
}

impl Default for LossSpec {
    fn default() -> Self {
        Self {
            flops_weight: d_flops_weight(),
            flops_target: 0.0,
            ramp_start: d_ramp_start(),
            ramp_end: d_ramp_end(),
            cons_weight: d_cons_weight(),
            cons_sigma: d_cons_sigma(),
            predictor_weight: d_predictor_weight(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Linear warm-up, then cosine decay to 0.
    Cosine,
    /// Linear warm-up, then ×0.1 at 50% and 75% of training.
    Step,
    /// Constant after warm-up.
    Constant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    #[serde(default = "d_epochs")]
    pub epochs: usize,
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Peak learning rate; default 0.1 × batch_size / 128.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(default = "d_momentum")]
    pub momentum: f64,
    /// L2 on conv and linear weights only.
    #[serde(default = "d_weight_decay")]
    pub weight_decay: f64,
    #[serde(default = "d_schedule")]
    pub schedule: Schedule,
    /// Warm-up length as a fraction of all steps.
    #[serde(default = "d_warmup")]
    pub warmup: f64,
    #[serde(default)]
    pub seed: u64,
    /// Train on a seeded random subset of this size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_train: Option<usize>,
    /// Evaluate on a seeded random subset of this size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_test: Option<usize>,
    /// Stop after this epoch, the schedules still spanning `epochs` (a rung of `method: mo-asha`);
    /// the checkpoint stays, so a later rung continues from it as an uninterrupted run would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_after: Option<usize>,
}

impl Default for TrainSpec {
    fn default() -> Self {
        Self {
            epochs: d_epochs(),
            batch_size: d_batch(),
            lr: None,
            momentum: d_momentum(),
            weight_decay: d_weight_decay(),
            schedule: d_schedule(),
            warmup: d_warmup(),
            seed: 0,
            limit_train: None,
            limit_test: None,
            stop_after: None,
        }
    }
}

impl TrainSpec {
    /// The peak learning rate actually used.
    pub fn effective_lr(&self) -> f64 {
        self.lr.unwrap_or(0.1 * self.batch_size as f64 / 128.0)
    }

    /// The epoch training ends at: `stop_after` when it cuts the schedule short, else `epochs`.
    pub fn end_epoch(&self) -> usize {
        self.stop_after.map_or(self.epochs, |s| s.min(self.epochs))
    }
}

fn d_synth_train() -> usize {
    512
}
fn d_synth_test() -> usize {
    256
}
fn d_synth_channels() -> usize {
    3
}
fn d_synth_side() -> usize {
    32
}
fn d_classes() -> usize {
    10
}
fn d_model_kind() -> ModelKind {
    ModelKind::Cosinegate
}
fn d_depth() -> usize {
    20
}
fn d_width() -> usize {
    16
}
fn d_shortcut() -> Shortcut {
    Shortcut::A
}
fn d_gate_mode() -> GateMode {
    GateMode::CirCtrl
}
fn d_threshold() -> f64 {
    1.0
}
fn d_cir_scale() -> f64 {
    5.0
}
fn d_p_threshold() -> f64 {
    0.5
}
fn d_tau_start() -> f64 {
    2.0
}
fn d_tau_end() -> f64 {
    0.5
}
fn d_true() -> bool {
    true
}
fn d_ctrl_hidden() -> usize {
    16
}
fn d_ctrl_bias() -> f64 {
    3.0
}
fn d_flops_weight() -> f64 {
    0.5
}
fn d_ramp_start() -> f64 {
    0.1
}
fn d_ramp_end() -> f64 {
    0.5
}
fn d_cons_weight() -> f64 {
    0.1
}
fn d_cons_sigma() -> f64 {
    0.05
}
fn d_predictor_weight() -> f64 {
    1.0
}
fn d_epochs() -> usize {
    200
}
fn d_batch() -> usize {
    128
}
fn d_momentum() -> f64 {
    0.9
}
fn d_weight_decay() -> f64 {
    5e-4
}
fn d_schedule() -> Schedule {
    Schedule::Cosine
}
fn d_warmup() -> f64 {
    0.01
}

/// Upper bounds of the sizes in a configuration, checked by [`RunConfig::problems`] before anything
/// is allocated: far above any sensible run, far below what overflows or exhausts memory.
pub mod limits {
    /// `model.depth` (ResNet-1202 is the deepest CIFAR ResNet published).
    pub const DEPTH: usize = 1202;
    /// `model.width`: channels of the first stage (the last has 4×).
    pub const WIDTH: usize = 1024;
    /// `model.num_classes`.
    pub const CLASSES: usize = 100_000;
    /// Classes of a data set cg builds or reads (`dataset.synthetic.classes`, class folders): its
    /// labels are one byte each.
    pub const DATA_CLASSES: usize = 256;
    /// `model.in_channels`, `dataset.synthetic.channels`.
    pub const CHANNELS: usize = 64;
    /// `gate.controller_hidden`.
    pub const CONTROLLER_HIDDEN: usize = 4096;
    /// `train.epochs`.
    pub const EPOCHS: usize = 100_000;
    /// `train.batch_size`.
    pub const BATCH_SIZE: usize = 65_536;
    /// `train.limit_train`, `train.limit_test`, `dataset.val_size`, `dataset.synthetic.n_train|n_test`.
    pub const SAMPLES: usize = 100_000_000;
    /// `dataset.synthetic.side`.
    pub const SIDE: usize = 1024;
    /// Values of a synthetic data set in memory, its samples and its class prototypes together
    /// (4 bytes each once batched: 4 GiB).
    pub const SYNTHETIC_VALUES: u64 = 1 << 30;
}

/// One thing wrong with a configuration, at a dotted key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl RunConfig {
    /// A configuration with every default and the given data set.
    pub fn with_dataset(dataset: DatasetSpec) -> Self {
        Self {
            dataset,
            model: ModelSpec::default(),
            gate: GateSpec::default(),
            loss: LossSpec::default(),
            train: TrainSpec::default(),
        }
    }

    /// A configuration with every optional field present, so that every key shows with its type.
    pub fn fully_specified() -> Self {
        let mut cfg = RunConfig::with_dataset(DatasetSpec {
            kind: DatasetKind::Synthetic,
            val_size: Some(1),
            path: Some(String::new()),
            augment: Some(true),
            synthetic: Some(SyntheticSpec::default()),
        });
        cfg.model.in_channels = Some(1);
        cfg.model.removed_blocks = vec![1];
        cfg.train.lr = Some(0.1);
        cfg.train.limit_train = Some(1);
        cfg.train.limit_test = Some(1);
        cfg.train.stop_after = Some(1);
        cfg
    }

    /// Parses a configuration from a JSON value (unknown keys are errors).
    pub fn from_json(value: Value) -> Result<Self> {
        serde_json::from_value(value).map_err(|e| Error::InvalidValue {
            key: String::from("<root>"),
            message: e.to_string(),
        })
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("RunConfig serialises")
    }

    /// Every value that lies outside its allowed range; empty when the configuration is usable.
    /// Checked section by section, in a fixed order.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Problems::default();
        if let Some(s) = &self.dataset.synthetic {
            out.synthetic(s);
        }
        out.sizes(self.sizes());
        out.model(&self.model);
        out.gate(&self.gate);
        out.loss(&self.loss);
        out.train(&self.train);
        if self.dataset.kind != DatasetKind::Synthetic && self.dataset.path.is_none() {
            out.bad("dataset.path", "required for this dataset kind");
        }
        out.0
    }

    /// Each size of the configuration with its key and its upper bound ([`limits`]).
    fn sizes(&self) -> Vec<(&'static str, usize, usize)> {
        let m = &self.model;
        let t = &self.train;
        let mut sizes = vec![
            ("model.depth", m.depth, limits::DEPTH),
            ("model.width", m.width, limits::WIDTH),
            ("model.num_classes", m.num_classes, limits::CLASSES),
            (
                "model.in_channels",
                m.in_channels.unwrap_or(1),
                limits::CHANNELS,
            ),
            (
                "gate.controller_hidden",
                self.gate.controller_hidden,
                limits::CONTROLLER_HIDDEN,
            ),
            ("train.epochs", t.epochs, limits::EPOCHS),
            ("train.batch_size", t.batch_size, limits::BATCH_SIZE),
            (
                "train.limit_train",
                t.limit_train.unwrap_or(0),
                limits::SAMPLES,
            ),
            (
                "train.limit_test",
                t.limit_test.unwrap_or(0),
                limits::SAMPLES,
            ),
            (
                "dataset.val_size",
                self.dataset.val_size.unwrap_or(0),
                limits::SAMPLES,
            ),
        ];
        if let Some(s) = &self.dataset.synthetic {
            sizes.extend([
                ("dataset.synthetic.n_train", s.n_train, limits::SAMPLES),
                ("dataset.synthetic.n_test", s.n_test, limits::SAMPLES),
                ("dataset.synthetic.channels", s.channels, limits::CHANNELS),
                ("dataset.synthetic.side", s.side, limits::SIDE),
                ("dataset.synthetic.classes", s.classes, limits::DATA_CLASSES),
            ]);
        }
        sizes
    }

    /// Sets one dotted key (`gate.threshold`) to a value; the result must still fit the schema.
    pub fn set(&mut self, key: &str, value: Value) -> Result<()> {
        let mut root = self.to_json();
        set_path(&mut root, key, value.clone())?;
        *self = serde_json::from_value(root).map_err(|e| Error::InvalidValue {
            key: key.to_string(),
            message: e.to_string(),
        })?;
        Ok(())
    }

    /// The configuration without `train.stop_after`: the whole run a rung job is a part of.
    pub fn without_stop(&self) -> RunConfig {
        let mut c = self.clone();
        c.train.stop_after = None;
        c
    }

    /// The leaves that differ from the defaults, as a sorted JSON object of dotted keys. Stable when new
    /// fields with default values are added later: used to hash configurations into job ids.
    pub fn non_default_values(&self) -> serde_json::Map<String, Value> {
        let defaults = RunConfig::with_dataset(DatasetSpec {
            kind: self.dataset.kind,
            val_size: None,
            path: None,
            augment: None,
            synthetic: None,
        })
        .to_json();
        let mut out = serde_json::Map::new();
        diff_leaves("", &self.to_json(), &defaults, &mut out);
        out
    }
}

/// The problems of a configuration as [`RunConfig::problems`] finds them, one section at a time.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn bad(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// `dataset.synthetic`: sizes of at least 1, two classes, and what it makes fits in memory.
    fn synthetic(&mut self, s: &SyntheticSpec) {
        for (key, v) in [
            ("dataset.synthetic.n_train", s.n_train),
            ("dataset.synthetic.n_test", s.n_test),
            ("dataset.synthetic.channels", s.channels),
            ("dataset.synthetic.side", s.side),
        ] {
            if v == 0 {
                self.bad(key, "must be at least 1");
            }
        }
        if s.classes < 2 {
            self.bad(
                "dataset.synthetic.classes",
                format!("must be at least 2, got {}", s.classes),
            );
        }
        // In u128: the product of these sizes (each at most a usize) cannot overflow it.
        // One prototype image per class is generated besides the samples.
        let pixels = (s.channels as u128) * (s.side as u128) * (s.side as u128);
        let total = pixels * (s.n_train as u128 + s.n_test as u128 + s.classes as u128);
        if total > u128::from(limits::SYNTHETIC_VALUES) {
            self.bad(
                "dataset.synthetic",
                format!(
                    "(n_train + n_test + classes) × channels × side² is {total} values, more \
                     than the {} that cg generates in memory",
                    limits::SYNTHETIC_VALUES
                ),
            );
        }
    }

    /// Each size above its upper bound.
    fn sizes(&mut self, sizes: Vec<(&'static str, usize, usize)>) {
        for (key, value, max) in sizes {
            if value > max {
                self.bad(key, format!("must be at most {max}, got {value}"));
            }
        }
    }

    /// `model`: a CIFAR ResNet depth, a width, channels and classes.
    fn model(&mut self, m: &ModelSpec) {
        if m.depth < 8 || !(m.depth - 2).is_multiple_of(6) {
            self.bad(
                "model.depth",
                format!(
                    "must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110), got {}",
                    m.depth
                ),
            );
        }
        if m.width == 0 {
            self.bad("model.width", "must be at least 1");
        }
        if let Some(c) = m.in_channels
            && c == 0
        {
            self.bad("model.in_channels", "must be at least 1");
        }
        if m.num_classes < 2 {
            self.bad(
                "model.num_classes",
                format!("must be at least 2, got {}", m.num_classes),
            );
        }
        self.removed_blocks(m);
    }

    /// `model.removed_blocks`: increasing indices of blocks that keep their shape (not the first
    /// block of stages 2 and 3, which halves the side).
    fn removed_blocks(&mut self, m: &ModelSpec) {
        let per_stage = m.depth.saturating_sub(2) / 6;
        let blocks = 3 * per_stage;
        if !m.removed_blocks.windows(2).all(|w| w[0] < w[1]) {
            self.bad(
                "model.removed_blocks",
                "list each block once, in increasing order",
            );
        }
        for &b in &m.removed_blocks {
            if b >= blocks {
                self.bad(
                    "model.removed_blocks",
                    format!(
                        "block {b} does not exist: depth {} has {blocks} blocks",
                        m.depth
                    ),
                );
            } else if m.block_downsamples(b) {
                self.bad(
                    "model.removed_blocks",
                    format!("block {b} downsamples (stride 2) and cannot be removed"),
                );
            }
        }
    }

    /// `gate`: the threshold within CIR's range, a probability, positive temperatures.
    fn gate(&mut self, g: &GateSpec) {
        if !(0.0..=2.0).contains(&g.threshold) {
            self.bad(
                "gate.threshold",
                format!("CIR lies in [0, 2], so θ must too; got {}", g.threshold),
            );
        }
        if !(g.p_threshold > 0.0 && g.p_threshold < 1.0) {
            self.bad(
                "gate.p_threshold",
                format!("must lie strictly between 0 and 1, got {}", g.p_threshold),
            );
        }
        for (key, v) in [("gate.tau_start", g.tau_start), ("gate.tau_end", g.tau_end)] {
            if !(v > 0.0 && v.is_finite()) {
                self.bad(key, format!("temperature must be > 0, got {v}"));
            }
        }
        if !g.cir_scale.is_finite() {
            self.bad("gate.cir_scale", "must be finite");
        }
        if g.controller_hidden == 0 {
            self.bad("gate.controller_hidden", "must be at least 1");
        }
        if g.predictor && !g.mode.needs_branch() {
            self.bad(
                "gate.predictor",
                "predicts the CIR decision, so needs mode `cir` or `cir+ctrl` (`ctrl` already \
                 decides without F(x))",
            );
        }
    }

    /// `loss`: weights of at least 0, a target fraction, an ordered ramp.
    fn loss(&mut self, l: &LossSpec) {
        for (key, v) in [
            ("loss.flops_weight", l.flops_weight),
            ("loss.cons_weight", l.cons_weight),
            ("loss.cons_sigma", l.cons_sigma),
            ("loss.predictor_weight", l.predictor_weight),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                self.bad(key, format!("must be >= 0, got {v}"));
            }
        }
        if !(0.0..1.0).contains(&l.flops_target) {
            self.bad(
                "loss.flops_target",
                format!(
                    "executed fraction target must lie in [0, 1), got {}",
                    l.flops_target
                ),
            );
        }
        if !(0.0 <= l.ramp_start && l.ramp_start <= l.ramp_end && l.ramp_end <= 1.0) {
            self.bad(
                "loss.ramp_start",
                format!(
                    "need 0 <= ramp_start <= ramp_end <= 1, got {} and {}",
                    l.ramp_start, l.ramp_end
                ),
            );
        }
    }

    /// `train`: the schedule and the optimiser, then the sample limits and the stop.
    fn train(&mut self, t: &TrainSpec) {
        if t.epochs < 1 {
            self.bad("train.epochs", "must be at least 1");
        }
        if t.batch_size < 2 {
            self.bad(
                "train.batch_size",
                format!(
                    "must be at least 2 (batch norm needs two images per batch), got {}",
                    t.batch_size
                ),
            );
        }
        self.optimiser(t);
        for (key, v) in [
            ("train.limit_train", t.limit_train),
            ("train.limit_test", t.limit_test),
        ] {
            if matches!(v, Some(0 | 1)) {
                self.bad(
                    key,
                    "must be at least 2 when given (batch norm needs two images per batch)",
                );
            }
        }
        if let Some(s) = t.stop_after
            && !(1..=t.epochs).contains(&s)
        {
            self.bad(
                "train.stop_after",
                format!("must lie in 1..=train.epochs ({}), got {s}", t.epochs),
            );
        }
    }

    /// `train.lr`, `momentum`, `weight_decay` and `warmup`.
    fn optimiser(&mut self, t: &TrainSpec) {
        if let Some(lr) = t.lr
            && !(lr > 0.0 && lr.is_finite())
        {
            self.bad("train.lr", format!("must be > 0, got {lr}"));
        }
        if !(0.0..1.0).contains(&t.momentum) {
            self.bad(
                "train.momentum",
                format!("must lie in [0, 1), got {}", t.momentum),
            );
        }
        if t.weight_decay.is_nan() || t.weight_decay < 0.0 {
            self.bad(
                "train.weight_decay",
                format!("must be >= 0, got {}", t.weight_decay),
            );
        }
        if !(0.0..1.0).contains(&t.warmup) {
            self.bad(
                "train.warmup",
                format!("fraction of training must lie in [0, 1), got {}", t.warmup),
            );
        }
    }
}

/// Every dotted key a run file accepts, for "did you mean" hints and schema listings.
pub fn known_keys() -> Vec<String> {
    let cfg = RunConfig::fully_specified();
    let mut keys = Vec::new();
    collect_keys("", &cfg.to_json(), &mut keys);
    keys
}

fn collect_keys(prefix: &str, v: &Value, out: &mut Vec<String>) {
    if let Value::Object(map) = v {
        for (k, child) in map {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.push(path.clone());
            collect_keys(&path, child, out);
        }
    }
}

fn diff_leaves(prefix: &str, v: &Value, default: &Value, out: &mut serde_json::Map<String, Value>) {
    match (v, default) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, child) in a {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                diff_leaves(&path, child, b.get(k).unwrap_or(&Value::Null), out);
            }
        }
        _ if v == default => {}
        _ => {
            out.insert(prefix.to_string(), v.clone());
        }
    }
}

fn set_path(root: &mut Value, key: &str, value: Value) -> Result<()> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(Error::UnknownKey {
            key: key.to_string(),
            hint: String::new(),
        });
    }
    let known = known_keys();
    if !known.iter().any(|k| k == key) {
        let hint = closest(key, &known)
            .map(|k| format!(" (did you mean `{k}`?)"))
            .unwrap_or_default();
        return Err(Error::UnknownKey {
            key: key.to_string(),
            hint,
        });
    }
    let mut node = root;
    for (i, part) in parts.iter().enumerate() {
        let map = match node {
            Value::Object(map) => map,
            other => {
                *other = Value::Object(serde_json::Map::new());
                other.as_object_mut().expect("just made an object")
            }
        };
        if i + 1 == parts.len() {
            map.insert(part.to_string(), value);
            return Ok(());
        }
        node = map.entry(part.to_string()).or_insert(Value::Null);
    }
    unreachable!("the loop returns at the last part")
}

/// The known key nearest to `key` by edit distance, when it is close enough to be a likely typo.
pub fn closest<'a>(key: &str, known: &'a [String]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Parses the value of a `--set key=value`: JSON where it parses (numbers, booleans, null, arrays),
/// a plain string otherwise.
pub fn parse_set_value(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> RunConfig {
        RunConfig::from_json(serde_json::json!({"dataset": {"kind": "synthetic"}})).unwrap()
    }

    #[test]
    fn removed_blocks_must_exist_keep_their_shape_and_increase() {
        // Depth 20: blocks 0–8, blocks 3 and 6 open stages 2 and 3 (stride 2).
        let downsampling: Vec<usize> = (0..9)
            .filter(|b| base().model.block_downsamples(*b))
            .collect();
        assert_eq!(downsampling, [3, 6]);
        for (removed, bad) in [
            (vec![1, 4], false),
            (vec![0, 1, 2, 4, 5, 7, 8], false),
            (vec![3], true),
            (vec![9], true),
            (vec![4, 1], true),
            (vec![1, 1], true),
        ] {
            let mut c = base();
            c.model.removed_blocks = removed.clone();
            let found = c.problems().iter().any(|p| p.key == "model.removed_blocks");
            assert_eq!(found, bad, "{removed:?}");
        }
    }

    #[test]
    fn defaults_follow_method_md() {
        let c = base();
        assert_eq!(c.model.depth, 20);
        assert_eq!(c.model.width, 16);
        assert_eq!(c.gate.mode, GateMode::CirCtrl);
        assert_eq!(
            (c.gate.threshold, c.gate.cir_scale, c.gate.p_threshold),
            (1.0, 5.0, 0.5)
        );
        assert_eq!((c.gate.tau_start, c.gate.tau_end), (2.0, 0.5));
        assert_eq!(
            (c.loss.flops_weight, c.loss.ramp_start, c.loss.ramp_end),
            (0.5, 0.1, 0.5)
        );
        assert_eq!((c.loss.cons_weight, c.loss.cons_sigma), (0.1, 0.05));
        assert_eq!(c.train.effective_lr(), 0.1);
        assert!(c.problems().is_empty());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = RunConfig::from_json(
            serde_json::json!({"dataset": {"kind": "synthetic"}, "gate": {"treshold": 1}}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("treshold"), "{err}");
        let mut c = base();
        let err = c.set("gate.treshold", Value::from(0.5)).unwrap_err();
        assert!(
            err.to_string().contains("did you mean `gate.threshold`"),
            "{err}"
        );
    }

    #[test]
    fn set_changes_one_key_and_checks_type() {
        let mut c = base();
        c.set("gate.threshold", parse_set_value("0.9")).unwrap();
        c.set("gate.mode", parse_set_value("ctrl")).unwrap();
        c.set("train.limit_train", parse_set_value("100")).unwrap();
        assert_eq!(c.gate.threshold, 0.9);
        assert_eq!(c.gate.mode, GateMode::Ctrl);
        assert_eq!(c.train.limit_train, Some(100));
        assert!(c.set("train.epochs", parse_set_value("many")).is_err());
        assert!(c.set("gate.mode", parse_set_value("bogus")).is_err());
    }

    #[test]
    fn problems_name_keys() {
        let mut c = base();
        c.gate.threshold = 2.5;
        c.gate.tau_end = 0.0;
        c.gate.p_threshold = 1.0;
        c.train.batch_size = 0;
        c.model.depth = 21;
        let keys: Vec<String> = c.problems().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "model.depth",
                "gate.threshold",
                "gate.p_threshold",
                "gate.tau_end",
                "train.batch_size"
            ]
        );
    }

    #[test]
    fn non_default_values_ignore_defaults_and_order() {
        let a = RunConfig::from_json(serde_json::json!({
            "dataset": {"kind": "synthetic"}, "gate": {"threshold": 0.9, "mode": "cir+ctrl"}, "train": {"seed": 3}
        }))
        .unwrap();
        let b = RunConfig::from_json(serde_json::json!({
            "train": {"seed": 3}, "gate": {"threshold": 0.9}, "dataset": {"kind": "synthetic"}
        }))
        .unwrap();
        assert_eq!(a.non_default_values(), b.non_default_values());
        let nd = a.non_default_values();
        let keys: Vec<&String> = nd.keys().collect();
        assert_eq!(keys, ["gate.threshold", "train.seed"]);
    }
}
