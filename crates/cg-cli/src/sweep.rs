//! `cg sweep plan|submit|pause|resume|cancel|delete|schema`: glue between the sweep file (cg-sweep),
//! the search (cg-search) and the store. The plan of a grid or random sweep lists its jobs; the
//! plan of a `method: mo-asha` sweep describes its search instead, whose jobs are decided as
//! results arrive.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use anyhow::Result;
use cg_search::SearchSpec;
use cg_sweep::{
    DEFAULT_JOB_LIMIT, LoadOptions, Sweep, load_sweep, plan_table, plan_table_with_axes,
    rungs_line, space_table,
};
use clap::Subcommand;

use crate::util::EXIT_INVALID;

#[derive(Subcommand, Debug)]
pub enum SweepCommand {
    /// Validate a sweep file and show its jobs.
    Plan {
        file: PathBuf,
        /// Check the file's form only, not that the data paths exist.
        #[arg(long)]
        no_data_check: bool,
        /// List the jobs even when the sweep has more than the safety limit.
        #[arg(long)]
        yes: bool,
    },
    /// Validate a sweep file and queue its jobs in the database.
    Submit(crate::run_cmd::SubmitArgs),
    /// Stop handing out a sweep's queued jobs (running ones finish).
    Pause(crate::status_cmd::SweepControlArgs),
    /// Hand out a paused or cancelled sweep's jobs again.
    Resume(crate::status_cmd::SweepControlArgs),
    /// Cancel a sweep's queued jobs.
    Cancel(crate::status_cmd::SweepControlArgs),
    /// Delete a sweep with its jobs, results and metrics (jobs another sweep holds stay). Files
    /// under runs/ and reports/ are left alone.
    Delete(crate::status_cmd::SweepControlArgs),
    /// Print a JSON Schema of the sweep format (for editor completion).
    Schema,
}

pub fn run(cmd: SweepCommand) -> Result<ExitCode> {
    match cmd {
        SweepCommand::Plan {
            file,
            no_data_check,
            yes,
        } => plan(&file, no_data_check, yes),
        SweepCommand::Submit(a) => crate::run_cmd::submit_cmd(a),
        SweepCommand::Pause(a) => crate::status_cmd::pause(a),
        SweepCommand::Resume(a) => crate::status_cmd::resume(a),
        SweepCommand::Cancel(a) => crate::status_cmd::cancel(a),
        SweepCommand::Delete(a) => delete(a),
        SweepCommand::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&cg_sweep::json_schema())?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// How many of a search's first draws `cg sweep plan` lists.
const DRAWS_SHOWN: usize = 10;

/// `cg sweep plan FILE`.
fn plan(file: &std::path::Path, no_data_check: bool, yes: bool) -> Result<ExitCode> {
    let opts = LoadOptions {
        no_data_check,
        env: None,
    };
    let sweep = match load_sweep(file, &opts) {
        Ok(s) => s,
        Err(d) => {
            eprintln!("{d}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    // Counted before anything is expanded.
    if !yes && let Err(e) = sweep.check_job_limit(DEFAULT_JOB_LIMIT) {
        eprintln!("error: {e}; pass --yes to list them anyway");
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    match cg_daemon::search_spec(&sweep) {
        Some(spec) => print!("{}", search_plan(&sweep, &spec)),
        None => {
            let jobs = sweep.expand();
            println!("sweep `{}`: {} job(s)", sweep.name(), jobs.len());
            print!("{}", plan_table_with_axes(&jobs, &sweep.axes()));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The plan of a `method: mo-asha` sweep: the search, its space, rungs and budget, the first
/// configurations it draws (as the jobs of the first rung, with their ids), and its baseline.
fn search_plan(sweep: &Sweep, spec: &SearchSpec) -> String {
    let settings = &spec.settings;
    let mut out = format!(
        "sweep `{}`: {}\n",
        sweep.name(),
        cg_search::search_line(settings)
    );
    out.extend(space_table(sweep));
    out.extend(rungs_line(sweep).map(|line| line + "\n"));
    out.push_str(&cg_search::budget_line(settings));
    out.push('\n');
    out.extend(cg_search::seeds_line(sweep.seeds()).map(|line| line + "\n"));
    let draws = cg_search::first_draws(spec);
    let rungs = settings.fidelity.rungs();
    // A job of the first rung stops at its epochs, unless that rung is the whole schedule; a
    // configuration has one job per seed.
    let stop = (rungs.len() > 1).then(|| rungs[0]);
    let shown: Vec<Vec<_>> = draws
        .iter()
        .take(DRAWS_SHOWN)
        .filter_map(|point| sweep.search_jobs(point, stop))
        .collect();
    let jobs: Vec<_> = shown.iter().flatten().cloned().collect();
    out.push_str(&cg_search::draws_heading(
        shown.len(),
        draws.len(),
        rungs[0],
    ));
    out.push('\n');
    out.push_str(&plan_table_with_axes(&jobs, &sweep.axes()));
    let baseline = sweep.baseline_jobs();
    if !baseline.is_empty() {
        out.push_str("baseline (the whole schedule, beside the search):\n");
        out.push_str(&plan_table(&baseline));
    }
    out
}

/// `cg sweep delete NAME`.
fn delete(args: crate::status_cmd::SweepControlArgs) -> Result<ExitCode> {
    crate::db::runtime()?.block_on(async {
        let store = cg_store::Store::open_existing(args.db.db.as_str())
            .await
            .with_context(|| {
                format!(
                    "cannot open the database {}",
                    cg_store::DatabaseUrl::new(args.db.db.clone())
                )
            })?;
        let deleted = store.delete_sweep(&args.sweep).await?;
        println!(
            "sweep `{}` deleted with {deleted} job(s) of its own",
            args.sweep
        );
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}
