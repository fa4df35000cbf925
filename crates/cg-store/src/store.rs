//! Opening a database, its schema version and migrations, and backups. The queue and the queries
//! live in their own modules as further `impl Store` blocks.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::{DatabaseUrl, Error, Result, StoreOptions, UrlKind};

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineKind {
    Sqlite,
    Postgres,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Sqlite => "sqlite",
            EngineKind::Postgres => "postgres",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone)]
pub(crate) enum Engine {
    /// `write` has exactly one connection: writers of this process queue for it in order instead
    /// of spinning in SQLite's busy handler. `read` serves queries (WAL readers never block).
    Sqlite {
        read: SqlitePool,
        write: SqlitePool,
        path: Option<PathBuf>,
    },
    Postgres {
        pool: PgPool,
    },
}

/// A handle on the cg database: cheap to clone (the pools are shared), safe to use from many tasks.
#[derive(Clone)]
pub struct Store {
    pub(crate) engine: Engine,
    url: DatabaseUrl,
    read_only: bool,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("engine", &self.engine_kind())
            .field("url", &self.url)
            .finish()
    }
}

/// PostgreSQL connections idle longer than this are pinged before use.
const IDLE_PING_AFTER: Duration = Duration::from_secs(30);

/// The current time as unix milliseconds, the unit of every `*_ms` column.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn is_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

impl Store {
    /// Opens (creating if missing) the database at `url_or_path`: a plain path or a `sqlite:` URL
    /// opens SQLite (WAL journal, foreign keys on, a busy timeout; the file's directory is
    /// created too), a `postgres://` URL opens PostgreSQL (no TLS is compiled in: use
    /// `sslmode=prefer`, the default, or `disable`). Commits do not wait for the disk unless
    /// [`StoreOptions::durable_commits`] says so. Does not migrate: call [`Store::migrate`] next.
    pub async fn open(url_or_path: impl Into<DatabaseUrl>) -> Result<Store> {
        Store::open_with(StoreOptions::new(url_or_path)).await
    }

    /// Opens a database that must already exist with exactly the schema this build knows: for
    /// workers, which must never create or migrate a database behind the coordinator's back.
    /// A missing SQLite file is [`Error::Missing`], a database without the cg schema
    /// [`Error::NotMigrated`], a schema migrated by a newer cg [`Error::SchemaTooNew`], an older
    /// one [`Error::SchemaTooOld`].
    pub async fn open_existing(url_or_path: impl Into<DatabaseUrl>) -> Result<Store> {
        let mut options = StoreOptions::new(url_or_path);
        options.create_if_missing = false;
        Store::open_checked(options).await
    }

    /// [`Store::open_existing`] for reading only (see [`StoreOptions::read_only`]): for commands
    /// that only look, so that they work on a read-only mount or another user's database.
    pub async fn open_read_only(url_or_path: impl Into<DatabaseUrl>) -> Result<Store> {
        let mut options = StoreOptions::new(url_or_path);
        options.create_if_missing = false;
        options.read_only = true;
        Store::open_checked(options).await
    }

    /// Whether this store was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    async fn open_checked(options: StoreOptions) -> Result<Store> {
        let store = Store::open_with(options).await?;
        let known = Store::known_schema_version();
        match store.applied_version().await? {
            None => Err(Error::NotMigrated),
            Some(found) if found > known => Err(Error::SchemaTooNew { found, known }),
            Some(found) if found < known => Err(Error::SchemaTooOld { found, known }),
            Some(_) => Ok(store),
        }
    }

    /// Opens a database with explicit settings.
    pub async fn open_with(options: StoreOptions) -> Result<Store> {
        let url = options.url.clone();
        let kind = url.kind().map_err(|message| Error::InvalidUrl {
            url: url.clone(),
            message,
        })?;
        let engine = match kind {
            UrlKind::Postgres => open_postgres(&options).await?,
            UrlKind::SqliteUrl | UrlKind::SqlitePath if options.read_only => {
                open_sqlite_read_only(&options, kind).await?
            }
            UrlKind::SqliteUrl | UrlKind::SqlitePath => open_sqlite(&options, kind).await?,
        };
        Ok(Store {
            engine,
            url,
            read_only: options.read_only,
        })
    }

    /// The engine behind this store.
    pub fn engine_kind(&self) -> EngineKind {
        match self.engine {
            Engine::Sqlite { .. } => EngineKind::Sqlite,
            Engine::Postgres { .. } => EngineKind::Postgres,
        }
    }

    /// The URL this store was opened with (redacted when printed).
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Applies the embedded migrations not yet applied (`migrations/sqlite` or
    /// `migrations/postgres`, numbered in lockstep). Safe to call on every start; refuses a
    /// database migrated by a newer cg ([`Error::SchemaTooNew`]).
    pub async fn migrate(&self) -> Result<()> {
        let known = Store::known_schema_version();
        if let Some(found) = self.applied_version().await?
            && found > known
        {
            return Err(Error::SchemaTooNew { found, known });
        }
        match &self.engine {
            Engine::Sqlite { write, .. } => SQLITE_MIGRATOR.run(write).await?,
            Engine::Postgres { pool } => POSTGRES_MIGRATOR.run(pool).await?,
        }
        tracing::debug!(version = known, url = %self.url, "database migrated");
        Ok(())
    }

    /// The schema version applied to the database (the highest migration number), 0 if none.
    pub async fn schema_version(&self) -> Result<i64> {
        Ok(self.applied_version().await?.unwrap_or(0))
    }

    /// The schema version of this build: the number of its last embedded migration.
    pub fn known_schema_version() -> i64 {
        SQLITE_MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }

    async fn applied_version(&self) -> Result<Option<i64>> {
        let exists: bool = with_reader!(self, |pool, pg, DB| {
            let sql = if pg {
                "SELECT to_regclass('_sqlx_migrations') IS NOT NULL"
            } else {
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')"
            };
            sqlx::query_scalar(sql).fetch_one(pool).await?
        });
        if !exists {
            return Ok(None);
        }
        let version: Option<i64> = with_reader!(self, |pool, pg, DB| {
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(pool)
                .await?
        });
        Ok(version)
    }

    /// Writes a consistent copy of a SQLite database to `dest` (`VACUUM INTO`), readable by plain
    /// `sqlite3`, while others keep using the database. `dest` must not exist yet. PostgreSQL:
    /// [`Error::Unsupported`], use `pg_dump`.
    pub async fn backup(&self, dest: impl AsRef<Path>) -> Result<()> {
        let dest = dest.as_ref();
        let Engine::Sqlite { read, .. } = &self.engine else {
            return Err(Error::Unsupported(
                "backup copies SQLite databases only; for PostgreSQL use pg_dump".into(),
            ));
        };
        if dest.exists() {
            return Err(Error::io(
                format!("cannot back up to {}", dest.display()),
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "the file exists"),
            ));
        }
        if let Some(parent) = dest.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
        }
        let dest_str = dest.to_str().ok_or_else(|| {
            Error::Unsupported(format!("backup path {} is not valid UTF-8", dest.display()))
        })?;
        // The copy is made empty first with the database's permissions (`VACUUM INTO` fills an
        // empty file and keeps its mode), so it is never readable by more users than the original.
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(self.file_mode().unwrap_or(0o600))
                .open(dest)
                .map_err(|e| Error::io(format!("cannot create {}", dest.display()), e))?;
        }
        if let Err(e) = sqlx::query("VACUUM INTO $1")
            .bind(dest_str)
            .execute(read)
            .await
        {
            let _ = std::fs::remove_file(dest);
            return Err(e.into());
        }
        Ok(())
    }

    /// The permission bits of the SQLite database file (e.g. `0o600`), for files that hold its
    /// data elsewhere (backups, run directories) to follow. `None` for PostgreSQL and in-memory
    /// databases.
    pub fn file_mode(&self) -> Option<u32> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(self.sqlite_path()?).ok()?;
        Some(meta.permissions().mode() & 0o777)
    }

    /// The SQLite database file, if this is a file-backed SQLite store.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.engine {
            Engine::Sqlite { path, .. } => path.as_deref(),
            Engine::Postgres { .. } => None,
        }
    }

    /// Closes every connection, waiting for running queries. SQLite checkpoints its WAL on the
    /// last close.
    pub async fn close(&self) {
        match &self.engine {
            Engine::Sqlite { read, write, .. } => {
                read.close().await;
                write.close().await;
            }
            Engine::Postgres { pool } => pool.close().await,
        }
    }
}

/// SQLite for reading only: no file, directory, journal mode or pragma is written. When the file
/// cannot even be opened read-only (a WAL database whose `-shm` cannot be made: a read-only
/// directory), it is opened `immutable`, which reads the main file as it is.
async fn open_sqlite_read_only(options: &StoreOptions, kind: UrlKind) -> Result<Engine> {
    let base = sqlite_base(options, kind)?;
    if is_memory(options.url.expose()) {
        return Err(Error::Unsupported(
            "an in-memory database cannot be opened read-only".into(),
        ));
    }
    let path = base.get_filename().to_path_buf();
    if !path.exists() {
        return Err(Error::Missing(path));
    }
    let connect = base
        .read_only(true)
        .create_if_missing(false)
        .busy_timeout(options.busy_timeout);
    let connect_err = |e: sqlx::Error| Error::Connect {
        url: options.url.clone(),
        source: Box::new(e),
    };
    let pool = |connect: SqliteConnectOptions| {
        SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
    };
    let probe = "SELECT COUNT(*) FROM sqlite_master";
    let first = pool(connect.clone()).await;
    let usable = match &first {
        Ok(p) => sqlx::query(probe).fetch_one(p).await.is_ok(),
        Err(_) => false,
    };
    let read = match first {
        Ok(p) if usable => p,
        first => {
            if let Ok(p) = first {
                p.close().await;
            }
            let immutable = pool(connect.immutable(true)).await.map_err(connect_err)?;
            sqlx::query(probe)
                .fetch_one(&immutable)
                .await
                .map_err(connect_err)?;
            immutable
        }
    };
    Ok(Engine::Sqlite {
        write: read.clone(),
        read,
        path: Some(path),
    })
}

fn sqlite_base(options: &StoreOptions, kind: UrlKind) -> Result<SqliteConnectOptions> {
    let raw = options.url.expose();
    Ok(if kind == UrlKind::SqliteUrl {
        // sqlx wants the scheme in lower case.
        let url = format!("sqlite:{}", &raw["sqlite:".len()..]);
        SqliteConnectOptions::from_str(&url).map_err(|e| Error::InvalidUrl {
            url: options.url.clone(),
            message: options.url.scrub(&e.to_string()),
        })?
    } else {
        SqliteConnectOptions::new().filename(raw)
    })
}

async fn open_sqlite(options: &StoreOptions, kind: UrlKind) -> Result<Engine> {
    let raw = options.url.expose();
    let base = sqlite_base(options, kind)?;
    let memory = is_memory(raw);
    let path = (!memory).then(|| base.get_filename().to_path_buf());
    if let Some(path) = &path {
        if options.create_if_missing {
            if let Some(parent) = path.parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
            }
            // A new database is readable by its owner only (SQLite gives its -wal and -shm files
            // the same mode); an empty file is a valid empty database.
            if !path.exists() {
                use std::os::unix::fs::OpenOptionsExt;
                let created = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path);
                match created {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        return Err(Error::io(format!("cannot create {}", path.display()), e));
                    }
                }
            }
        } else if !path.exists() {
            return Err(Error::Missing(path.clone()));
        }
    }
    // WAL + synchronous=NORMAL: a commit appends to the WAL without fsync; only checkpoints sync.
    // Checkpointing every 10,000 pages (about 40 MB) instead of 1,000 cuts those syncs tenfold
    // under a busy queue; journal_size_limit truncates the WAL back afterwards.
    let synchronous = if options.durable_commits {
        SqliteSynchronous::Full
    } else {
        SqliteSynchronous::Normal
    };
    let connect = base
        .create_if_missing(options.create_if_missing)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .foreign_keys(true)
        .busy_timeout(options.busy_timeout)
        .pragma("wal_autocheckpoint", "10000")
        .pragma("journal_size_limit", "67108864");
    let connect_err = |e: sqlx::Error| Error::Connect {
        url: options.url.clone(),
        source: Box::new(e),
    };
    if memory {
        // One connection that lives as long as the pool: an in-memory database dies with it.
        let pool = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(connect_err)?;
        return Ok(Engine::Sqlite {
            read: pool.clone(),
            write: pool,
            path: None,
        });
    }
    // The writer connects first: it creates the file and switches it to WAL.
    // No ping before each acquire (sqlx's default): a local file does not hang up, and the ping
    // would be one more round trip to the connection's thread per query.
    let write = SqlitePoolOptions::new()
        .test_before_acquire(false)
        .max_connections(1)
        .acquire_timeout(options.acquire_timeout)
        .connect_with(connect.clone())
        .await
        .map_err(connect_err)?;
    let read = SqlitePoolOptions::new()
        .test_before_acquire(false)
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.acquire_timeout)
        .connect_with(connect)
        .await
        .map_err(connect_err)?;
    Ok(Engine::Sqlite { read, write, path })
}

async fn open_postgres(options: &StoreOptions) -> Result<Engine> {
    // synchronous_commit goes in the startup packet: no extra round trip (see
    // `StoreOptions::durable_commits` for why off is the default).
    let synchronous_commit = if options.durable_commits { "on" } else { "off" };
    let connect = PgConnectOptions::from_str(options.url.expose())
        .map_err(|e| Error::InvalidUrl {
            url: options.url.clone(),
            message: options.url.scrub(&e.to_string()),
        })?
        .options([("synchronous_commit", synchronous_commit)]);
    let connect = if options.read_only {
        connect.options([("default_transaction_read_only", "on")])
    } else {
        connect
    };
    let connect_err = |e: sqlx::Error| Error::Connect {
        url: options.url.clone(),
        source: Box::new(e),
    };
    // One plain attempt first: a pool would retry a refused connection until `acquire_timeout`.
    PgConnection::connect_with(&connect)
        .await
        .map_err(connect_err)?
        .close()
        .await
        .ok();
    // sqlx pings every connection before handing it out, one extra round trip per query; ping only
    // connections that sat idle long enough for the server or a firewall to have dropped them.
    let pool = PgPoolOptions::new()
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > IDLE_PING_AFTER {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.acquire_timeout)
        .connect_with(connect)
        .await
        .map_err(connect_err)?;
    Ok(Engine::Postgres { pool })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_lockstep() {
        let sqlite: Vec<(i64, String)> = SQLITE_MIGRATOR
            .iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect();
        let postgres: Vec<(i64, String)> = POSTGRES_MIGRATOR
            .iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect();
        assert_eq!(sqlite, postgres);
        assert!(!sqlite.is_empty());
        assert_eq!(Store::known_schema_version(), sqlite.last().unwrap().0);
    }
}
