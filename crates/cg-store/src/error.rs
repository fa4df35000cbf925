//! The one error type of cg-store. sqlx's errors are mapped here; callers never match on them.

use std::path::PathBuf;

use crate::DatabaseUrl;

/// A boxed error from a lower layer, kept as the `source` of ours.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL or path does not name a database this crate can open.
    #[error("invalid database url `{url}`: {message}")]
    InvalidUrl { url: DatabaseUrl, message: String },
    /// The database could not be opened or reached.
    #[error("cannot open database {url}: {source}")]
    Connect {
        url: DatabaseUrl,
        #[source]
        source: BoxError,
    },
    /// `Store::open_existing` found no database file at the path.
    #[error("no database at {}", .0.display())]
    Missing(PathBuf),
    /// The database has no cg schema yet: nobody has run the migrations.
    #[error("the database has no cg schema yet; run `cg db migrate` first")]
    NotMigrated,
    /// The database was migrated by a newer build of cg than this one.
    #[error(
        "the database schema is at version {found}, newer than version {known} that this build of cg knows; upgrade cg"
    )]
    SchemaTooNew { found: i64, known: i64 },
    /// The database schema is older than this build needs (`Store::open_existing` only).
    #[error(
        "the database schema is at version {found}, older than version {known} that this build of cg needs; run `cg db migrate` first"
    )]
    SchemaTooOld { found: i64, known: i64 },
    /// Applying the embedded migrations failed (an applied migration was edited, a statement failed, ...).
    #[error("migrating the database failed: {0}")]
    Migrate(#[source] BoxError),
    /// Another writer held the database longer than the busy timeout (SQLite), or no pooled
    /// connection became free in time.
    #[error("database busy: {0}")]
    Busy(#[source] BoxError),
    /// Any other failure of the database or the connection to it.
    #[error("database error: {0}")]
    Database(#[source] BoxError),
    /// A stored value does not decode into its cg-core type (written by an incompatible cg?).
    #[error("corrupt value in the database ({what}): {message}")]
    Corrupt { what: String, message: String },
    /// A search's decision function refused what it was given (see `Store::advance_search`).
    #[error("search: {0}")]
    Search(String),
    /// No sweep of that name.
    #[error("no sweep named `{0}`")]
    UnknownSweep(String),
    /// A sweep of that name exists, made from a different file.
    #[error(
        "a sweep named `{0}` already exists, made from a different file; give this file a new \
         `name`, or remove the old sweep first (`cg sweep delete {0}`), or pass --merge to add \
         this file's jobs to it"
    )]
    SweepExists(String),
    /// No job with that id.
    #[error("no job with id `{0}`")]
    UnknownJob(String),
    /// The job has no attempt with that number (it was never claimed as such).
    #[error("job `{job}` has no attempt {attempt}")]
    UnknownAttempt { job: String, attempt: u32 },
    /// The attempt no longer holds the job: its lease was lost, it was requeued, it was cancelled,
    /// or a later attempt runs the job now. The caller should stop working on it.
    #[error("attempt {attempt} of job `{job}` no longer holds the job: {reason}")]
    StaleAttempt {
        job: String,
        attempt: u32,
        reason: String,
    },
    /// An argument the operation cannot accept.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The operation does not exist for this engine.
    #[error("{0}")]
    Unsupported(String),
    /// A file-system operation around the database failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut => Error::Busy(Box::new(e)),
            sqlx::Error::Database(ref db) if is_busy_code(db.code().as_deref()) => {
                Error::Busy(Box::new(e))
            }
            sqlx::Error::ColumnDecode { index, source } => Error::Corrupt {
                what: format!("column {index}"),
                message: source.to_string(),
            },
            sqlx::Error::Decode(source) => Error::Corrupt {
                what: String::from("row"),
                message: source.to_string(),
            },
            sqlx::Error::Migrate(m) => Error::Migrate(m),
            other => Error::Database(Box::new(other)),
        }
    }
}

/// SQLITE_BUSY (5) and its extended codes, SQLITE_LOCKED (6).
fn is_busy_code(code: Option<&str>) -> bool {
    matches!(code, Some("5" | "6" | "261" | "517" | "773" | "262"))
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Error::Migrate(Box::new(e))
    }
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
