//! `method: mo-asha` end to end with `cg run` on tiny synthetic jobs and one worker: the search
//! finishes and `cg run` exits 0; a `cg run` killed with -9 mid-search and started again makes
//! the same decisions, into its own database and runs folder, as an uninterrupted run.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cg_core::{DecisionKind, JobStatus};
use cg_store::{DecisionRow, HvRow, Store};
use common::{kill9, runners_of, text, wait_dead};

const CG: &str = env!("CARGO_BIN_EXE_cg");

const SWEEP: &str = "name: moa
method: mo-asha
n_samples: 6
fidelity: {min_epochs: 1, max_epochs: 4, eta: 2}
sampler: nsga2
seed: 11
dataset: {kind: synthetic, synthetic: {n_train: 384, n_test: 64, side: 16, channels: 3}}
model: {depth: 8, width: 4}
train: {batch_size: 16}
parameters:
  gate.threshold: {values: [0.5, 0.75, 1.0, 1.25]}
  loss.flops_weight: {min: 0.05, max: 2.0, distribution: log_uniform_values}
objectives:
  - {metric: test_acc_final, direction: maximize}
  - {metric: macs_executed_nominal, direction: minimize}
reference_point: [0.0, 1.0e9]
";

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self::with(SWEEP)
    }

    /// A folder with `text` as `moa.yaml`.
    fn with(text: &str) -> Self {
        let env = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(env.path("moa.yaml"), text).unwrap();
        env
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(CG);
        cmd.args([
            "run",
            "moa.yaml",
            "--threads-per-job",
            "1",
            "--workers",
            "1",
        ])
        .arg("--db")
        .arg(self.path("cg.db"))
        .current_dir(self.dir.path())
        .env_remove("CG_DB");
        cmd
    }

    fn store<T>(&self, f: impl AsyncFnOnce(&cg_store::Store) -> T) -> T {
        common::with_store(&self.path("cg.db"), f)
    }

    fn decisions(&self) -> Vec<DecisionRow> {
        self.store(async |s| s.search_decisions("moa").await.unwrap())
    }

    fn hv(&self) -> Vec<HvRow> {
        self.store(async |s| s.hv_history("moa").await.unwrap())
    }
}

/// What must agree between two runs: everything but the times.
fn key(d: &[DecisionRow]) -> Vec<(DecisionKind, u64, u64, u64, String, Option<u64>)> {
    d.iter()
        .map(|d| {
            (
                d.kind,
                d.config,
                d.rung,
                d.epochs,
                d.job_id.clone(),
                d.from_seq,
            )
        })
        .collect()
}

#[test]
fn a_killed_search_resumes_with_the_decisions_of_an_uninterrupted_one() {
    // Uninterrupted.
    let a = Env::new();
    let out = a.command().output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let decisions = a.decisions();
    let count = |kind: DecisionKind| decisions.iter().filter(|d| d.kind == kind).count();
    assert_eq!(count(DecisionKind::Draw), 6, "{decisions:?}");
    // Rungs 1, 2, 4 epochs, eta 2: at most 3 go on to rung 2 and 1 to rung 4.
    assert!(
        count(DecisionKind::Promote) >= 1 && count(DecisionKind::Promote) <= 3 + 1,
        "{decisions:?}"
    );
    let done = a.store(async |s| {
        assert!(cg_daemon::search_finished(s, "moa").await.unwrap());
        s.job_records("moa").await.unwrap()
    });
    assert_eq!(done.len(), 6 + count(DecisionKind::Promote));
    for r in &done {
        assert_eq!(r.status, JobStatus::Completed, "{r:?}");
        let result = r.result.as_ref().unwrap();
        let end = r.job.config.train.end_epoch();
        assert_eq!(result.history.len(), end, "{:?}", r.job.params);
        assert_eq!(r.job.config.train.epochs, 4);
    }
    // Every result is taken once, and the hypervolume is recorded after each one.
    let hv = a.hv();
    assert_eq!(hv.len(), done.len());
    // 6 configurations × 1 epoch, 3 × (2 − 1) more, 1 × (4 − 2) more.
    let bound = 6 + 3 + 2;
    assert!(hv.last().unwrap().epochs_spent as usize <= bound, "{hv:?}");
    assert!(
        hv.windows(2)
            .all(|w| w[0].epochs_spent <= w[1].epochs_spent)
    );
    assert!(hv.last().unwrap().hypervolume > 0.0, "{hv:?}");

    // The report: the front from the top rung only, the stopped configurations with their rung,
    // and the hypervolume history.
    let report = a.path("reports/moa");
    let front = std::fs::read_to_string(report.join("front.csv")).unwrap();
    let top = decisions
        .iter()
        .filter(|d| d.kind == DecisionKind::Promote && d.rung == 2)
        .count();
    assert_eq!(front.lines().count(), 1 + top, "{front}");
    let stopped = std::fs::read_to_string(report.join("stopped.csv")).unwrap();
    assert!(stopped.starts_with("job_id,"), "{stopped}");
    assert!(stopped.lines().next().unwrap().contains("stopped_at_rung"));
    assert_eq!(
        stopped.lines().count(),
        1 + count(DecisionKind::Stop),
        "{stopped}"
    );
    let history = std::fs::read_to_string(report.join("hv_history.csv")).unwrap();
    assert_eq!(history.lines().count(), 1 + hv.len(), "{history}");
    assert!(report.join("hv_history.png").is_file());
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("## Search (mo-asha)"), "{md}");
    assert!(md.contains("top rung (4 epochs)"), "{md}");

    // Killed with -9 once its search has taken two results, then the same command again.
    let b = Env::new();
    kill_after(&b, 2);
    let out = b.command().output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(key(&b.decisions()), key(&decisions));
    let (ha, hb) = (a.hv(), b.hv());
    assert_eq!(ha.len(), hb.len());
    for (x, y) in ha.iter().zip(&hb) {
        assert_eq!((x.seq, x.epochs_spent), (y.seq, y.epochs_spent));
        assert_eq!(x.hypervolume, y.hypervolume);
    }
}

/// Runs `cg run` in `b` and kills it with -9 once its search has taken `after` results (and its
/// orphaned job runners are gone).
fn kill_after(b: &Env, after: usize) {
    let log = std::fs::File::create(b.path("first.log")).unwrap();
    let mut child = b
        .command()
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < Duration::from_secs(300), "no progress");
        let taken = if b.path("cg.db").is_file() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let Ok(store) = Store::open_existing(&b.path("cg.db")).await else {
                    return 0;
                };
                let n = store.search_log("moa").await.map(|l| l.len()).unwrap_or(0);
                store.close().await;
                n
            })
        } else {
            0
        };
        if taken >= after {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let runners = runners_of(child.id());
    let finished = b.store(async |s| cg_daemon::search_finished(s, "moa").await.unwrap());
    assert!(
        !finished,
        "the search ended before the kill: make its jobs longer"
    );
    kill9(child.id());
    let _ = child.wait();
    wait_dead(child.id(), "cg run");
    // Its job runner sees its parent go and stops.
    for pid in runners {
        wait_dead(pid, "an orphaned job runner");
    }
}

/// The search of [`SWEEP`] with two training seeds per configuration, and fewer configurations.
fn seeded_sweep() -> String {
    SWEEP.replace("n_samples: 6\n", "n_samples: 4\nseeds: [5, 9]\n")
}

/// `cg sweep plan` on a search with seeds says what they do and lists each first draw's job per
/// seed.
#[test]
fn a_seeded_search_plans_its_jobs_per_seed() {
    let env = Env::with(&seeded_sweep());
    let out = Command::new(CG)
        .args(["sweep", "plan", "moa.yaml", "--no-data-check"])
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains("seeds: each configuration trains once per seed (5, 9)"),
        "{plan}"
    );
    assert!(plan.contains("train.seed"), "{plan}");
    assert!(
        plan.contains("first draws (4 of the 4 drawn before any result"),
        "{plan}"
    );
    // Two rows per draw: its job for seed 5, then for seed 9.
    let table = plan
        .split("train.seed\n")
        .nth(1)
        .expect("the table of first draws");
    let seeds: Vec<&str> = table
        .lines()
        .map_while(|l| l.split_whitespace().last())
        .collect();
    assert_eq!(seeds, ["5", "9", "5", "9", "5", "9", "5", "9"], "{plan}");
}

/// A search whose configurations train with two seeds, run with `cg run`: every decision covers
/// both seeds' jobs, and a run killed with -9 and started again makes the same decisions.
#[test]
fn a_seeded_search_decides_per_configuration_and_resumes_after_kill() {
    let file = seeded_sweep();
    let a = Env::with(&file);
    let out = a.command().output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let decisions = a.decisions();
    let done = a.store(async |s| {
        assert!(cg_daemon::search_finished(s, "moa").await.unwrap());
        s.job_records("moa").await.unwrap()
    });
    let seed_of = |job: &str| {
        let r = done
            .iter()
            .find(|r| r.job.id == job)
            .expect("a job of the sweep");
        r.job.config.train.seed
    };
    // One row per decision and seed: seed 5's job, then seed 9's, of the same configuration.
    assert_eq!(decisions.len() % 2, 0);
    for pair in decisions.chunks(2) {
        assert_eq!(
            (pair[0].kind, pair[0].config, pair[0].rung),
            (pair[1].kind, pair[1].config, pair[1].rung)
        );
        assert_eq!((seed_of(&pair[0].job_id), seed_of(&pair[1].job_id)), (5, 9));
    }
    let draws = decisions
        .iter()
        .filter(|d| d.kind == DecisionKind::Draw)
        .count();
    assert_eq!(draws, 4 * 2);
    // Every job trained was submitted by a decision (no seed goes on alone).
    let submitted = decisions
        .iter()
        .filter(|d| d.kind != DecisionKind::Stop)
        .count();
    assert_eq!(done.len(), submitted);
    // `cg status` counts configurations, not their seeds' rows.
    let out = Command::new(CG)
        .args(["status", "moa", "--db"])
        .arg(a.path("cg.db"))
        .env_remove("CG_DB")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(status.contains("4 configuration(s) drawn"), "{status}");

    let b = Env::with(&file);
    kill_after(&b, 3);
    let out = b.command().output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(key(&b.decisions()), key(&decisions));
    let (ha, hb) = (a.hv(), b.hv());
    assert_eq!(ha.len(), hb.len());
    for (x, y) in ha.iter().zip(&hb) {
        assert_eq!((x.seq, x.epochs_spent), (y.seq, y.epochs_spent));
        assert_eq!(x.hypervolume, y.hypervolume);
    }
}
