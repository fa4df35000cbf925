use serde::{Deserialize, Serialize};

use crate::RunConfig;

/// Where and with what a result was produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Provenance {
    pub cg_version: String,
    pub git_commit: Option<String>,
    pub burn_version: String,
    pub device: String,
    pub hostname: Option<String>,
    /// RFC 3339 time at which the run finished.
    pub finished_at: Option<String>,
}

/// Gate statistics of one gated block over a test-set evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockGateStats {
    pub block_idx: usize,
    /// Fraction of test samples for which the block executed.
    pub gate_open_rate: f64,
    /// Mean Cosine Incompatibility Ratio `1 - cos(x, F(x))` over test samples.
    pub mean_cir: f64,
}

/// One epoch of training followed by an evaluation with hard gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_acc: f64,
    pub test_acc: f64,
    pub savings_nominal: f64,
    pub savings_actual: f64,
    pub lr: f64,
    pub tau: f64,
    pub flops_weight: f64,
    pub wall_secs: f64,
    pub gates: Vec<BlockGateStats>,
}

/// Everything one training run produced: written as RESULT.json and stored in the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub config: RunConfig,
    pub provenance: Provenance,
    pub history: Vec<EpochRecord>,
    pub test_acc_final: f64,
    pub test_acc_peak: f64,
    pub peak_epoch: usize,
    /// MACs per sample of the backbone alone (no gate heads).
    pub macs_full: u64,
    /// Mean MACs per sample executed with hard gates, skipped blocks counted as zero.
    pub macs_executed_nominal: f64,
    /// Mean MACs per sample really computed, including gate overhead and branches computed to decide.
    pub macs_executed_actual: f64,
    pub savings_nominal: f64,
    pub savings_actual: f64,
    /// Wall-clock savings of real (gather/scatter) skipping; null where not measured.
    pub savings_measured: Option<f64>,
    /// Final per-block gate statistics on the test set.
    pub gates: Vec<BlockGateStats>,
    pub train_img_per_s: f64,
    pub infer_img_per_s: f64,
    pub wall_secs: f64,
}
