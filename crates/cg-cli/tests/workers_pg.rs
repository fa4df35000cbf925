//! Workers on several machines sharing one sweep through PostgreSQL (`cg worker --db
//! postgres://…`), end to end with the real `cg` binary and a real server: two workers split a
//! sweep without running any job twice and never show the database password, and a worker whose
//! machine dies loses its job to another worker through lease expiry, which resumes it from the
//! shared checkpoint.
//!
//! The tests run when `CG_TEST_PG_URL` names a PostgreSQL database (see `.ci/postgres.sh`); each
//! works in a fresh schema of it, dropped afterwards. Without the variable they pass after saying
//! so on stderr.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cg_core::{JobRecord, JobStatus};
use cg_store::{AttemptOutcome, AttemptRecord, Store, StoreOptions};
use common::{PgSchema, alive, kill9, runners_of, text, wait_dead, with_search_path};
use sqlx::Connection;

const CG: &str = env!("CARGO_BIN_EXE_cg");

/// How long any one wait may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The password put into the URL when `CG_TEST_PG_URL` has none (the test server trusts loopback
/// connections, so it is sent nowhere that checks it).
const ADDED_PASSWORD: &str = "s3cret-pw";

/// The tests train on the two cores of a small machine: one at a time, so that neither starves
/// the other's heartbeats.
static SERIAL: Mutex<()> = Mutex::new(());

/// A fresh schema in the database of `CG_TEST_PG_URL`, the URL the workers get (with a password
/// and the schema as search path), a scratch directory, and a store to check what they wrote.
struct Pg {
    pg: PgSchema,
    /// What the workers get: `CG_TEST_PG_URL` with a password and `options[search_path]`.
    url: String,
    /// The password in `url`: it must never be shown.
    secret: String,
    dir: tempfile::TempDir,
    store: std::cell::OnceCell<Store>,
}

impl Pg {
    /// `None` (after saying so) when `CG_TEST_PG_URL` is not set.
    fn new() -> Option<Pg> {
        let pg = PgSchema::new("cg_workers")?;
        let (with_password, secret) = with_password(&pg.base_url);
        let url = with_search_path(&with_password, &pg.schema);
        Some(Pg {
            pg,
            url,
            secret,
            dir: tempfile::tempdir().unwrap(),
            store: std::cell::OnceCell::new(),
        })
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn runs_dir(&self) -> PathBuf {
        self.path("runs")
    }

    /// A sweep file of `seeds` jobs on a tiny synthetic set.
    fn sweep(&self, name: &str, n_train: usize, epochs: usize, seeds: &[u32]) -> PathBuf {
        let seeds: Vec<String> = seeds.iter().map(u32::to_string).collect();
        let text = format!(
            "name: {name}\n\
             dataset: {{kind: synthetic, synthetic: {{n_train: {n_train}, n_test: 16, side: 8, channels: 3}}}}\n\
             model: {{depth: 8, width: 4}}\n\
             train: {{epochs: {epochs}, batch_size: 16}}\n\
             parameters:\n  train.seed:\n    values: [{}]\n",
            seeds.join(", ")
        );
        let path = self.path(&format!("{name}.yaml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn cg(&self) -> Command {
        let mut cmd = Command::new(CG);
        cmd.current_dir(self.dir.path()).env_remove("CG_DB");
        cmd
    }

    /// `cg sweep submit` (which also migrates the fresh schema).
    fn submit(&self, sweep: &Path) {
        let out = self
            .cg()
            .args([
                "sweep",
                "submit",
                sweep.to_str().unwrap(),
                "--db",
                &self.url,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        self.assert_no_secret("`cg sweep submit` output", &text(&out));
    }

    /// Starts `cg worker` on the shared runs directory; the URL goes in `--db`, or in `CG_DB`
    /// when `db_in_env`.
    fn spawn_worker(&self, name: &str, args: &[&str], db_in_env: bool) -> Worker {
        let stdout = self.path(&format!("{name}.stdout"));
        let stderr = self.path(&format!("{name}.stderr"));
        let mut cmd = self.cg();
        cmd.arg("worker")
            .args(args)
            .arg("--runs-dir")
            .arg(self.runs_dir())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap());
        if db_in_env {
            // PGPASSWORD as well (the server trusts loopback and ignores it): job runners must
            // see neither.
            cmd.env("CG_DB", &self.url).env("PGPASSWORD", &self.secret);
        } else {
            cmd.arg("--db").arg(&self.url);
        }
        Worker {
            name: name.into(),
            child: cmd.spawn().unwrap(),
            stdout,
            stderr,
        }
    }

    fn store<T>(&self, f: impl AsyncFnOnce(&Store) -> T) -> T {
        let store = self.store.get_or_init(|| {
            let mut options = StoreOptions::new(self.url.as_str());
            options.max_connections = 2;
            self.pg.rt.block_on(Store::open_with(options)).unwrap()
        });
        self.pg.rt.block_on(f(store))
    }

    fn records(&self, sweep: &str) -> Vec<JobRecord> {
        self.store(async |s| s.job_records(sweep).await.unwrap())
    }

    fn attempts(&self, job: &str) -> Vec<AttemptRecord> {
        self.store(async |s| s.attempts(job).await.unwrap())
    }

    /// The epoch numbers an attempt recorded.
    fn epochs(&self, job: &str, attempt: u32) -> Vec<usize> {
        self.store(async |s| s.attempt_history(job, attempt).await.unwrap())
            .iter()
            .map(|e| e.epoch)
            .collect()
    }

    /// Runs a query returning one integer, outside the store.
    fn count(&self, sql: &str) -> i64 {
        self.pg.rt.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
                .fetch_one(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
            n
        })
    }

    fn assert_no_secret(&self, what: &str, text: &str) {
        assert!(
            !text.contains(&self.secret),
            "the database password shows in {what}:\n{text}"
        );
    }

    /// Checks the command line and environment of a running job runner for the password;
    /// `false` when it was gone before both could be read.
    fn check_runner(&self, pid: u32) -> bool {
        let (Ok(cmdline), Ok(environ)) = (
            std::fs::read(format!("/proc/{pid}/cmdline")),
            std::fs::read(format!("/proc/{pid}/environ")),
        ) else {
            return false;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let environ = String::from_utf8_lossy(&environ).replace('\0', "\n");
        if !cmdline.contains("job-runner") {
            return false;
        }
        self.assert_no_secret(&format!("job runner {pid}'s command line"), &cmdline);
        self.assert_no_secret(&format!("job runner {pid}'s environment"), &environ);
        assert!(
            !environ.lines().any(|l| l.starts_with("CG_DB=")),
            "job runner {pid} sees CG_DB:\n{environ}"
        );
        true
    }

    /// Live processes (zombies do not count) whose command line mentions this test's directory:
    /// workers and job runners.
    fn live_processes(&self) -> Vec<(u32, String)> {
        let needle = self.dir.path().to_string_lossy().into_owned();
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&needle) && alive(pid) {
                out.push((pid, cmdline));
            }
        }
        out
    }

    fn assert_no_orphans(&self) {
        let start = Instant::now();
        loop {
            let left = self.live_processes();
            if left.is_empty() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "processes outlived the workers: {left:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            self.pg.rt.block_on(store.close());
        }
    }
}

/// `url` with a password: its own if it has one, else [`ADDED_PASSWORD`] in the user-info (or
/// as a `password` parameter when there is no user). Returns the URL and the password.
fn with_password(url: &str) -> (String, String) {
    let (scheme, rest) = url
        .split_once("://")
        .expect("CG_TEST_PG_URL is a postgres:// URL");
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, _)) => match userinfo.split_once(':') {
            Some((_, password)) if !password.is_empty() => (url.to_string(), password.to_string()),
            Some(_) => panic!("CG_TEST_PG_URL has an empty password"),
            None => {
                let host = &authority[userinfo.len()..];
                (
                    format!("{scheme}://{userinfo}:{ADDED_PASSWORD}{host}{tail}"),
                    ADDED_PASSWORD.into(),
                )
            }
        },
        None => {
            let sep = if url.contains('?') { '&' } else { '?' };
            (
                format!("{url}{sep}password={ADDED_PASSWORD}"),
                ADDED_PASSWORD.into(),
            )
        }
    }
}

/// A `cg worker` process, killed with its job runners if the test ends while it runs.
struct Worker {
    name: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Worker {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn logs(&self) -> String {
        format!(
            "--- worker {} (pid {}) stdout\n{}\n--- stderr\n{}",
            self.name,
            self.pid(),
            self.stdout(),
            self.stderr()
        )
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Whether one of its attempts is this worker's (`local:<host>:<machine>:<pid>:<slot>`).
    fn owns(&self, attempt: &AttemptRecord) -> bool {
        attempt
            .worker
            .starts_with(&cg_daemon::local_worker_prefix(self.pid()))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let runners = runners_of(self.pid());
            let _ = self.child.kill();
            let _ = self.child.wait();
            for pid in runners {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
}

#[test]
fn two_workers_share_a_sweep_and_never_show_the_password() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(pg) = Pg::new() else { return };
    let start = Instant::now();
    // Six jobs of about a second each on one core: both workers get work even if one of them
    // starts several seconds after the other.
    let sweep = pg.sweep("shared", 512, 6, &[0, 1, 2, 3, 4, 5]);
    pg.submit(&sweep);

    let args = [
        "--exit-when-idle",
        "--workers",
        "1",
        "--threads-per-job",
        "1",
    ];
    let mut workers = [
        pg.spawn_worker("a", &args, false),
        pg.spawn_worker("b", &args, false),
    ];
    let mut runners_seen = [BTreeSet::new(), BTreeSet::new()];
    let mut status: [Option<ExitStatus>; 2] = [None, None];
    while status.iter().any(Option::is_none) {
        for (i, w) in workers.iter_mut().enumerate() {
            if status[i].is_some() {
                continue;
            }
            for runner in runners_of(w.pid()) {
                if pg.check_runner(runner) {
                    runners_seen[i].insert(runner);
                }
            }
            status[i] = w.exited();
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the workers did not finish the sweep\n{}\n{}",
            workers[0].logs(),
            workers[1].logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let logs = format!("{}\n{}", workers[0].logs(), workers[1].logs());
    for (w, s) in workers.iter().zip(&status) {
        assert!(s.unwrap().success(), "worker {} failed\n{logs}", w.name);
        pg.assert_no_secret(&format!("worker {}'s stdout", w.name), &w.stdout());
        pg.assert_no_secret(&format!("worker {}'s stderr", w.name), &w.stderr());
        assert!(
            w.stderr().contains("***"),
            "worker {} does not show the URL redacted\n{logs}",
            w.name
        );
    }
    for (w, seen) in workers.iter().zip(&runners_seen) {
        assert!(
            !seen.is_empty(),
            "no job runner of worker {} was seen to check its command line\n{logs}",
            w.name
        );
    }

    let records = pg.records("shared");
    assert_eq!(records.len(), 6, "{records:?}");
    let mut jobs_of = [0, 0];
    for r in &records {
        assert_eq!(r.status, JobStatus::Completed, "{r:?}\n{logs}");
        let result = r.result.as_ref().expect("a completed job has a result");
        assert_eq!(result.history.len(), 6, "{r:?}");
        let attempts = pg.attempts(&r.job.id);
        assert_eq!(attempts.len(), 1, "{attempts:?}\n{logs}");
        assert_eq!(
            attempts[0].outcome,
            AttemptOutcome::Completed,
            "{attempts:?}"
        );
        let owner = workers
            .iter()
            .position(|w| w.owns(&attempts[0]))
            .unwrap_or_else(|| panic!("job {} ran on neither worker: {attempts:?}", r.job.id));
        jobs_of[owner] += 1;
        assert_eq!(pg.epochs(&r.job.id, 1), (1..=6).collect::<Vec<_>>());
    }
    assert!(
        jobs_of.iter().all(|&n| n > 0),
        "one worker did every job ({jobs_of:?})\n{logs}"
    );
    assert_eq!(pg.count("SELECT COUNT(*) FROM results"), 6);
    assert_eq!(pg.count("SELECT COUNT(*) FROM attempts"), 6);
    pg.assert_no_orphans();
    eprintln!(
        "two workers: {jobs_of:?} jobs, {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn a_dead_machines_job_expires_to_another_worker_that_resumes_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(pg) = Pg::new() else { return };
    let start = Instant::now();
    const EPOCHS: usize = 30;
    pg.submit(&pg.sweep("long", 512, EPOCHS, &[7]));
    let job = pg.records("long")[0].job.id.clone();

    // Machine A claims the job under a 2 s lease and checkpoints an epoch.
    let mut a = pg.spawn_worker(
        "a",
        &["--lease", "2", "--workers", "1", "--threads-per-job", "1"],
        false,
    );
    let checkpoint = pg.runs_dir().join(&job).join("state.json");
    let a_runner = loop {
        assert!(a.exited().is_none(), "worker A ended early\n{}", a.logs());
        assert!(
            start.elapsed() < TIMEOUT,
            "worker A recorded no epoch in time\n{}",
            a.logs()
        );
        if checkpoint.is_file()
            && !pg.epochs(&job, 1).is_empty()
            && let [runner] = runners_of(a.pid())[..]
        {
            break runner;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(pg.check_runner(a_runner), "worker A's job runner vanished");

    // Machine B (given the URL in CG_DB) starts while A is alive; once it has claimed a job of
    // its own, its start-up check for dead local workers is behind it, so A's job can only come
    // back to it through lease expiry.
    pg.submit(&pg.sweep("probe", 32, 1, &[0]));
    let probe = pg.records("probe")[0].job.id.clone();
    let mut b = pg.spawn_worker(
        "b",
        &[
            "--exit-when-idle",
            "--lease",
            "3",
            "--workers",
            "1",
            "--threads-per-job",
            "1",
        ],
        true,
    );
    let mut b_runners = BTreeSet::new();
    loop {
        assert!(b.exited().is_none(), "worker B ended early\n{}", b.logs());
        assert!(
            start.elapsed() < TIMEOUT,
            "worker B claimed nothing in time\n{}",
            b.logs()
        );
        for runner in runners_of(b.pid()) {
            if pg.check_runner(runner) {
                b_runners.insert(runner);
            }
        }
        if pg.attempts(&probe).iter().any(|at| b.owns(at)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // A's machine dies: the worker and its job runner (in a process group of its own) at once.
    assert!(a.exited().is_none(), "worker A ended early\n{}", a.logs());
    let before = pg.records("long");
    assert_eq!(
        before[0].status,
        JobStatus::Running,
        "the job ended before A could be killed; make it longer\n{}",
        a.logs()
    );
    kill9(a.pid());
    kill9(a_runner);
    a.child.wait().unwrap();
    wait_dead(a_runner, "worker A's job runner");
    let recorded_by_a = pg.epochs(&job, 1);

    // While B's attempt runs, the epochs it recorded are those it trained.
    let mut trained_by_b: Option<Vec<usize>> = None;
    let status = loop {
        for runner in runners_of(b.pid()) {
            if pg.check_runner(runner) {
                b_runners.insert(runner);
            }
        }
        if trained_by_b.is_none() {
            let epochs = pg.epochs(&job, 2);
            if !epochs.is_empty() && pg.records("long")[0].status == JobStatus::Running {
                trained_by_b = Some(epochs);
            }
        }
        if let Some(status) = b.exited() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "worker B did not finish\n{}",
            b.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let logs = format!("{}\n{}", a.logs(), b.logs());
    assert!(status.success(), "worker B failed\n{logs}");
    assert!(
        !b_runners.is_empty(),
        "no job runner of worker B was seen to check its command line\n{logs}"
    );
    for w in [&a, &b] {
        pg.assert_no_secret(&format!("worker {}'s stdout", w.name), &w.stdout());
        pg.assert_no_secret(&format!("worker {}'s stderr", w.name), &w.stderr());
    }
    let b_err = b.stderr();
    assert!(
        b_err.contains("took back 1 running job(s): their lease expired"),
        "{logs}"
    );
    assert!(!b_err.contains("local worker process is gone"), "{logs}");

    // One result, from B's second attempt, after A's expired one.
    for sweep in ["long", "probe"] {
        let records = pg.records(sweep);
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].status,
            JobStatus::Completed,
            "{records:?}\n{logs}"
        );
    }
    let record = &pg.records("long")[0];
    let attempts = pg.attempts(&job);
    assert_eq!(attempts.len(), 2, "{attempts:?}\n{logs}");
    assert!(a.owns(&attempts[0]), "{attempts:?}");
    assert_eq!(attempts[0].outcome, AttemptOutcome::Expired, "{attempts:?}");
    assert!(
        attempts[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("lease expired"),
        "{attempts:?}"
    );
    assert!(b.owns(&attempts[1]), "{attempts:?}");
    assert_eq!(
        attempts[1].outcome,
        AttemptOutcome::Completed,
        "{attempts:?}"
    );
    let probe_attempts = pg.attempts(&probe);
    assert_eq!(probe_attempts.len(), 1, "{probe_attempts:?}");
    assert!(b.owns(&probe_attempts[0]), "{probe_attempts:?}");
    assert_eq!(pg.count("SELECT COUNT(*) FROM results"), 2);

    // B resumed from A's last checkpoint: the first epoch it trained and recorded is the one
    // after it. On completion the store fills in the attempt's earlier epochs from the result's
    // history, which B took from the checkpoint: they are A's records, not retrained ones.
    let trained_by_b = trained_by_b
        .unwrap_or_else(|| panic!("B's attempt was never seen recording epochs\n{logs}"));
    let from = trained_by_b[0] - 1;
    assert!(from >= 1, "B started over: {trained_by_b:?}\n{logs}");
    assert!(
        trained_by_b
            .iter()
            .copied()
            .eq(from + 1..from + 1 + trained_by_b.len()),
        "B recorded {trained_by_b:?}\n{logs}"
    );
    // A records an epoch when its runner reports it, just before the runner checkpoints it: the
    // kill may fall between the two, either way.
    let n = recorded_by_a.len();
    assert!(
        recorded_by_a == (1..=n).collect::<Vec<_>>() && (from - 1..=from + 1).contains(&n),
        "A recorded {recorded_by_a:?}, B resumed after epoch {from}"
    );
    assert!(
        b_err.contains(&format!("resumed from the checkpoint of epoch {from}")),
        "{logs}"
    );
    let (a_history, b_history) = pg.store(async |s| {
        (
            s.attempt_history(&job, 1).await.unwrap(),
            s.attempt_history(&job, 2).await.unwrap(),
        )
    });
    assert_eq!(
        b_history.iter().map(|e| e.epoch).collect::<Vec<_>>(),
        (1..=EPOCHS).collect::<Vec<_>>()
    );
    let same = n.min(from);
    assert_eq!(
        b_history[..same],
        a_history[..same],
        "B retrained epochs up to {from}"
    );
    let history: Vec<usize> = record
        .result
        .as_ref()
        .unwrap()
        .history
        .iter()
        .map(|e| e.epoch)
        .collect();
    assert_eq!(history, (1..=EPOCHS).collect::<Vec<_>>());

    pg.assert_no_orphans();
    eprintln!(
        "dead machine: A recorded {} epoch(s), B resumed after epoch {from}, {:.1} s",
        recorded_by_a.len(),
        start.elapsed().as_secs_f64()
    );
}

/// Issue 18, defect 12, on PostgreSQL: `cg status | head -1` ends quietly (exit 0, no panic) when
/// the reader has gone, the database connection open.
#[test]
fn a_closed_stdout_ends_status_quietly_on_postgres() {
    let Some(pg) = Pg::new() else { return };
    let sweep = pg.sweep("piped", 32, 1, &[0, 1]);
    pg.submit(&sweep);
    for args in [vec!["status"], vec!["status", "piped"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = pg
            .cg()
            .args(&args)
            .args(["--db", &pg.url])
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}
