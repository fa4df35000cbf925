//! `cg report SWEEP`: reads the sweep's records, writes the report, stores the hypervolume.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cg_report::{
    GridComparison, Progress, ReportOptions, SearchSection, StoppedRun, WriteOptions, build_report,
    write_report_with,
};
use clap::Args;

use crate::db::{DbArg, runtime};

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The sweep's name.
    pub sweep: String,
    #[command(flatten)]
    pub db: DbArg,
    /// Output directory (default `reports/<sweep>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A markdown file whose paragraphs open the report (a researcher's reading of the front).
    #[arg(long, value_name = "FILE")]
    pub preface: Option<PathBuf>,
    /// For a `method: mo-asha` sweep: the full-budget grid sweep over the same configurations to
    /// compare it with (share of the grid's final hypervolume reached, share of its epochs spent).
    #[arg(long, value_name = "GRID")]
    pub against: Option<String>,
    /// The database that holds the `--against` grid (default: the report's own).
    #[arg(long, value_name = "URL", requires = "against")]
    pub against_db: Option<String>,
}

/// What `cg report` adds to a report beyond the database's contents.
#[derive(Default)]
pub struct Extras {
    pub preface: Vec<String>,
    /// (the store that holds the grid, the grid sweep's name).
    pub against: Option<(cg_store::Store, String)>,
}

pub fn run(args: ReportArgs) -> Result<ExitCode> {
    // The preface is read, capped, before anything else is done.
    let mut extras = Extras::default();
    if let Some(path) = &args.preface {
        let bytes = crate::util::read_capped(path, crate::util::MAX_PREFACE_BYTES, "the preface")?;
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("the preface {} is not UTF-8 text", path.display()))?;
        extras.preface = paragraphs(&text);
    }
    runtime()?.block_on(async {
        let store = args.db.open_existing_or_read_only().await?;
        if let Some(grid) = &args.against {
            let other = match &args.against_db {
                Some(url) => DbArg { db: url.clone() }
                    .open_existing_or_read_only()
                    .await
                    .with_context(|| format!("cannot open the database of `{grid}`"))?,
                None => args.db.open_existing_or_read_only().await?,
            };
            extras.against = Some((other, grid.clone()));
        }
        let out = report_dir(&args.sweep, args.out.clone())?;
        write_sweep_report_with(&store, &args.sweep, &out, true, &extras).await?;
        println!("{}", out.join("report.md").display());
        Ok(ExitCode::SUCCESS)
    })
}

/// A markdown text's paragraphs (blank-line separated), each on one line.
fn paragraphs(text: &str) -> Vec<String> {
    text.split("\n\n")
        .map(|p| p.lines().map(str::trim).collect::<Vec<_>>().join(" "))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// `out`, or `reports/<sweep>` when the name is a plain one.
fn report_dir(sweep: &str, out: Option<PathBuf>) -> Result<PathBuf> {
    Ok(match out {
        Some(out) => out,
        None => {
            // The name comes from the database: only a plain name may pick the directory.
            cg_core::check_name(sweep)
                .map_err(|reason| anyhow::anyhow!("{reason}; pass --out DIR"))?;
            PathBuf::from("reports").join(sweep)
        }
    })
}

/// How often a running sweep's `report.html` reloads itself, in seconds.
pub const RELOAD_SECS: u32 = 30;

/// The absolute path of `report.html` in `out`, as `cg status` shows it.
pub fn report_html_path(out: &std::path::Path) -> String {
    let html = out.join("report.html");
    std::path::absolute(&html)
        .unwrap_or(html)
        .display()
        .to_string()
}

/// Builds and writes a sweep's report (default `reports/<sweep>/`), stores its hypervolume, prints a
/// one-line summary on stderr, and returns the path of `report.md`.
pub async fn write_sweep_report(
    store: &cg_store::Store,
    sweep: &str,
    out: Option<PathBuf>,
) -> Result<PathBuf> {
    let out = report_dir(sweep, out)?;
    write_sweep_report_quiet(store, sweep, &out, true).await?;
    Ok(out.join("report.md"))
}

/// [`write_sweep_report`] into `out`, with the one-line summary only when `summary_line`. The
/// report says whether the sweep is running (and then reloads itself) or finished; its files
/// take the permissions of the SQLite database file.
pub async fn write_sweep_report_quiet(
    store: &cg_store::Store,
    sweep: &str,
    out: &std::path::Path,
    summary_line: bool,
) -> Result<()> {
    write_sweep_report_with(store, sweep, out, summary_line, &Extras::default()).await
}

/// [`write_sweep_report_quiet`] with a preface and a comparison with a grid.
pub async fn write_sweep_report_with(
    store: &cg_store::Store,
    sweep: &str,
    out: &std::path::Path,
    summary_line: bool,
    extras: &Extras,
) -> Result<()> {
    let summary = store
        .sweep(sweep)
        .await
        .with_context(|| format!("no sweep `{sweep}`"))?;
    let records = store
        .job_records(sweep)
        .await
        .context("cannot read the sweep's jobs")?;
    let progress = if summary.has_finished() {
        Progress::Finished {
            finished: crate::util::utc_text(
                summary.finished_at_ms.unwrap_or_else(crate::util::now_ms),
            ),
        }
    } else if summary.status == cg_store::SweepStatus::Paused {
        Progress::Paused {
            updated: crate::util::utc_text(crate::util::now_ms()),
        }
    } else {
        Progress::Running {
            updated: crate::util::utc_text(crate::util::now_ms()),
            reload_secs: RELOAD_SECS,
        }
    };
    let is_search = store.search(sweep).await?.is_some();
    // A search's front is drawn from its top rung (cg-report leaves out the rung jobs below it,
    // which carry `train.stop_after`); the configurations stopped below the top rung are shown
    // apart, with their rung.
    let search = if is_search {
        let top_epochs = records
            .iter()
            .map(|r| r.job.config.train.epochs as u64)
            .max()
            .unwrap_or(0);
        let stops: Vec<_> = store
            .search_decisions(sweep)
            .await?
            .into_iter()
            .filter(|d| d.kind == cg_core::DecisionKind::Stop)
            .collect();
        let below: Vec<&cg_core::JobRecord> = records
            .iter()
            .filter(|r| r.job.config.train.stop_after.is_some())
            .collect();
        let stopped = stops
            .iter()
            .filter_map(|d| {
                let record = below.iter().find(|r| r.job.id == d.job_id)?;
                Some(StoppedRun {
                    rung: d.rung,
                    epochs: d.epochs,
                    record: (*record).clone(),
                })
            })
            .collect();
        let against = match &extras.against {
            Some((grid_store, grid)) => {
                Some(against_grid(store, sweep, &summary.info, grid_store, grid).await?)
            }
            None => None,
        };
        Some(SearchSection {
            top_epochs,
            stopped,
            against,
        })
    } else {
        None
    };
    if extras.against.is_some() && search.is_none() {
        anyhow::bail!(
            "--against compares a `method: mo-asha` sweep with a grid; `{sweep}` is no search"
        );
    }
    let opts = ReportOptions {
        configs_dir: out.join("configs").display().to_string(),
        progress: Some(progress),
        search,
        preface: extras.preface.clone(),
        ..ReportOptions::default()
    };
    let report = build_report(&summary.info, &records, &opts).context("cannot build the report")?;
    let write = WriteOptions {
        // Report files follow the database file, without its execute bits.
        mode: store.file_mode().map(|m| m & 0o666),
    };
    let written = write_report_with(&report, out, &write)
        .with_context(|| format!("cannot write {}", out.display()))?;
    // A search (`method: mo-asha`): its hypervolume history beside the report.
    if is_search {
        let rows: Vec<cg_report::HvHistoryRow> = store
            .hv_history(sweep)
            .await?
            .into_iter()
            .map(|h| cg_report::HvHistoryRow {
                seq: h.seq,
                epochs_spent: h.epochs_spent,
                hypervolume: h.hypervolume,
            })
            .collect();
        cg_report::write_hv_history(out, sweep, &rows, write.mode).with_context(|| {
            format!("cannot write the hypervolume history in {}", out.display())
        })?;
    }
    if !store.is_read_only() {
        store
            .set_report_path(sweep, &report_html_path(out))
            .await
            .context("cannot store the report's path")?;
    }
    if let Some(hv) = written.hypervolume {
        if store.is_read_only() {
            eprintln!("note: the database is read-only; the hypervolume is not stored");
        } else {
            store
                .set_hypervolume(sweep, hv)
                .await
                .context("cannot store the hypervolume")?;
        }
    }
    if !summary_line {
        return Ok(());
    }
    let c = &summary.counts;
    eprintln!(
        "sweep `{sweep}`: {} jobs ({} completed, {} failed, {} queued, {} running){}",
        c.total(),
        c.get(cg_core::JobStatus::Completed),
        c.get(cg_core::JobStatus::Failed),
        c.get(cg_core::JobStatus::Queued),
        c.get(cg_core::JobStatus::Running),
        written
            .hypervolume
            .map(|hv| format!("; hypervolume {hv:.6}"))
            .unwrap_or_default()
    );
    Ok(())
}

/// The search `sweep` beside the full grid `grid`: the grid's final hypervolume over the search's
/// configurations at the full budget, with the search's objectives and reference point, the epochs
/// they trained, and the search's last hypervolume and epochs. Refused unless `grid` is a sweep
/// that is no search and holds a completed full-budget result (the same job) for every point of
/// the search's space (for a space with a float axis: every configuration the search drew), and
/// unless that hypervolume is above zero (a share of zero is undefined).
async fn against_grid(
    store: &cg_store::Store,
    sweep: &str,
    info: &cg_core::SweepInfo,
    grid_store: &cg_store::Store,
    grid: &str,
) -> Result<GridComparison> {
    if grid_store.search(grid).await?.is_some() {
        anyhow::bail!(
            "`{grid}` is a `method: mo-asha` search, not a grid: --against needs the full grid \
             over the search's configurations (its file with `method: grid`, run to the end)"
        );
    }
    let records = grid_store
        .job_records(grid)
        .await
        .with_context(|| format!("cannot read the jobs of the grid `{grid}`"))?;
    let required = full_budget_jobs(store, sweep).await?;
    let completed: std::collections::HashMap<&str, &cg_core::JobRecord> = records
        .iter()
        .filter(|r| r.status == cg_core::JobStatus::Completed && r.result.is_some())
        .map(|r| (r.job.id.as_str(), r))
        .collect();
    let mut done: Vec<&cg_core::JobRecord> = Vec::with_capacity(required.len());
    let mut missing: Vec<&cg_core::JobSpec> = Vec::new();
    for job in &required {
        match completed.get(job.id.as_str()) {
            Some(r) => done.push(r),
            None => missing.push(job),
        }
    }
    if let Some(first) = missing.first() {
        anyhow::bail!(
            "the grid `{grid}` is not the full grid of `{sweep}`: it has no completed \
             full-budget result for {} of the search's {} configurations (e.g. {}); --against \
             needs the search's file with `method: grid`, run to the end",
            missing.len(),
            required.len(),
            serde_json::Value::Object(first.params.clone())
        );
    }
    let points: Vec<Vec<f64>> = done
        .iter()
        .filter_map(|r| info.objective_values(r.result.as_ref()?))
        .collect();
    let directions: Vec<_> = info.objectives.iter().map(|o| o.direction).collect();
    let grid_hypervolume =
        cg_core::pareto::hypervolume(&points, &directions, &info.reference_point);
    if grid_hypervolume.is_nan() || grid_hypervolume <= 0.0 {
        anyhow::bail!(
            "the grid `{grid}` has no hypervolume against the search's reference point {:?}: \
             none of its results is better than it in every objective, so no share of it can \
             be computed",
            info.reference_point
        );
    }
    let grid_epochs = done
        .iter()
        .map(|r| r.job.config.train.end_epoch() as u64)
        .sum();
    let last = store.hv_history(sweep).await?.into_iter().last();
    Ok(GridComparison {
        grid: grid.to_string(),
        grid_hypervolume,
        grid_epochs,
        search_hypervolume: last.as_ref().map_or(0.0, |h| h.hypervolume),
        search_epochs: last.map_or(0, |h| h.epochs_spent),
    })
}

/// The full-budget job of every point of the search's space, or, when the space has a float
/// axis (or more than a million points), of every configuration it drew: the jobs a full grid
/// over the same file holds (the same ids). The search's stored file is loaded as the daemon
/// loads it, so the ids take the same data fingerprint.
async fn full_budget_jobs(store: &cg_store::Store, sweep: &str) -> Result<Vec<cg_core::JobSpec>> {
    let loaded = cg_daemon::stored_search(store, sweep)
        .await?
        .with_context(|| format!("`{sweep}` is no search"))?;
    let settings = loaded
        .search_settings()
        .with_context(|| format!("the stored file of `{sweep}` is not `method: mo-asha`"))?;
    let points: Vec<Vec<cg_core::Coord>> = match cg_search::all_points(&settings.space, 1_000_000) {
        Some(points) => points,
        None => store
            .search_decisions(sweep)
            .await?
            .into_iter()
            .filter(|d| d.kind == cg_core::DecisionKind::Draw)
            .filter_map(|d| serde_json::from_value(d.point?).ok())
            .collect(),
    };
    points
        .iter()
        .map(|p| {
            loaded
                .job_at(p, None)
                .with_context(|| format!("a point of `{sweep}`'s space has no job: {p:?}"))
        })
        .collect()
}
