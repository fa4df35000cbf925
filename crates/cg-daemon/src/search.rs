//! Advancing `method: mo-asha` sweeps: after every result, [`advance_search`] reads the sweep's
//! results in the order the search took them, replays cg-search's decisions over them, and
//! records the new decisions with the jobs they submit (one store transaction, insert-if-absent).
//! A coordinator killed at any point and started again makes the same decisions; so do two
//! coordinators at once.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use cg_core::{DecisionKind, JobSpec, JobStatus, RunResult};
use cg_search::{Action, Observation, Search, SearchSpec};
use cg_store::{
    AdvanceSummary, BoxError, DecisionRow, HvRow, LoggedResult, SearchInput, SearchWrite, Store,
};
use cg_sweep::{LoadOptions, Sweep};

use crate::{Error, Result};

/// Makes `sweep` a search in the store (nothing for other methods) and submits its first draws.
pub async fn start_search(store: &Store, sweep: &Sweep) -> Result<Option<AdvanceSummary>> {
    if sweep.search_settings().is_none() {
        return Ok(None);
    }
    let base_dir = sweep.base_dir().to_string_lossy().into_owned();
    store.create_search(sweep.name(), &base_dir).await?;
    advance_search(store, sweep.name()).await
}

/// Takes the sweep's new ended jobs into its search and records and submits what follows from
/// them. `None` when the sweep is not a search. Repeats while decisions lead to jobs that have
/// already ended (a configuration some other sweep trained).
pub async fn advance_search(store: &Store, sweep: &str) -> Result<Option<AdvanceSummary>> {
    let Some(loaded) = stored_search(store, sweep).await? else {
        return Ok(None);
    };
    let mut total = AdvanceSummary::default();
    for _ in 0..64 {
        let s = store
            .advance_search(sweep, |input| decide(&loaded, input))
            .await?;
        total.results_taken += s.results_taken;
        total.decisions_added += s.decisions_added;
        total.jobs_added += s.jobs_added;
        total.finished = s.finished;
        if s.decisions_added == 0 {
            break;
        }
    }
    Ok(Some(total))
}

/// The stored file of the search `sweep`, loaded as when it was submitted (its relative data
/// paths against its folder then, so its job ids are the same); `None` when `sweep` is no search.
pub async fn stored_search(store: &Store, sweep: &str) -> Result<Option<Sweep>> {
    let Some(record) = store.search(sweep).await? else {
        return Ok(None);
    };
    let source = store.sweep_source(sweep).await?;
    let loaded = cg_sweep::load_sweep_str(
        &source,
        &format!("{sweep} (stored)"),
        Path::new(&record.base_dir),
        &LoadOptions::default(),
    )
    .map_err(|d| Error::SearchSweep {
        sweep: sweep.to_string(),
        message: d.to_string(),
    })?;
    Ok(Some(loaded))
}

/// Refuses `sweep` as the file of its stored search when its decisions over the stored results
/// differ from the recorded ones; writes nothing.
pub(crate) async fn check_search_file(store: &Store, sweep: &Sweep) -> Result<()> {
    store
        .check_search(sweep.name(), |input| decide(sweep, input).map(|_| ()))
        .await?;
    Ok(())
}

/// Whether the sweep's search can submit nothing more (true for sweeps that are no search). A
/// sweep is finished only when this holds as well as its jobs having ended.
pub async fn search_finished(store: &Store, sweep: &str) -> Result<bool> {
    Ok(store.search(sweep).await?.is_none_or(|s| s.finished))
}

/// The search spec of a mo-asha sweep.
pub fn search_spec(sweep: &Sweep) -> Option<SearchSpec> {
    let info = sweep.info();
    Some(SearchSpec {
        settings: sweep.search_settings()?,
        directions: info.objectives.iter().map(|o| o.direction).collect(),
        reference_point: info.reference_point,
    })
}

/// The job of a configuration at a rung (the top rung trains the whole schedule, no stop).
fn rung_job(sweep: &Sweep, search: &Search, config: usize, rung: usize) -> Option<JobSpec> {
    let epochs = search.rung_epochs();
    let stop = (rung + 1 < epochs.len()).then(|| epochs[rung]);
    sweep.job_at(search.point(config)?, stop)
}

/// The decision function given to the store: replays the log, takes the new ended jobs that a
/// decision submitted, and returns everything to record.
fn decide(sweep: &Sweep, input: SearchInput) -> std::result::Result<SearchWrite, BoxError> {
    let spec = search_spec(sweep).ok_or("the sweep is not `method: mo-asha`")?;
    let results = Results::new(sweep, &input);
    let mut search = Search::new(spec);
    for row in &input.log {
        search
            .observe(results.observation(row.config, row.rung, &row.job_id, row.failed))
            .map_err(|e| format!("stored result {} ({}): {e}", row.seq, row.job_id))?;
    }
    let mut log = input.log.clone();
    take_ended(sweep, &mut search, &input, &results, &mut log)?;
    let (decisions, jobs) = decision_rows(sweep, &search, &log, &input.decisions)?;
    let hv = search
        .hv_history()
        .iter()
        .enumerate()
        .map(|(seq, h)| HvRow {
            seq: seq as u64,
            epochs_spent: h.epochs_spent as u64,
            hypervolume: h.hypervolume,
        })
        .collect();
    Ok(SearchWrite {
        append: log,
        decisions,
        jobs,
        hv,
        finished: search.is_finished(),
    })
}

/// The ended jobs of a search's sweep, as the search observes them.
struct Results<'a> {
    ended: HashMap<&'a str, (JobStatus, Option<&'a RunResult>)>,
    info: cg_core::SweepInfo,
}

impl<'a> Results<'a> {
    fn new(sweep: &Sweep, input: &'a SearchInput) -> Self {
        let ended = input
            .ended
            .iter()
            .map(|e| (e.job_id.as_str(), (e.status, e.result.as_ref())))
            .collect();
        Self {
            ended,
            info: sweep.info(),
        }
    }

    /// What the search observes of `job` (configuration `config` at `rung`): its objectives,
    /// none when it failed or has no result.
    fn observation(&self, config: u64, rung: u64, job: &str, failed: bool) -> Observation {
        Observation {
            config: config as usize,
            rung: rung as usize,
            objectives: if failed {
                None
            } else {
                self.ended
                    .get(job)
                    .and_then(|(_, r)| *r)
                    .and_then(|r| self.info.objective_values(r))
            },
        }
    }
}

/// Takes every ended job that a pending decision submitted, until none is left, appending each
/// to `log`. Observing a result can add decisions (promotions, draws), so the pending jobs are
/// looked up afresh for each ended job, and their ids come from (configuration, rung), never
/// from an index.
fn take_ended(
    sweep: &Sweep,
    search: &mut Search,
    input: &SearchInput,
    results: &Results<'_>,
    log: &mut Vec<LoggedResult>,
) -> std::result::Result<(), BoxError> {
    let mut taken: HashSet<(String, u64)> =
        log.iter().map(|r| (r.job_id.clone(), r.config)).collect();
    loop {
        let mut progressed = false;
        for e in &input.ended {
            for (config, rung) in search.pending() {
                if taken.contains(&(e.job_id.clone(), config as u64)) {
                    continue;
                }
                let id = rung_job(sweep, search, config, rung)
                    .map(|j| j.id)
                    .ok_or("a drawn point does not fit the sweep's space")?;
                if id != e.job_id {
                    continue;
                }
                let failed = e.status == JobStatus::Failed;
                let seq = log.len() as u64;
                search.observe(results.observation(
                    config as u64,
                    rung as u64,
                    &e.job_id,
                    failed,
                ))?;
                taken.insert((e.job_id.clone(), config as u64));
                log.push(LoggedResult {
                    seq,
                    job_id: e.job_id.clone(),
                    config: config as u64,
                    rung: rung as u64,
                    failed,
                });
                progressed = true;
            }
        }
        if !progressed {
            return Ok(());
        }
    }
}

/// Every decision of the search as a row to record, checked against the `recorded` ones, and
/// the jobs the new ones submit (with their rung as priority).
fn decision_rows(
    sweep: &Sweep,
    search: &Search,
    log: &[LoggedResult],
    recorded: &[DecisionRow],
) -> std::result::Result<(Vec<DecisionRow>, Vec<(JobSpec, i64)>), BoxError> {
    let epochs = search.rung_epochs().to_vec();
    let mut decisions = Vec::with_capacity(search.decisions().len());
    let mut jobs = Vec::new();
    for (seq, d) in search.decisions().iter().enumerate() {
        let job = rung_job(sweep, search, d.config, d.rung)
            .ok_or("a drawn point does not fit the sweep's space")?;
        let kind = d.action.kind();
        let point = match &d.action {
            Action::Draw { point } => Some(serde_json::to_value(point)?),
            Action::Promote | Action::Stop => None,
        };
        let row = DecisionRow {
            seq: seq as u64,
            kind,
            config: d.config as u64,
            rung: d.rung as u64,
            epochs: epochs[d.rung] as u64,
            job_id: job.id.clone(),
            point,
            from_seq: d.from.map(|f| f as u64),
            from_job: d.from.and_then(|f| log.get(f)).map(|r| r.job_id.clone()),
        };
        if let Some(old) = recorded.get(seq) {
            if (old.kind, old.config, old.rung, old.job_id.as_str())
                != (kind, row.config, row.rung, row.job_id.as_str())
            {
                return Err(format!(
                    "decision {seq} differs from the recorded one ({} of configuration {} at rung {}); \
                     was the sweep file or its data changed after the search started?",
                    old.kind, old.config, old.rung
                )
                .into());
            }
        } else if kind != DecisionKind::Stop {
            jobs.push((job, d.rung as i64));
        }
        decisions.push(row);
    }
    Ok((decisions, jobs))
}
