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
