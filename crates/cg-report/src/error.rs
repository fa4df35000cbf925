//! The one error type of cg-report.

use std::path::PathBuf;

/// Errors of cg-report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The sweep names no objective, so there is no front to compute.
    #[error("the sweep has no objectives")]
    NoObjectives,
    /// An objective names a metric that is not a numeric field of a run result.
    #[error("unknown objective metric `{metric}` (known: {known})")]
    UnknownMetric { metric: String, known: String },
    /// The hypervolume reference point has a different length than the list of objectives.
    #[error("the reference point has {got} values but there are {expected} objectives")]
    ReferencePoint { expected: usize, got: usize },
    /// plotters failed to draw a figure.
    #[error("drawing {figure}: {message}")]
    Plot { figure: String, message: String },
    /// A bitmap could not be encoded as PNG.
    #[error("encoding {figure} as PNG: {message}")]
    Png { figure: String, message: String },
    /// A value could not be serialised as JSON.
    #[error("serialising JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A report folder (or a sub-folder in it) is a symbolic link: writing through it could
    /// replace files anywhere, so it is refused.
    #[error(
        "the report folder {path} is a symbolic link; cg does not write through links (remove it \
         or write the report elsewhere)"
    )]
    LinkedFolder { path: PathBuf },
    /// `cg report --against`: the grid lacks a completed full-budget result for some of the
    /// search's configurations.
    #[error(
        "the grid `{grid}` is not the full grid of `{sweep}`: it has no completed \
         full-budget result for {missing} of the search's {required} configurations (e.g. \
         {example}); --against needs the search's file with `method: grid`, run to the end"
    )]
    NotFullGrid {
        grid: String,
        sweep: String,
        missing: usize,
        required: usize,
        /// The swept values of the first configuration without a result, as JSON.
        example: String,
    },
    /// `cg report --against`: no result of the grid is better than the search's reference point
    /// in every objective.
    #[error(
        "the grid `{grid}` has no hypervolume against the search's reference point {reference:?}: \
         none of its results is better than it in every objective, so no share of it can be \
         computed"
    )]
    NoGridHypervolume { grid: String, reference: Vec<f64> },
    /// A report file could not be written.
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
