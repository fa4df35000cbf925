//! The one error type of cg-daemon.

use std::path::PathBuf;

/// What can go wrong while coordinating jobs (a failing *job* is not an error: it is recorded).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store refused or failed an operation.
    #[error(transparent)]
    Store(#[from] cg_store::Error),
    /// A file or directory around the jobs could not be read or written.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The job runner process could not be started.
    #[error("cannot start the job runner {}: {source}", exe.display())]
    Spawn {
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A different file under an existing sweep's name (the store's refusal), with where the
    /// file writes the name: `FILE:LINE:COLUMN: name: ...`, or the file when the name is its stem.
    #[error("{location}: {message}")]
    SweepExists {
        sweep: String,
        location: String,
        message: String,
    },
    /// A search's stored sweep file no longer loads (its data moved, an environment variable is gone).
    #[error("the sweep `{sweep}` of the search does not load: {message}")]
    SearchSweep { sweep: String, message: String },
    /// A submission that cannot be done as asked; nothing was written.
    #[error("{0}")]
    Refused(String),
    /// A GPU failed its device check (`cg device-check`) before any job was given to it.
    #[error("{device} cannot run jobs: {detail}")]
    DeviceCheck { device: String, detail: String },
    /// `--gpus` named a GPU this machine does not show.
    #[error("GPU {index} is not available (this process sees GPUs {available})")]
    NoSuchGpu { index: usize, available: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}
