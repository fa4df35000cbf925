//! What `cg run`, `cg daemon` and the reports do when the world changes under them (issue 18):
//! a task of the daemon dies, the runs folder cannot be written, a sweep is paused or deleted
//! while it runs. Each must end, or go on, cleanly: no process left half alive, no job left
//! `running`, no warning repeated forever.

#[allow(dead_code)]
mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cg_core::JobStatus;

const CG: &str = env!("CARGO_BIN_EXE_cg");

/// A hang guard, not a timing assertion: far above what any of these commands needs.
const HANG: Duration = Duration::from_secs(180);

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(CG);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("CG_DB")
            .env_remove("CG_TEST_FAULT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn cg(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Starts `cmd` with its stderr in a file (a pipe nobody reads would fill up and block it).
    fn spawn(&self, mut cmd: Command) -> Running {
        let log = self.path(&format!(
            "stderr-{}.log",
            self.dir.path().read_dir().unwrap().count()
        ));
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd.stdout(Stdio::null()).stderr(file).spawn().unwrap();
        Running { child, log }
    }

    fn store<T>(&self, f: impl AsyncFnOnce(&cg_store::Store) -> T) -> T {
        common::with_store(&self.path("cg.db"), f)
    }

    fn statuses(&self, sweep: &str) -> Vec<JobStatus> {
        self.store(async |s| {
            s.job_records(sweep)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.status)
                .collect()
        })
    }

    /// The statuses of the sweep's jobs, or none while the database or the sweep is not there
    /// yet (a `cg run` that has just started).
    fn statuses_if_any(&self, sweep: &str) -> Vec<JobStatus> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let Ok(store) = cg_store::Store::open_existing(self.path("cg.db").as_path()).await
            else {
                return Vec::new();
            };
            let records = store.job_records(sweep).await.unwrap_or_default();
            store.close().await;
            records.into_iter().map(|r| r.status).collect()
        })
    }

    /// Waits until a job of `sweep` runs.
    fn wait_running(&self, sweep: &str, run: &mut Running) {
        let start = Instant::now();
        while !self.statuses_if_any(sweep).contains(&JobStatus::Running) {
            assert!(
                run.child.try_wait().unwrap().is_none(),
                "the process ended before a job ran"
            );
            assert!(start.elapsed() < HANG, "no job started");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A process started by [`Env::spawn`].
struct Running {
    child: Child,
    log: PathBuf,
}

/// Waits for the process to exit; kills it and fails the test past the hang guard. Returns its
/// exit code and stderr.
fn finish(mut run: Running, what: &str) -> (Option<i32>, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = run.child.try_wait().unwrap() {
            return (status.code(), std::fs::read_to_string(&run.log).unwrap());
        }
        if start.elapsed() > HANG {
            run.child.kill().unwrap();
            let _ = run.child.wait();
            panic!(
                "{what} did not end (killed after {} s); stderr:\n{}",
                HANG.as_secs(),
                std::fs::read_to_string(&run.log).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A sweep of `jobs` tiny synthetic jobs of `epochs` epochs each.
fn sweep_text(name: &str, jobs: usize, epochs: usize) -> String {
    let seeds: Vec<String> = (0..jobs).map(|s| s.to_string()).collect();
    format!(
        "name: {name}\n\
         dataset: {{kind: synthetic, synthetic: {{n_train: 64, n_test: 16, side: 8, channels: 3}}}}\n\
         model: {{depth: 8, width: 4}}\n\
         train: {{epochs: {epochs}, batch_size: 16}}\n\
         parameters:\n  train.seed: {{values: [{}]}}\n",
        seeds.join(", ")
    )
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Class 1 (second half): a task of the daemon that panics (here the folder watcher, through a
/// debug-build fault injection) stops the daemon with an error, and its workers' jobs go back to
/// the queue; the daemon no longer runs on half alive.
#[test]
fn a_panicking_daemon_task_stops_the_daemon() {
    let env = Env::new();
    std::fs::create_dir(env.path("watch")).unwrap();
    env.write("s.yaml", &sweep_text("s", 1, 400));
    let out = env.cg(&["sweep", "submit", "s.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut cmd = env.command(&[
        "daemon",
        "--watch",
        "watch",
        "--no-reports",
        "--workers",
        "1",
        "--threads-per-job",
        "1",
    ]);
    cmd.env("CG_TEST_FAULT", "watch-panic");
    let daemon = env.spawn(cmd);
    // The watcher panics at its first scan, maybe before the first claim: the daemon ends.
    let (code, err) = finish(daemon, "the daemon with a dead watcher");
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("the folder watcher failed"), "{err}");
    assert!(err.contains("injected fault"), "{err}");
    assert!(
        !env.statuses("s").contains(&JobStatus::Running),
        "a job was left running:\n{err}"
    );
}

/// Class 9: a runs folder that cannot be written is refused before any claim (nothing is left
/// `running`); a job whose own folder cannot be made ends its attempt and goes back to the queue
/// (then fails for good after its attempts), and the run ends.
#[test]
fn an_unwritable_runs_folder_never_leaves_jobs_running() {
    let env = Env::new();
    env.write("s.yaml", &sweep_text("s", 2, 1));
    // /proc/self/fd exists and is a directory, but nobody, root included, can create files in it.
    let (code, err) = finish(
        env.spawn(env.command(&[
            "run",
            "s.yaml",
            "--runs-dir",
            "/proc/self/fd",
            "--workers",
            "1",
            "--threads-per-job",
            "1",
        ])),
        "cg run with an unwritable runs folder",
    );
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("/proc/self/fd is not writable"), "{err}");
    assert!(err.contains("--runs-dir"), "{err}");
    assert_eq!(env.statuses("s"), vec![JobStatus::Queued; 2], "{err}");

    // A folder per job that cannot be made: a file stands where the job's folder goes.
    let ids = env.store(async |s| {
        s.job_records("s")
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.job.id)
            .collect::<Vec<_>>()
    });
    std::fs::create_dir(env.path("runs")).unwrap();
    std::fs::write(env.path("runs").join(&ids[0]), "in the way").unwrap();
    let (code, err) = finish(
        env.spawn(env.command(&["run", "s.yaml", "--workers", "1", "--threads-per-job", "1"])),
        "cg run with a job whose folder cannot be made",
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot create"), "{err}");
    let records = env.store(async |s| s.job_records("s").await.unwrap());
    for r in &records {
        let want = if r.job.id == ids[0] {
            JobStatus::Failed
        } else {
            JobStatus::Completed
        };
        assert_eq!(r.status, want, "{}: {err}", r.job.id);
    }
}

/// Class 13: a paused sweep's report says it is paused and does not reload itself.
#[test]
fn a_paused_sweeps_report_says_paused_and_does_not_reload() {
    let env = Env::new();
    env.write("s.yaml", &sweep_text("s", 2, 1));
    for args in [
        vec!["sweep", "submit", "s.yaml"],
        vec!["report", "s"],
        vec!["sweep", "pause", "s"],
    ] {
        let out = env.cg(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let html = |env: &Env| std::fs::read_to_string(env.path("reports/s/report.html")).unwrap();
    // Active with queued jobs: running, reloading.
    assert!(html(&env).contains("http-equiv=\"refresh\""));
    let out = env.cg(&["report", "s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let page = html(&env);
    assert!(!page.contains("http-equiv=\"refresh\""), "{page}");
    assert!(page.contains("Sweep paused"), "{page}");
    let md = std::fs::read_to_string(env.path("reports/s/report.md")).unwrap();
    assert!(
        md.contains("Sweep paused") && !md.contains("Sweep running"),
        "{md}"
    );
}

/// Class 13: `cg sweep delete` while `cg run` works on the sweep ends the run cleanly (exit 0,
/// one line saying so), not with an error.
#[test]
fn deleting_the_sweep_ends_cg_run_cleanly() {
    let env = Env::new();
    env.write("s.yaml", &sweep_text("s", 2, 2000));
    let mut run =
        env.spawn(env.command(&["run", "s.yaml", "--workers", "1", "--threads-per-job", "1"]));
    env.wait_running("s", &mut run);
    let out = env.cg(&["sweep", "delete", "s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, err) = finish(run, "cg run after its sweep was deleted");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("was deleted while it ran"), "{err}");
    assert!(!err.contains("error:"), "{err}");
}

/// Class 13: a sweep deleted while the daemon works on it is said once, not warned about every
/// report interval forever.
#[test]
fn a_deleted_sweep_is_not_warned_about_forever() {
    let env = Env::new();
    env.write("s.yaml", &sweep_text("s", 1, 2000));
    let out = env.cg(&["sweep", "submit", "s.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut daemon = env.spawn(env.command(&[
        "daemon",
        "--workers",
        "1",
        "--threads-per-job",
        "1",
        "--lease",
        "2",
        "--report-every",
        "1",
    ]));
    env.wait_running("s", &mut daemon);
    let out = env.cg(&["sweep", "delete", "s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Several report intervals (1 s each) go by.
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon ended"
    );
    sigterm(&daemon.child);
    let (_, err) = finish(daemon, "the daemon after SIGTERM");
    assert!(!err.contains("cannot check whether sweep"), "{err}");
    // Said once, or not at all when the sweep went before its report was first due.
    assert!(
        err.matches("sweep `s` was deleted; its report is no longer updated")
            .count()
            <= 1,
        "{err}"
    );
}
