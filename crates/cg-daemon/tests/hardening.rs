//! What the local workers do with what they read from a shared store, and how a dying job runner
//! is reported. A scripted runner stands in for `cg job-runner` (it speaks the real protocol), and
//! the store is a real SQLite file written as another machine of a shared queue could write it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cg_core::{DatasetKind, DatasetSpec, JobSpec, JobStatus, RunConfig};
use cg_daemon::{Event, LocalOptions, Slot, run_local};
use cg_store::{Store, SubmitOptions};
use tokio::sync::{mpsc, watch};

/// Logs its arguments, then (mode `panic`) dies as a panicking Rust binary does, or (mode `ok`)
/// fails cleanly with a data error.
const RUNNER: &str = r#"#!/bin/bash
read -r _config
echo "args=[$*]" >> "@DIR@/calls.log"
if [ "@MODE@" = panic ]; then
    echo "epoch 1/2 ..." >&2
    echo "thread 'main' panicked at crates/cg-model/src/train.rs:512:9:" >&2
    echo "attempt to multiply with overflow" >&2
    echo "note: run with \`RUST_BACKTRACE=1\` environment variable to display a backtrace" >&2
    exit 101
fi
echo '{"type":"failed","kind":"data","message":"scripted"}'
exit 1
"#;

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
}

fn config() -> RunConfig {
    RunConfig::with_dataset(DatasetSpec {
        kind: DatasetKind::Synthetic,
        val_size: None,
        path: None,
        augment: None,
        synthetic: None,
    })
}

impl Fixture {
    /// A store with the sweep `s` holding `ids` (written straight into the queue, as any machine
    /// sharing it could), each with one attempt.
    async fn new(mode: &str, jobs: Vec<JobSpec>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let runner = dir.path().join("runner.sh");
        let script = RUNNER
            .replace("@DIR@", &dir.path().to_string_lossy())
            .replace("@MODE@", mode);
        std::fs::write(&runner, script).unwrap();
        std::fs::set_permissions(&runner, std::fs::Permissions::from_mode(0o755)).unwrap();
        let store = Store::open(dir.path().join("cg.db").as_path())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let info = cg_core::SweepInfo {
            name: "s".into(),
            objectives: cg_core::SweepInfo::default_objectives(),
            reference_point: vec![0.0, 0.0],
            axes: vec![],
            controls: Vec::new(),
        };
        let options = SubmitOptions {
            max_attempts: 1,
            ..SubmitOptions::default()
        };
        store
            .submit_sweep("s", "name: s\n", &info, &jobs, &options)
            .await
            .unwrap();
        Self { dir, store }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    async fn run(&self) -> Vec<Event> {
        let mut options = LocalOptions::new(self.path("runner.sh"), vec!["job-runner".into()]);
        options.slots = vec![Slot::Cpu];
        options.runs_dir = self.path("runs");
        options.sweep = Some("s".into());
        options.poll = Duration::from_millis(50);
        options.max_consecutive_failures = None;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (_stop, stop_rx) = watch::channel(false);
        tokio::time::timeout(
            Duration::from_secs(120),
            run_local(self.store.clone(), options, tx, stop_rx),
        )
        .await
        .expect("the sweep finished in time")
        .unwrap();
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        events
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn job(id: &str, config: RunConfig) -> JobSpec {
    JobSpec {
        id: id.to_string(),
        params: Default::default(),
        config,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_and_configs_from_the_store_are_checked_before_use() {
    let outside = tempfile::tempdir().unwrap();
    let absolute = outside.path().join("planted");
    let mut wide = config();
    wide.model.width = 4_294_967_296;
    let mut batch_of_one = config();
    batch_of_one.train.batch_size = 1;
    let hostile = [
        absolute.to_string_lossy().into_owned(),
        "../escaped".to_string(),
        "--device".to_string(),
        "a/b".to_string(),
        ".hidden".to_string(),
        "x\ny".to_string(),
    ];
    let mut jobs: Vec<JobSpec> = hostile.iter().map(|id| job(id, config())).collect();
    jobs.push(job("wide", wide));
    jobs.push(job("batch-of-one", batch_of_one));
    jobs.push(job("0123456789abcdef", config()));
    let f = Fixture::new("ok", jobs).await;
    let events = f.run().await;

    // Only the plain job reached a runner, in its own directory under runs/.
    let calls = f.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].contains("--job-id 0123456789abcdef"), "{calls:?}");
    assert!(!absolute.exists(), "a path from the store was written to");
    assert!(!f.path("escaped").exists());
    let runs: Vec<String> = std::fs::read_dir(f.path("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(runs, ["0123456789abcdef"]);

    for r in f.store.job_records("s").await.unwrap() {
        assert_eq!(r.status, JobStatus::Failed, "{r:?}");
        let error = r.last_error.unwrap_or_default();
        if r.job.id == "0123456789abcdef" {
            assert_eq!(error, "scripted");
        } else if r.job.id == "wide" {
            assert!(
                error.starts_with("refused: the job's configuration"),
                "{error}"
            );
            assert!(
                error.contains("model.width: must be at most 1024"),
                "{error}"
            );
        } else if r.job.id == "batch-of-one" {
            assert!(error.contains("train.batch_size"), "{error}");
        } else {
            assert!(
                error.starts_with("refused: the job id"),
                "{}: {error}",
                r.job.id
            );
        }
    }
    let refused = events
        .iter()
        .filter(|e| matches!(e, Event::Failed { error, .. } if error.starts_with("refused")))
        .count();
    assert_eq!(refused, hostile.len() + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_panic_is_reported_by_its_message() {
    let f = Fixture::new("panic", vec![job("p1", config())]).await;
    f.run().await;
    let record = f.store.job_record("p1").await.unwrap();
    let error = record.last_error.unwrap();
    assert_eq!(record.status, JobStatus::Failed);
    assert!(
        error.ends_with(
            "panicked at crates/cg-model/src/train.rs:512:9: attempt to multiply with overflow"
        ),
        "{error}"
    );
    assert!(!error.contains("RUST_BACKTRACE"), "{error}");
    let attempts = f.store.attempts("p1").await.unwrap();
    let attempt_error = attempts[0].error.as_deref().unwrap_or_default();
    assert!(
        attempt_error.contains("attempt to multiply"),
        "{attempt_error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_directories_follow_the_database_permissions() {
    for (db_mode, dir_mode) in [(0o600, 0o700), (0o640, 0o750)] {
        let f = Fixture::new("ok", vec![job("m1", config())]).await;
        std::fs::set_permissions(f.path("cg.db"), std::fs::Permissions::from_mode(db_mode))
            .unwrap();
        f.run().await;
        let mode = std::fs::metadata(f.path("runs/m1"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, dir_mode, "database {db_mode:o}");
        assert_mode(&f.path("cg.db"), db_mode);
    }
}

fn assert_mode(path: &Path, mode: u32) {
    let got = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(got, mode, "{}", path.display());
}
