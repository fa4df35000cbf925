//! The report of one sweep: [`build_report`] turns a sweep's job records into configurations, fronts,
//! hypervolume, tables, figures and documents, all in memory; [`write_report`] puts the files in a
//! directory. Everything is sorted so that the same records give byte-identical files; nothing reads
//! a clock, and no database is opened here.

use std::path::{Path, PathBuf};

use cg_core::{Direction, JobRecord, JobStatus, Objective, SweepInfo};
use serde_json::Value;

use crate::aggregate::{self, Configuration, FrontMembership, METRICS, RunRow, Stat};
use crate::doc::{self, Block};
use crate::pareto;
use crate::plots::{
    self, CurvesFigure, Figure, FigureKind, HeatmapFigure, ScatterFigure, ScatterPoint,
};
use crate::table::{Cell, Table};
use crate::{Error, Result};

/// Choices about how a report looks; none changes the numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// The command that re-runs a configuration, completed by the path of its configuration file.
    pub rerun_command: String,
    /// The configuration files' directory as the re-run command names it. The files are always
    /// written to `configs/` inside the report directory; set this to where that directory is as seen
    /// from where the command will be run (e.g. `reports/my-sweep/configs`).
    pub configs_dir: String,
    /// Width and height of every figure in pixels (PNG) and user units (SVG).
    pub plot_size: (u32, u32),
    /// Most configurations drawn as rows of a gate heatmap (front configurations first).
    pub max_heatmap_rows: usize,
    /// Most front configurations drawn in the training curves.
    pub max_curves: usize,
    /// Most points labelled in the accuracy-vs-savings plot; with more points, evenly spaced front
    /// points are.
    pub max_point_labels: usize,
    /// Most rows of the all-configurations and failed-jobs tables in the documents (the CSV and JSON
    /// files always have every row).
    pub max_table_rows: usize,
    /// Where the sweep stands, for a notice at the top of the documents; `None`: no notice.
    pub progress: Option<Progress>,
    /// A `method: mo-asha` search: the records given to [`build_report`] are then its top rung's,
    /// and this lists the configurations it stopped below the top. `None` for other sweeps.
    pub search: Option<SearchSection>,
    /// Paragraphs written by the researcher, shown first (`cg report --preface FILE`).
    pub preface: Vec<String>,
}

/// What a report says of a search (`method: mo-asha`) beyond its top rung.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchSection {
    /// The epochs of the top rung: the configurations that reached it form the front.
    pub top_epochs: u64,
    /// Configurations that the search stopped below the top rung, each with its last result.
    pub stopped: Vec<StoppedRun>,
    /// The search against a full grid over the same configurations (`cg report --against`).
    pub against: Option<GridComparison>,
}

/// A search's last hypervolume and epochs beside those of a full-budget grid over its space.
#[derive(Debug, Clone, PartialEq)]
pub struct GridComparison {
    /// The grid sweep's name.
    pub grid: String,
    /// The grid's final hypervolume over the search's configurations, with the search's
    /// objectives and reference point.
    pub grid_hypervolume: f64,
    /// Epochs the grid trained for the search's configurations.
    pub grid_epochs: u64,
    /// The search's last hypervolume (its top rung) and the epochs it spent.
    pub search_hypervolume: f64,
    pub search_epochs: u64,
}

impl GridComparison {
    /// The sentence the report shows; a share of zero is "n/a" (never NaN).
    pub fn sentence(&self) -> String {
        let share = |a: f64, b: f64| {
            let s = 100.0 * a / b;
            if b > 0.0 && s.is_finite() {
                format!("{s:.1}%")
            } else {
                "n/a (the grid's is zero)".to_string()
            }
        };
        format!(
            "Against the full grid `{}` over the same configurations: this search reached \
             **{}** of the grid's final hypervolume ({:.6} of {:.6}) with **{}** of its \
             epochs ({} of {}).",
            self.grid,
            share(self.search_hypervolume, self.grid_hypervolume),
            self.search_hypervolume,
            self.grid_hypervolume,
            share(self.search_epochs as f64, self.grid_epochs as f64),
            self.search_epochs,
            self.grid_epochs
        )
    }
}

/// A configuration stopped at a rung below the top, with the job it ended with.
#[derive(Debug, Clone, PartialEq)]
pub struct StoppedRun {
    /// 0 = the lowest rung.
    pub rung: u64,
    /// The epochs it was trained for.
    pub epochs: u64,
    pub record: JobRecord,
}

/// Where a sweep stands when its report is written. The writer reads the clock, not this crate.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Jobs are queued or running: the documents say so (with the job counts and `updated`, the
    /// time of this report as text) and `report.html` reloads itself every `reload_secs`.
    Running { updated: String, reload_secs: u32 },
    /// The sweep is paused with jobs still queued: nothing moves until it is resumed, so the page
    /// says so and does not reload.
    Paused { updated: String },
    /// No job is queued or running any more (since `finished`, a time as text); no reloading.
    Finished { finished: String },
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            rerun_command: "cg train --config".into(),
            configs_dir: "configs".into(),
            plot_size: (1000, 650),
            max_heatmap_rows: 40,
            max_curves: 10,
            max_point_labels: 20,
            max_table_rows: 200,
            progress: None,
            search: None,
            preface: Vec::new(),
        }
    }
}

/// How many jobs of the sweep are in each state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobCounts {
    pub total: usize,
    /// Completed with a result: the runs the report is about.
    pub finished: usize,
    /// Completed but without a stored result (counted, not reported on).
    pub completed_without_result: usize,
    pub failed: usize,
    pub queued: usize,
    pub running: usize,
    pub cancelled: usize,
    /// Of `finished`: a search's rung jobs below its top rung (listed under "Search", not
    /// candidates for the front).
    pub below_top: usize,
}

/// A job that failed, with its last error.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedJob {
    pub job_id: String,
    /// The job's swept values, `key=value, …`.
    pub label: String,
    pub attempts: u32,
    pub error: String,
}

/// One file of a report, by its path relative to the report directory.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFile {
    pub path: PathBuf,
    pub contents: Vec<u8>,
}

/// Everything a report says, computed; the files are rendered but not yet written.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub sweep: SweepInfo,
    /// The objectives in force (the sweep's, or the default pair when it names none).
    pub objectives: Vec<Objective>,
    /// The reference point in force (the sweep's, or 0 per objective when it gives none).
    pub reference_point: Vec<f64>,
    pub counts: JobCounts,
    /// Finished runs grouped by configuration, in report order.
    pub configurations: Vec<Configuration>,
    /// Finished runs, by configuration then seed.
    pub runs: Vec<RunRow>,
    pub failed: Vec<FailedJob>,
    /// Of the front of the objectives against the reference point; `None` when no configuration is a
    /// candidate (no finished CosineGate run with every objective metric).
    pub hypervolume: Option<f64>,
    pub files: Vec<ReportFile>,
}

impl Report {
    /// A file by its path relative to the report directory.
    pub fn file(&self, path: &str) -> Option<&ReportFile> {
        self.files.iter().find(|f| f.path == Path::new(path))
    }

    /// The text of `report.md`.
    pub fn markdown(&self) -> &str {
        self.file("report.md")
            .and_then(|f| std::str::from_utf8(&f.contents).ok())
            .unwrap_or_default()
    }

    /// Configurations on the front of the objectives.
    pub fn front(&self) -> impl Iterator<Item = &Configuration> {
        self.configurations
            .iter()
            .filter(|c| c.front.objectives == Some(true))
    }
}

/// What [`write_report`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenReport {
    pub hypervolume: Option<f64>,
    /// Every file written, under the report directory, in the report's order.
    pub files: Vec<PathBuf>,
}

fn effective_objectives(info: &SweepInfo) -> Result<(Vec<Objective>, Vec<f64>)> {
    let objectives = if info.objectives.is_empty() {
        SweepInfo::default_objectives()
    } else {
        info.objectives.clone()
    };
    for o in &objectives {
        if !METRICS.contains(&o.metric.as_str()) {
            return Err(Error::UnknownMetric {
                metric: o.metric.clone(),
                known: METRICS.join(", "),
            });
        }
    }
    let reference = if info.reference_point.is_empty() {
        vec![0.0; objectives.len()]
    } else {
        info.reference_point.clone()
    };
    if reference.len() != objectives.len() {
        return Err(Error::ReferencePoint {
            expected: objectives.len(),
            got: reference.len(),
        });
    }
    if objectives.is_empty() {
        return Err(Error::NoObjectives);
    }
    Ok((objectives, reference))
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

/// Computes a report: configurations, fronts, hypervolume, tables, figures and documents. Pure.
pub fn build_report(
    info: &SweepInfo,
    records: &[JobRecord],
    opts: &ReportOptions,
) -> Result<Report> {
    let (objectives, reference_point) = effective_objectives(info)?;

    let mut counts = JobCounts {
        total: records.len(),
        ..JobCounts::default()
    };
    let mut finished: Vec<&JobRecord> = Vec::new();
    let mut failed_records: Vec<&JobRecord> = Vec::new();
    for r in records {
        match (r.status, &r.result) {
            (JobStatus::Completed, Some(_)) => {
                counts.finished += 1;
                finished.push(r);
            }
            (JobStatus::Completed, None) => counts.completed_without_result += 1,
            (JobStatus::Failed, _) => {
                counts.failed += 1;
                failed_records.push(r);
            }
            (JobStatus::Queued, _) => counts.queued += 1,
            (JobStatus::Running, _) => counts.running += 1,
            (JobStatus::Cancelled, _) => counts.cancelled += 1,
        }
    }

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

    let hypervolume = mark_fronts(&mut configurations, &objectives, &reference_point);

    let mut failed: Vec<FailedJob> = failed_records
        .iter()
        .map(|r| FailedJob {
            job_id: r.job.id.clone(),
            label: params_label(&r.job.params, &columns),
            attempts: r.attempts,
            error: r
                .last_error
                .clone()
                .unwrap_or_else(|| "(no error recorded)".into()),
        })
        .collect();
    failed.sort_by(|a, b| a.label.cmp(&b.label).then_with(|| a.job_id.cmp(&b.job_id)));

    let mut report = Report {
        sweep: info.clone(),
        objectives,
        reference_point,
        counts,
        configurations,
        runs,
        failed,
        hypervolume,
        files: Vec::new(),
    };
    report.files = render_files(&report, &columns, opts)?;
    Ok(report)
}

/// Marks each configuration's front memberships; returns the hypervolume of the objectives' front.
fn mark_fronts(
    configurations: &mut [Configuration],
    objectives: &[Objective],
    reference: &[f64],
) -> Option<f64> {
    let directions: Vec<Direction> = objectives.iter().map(|o| o.direction).collect();
    let metrics: Vec<&str> = objectives.iter().map(|o| o.metric.as_str()).collect();
    let hypervolume = front_of(
        configurations,
        &metrics,
        &directions,
        Some(reference),
        |m, v| m.objectives = v,
    );
    if metrics.contains(&"savings_nominal") {
        for (replacement, setter) in [
            (
                "savings_actual",
                (|m: &mut FrontMembership, v| m.actual = v)
                    as fn(&mut FrontMembership, Option<bool>),
            ),
            ("savings_measured", |m: &mut FrontMembership, v| {
                m.measured = v
            }),
        ] {
            let replaced: Vec<&str> = metrics
                .iter()
                .map(|&m| {
                    if m == "savings_nominal" {
                        replacement
                    } else {
                        m
                    }
                })
                .collect();
            front_of(configurations, &replaced, &directions, None, setter);
        }
    }
    hypervolume
}

/// Computes one front over the candidate configurations (not baselines, every metric present and
/// finite), records membership with `set`, and returns the hypervolume when a reference is given and
/// there is a candidate.
fn front_of(
    configurations: &mut [Configuration],
    metrics: &[&str],
    directions: &[Direction],
    reference: Option<&[f64]>,
    set: impl Fn(&mut FrontMembership, Option<bool>),
) -> Option<f64> {
    let mut candidates: Vec<usize> = Vec::new();
    let mut points: Vec<Vec<f64>> = Vec::new();
    for (i, c) in configurations.iter().enumerate() {
        if c.is_baseline() {
            continue;
        }
        let point: Option<Vec<f64>> = metrics.iter().map(|m| c.stat(m).map(|s| s.mean)).collect();
        if let Some(point) = point.filter(|p| p.iter().all(|v| v.is_finite())) {
            candidates.push(i);
            points.push(point);
        }
    }
    let mask = pareto::pareto_mask(&points, directions);
    for c in configurations.iter_mut() {
        set(&mut c.front, None);
    }
    for (&i, &on) in candidates.iter().zip(&mask) {
        set(&mut configurations[i].front, Some(on));
    }
    let reference = reference?;
    if candidates.is_empty() {
        return None;
    }
    let front: Vec<Vec<f64>> = points
        .into_iter()
        .zip(&mask)
        .filter(|(_, on)| **on)
        .map(|(p, _)| p)
        .collect();
    Some(pareto::hypervolume(&front, directions, reference))
}

// ---------------------------------------------------------------------------------------------
// Tables

const RUN_METRICS: [&str; 12] = [
    "test_acc_final",
    "test_acc_peak",
    "peak_epoch",
    "savings_nominal",
    "savings_actual",
    "savings_measured",
    "macs_full",
    "macs_executed_nominal",
    "macs_executed_actual",
    "train_img_per_s",
    "infer_img_per_s",
    "wall_secs",
];

fn results_table(report: &Report, columns: &[String]) -> Table {
    let mut header: Vec<String> = vec!["job_id".into(), "configuration".into(), "seed".into()];
    header.extend(columns.iter().cloned());
    header.extend(["attempts", "epochs"].map(String::from));
    header.extend(RUN_METRICS.map(String::from));
    let mut table = Table::new(header);
    for r in &report.runs {
        let mut row = vec![
            Cell::Text(r.job_id.clone()),
            Cell::Text(r.configuration_id.clone()),
            Cell::Int(r.seed),
        ];
        row.extend(columns.iter().map(|c| {
            r.params
                .get(c)
                .map_or(Cell::Null, |v| Cell::Json(v.clone()))
        }));
        row.extend([
            Cell::Int(u64::from(r.attempts)),
            Cell::Int(r.epochs as u64),
            Cell::Float(r.test_acc_final),
            Cell::Float(r.test_acc_peak),
            Cell::Int(r.peak_epoch as u64),
            Cell::Float(r.savings_nominal),
            Cell::Float(r.savings_actual),
            Cell::opt_float(r.savings_measured),
            Cell::Int(r.macs_full),
            Cell::Float(r.macs_executed_nominal),
            Cell::Float(r.macs_executed_actual),
            Cell::Float(r.train_img_per_s),
            Cell::Float(r.infer_img_per_s),
            Cell::Float(r.wall_secs),
        ]);
        table.push(row);
    }
    table
}

const FRONT_METRICS: [&str; 10] = [
    "test_acc_final",
    "test_acc_peak",
    "peak_epoch",
    "savings_nominal",
    "savings_actual",
    "savings_measured",
    "macs_executed_nominal",
    "macs_executed_actual",
    "infer_img_per_s",
    "wall_secs",
];

/// `stopped.csv`: the configurations a search stopped below its top rung, with the rung, the
/// epochs and the objectives' values there (highest rung first).
fn stopped_table(report: &Report, search: &SearchSection) -> Table {
    let records: Vec<&JobRecord> = search.stopped.iter().map(|s| &s.record).collect();
    let columns = aggregate::param_columns(&report.sweep.axes, &records);
    let mut header: Vec<String> = vec!["job_id".into()];
    header.extend(columns.iter().cloned());
    header.extend(["stopped_at_rung", "epochs"].map(String::from));
    header.extend(report.objectives.iter().map(|o| o.metric.clone()));
    let mut stopped: Vec<&StoppedRun> = search.stopped.iter().collect();
    stopped.sort_by(|a, b| {
        b.rung
            .cmp(&a.rung)
            .then_with(|| a.record.job.id.cmp(&b.record.job.id))
    });
    let mut table = Table::new(header);
    for s in stopped {
        let mut row = vec![Cell::Text(s.record.job.id.clone())];
        row.extend(columns.iter().map(|c| {
            s.record
                .job
                .params
                .get(c)
                .map_or(Cell::Null, |v| Cell::Json(v.clone()))
        }));
        row.push(Cell::Int(s.rung));
        row.push(Cell::Int(s.epochs));
        row.extend(report.objectives.iter().map(|o| {
            Cell::opt_float(
                s.record
                    .result
                    .as_ref()
                    .and_then(|r| aggregate::run_metric(r, &o.metric))
                    .filter(|v| v.is_finite()),
            )
        }));
        table.rows.push(row);
    }
    table
}

fn front_table(report: &Report, columns: &[String]) -> Table {
    let mut header: Vec<String> = vec!["configuration".into(), "label".into(), "model".into()];
    header.extend(columns.iter().cloned());
    header.extend(["n_seeds", "seeds", "epochs"].map(String::from));
    for m in FRONT_METRICS {
        header.push(format!("{m}_mean"));
        header.push(format!("{m}_std"));
    }
    header.extend(
        [
            "n_measured",
            "on_front",
            "on_front_actual",
            "on_front_measured",
            "rerun_job_id",
            "rerun_command",
        ]
        .map(String::from),
    );
    let alt_computed = report
        .objectives
        .iter()
        .any(|o| o.metric == "savings_nominal");
    let alt = |v: Option<bool>| {
        if alt_computed {
            Cell::Bool(v.unwrap_or(false))
        } else {
            Cell::Null
        }
    };
    let mut table = Table::new(header);
    for c in &report.configurations {
        let mut row = vec![
            Cell::Text(c.id.clone()),
            Cell::Text(c.label.clone()),
            Cell::Text(model_name(c).into()),
        ];
        row.extend(columns.iter().map(|k| {
            c.params
                .get(k)
                .map_or(Cell::Null, |v| Cell::Json(v.clone()))
        }));
        let seeds: Vec<String> = c.seeds.iter().map(u64::to_string).collect();
        row.extend([
            Cell::Int(c.seeds.len() as u64),
            Cell::Text(seeds.join(";")),
            Cell::Int(c.epochs as u64),
        ]);
        for m in FRONT_METRICS {
            let s = c.stat(m);
            row.push(Cell::opt_float(s.map(|s| s.mean)));
            row.push(Cell::opt_float(s.map(|s| s.std)));
        }
        row.extend([
            Cell::Int(c.savings_measured.map_or(0, |s| s.n) as u64),
            Cell::Bool(c.front.objectives.unwrap_or(false)),
            alt(c.front.actual),
            alt(c.front.measured),
            Cell::Text(c.rerun.job_id.clone()),
            Cell::Text(c.rerun.command.clone()),
        ]);
        table.push(row);
    }
    table
}

fn model_name(c: &Configuration) -> &'static str {
    match c.kind {
        cg_core::ModelKind::Resnet => "resnet",
        cg_core::ModelKind::Cosinegate => "cosinegate",
    }
}

// ---------------------------------------------------------------------------------------------
// Figures

fn objective_desc(o: &Objective) -> String {
    let arrow = match o.direction {
        Direction::Maximize => "↑",
        Direction::Minimize => "↓",
    };
    format!("{} {arrow}", o.metric)
}

fn baseline_label(c: &Configuration) -> String {
    if c.label.chars().count() <= 40 {
        format!("{} {}", c.id, c.label)
    } else {
        c.id.clone()
    }
}

fn row_label(c: &Configuration) -> String {
    if c.short_label == c.id {
        c.id.clone()
    } else {
        format!("{} {}", c.id, c.short_label)
    }
}

fn figures(report: &Report, opts: &ReportOptions) -> Vec<Figure> {
    let sweep = &report.sweep.name;
    let no_runs = if report.counts.total == 0 {
        "the sweep has no jobs"
    } else {
        "no finished runs"
    };
    let message = |stem: &str, caption: &str, title: String, text: &str| Figure {
        stem: stem.into(),
        caption: caption.into(),
        kind: FigureKind::Message {
            title,
            message: text.into(),
        },
    };

    // Accuracy vs savings.
    let y_obj = report.objectives[0].clone();
    let x_obj = report.objectives.get(1).cloned().unwrap_or(Objective {
        metric: "savings_nominal".into(),
        direction: Direction::Maximize,
    });
    let title = format!("{sweep}: {} vs {}", y_obj.metric, x_obj.metric);
    let mut points: Vec<ScatterPoint> = Vec::new();
    for c in report.configurations.iter().filter(|c| !c.is_baseline()) {
        if let (Some(x), Some(y)) = (c.stat(&x_obj.metric), c.stat(&y_obj.metric))
            && x.mean.is_finite()
            && y.mean.is_finite()
        {
            points.push(ScatterPoint {
                label: c.short_label.clone(),
                x: x.mean,
                x_std: x.std,
                y: y.mean,
                y_std: y.std,
                on_front: c.front.objectives == Some(true),
                show_label: false,
            });
        }
    }
    // Label every point when few; else every k-th front point along the x axis.
    if points.len() <= opts.max_point_labels {
        points.iter_mut().for_each(|p| p.show_label = true);
    } else if opts.max_point_labels > 0 {
        let mut front: Vec<usize> = (0..points.len()).filter(|&i| points[i].on_front).collect();
        front.sort_by(|&a, &b| points[a].x.total_cmp(&points[b].x).then(a.cmp(&b)));
        let step = front.len().div_ceil(opts.max_point_labels).max(1);
        for &i in front.iter().step_by(step) {
            points[i].show_label = true;
        }
    }
    let pareto_caption = format!(
        "{} against {}, mean ± sample std over seeds. Red: the front of the objectives; grey: dominated{}; dashed: ResNet baseline.",
        y_obj.metric,
        x_obj.metric,
        if points.len() > plots::MAX_DOMINATED_ERROR_BARS {
            " (error bars on the front only)"
        } else {
            ""
        }
    );
    let baselines: Vec<(String, f64)> = report
        .configurations
        .iter()
        .filter(|c| c.is_baseline())
        .filter_map(|c| c.stat(&y_obj.metric).map(|s| (baseline_label(c), s.mean)))
        .filter(|(_, y)| y.is_finite())
        .collect();
    let pareto_figure = if points.is_empty() && baselines.is_empty() {
        message("pareto", &pareto_caption, title, no_runs)
    } else {
        Figure {
            stem: "pareto".into(),
            caption: pareto_caption,
            kind: FigureKind::Scatter(ScatterFigure {
                title,
                x_desc: objective_desc(&x_obj),
                y_desc: objective_desc(&y_obj),
                points,
                baselines,
            }),
        }
    };

    // Gate heatmaps.
    let gated: Vec<&Configuration> = report
        .configurations
        .iter()
        .filter(|c| !c.gates.is_empty())
        .collect();
    let shown: Vec<&Configuration> = if gated.len() <= opts.max_heatmap_rows {
        gated.clone()
    } else {
        let mut keep: Vec<bool> = gated
            .iter()
            .map(|c| c.front.objectives == Some(true))
            .collect();
        let mut n = keep
            .iter()
            .filter(|k| **k)
            .count()
            .min(opts.max_heatmap_rows);
        if n == opts.max_heatmap_rows {
            // More front configurations than rows: the first ones in report order.
            let mut seen = 0;
            for k in keep.iter_mut() {
                if *k {
                    seen += 1;
                    *k = seen <= opts.max_heatmap_rows;
                }
            }
        }
        for k in keep.iter_mut() {
            if n >= opts.max_heatmap_rows {
                break;
            }
            if !*k {
                *k = true;
                n += 1;
            }
        }
        gated
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(c, _)| *c)
            .collect()
    };
    let mut blocks: Vec<usize> = shown
        .iter()
        .flat_map(|c| c.gates.iter().map(|g| g.block_idx))
        .collect();
    blocks.sort_unstable();
    blocks.dedup();
    let subset = if shown.len() < gated.len() {
        format!(
            " Showing {} of {} configurations (front first).",
            shown.len(),
            gated.len()
        )
    } else {
        String::new()
    };
    let heatmap = |stem: &str,
                   what: &str,
                   desc: &str,
                   pick: fn(&aggregate::BlockGateMean) -> f64,
                   fixed: Option<(f64, f64)>| {
        let caption = format!(
            "{what} per gated block and configuration, mean over seeds, on the test set.{subset}"
        );
        let title = format!("{sweep}: {what}");
        if shown.is_empty() {
            let text = if report.counts.finished == 0 {
                no_runs
            } else {
                "no gate statistics (baseline runs only)"
            };
            return message(stem, &caption, title, text);
        }
        let values: Vec<Vec<Option<f64>>> = shown
            .iter()
            .map(|c| {
                blocks
                    .iter()
                    .map(|b| c.gates.iter().find(|g| g.block_idx == *b).map(pick))
                    .collect()
            })
            .collect();
        let range = fixed.unwrap_or_else(|| {
            let (lo, hi) = values
                .iter()
                .flatten()
                .flatten()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                    (lo.min(*v), hi.max(*v))
                });
            if hi > lo {
                (lo, hi)
            } else {
                (lo - 0.5, lo + 0.5)
            }
        });
        Figure {
            stem: stem.into(),
            caption,
            kind: FigureKind::Heatmap(HeatmapFigure {
                title,
                value_desc: desc.into(),
                column_labels: blocks.iter().map(usize::to_string).collect(),
                row_labels: shown.iter().map(|c| row_label(c)).collect(),
                values,
                range,
            }),
        }
    };
    let gates_open = heatmap(
        "gates_open",
        "gate-open rate",
        "fraction of samples executed",
        |g| g.gate_open_rate,
        Some((0.0, 1.0)),
    );
    let gates_cir = heatmap(
        "gates_cir",
        "mean CIR",
        "mean 1 − cos(x, F(x))",
        |g| g.mean_cir,
        None,
    );

    // Training curves of the front.
    let mut front: Vec<&Configuration> = report
        .configurations
        .iter()
        .filter(|c| c.front.objectives == Some(true) && !c.curve.is_empty())
        .collect();
    let n_front = front.len();
    front.truncate(opts.max_curves);
    let curves_caption = format!(
        "Test accuracy and nominal savings per epoch of the front's configurations, mean over seeds.{}",
        if n_front > front.len() {
            format!(" Showing {} of {}.", front.len(), n_front)
        } else {
            String::new()
        }
    );
    let curves_title = format!("{sweep}: training curves of the front");
    let curves = if front.is_empty() {
        let text = if report.counts.finished == 0 {
            no_runs
        } else {
            "no training history on the front"
        };
        message("curves", &curves_caption, curves_title, text)
    } else {
        Figure {
            stem: "curves".into(),
            caption: curves_caption,
            kind: FigureKind::Curves(CurvesFigure {
                title: curves_title,
                series: front
                    .iter()
                    .map(|c| {
                        (
                            row_label(c),
                            c.curve
                                .iter()
                                .map(|p| (p.epoch as f64, p.test_acc, p.savings_nominal))
                                .collect(),
                        )
                    })
                    .collect(),
            }),
        }
    };
    vec![pareto_figure, gates_open, gates_cir, curves]
}

// ---------------------------------------------------------------------------------------------
// Documents

fn fmt_stat(s: Stat) -> String {
    if s.n > 1 {
        format!("{:.4} ± {:.4}", s.mean, s.std)
    } else {
        format!("{:.4}", s.mean)
    }
}

fn fmt_opt_stat(s: Option<Stat>) -> String {
    s.map_or_else(|| "—".into(), fmt_stat)
}

fn fmt_number(v: f64) -> String {
    format!("{v}")
}

fn first_line(text: &str, max_chars: usize) -> String {
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if line.chars().count() > max_chars {
        format!("{}…", line.chars().take(max_chars).collect::<String>())
    } else {
        line.to_string()
    }
}

fn configuration_row(c: &Configuration) -> Vec<String> {
    vec![
        c.id.clone(),
        format!("`{}`", c.label),
        fmt_stat(c.test_acc_final),
        format!(
            "{} (epoch {:.0})",
            fmt_stat(c.test_acc_peak),
            c.peak_epoch.mean
        ),
        fmt_stat(c.savings_nominal),
        fmt_stat(c.savings_actual),
        fmt_opt_stat(c.savings_measured),
        c.epochs.to_string(),
        c.seeds.len().to_string(),
        format!("`{}`", c.rerun.command),
    ]
}

const CONFIG_HEADER: [&str; 10] = [
    "id",
    "configuration",
    "accuracy final",
    "accuracy peak",
    "savings nominal",
    "savings actual",
    "savings measured",
    "epochs",
    "seeds",
    "re-run",
];

fn document(report: &Report, figures: &[Figure], opts: &ReportOptions) -> Vec<Block> {
    let counts = &report.counts;
    let mut blocks = vec![Block::Heading(
        1,
        format!("Sweep report: `{}`", report.sweep.name),
    )];
    if let Some(progress) = &opts.progress {
        blocks.push(progress_notice(counts, progress));
    }
    blocks.extend(opts.preface.iter().cloned().map(Block::Paragraph));

    let mut states = vec![format!("{} finished", counts.finished)];
    for (n, what) in [
        (counts.failed, "failed"),
        (counts.queued, "queued"),
        (counts.running, "running"),
        (counts.cancelled, "cancelled"),
        (
            counts.completed_without_result,
            "completed without a stored result",
        ),
    ] {
        if n > 0 {
            states.push(format!("{n} {what}"));
        }
    }
    let n_baseline = report
        .configurations
        .iter()
        .filter(|c| c.is_baseline())
        .count();
    let objectives: Vec<String> = report
        .objectives
        .iter()
        .map(|o| {
            let dir = match o.direction {
                Direction::Maximize => "maximise",
                Direction::Minimize => "minimise",
            };
            format!("`{}` ({dir})", o.metric)
        })
        .collect();
    let reference: Vec<String> = report
        .reference_point
        .iter()
        .map(|v| fmt_number(*v))
        .collect();
    let n_front = report.front().count();
    let mut summary = vec![
        format!("Jobs: {} ({}).", counts.total, states.join(", ")),
        format!(
            "Configurations: {} ({} CosineGate, {} ResNet baseline) from {} finished runs{}.",
            report.configurations.len(),
            report.configurations.len() - n_baseline,
            n_baseline,
            counts.finished - counts.below_top,
            if counts.below_top > 0 {
                format!(
                    " on the whole schedule ({} more ended at a lower rung of the search)",
                    counts.below_top
                )
            } else {
                String::new()
            }
        ),
        format!(
            "Objectives: {}; reference point ({}).",
            objectives.join(", "),
            reference.join(", ")
        ),
    ];
    if !report.runs.is_empty() {
        let mut backends: std::collections::BTreeMap<&str, usize> = Default::default();
        for r in &report.runs {
            *backends.entry(r.backend.as_str()).or_default() += 1;
        }
        let backends: Vec<String> = backends
            .iter()
            .map(|(b, n)| format!("`{b}` ({n} run{})", if *n == 1 { "" } else { "s" }))
            .collect();
        summary.push(format!("Backends: {}.", backends.join(", ")));
    }
    if !report.sweep.axes.is_empty() {
        let axes: Vec<String> = report.sweep.axes.iter().map(|a| format!("`{a}`")).collect();
        summary.push(format!("Axes: {}.", axes.join(", ")));
    }
    summary.push(match report.hypervolume {
        Some(hv) => format!("Hypervolume: {hv:.6} (front of {n_front} configurations)."),
        None => {
            "Hypervolume: none (no finished CosineGate configuration has every objective).".into()
        }
    });
    blocks.push(Block::List(summary));

    if counts.total == 0 {
        blocks.push(Block::Paragraph(
            "The sweep has no jobs yet: there is nothing to report.".into(),
        ));
    } else if counts.finished == 0 {
        blocks.push(Block::Paragraph(format!(
            "No job of this sweep has finished{}: there are no results to report yet.",
            if counts.failed == counts.total {
                " (every job failed)"
            } else {
                ""
            }
        )));
    }

    if !report.configurations.is_empty() {
        blocks.push(Block::Heading(2, "Pareto front".into()));
        blocks.push(Block::Paragraph(format!(
            "Configurations that no other configuration beats in every objective, compared by their means \
             over seeds; ties and duplicates all stay on the front. Figures are mean ± sample standard deviation \
             over seeds (just the mean for one seed). Baselines are references, not candidates. \
             The re-run command repeats a configuration with its lowest seed from its resolved configuration in \
             `{}/`; add `--set train.seed=N` for another seed.",
            opts.configs_dir.trim_end_matches('/')
        )));
        let mut front: Vec<&Configuration> = report.front().collect();
        let first = &report.objectives[0];
        front.sort_by(|a, b| {
            let (x, y) = (
                a.stat(&first.metric).map_or(f64::NAN, |s| s.mean),
                b.stat(&first.metric).map_or(f64::NAN, |s| s.mean),
            );
            let order = match first.direction {
                Direction::Maximize => y.total_cmp(&x),
                Direction::Minimize => x.total_cmp(&y),
            };
            order.then_with(|| a.id.cmp(&b.id))
        });
        if front.is_empty() {
            blocks.push(Block::Paragraph(
                "No configuration is a candidate for the front.".into(),
            ));
        } else {
            blocks.push(Block::Table {
                header: CONFIG_HEADER.map(String::from).to_vec(),
                rows: front.iter().map(|c| configuration_row(c)).collect(),
            });
        }
        if report
            .objectives
            .iter()
            .any(|o| o.metric == "savings_nominal")
        {
            let ids = |pick: fn(&FrontMembership) -> Option<bool>| -> String {
                let ids: Vec<String> = report
                    .configurations
                    .iter()
                    .filter(|c| pick(&c.front) == Some(true))
                    .map(|c| c.id.clone())
                    .collect();
                if ids.is_empty() {
                    "none".into()
                } else {
                    ids.join(", ")
                }
            };
            let measured_any = report
                .configurations
                .iter()
                .any(|c| c.front.measured.is_some());
            blocks.push(Block::List(vec![
                format!("Front with actual savings instead of nominal: {}.", ids(|m| m.actual)),
                if measured_any {
                    format!(
                        "Front with measured savings instead of nominal (configurations that measured it): {}.",
                        ids(|m| m.measured)
                    )
                } else {
                    "Front with measured savings: no configuration measured wall-clock savings.".into()
                },
            ]));
        }
        let baselines: Vec<&Configuration> = report
            .configurations
            .iter()
            .filter(|c| c.is_baseline())
            .collect();
        if !baselines.is_empty() {
            blocks.push(Block::Heading(2, "Baseline".into()));
            blocks.push(Block::Table {
                header: CONFIG_HEADER.map(String::from).to_vec(),
                rows: baselines.iter().map(|c| configuration_row(c)).collect(),
            });
        }
    }

    if let Some(search) = &opts.search {
        blocks.push(Block::Heading(2, "Search (mo-asha)".into()));
        blocks.push(Block::Paragraph(format!(
            "The front above compares like with like: it is made of the configurations that reached \
             the top rung ({} epochs). The {} configuration(s) stopped at a lower rung are listed \
             below with the rung they stopped at and their objectives there (`stopped.csv`); they \
             are not candidates for the front. `hv_history.csv` holds the hypervolume of the top \
             rung after every result against the epochs spent so far.",
            search.top_epochs,
            search.stopped.len()
        )));
        if let Some(against) = &search.against {
            blocks.push(Block::Paragraph(against.sentence()));
        }
        blocks.push(Block::Figure {
            stem: "hv_history".into(),
            caption: "Hypervolume against epochs spent".into(),
        });
        let table = stopped_table(report, search);
        if !table.rows.is_empty() {
            let shown = table.rows.len().min(opts.max_table_rows);
            blocks.push(Block::Table {
                header: table.columns.clone(),
                rows: table.rows[..shown]
                    .iter()
                    .map(|row| row.iter().map(Cell::text).collect())
                    .collect(),
            });
        }
    }

    blocks.push(Block::Heading(2, "Figures".into()));
    if report.runs.is_empty() {
        // Empty plots would fill the page (a live report starts this way): the files still exist.
        blocks.push(Block::Paragraph(
            "No figures yet: they are drawn once a job has finished (the figure files say so too)."
                .into(),
        ));
    } else {
        for f in figures {
            blocks.push(Block::Figure {
                stem: f.stem.clone(),
                caption: f.caption.clone(),
            });
        }
    }

    if !report.configurations.is_empty() {
        blocks.push(Block::Heading(2, "All configurations".into()));
        let shown = report.configurations.len().min(opts.max_table_rows);
        if shown < report.configurations.len() {
            blocks.push(Block::Paragraph(format!(
                "The first {shown} of {} configurations; `front.csv` has them all.",
                report.configurations.len()
            )));
        }
        blocks.push(Block::Table {
            header: [
                "id",
                "configuration",
                "model",
                "on front",
                "accuracy final",
                "savings nominal",
                "savings actual",
                "seeds",
            ]
            .map(String::from)
            .to_vec(),
            rows: report.configurations[..shown]
                .iter()
                .map(|c| {
                    vec![
                        c.id.clone(),
                        format!("`{}`", c.label),
                        model_name(c).into(),
                        match c.front.objectives {
                            Some(true) => "yes".into(),
                            Some(false) => "no".into(),
                            None => "—".into(),
                        },
                        fmt_stat(c.test_acc_final),
                        fmt_stat(c.savings_nominal),
                        fmt_stat(c.savings_actual),
                        c.seeds.len().to_string(),
                    ]
                })
                .collect(),
        });
    }

    if !report.failed.is_empty() {
        blocks.push(Block::Heading(2, "Failed jobs".into()));
        let shown = report.failed.len().min(opts.max_table_rows);
        if shown < report.failed.len() {
            blocks.push(Block::Paragraph(format!(
                "The first {shown} of {} failed jobs.",
                report.failed.len()
            )));
        }
        blocks.push(Block::Table {
            header: ["job", "configuration", "attempts", "error"]
                .map(String::from)
                .to_vec(),
            rows: report.failed[..shown]
                .iter()
                .map(|f| {
                    vec![
                        format!("`{}`", f.job_id),
                        format!("`{}`", f.label),
                        f.attempts.to_string(),
                        first_line(&f.error, 200).replace('`', "'"),
                    ]
                })
                .collect(),
        });
    }

    blocks.push(Block::Heading(2, "Files".into()));
    blocks.push(Block::List(vec![
        "`results.csv`, `results.json`: one row per finished run.".into(),
        "`front.csv`, `front.json`: one row per configuration, with mean and std over seeds and front membership.".into(),
        "`configs/<job_id>.json`: the resolved configuration of each configuration's re-run job.".into(),
        "`pareto`, `gates_open`, `gates_cir`, `curves`: figures as `.png` and `.svg`.".into(),
    ]));
    blocks
}

/// The notice at the top: running (k of n done, what runs, when) or finished.
fn progress_notice(counts: &JobCounts, progress: &Progress) -> Block {
    let done = counts.finished + counts.completed_without_result + counts.failed + counts.cancelled;
    let completed = counts.finished + counts.completed_without_result;
    let mut parts = vec![format!("{completed} completed")];
    if counts.failed > 0 {
        parts.push(format!("{} failed", counts.failed));
    }
    if counts.cancelled > 0 {
        parts.push(format!("{} cancelled", counts.cancelled));
    }
    match progress {
        Progress::Running {
            updated,
            reload_secs,
        } => Block::Notice {
            running: true,
            text: format!(
                "Sweep running: {done} of {} jobs done ({}), {} running, {} queued. Last update: {updated}. \
                 This page reloads every {reload_secs} s until the sweep has finished.",
                counts.total,
                parts.join(", "),
                counts.running,
                counts.queued
            ),
        },
        Progress::Paused { updated } => Block::Notice {
            running: true,
            text: format!(
                "Sweep paused: {done} of {} jobs done ({}), {} running, {} queued. Last update: {updated}. \
                 Queued jobs wait until the sweep is resumed (`cg sweep resume`); this page does not reload.",
                counts.total,
                parts.join(", "),
                counts.running,
                counts.queued
            ),
        },
        Progress::Finished { finished } => Block::Notice {
            running: false,
            text: format!(
                "Sweep finished: {} jobs ({}). Finished: {finished}.",
                counts.total,
                parts.join(", ")
            ),
        },
    }
}

fn render_files(
    report: &Report,
    columns: &[String],
    opts: &ReportOptions,
) -> Result<Vec<ReportFile>> {
    let file = |path: &str, contents: Vec<u8>| ReportFile {
        path: PathBuf::from(path),
        contents,
    };
    let mut files = Vec::new();
    let figures = figures(report, opts);
    let blocks = document(report, &figures, opts);
    let mut rendered = Vec::with_capacity(figures.len());
    for figure in &figures {
        rendered.push((figure.stem.clone(), plots::render(figure, opts.plot_size)?));
    }
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
    files.push(file("report.md", markdown.into_bytes()));
    files.push(file("report.html", html.into_bytes()));

    let results = results_table(report, columns);
    let front = front_table(report, columns);
    files.push(file("results.csv", results.to_csv().into_bytes()));
    files.push(file("results.json", results.to_json()?.into_bytes()));
    files.push(file("front.csv", front.to_csv().into_bytes()));
    files.push(file("front.json", front.to_json()?.into_bytes()));
    if let Some(search) = &opts.search {
        let stopped = stopped_table(report, search);
        files.push(file("stopped.csv", stopped.to_csv().into_bytes()));
    }
    for (stem, r) in rendered {
        files.push(file(&format!("{stem}.png"), r.png));
        files.push(file(&format!("{stem}.svg"), r.svg.into_bytes()));
    }
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

/// Writes every file of a report under `out_dir`, each one atomically, with the process's
/// permissions; see [`write_report_with`](crate::write_report_with).
pub fn write_report(report: &Report, out_dir: &Path) -> Result<WrittenReport> {
    crate::write::write_report_with(report, out_dir, &crate::WriteOptions::default())
}
