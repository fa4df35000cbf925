//! `cg run` end to end on the CPU with tiny synthetic jobs: every job completes once, a second run
//! adds nothing, a NaN loss fails its job for good, a killed job runner is retried from its
//! checkpoint, and a killed `cg run` resumes without duplicates or orphans.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cg_core::{JobRecord, JobStatus};
use cg_store::AttemptRecord;
use common::{alive, kill9, runners_of, text, wait_dead};

const CG: &str = env!("CARGO_BIN_EXE_cg");

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

    /// A sweep of `seeds` jobs (plus `extra` parameter lines) on a tiny synthetic set.
    fn sweep(&self, name: &str, n_train: usize, epochs: usize, parameters: &str) -> PathBuf {
        let text = format!(
            "name: {name}\n\
             dataset: {{kind: synthetic, synthetic: {{n_train: {n_train}, n_test: 16, side: 8, channels: 3}}}}\n\
             model: {{depth: 8, width: 4}}\n\
             train: {{epochs: {epochs}, batch_size: 16}}\n\
             parameters:\n{parameters}"
        );
        let path = self.path(&format!("{name}.yaml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(CG);
        cmd.args(args)
            .arg("--db")
            .arg(self.path("cg.db"))
            .current_dir(self.dir.path())
            .env_remove("CG_DB");
        cmd
    }

    /// `cg sweep submit`, which must succeed; its output.
    fn submit(&self, sweep: &Path) -> Output {
        let out = self
            .command(&["sweep", "submit", sweep.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        out
    }

    fn run(&self, sweep: &Path) -> Output {
        self.command(&[
            "run",
            sweep.to_str().unwrap(),
            "--threads-per-job",
            "1",
            "--workers",
            "2",
        ])
        .output()
        .unwrap()
    }

    fn spawn_run(&self, sweep: &Path, log: &str) -> Child {
        let log = std::fs::File::create(self.path(log)).unwrap();
        self.command(&["run", sweep.to_str().unwrap(), "--threads-per-job", "1"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn store<T>(&self, f: impl AsyncFnOnce(&cg_store::Store) -> T) -> T {
        common::with_store(&self.path("cg.db"), f)
    }

    fn records(&self, sweep: &str) -> Vec<JobRecord> {
        self.store(async |s| s.job_records(sweep).await.unwrap())
    }

    fn attempts(&self, job: &str) -> Vec<AttemptRecord> {
        self.store(async |s| s.attempts(job).await.unwrap())
    }
}

/// Waits until some job of `runs/` has an epoch checkpoint and a runner of `parent` is running.
fn wait_for_checkpointed_runner(env: &Env, parent: u32) -> u32 {
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no runner checkpointed an epoch in time"
        );
        let checkpointed = std::fs::read_dir(env.path("runs"))
            .map(|d| d.flatten().any(|e| e.path().join("state.json").is_file()))
            .unwrap_or(false);
        if checkpointed && let Some(&pid) = runners_of(parent).first() {
            return pid;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_one_result_each(records: &[JobRecord]) {
    for r in records {
        assert_eq!(r.status, JobStatus::Completed, "{r:?}");
        assert!(r.result.is_some(), "{r:?}");
    }
}

#[test]
fn run_completes_every_job_once_and_a_second_run_adds_nothing() {
    let env = Env::new();
    let sweep = env.sweep("three", 32, 2, "  train.seed:\n    values: [0, 1, 2]\n");
    let out = env.run(&sweep);
    assert!(out.status.success(), "{}", text(&out));
    let records = env.records("three");
    assert_eq!(records.len(), 3);
    assert_one_result_each(&records);
    for r in &records {
        let attempts = env.attempts(&r.job.id);
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        assert_eq!(r.result.as_ref().unwrap().history.len(), 2);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("3 job(s): 3 completed, 0 failed"),
        "{}",
        text(&out)
    );

    let again = env.run(&sweep);
    assert!(again.status.success(), "{}", text(&again));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("0 job(s) added, 3 already stored"),
        "{}",
        text(&again)
    );
    for r in env.records("three") {
        assert_eq!(env.attempts(&r.job.id).len(), 1);
    }
}

#[test]
fn a_nan_loss_fails_its_job_for_good_while_the_others_complete() {
    let env = Env::new();
    let sweep = env.sweep("lr", 32, 1, "  train.lr:\n    values: [0.05, 1e30, 0.1]\n");
    let out = env.run(&sweep);
    assert!(!out.status.success(), "{}", text(&out));
    let records = env.records("lr");
    assert_eq!(records.len(), 3);
    let (failed, done): (Vec<_>, Vec<_>) = records
        .iter()
        .partition(|r| r.job.config.train.lr == Some(1e30));
    assert_one_result_each(&done.into_iter().cloned().collect::<Vec<_>>());
    let failed = failed[0];
    assert_eq!(failed.status, JobStatus::Failed, "{failed:?}");
    let reason = failed.last_error.as_deref().unwrap_or_default();
    assert!(reason.contains("loss became"), "{reason}");
    assert_eq!(
        env.attempts(&failed.job.id).len(),
        1,
        "a NaN loss is not retried"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("loss became"),
        "{}",
        text(&out)
    );
}

#[test]
fn consecutive_failures_stop_the_run_and_leave_the_rest_queued() {
    let env = Env::new();
    let sweep = env.sweep(
        "diverge",
        32,
        1,
        "  train.lr:\n    values: [1e30]\n  train.seed:\n    values: [0, 1, 2, 3]\n",
    );
    let out = env
        .command(&[
            "run",
            sweep.to_str().unwrap(),
            "--threads-per-job",
            "1",
            "--workers",
            "1",
            "--max-consecutive-failures",
            "2",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let records = env.records("diverge");
    assert_eq!(records.len(), 4);
    let count = |s: JobStatus| records.iter().filter(|r| r.status == s).count();
    assert_eq!(count(JobStatus::Failed), 2, "{records:?}");
    assert_eq!(count(JobStatus::Queued), 2, "{records:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("stopped after 2 consecutive failed jobs")
            && stderr.contains("--max-consecutive-failures")
            && stderr.contains("loss became"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_bad_sweep_exits_2_and_writes_nothing() {
    let env = Env::new();
    let path = env.path("bad.yaml");
    std::fs::write(
        &path,
        "name: bad\ndataset: {kind: synthetic}\nmodel: {depth: 7, wdth: 4}\n",
    )
    .unwrap();
    let out = env
        .command(&["sweep", "submit", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("wdth") && stderr.contains("depth"),
        "{}",
        text(&out)
    );
    assert!(!env.path("cg.db").exists());
}

#[test]
fn sweep_submit_queues_and_reports_counts() {
    let env = Env::new();
    let sweep = env.sweep("sub", 32, 1, "  train.seed:\n    values: [0, 1]\n");
    let out = env.submit(&sweep);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("2 job(s) added, 0 already stored, 0 requeued")
    );
    let records = env.records("sub");
    assert!(records.iter().all(|r| r.status == JobStatus::Queued));
}

#[test]
fn a_killed_job_runner_is_retried_from_its_checkpoint() {
    let env = Env::new();
    let sweep = env.sweep("kill", 512, 4, "  train.seed:\n    values: [7]\n");
    let mut run = env.spawn_run(&sweep, "kill.log");
    let runner = wait_for_checkpointed_runner(&env, run.id());
    kill9(runner);
    let status = run.wait().unwrap();
    let log = std::fs::read_to_string(env.path("kill.log")).unwrap();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("resumed from the checkpoint"), "{log}");
    let records = env.records("kill");
    assert_one_result_each(&records);
    let attempts = env.attempts(&records[0].job.id);
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(
        attempts[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("SIGKILL"),
        "{attempts:?}"
    );
    assert_eq!(records[0].result.as_ref().unwrap().history.len(), 4);
}

#[test]
fn a_killed_run_resumes_without_duplicates_or_orphans() {
    let env = Env::new();
    let sweep = env.sweep("crash", 512, 4, "  train.seed:\n    values: [1, 2]\n");
    let mut run = env.spawn_run(&sweep, "crash.log");
    let runner = wait_for_checkpointed_runner(&env, run.id());
    kill9(run.id());
    run.wait().unwrap();
    wait_dead(runner, "the job runner of the killed parent");

    let out = env.run(&sweep);
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("took back 1 running job(s)"),
        "{}",
        text(&out)
    );
    let records = env.records("crash");
    assert_eq!(records.len(), 2);
    assert_one_result_each(&records);
    for r in &records {
        assert_eq!(r.result.as_ref().unwrap().history.len(), 4);
        assert_eq!(r.attempts, 1, "the killed attempt is given back: {r:?}");
    }
}

#[test]
fn a_killed_daemon_restarts_and_finishes_the_sweep_once() {
    let env = Env::new();
    let sweep = env.sweep("daemon", 512, 4, "  train.seed:\n    values: [1, 2]\n");
    env.submit(&sweep);
    let log = std::fs::File::create(env.path("daemon.log")).unwrap();
    let mut daemon = env
        .command(&["daemon", "--exit-when-idle", "--threads-per-job", "1"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let runner = wait_for_checkpointed_runner(&env, daemon.id());
    kill9(daemon.id());
    daemon.wait().unwrap();
    wait_dead(runner, "the job runner of the killed daemon");
    let out = env
        .command(&["daemon", "--exit-when-idle", "--threads-per-job", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let records = env.records("daemon");
    assert_eq!(records.len(), 2);
    assert_one_result_each(&records);
    for r in &records {
        assert_eq!(r.result.as_ref().unwrap().history.len(), 4);
        assert_eq!(r.attempts, 1, "{r:?}");
    }
}

#[test]
fn run_trains_only_its_own_sweep() {
    let env = Env::new();
    let other = env.sweep("other", 32, 1, "  train.seed:\n    values: [5, 6]\n");
    env.submit(&other);
    let mine = env.sweep("mine", 32, 1, "  train.seed:\n    values: [1]\n");
    let out = env.run(&mine);
    assert!(out.status.success(), "{}", text(&out));
    assert_one_result_each(&env.records("mine"));
    let others = env.records("other");
    assert_eq!(others.len(), 2);
    for r in &others {
        assert_eq!((r.status, r.attempts), (JobStatus::Queued, 0), "{r:?}");
    }
}

#[test]
fn a_corrupt_dataset_fails_its_job_naming_the_file() {
    let env = Env::new();
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        std::fs::write(data.join(name), b"not an idx file").unwrap();
    }
    let path = env.path("corrupt.yaml");
    std::fs::write(
        &path,
        "name: corrupt\ndataset: {kind: idx, path: data}\nmodel: {depth: 8, width: 4}\ntrain: {epochs: 1, batch_size: 16}\n",
    )
    .unwrap();
    let out = env.run(&path);
    assert!(!out.status.success(), "{}", text(&out));
    let records = env.records("corrupt");
    assert_eq!(records[0].status, JobStatus::Failed, "{records:?}");
    let reason = records[0].last_error.as_deref().unwrap_or_default();
    assert!(reason.contains("train-images-idx3-ubyte"), "{reason}");
    assert_eq!(
        env.attempts(&records[0].job.id).len(),
        1,
        "a data error is not retried"
    );
}

#[test]
fn a_job_past_its_timeout_is_killed_and_failed() {
    let env = Env::new();
    let sweep = env.sweep("slow", 4096, 20, "  train.seed:\n    values: [3]\n");
    let out = env
        .command(&[
            "run",
            sweep.to_str().unwrap(),
            "--threads-per-job",
            "1",
            "--timeout-per-job",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let records = env.records("slow");
    assert_eq!(records[0].status, JobStatus::Failed, "{records:?}");
    let reason = records[0].last_error.as_deref().unwrap_or_default();
    assert!(reason.contains("timed out after 1 s"), "{reason}");
}

#[test]
fn sigterm_requeues_running_jobs_and_the_same_command_resumes() {
    let env = Env::new();
    let sweep = env.sweep("term", 512, 4, "  train.seed:\n    values: [5]\n");
    let mut run = env.spawn_run(&sweep, "term.log");
    let runner = wait_for_checkpointed_runner(&env, run.id());
    let stop = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = run.wait().unwrap();
    let log = std::fs::read_to_string(env.path("term.log")).unwrap();
    assert!(stop.elapsed() < Duration::from_secs(15), "{log}");
    assert_eq!(status.code(), Some(130), "{log}");
    assert!(!alive(runner), "{log}");
    let records = env.records("term");
    assert_eq!(records[0].status, JobStatus::Queued, "{records:?}\n{log}");

    let out = env.run(&sweep);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("resumed from the checkpoint"),
        "{}",
        text(&out)
    );
    assert_one_result_each(&env.records("term"));
}

#[test]
fn a_worker_trains_submitted_jobs_and_exits_when_idle() {
    let env = Env::new();
    let sweep = env.sweep("work", 32, 1, "  train.seed:\n    values: [0, 1]\n");
    env.submit(&sweep);
    let out = env
        .command(&["worker", "--exit-when-idle", "--threads-per-job", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_one_result_each(&env.records("work"));
}

#[test]
fn a_worker_until_idle_trains_the_jobs_and_exits_zero() {
    let env = Env::new();
    let sweep = env.sweep("idle", 32, 1, "  train.seed:\n    values: [0, 1]\n");
    env.submit(&sweep);
    let out = env
        .command(&["worker", "--until-idle", "1", "--threads-per-job", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_one_result_each(&env.records("idle"));
}

/// `--until-idle` ends a worker when nothing is left to claim, even while another worker still
/// runs a job (an array's task must not wait for its siblings); `--exit-when-idle` would wait.
#[test]
fn until_idle_does_not_wait_for_other_workers_jobs() {
    let env = Env::new();
    let sweep = env.sweep("others", 32, 1, "  train.seed:\n    values: [0, 1]\n");
    env.submit(&sweep);
    let held = env.store(async |s| {
        s.claim("elsewhere:a-worker", Duration::from_secs(3600))
            .await
            .unwrap()
            .expect("a queued job")
            .job
            .id
    });
    let out = env
        .command(&["worker", "--until-idle", "1", "--threads-per-job", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let records = env.records("others");
    for r in &records {
        let expected = if r.job.id == held {
            JobStatus::Running
        } else {
            JobStatus::Completed
        };
        assert_eq!(r.status, expected, "{records:?}\n{}", text(&out));
    }
}

#[test]
fn a_second_daemon_on_the_same_database_is_refused() {
    let env = Env::new();
    let sweep = env.sweep("d", 32, 1, "  train.seed:\n    values: [0]\n");
    env.submit(&sweep);
    let mut first = env
        .command(&["daemon", "--threads-per-job", "1"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !env
        .records("d")
        .iter()
        .all(|r| r.status == JobStatus::Completed)
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the daemon did not run the job"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let second = env.command(&["daemon"]).output().unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status();
    let status = first.wait().unwrap();
    assert!(!second.status.success(), "{}", text(&second));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another cg daemon"),
        "{}",
        text(&second)
    );
    assert_eq!(status.code(), Some(130));

    // A daemon creates and migrates a database that does not exist yet.
    let out = Command::new(CG)
        .args(["daemon", "--exit-when-idle", "--db"])
        .arg(env.path("new/fresh.db"))
        .env_remove("CG_DB")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(env.path("new/fresh.db").is_file());
}
