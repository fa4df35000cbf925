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
    /// A hash of the indices of the validation images (`dataset.val_size`): equal for every job
    /// over the same data set and split, so a report can check that they shared one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_split: Option<String>,
}

/// Gate statistics of one gated block over an evaluation (the validation split when the run has
/// one, else the test set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockGateStats {
    pub block_idx: usize,
    /// Fraction of samples for which the block executed.
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub gate_open_rate: f64,
    /// Mean Cosine Incompatibility Ratio `1 - cos(x, F(x))` over the samples.
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub mean_cir: f64,
    /// `min(open, 1 − open)` over the samples: 0 for a block that every input opens (or closes),
    /// up to 0.5; a block routes when it is at least [`ROUTING_SHARE`]. Absent in older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_share: Option<f64>,
    /// The open rate per class (index = label); absent in older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_open_rates: Option<Vec<f64>>,
}

/// The `routing_share` from which a gated block counts as routing per input rather than being
/// kept or removed for all of them.
pub const ROUTING_SHARE: f64 = 0.05;

/// The routing share of a block that opens for the fraction `open_rate` of its inputs: the
/// share that takes the minority way, `min(open, 1 − open)`.
pub fn routing_share_of(open_rate: f64) -> f64 {
    open_rate.min(1.0 - open_rate)
}

impl BlockGateStats {
    /// The block's routing share: as recorded, or for older results the one its open rate implies
    /// ([`routing_share_of`]).
    pub fn share(&self) -> f64 {
        self.routing_share
            .unwrap_or_else(|| routing_share_of(self.gate_open_rate))
    }

    /// Whether the block routes per input: its share is at least [`ROUTING_SHARE`].
    pub fn routes(&self) -> bool {
        self.share() >= ROUTING_SHARE
    }
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
    /// Accuracy on the validation split; absent when the run has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_acc: Option<f64>,
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
    /// The test accuracy at `peak_epoch`.
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub test_acc_peak: f64,
    /// The best epoch: by validation accuracy when the run has a validation split, else by test
    /// accuracy (a choice made on the test set, which reports say).
    pub peak_epoch: usize,
    /// Validation accuracy after the last epoch and at `peak_epoch`; absent without a split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_acc_final: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_acc_peak: Option<f64>,
    /// Images trained on and held out for validation (counts actually used); absent in older
    /// results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_images: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_images: Option<usize>,
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
    /// `gate.predictor` runs: the share of gate decisions (blocks × evaluated inputs) where the
    /// predictor agrees with the CIR gate; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictor_agreement: Option<f64>,
    /// Final per-block gate statistics on the test set.
    pub gates: Vec<BlockGateStats>,
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub train_img_per_s: f64,
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub infer_img_per_s: f64,
    #[serde(deserialize_with = "crate::nan::f64_or_nan")]
    pub wall_secs: f64,
}

/// The metric a choice reads for an objective named `name`: with a validation split, a test
/// accuracy is read on validation (`test_acc_final` → `val_acc_final`, `test_acc_peak` →
/// `val_acc_peak`); any other name as it is. The one rule for runs ([`RunResult::choice_metric`])
/// and for configurations over seeds (cg-report).
pub fn chosen_metric(name: &str, validation: bool) -> &str {
    match name {
        "test_acc_final" if validation => "val_acc_final",
        "test_acc_peak" if validation => "val_acc_peak",
        other => other,
    }
}

/// The metrics of a [`RunResult`] that an objective can name (its numeric top-level fields), as
/// [`RunResult::metric`] reads them.
pub const METRICS: [&str; 15] = [
    "test_acc_final",
    "test_acc_peak",
    "val_acc_final",
    "val_acc_peak",
    "peak_epoch",
    "macs_full",
    "macs_executed_nominal",
    "macs_executed_actual",
    "savings_nominal",
    "savings_actual",
    "savings_measured",
    "predictor_agreement",
    "train_img_per_s",
    "infer_img_per_s",
    "wall_secs",
];

impl RunResult {
    /// Whether the run held out a validation split (its choices were made on it).
    pub fn has_validation(&self) -> bool {
        self.val_acc_final.is_some()
    }

    /// The metric a *choice* reads for an objective named `name` (the front, promotions): on a run
    /// with a validation split a test accuracy is read on validation instead (`test_acc_final` →
    /// `val_acc_final`, `test_acc_peak` → `val_acc_peak`), so nothing is chosen on the test set;
    /// any other name is read as it is.
    pub fn choice_metric(&self, name: &str) -> Option<f64> {
        self.metric(chosen_metric(name, self.has_validation()))
    }

    /// A numeric top-level field by its JSON name (`test_acc_final`, `savings_nominal`, ...);
    /// `None` for another name, a savings figure that was not measured, or a validation figure of
    /// a run without a validation split.
    pub fn metric(&self, name: &str) -> Option<f64> {
        Some(match name {
            "test_acc_final" => self.test_acc_final,
            "test_acc_peak" => self.test_acc_peak,
            "val_acc_final" => return self.val_acc_final,
            "val_acc_peak" => return self.val_acc_peak,
            "peak_epoch" => self.peak_epoch as f64,
            "macs_full" => self.macs_full as f64,
            "macs_executed_nominal" => self.macs_executed_nominal,
            "macs_executed_actual" => self.macs_executed_actual,
            "savings_nominal" => self.savings_nominal,
            "savings_actual" => self.savings_actual,
            "savings_measured" => return self.savings_measured,
            "predictor_agreement" => return self.predictor_agreement,
            "train_img_per_s" => self.train_img_per_s,
            "infer_img_per_s" => self.infer_img_per_s,
            "wall_secs" => self.wall_secs,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(val: Option<f64>) -> RunResult {
        let json = serde_json::json!({
            "config": crate::RunConfig::with_dataset(crate::DatasetSpec {
                kind: crate::DatasetKind::Synthetic,
                path: None,
                augment: None,
                synthetic: None,
                val_size: None,
            }),
            "provenance": Provenance::default(),
            "history": [],
            "test_acc_final": 0.9, "test_acc_peak": 0.91, "peak_epoch": 2,
            "val_acc_final": val, "val_acc_peak": val.map(|v| v + 0.01),
            "macs_full": 100, "macs_executed_nominal": 50.0, "macs_executed_actual": 55.0,
            "savings_nominal": 0.5, "savings_actual": 0.45, "savings_measured": null,
            "gates": [], "train_img_per_s": 1.0, "infer_img_per_s": 2.0, "wall_secs": 3.0,
        });
        serde_json::from_value(json).expect("a result")
    }

    #[test]
    fn choices_read_validation_when_there_is_a_split() {
        let with = result(Some(0.8));
        assert!(with.has_validation());
        assert_eq!(with.choice_metric("test_acc_final"), Some(0.8));
        assert_eq!(with.choice_metric("test_acc_peak"), Some(0.8 + 0.01));
        assert_eq!(with.metric("test_acc_final"), Some(0.9));
        assert_eq!(with.choice_metric("savings_nominal"), Some(0.5));

        let without = result(None);
        assert!(!without.has_validation());
        assert_eq!(without.choice_metric("test_acc_final"), Some(0.9));
        assert_eq!(without.metric("val_acc_final"), None);
        // Absent fields are not written, so an older reader's JSON is unchanged.
        let text = serde_json::to_string(&without).expect("json");
        assert!(!text.contains("val_acc"), "{text}");
    }

    #[test]
    fn every_metric_is_read() {
        let r = result(Some(0.8));
        for name in METRICS {
            let value = r.metric(name);
            assert!(
                value.is_some() || name == "savings_measured" || name == "predictor_agreement",
                "{name} is not read by RunResult::metric"
            );
        }
    }

    #[test]
    fn a_block_routes_from_five_percent() {
        let stats = |open: f64, share: Option<f64>| BlockGateStats {
            block_idx: 0,
            gate_open_rate: open,
            mean_cir: 0.0,
            routing_share: share,
            class_open_rates: None,
        };
        assert!(!stats(0.97, Some(0.03)).routes());
        assert!(stats(0.5, Some(0.05)).routes());
        assert!(!stats(0.0, None).routes());
        assert!(stats(0.9, None).routes());
    }
}
