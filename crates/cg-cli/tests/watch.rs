//! The watched folder (`cg daemon --watch DIR`) against whoever can write to it (issue 18): links
//! and FIFOs are refused without blocking and big files are never read (nor read again once
//! refused); a file is taken only once it is settled over two scans; control characters in names
//! are escaped in messages, the store and `cg status`; a password reached through `${VAR}` in a
//! data path is never shown or stored. Scans are driven by calling [`Watcher::scan`] directly, so
//! nothing depends on timing; the last test runs the real daemon. Each test runs on SQLite and,
//! when `CG_TEST_PG_URL` is set, on PostgreSQL (in a fresh schema, dropped afterwards).

#[allow(dead_code)]
mod common;

use std::os::unix::fs::{OpenOptionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use cg_daemon::{WatchEvent, Watcher};
use cg_store::{Store, SubmitOptions};
use common::text;
use sqlx::Connection;

const CG: &str = env!("CARGO_BIN_EXE_cg");

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A database on one engine, with a scratch folder holding `inbox/` (the watched folder).
struct Db {
    /// What `--db` gets.
    url: String,
    /// The PostgreSQL server and schema, to drop at the end.
    pg: Option<(String, String)>,
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
}

impl Db {
    /// SQLite, then PostgreSQL when `CG_TEST_PG_URL` is set.
    fn each() -> Vec<Db> {
        let mut dbs = vec![Db::new(None)];
        match std::env::var("CG_TEST_PG_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            Some(base) => dbs.push(Db::new(Some(base))),
            None => eprintln!("PostgreSQL skipped: set CG_TEST_PG_URL to run on it too"),
        }
        dbs
    }

    fn new(pg_base: Option<String>) -> Db {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("inbox")).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (url, pg) = match pg_base {
            None => (dir.path().join("cg.db").display().to_string(), None),
            Some(base) => {
                let schema = format!(
                    "cg_watch_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed),
                    SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap()
                        .subsec_nanos()
                );
                rt.block_on(async {
                    let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
                    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                        .execute(&mut conn)
                        .await
                        .unwrap();
                    conn.close().await.unwrap();
                });
                let sep = if base.contains('?') { '&' } else { '?' };
                (
                    format!("{base}{sep}options[search_path]={schema}"),
                    Some((base, schema)),
                )
            }
        };
        Db { url, pg, dir, rt }
    }

    fn engine(&self) -> &'static str {
        if self.pg.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn store(&self) -> Store {
        self.rt.block_on(async {
            let store = Store::open(self.url.as_str()).await.unwrap();
            store.migrate().await.unwrap();
            store
        })
    }

    fn watcher(&self) -> Watcher {
        Watcher::new(self.path("inbox"), SubmitOptions::default())
    }

    /// One scan, guarded against a scan that blocks (on today's code, a FIFO): the test fails
    /// instead of hanging.
    fn scan(&self, watcher: &mut Watcher, store: &Store) -> Vec<WatchEvent> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                let _ = tx.send(self.rt.block_on(watcher.scan(store)).unwrap());
            });
            match rx.recv_timeout(Duration::from_secs(120)) {
                Ok(events) => events,
                Err(_) => {
                    // Unblock a scan stuck on a FIFO, then fail.
                    for fifo in ["fifo", "inbox/fifo-itself.yaml"] {
                        let _ = std::fs::OpenOptions::new()
                            .write(true)
                            .custom_flags(libc::O_NONBLOCK)
                            .open(self.path(fifo));
                    }
                    panic!("a scan of the watched folder blocked ({})", self.engine());
                }
            }
        })
    }

    /// `cg status` on this database.
    fn status(&self) -> String {
        let out = self.try_status();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn try_status(&self) -> std::process::Output {
        Command::new(CG)
            .args(["status", "--db", &self.url])
            .current_dir(self.dir.path())
            .env_remove("CG_DB")
            .output()
            .unwrap()
    }

    fn finish(self, store: Store) {
        self.rt.block_on(async {
            store.close().await;
            if let Some((base, schema)) = &self.pg {
                let mut conn = sqlx::PgConnection::connect(base).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
            }
        });
    }
}

/// `url` with `password` in its user-info (the URL has a user, as `CG_TEST_PG_URL` does).
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, host) = rest.split_once('@').expect("CG_TEST_PG_URL names a user");
    let user = user.split(':').next().unwrap();
    format!("{scheme}://{user}:{password}@{host}")
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Sets the file's modification time a minute back, as an old file (or a slow writer's pause)
/// would have it: no rule may rest on a file's age.
fn age(path: &Path) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(60))
        .unwrap();
}

fn sweep_text(name: &str, seeds: &str) -> String {
    format!(
        "name: {name}\n\
         dataset: {{kind: synthetic, synthetic: {{n_train: 32, n_test: 16, side: 8, channels: 3}}}}\n\
         model: {{depth: 8, width: 4}}\n\
         train: {{epochs: 1, batch_size: 16}}\n\
         parameters:\n  train.seed:\n    values: [{seeds}]\n"
    )
}

fn rejected(events: &[WatchEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            WatchEvent::Rejected { path, message } => Some((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                message.clone(),
            )),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Defect 2: links, FIFOs and big files

/// A link (to a FIFO, to a big file, to a good sweep file), a FIFO and a file over the size cap
/// are each refused with a clear message, once, without blocking and without reading a byte of
/// them; later scans read nothing of them until they change.
#[test]
fn links_fifos_and_big_files_are_refused_without_reading_them() {
    for db in Db::each() {
        let store = db.store();
        let outside = db.path("outside");
        std::fs::create_dir(&outside).unwrap();
        mkfifo(&db.path("fifo"));
        mkfifo(&db.path("inbox/fifo-itself.yaml"));
        // A sparse 64 MiB file: no disk used, and far more memory than a scan may take.
        let big = std::fs::File::create(outside.join("big.yaml")).unwrap();
        big.set_len(64 << 20).unwrap();
        let huge = std::fs::File::create(db.path("inbox/huge.yaml")).unwrap();
        huge.set_len(cg_sweep::MAX_FILE_BYTES as u64 + 1).unwrap();
        std::fs::write(outside.join("good.yaml"), sweep_text("linked", "0")).unwrap();
        symlink(db.path("fifo"), db.path("inbox/to-fifo.yaml")).unwrap();
        symlink(outside.join("big.yaml"), db.path("inbox/to-big.yaml")).unwrap();
        symlink(outside.join("good.yaml"), db.path("inbox/to-good.yaml")).unwrap();

        for file in ["outside/big.yaml", "outside/good.yaml", "inbox/huge.yaml"] {
            age(&db.path(file));
        }
        let mut watcher = db.watcher();
        // Refused at once; two scans, so that a file taken once settled would show too.
        let mut events = db.scan(&mut watcher, &store);
        events.extend(db.scan(&mut watcher, &store));
        let mut refused = rejected(&events);
        refused.sort();
        let names: Vec<&str> = refused.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "fifo-itself.yaml",
                "huge.yaml",
                "to-big.yaml",
                "to-fifo.yaml",
                "to-good.yaml"
            ],
            "{}: {events:?}",
            db.engine()
        );
        for (name, message) in &refused {
            let expected = match name.as_str() {
                "fifo-itself.yaml" => "not a regular file",
                "huge.yaml" => "larger than 4194304 bytes",
                _ => "is a symbolic link",
            };
            assert!(message.contains(expected), "{name}: {message}");
            assert!(message.contains(name.as_str()), "names the file: {message}");
        }
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, WatchEvent::Submitted { .. })),
            "a link is never followed: {events:?}"
        );
        assert_eq!(watcher.bytes_read(), 0, "nothing of them was read");

        // Later scans: nothing reported again, nothing read.
        for _ in 0..2 {
            let again = db.scan(&mut watcher, &store);
            assert!(again.is_empty(), "{again:?}");
        }
        assert_eq!(watcher.bytes_read(), 0);
        let rows = db.rt.block_on(store.rejections()).unwrap();
        assert_eq!(rows.len(), 5, "{rows:?}");
        let status = db.status();
        assert_eq!(
            status.lines().filter(|l| l.starts_with("rejected")).count(),
            5,
            "{status}"
        );

        // The big file replaced by a good one (another inode): read and taken once settled.
        std::fs::remove_file(db.path("inbox/huge.yaml")).unwrap();
        std::fs::write(db.path("inbox/huge.yaml"), sweep_text("fixed", "0")).unwrap();
        assert!(db.scan(&mut watcher, &store).is_empty(), "not settled yet");
        let events = db.scan(&mut watcher, &store);
        assert!(
            matches!(&events[..], [WatchEvent::Submitted { sweep, .. }] if sweep == "fixed"),
            "{events:?}"
        );
        let rows = db.rt.block_on(store.rejections()).unwrap();
        assert_eq!(
            rows.len(),
            4,
            "the fixed file's refusal is cleared: {rows:?}"
        );
        db.finish(store);
    }
}

// ---------------------------------------------------------------------------------------------
// Defect 8: a file is taken only once settled

/// A slow writer: a valid first half, then the rest. Neither scan that sees the file changing
/// takes it; the whole file is submitted once it stayed the same over two scans, and only then.
#[test]
fn a_file_is_taken_only_once_unchanged_over_two_scans() {
    for db in Db::each() {
        let store = db.store();
        let mut watcher = db.watcher();
        let path = db.path("inbox/slow.yaml");
        let whole = sweep_text("slow", "0, 1, 2");
        // The first half is a valid sweep of one job.
        let half = whole.replace("[0, 1, 2]", "[0]");
        std::fs::write(&path, &half).unwrap();
        age(&path);
        assert!(
            db.scan(&mut watcher, &store).is_empty(),
            "a file seen once is not taken"
        );
        std::fs::write(&path, &whole).unwrap();
        age(&path);
        assert!(
            db.scan(&mut watcher, &store).is_empty(),
            "a file that changed since the last scan is not taken"
        );
        let events = db.scan(&mut watcher, &store);
        match &events[..] {
            [
                WatchEvent::Submitted {
                    sweep,
                    summary,
                    changed,
                    ..
                },
            ] => {
                assert_eq!(sweep, "slow");
                assert_eq!(summary.added, 3, "the whole file: {summary:?}");
                assert!(!changed);
            }
            other => panic!("{}: {other:?}", db.engine()),
        }
        // Settled and taken: later scans neither read nor submit it again; touching it without
        // changing it submits nothing.
        let read = watcher.bytes_read();
        assert!(db.scan(&mut watcher, &store).is_empty());
        assert_eq!(
            watcher.bytes_read(),
            read,
            "an unchanged file is not read again"
        );
        age(&path);
        assert!(db.scan(&mut watcher, &store).is_empty());
        assert!(db.scan(&mut watcher, &store).is_empty());
        let sweeps = db.rt.block_on(store.list_sweeps()).unwrap();
        assert_eq!(sweeps.len(), 1);
        assert_eq!(sweeps[0].counts.total(), 3);
        db.finish(store);
    }
}

// ---------------------------------------------------------------------------------------------
// Defect 11: control characters in names

/// A file name (and keys in it) with a newline and terminal escape codes: every message, the
/// stored rejection and `cg status` show them escaped, on one line, never raw.
#[test]
fn control_characters_in_names_are_escaped_wherever_shown() {
    for db in Db::each() {
        let store = db.store();
        let mut watcher = db.watcher();
        let name = "evil\nwatch: submitted forged.yaml as sweep `x`\u{1b}[2J\u{1b}]0;t\u{7}.yaml";
        let path = db.path("inbox").join(name);
        std::fs::write(
            &path,
            "name: evil\ndataset: {kind: synthetic}\n\"ke\\ey\\n\": 1\n",
        )
        .unwrap();
        age(&path);
        let mut events = db.scan(&mut watcher, &store);
        events.extend(db.scan(&mut watcher, &store));
        let refused = rejected(&events);
        assert_eq!(refused.len(), 1, "{events:?}");
        let message = &refused[0].1;
        for line in message.lines() {
            assert!(!line.chars().any(char::is_control), "{message:?}");
        }
        assert!(message.contains("evil\\nwatch: submitted"), "{message}");
        assert!(message.contains("\\u{1b}[2J"), "{message}");
        assert!(
            message.contains("ke\\u{1b}y\\n"),
            "the key escaped too: {message}"
        );

        let rows = db.rt.block_on(store.rejections()).unwrap();
        assert_eq!(rows.len(), 1);
        let raw = format!("{}{}", rows[0].path, rows[0].message.replace('\n', " "));
        assert!(!raw.chars().any(char::is_control), "stored raw: {raw:?}");

        let status = db.status();
        assert!(
            !status.contains('\u{1b}') && !status.contains('\u{7}'),
            "{status:?}"
        );
        assert!(
            !status.lines().any(|l| l.starts_with("watch:")),
            "no forged line: {status}"
        );
        let lines: Vec<&str> = status.lines().filter(|l| l.contains("forged")).collect();
        assert_eq!(lines.len(), 1, "{status}");
        assert!(lines[0].starts_with("rejected  "), "{status}");
        db.finish(store);
    }
}

// ---------------------------------------------------------------------------------------------
// Defect 3: `${CG_DB}` in a data path

/// A sweep file whose `dataset.path` is `${VAR}/x`, where VAR holds a database URL with a
/// password (`CG_DB` itself on PostgreSQL, the daemon's own database): the daemon refuses it,
/// and neither its log, nor the stored rejection, nor `cg status`, nor `cg sweep submit` shows
/// the password; the messages show the path as written. A file beside it whose name holds a
/// newline and an escape code appears escaped in the daemon log, on one line.
#[test]
fn a_password_reached_through_a_variable_is_never_shown_or_stored() {
    const SECRET: &str = "pw-Zq8-s3cret";
    for db in Db::each() {
        // PostgreSQL: the daemon's own URL, given in CG_DB, with a password (the test server
        // trusts loopback and ignores it). SQLite: a URL in another CG_ variable.
        let (variable, value, db_url) = match &db.pg {
            Some(_) => {
                let url = with_password(&db.url, SECRET);
                ("CG_DB", url.clone(), url)
            }
            None => (
                "CG_SECRET_URL",
                format!("postgres://cg:{SECRET}@db.example:5432/cg"),
                db.url.clone(),
            ),
        };
        let file = format!("name: leak\ndataset: {{kind: idx, path: \"${{{variable}}}/x\"}}\n");
        let written = format!("${{{variable}}}/x");
        std::fs::write(db.path("leak.yaml"), &file).unwrap();
        let submit = Command::new(CG)
            .args(["sweep", "submit", "leak.yaml", "--db", &db_url])
            .current_dir(db.dir.path())
            .env(variable, &value)
            .output()
            .unwrap();
        assert!(!submit.status.success(), "{}", text(&submit));
        assert!(!text(&submit).contains(SECRET), "{}", text(&submit));
        assert!(text(&submit).contains(&written), "{}", text(&submit));

        let temp = db.path("inbox/.incoming");
        std::fs::write(&temp, &file).unwrap();
        std::fs::rename(&temp, db.path("inbox/leak.yaml")).unwrap();
        // And a name that would forge a log line and clear the terminal (defect 11, in the log).
        std::fs::write(&temp, "name: [1]\n").unwrap();
        std::fs::rename(&temp, db.path("inbox/x\nwatch: submitted y\u{1b}[2J.yaml")).unwrap();
        let log = std::fs::File::create(db.path("daemon.log")).unwrap();
        let mut daemon = Command::new(CG);
        daemon
            .args([
                "daemon",
                "--watch",
                "inbox",
                "--no-reports",
                "--threads-per-job",
                "1",
            ])
            .current_dir(db.dir.path())
            .env(variable, &value)
            .stdout(Stdio::null())
            .stderr(log);
        if db.pg.is_none() {
            daemon.args(["--db", &db_url]);
        }
        let mut daemon = daemon.spawn().unwrap();
        let start = Instant::now();
        let status = loop {
            // The daemon creates a SQLite database when it starts.
            let out = db.try_status();
            let status = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() && status.matches("rejected").count() == 2 {
                break status;
            }
            if start.elapsed() > Duration::from_secs(120) || daemon.try_wait().unwrap().is_some() {
                let _ = daemon.kill();
                panic!(
                    "{}: no rejection recorded\n{}",
                    db.engine(),
                    std::fs::read_to_string(db.path("daemon.log")).unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let term = Command::new("kill")
            .args(["-TERM", &daemon.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        daemon.wait().unwrap();
        let log = std::fs::read_to_string(db.path("daemon.log")).unwrap();
        let store = db.store();
        let mut rows = db.rt.block_on(store.rejections()).unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        rows.sort_by_key(|r| !r.path.ends_with("leak.yaml"));
        assert!(!log.contains('\u{1b}'), "{log:?}");
        assert!(
            !log.lines().any(|l| l.starts_with("watch: submitted")),
            "a forged line: {log}"
        );
        assert!(
            log.contains("x\\nwatch: submitted y\\u{1b}[2J.yaml"),
            "{log}"
        );
        for (what, shown) in [
            ("the daemon log", &log),
            ("cg status", &status),
            ("the stored rejection", &rows[0].message),
        ] {
            assert!(
                !shown.contains(SECRET),
                "{}: {what} shows the password:\n{shown}",
                db.engine()
            );
            assert!(
                shown.contains(&written),
                "{}: {what} shows the path as written:\n{shown}",
                db.engine()
            );
        }
        assert!(log.contains("leak.yaml:2"), "file:line: {log}");
        db.finish(store);
    }
}
