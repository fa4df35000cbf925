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

    /// Whether the URL names a PostgreSQL database (`postgres:` or `postgresql:`, in any case).
    pub fn is_postgres(&self) -> bool {
        matches!(self.kind(), Ok(UrlKind::Postgres))
    }

    /// Which engine the URL names. Schemes are case-insensitive. A string that starts like a URL
    /// (`word:`) with any other scheme is refused, as is `postgres:` without `//`: such a string
    /// must never become a SQLite file named after it. `Err` is the reason, password-free.
    pub fn kind(&self) -> Result<UrlKind, String> {
        let Some(scheme) = scheme(&self.0) else {
            return Ok(UrlKind::SqlitePath);
        };
        let rest = &self.0[scheme.len() + 1..];
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" if rest.starts_with("//") => Ok(UrlKind::Postgres),
            "postgres" | "postgresql" => Err(format!(
                "a PostgreSQL URL starts with `{scheme}://`, as in postgres://user@host/db"
            )),
            "sqlite" => Ok(UrlKind::SqliteUrl),
            _ => Err(format!(
                "unsupported scheme `{scheme}:`; use a file path, `sqlite:` or `postgres://` \
                 (a file whose name has a colon: write it as ./{scheme}:…)"
            )),
        }
    }

    /// The password in the URL, if any (user-info or `password=` parameter).
    fn password(&self) -> Option<&str> {
        let scheme = scheme(&self.0)?;
        let rest = self.0[scheme.len() + 1..].trim_start_matches('/');
        let query_start = rest.find(['?', '#']).unwrap_or(rest.len());
        let from_userinfo = rest[..query_start]
            .rfind('@')
            .and_then(|at| rest[..at].split_once(':'))
            .map(|(_, p)| p);
        let from_query = rest[query_start..]
            .trim_start_matches('?')
            .split(['&', '#'])
            .find_map(|pair| {
                pair.split_once('=')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("password"))
                    .map(|(_, v)| v)
            });
        from_userinfo.or(from_query).filter(|p| !p.is_empty())
    }

    /// `message` with this URL's password replaced by `***` (for errors of lower layers that may
    /// quote the URL).
    pub fn scrub(&self, message: &str) -> String {
        match self.password() {
            Some(p) => message.replace(p, "***"),
            None => message.to_string(),
        }
    }
}

/// What a [`DatabaseUrl`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlKind {
    /// A plain file path.
    SqlitePath,
    /// A `sqlite:` URL (any case).
    SqliteUrl,
    /// A `postgres://` or `postgresql://` URL (any case).
    Postgres,
}

/// The scheme of a URL-like string (`word:` at the start, RFC 3986 characters), if it has one.
fn scheme(s: &str) -> Option<&str> {
    let colon = s.find(':')?;
    let scheme = &s[..colon];
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
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

/// The one masking rule of cg ([`cg_core::mask_url`]).
fn redact(url: &str) -> Cow<'_, str> {
    cg_core::mask_url(url)
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
    /// Open for reading only (`cg status`, `cg logs`, `cg db backup`, `cg report`): nothing is
    /// created or written, so a read-only mount or another user's file works. SQLite opens the
    /// file read-only (immutable when even that fails, e.g. no `-shm` can be made beside it);
    /// PostgreSQL sessions are `default_transaction_read_only`. Writes fail.
    pub read_only: bool,
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
            read_only: false,
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
    fn passwords_are_redacted_whatever_the_spelling() {
        for url in [
            "Postgres://cg:s3cret@h/db",
            "POSTGRES://cg:s3cret@h/db",
            "PostgreSQL://cg:s3cret@h/db",
            "postgres:/cg:s3cret@h/db",
            "postgres:cg:s3cret@h/db",
            "mysql://cg:s3cret@h/db",
            "postgres://h/db?PASSWORD=s3cret",
            "postgres://h/db?Password=s3cret#frag",
        ] {
            let u = DatabaseUrl::new(url);
            assert!(!u.to_string().contains("s3cret"), "{url} -> {u}");
            assert!(!format!("{u:?}").contains("s3cret"), "{url}");
            assert_eq!(
                u.scrub(&format!("failed: {url} (s3cret)"))
                    .matches("s3cret")
                    .count(),
                0,
                "{url}"
            );
        }
    }

    #[test]
    fn schemes_are_case_insensitive_and_unknown_ones_refused() {
        for (url, kind) in [
            ("postgres://h/db", Some(UrlKind::Postgres)),
            ("Postgres://h/db", Some(UrlKind::Postgres)),
            ("POSTGRESQL://h/db", Some(UrlKind::Postgres)),
            ("sqlite:cg.db", Some(UrlKind::SqliteUrl)),
            ("SQLite:///tmp/cg.db", Some(UrlKind::SqliteUrl)),
            ("runs/cg.db", Some(UrlKind::SqlitePath)),
            ("/tmp/a:b.db", Some(UrlKind::SqlitePath)),
            ("./cg:1.db", Some(UrlKind::SqlitePath)),
            ("cg.db", Some(UrlKind::SqlitePath)),
            ("postgres:/h/db", None),
            ("postgres:h/db", None),
            ("Postgres:/cg:pw@h/db", None),
            ("mysql://h/db", None),
            ("http://h/db", None),
            ("file:cg.db", None),
        ] {
            let got = DatabaseUrl::new(url).kind();
            assert_eq!(got.as_ref().ok().copied(), kind, "{url}: {got:?}");
            if let Err(reason) = got {
                assert!(!reason.contains("pw"), "{reason}");
            }
        }
    }

    #[test]
    fn expose_keeps_the_password() {
        let url = DatabaseUrl::new("postgres://cg:s3cret@h/db");
        assert_eq!(url.expose(), "postgres://cg:s3cret@h/db");
        assert!(url.is_postgres());
    }
}
