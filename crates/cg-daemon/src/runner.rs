//! The job runner: the child side of a job. `cg job-runner` calls [`run_child`] with its stdin and
//! stdout. It reads the resolved configuration (one JSON line), trains it with an epoch checkpoint
//! in its checkpoint directory (resuming from one left by an earlier attempt), and writes
//! [`ChildMessage`]s, one per line. It never opens the database.
//!
//! It stops at the next training step, leaving the last epoch checkpoint, when its stdin closes
//! (the parent asking it to stop, or the parent dying), when its parent process changes (the
//! parent died and it was re-parented), or when its stdout breaks. A lock file in the checkpoint
//! directory makes a new attempt wait for a stopping old one, so two never write the same
//! checkpoints.

use std::fs::File;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cg_core::{EpochRecord, RunConfig, RunResult};
use cg_model::train::{Observer, Prepared, Progress, TrainOptions};
use cg_model::{BackendKind, DeviceSpec};

use crate::protocol::{ChildMessage, FailureKind};

/// Exit code of a runner that finished with a result.
pub const EXIT_DONE: i32 = 0;
/// Exit code of a runner whose run failed (the reason is its last message).
pub const EXIT_FAILED: i32 = 1;
/// Exit code of a runner that stopped on request (the checkpoint stays).
pub const EXIT_STOPPED: i32 = 3;

/// How the child trains.
#[derive(Debug, Clone)]
pub struct ChildOptions {
    pub checkpoint_dir: PathBuf,
    pub backend: BackendKind,
    pub device: DeviceSpec,
    /// Keep the intermediate checkpoints once the run completes.
    pub keep_checkpoints: bool,
}

/// Writes messages to the parent, at most a few step messages per second.
struct LineObserver<W: Write> {
    out: W,
    last_step: Option<Instant>,
    broken: Arc<AtomicBool>,
}

impl<W: Write> LineObserver<W> {
    fn send(&mut self, message: &ChildMessage) {
        let ok = writeln!(self.out, "{}", message.to_line()).and_then(|_| self.out.flush());
        if ok.is_err() {
            // The parent is gone: stop at the next step.
            self.broken.store(true, Ordering::Relaxed);
        }
    }
}

impl<W: Write> Observer for LineObserver<W> {
    fn on_step(&mut self, p: &Progress) {
        let due = self
            .last_step
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(500));
        if !due && p.step != p.steps_per_epoch {
            return;
        }
        self.last_step = Some(Instant::now());
        self.send(&ChildMessage::Step {
            epoch: p.epoch,
            epochs: p.epochs,
            step: p.step,
            steps_per_epoch: p.steps_per_epoch,
            loss: p.loss,
            img_per_s: p.img_per_s,
            eta_secs: p.eta_secs,
        });
    }

    fn on_epoch(&mut self, record: &EpochRecord) {
        self.send(&ChildMessage::Epoch {
            record: record.clone(),
        });
    }

    fn on_note(&mut self, msg: &str) {
        self.send(&ChildMessage::Note {
            message: msg.to_string(),
        });
    }
}

/// Sets `stop` when `input` reaches its end (or fails) or when the parent process changes.
fn watch_parent(mut input: impl BufRead + Send + 'static, stop: Arc<AtomicBool>) {
    let flag = Arc::clone(&stop);
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        loop {
            sink.clear();
            match input.read_until(b'\n', &mut sink) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        flag.store(true, Ordering::Relaxed);
    });
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(500));
            if std::os::unix::process::parent_id() != parent {
                stop.store(true, Ordering::Relaxed);
                break;
            }
        }
    });
}

/// Runs one job: reads the configuration line from `input`, trains, writes messages to `output`
/// and returns the process exit code. `finish` fills in the result's provenance (and must keep
/// its `val_split`, which the run itself records).
pub fn run_child(
    mut input: impl BufRead + Send + 'static,
    output: impl Write,
    options: &ChildOptions,
    finish: impl FnOnce(&mut RunResult),
) -> i32 {
    let broken = Arc::new(AtomicBool::new(false));
    let mut observer = LineObserver {
        out: output,
        last_step: None,
        broken: Arc::clone(&broken),
    };
    let fail = |observer: &mut LineObserver<_>, kind: FailureKind, message: String| {
        eprintln!("{message}");
        observer.send(&ChildMessage::Failed { kind, message });
        if kind == FailureKind::Stopped {
            EXIT_STOPPED
        } else {
            EXIT_FAILED
        }
    };

    let mut line = String::new();
    if let Err(e) = input.read_line(&mut line) {
        return fail(
            &mut observer,
            FailureKind::Other,
            format!("cannot read the job configuration from stdin: {e}"),
        );
    }
    let config: RunConfig = match serde_json::from_str(line.trim()) {
        Ok(c) => c,
        Err(e) => {
            return fail(
                &mut observer,
                FailureKind::Config,
                format!("the job configuration on stdin is not valid: {e}"),
            );
        }
    };
    watch_parent(input, Arc::clone(&broken));

    if let Err(e) = std::fs::create_dir_all(&options.checkpoint_dir) {
        return fail(
            &mut observer,
            FailureKind::Other,
            format!("cannot create {}: {e}", options.checkpoint_dir.display()),
        );
    }
    // Wait for an earlier runner of this job that is still stopping (its parent was killed).
    let lock_path = options.checkpoint_dir.join(".lock");
    let lock = File::create(&lock_path).and_then(|f| f.lock().map(|()| f));
    let _lock = match lock {
        Ok(f) => f,
        Err(e) => {
            return fail(
                &mut observer,
                FailureKind::Other,
                format!("cannot lock {}: {e}", lock_path.display()),
            );
        }
    };
    if broken.load(Ordering::Relaxed) {
        return fail(
            &mut observer,
            FailureKind::Stopped,
            "stopped before training started".into(),
        );
    }

    let prep = match Prepared::new(&config) {
        Ok(p) => p,
        Err(e) => {
            let kind = FailureKind::of(&e);
            return fail(&mut observer, kind, format!("cannot prepare the run: {e}"));
        }
    };
    let train = TrainOptions {
        checkpoint_dir: Some(options.checkpoint_dir.clone()),
        resume: true,
        stop_after_epochs: None,
        stop_flag: Some(Arc::clone(&broken)),
        keep_checkpoints: options.keep_checkpoints,
    };
    match cg_model::run(
        &prep,
        options.backend,
        options.device,
        &train,
        &mut observer,
    ) {
        Ok(mut result) => {
            finish(&mut result);
            observer.send(&ChildMessage::Done {
                result: Box::new(result),
            });
            EXIT_DONE
        }
        Err(e) => {
            let kind = FailureKind::of(&e);
            fail(&mut observer, kind, e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::BufReader;

    use cg_core::{DatasetKind, DatasetSpec, SyntheticSpec};

    use super::*;

    /// A child's result keeps the run's validation split when `finish` fills in the rest of
    /// its provenance.
    #[test]
    fn the_result_keeps_its_validation_split() {
        let mut config = RunConfig::with_dataset(DatasetSpec {
            kind: DatasetKind::Synthetic,
            val_size: Some(8),
            path: None,
            augment: None,
            synthetic: Some(SyntheticSpec {
                n_train: 32,
                n_test: 8,
                channels: 1,
                side: 8,
                classes: 2,
            }),
        });
        config.model.depth = 8;
        config.model.width = 4;
        config.train.epochs = 1;
        config.train.batch_size = 8;
        let dir = tempfile::tempdir().unwrap();
        let options = ChildOptions {
            checkpoint_dir: dir.path().to_path_buf(),
            backend: BackendKind::Flex,
            device: DeviceSpec::Cpu,
            keep_checkpoints: false,
        };
        // Stdin stays open (a closed stdin asks the child to stop) until the run is done.
        let (reader, mut writer) = std::io::pipe().unwrap();
        writeln!(writer, "{}", serde_json::to_string(&config).unwrap()).unwrap();
        let mut output = Vec::new();
        let code = run_child(BufReader::new(reader), &mut output, &options, |r| {
            r.provenance.backend = "stamped".into();
        });
        drop(writer);
        let text = String::from_utf8(output).unwrap();
        assert_eq!(code, EXIT_DONE, "{text}");
        let result = text
            .lines()
            .find_map(|l| match ChildMessage::parse(l) {
                Some(ChildMessage::Done { result }) => Some(result),
                _ => None,
            })
            .expect("a result");
        assert_eq!(result.val_images, Some(8));
        assert!(result.provenance.val_split.is_some(), "{text}");
    }
}
