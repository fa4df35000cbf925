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

/// The search spec of a mo-asha sweep (one seed per configuration unless the file lists `seeds`).
pub fn search_spec(sweep: &Sweep) -> Option<SearchSpec> {
    let info = sweep.info();
    Some(SearchSpec {
        settings: sweep.search_settings()?,
        directions: info.objectives.iter().map(|o| o.direction).collect(),
        reference_point: info.reference_point,
        seeds: sweep.seeds().len().max(1),
    })
}

/// The jobs of a configuration at a rung, one per seed in the order of `seeds` (the top rung
/// trains the whole schedule, no stop).
fn rung_jobs(sweep: &Sweep, search: &Search, config: usize, rung: usize) -> Option<Vec<JobSpec>> {
    let epochs = search.rung_epochs();
    let stop = (rung + 1 < epochs.len()).then(|| epochs[rung]);
    sweep.search_jobs(search.point(config)?, stop)
}

/// The ids of [`rung_jobs`].
fn rung_job_ids(
    sweep: &Sweep,
    search: &Search,
    config: usize,
    rung: usize,
) -> std::result::Result<Vec<String>, BoxError> {
    let jobs = rung_jobs(sweep, search, config, rung)
        .ok_or("a drawn point does not fit the sweep's space")?;
    Ok(jobs.into_iter().map(|j| j.id).collect())
}

/// Which seed of configuration `config` at `rung` the stored result `row` is: 0 with one seed,
/// else the position of its job among the configuration's jobs there.
fn seed_of(
    sweep: &Sweep,
    search: &Search,
    row: &LoggedResult,
) -> std::result::Result<usize, BoxError> {
    if sweep.seeds().len() <= 1 {
        return Ok(0);
    }
    let ids = rung_job_ids(sweep, search, row.config as usize, row.rung as usize)?;
    ids.iter().position(|id| *id == row.job_id).ok_or_else(|| {
        format!(
            "stored result {} ({}) is no job of configuration {} at rung {}",
            row.seq, row.job_id, row.config, row.rung
        )
        .into()
    })
}

/// The decision function given to the store: replays the log, takes the new ended jobs that a
/// decision submitted, and returns everything to record.
fn decide(sweep: &Sweep, input: SearchInput) -> std::result::Result<SearchWrite, BoxError> {
    let spec = search_spec(sweep).ok_or("the sweep is not `method: mo-asha`")?;
    let results = Results::new(sweep, &input);
    let mut search = Search::new(spec);
    for row in &input.log {
        let seed = seed_of(sweep, &search, row)?;
        search
            .observe(results.observation(row, seed))
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

    /// What the search observes of the result `row` (its job is `seed`'s of its configuration
    /// at its rung): its objectives as a choice reads them ([`SweepInfo::objective_values`](cg_core::SweepInfo::objective_values)), none when it
    /// failed or has no result.
    fn observation(&self, row: &LoggedResult, seed: usize) -> Observation {
        Observation {
            config: row.config as usize,
            rung: row.rung as usize,
            seed,
            objectives: if row.failed {
                None
            } else {
                self.ended
                    .get(row.job_id.as_str())
                    .and_then(|(_, r)| *r)
                    .and_then(|r| self.info.objective_values(r))
            },
        }
    }
}

/// Takes every ended job that a pending decision submitted, until none is left, appending each
/// to `log`. Observing a result can add decisions (promotions, draws), so the pending jobs are
/// looked up afresh for each ended job, and their ids come from (configuration, rung, seed),
/// never from an index.
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
            for (config, rung, seed) in search.pending_jobs() {
                if taken.contains(&(e.job_id.clone(), config as u64)) {
                    continue;
                }
                let ids = rung_job_ids(sweep, search, config, rung)?;
                if ids.get(seed) != Some(&e.job_id) {
                    continue;
                }
                let row = LoggedResult {
                    seq: log.len() as u64,
                    job_id: e.job_id.clone(),
                    config: config as u64,
                    rung: rung as u64,
                    failed: e.status == JobStatus::Failed,
                };
                search.observe(results.observation(&row, seed))?;
                taken.insert((e.job_id.clone(), config as u64));
                log.push(row);
                progressed = true;
            }
        }
        if !progressed {
            return Ok(());
        }
    }
}

/// Every decision of the search as rows to record, one per job it covers (one per seed of its
/// configuration, in the order of `seeds`; one row per decision without `seeds`), checked
/// against the `recorded` ones, and the jobs the new ones submit (with their rung as priority).
fn decision_rows(
    sweep: &Sweep,
    search: &Search,
    log: &[LoggedResult],
    recorded: &[DecisionRow],
) -> std::result::Result<(Vec<DecisionRow>, Vec<(JobSpec, i64)>), BoxError> {
    let epochs = search.rung_epochs().to_vec();
    let mut decisions = Vec::with_capacity(search.decisions().len());
    let mut jobs = Vec::new();
    for d in search.decisions() {
        let kind = d.action.kind();
        let point = match &d.action {
            Action::Draw { point } => Some(serde_json::to_value(point)?),
            Action::Promote | Action::Stop => None,
        };
        let seed_jobs = rung_jobs(sweep, search, d.config, d.rung)
            .ok_or("a drawn point does not fit the sweep's space")?;
        for job in seed_jobs {
            let row = DecisionRow {
                seq: decisions.len() as u64,
                kind,
                config: d.config as u64,
                rung: d.rung as u64,
                epochs: epochs[d.rung] as u64,
                job_id: job.id.clone(),
                point: point.clone(),
                from_seq: d.from.map(|f| f as u64),
                from_job: d.from.and_then(|f| log.get(f)).map(|r| r.job_id.clone()),
            };
            match recorded.get(decisions.len()) {
                Some(old) => same_as_recorded(old, &row)?,
                None if kind != DecisionKind::Stop => jobs.push((job, d.rung as i64)),
                None => {}
            }
            decisions.push(row);
        }
    }
    Ok((decisions, jobs))
}

/// Refuses a decision row that differs from the one recorded at its place.
fn same_as_recorded(old: &DecisionRow, row: &DecisionRow) -> std::result::Result<(), BoxError> {
    if (old.kind, old.config, old.rung, old.job_id.as_str())
        == (row.kind, row.config, row.rung, row.job_id.as_str())
    {
        return Ok(());
    }
    Err(format!(
        "decision {} differs from the recorded one ({} of configuration {} at rung {}); \
         was the sweep file or its data changed after the search started?",
        row.seq, old.kind, old.config, old.rung
    )
    .into())
}
