//! `cg report SWEEP`: reads the sweep's records, writes the report, stores the hypervolume.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cg_report::{
    Progress, ReportOptions, SearchSection, StoppedRun, WriteOptions, build_report,
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
}

pub fn run(args: ReportArgs) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let store = args.db.open_existing_or_read_only().await?;
        let path = write_sweep_report(&store, &args.sweep, args.out.clone()).await?;
        println!("{}", path.display());
        Ok(ExitCode::SUCCESS)
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
    let out = match out {
        Some(out) => out,
        None => {
            // The name comes from the database: only a plain name may pick the directory.
            cg_core::check_name(sweep)
                .map_err(|reason| anyhow::anyhow!("{reason}; pass --out DIR"))?;
            PathBuf::from("reports").join(sweep)
        }
    };
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
    } else {
        Progress::Running {
            updated: crate::util::utc_text(crate::util::now_ms()),
            reload_secs: RELOAD_SECS,
        }
    };
    let is_search = store.search(sweep).await?.is_some();
    // A search's front compares like with like: the configurations of the top rung, trained on
    // the whole schedule (a rung job below it carries `train.stop_after`).
    // The configurations stopped below the top rung are shown apart, with their rung.
    let (records, search) = if is_search {
        let top_epochs = records
            .iter()
            .map(|r| r.job.config.train.epochs as u64)
            .max()
            .unwrap_or(0);
        let stops: Vec<_> = store
            .search_decisions(sweep)
            .await?
            .into_iter()
            .filter(|d| d.kind == "stop")
            .collect();
        let (top, below): (Vec<cg_core::JobRecord>, Vec<cg_core::JobRecord>) = records
            .into_iter()
            .partition(|r| r.job.config.train.stop_after.is_none());
        let stopped = stops
            .iter()
            .filter_map(|d| {
                let record = below.iter().find(|r| r.job.id == d.job_id)?;
                Some(StoppedRun {
                    rung: d.rung,
                    epochs: d.epochs,
                    record: record.clone(),
                })
            })
            .collect();
        let section = SearchSection {
            top_epochs,
            stopped,
        };
        (top, Some(section))
    } else {
        (records, None)
    };
    let opts = ReportOptions {
        configs_dir: out.join("configs").display().to_string(),
        progress: Some(progress),
        search,
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
