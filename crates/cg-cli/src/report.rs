//! `cg report SWEEP`: reads the sweep's records, writes the report, stores the hypervolume.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cg_report::{ReportOptions, build_report, write_report};
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
        let store = args.db.open_existing().await?;
        let path = write_sweep_report(&store, &args.sweep, args.out.clone()).await?;
        println!("{}", path.display());
        Ok(ExitCode::SUCCESS)
    })
}

/// Builds and writes a sweep's report (default `reports/<sweep>/`), stores its hypervolume, prints a
/// one-line summary on stderr, and returns the path of `report.md`.
pub async fn write_sweep_report(
    store: &cg_store::Store,
    sweep: &str,
    out: Option<PathBuf>,
) -> Result<PathBuf> {
    let summary = store
        .sweep(sweep)
        .await
        .with_context(|| format!("no sweep `{sweep}`"))?;
    let records = store
        .job_records(sweep)
        .await
        .context("cannot read the sweep's jobs")?;
    let is_search = store.search(sweep).await?.is_some();
    // A search's front compares like with like: the configurations of the top rung, trained on
    // the whole schedule (a rung job below it carries `train.stop_after`).
    let records: Vec<cg_core::JobRecord> = if is_search {
        records
            .into_iter()
            .filter(|r| r.job.config.train.stop_after.is_none())
            .collect()
    } else {
        records
    };
    let out = out.unwrap_or_else(|| PathBuf::from("reports").join(sweep));
    let opts = ReportOptions {
        configs_dir: out.join("configs").display().to_string(),
        ..ReportOptions::default()
    };
    let report = build_report(&summary.info, &records, &opts).context("cannot build the report")?;
    let written =
        write_report(&report, &out).with_context(|| format!("cannot write {}", out.display()))?;
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
        cg_report::write_hv_history(&out, sweep, &rows).with_context(|| {
            format!("cannot write the hypervolume history in {}", out.display())
        })?;
    }
    if let Some(hv) = written.hypervolume {
        store
            .set_hypervolume(sweep, hv)
            .await
            .context("cannot store the hypervolume")?;
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
    Ok(out.join("report.md"))
}
