//! The one error type of cg-model.

use std::path::PathBuf;

/// Errors of cg-model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A data file is missing, truncated, corrupt or inconsistent.
    #[error("dataset file {}: {message}", path.display())]
    Data { path: PathBuf, message: String },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The run configuration cannot be trained as given.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The loss became NaN or infinite.
    #[error(
        "loss became {value} at epoch {epoch}, step {step}: training stopped (lower the learning rate or check the data)"
    )]
    NonFiniteLoss {
        epoch: usize,
        step: usize,
        value: f64,
    },
    /// The requested backend is not one cg knows.
    #[error("unknown backend `{backend}`: {message}")]
    Backend { backend: String, message: String },
    /// The requested device cannot be used.
    #[error("device {device}: {message}")]
    Device { device: String, message: String },
    /// A checkpoint could not be written or read back.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    /// Training was asked to stop; the last finished epoch is checkpointed.
    #[error("stopped after epoch {epoch} on request; resume from the checkpoint")]
    Stopped { epoch: usize },
    /// A download failed or its checksum did not match.
    #[error("download {url}: {message}")]
    Fetch { url: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn data_err(path: impl Into<PathBuf>, message: impl Into<String>) -> Error {
    Error::Data {
        path: path.into(),
        message: message.into(),
    }
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
