//! The types of a report: the options that shape it ([`ReportOptions`], with the search's part and
//! where the sweep stands), and what [`build_report`](super::build_report) computes ([`Report`]:
//! counts, configurations, runs, failures, hypervolume and the rendered files). No computation.

use std::path::{Path, PathBuf};

use cg_core::{JobRecord, Objective, SweepInfo};

use crate::aggregate::{Configuration, RunRow};

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
    /// The grid's points over the search's configurations (objective values as chosen), for the
    /// search's share at other reference points.
    pub grid_points: Vec<Vec<f64>>,
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
    /// How far the hypervolume can be trusted; `None` without a front.
    pub hv_trust: Option<HvTrust>,
    pub files: Vec<ReportFile>,
}

/// How much the hypervolume rests on one configuration, and how it moves with the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct HvTrust {
    /// The front configuration with the largest exclusive contribution (the hypervolume lost
    /// without it) and that contribution over the total; `None` when the total is zero.
    pub largest: Option<(String, f64)>,
    /// The sweep's reference, then stricter reference accuracies (when an objective is one).
    pub references: Vec<HvReference>,
}

/// The hypervolume of the front at one reference point.
#[derive(Debug, Clone, PartialEq)]
pub struct HvReference {
    /// `the sweep's`, `+2 points`, `+5 points`.
    pub label: String,
    pub reference: Vec<f64>,
    /// A raised accuracy was capped at the best baseline's accuracy.
    pub capped: bool,
    pub hypervolume: f64,
    /// With `--against`: this hypervolume over the grid's at the same reference.
    pub search_share: Option<f64>,
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
