//! The errors of cg-sweep that are not file diagnostics: a file that did not load, and a sweep with
//! more jobs than the limit allows without confirmation.

use crate::diag::Diagnostics;

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
