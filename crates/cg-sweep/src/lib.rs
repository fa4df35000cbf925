//! Run and sweep files of cg: YAML (or JSON) in, typed cg-core values out. This is the only crate that
//! knows YAML. It parses with positions, validates and reports *every* problem at once with file, line,
//! column and dotted key, expands sweeps into [`cg_core::JobSpec`]s in a deterministic order, and gives
//! each job a stable id. It does no training, opens no database and runs no programs: a job is a typed
//! training configuration, never a command.

mod diag;
mod keys;
mod run;
mod sweep;
mod yaml;

pub use diag::{Diagnostic, Diagnostics, Pos};
pub use run::{
    LoadOptions, RUN_SECTIONS, load_run_file, load_run_file_with, load_run_str, load_run_str_with,
};

/// Errors of cg-sweep that are not file diagnostics.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file did not load; each problem is one line.
    #[error("{0}")]
    Invalid(#[from] Diagnostics),
    /// A sweep expands to more jobs than the limit allows without confirmation.
    #[error("sweep `{name}` expands to {count} jobs, more than the limit of {limit}")]
    TooManyJobs {
        name: String,
        count: usize,
        limit: usize,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
