//! Checks of a loaded sweep as a whole: problems that only show in combination on its jobs, grid
//! points that come out identical, and a baseline that equals a point of the axes.

use std::collections::{HashMap, HashSet};

use cg_core::JobSpec;
use serde_json::{Map, Value as Json};

use crate::diag::{Pos, Sink};
use crate::sweep::{DEFAULT_JOB_LIMIT, MAX_JOBS, Method, Sweep};

/// Problems that only show in combination (e.g. `loss.ramp_start` above `loss.ramp_end` from two axes), and
/// grid points that come out identical. Checked on every job when the sweep is within the job limit.
pub(super) fn check_jobs(sweep: &Sweep, pos: Pos, sink: &mut Sink) -> Option<Vec<JobSpec>> {
    let count = sweep.count();
    if count > MAX_JOBS {
        let shown = if count == usize::MAX {
            "more jobs than can be counted".to_string()
        } else {
            format!("{count} jobs")
        };
        sink.push(
            pos,
            "parameters",
            format!(
                "the sweep expands to {shown}, more than cg's limit of {MAX_JOBS} (even with --yes)"
            ),
            Some(
                "split it into several sweeps, or use `method: random` with fewer `n_samples`"
                    .into(),
            ),
        );
        return None;
    }
    if count > DEFAULT_JOB_LIMIT {
        return None;
    }
    let mut reported: HashSet<String> = HashSet::new();
    let mut ids: HashMap<&str, &Map<String, Json>> = HashMap::new();
    let mut repeats: Vec<(&Map<String, Json>, &Map<String, Json>)> = Vec::new();
    let jobs = sweep.expand();
    for job in &jobs {
        for problem in job.config.problems() {
            if reported.insert(problem.key.clone()) {
                sink.push(
                    pos,
                    &problem.key,
                    format!(
                        "{} (in the job with {})",
                        problem.message,
                        show_params(&job.params)
                    ),
                    None,
                );
            }
        }
        if sweep.method == Method::Grid {
            match ids.get(job.id.as_str()) {
                Some(first) => repeats.push((first, &job.params)),
                None => {
                    ids.insert(&job.id, &job.params);
                }
            }
        }
    }
    if let Some((first, second)) = repeats.first() {
        let more = match repeats.len() {
            1 => String::new(),
            n => format!(" ({} more like it)", n - 1),
        };
        sink.push(
            pos,
            "parameters",
            format!(
                "two grid points give the same job: {} and {}{more}",
                show_params(first),
                show_params(second)
            ),
            Some("a value equals the base setting, or two presets set the same".into()),
        );
    }
    Some(jobs)
}

/// Most points of a finite search space looked at for a baseline that equals one of them.
const MAX_BASELINE_CHECK: u64 = 100_000;

/// A baseline job that is also a job of the axes (a random draw, or a point of a finite mo-asha
/// space) would be one job with one row: it would take that configuration's place in the report.
/// (A grid's repeats are reported by [`check_jobs`]; `jobs` are the ones it expanded, `None`
/// above the default job limit, where random draws are not looked at.)
pub(super) fn check_baseline(sweep: &Sweep, jobs: Option<&[JobSpec]>, pos: Pos, sink: &mut Sink) {
    let baseline: HashSet<String> = sweep.baseline_jobs().into_iter().map(|j| j.id).collect();
    let clash = match sweep.method {
        Method::Grid => None,
        Method::Random => jobs
            .unwrap_or_default()
            .iter()
            .find(|j| !j.params.contains_key("baseline") && baseline.contains(&j.id))
            .map(|j| j.params.clone()),
        Method::MoAsha => sweep
            .search_settings()
            .and_then(|s| cg_core::all_points(&s.space, MAX_BASELINE_CHECK))
            .and_then(|points| {
                points
                    .iter()
                    .filter_map(|p| sweep.job_at(p, None))
                    .find(|j| baseline.contains(&j.id))
                    .map(|j| j.params)
            }),
    };
    if let Some(params) = clash {
        sink.push(
            pos,
            "baseline",
            format!(
                "the baseline trains the same configuration as the axes' point {}: they would be one job",
                show_params(&params)
            ),
            Some("change a baseline setting (e.g. `gate.mode: none`) or leave that value out of the axes".into()),
        );
    }
}

fn show_params(params: &Map<String, Json>) -> String {
    if params.is_empty() {
        return "the base settings".into();
    }
    params
        .iter()
        .map(|(k, v)| match v {
            Json::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A search whose top rung no configuration can reach.
pub(super) fn check_rungs(sweep: &Sweep, pos: Pos, sink: &mut Sink) {
    if let Some(settings) = sweep.search_settings()
        && let Some(why) = settings.unreachable_top()
    {
        sink.push(
            pos,
            "fidelity",
            why,
            Some("raise `n_samples`, lower `eta`, or raise `min_epochs` for fewer rungs".into()),
        );
    }
}
