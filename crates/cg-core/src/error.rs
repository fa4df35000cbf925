//! The one error type of cg-core.

/// Errors of cg-core: configuration overrides that do not fit the schema.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A dotted key names no field of the run configuration.
    #[error("unknown key `{key}`{hint}")]
    UnknownKey { key: String, hint: String },
    /// A value does not have the type its key needs.
    #[error("invalid value for `{key}`: {message}")]
    InvalidValue { key: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
