//! What a job runner (child) tells its worker (parent): one JSON object per line on the child's
//! stdout. The child's stderr is free text (kept in a log file and, on failure, its tail in the
//! store). The parent writes the resolved configuration as one JSON line on the child's stdin and
//! then keeps stdin open: its closing (the parent stopping or dying) asks the child to stop.

use cg_core::{EpochRecord, RunResult};
use serde::{Deserialize, Serialize};

/// One line of a job runner's stdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChildMessage {
    /// Progress within an epoch (at most a few per second).
    Step {
        epoch: usize,
        epochs: usize,
        step: usize,
        steps_per_epoch: usize,
        #[serde(deserialize_with = "cg_core::f64_or_nan")]
        loss: f64,
        #[serde(deserialize_with = "cg_core::f64_or_nan")]
        img_per_s: f64,
        #[serde(deserialize_with = "cg_core::f64_or_nan")]
        eta_secs: f64,
    },
    /// An epoch finished and was checkpointed.
    Epoch { record: EpochRecord },
    /// Something worth showing ("resumed from the checkpoint of epoch 3").
    Note { message: String },
    /// The run finished; the result has its provenance filled in.
    Done { result: Box<RunResult> },
    /// The run ended without a result.
    Failed { kind: FailureKind, message: String },
}

/// Why a run ended without a result; decides whether the job is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The loss became NaN or infinite: retrying gives the same, so the job fails for good.
    NonFiniteLoss,
    /// A data file is missing or corrupt: fails for good until someone fixes the data.
    Data,
    /// The configuration cannot be trained as given.
    Config,
    /// The job was asked to stop (its parent stopping); the last epoch checkpoint stays.
    Stopped,
    /// Anything else (device, checkpoint, IO): worth another attempt.
    Other,
}

impl FailureKind {
    /// Whether another attempt may succeed.
    pub fn retryable(self) -> bool {
        matches!(self, FailureKind::Other | FailureKind::Stopped)
    }

    /// Classifies an error of cg-model.
    pub fn of(error: &cg_model::Error) -> Self {
        match error {
            cg_model::Error::NonFiniteLoss { .. } => FailureKind::NonFiniteLoss,
            cg_model::Error::Data { .. } => FailureKind::Data,
            cg_model::Error::Config(_) => FailureKind::Config,
            cg_model::Error::Stopped { .. } => FailureKind::Stopped,
            _ => FailureKind::Other,
        }
    }
}

impl ChildMessage {
    /// The message as one line of JSON (no newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("child messages serialise")
    }

    /// Parses one line; `None` for anything that is not a message.
    pub fn parse(line: &str) -> Option<Self> {
        serde_json::from_str(line.trim()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_as_tagged_lines() {
        let m = ChildMessage::Failed {
            kind: FailureKind::NonFiniteLoss,
            message: "loss became NaN at epoch 1, step 1".into(),
        };
        let line = m.to_line();
        assert!(
            line.starts_with(r#"{"type":"failed","kind":"non_finite_loss""#),
            "{line}"
        );
        assert_eq!(ChildMessage::parse(&line), Some(m));
        assert_eq!(ChildMessage::parse("not json"), None);
    }

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(!FailureKind::NonFiniteLoss.retryable());
        assert!(!FailureKind::Data.retryable());
        assert!(FailureKind::Other.retryable());
    }
}
