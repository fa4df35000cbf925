//! `cg report SWEEP`: reads the sweep's records, writes the report, stores the hypervolume. Glue:
//! this module loads from the store (the records, a search's decisions and hypervolume history,
//! the `--against` grid's records and the jobs of the search's space) and hands them to
//! cg-report, which assembles every section and writes the files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cg_report::{
    GridComparison, GridRecords, HvHistoryRow, Progress, ReportOptions, SearchDecision,
    SearchSection, WriteOptions, build_report, write_report_with,
};
use clap::Args;

use crate::db::{DB_HELP_SHORT, DbArg, runtime};

#[derive(Args, Debug)]
#[command(mut_arg("db", |a| a.help(DB_HELP_SHORT)))]
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
    let mut extras = Extras {
        preface: read_preface(args.preface.as_deref())?,
        against: None,
    };
    runtime()?.block_on(async {
        let store = args.db.open_existing_or_read_only().await?;
        if let Some(grid) = &args.against {
            extras.against = Some((open_against(&args, grid).await?, grid.clone()));
        }
        let out = report_dir(&args.sweep, args.out.clone())?;
        write_sweep_report_with(&store, &args.sweep, &out, true, &extras).await?;
        println!("{}", out.join("report.md").display());
        Ok(ExitCode::SUCCESS)
    })
}

/// The paragraphs of `--preface FILE` (none without it).
fn read_preface(path: Option<&std::path::Path>) -> Result<Vec<String>> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let bytes = crate::util::read_capped(path, crate::util::MAX_PREFACE_BYTES, "the preface")?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("the preface {} is not UTF-8 text", path.display()))?;
    Ok(paragraphs(&text))
}

/// The database that holds the `--against` grid: `--against-db`, or the report's own.
async fn open_against(args: &ReportArgs, grid: &str) -> Result<cg_store::Store> {
    match &args.against_db {
        Some(url) => DbArg { db: url.clone() }
            .open_existing_or_read_only()
            .await
            .with_context(|| format!("cannot open the database of `{grid}`")),
        None => args.db.open_existing_or_read_only().await,
    }
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

/// [`write_sweep_report_quiet`] with a preface and a comparison with a grid: loads the sweep's
/// records (and a search's decisions) from the store, has cg-report build and write the report,
/// and stores its path and hypervolume.
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
    let is_search = store.search(sweep).await?.is_some();
    let search = if is_search {
        Some(search_section(store, sweep, &summary.info, &records, extras).await?)
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
        progress: Some(progress_of(&summary)),
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
    if is_search {
        write_hv_history(store, sweep, out, write.mode).await?;
    }
    store_report(store, sweep, out, written.hypervolume).await?;
    if summary_line {
        print_summary_line(sweep, &summary.counts, written.hypervolume);
    }
    Ok(())
}

/// Where the sweep stands, as the report's notice says it (the time is read here).
fn progress_of(summary: &cg_store::SweepSummary) -> Progress {
    if summary.has_finished() {
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
    }
}

/// A search's part of the report, from its decisions (and the grid of `--against`). Its front is
/// drawn from its top rung (cg-report leaves out the rung jobs below it, which carry
/// `train.stop_after`); the configurations stopped below the top rung are shown apart.
async fn search_section(
    store: &cg_store::Store,
    sweep: &str,
    info: &cg_core::SweepInfo,
    records: &[cg_core::JobRecord],
    extras: &Extras,
) -> Result<SearchSection> {
    let decisions: Vec<SearchDecision> = store
        .search_decisions(sweep)
        .await?
        .into_iter()
        .map(|d| SearchDecision {
            kind: d.kind,
            job_id: d.job_id,
            rung: d.rung,
            epochs: d.epochs,
        })
        .collect();
    let against = match &extras.against {
        Some((grid_store, grid)) => Some(against_grid(store, sweep, info, grid_store, grid).await?),
        None => None,
    };
    Ok(cg_report::search_section(records, &decisions, against))
}

/// A search's hypervolume history (`hv_history.csv` and its plot) beside the report.
async fn write_hv_history(
    store: &cg_store::Store,
    sweep: &str,
    out: &std::path::Path,
    mode: Option<u32>,
) -> Result<()> {
    let rows: Vec<HvHistoryRow> = store
        .hv_history(sweep)
        .await?
        .into_iter()
        .map(hv_row)
        .collect();
    cg_report::write_hv_history(out, sweep, &rows, mode)
        .with_context(|| format!("cannot write the hypervolume history in {}", out.display()))?;
    Ok(())
}

fn hv_row(h: cg_store::HvRow) -> HvHistoryRow {
    HvHistoryRow {
        seq: h.seq,
        epochs_spent: h.epochs_spent,
        hypervolume: h.hypervolume,
    }
}

/// Stores the report's path and its hypervolume, unless the database is read-only.
async fn store_report(
    store: &cg_store::Store,
    sweep: &str,
    out: &std::path::Path,
    hypervolume: Option<f64>,
) -> Result<()> {
    if !store.is_read_only() {
        store
            .set_report_path(sweep, &report_html_path(out))
            .await
            .context("cannot store the report's path")?;
    }
    if let Some(hv) = hypervolume {
        if store.is_read_only() {
            eprintln!("note: the database is read-only; the hypervolume is not stored");
        } else {
            store
                .set_hypervolume(sweep, hv)
                .await
                .context("cannot store the hypervolume")?;
        }
    }
    Ok(())
}

/// The one-line summary of `cg report` on stderr.
fn print_summary_line(sweep: &str, c: &cg_store::StatusCounts, hypervolume: Option<f64>) {
    eprintln!(
        "sweep `{sweep}`: {} jobs ({} completed, {} failed, {} queued, {} running){}",
        c.total(),
        c.get(cg_core::JobStatus::Completed),
        c.get(cg_core::JobStatus::Failed),
        c.get(cg_core::JobStatus::Queued),
        c.get(cg_core::JobStatus::Running),
        hypervolume
            .map(|hv| format!("; hypervolume {hv:.6}"))
            .unwrap_or_default()
    );
}

/// The search `sweep` beside the full grid `grid` (see [`GridRecords::compare`]). Refused unless
/// `grid` is a sweep that is no search and holds a completed full-budget result (the same job)
/// for every point of the search's space (for a space with a float axis: every configuration the
/// search drew).
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
    let grid_records = grid_store
        .job_records(grid)
        .await
        .with_context(|| format!("cannot read the jobs of the grid `{grid}`"))?;
    let required = full_budget_jobs(store, sweep).await?;
    let last = store
        .hv_history(sweep)
        .await?
        .into_iter()
        .last()
        .map(hv_row);
    let records = GridRecords {
        grid,
        sweep,
        info,
        required: &required,
        grid_records: &grid_records,
        last,
    };
    Ok(records.compare()?)
}

/// The full-budget jobs (one per seed) of every point of the search's space, or, when the space has a float
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
    let mut jobs = Vec::with_capacity(points.len());
    for p in &points {
        // One job per seed of the point (a seeded grid holds each).
        jobs.extend(
            loaded
                .search_jobs(p, None)
                .with_context(|| format!("a point of `{sweep}`'s space has no job: {p:?}"))?,
        );
    }
    Ok(jobs)
}
