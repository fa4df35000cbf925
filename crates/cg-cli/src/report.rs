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
        let summary = store
            .sweep(&args.sweep)
            .await
            .with_context(|| format!("no sweep `{}`", args.sweep))?;
        let records = store
            .job_records(&args.sweep)
            .await
            .context("cannot read the sweep's jobs")?;
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("reports").join(&args.sweep));
        let opts = ReportOptions {
            configs_dir: out.join("configs").display().to_string(),
            ..ReportOptions::default()
        };
        let report =
            build_report(&summary.info, &records, &opts).context("cannot build the report")?;
        let written = write_report(&report, &out)
            .with_context(|| format!("cannot write {}", out.display()))?;
        if let Some(hv) = written.hypervolume {
            store
                .set_hypervolume(&args.sweep, hv)
                .await
                .context("cannot store the hypervolume")?;
        }
        let c = &summary.counts;
        eprintln!(
            "sweep `{}`: {} jobs ({} completed, {} failed, {} queued, {} running)",
            args.sweep,
            c.total(),
            c.get(cg_core::JobStatus::Completed),
            c.get(cg_core::JobStatus::Failed),
            c.get(cg_core::JobStatus::Queued),
            c.get(cg_core::JobStatus::Running)
        );
        if let Some(hv) = written.hypervolume {
            eprintln!("hypervolume {hv:.6}");
        }
        println!("{}", out.join("report.md").display());
        Ok(ExitCode::SUCCESS)
    })
}
