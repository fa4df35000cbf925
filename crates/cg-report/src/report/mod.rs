//! The report of one sweep: [`build_report`] turns a sweep's job records into configurations, fronts,
//! hypervolume, tables, figures and documents, all in memory; [`write_report`](crate::write_report)
//! puts the files in a directory. Everything is sorted so that the same records give byte-identical
//! files; nothing reads a clock, and no database is opened here.
//!
//! The steps live in sub-modules: `fronts` (objectives, fronts, hypervolume), `tables` (CSV and
//! JSON), `controls` ("Against matched-compute controls"), `figures` (what is drawn), `document` (the markdown/HTML blocks), `trust` (the
//! hypervolume's largest contributor and sensitivity), `routing` ("Does it
//! route?") and `search` (a
//! search's part, assembled from its decisions, and its comparison with a grid); `model` holds
//! the types.

mod controls;
mod document;
mod figures;
mod fronts;
mod model;
mod routing;
mod search;
mod tables;
mod trust;

use std::path::PathBuf;

use cg_core::{JobRecord, JobStatus, SweepInfo};
use serde_json::Value;

pub use model::{
    FailedJob, GridComparison, HvReference, HvTrust, JobCounts, Progress, Report, ReportFile,
    ReportOptions, SearchSection, StoppedRun, WrittenReport,
};
pub use search::{GridRecords, SearchDecision, search_section};

use crate::Result;
use crate::aggregate;
use crate::doc;
use crate::plots::{self, Figure, Rendered};

/// Computes a report: configurations, fronts, hypervolume, tables, figures and documents. Pure.
pub fn build_report(
    info: &SweepInfo,
    records: &[JobRecord],
    opts: &ReportOptions,
) -> Result<Report> {
    let (objectives, reference_point) = fronts::effective_objectives(info)?;
    let (mut counts, mut finished, failed_records) = sort_by_status(records);

    // A search's front compares like with like: the runs of its top rung (a rung job below it
    // carries `train.stop_after`).
    let top = |r: &&JobRecord| opts.search.is_none() || r.job.config.train.stop_after.is_none();
    let before = finished.len();
    finished.retain(top);
    counts.below_top = before - finished.len();
    let all_jobs: Vec<&JobRecord> = records.iter().filter(top).collect();
    let columns = aggregate::param_columns(&info.axes, &all_jobs);
    let command = |job_id: &str| {
        format!(
            "{} {}/{}.json",
            opts.rerun_command,
            opts.configs_dir.trim_end_matches('/'),
            safe_file_stem(job_id)
        )
    };
    let (mut configurations, runs) = aggregate::group(&finished, &info.axes, &columns, &command);
    let hypervolume = fronts::mark_fronts(&mut configurations, &objectives, &reference_point);
    let mut report = Report {
        sweep: info.clone(),
        objectives,
        reference_point,
        counts,
        configurations,
        runs,
        failed: failed_jobs(&failed_records, &columns),
        hypervolume,
        hv_trust: None,
        files: Vec::new(),
    };
    let against = opts.search.as_ref().and_then(|s| s.against.as_ref());
    report.hv_trust = trust::hv_trust(&report, against);
    report.files = render_files(&report, &columns, opts)?;
    Ok(report)
}

/// The job counts, the finished runs (completed with a result) and the failed jobs.
fn sort_by_status(records: &[JobRecord]) -> (JobCounts, Vec<&JobRecord>, Vec<&JobRecord>) {
    let mut counts = JobCounts {
        total: records.len(),
        ..JobCounts::default()
    };
    let mut finished: Vec<&JobRecord> = Vec::new();
    let mut failed: Vec<&JobRecord> = Vec::new();
    for r in records {
        match (r.status, &r.result) {
            (JobStatus::Completed, Some(_)) => {
                counts.finished += 1;
                finished.push(r);
            }
            (JobStatus::Completed, None) => counts.completed_without_result += 1,
            (JobStatus::Failed, _) => {
                counts.failed += 1;
                failed.push(r);
            }
            (JobStatus::Queued, _) => counts.queued += 1,
            (JobStatus::Running, _) => counts.running += 1,
            (JobStatus::Cancelled, _) => counts.cancelled += 1,
        }
    }
    (counts, finished, failed)
}

/// The failed jobs with their swept values and last error, by label then id.
fn failed_jobs(records: &[&JobRecord], columns: &[String]) -> Vec<FailedJob> {
    let mut failed: Vec<FailedJob> = records
        .iter()
        .map(|r| FailedJob {
            job_id: r.job.id.clone(),
            label: params_label(&r.job.params, columns),
            attempts: r.attempts,
            error: r
                .last_error
                .clone()
                .unwrap_or_else(|| "(no error recorded)".into()),
        })
        .collect();
    failed.sort_by(|a, b| a.label.cmp(&b.label).then_with(|| a.job_id.cmp(&b.job_id)));
    failed
}

fn safe_file_stem(job_id: &str) -> String {
    job_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn params_label(params: &serde_json::Map<String, Value>, columns: &[String]) -> String {
    let mut keys: Vec<&String> = columns.iter().filter(|c| params.contains_key(*c)).collect();
    let mut rest: Vec<&String> = params.keys().filter(|k| !columns.contains(k)).collect();
    rest.sort();
    keys.extend(rest);
    let parts: Vec<String> = keys
        .iter()
        .map(|k| format!("{k}={}", aggregate::value_text(&params[k.as_str()])))
        .collect();
    if parts.is_empty() {
        "default".into()
    } else {
        parts.join(", ")
    }
}

fn file(path: &str, contents: Vec<u8>) -> ReportFile {
    ReportFile {
        path: PathBuf::from(path),
        contents,
    }
}

/// Every file of the report, in order: the documents, the tables, the figures, the configurations.
fn render_files(
    report: &Report,
    columns: &[String],
    opts: &ReportOptions,
) -> Result<Vec<ReportFile>> {
    let figures = figures::figures(report, opts);
    let mut rendered = Vec::with_capacity(figures.len());
    for figure in &figures {
        rendered.push((figure.stem.clone(), plots::render(figure, opts.plot_size)?));
    }
    let mut files = document_files(report, &figures, &rendered, opts);
    files.extend(table_files(report, columns, opts)?);
    for (stem, r) in rendered {
        files.push(file(&format!("{stem}.png"), r.png));
        files.push(file(&format!("{stem}.svg"), r.svg.into_bytes()));
    }
    files.extend(config_files(report)?);
    Ok(files)
}

/// `report.md` and `report.html` (with the figures' SVG inline, reloading while the sweep runs).
fn document_files(
    report: &Report,
    figures: &[Figure],
    rendered: &[(String, Rendered)],
    opts: &ReportOptions,
) -> Vec<ReportFile> {
    let blocks = document::document(report, figures, opts);
    let markdown = doc::to_markdown(&blocks);
    let svg_of = |stem: &str| {
        rendered
            .iter()
            .find(|(s, _)| s == stem)
            .map(|(_, r)| r.svg.clone())
    };
    let reload = match &opts.progress {
        Some(Progress::Running { reload_secs, .. }) => Some(*reload_secs),
        _ => None,
    };
    let html = doc::to_html(
        &format!("Sweep report: {}", report.sweep.name),
        &blocks,
        &svg_of,
        reload,
    );
    vec![
        file("report.md", markdown.into_bytes()),
        file("report.html", html.into_bytes()),
    ]
}

/// `results.csv`/`.json`, `front.csv`/`.json`, `controls.csv`/`.json` when the sweep has control
/// results, and a search's `stopped.csv`.
fn table_files(
    report: &Report,
    columns: &[String],
    opts: &ReportOptions,
) -> Result<Vec<ReportFile>> {
    let results = tables::results_table(report, columns);
    let front = tables::front_table(report, columns);
    let mut files = vec![
        file("results.csv", results.to_csv().into_bytes()),
        file("results.json", results.to_json()?.into_bytes()),
        file("front.csv", front.to_csv().into_bytes()),
        file("front.json", front.to_json()?.into_bytes()),
    ];
    if report.configurations.iter().any(|c| c.is_control()) {
        let controls = controls::controls_table(report);
        files.push(file("controls.csv", controls.to_csv().into_bytes()));
        files.push(file("controls.json", controls.to_json()?.into_bytes()));
    }
    if let Some(search) = &opts.search {
        let stopped = tables::stopped_table(report, search);
        files.push(file("stopped.csv", stopped.to_csv().into_bytes()));
    }
    Ok(files)
}

/// `configs/<job_id>.json`: the resolved configuration of each configuration's re-run job.
fn config_files(report: &Report) -> Result<Vec<ReportFile>> {
    let mut files = Vec::with_capacity(report.configurations.len());
    for c in &report.configurations {
        let mut json = serde_json::to_string_pretty(&c.rerun.config)?;
        json.push('\n');
        files.push(file(
            &format!("configs/{}.json", safe_file_stem(&c.rerun.job_id)),
            json.into_bytes(),
        ));
    }
    Ok(files)
}
