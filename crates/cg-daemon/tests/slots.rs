//! The local workers' GPU slots, with a scripted job runner standing in for `cg job-runner` (this
//! machine has no GPU): each child is pinned to its GPU through `CUDA_VISIBLE_DEVICES` and told
//! `cuda:0`; a GPU whose jobs run out of memory gets fewer of them at once and every job still
//! completes. The script speaks the real child protocol and the store is a real SQLite file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cg_core::{JobStatus, Provenance, RunConfig, RunResult};
use cg_daemon::{
    Event, LocalOptions, Slot, check_gpus, gpu_slots, parse_visible_devices, run_local,
    submit_sweep,
};
use cg_store::{AttemptOutcome, Store, SubmitOptions};
use cg_sweep::{LoadOptions, load_sweep};
use tokio::sync::{mpsc, watch};

/// A job runner: records how it was started, holds a place on its "GPU" for a moment and
/// reports a result, or fails with CUDA's out-of-memory message when more than `CAPACITY` runners
/// hold that GPU at once. With `WAVE` > 0 the first `WAVE` runners wait for each other and then
/// all run out of memory, the k-th to arrive 0.5·k s after the others have met, so that each
/// failure but the last happens while the later ones still run. With `LONG` > 0 the first runner
/// holds its GPU for `LONG` s whatever it holds, and the others start only once it has.
const RUNNER: &str = r#"#!/bin/bash
set -u
FAKE_DIR="@DIR@"
FAKE_CAPACITY=@CAPACITY@
WAVE=@WAVE@
LONG=@LONG@
if [ "$1" = device-check ]; then
    case "$CUDA_VISIBLE_DEVICES" in GPU-dead*)
        echo "thread 'main' panicked: Unable to dynamically load the cuda shared library" >&2
        exit 101
    esac
    echo "ok: $*"
    exit 0
fi
read -r _config
echo "visible=[$CUDA_VISIBLE_DEVICES] args=[$*]" >> "$FAKE_DIR/calls.log"
gpu="$FAKE_DIR/gpu-${CUDA_VISIBLE_DEVICES:-cpu}"
mkdir -p "$gpu"
touch "$gpu/$$"
oom() {
    rm -f "$gpu/$$"
    echo "RuntimeError: CUDA out of memory ($1)" >&2
    echo '{"type":"failed","kind":"other","message":"device error: CUDA_ERROR_OUT_OF_MEMORY"}'
    exit 1
}
if [ "$WAVE" -gt 0 ] && [ ! -e "$FAKE_DIR/wave-met" ]; then
    k=1
    until mkdir "$FAKE_DIR/arrived-$k" 2>/dev/null; do k=$((k + 1)); done
    for _ in $(seq 400); do
        [ "$(ls -d "$FAKE_DIR"/arrived-* | wc -l)" -ge "$WAVE" ] && break
        sleep 0.05
    done
    touch "$FAKE_DIR/wave-met"
    sleep "$((k / 2)).$((k % 2 * 5))"
    oom "first wave, arrived $k of $WAVE"
fi
if [ "$LONG" != 0 ]; then
    if mkdir "$FAKE_DIR/long-taken" 2>/dev/null; then
        touch "$FAKE_DIR/long-started"
        sleep "$LONG"
        rm -f "$gpu/$$"
        cat "$FAKE_DIR/done.json"
        exit 0
    fi
    for _ in $(seq 400); do [ -e "$FAKE_DIR/long-started" ] && break; sleep 0.02; done
fi
held=$(ls "$gpu" | wc -l)
if [ "$held" -gt "$FAKE_CAPACITY" ]; then
    oom "fake GPU holds $FAKE_CAPACITY job(s), $held tried"
fi
sleep 0.3
rm -f "$gpu/$$"
cat "$FAKE_DIR/done.json"
"#;

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
}

impl Fixture {
    /// `jobs` queued jobs of `max_attempts` each; the runner's GPUs hold `capacity` jobs each,
    /// after a first `wave` of runners that all run out of memory (0: none); with `long`, the
    /// first job holds its GPU for 3 s.
    async fn new(jobs: usize, capacity: usize, wave: usize, long: bool, max_attempts: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let runner = dir.path().join("runner.sh");
        let script = RUNNER
            .replace("@DIR@", &dir.path().to_string_lossy())
            .replace("@CAPACITY@", &capacity.to_string())
            .replace("@WAVE@", &wave.to_string())
            .replace("@LONG@", if long { "3" } else { "0" });
        std::fs::write(&runner, script).unwrap();
        std::fs::set_permissions(&runner, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let result = RunResult {
            config: RunConfig::fully_specified(),
            provenance: Provenance::default(),
            history: Vec::new(),
            test_acc_final: 0.5,
            test_acc_peak: 0.5,
            peak_epoch: 0,
            val_acc_final: None,
            val_acc_peak: None,
            train_images: None,
            val_images: None,
            macs_full: 1,
            macs_executed_nominal: 1.0,
            macs_executed_actual: 1.0,
            savings_nominal: 0.0,
            savings_actual: 0.0,
            savings_measured: None,
            predictor_agreement: None,
            gates: Vec::new(),
            train_img_per_s: 1.0,
            infer_img_per_s: 1.0,
            wall_secs: 0.3,
        };
        let done = serde_json::json!({"type": "done", "result": result});
        std::fs::write(dir.path().join("done.json"), format!("{done}\n")).unwrap();

        let seeds: Vec<String> = (0..jobs).map(|s| s.to_string()).collect();
        let yaml = dir.path().join("gpus.yaml");
        std::fs::write(
            &yaml,
            format!(
                "name: gpus\n\
                 dataset: {{kind: synthetic}}\n\
                 parameters:\n  train.seed:\n    values: [{}]\n",
                seeds.join(", ")
            ),
        )
        .unwrap();
        let sweep = load_sweep(&yaml, &LoadOptions::default()).unwrap();
        let store = Store::open(dir.path().join("cg.db").as_path())
            .await
            .unwrap();
        let options = SubmitOptions {
            max_attempts,
            ..SubmitOptions::default()
        };
        submit_sweep(&store, &sweep, &options).await.unwrap();
        Self { dir, store }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Runs the sweep to its end on `slots`.
    async fn run(&self, slots: Vec<Slot>) -> Vec<Event> {
        let mut options = LocalOptions::new(self.path("runner.sh"), vec!["job-runner".into()]);
        options.slots = slots;
        options.runs_dir = self.path("runs");
        options.sweep = Some("gpus".into());
        options.poll = Duration::from_millis(50);
        options.oom_backoff = Duration::from_millis(50);
        options.oom_backoff_max = Duration::from_millis(200);
        options.max_consecutive_failures = None;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (_stop, stop_rx) = watch::channel(false);
        let summary = tokio::time::timeout(
            Duration::from_secs(120),
            run_local(self.store.clone(), options, tx, stop_rx),
        )
        .await
        .expect("the sweep finished in time")
        .unwrap();
        assert!(
            !summary.interrupted && summary.halted.is_none(),
            "{summary:?}"
        );
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        events
    }

    async fn assert_all_completed(&self, jobs: usize) {
        let records = self.store.job_records("gpus").await.unwrap();
        assert_eq!(records.len(), jobs);
        for r in &records {
            assert_eq!(r.status, JobStatus::Completed, "{r:?}");
        }
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("calls.log"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn started_on(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Started { device, .. } => Some(device.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_child_sees_only_its_own_gpu_as_cuda_0() {
    let jobs = 8;
    let fx = Fixture::new(jobs, 2, 0, false, 3).await;
    let mut slots = vec![Slot::Cpu];
    slots.extend(gpu_slots(&parse_visible_devices("5,GPU-3f2a"), 2));
    let events = fx.run(slots).await;
    fx.assert_all_completed(jobs).await;

    let calls = fx.calls();
    assert_eq!(calls.len(), jobs, "{calls:#?}");
    let mut seen = std::collections::BTreeSet::new();
    for call in &calls {
        let visible = call
            .strip_prefix("visible=[")
            .and_then(|r| r.split_once(']'))
            .map(|(v, _)| v.to_string())
            .unwrap();
        let want = if visible.is_empty() { "cpu" } else { "cuda:0" };
        assert!(
            call.contains(&format!("--device {want} "))
                || call.ends_with(&format!("--device {want}]")),
            "{call}"
        );
        assert!(["", "5", "GPU-3f2a"].contains(&visible.as_str()), "{call}");
        seen.insert(visible);
    }
    assert_eq!(seen.len(), 3, "every slot's device ran a job: {calls:#?}");
    let started = started_on(&events);
    assert!(
        started.iter().any(|d| d == "cuda:1 (GPU-3f2a)"),
        "{started:?}"
    );
    assert!(started.iter().any(|d| d == "cuda:0 (5)"), "{started:?}");
}

fn warnings(events: &[Event]) -> Vec<(usize, &str)> {
    events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            Event::Warning { message } => Some((i, message.as_str())),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpu_that_runs_out_of_memory_gets_fewer_jobs_and_all_complete() {
    let jobs = 6;
    // Three jobs meet on a GPU that holds one and all run out of memory, one after the other.
    let fx = Fixture::new(jobs, 1, 3, false, 3).await;
    let slots = gpu_slots(&parse_visible_devices("0"), 3);
    let events = fx.run(slots).await;
    fx.assert_all_completed(jobs).await;

    let warnings = warnings(&events);
    let at_most = |n: usize| {
        warnings
            .iter()
            .find(|(_, w)| w.contains(&format!("at most {n} job(s) at once on it")))
            .map(|(i, _)| *i)
    };
    assert!(at_most(2).is_some(), "{warnings:#?}");
    let down_to_one = at_most(1).unwrap_or_else(|| panic!("never down to one: {warnings:#?}"));
    // From then on only the GPU's first slot starts jobs (the second may have been claiming
    // when the limit dropped: one start of it is allowed).
    let late_starts = events[down_to_one..]
        .iter()
        .filter(|e| matches!(e, Event::Started { worker, .. } if !worker.ends_with(":0")))
        .count();
    assert!(
        late_starts <= 1,
        "retired slots kept starting jobs: {events:#?}"
    );

    // Out of memory beside other jobs spends no attempt; alone, it does.
    let (mut beside, mut alone) = (0, 0);
    for r in fx.store.job_records("gpus").await.unwrap() {
        let attempts = fx.store.attempts(&r.job.id).await.unwrap();
        let spent = attempts
            .iter()
            .filter(|a| a.outcome != AttemptOutcome::Requeued)
            .count();
        assert_eq!(r.attempts as usize, spent, "{r:?} {attempts:#?}");
        for a in &attempts {
            let error = a.error.as_deref().unwrap_or("");
            match a.outcome {
                AttemptOutcome::Requeued => {
                    assert!(error.contains("out of memory beside"), "{a:?}");
                    assert!(
                        a.stderr_tail
                            .as_deref()
                            .unwrap_or("")
                            .contains("CUDA out of memory")
                    );
                    beside += 1;
                }
                AttemptOutcome::Failed => {
                    assert!(error.contains("OUT_OF_MEMORY"), "{a:?}");
                    assert!(!error.contains("beside"), "{a:?}");
                    alone += 1;
                }
                _ => {}
            }
        }
    }
    assert!(
        beside >= 2,
        "the first two of the wave ran out beside others: {beside}"
    );
    assert!(alone <= 1, "only the last of the wave was alone: {alone}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lowered_gpu_waits_for_its_long_job_instead_of_retrying_beside_it() {
    // A GPU that holds one job, two slots: the short job runs out of memory beside the long one
    // once; then the GPU counts the long job, whichever slot runs it, and waits for it to end.
    let fx = Fixture::new(2, 1, 0, true, 3).await;
    let events = fx.run(gpu_slots(&parse_visible_devices("0"), 2)).await;
    fx.assert_all_completed(2).await;
    let mut requeued = 0;
    for r in fx.store.job_records("gpus").await.unwrap() {
        for a in fx.store.attempts(&r.job.id).await.unwrap() {
            assert_ne!(a.outcome, AttemptOutcome::Failed, "{a:?}");
            requeued += usize::from(a.outcome == AttemptOutcome::Requeued);
        }
    }
    assert_eq!(
        requeued, 1,
        "one try beside the long job, then none: {events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_too_big_for_its_gpu_spends_its_attempts_and_the_run_ends() {
    // A GPU that holds nothing: the job runs out of memory alone, every time.
    let fx = Fixture::new(1, 0, 0, false, 3).await;
    let events = fx.run(gpu_slots(&parse_visible_devices("0"), 2)).await;
    let records = fx.store.job_records("gpus").await.unwrap();
    assert_eq!(
        (records[0].status, records[0].attempts),
        (JobStatus::Failed, 3)
    );
    let warnings = warnings(&events);
    let waits = warnings
        .iter()
        .filter(|(_, w)| w.contains("waiting"))
        .count();
    assert_eq!(
        waits, 2,
        "a back-off after each retried attempt, none after the last: {warnings:#?}"
    );
    assert!(
        !warnings.iter().any(|(_, w)| w.contains("at most")),
        "alone, it does not lower the GPU's jobs: {warnings:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpu_that_cannot_start_cuda_is_named_before_any_job() {
    let fx = Fixture::new(1, 1, 0, false, 3).await;
    let exe = fx.path("runner.sh");
    let args = ["device-check".to_string()];
    let good = gpu_slots(&parse_visible_devices("0,GPU-ok"), 2);
    check_gpus(&exe, &args, &good, Duration::from_secs(30))
        .await
        .unwrap();
    let mut bad = good.clone();
    bad.extend(gpu_slots(&parse_visible_devices("0,1,GPU-dead"), 1)[2..].to_vec());
    bad.push(Slot::Cpu);
    let err = check_gpus(&exe, &args, &bad, Duration::from_secs(30))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("cuda:2 (GPU-dead) cannot run jobs"),
        "{err}"
    );
    assert!(
        err.contains("Unable to dynamically load the cuda shared library"),
        "{err}"
    );
    let two = gpu_slots(&parse_visible_devices("GPU-dead-a,0,GPU-dead-b"), 1);
    let err = check_gpus(&exe, &args, &two, Duration::from_secs(30))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("cuda:0 (GPU-dead-a), cuda:2 (GPU-dead-b) cannot run jobs"),
        "{err}"
    );
    assert_eq!(
        err.matches("Unable to dynamically load").count(),
        2,
        "{err}"
    );
    let missing = check_gpus(
        &fx.path("no-such-cg"),
        &args,
        &good,
        Duration::from_secs(30),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        missing.contains("cannot start its device check"),
        "{missing}"
    );
}

#[test]
fn the_runner_script_is_executable() {
    // Guards the fixture: a silently broken script would fail every job for another reason.
    let dir = tempfile::tempdir().unwrap();
    let path: &Path = &dir.path().join("r.sh");
    std::fs::write(
        path,
        RUNNER
            .replace("@DIR@", "/tmp")
            .replace("@CAPACITY@", "1")
            .replace("@WAVE@", "0"),
    )
    .unwrap();
    let out = std::process::Command::new("bash")
        .arg("-n")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}
