//! `cg sweep plan|schema`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use cg_sweep::{LoadOptions, load_sweep, plan_table_with_axes};
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
    },
    /// Validate a sweep file and queue its jobs in the database.
    Submit(crate::run_cmd::SubmitArgs),
    /// Stop handing out a sweep's queued jobs (running ones finish).
    Pause(crate::status_cmd::SweepControlArgs),
    /// Hand out a paused or cancelled sweep's jobs again.
    Resume(crate::status_cmd::SweepControlArgs),
    /// Cancel a sweep's queued jobs.
    Cancel(crate::status_cmd::SweepControlArgs),
    /// Print a JSON Schema of the sweep format (for editor completion).
    Schema,
}

pub fn run(cmd: SweepCommand) -> Result<ExitCode> {
    match cmd {
        SweepCommand::Plan {
            file,
            no_data_check,
        } => {
            let opts = LoadOptions {
                no_data_check,
                env: None,
            };
            let sweep = match load_sweep(&file, &opts) {
                Ok(s) => s,
                Err(d) => {
                    eprintln!("{d}");
                    return Ok(ExitCode::from(EXIT_INVALID));
                }
            };
            let jobs = sweep.expand();
            println!("sweep `{}`: {} job(s)", sweep.name(), jobs.len());
            print!("{}", plan_table_with_axes(&jobs, &sweep.axes()));
            Ok(ExitCode::SUCCESS)
        }
        SweepCommand::Submit(a) => crate::run_cmd::submit_cmd(a),
        SweepCommand::Pause(a) => crate::status_cmd::pause(a),
        SweepCommand::Resume(a) => crate::status_cmd::resume(a),
        SweepCommand::Cancel(a) => crate::status_cmd::cancel(a),
        SweepCommand::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&cg_sweep::json_schema())?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
