//! Matched-compute controls (sweep key `controls`): once a sweep's front is known, plain ResNets
//! that do what each CosineGate configuration of the front does without routing, trained per seed
//! as jobs of the sweep. [`advance_controls`] is called wherever [`crate::advance_search`] is
//! (after each result, at the start of `run_local`, after submit), so a coordinator killed at any
//! point plans them on its next start; [`plan_controls`] is the pure planning step.
//!
//! Planning: the configurations are the sweep's completed full-budget jobs (no `baseline`, no
//! control, no `train.stop_after`) grouped by their params without `train.seed`; a configuration's
//! objective values are the mean over its seeds of [`SweepInfo::objective_values`] (the choice
//! rule: validation when the runs have a split); the front is [`pareto_mask`] over them. For each
//! front configuration with `model.kind: cosinegate` and each kind of `controls`, one job per seed
//! it completed: its config with `model.kind: resnet`, `gate` and `loss` at their defaults,
//! `train.stop_after` unset, and
//! - `static`: `model.removed_blocks` = the gated blocks whose open rate, mean over its seeds'
//!   final `gates`, is ≤ 1 − [`STATIC_CLOSED`] (stride-2 blocks are never removed);
//! - `narrow`: `model.width` = the width in 1..=2·width whose plain-ResNet `macs_full` is closest
//!   to its mean `macs_executed_nominal` (ties to the smaller width).
//!
//! Two configurations whose control networks are the same get one job (same id), whose
//! `control_of` lists both. Job ids are cg-sweep's [`cg_sweep::job_id`] with the fingerprint of
//! the job's data, as the sweep's own jobs get them. Controls are never front candidates and a
//! search never sees them (they are planned only once it has finished).

use std::collections::BTreeMap;

use cg_core::pareto::pareto_mask;
use cg_core::{
    CONTROL_KEY, CONTROL_OF_KEY, Control, DatasetKind, GateSpec, JobRecord, JobSpec, JobStatus,
    LossSpec, ModelKind, ModelSpec, RunConfig, RunResult, STATIC_CLOSED, SweepInfo,
};
use cg_model::macs::MacsTable;
use cg_store::Store;
use serde_json::{Map, Value as Json};

use crate::Result;
use crate::search::search_finished;

/// Plans and submits the sweep's controls when they are pending, its search (if any) has finished
/// and none of its jobs is queued or running (controls from before a merge included: they end
/// first); returns the number of jobs added (0 when it
/// did nothing, or when every control was stored already). Idempotent: the store clears the
/// pending flag in the transaction that queues the jobs.
pub async fn advance_controls(store: &Store, sweep: &str) -> Result<usize> {
    let summary = store.sweep(sweep).await?;
    // From the summary's counts, so a result that leaves jobs to run loads no records.
    if !summary.controls_pending
        || !summary.counts.is_finished()
        || !search_finished(store, sweep).await?
    {
        return Ok(0);
    }
    let records = store.job_records(sweep).await?;
    let jobs = plan_controls(&summary.info, &records);
    let added = store.submit_controls(sweep, &jobs).await?;
    if added > 0 {
        tracing::info!(sweep, added, "matched-compute controls queued");
    }
    Ok(added)
}

/// [`advance_controls`] for each sweep whose controls are pending (`only`: that sweep alone).
pub(crate) async fn advance_pending_controls(store: &Store, only: Option<&str>) -> Result<usize> {
    let sweeps = match only {
        Some(name) => vec![name.to_string()],
        None => store.controls_pending().await?,
    };
    let mut added = 0;
    for sweep in sweeps {
        added += advance_controls(store, &sweep).await?;
    }
    Ok(added)
}

/// One configuration of the sweep: its params without `train.seed` and its completed seeds.
struct Configuration<'a> {
    params: Map<String, Json>,
    runs: Vec<(&'a JobSpec, &'a RunResult)>,
}

/// The control jobs of a sweep whose front is known (see the module doc), in a fixed order:
/// front configurations in params order, then the kinds of `info.controls`, then seeds.
pub fn plan_controls(info: &SweepInfo, records: &[JobRecord]) -> Vec<JobSpec> {
    if info.controls.is_empty() {
        return Vec::new();
    }
    let configurations = configurations(records);
    let mut planned = Planned::default();
    for configuration in front(info, &configurations) {
        if configuration.runs[0].0.config.model.kind != ModelKind::Cosinegate {
            continue;
        }
        for &kind in &info.controls {
            let Some(network) = control_network(kind, configuration) else {
                continue;
            };
            for (job, _) in &configuration.runs {
                let mut config = network.clone();
                config.train.seed = job.config.train.seed;
                planned.add(kind, config, &configuration.params);
            }
        }
    }
    planned.jobs
}

/// Whether a job is a full-budget run of the sweep's axes (no baseline, no control, no stop).
fn is_candidate(record: &JobRecord) -> bool {
    record.status == JobStatus::Completed
        && record.result.is_some()
        && !record.job.params.contains_key("baseline")
        && record.control().is_none()
        && record.job.config.train.stop_after.is_none()
}

/// The completed full-budget configurations, grouped by params without `train.seed`, in the
/// order of their params' canonical JSON.
fn configurations(records: &[JobRecord]) -> Vec<Configuration<'_>> {
    let mut groups: BTreeMap<String, Configuration<'_>> = BTreeMap::new();
    for record in records.iter().filter(|r| is_candidate(r)) {
        let mut params = record.job.params.clone();
        params.remove("train.seed");
        let key = canonical(&params);
        let result = record.result.as_ref().expect("candidates have a result");
        groups
            .entry(key)
            .or_insert_with(|| Configuration {
                params,
                runs: Vec::new(),
            })
            .runs
            .push((&record.job, result));
    }
    groups.into_values().collect()
}

/// Params as JSON with sorted keys, so one configuration is one key whatever the map's order.
fn canonical(params: &Map<String, Json>) -> String {
    let sorted: BTreeMap<&String, &Json> = params.iter().collect();
    serde_json::to_string(&sorted).expect("JSON values serialise")
}

/// The configurations on the front of their mean objective values (the choice rule); one without
/// values for every objective is no candidate.
fn front<'c, 'a>(
    info: &SweepInfo,
    configurations: &'c [Configuration<'a>],
) -> Vec<&'c Configuration<'a>> {
    let valued: Vec<(&Configuration<'a>, Vec<f64>)> = configurations
        .iter()
        .filter_map(|c| mean_values(info, c).map(|v| (c, v)))
        .collect();
    let points: Vec<Vec<f64>> = valued.iter().map(|(_, v)| v.clone()).collect();
    let directions: Vec<_> = info.objectives.iter().map(|o| o.direction).collect();
    let mask = pareto_mask(&points, &directions);
    valued
        .into_iter()
        .zip(mask)
        .filter(|(_, on_front)| *on_front)
        .map(|((c, _), _)| c)
        .collect()
}

/// The mean over a configuration's seeds of each objective's value; `None` when a seed lacks one.
fn mean_values(info: &SweepInfo, configuration: &Configuration<'_>) -> Option<Vec<f64>> {
    let per_seed: Vec<Vec<f64>> = configuration
        .runs
        .iter()
        .map(|(_, r)| info.objective_values(r))
        .collect::<Option<_>>()?;
    let n = per_seed.len() as f64;
    Some(
        (0..info.objectives.len())
            .map(|i| per_seed.iter().map(|v| v[i]).sum::<f64>() / n)
            .collect(),
    )
}

/// The control network of `kind` for a configuration (seed not set); `None` for a narrow control
/// whose input shape cannot be told from the results.
fn control_network(kind: Control, configuration: &Configuration<'_>) -> Option<RunConfig> {
    let (first, result) = configuration.runs[0];
    let mut config = first.config.clone();
    config.model.kind = ModelKind::Resnet;
    config.model.removed_blocks = Vec::new();
    config.gate = GateSpec::default();
    config.loss = LossSpec::default();
    config.train.stop_after = None;
    match kind {
        Control::Static => {
            let runs: Vec<&RunResult> = configuration.runs.iter().map(|(_, r)| *r).collect();
            config.model.removed_blocks = closed_blocks(&first.config.model, &runs);
        }
        Control::Narrow => {
            let (channels, side) = input_shape(&first.config, result.macs_full)?;
            let nominal = mean(
                configuration
                    .runs
                    .iter()
                    .map(|(_, r)| r.macs_executed_nominal),
            );
            config.model.width = closest_width(&config.model, channels, side, nominal);
        }
    }
    Some(config)
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    sum / n.max(1) as f64
}

/// The gated blocks that a configuration closes for at least [`STATIC_CLOSED`] of its inputs (mean
/// open rate over its seeds' final gate statistics ≤ 1 − it), in increasing order, stride-2 blocks
/// left out (a static control cannot remove them).
pub fn closed_blocks(model: &ModelSpec, runs: &[&RunResult]) -> Vec<usize> {
    let mut rates: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for run in runs {
        for g in &run.gates {
            rates.entry(g.block_idx).or_default().push(g.gate_open_rate);
        }
    }
    rates
        .into_iter()
        .filter(|(idx, _)| !model.block_downsamples(*idx))
        .filter(|(_, r)| mean(r.iter().copied()) <= 1.0 - STATIC_CLOSED)
        .map(|(idx, _)| idx)
        .collect()
}

/// The input channels and side of a configuration's data, from its data set when it says them
/// (synthetic), else the smallest side (then channels 1..=4) whose backbone MACs are the run's
/// `macs_full`.
fn input_shape(config: &RunConfig, macs_full: u64) -> Option<(usize, usize)> {
    let full = |channels, side| plain_macs(&config.model, channels, side);
    if config.dataset.kind == DatasetKind::Synthetic {
        let s = config.dataset.synthetic.clone().unwrap_or_default();
        return Some((s.channels, s.side));
    }
    (1..=1024usize)
        .flat_map(|side| (1..=4usize).map(move |channels| (channels, side)))
        .find(|&(channels, side)| full(channels, side) == macs_full)
}

/// The backbone MACs per sample of a plain ResNet of `model`'s depth and width.
fn plain_macs(model: &ModelSpec, channels: usize, side: usize) -> u64 {
    let plain = ModelSpec {
        kind: ModelKind::Resnet,
        removed_blocks: Vec::new(),
        ..model.clone()
    };
    let gate = GateSpec::default();
    MacsTable::new(&plain, channels, side, false, gate.mode, 0).full()
}

/// The width in 1..=2·width whose plain ResNet's MACs are closest to `target` (ties: smaller).
pub fn closest_width(model: &ModelSpec, channels: usize, side: usize, target: f64) -> usize {
    let mut best = (model.width.max(1), f64::INFINITY);
    for width in 1..=model.width.saturating_mul(2).max(1) {
        let at = ModelSpec {
            width,
            ..model.clone()
        };
        let gap = (plain_macs(&at, channels, side) as f64 - target).abs();
        if gap < best.1 {
            best = (width, gap);
        }
    }
    best.0
}

/// The control jobs planned so far, one per network (job id), each with its `control_of` list.
#[derive(Default)]
struct Planned {
    jobs: Vec<JobSpec>,
    /// Data fingerprints by the data set's JSON (a fingerprint lists the data's files).
    fingerprints: BTreeMap<String, String>,
}

impl Planned {
    /// Adds the control `config` of `kind` for the configuration `of`, or adds `of` to the
    /// `control_of` list of the job that trains the same network already.
    fn add(&mut self, kind: Control, config: RunConfig, of: &Map<String, Json>) {
        let spec = serde_json::to_string(&config.dataset).expect("a data set serialises");
        let fingerprint = self
            .fingerprints
            .entry(spec)
            .or_insert_with(|| cg_sweep::data_fingerprint(&config.dataset));
        let id = cg_sweep::job_id(&config, fingerprint);
        if let Some(job) = self.jobs.iter_mut().find(|j| j.id == id) {
            if let Some(Json::Array(list)) = job.params.get_mut(CONTROL_OF_KEY)
                && !list.iter().any(|p| p.as_object() == Some(of))
            {
                list.push(Json::Object(of.clone()));
            }
            return;
        }
        let mut params = Map::new();
        params.insert(CONTROL_KEY.into(), Json::from(kind.as_str()));
        params.insert(
            CONTROL_OF_KEY.into(),
            Json::Array(vec![Json::Object(of.clone())]),
        );
        params.insert("train.seed".into(), Json::from(config.train.seed));
        self.jobs.push(JobSpec { id, params, config });
    }
}
