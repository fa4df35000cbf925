//! What one training run produced (`RESULT.json` and the store's results): accuracy, nominal,
//! actual and measured costs, per-epoch history, per-block gate statistics, provenance.

use serde::{Deserialize, Serialize};

use crate::RunConfig;

/// Where and with what a result was produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Provenance {
    pub cg_version: String,
    pub git_commit: Option<String>,
    pub burn_version: String,
    pub device: String,
    /// The training backend (`flex`, `cubecl`, `libtorch`); empty in results from before it was
    /// recorded (those ran on flex or cubecl).
    #[serde(default)]
    pub backend: String,
    pub hostname: Option<String>,
    /// RFC 3339 time at which the run finished.
    pub finished_at: Option<String>,
}

/// Gate statistics of one gated block over a test-set evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockGateStats {
    pub block_idx: usize,
    /// Fraction of test samples for which the block executed.
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub gate_open_rate: f64,
    /// Mean Cosine Incompatibility Ratio `1 - cos(x, F(x))` over test samples.
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub mean_cir: f64,
}

/// One epoch of training followed by an evaluation with hard gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub train_loss: f64,
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub train_acc: f64,
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub test_acc: f64,
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub savings_nominal: f64,
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub savings_actual: f64,
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub lr: f64,
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub tau: f64,
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub flops_weight: f64,
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub wall_secs: f64,
    pub gates: Vec<BlockGateStats>,
}

/// Everything one training run produced: written as RESULT.json and stored in the database.
///
/// A NaN or infinite float is written as JSON `null` (serde_json's rule) and read back as NaN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub config: RunConfig,
    pub provenance: Provenance,
    pub history: Vec<EpochRecord>,
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub test_acc_final: f64,
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub test_acc_peak: f64,
    pub peak_epoch: usize,
    /// MACs per sample of the backbone alone (no gate heads).
    pub macs_full: u64,
    /// Mean MACs per sample executed with hard gates, skipped blocks counted as zero.
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub macs_executed_nominal: f64,
    /// Mean MACs per sample really computed, including gate overhead and branches computed to decide.
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub macs_executed_actual: f64,
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub savings_nominal: f64,
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub savings_actual: f64,
    /// Wall-clock savings of real (gather/scatter) skipping; null where not measured.
    pub savings_measured: Option<f64>,
    /// Final per-block gate statistics on the test set.
    pub gates: Vec<BlockGateStats>,
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub train_img_per_s: f64,
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub infer_img_per_s: f64,
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub wall_secs: f64,
}

impl RunResult {
    /// A numeric top-level field by its JSON name (`test_acc_final`, `savings_nominal`, ...);
    /// `None` for another name or a savings figure that was not measured.
    pub fn metric(&self, name: &str) -> Option<f64> {
        Some(match name {
            "test_acc_final" => self.test_acc_final,
            "test_acc_peak" => self.test_acc_peak,
            "peak_epoch" => self.peak_epoch as f64,
            "macs_full" => self.macs_full as f64,
            "macs_executed_nominal" => self.macs_executed_nominal,
            "macs_executed_actual" => self.macs_executed_actual,
            "savings_nominal" => self.savings_nominal,
            "savings_actual" => self.savings_actual,
            "savings_measured" => return self.savings_measured,
            "train_img_per_s" => self.train_img_per_s,
            "infer_img_per_s" => self.infer_img_per_s,
            "wall_secs" => self.wall_secs,
            _ => return None,
        })
    }
}
