//! A search's part of the report (`method: mo-asha`), assembled from what the store holds: the
//! configurations it stopped below its top rung (from its stop decisions), and `cg report
//! --against`, its last hypervolume and epochs beside those of a full grid over the same
//! configurations. Records in, sections out: the caller loads them.

use std::collections::HashMap;

use cg_core::{DecisionKind, JobRecord, JobSpec, JobStatus, SweepInfo};

use super::model::{GridComparison, SearchSection, StoppedRun};
use crate::hv::HvHistoryRow;
use crate::{Error, Result};

/// A decision of a search, as its report needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchDecision {
    pub kind: DecisionKind,
    /// Draw and promote: the job submitted; stop: the job the configuration ends with.
    pub job_id: String,
    /// Draw: 0; promote: the rung it goes to; stop: the rung it ends at.
    pub rung: u64,
    /// The epochs of that rung.
    pub epochs: u64,
}

/// The search part of a report: the top rung's epochs (the most any of `records` trains), and
/// every configuration a stop decision ended below the top rung, in the decisions' order, with
/// the rung job it ended with (a job that carries `train.stop_after`).
pub fn search_section(
    records: &[JobRecord],
    decisions: &[SearchDecision],
    against: Option<GridComparison>,
) -> SearchSection {
    let top_epochs = records
        .iter()
        .map(|r| r.job.config.train.epochs as u64)
        .max()
        .unwrap_or(0);
    let below: Vec<&JobRecord> = records
        .iter()
        .filter(|r| r.job.config.train.stop_after.is_some())
        .collect();
    let stopped = decisions
        .iter()
        .filter(|d| d.kind == DecisionKind::Stop)
        .filter_map(|d| {
            let record = below.iter().find(|r| r.job.id == d.job_id)?;
            Some(StoppedRun {
                rung: d.rung,
                epochs: d.epochs,
                record: (*record).clone(),
            })
        })
        .collect();
    SearchSection {
        top_epochs,
        stopped,
        against,
    }
}

/// What `cg report SEARCH --against GRID` compares.
#[derive(Debug, Clone, Copy)]
pub struct GridRecords<'a> {
    /// The grid sweep's name.
    pub grid: &'a str,
    /// The search sweep's name.
    pub sweep: &'a str,
    /// The search's objectives and reference point (the grid's are not used).
    pub info: &'a SweepInfo,
    /// The full-budget jobs of every configuration of the search, one per seed (the jobs a full
    /// grid over the same file holds, with the same ids); a configuration's point is the mean
    /// over its seeds, as the search reads it.
    pub required: &'a [JobSpec],
    /// The grid's job records.
    pub grid_records: &'a [JobRecord],
    /// The search's last hypervolume and epochs spent, if it has a result.
    pub last: Option<HvHistoryRow>,
}

impl GridRecords<'_> {
    /// The grid's final hypervolume over the required jobs (with the search's objectives and
    /// reference point) and the epochs they trained, beside the search's last. Refused unless
    /// the grid holds a completed result for every required job, and unless that hypervolume is
    /// above zero (a share of zero is undefined).
    pub fn compare(&self) -> Result<GridComparison> {
        let done = self.completed_required()?;
        // Read as chosen: accuracy on validation where a run has a split.
        let points = configuration_points(self.info, &done);
        let directions: Vec<_> = self.info.objectives.iter().map(|o| o.direction).collect();
        let grid_hypervolume =
            cg_core::pareto::hypervolume(&points, &directions, &self.info.reference_point);
        if grid_hypervolume.is_nan() || grid_hypervolume <= 0.0 {
            return Err(Error::NoGridHypervolume {
                grid: self.grid.to_string(),
                reference: self.info.reference_point.clone(),
            });
        }
        let grid_epochs = done
            .iter()
            .map(|r| r.job.config.train.end_epoch() as u64)
            .sum();
        Ok(GridComparison {
            grid: self.grid.to_string(),
            grid_hypervolume,
            grid_epochs,
            search_hypervolume: self.last.map_or(0.0, |h| h.hypervolume),
            search_epochs: self.last.map_or(0, |h| h.epochs_spent),
            grid_points: points,
        })
    }

    /// The grid's completed record of each required job, in the required order; refused
    /// (naming how many lack one, and the first) unless every one has it.
    fn completed_required(&self) -> Result<Vec<&JobRecord>> {
        let completed: HashMap<&str, &JobRecord> = self
            .grid_records
            .iter()
            .filter(|r| r.status == JobStatus::Completed && r.result.is_some())
            .map(|r| (r.job.id.as_str(), r))
            .collect();
        let mut done: Vec<&JobRecord> = Vec::with_capacity(self.required.len());
        let mut missing: Vec<&JobSpec> = Vec::new();
        for job in self.required {
            match completed.get(job.id.as_str()) {
                Some(r) => done.push(r),
                None => missing.push(job),
            }
        }
        if let Some(first) = missing.first() {
            return Err(Error::NotFullGrid {
                grid: self.grid.to_string(),
                sweep: self.sweep.to_string(),
                missing: missing.len(),
                required: self.required.len(),
                example: serde_json::Value::Object(first.params.clone()).to_string(),
            });
        }
        Ok(done)
    }
}

/// The objective values (as chosen) of each configuration among `done`, the mean over its
/// seeds' runs (a seeded grid holds one job per seed of a point), in order of first appearance.
fn configuration_points(info: &SweepInfo, done: &[&JobRecord]) -> Vec<Vec<f64>> {
    let mut groups: Vec<(serde_json::Map<String, serde_json::Value>, Vec<Vec<f64>>)> = Vec::new();
    for r in done {
        let Some(values) = r.result.as_ref().and_then(|res| info.objective_values(res)) else {
            continue;
        };
        let mut key = r.job.params.clone();
        key.remove(crate::aggregate::SEED_KEY);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, runs)) => runs.push(values),
            None => groups.push((key, vec![values])),
        }
    }
    groups
        .into_iter()
        .map(|(_, runs)| {
            let n = runs.len() as f64;
            (0..runs[0].len())
                .map(|i| runs.iter().map(|v| v[i]).sum::<f64>() / n)
                .collect()
        })
        .collect()
}
