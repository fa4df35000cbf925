//! `cg slurm submit` end to end: the batch script of `--dry-run`, the refusal of a SQLite file
//! on a network file system, and, against a real one-node Slurm cluster (`.ci/slurm.sh`) and a
//! real PostgreSQL (`.ci/postgres.sh`), a grid run by an array of two worker tasks.
//!
//! The cluster tests run when `CG_TEST_SLURM` and `CG_TEST_PG_URL` are set; without them they
//! pass after saying so on stderr.

#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cg_core::JobStatus;
use common::{PgSchema, text};

const CG: &str = env!("CARGO_BIN_EXE_cg");

/// How long the cluster may take to run the whole grid.
const TIMEOUT: Duration = Duration::from_secs(300);

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

    /// A grid of `seeds` jobs on a tiny synthetic set.
    fn sweep(&self, name: &str, seeds: usize) -> PathBuf {
        self.sweep_sized(name, seeds, 64, 2)
    }

    /// A grid of `seeds` jobs of `epochs` epochs over `n_train` synthetic images.
    fn sweep_sized(&self, name: &str, seeds: usize, n_train: usize, epochs: usize) -> PathBuf {
        let seeds: Vec<String> = (0..seeds).map(|s| s.to_string()).collect();
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

    fn cg(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(CG);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("CG_DB")
            .env_remove("CG_TEST_FS_MAGIC");
        cmd
    }

    /// `cg slurm submit` of an array of two one-CPU workers that stop after `until_idle` seconds
    /// with nothing to claim, which must succeed; the Slurm job id.
    fn array_of_two(&self, sweep: &Path, db: &str, until_idle: u32) -> String {
        let idle = until_idle.to_string();
        let args = [
            "--workers",
            "2",
            "--until-idle",
            &idle,
            "--cpus-per-worker",
            "1",
        ];
        let out = self.slurm_submit(sweep, db, &args);
        assert!(out.status.success(), "{}", text(&out));
        job_id(&out)
    }

    fn slurm_submit(&self, sweep: &Path, db: &str, extra: &[&str]) -> Output {
        let mut args = vec!["slurm", "submit", sweep.to_str().unwrap(), "--db", db];
        args.extend_from_slice(extra);
        self.cg(&args).output().unwrap()
    }
}

#[test]
fn dry_run_prints_the_script_and_touches_nothing() {
    let env = Env::new();
    let sweep = env.sweep("dry", 3);
    let out = env.slurm_submit(
        &sweep,
        "cg.db",
        &[
            "--workers",
            "3",
            "--cpus-per-worker",
            "2",
            "--time",
            "01:00:00",
            "--sbatch-arg=--mem=4G",
            "--dry-run",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let script = String::from_utf8(out.stdout).unwrap();
    let runs = env.dir.path().canonicalize().unwrap().join("runs");
    for line in [
        "#!/bin/bash".to_string(),
        "#SBATCH --job-name=cg-dry".into(),
        "#SBATCH --array=0-2".into(),
        "#SBATCH --signal=B:TERM@120".into(),
        "#SBATCH --requeue".into(),
        "#SBATCH --cpus-per-task=2".into(),
        "#SBATCH --time=01:00:00".into(),
        "#SBATCH --mem=4G".into(),
        format!("#SBATCH --output={}/slurm/cg-dry-%A_%a.out", runs.display()),
    ] {
        assert!(
            script.lines().any(|l| l == line),
            "no line {line:?} in\n{script}"
        );
    }
    let exec = script.lines().last().unwrap();
    assert!(exec.starts_with("exec '/"), "{exec}");
    assert!(
        exec.ends_with(&format!(
            "worker --db \"$CG_DB\" --runs-dir '{}' --until-idle 60 --lease 60 --gpus none \
             --workers 1 --threads-per-job 2",
            runs.display()
        )),
        "{exec}"
    );
    assert!(!env.path("cg.db").exists(), "a dry run made the database");
    assert!(!env.path("runs").exists(), "a dry run wrote the script");
}

#[test]
fn a_sqlite_file_on_a_network_file_system_is_refused_for_many_workers() {
    let env = Env::new();
    let sweep = env.sweep("nfs", 2);
    let nfs = |workers: &str, db: &str| {
        env.cg(&[
            "slurm",
            "submit",
            sweep.to_str().unwrap(),
            "--db",
            db,
            "--workers",
            workers,
            "--dry-run",
        ])
        .env("CG_TEST_FS_MAGIC", "6969")
        .output()
        .unwrap()
    };
    let out = nfs("2", "cg.db");
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("network file system (NFS)") && err.contains("PostgreSQL"),
        "{err}"
    );
    assert!(!env.path("cg.db").exists());
    // One worker on it, or a PostgreSQL URL, is allowed.
    assert!(nfs("1", "cg.db").status.success());
    assert!(
        nfs("2", "postgres://u@127.0.0.1:1/db").status.success(),
        "a URL is not a file"
    );
}

/// The cluster and the database, or `None` after saying why the test is skipped.
fn cluster() -> Option<PgSchema> {
    if std::env::var_os("CG_TEST_SLURM").is_none() {
        eprintln!("skipped: set CG_TEST_SLURM (see .ci/slurm.sh) to run against Slurm");
        return None;
    }
    PgSchema::new("cg_slurm")
}

/// Waits until Slurm no longer lists job `job` in its queue.
fn wait_array_ended(job: &str) {
    let start = Instant::now();
    loop {
        let out = Command::new("squeue")
            .args(["-h", "-r", "-j", job, "-o", "%i %T"])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&out.stdout);
        if listed.trim().is_empty() {
            return;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "the array {job} did not end:\n{listed}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_grid_runs_on_an_array_of_two_workers() {
    let Some(pg) = cluster() else { return };
    let env = Env::new();
    let sweep = env.sweep("array", 6);
    let job = env.array_of_two(&sweep, &pg.url, 3);
    let recorded = pg.with_store(async |s| s.slurm_jobs("array").await.unwrap());
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].slurm_job, job);
    assert_eq!(recorded[0].workers, 2);

    wait_array_ended(&job);
    let records = pg.with_store(async |s| s.job_records("array").await.unwrap());
    assert_eq!(records.len(), 6);
    let logs = || {
        std::fs::read_dir(env.path("runs/slurm"))
            .unwrap()
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    for r in &records {
        assert_eq!(r.status, JobStatus::Completed, "{r:?}\n{}", logs());
        let attempts = pg.with_store(async |s| s.attempts(&r.job.id).await.unwrap());
        assert_eq!(attempts.len(), 1, "a job ran twice: {attempts:?}");
    }
    assert!(
        env.path("reports/array/report.md").is_file(),
        "no report was written:\n{}",
        logs()
    );
    let status = env
        .cg(&["status", "array", "--db", &pg.url])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(
        shown.contains(&format!("Slurm job {job} (2 worker task(s)")),
        "{shown}"
    );
}

/// The Slurm job id that `cg slurm submit` printed.
fn job_id(out: &Output) -> String {
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    said.strip_prefix("Slurm job ")
        .and_then(|s| s.split(':').next())
        .unwrap_or_else(|| panic!("no job id in {said:?}"))
        .to_string()
}

/// A task told to stop (as a time limit or a preemption does) puts its job back in the queue;
/// the other task completes it: every job ends with one completed attempt, and the stopped one
/// is logged as requeued.
#[test]
fn a_task_stopped_by_sigterm_gives_its_job_back() {
    let Some(pg) = cluster() else { return };
    let env = Env::new();
    let sweep = env.sweep_sized("preempt", 4, 512, 6);
    let job = env.array_of_two(&sweep, &pg.url, 5);
    // Both tasks training.
    let start = Instant::now();
    loop {
        let running = pg.with_store(async |s| {
            s.job_records("preempt")
                .await
                .unwrap()
                .iter()
                .filter(|r| r.status == JobStatus::Running)
                .count()
        });
        if running == 2 {
            break;
        }
        assert!(start.elapsed() < TIMEOUT, "two tasks never trained at once");
        std::thread::sleep(Duration::from_millis(100));
    }
    let cancel = Command::new("scancel")
        .args(["--signal=TERM", "--full", &format!("{job}_0")])
        .output()
        .unwrap();
    assert!(cancel.status.success(), "{}", text(&cancel));

    wait_array_ended(&job);
    let records = pg.with_store(async |s| s.job_records("preempt").await.unwrap());
    let mut requeued = 0;
    for r in &records {
        let attempts = pg.with_store(async |s| s.attempts(&r.job.id).await.unwrap());
        assert_eq!(r.status, JobStatus::Completed, "{r:?} {attempts:?}");
        let outcomes: Vec<&str> = attempts.iter().map(|a| a.outcome.as_str()).collect();
        assert_eq!(
            outcomes.iter().filter(|o| **o == "completed").count(),
            1,
            "{outcomes:?}"
        );
        requeued += outcomes.iter().filter(|o| **o == "requeued").count();
    }
    assert_eq!(
        requeued, 1,
        "the stopped task's job was not logged as requeued"
    );
}

/// A `method: mo-asha` search of 6 configurations run by two array tasks: it finishes, every
/// rung promotes at most ⌊n/eta⌋ of the n results it took, and no job ran twice.
#[test]
fn a_search_runs_on_an_array_within_its_rung_bounds() {
    let Some(pg) = cluster() else { return };
    let env = Env::new();
    let sweep = env.path("moa.yaml");
    std::fs::write(
        &sweep,
        "name: moa\n\
         method: mo-asha\n\
         n_samples: 6\n\
         fidelity: {min_epochs: 1, max_epochs: 4, eta: 2}\n\
         sampler: random\n\
         seed: 5\n\
         dataset: {kind: synthetic, synthetic: {n_train: 64, n_test: 16, side: 8, channels: 3}}\n\
         model: {depth: 8, width: 4}\n\
         train: {batch_size: 16}\n\
         parameters:\n  gate.threshold: {values: [0.5, 0.75, 1.0, 1.25, 1.5, 2.0]}\n\
         objectives:\n\
         \x20 - {metric: test_acc_final, direction: maximize}\n\
         \x20 - {metric: macs_executed_nominal, direction: minimize}\n\
         reference_point: [0.0, 1.0e9]\n",
    )
    .unwrap();
    wait_array_ended(&env.array_of_two(&sweep, &pg.url, 5));

    let (unfinished, decisions, log) = pg.with_store(async |s| {
        (
            s.unfinished_searches().await.unwrap(),
            s.search_decisions("moa").await.unwrap(),
            s.search_log("moa").await.unwrap(),
        )
    });
    assert!(
        !unfinished.contains(&"moa".to_string()),
        "the search did not finish"
    );
    // Results taken at each rung, and promotions out of it.
    let mut taken = std::collections::BTreeMap::<u64, u64>::new();
    let mut promoted = std::collections::BTreeMap::<u64, u64>::new();
    for r in &log {
        *taken.entry(r.rung).or_default() += 1;
    }
    for d in &decisions {
        if d.kind == cg_core::DecisionKind::Promote {
            *promoted.entry(d.rung - 1).or_default() += 1;
        }
    }
    assert_eq!(taken.get(&0), Some(&6), "{log:?}");
    for (rung, n) in &promoted {
        let n_taken = taken.get(rung).copied().unwrap_or(0);
        assert!(
            *n <= n_taken / 2,
            "rung {rung}: {n} promotions of {n_taken}"
        );
    }
    let records = pg.with_store(async |s| s.job_records("moa").await.unwrap());
    for r in &records {
        let attempts = pg.with_store(async |s| s.attempts(&r.job.id).await.unwrap());
        assert_eq!(attempts.len(), 1, "{r:?} {attempts:?}");
    }
}
