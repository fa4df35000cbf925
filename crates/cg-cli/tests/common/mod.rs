//! Helpers shared by the end-to-end tests that start `cg` processes: output for messages, and the
//! job runners of a process, found and killed through `/proc`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A command's status and output, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Processes whose parent is `parent` and whose command line contains `job-runner` (so they
/// have exec'd: a forked child still shows its parent's command line).
pub fn runners_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) != Some(parent) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("job-runner") {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` is alive (a zombie counts as dead).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

pub fn kill9(pid: u32) {
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -9 {pid} failed");
}

/// Waits (up to 60 s) until `pid` is dead, or fails naming `what`.
pub fn wait_dead(pid: u32, what: &str) {
    let start = Instant::now();
    while alive(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} (pid {pid}) did not die"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `f` on the existing SQLite database `db` (as another process would open it), then
/// closes it.
#[allow(dead_code)] // not every test binary opens a SQLite file
pub fn with_store<T>(db: &Path, f: impl AsyncFnOnce(&cg_store::Store) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = cg_store::Store::open_existing(db).await.unwrap();
        let out = f(&store).await;
        store.close().await;
        out
    })
}

/// A fresh schema in the database of `CG_TEST_PG_URL`, dropped with this value: the URL that
/// processes get puts it on their search path, so tests that share one server never see each
/// other's sweeps.
#[allow(dead_code)] // not every test binary uses PostgreSQL
pub struct PgSchema {
    pub rt: tokio::runtime::Runtime,
    /// `CG_TEST_PG_URL`.
    pub base_url: String,
    pub schema: String,
    /// `base_url` with `options[search_path]=<schema>`.
    pub url: String,
}

#[allow(dead_code)]
impl PgSchema {
    /// `None`, after saying so, when `CG_TEST_PG_URL` is not set. `prefix` starts the name.
    pub fn new(prefix: &str) -> Option<Self> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let Some(base_url) = std::env::var("CG_TEST_PG_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            eprintln!("skipped: set CG_TEST_PG_URL (see .ci/postgres.sh) to run on PostgreSQL");
            return None;
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let schema = format!(
            "{prefix}_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&base_url)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to CG_TEST_PG_URL: {e}"));
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        });
        let url = with_search_path(&base_url, &schema);
        Some(Self {
            rt,
            base_url,
            schema,
            url,
        })
    }

    /// Runs `f` on the schema's store, then closes it.
    pub fn with_store<T>(&self, f: impl AsyncFnOnce(&cg_store::Store) -> T) -> T {
        self.rt.block_on(async {
            let store = cg_store::Store::open_existing(self.url.as_str())
                .await
                .unwrap();
            let out = f(&store).await;
            store.close().await;
            out
        })
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let dropped = self.rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&self.base_url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA {} CASCADE",
                self.schema
            )))
            .execute(&mut conn)
            .await?;
            conn.close().await
        });
        if let Err(e) = dropped {
            eprintln!("warning: cannot drop schema {}: {e}", self.schema);
        }
    }
}

/// `url` with `options[search_path]=<schema>` added to its query.
#[allow(dead_code)]
pub fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options[search_path]={schema}")
}
