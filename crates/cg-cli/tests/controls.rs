//! Matched-compute controls end to end through `cg run` on tiny synthetic data: a sweep with
//! `controls: [static, narrow]` trains its configurations, then, once its front is known, one
//! static and one narrow plain ResNet per seed of each CosineGate configuration of the front; the
//! run returns only when those have completed, the sweep is finished, and `cg status` shows
//! them. A static control removes exactly the gated blocks its configurations close. A `cg run`
//! killed after the front's jobs finished and before it planned the controls (that state made in
//! the database) plans them on its next start, once, with the same ids.

#[allow(dead_code)] // the kill helpers serve other test files
mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use cg_core::{Control, JobRecord, JobStatus, ModelKind, STATIC_CLOSED};
use common::text;

const CG: &str = env!("CARGO_BIN_EXE_cg");

/// A ResNet-8 (block 0 gated; blocks 1 and 2 have stride 2) of width 4, two thresholds, two
/// seeds, one epoch on 32 synthetic images with 8 held out for validation.
const SWEEP: &str = "name: ctl
dataset: {kind: synthetic, val_size: 8, synthetic: {n_train: 40, n_test: 16, side: 8, channels: 3}}
model: {kind: cosinegate, depth: 8, width: 4}
train: {epochs: 1, batch_size: 16}
parameters:
  gate.threshold: {values: [0.5, 1.5]}
seeds: [0, 1]
controls: [static, narrow]
";

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let env = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(env.path("ctl.yaml"), SWEEP).unwrap();
        env
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
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

    fn run(&self) -> Output {
        self.command(&[
            "run",
            "ctl.yaml",
            "--threads-per-job",
            "1",
            "--workers",
            "2",
        ])
        .output()
        .unwrap()
    }

    fn store<T>(&self, f: impl AsyncFnOnce(&cg_store::Store) -> T) -> T {
        common::with_store(&self.path("cg.db"), f)
    }

    fn records(&self) -> Vec<JobRecord> {
        self.store(async |s| s.job_records("ctl").await.unwrap())
    }
}

/// The configuration a job belongs to: its params without `train.seed`, as JSON.
fn configuration(params: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut p = params.clone();
    p.remove("train.seed");
    serde_json::to_string(&p).unwrap()
}

/// Checks every control job against the configurations it lists: one control per seed of each,
/// the same seeds; a static one removes exactly the gated blocks (block 0 of a ResNet-8) whose
/// mean validation open rate over the configuration's seeds is at most 1 − STATIC_CLOSED.
fn check_controls(records: &[JobRecord]) {
    let mut runs: BTreeMap<String, Vec<&JobRecord>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.control().is_none()) {
        runs.entry(configuration(&r.job.params))
            .or_default()
            .push(r);
    }
    let controls: Vec<&JobRecord> = records.iter().filter(|r| r.control().is_some()).collect();
    assert!(!controls.is_empty(), "no control was planned");
    for control in &controls {
        assert_eq!(control.status, JobStatus::Completed, "{control:?}");
        let config = &control.job.config;
        assert_eq!(config.model.kind, ModelKind::Resnet);
        assert_eq!(config.train.stop_after, None);
        let of = control.job.params["control_of"].as_array().unwrap();
        assert!(!of.is_empty());
        for p in of {
            let seeds = &runs[&serde_json::to_string(p).unwrap()];
            assert!(
                seeds
                    .iter()
                    .any(|r| r.job.config.train.seed == config.train.seed)
            );
            assert!(
                seeds
                    .iter()
                    .all(|r| r.job.config.model.kind == ModelKind::Cosinegate)
            );
            match control.control().unwrap() {
                Control::Static => {
                    let open: Vec<f64> = seeds
                        .iter()
                        .map(|r| {
                            let gates = &r.result.as_ref().unwrap().gates;
                            gates
                                .iter()
                                .find(|g| g.block_idx == 0)
                                .unwrap()
                                .gate_open_rate
                        })
                        .collect();
                    let mean = open.iter().sum::<f64>() / open.len() as f64;
                    let closed = mean <= 1.0 - STATIC_CLOSED;
                    let expected: &[usize] = if closed { &[0] } else { &[] };
                    assert_eq!(config.model.removed_blocks, expected, "open rates {open:?}");
                    assert_eq!(config.model.width, 4);
                }
                Control::Narrow => {
                    assert_eq!(config.model.width, narrow_width(seeds), "{config:?}");
                    assert!(config.model.removed_blocks.is_empty());
                }
            }
        }
    }
    // One control of each kind per seed of every configuration listed, except where the narrow
    // network is the static one (nothing closed, closest width the same): that job serves both.
    for kind in ["static", "narrow"] {
        let mut seeds: Vec<(String, u64)> = controls
            .iter()
            .filter(|c| c.job.params["control"] == kind)
            .flat_map(|c| {
                let seed = c.job.config.train.seed;
                c.job.params["control_of"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(move |p| (serde_json::to_string(p).unwrap(), seed))
            })
            .collect();
        let n = seeds.len();
        seeds.sort();
        seeds.dedup();
        assert_eq!(
            seeds.len(),
            n,
            "{kind}: a configuration's seed has two controls"
        );
        let statics: Vec<&&JobRecord> = controls
            .iter()
            .filter(|c| c.job.params["control"] == "static")
            .collect();
        for (of, configuration) in &runs {
            let listed = seeds.iter().filter(|(o, _)| o == of).count();
            let shared = kind == "narrow"
                && narrow_width(configuration) == 4
                && statics
                    .iter()
                    .any(|c| c.job.config.model.removed_blocks.is_empty());
            if listed == 0 && shared {
                continue;
            }
            assert_eq!(listed, configuration.len(), "{kind}: {of}");
        }
    }
}

/// The narrow width of a configuration, as cg-daemon plans it: the closest plain-ResNet MACs to
/// the mean nominal MACs over its seeds (3 channels, side 8).
fn narrow_width(seeds: &[&JobRecord]) -> usize {
    let nominal = seeds
        .iter()
        .map(|r| r.result.as_ref().unwrap().macs_executed_nominal)
        .sum::<f64>()
        / seeds.len() as f64;
    cg_daemon::closest_width(&seeds[0].job.config.model, 3, 8, nominal)
}

#[test]
fn run_trains_the_controls_of_the_front_and_finishes_the_sweep() {
    let env = Env::new();
    let out = env.run();
    assert!(out.status.success(), "{}", text(&out));
    let records = env.records();
    let plain = records.iter().filter(|r| r.control().is_none()).count();
    assert_eq!(plain, 4);
    assert!(records.len() > 4, "{records:#?}");
    check_controls(&records);
    let summary = env.store(async |s| s.sweep("ctl").await.unwrap());
    assert!(
        summary.has_finished() && !summary.controls_pending,
        "{summary:?}"
    );

    let status = env.command(&["status", "ctl"]).output().unwrap();
    assert!(status.status.success(), "{}", text(&status));
    let stdout = String::from_utf8_lossy(&status.stdout);
    let n = records.len() - plain;
    assert!(
        stdout.contains(&format!(
            "controls (static, narrow): {n} job(s), {n} completed"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("(finished)"), "{stdout}");
    assert!(stdout.contains("control=\"static\""), "{stdout}");

    // Running the file again adds nothing: not the sweep's jobs, not its controls.
    let again = env.run();
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(env.records().len(), records.len());
}

/// Puts the database in the state a coordinator killed after the front's last result, before it
/// planned the controls, leaves: no control job, controls pending, the sweep not finished.
fn forget_controls(env: &Env) {
    use sqlx::Connection;
    let url = format!("sqlite:{}", env.path("cg.db").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        for sql in [
            "PRAGMA foreign_keys = ON",
            "DELETE FROM jobs WHERE id IN (SELECT job_id FROM sweep_jobs \
             WHERE params LIKE '%\"control\":%')",
            "UPDATE sweeps SET controls_pending = 1, finished_at_ms = NULL, \
             final_report_by = NULL, final_report_at_ms = NULL, final_report_done_ms = NULL",
        ] {
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
        conn.close().await.unwrap();
    });
}

#[test]
fn a_run_killed_before_planning_the_controls_plans_them_on_its_next_start_once() {
    let env = Env::new();
    let out = env.run();
    assert!(out.status.success(), "{}", text(&out));
    let first = env.records();
    let control_ids = |records: &[JobRecord]| -> Vec<String> {
        let mut ids: Vec<String> = records
            .iter()
            .filter(|r| r.control().is_some())
            .map(|r| r.job.id.clone())
            .collect();
        ids.sort();
        ids
    };
    let planned = control_ids(&first);
    assert!(!planned.is_empty());

    forget_controls(&env);
    let records = env.records();
    assert_eq!(records.len(), 4, "{records:#?}");
    let summary = env.store(async |s| s.sweep("ctl").await.unwrap());
    assert!(
        summary.controls_pending && !summary.has_finished(),
        "{summary:?}"
    );
    let status = env.command(&["status", "ctl"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&status.stdout)
            .contains("controls (static, narrow): planned once the front is known"),
        "{}",
        text(&status)
    );

    // The next start plans the same controls (same ids), trains them once, finishes.
    let out = env.run();
    assert!(out.status.success(), "{}", text(&out));
    let records = env.records();
    assert_eq!(control_ids(&records), planned);
    check_controls(&records);
    for r in records.iter().filter(|r| r.control().is_some()) {
        let attempts = env.store(async |s| s.attempts(&r.job.id).await.unwrap());
        assert_eq!(attempts.len(), 1, "{attempts:?}");
    }
    let summary = env.store(async |s| s.sweep("ctl").await.unwrap());
    assert!(summary.has_finished(), "{summary:?}");
}
