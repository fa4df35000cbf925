//! `cg db migrate|backup`, and what every command shares to reach the database: `--db`
//! ([`DbArg`], opening it) and the async runtime ([`runtime_with`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cg_store::{DatabaseUrl, Store, UrlKind};
use clap::{Args, Subcommand};

/// Where the results database is: a SQLite path or a `postgres://` URL. The commands that only
/// read or migrate it show the shorter help [`DB_HELP_SHORT`] (`#[command(mut_arg(..))]`).
#[derive(Args, Debug, Clone)]
pub struct DbArg {
    /// Database: a SQLite file or a `postgres://` URL (the password is never printed; on a
    /// shared machine pass it in CG_DB or PGPASSWORD, not here, where `ps` shows it).
    #[arg(long, env = "CG_DB", default_value = "cg.db", hide_env_values = true)]
    pub db: String,
}

impl DbArg {
    /// Opens an existing database of a schema this binary knows (it never creates one).
    pub async fn open_existing(&self) -> Result<Store> {
        let url = self.checked_url()?;
        Store::open_existing(url.clone())
            .await
            .with_context(|| format!("cannot open the results database {}", url.redacted()))
    }

    /// Opens an existing database for reading only: works on a read-only mount or another user's
    /// file.
    pub async fn open_read_only(&self) -> Result<Store> {
        let url = self.checked_url()?;
        Store::open_read_only(url.clone())
            .await
            .with_context(|| format!("cannot open the results database {}", url.redacted()))
    }

    /// Opens an existing database for writing if it can be written, else for reading only.
    pub async fn open_existing_or_read_only(&self) -> Result<Store> {
        match self.open_existing().await {
            Ok(store) => Ok(store),
            Err(e) => match self.open_read_only().await {
                Ok(store) => Ok(store),
                Err(_) => Err(e),
            },
        }
    }

    /// The URL, refused when it is not one cg can open, or names a SQLite file that is missing.
    fn checked_url(&self) -> Result<DatabaseUrl> {
        let url = DatabaseUrl::new(self.db.clone());
        let kind = url
            .kind()
            .map_err(|reason| anyhow::anyhow!("--db {}: {reason}", url.redacted()))?;
        if kind == UrlKind::SqlitePath && !std::path::Path::new(&self.db).exists() {
            bail!(
                "no results database at {} (run `cg sweep submit` or `cg run` first, or pass --db)",
                url.redacted()
            );
        }
        Ok(url)
    }
}

/// `--db`'s help in `cg report`, `cg bench-replay` and `cg db`.
pub const DB_HELP_SHORT: &str = "SQLite file or `postgres://…` URL";

#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Create the database if needed and apply every migration.
    #[command(mut_arg("db", |a| a.help(DB_HELP_SHORT)))]
    Migrate {
        #[command(flatten)]
        db: DbArg,
    },
    /// Write a consistent copy of a SQLite database (safe while workers write to it).
    #[command(mut_arg("db", |a| a.help(DB_HELP_SHORT)))]
    Backup {
        #[command(flatten)]
        db: DbArg,
        /// The copy; must not exist.
        file: PathBuf,
    },
}

/// The threads of a command's async runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// One thread: the commands that talk to the database and wait.
    Current,
    /// Two worker threads: the commands that run workers beside their progress lines, reports
    /// and signal handling.
    Workers,
}

/// The async runtime of a command (every command builds its runtime here).
pub fn runtime_with(threads: Threads) -> Result<tokio::runtime::Runtime> {
    let mut builder = match threads {
        Threads::Current => tokio::runtime::Builder::new_current_thread(),
        Threads::Workers => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(2);
            builder
        }
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The one-thread runtime ([`Threads::Current`]).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    runtime_with(Threads::Current)
}

pub fn run(cmd: DbCommand) -> Result<ExitCode> {
    runtime()?.block_on(async {
        match cmd {
            DbCommand::Migrate { db } => {
                let url = cg_store::DatabaseUrl::new(db.db.clone());
                let store = Store::open(url.clone())
                    .await
                    .with_context(|| format!("cannot open {}", url.redacted()))?;
                store.migrate().await.context("migration failed")?;
                println!(
                    "{}: schema version {}",
                    url.redacted(),
                    store.schema_version().await?
                );
            }
            DbCommand::Backup { db, file } => {
                if file.exists() {
                    bail!("{} exists; choose a new file", file.display());
                }
                let store = db.open_read_only().await?;
                store
                    .backup(&file)
                    .await
                    .with_context(|| format!("backup to {} failed", file.display()))?;
                println!("backed up to {}", file.display());
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
