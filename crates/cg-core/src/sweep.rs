//! What a sweep is to the rest of cg: its objectives with their directions, its reference point
//! and axes (`SweepInfo`), and a stored job with its state and result (`JobRecord`).

use serde::{Deserialize, Serialize};

use crate::{JobSpec, JobStatus, RunResult};

/// Whether an objective is to be made large or small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Maximize,
    Minimize,
}

/// One axis of the Pareto front: a metric of [`RunResult`] by its JSON name (`test_acc_final`,
/// `savings_nominal`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    pub metric: String,
    pub direction: Direction,
}

/// A matched-compute control (sweep key `controls`): a plain ResNet a sweep trains, for each
/// seed, beside every CosineGate configuration on its final front. Never a front candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Control {
    /// The configuration's network with the gated blocks it closes for at least
    /// [`STATIC_CLOSED`] of validation inputs removed, no gates.
    Static,
    /// The same depth at the width whose MACs are closest to the configuration's nominal MACs.
    Narrow,
}

impl Control {
    pub fn as_str(self) -> &'static str {
        match self {
            Control::Static => "static",
            Control::Narrow => "narrow",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "static" => Some(Control::Static),
            "narrow" => Some(Control::Narrow),
            _ => None,
        }
    }
}

/// A gated block that a configuration closes for at least this share of validation inputs
/// (open rate ≤ 1 − this, mean over seeds) is removed in its `static` control.
pub const STATIC_CLOSED: f64 = 0.95;

/// The parameter of a control job naming its kind (`static`, `narrow`).
pub const CONTROL_KEY: &str = "control";
/// The parameter of a control job listing the configurations it controls: each one's parameters
/// without `train.seed`, as its jobs' parameters are.
pub const CONTROL_OF_KEY: &str = "control_of";

/// The control kind of a job from its parameters; `None` for a job that is no control.
pub fn control_of_params(params: &serde_json::Map<String, serde_json::Value>) -> Option<Control> {
    params
        .get(CONTROL_KEY)
        .and_then(|v| v.as_str())
        .and_then(Control::parse)
}

/// What a report needs to know of a sweep besides its jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepInfo {
    pub name: String,
    /// Default: maximise `test_acc_final`, maximise `savings_nominal`.
    pub objectives: Vec<Objective>,
    /// Hypervolume reference point, one value per objective. Default: 0 for each.
    pub reference_point: Vec<f64>,
    /// The dotted keys the sweep varies (its axes, `preset` included), in file order.
    pub axes: Vec<String>,
    /// The matched-compute controls it trains once its front is known (sweep key `controls`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<Control>,
}

impl SweepInfo {
    /// A result's values of the objectives, in order, as a choice reads them
    /// ([`RunResult::choice_metric`]: on a run with a validation split a test accuracy is read on
    /// validation, so a search never promotes on the test set); `None` when one is missing or not
    /// finite.
    pub fn objective_values(&self, result: &RunResult) -> Option<Vec<f64>> {
        self.objectives
            .iter()
            .map(|o| result.choice_metric(&o.metric).filter(|v| v.is_finite()))
            .collect()
    }

    /// The metrics of the objectives, in order.
    pub fn metrics(&self) -> Vec<String> {
        self.objectives.iter().map(|o| o.metric.clone()).collect()
    }

    pub fn default_objectives() -> Vec<Objective> {
        vec![
            Objective {
                metric: "test_acc_final".into(),
                direction: Direction::Maximize,
            },
            Objective {
                metric: "savings_nominal".into(),
                direction: Direction::Maximize,
            },
        ]
    }
}

impl JobRecord {
    /// The job's control kind when it is a matched-compute control of its sweep.
    pub fn control(&self) -> Option<Control> {
        control_of_params(&self.job.params)
    }
}

/// A job as the store knows it: its spec, where it is, and its result once it has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub sweep: String,
    pub job: JobSpec,
    pub status: JobStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub result: Option<RunResult>,
}
