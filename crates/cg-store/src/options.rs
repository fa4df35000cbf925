//! Settings for opening a store: the database URL (redacted wherever it is printed) and pool sizes.
//! Parsing a URL into engine-specific connect options happens in `store.rs`; this module does no IO.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// A database URL or SQLite path. `Debug` and `Display` hide a password, whether it sits in the
/// user-info part (`postgres://user:secret@host/db`) or in a `password=` query parameter.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url_or_path: impl Into<String>) -> Self {
        Self(url_or_path.into())
    }

    /// The URL with its password, e.g. to hand it to a worker process. Never log this.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> Cow<'_, str> {
        redact(&self.0)
    }

    /// Whether the URL names a PostgreSQL database (`postgres://` or `postgresql://`).
    pub fn is_postgres(&self) -> bool {
        self.0.starts_with("postgres://") || self.0.starts_with("postgresql://")
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&self.redacted())
            .finish()
    }
}

impl From<&str> for DatabaseUrl {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for DatabaseUrl {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

impl From<&std::path::Path> for DatabaseUrl {
    fn from(p: &std::path::Path) -> Self {
        Self::new(p.to_string_lossy().into_owned())
    }
}

impl From<std::path::PathBuf> for DatabaseUrl {
    fn from(p: std::path::PathBuf) -> Self {
        Self::from(p.as_path())
    }
}

impl From<&std::path::PathBuf> for DatabaseUrl {
    fn from(p: &std::path::PathBuf) -> Self {
        Self::from(p.as_path())
    }
}

fn redact(url: &str) -> Cow<'_, str> {
    let Some(scheme_end) = url.find("://") else {
        return Cow::Borrowed(url);
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let query_start = rest.find(['?', '#']).unwrap_or(rest.len());
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..rest_start]);
    // The user-info ends at the last `@` before the query, so a password holding `/` or `@` is
    // still hidden as a whole.
    let mut body_start = 0;
    if let Some(at) = rest[..query_start].rfind('@') {
        let userinfo = &rest[..at];
        match userinfo.find(':') {
            Some(colon) => {
                out.push_str(&userinfo[..colon]);
                out.push_str(":***");
            }
            None => out.push_str(userinfo),
        }
        body_start = at;
    }
    out.push_str(&rest[body_start..query_start]);
    let tail = &rest[query_start..];
    if let Some(query) = tail.strip_prefix('?') {
        let (query, fragment) = match query.find('#') {
            Some(i) => (&query[..i], &query[i..]),
            None => (query, ""),
        };
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
        out.push_str(fragment);
    } else {
        out.push_str(tail);
    }
    Cow::Owned(out)
}

/// How to open a [`Store`](crate::Store). `Debug` shows the URL redacted.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// A plain path or `sqlite:` URL (SQLite), or `postgres://…` (PostgreSQL).
    pub url: DatabaseUrl,
    /// Create the SQLite file (and its directory) if missing. Ignored for PostgreSQL.
    pub create_if_missing: bool,
    /// How long a SQLite writer waits for another process's write lock before `Error::Busy`.
    pub busy_timeout: Duration,
    /// Connections in the PostgreSQL pool, or SQLite reader connections (SQLite writes always go
    /// through one connection per process, so they queue in-process instead of spinning on locks).
    pub max_connections: u32,
    /// How long to wait for a free pooled connection.
    pub acquire_timeout: Duration,
    /// Whether every commit waits until it is on disk. Off by default, on both engines alike:
    /// SQLite `synchronous=NORMAL` in WAL mode and PostgreSQL `synchronous_commit=off` never
    /// corrupt or reorder anything, but a power loss (SQLite) or a database-server crash
    /// (PostgreSQL) may drop the last fraction of a second of commits. The queue tolerates that:
    /// a lost claim makes the worker's next heartbeat fail, a lost completion leaves the job
    /// running until its lease expires and it runs again. On makes it `synchronous=FULL` and
    /// `synchronous_commit=on`, at one disk flush per commit (on PostgreSQL, about half the
    /// queue throughput on a disk with 3.6 ms flushes).
    pub durable_commits: bool,
}

impl StoreOptions {
    pub fn new(url: impl Into<DatabaseUrl>) -> Self {
        Self {
            url: url.into(),
            create_if_missing: true,
            busy_timeout: Duration::from_secs(30),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(60),
            durable_commits: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        let url = DatabaseUrl::new(input);
        assert_eq!(url.to_string(), expected);
        assert_eq!(format!("{url:?}"), format!("DatabaseUrl({expected:?})"));
        let opts = StoreOptions::new(url);
        assert!(!format!("{opts:?}").contains("s3cret"), "{opts:?}");
    }

    #[test]
    fn passwords_are_redacted() {
        check(
            "postgres://cg:s3cret@localhost:5432/cg",
            "postgres://cg:***@localhost:5432/cg",
        );
        check(
            "postgresql://cg:s3/c@ret@h/db?sslmode=disable",
            "postgresql://cg:***@h/db?sslmode=disable",
        );
        check(
            "postgres://h/db?user=cg&password=s3cret&x=1",
            "postgres://h/db?user=cg&password=***&x=1",
        );
        check("postgres://cg@localhost/cg", "postgres://cg@localhost/cg");
        check(
            "sqlite:///tmp/cg.db?mode=rwc",
            "sqlite:///tmp/cg.db?mode=rwc",
        );
        check("sqlite:cg.db", "sqlite:cg.db");
        check("runs/cg.db", "runs/cg.db");
    }

    #[test]
    fn expose_keeps_the_password() {
        let url = DatabaseUrl::new("postgres://cg:s3cret@h/db");
        assert_eq!(url.expose(), "postgres://cg:s3cret@h/db");
        assert!(url.is_postgres());
    }
}
