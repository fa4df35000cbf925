//! The one error type of cg-slurm.

use std::path::PathBuf;

/// Errors of cg-slurm.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Slurm command could not be started (not installed, not on PATH).
    #[error("cannot run `{command}`: {source} (is Slurm installed and on PATH?)")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    /// A Slurm command ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    /// `sbatch --parsable` printed something that is not a job id.
    #[error("`sbatch` printed no job id: {0:?}")]
    NoJobId(String),
    /// `statfs` on a path failed.
    #[error("cannot read the file system of {path}: {source}")]
    Statfs {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A value in the script would break it (a newline in an argument, say).
    #[error("{what} {value:?} cannot go in a batch script: {why}")]
    Unsafe {
        what: &'static str,
        value: String,
        why: &'static str,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
