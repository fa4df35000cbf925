//! Local workers: N slots in this process, each claiming a job, training it in a child process
//! (the `cg` binary re-invoked as a job runner) and recording what the child reports.
//!
//! The parent alone talks to the store: it heartbeats the lease while the child runs, records
//! each epoch the child reports, and completes, fails or requeues the job when the child ends.
//! Shutting down (the `shutdown` watch turning true) closes every child's stdin; a child stops at
//! its next step, keeping its last epoch checkpoint, and its job goes back to the queue without
//! spending an attempt. A child that does not stop within `grace` is killed (and requeued too).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use cg_core::JobStatus;
use cg_model::DeviceSpec;
use cg_store::{Claim, CompleteOutcome, Store, SweepStatus};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::error::io_err;
use crate::proc::{local_worker_prefix, reclaim_dead_local_workers};
use crate::protocol::{ChildMessage, FailureKind};
use crate::{Error, Event, Result};

/// How local workers run.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// The `cg` binary (usually `std::env::current_exe()`).
    pub exe: PathBuf,
    /// Arguments that make `exe` a job runner, e.g. `["job-runner"]`.
    pub runner_args: Vec<String>,
    /// One entry per concurrent job: the device it trains on.
    pub slots: Vec<DeviceSpec>,
    /// `RAYON_NUM_THREADS` of each child (its CPU thread budget); `None` leaves it unset.
    pub threads_per_job: Option<usize>,
    /// Wall-clock limit of one attempt; past it the child is killed and the attempt failed.
    pub timeout_per_job: Option<Duration>,
    /// Checkpoints and logs go to `runs_dir/<job-id>/`.
    pub runs_dir: PathBuf,
    /// Lease of a claim; heartbeats renew it four times per lease.
    pub lease: Duration,
    /// How long a stopping child may take before it is killed.
    pub grace: Duration,
    /// How often an idle worker looks for work again.
    pub poll: Duration,
    /// Stop once this sweep has no queued or running job (or is paused or cancelled and nothing
    /// of it runs). `None`: every sweep's jobs, until shut down (or idle, see `exit_when_idle`).
    pub sweep: Option<String>,
    /// Keep every epoch checkpoint after a job completes.
    pub keep_checkpoints: bool,
    /// Without `sweep`: stop once no active sweep has a queued job and no job is running.
    pub exit_when_idle: bool,
}

impl LocalOptions {
    /// Defaults: one CPU slot, a 60 s lease, 10 s grace, 1 s poll, `runs/`.
    pub fn new(exe: PathBuf, runner_args: Vec<String>) -> Self {
        Self {
            exe,
            runner_args,
            slots: vec![DeviceSpec::Cpu],
            threads_per_job: None,
            timeout_per_job: None,
            runs_dir: PathBuf::from("runs"),
            lease: Duration::from_secs(60),
            grace: Duration::from_secs(10),
            poll: Duration::from_secs(1),
            sweep: None,
            keep_checkpoints: false,
            exit_when_idle: false,
        }
    }
}

/// How [`run_local`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    /// Shut down before the work was finished.
    pub interrupted: bool,
}

/// GPUs to run on: the indices in `CUDA_VISIBLE_DEVICES` (renumbered from 0, as CUDA sees them)
/// when it is set, else those `nvidia-smi` lists, else none.
pub fn detect_gpus() -> Vec<usize> {
    if let Ok(visible) = std::env::var("CUDA_VISIBLE_DEVICES") {
        let n = visible
            .split(',')
            .map(str::trim)
            .take_while(|s| !s.is_empty() && !s.starts_with('-'))
            .count();
        return (0..n).collect();
    }
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=index", "--format=csv,noheader"])
        .stderr(Stdio::null())
        .output();
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect(),
        _ => Vec::new(),
    }
}

struct Ctx {
    store: Store,
    options: LocalOptions,
    events: mpsc::UnboundedSender<Event>,
    shutdown: watch::Receiver<bool>,
}

impl Ctx {
    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    fn warn(&self, message: String) {
        tracing::warn!("{message}");
        self.emit(Event::Warning { message });
    }

    /// Whether there is nothing more for the workers to do.
    async fn finished(&self) -> Result<bool> {
        let Some(name) = &self.options.sweep else {
            if !self.options.exit_when_idle {
                return Ok(false);
            }
            let sweeps = self.store.list_sweeps().await?;
            let busy = sweeps.iter().any(|s| {
                s.counts.running > 0 || (s.status == SweepStatus::Active && s.counts.queued > 0)
            });
            return Ok(!busy);
        };
        let sweep = self.store.sweep(name).await?;
        let c = sweep.counts;
        Ok(c.is_finished() || (sweep.status != SweepStatus::Active && c.running == 0))
    }
}

/// Runs local workers until the sweep is finished (see [`LocalOptions::sweep`]) or `shutdown`
/// turns true. At start, takes back the running jobs of dead local workers and expired leases.
/// Failing jobs are recorded, never returned as errors; an error here is the store failing.
pub async fn run_local(
    store: Store,
    options: LocalOptions,
    events: mpsc::UnboundedSender<Event>,
    shutdown: watch::Receiver<bool>,
) -> Result<RunSummary> {
    std::fs::create_dir_all(&options.runs_dir).map_err(io_err(format!(
        "cannot create {}",
        options.runs_dir.display()
    )))?;
    let reclaimed = reclaim_dead_local_workers(&store).await?;
    if reclaimed > 0 {
        let _ = events.send(Event::TakenBack {
            jobs: reclaimed,
            why: "their local worker process is gone".into(),
        });
    }
    let expired = store.requeue_expired().await?;
    if expired > 0 {
        let _ = events.send(Event::TakenBack {
            jobs: expired,
            why: "their lease expired".into(),
        });
    }
    let slots = options.slots.clone();
    let ctx = Arc::new(Ctx {
        store,
        options,
        events,
        shutdown,
    });

    let expiry = {
        let ctx = Arc::clone(&ctx);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ctx.options.lease / 2);
            tick.tick().await;
            loop {
                tick.tick().await;
                match ctx.store.requeue_expired().await {
                    Ok(0) => {}
                    Ok(n) => ctx.emit(Event::TakenBack {
                        jobs: n,
                        why: "their lease expired".into(),
                    }),
                    Err(e) => ctx.warn(format!("cannot take back expired leases: {e}")),
                }
            }
        })
    };

    let mut workers = JoinSet::new();
    for (slot, device) in slots.into_iter().enumerate() {
        let ctx = Arc::clone(&ctx);
        workers.spawn(async move { worker_loop(&ctx, slot, device).await });
    }
    let mut first_error = None;
    while let Some(joined) = workers.join_next().await {
        let outcome = joined.unwrap_or_else(|e| {
            Err(Error::Io {
                context: "a worker task panicked".into(),
                source: std::io::Error::other(e.to_string()),
            })
        });
        if let Err(e) = outcome
            && first_error.is_none()
        {
            first_error = Some(e);
        }
    }
    expiry.abort();
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(RunSummary {
        interrupted: ctx.stopping(),
    })
}

async fn worker_loop(ctx: &Ctx, slot: usize, device: DeviceSpec) -> Result<()> {
    let worker = format!("{}{slot}", local_worker_prefix(std::process::id()));
    let mut shutdown = ctx.shutdown.clone();
    let mut store_errors = 0u32;
    loop {
        if ctx.stopping() {
            return Ok(());
        }
        match ctx.store.claim(&worker, ctx.options.lease).await {
            Ok(Some(claim)) => {
                store_errors = 0;
                if let Err(e) = run_claim(ctx, &worker, device, claim).await {
                    ctx.warn(format!("worker {worker}: {e}"));
                }
            }
            Ok(None) => {
                store_errors = 0;
                if ctx.finished().await? {
                    return Ok(());
                }
                tokio::select! {
                    _ = tokio::time::sleep(ctx.options.poll) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(e) => {
                // A busy database is worth waiting for; a broken one ends the run.
                store_errors += 1;
                if store_errors > 10 {
                    return Err(e.into());
                }
                ctx.warn(format!("worker {worker}: cannot claim a job: {e}"));
                tokio::time::sleep(ctx.options.poll).await;
            }
        }
    }
}

/// How a child's run ended, as far as the parent is concerned.
enum End {
    /// Its stdout closed (it exited).
    Exited,
    /// It ran past `timeout_per_job` and was killed.
    TimedOut,
    /// Its lease was taken back and it was killed.
    LeaseLost,
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The last `max` bytes of `s`, cut at a character boundary.
fn keep_tail(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = s.len() - max;
        while !s.is_char_boundary(cut) {
            cut += 1;
        }
        s.drain(..cut);
    }
}

async fn run_claim(ctx: &Ctx, worker: &str, device: DeviceSpec, claim: Claim) -> Result<()> {
    let store = &ctx.store;
    let opts = &ctx.options;
    let job = claim.job.id.clone();
    let attempt = claim.attempt;
    let dir = opts.runs_dir.join(&job);
    std::fs::create_dir_all(&dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
    let log_path = dir.join(format!("attempt-{attempt}.log"));

    let mut cmd = tokio::process::Command::new(&opts.exe);
    cmd.args(&opts.runner_args)
        .arg("--job-id")
        .arg(&job)
        .arg("--attempt")
        .arg(attempt.to_string())
        .arg("--checkpoint-dir")
        .arg(&dir)
        .arg("--device")
        .arg(device.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group: a Ctrl-C at the terminal reaches the parent only, which then
        // stops the child cleanly.
        .process_group(0)
        // The child never opens the database; it need not see where it is.
        .env_remove("CG_DB");
    if opts.keep_checkpoints {
        cmd.arg("--keep-checkpoints");
    }
    if let Some(t) = opts.threads_per_job {
        cmd.env("RAYON_NUM_THREADS", t.max(1).to_string());
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(source) => {
            let error = Error::Spawn {
                exe: opts.exe.clone(),
                source,
            };
            let status = store
                .fail(&job, attempt, worker, &error.to_string(), None, true)
                .await?;
            ctx.emit(Event::Failed {
                job,
                attempt,
                error: error.to_string(),
                status,
            });
            return Err(error);
        }
    };
    ctx.emit(Event::Started {
        job: job.clone(),
        attempt,
        worker: worker.to_string(),
        device: device.to_string(),
    });

    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    if let Some(input) = stdin.as_mut() {
        let mut line = serde_json::to_string(&claim.job.config).expect("configs serialise");
        line.push('\n');
        // A child that died at once shows up below as exiting without a result.
        let _ = input.write_all(line.as_bytes()).await;
        let _ = input.flush().await;
    }

    let stderr_task = tokio::spawn({
        let log_path = log_path.clone();
        async move {
            let mut log = tokio::fs::File::create(&log_path).await.ok();
            let mut reader = BufReader::new(stderr);
            let mut tail = String::new();
            let mut buf = vec![0u8; 8192];
            while let Ok(n) = reader.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                if let Some(f) = log.as_mut() {
                    let _ = f.write_all(&buf[..n]).await;
                }
                tail.push_str(&String::from_utf8_lossy(&buf[..n]));
                keep_tail(&mut tail, 16 * 1024);
            }
            if let Some(f) = log.as_mut() {
                let _ = f.flush().await;
            }
            tail
        }
    });

    let mut lines = BufReader::new(stdout).lines();
    let mut heartbeat = tokio::time::interval((opts.lease / 4).max(Duration::from_millis(100)));
    heartbeat.tick().await;
    let deadline = opts.timeout_per_job.map(|t| Instant::now() + t);
    let mut grace_deadline: Option<Instant> = None;
    let mut shutdown = ctx.shutdown.clone();
    let mut watching_shutdown = true;
    let mut outcome: Option<ChildMessage> = None;
    let mut epochs_total = claim.job.config.train.epochs;
    let mut end = End::Exited;
    if ctx.stopping() {
        stdin = None;
        grace_deadline = Some(Instant::now() + opts.grace);
    }
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => match ChildMessage::parse(&line) {
                    Some(ChildMessage::Step { epoch, epochs, step, steps_per_epoch, loss, img_per_s, eta_secs }) => {
                        epochs_total = epochs;
                        ctx.emit(Event::Step { job: job.clone(), epoch, epochs, step, steps_per_epoch, loss, img_per_s, eta_secs });
                    }
                    Some(ChildMessage::Epoch { record }) => {
                        if let Err(e) = store.record_epoch(&job, attempt, &record).await {
                            ctx.warn(format!("job {job}: cannot record epoch {}: {e}", record.epoch));
                        }
                        ctx.emit(Event::Epoch { job: job.clone(), attempt, epochs: epochs_total, record });
                    }
                    Some(ChildMessage::Note { message }) => ctx.emit(Event::Note { job: job.clone(), message }),
                    Some(m @ (ChildMessage::Done { .. } | ChildMessage::Failed { .. })) => outcome = Some(m),
                    None => {}
                },
                Ok(None) | Err(_) => break,
            },
            _ = heartbeat.tick() => {
                match store.heartbeat(&job, attempt, worker, opts.lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        end = End::LeaseLost;
                        let _ = child.kill().await;
                        break;
                    }
                    Err(e) => ctx.warn(format!("job {job}: heartbeat failed: {e}")),
                }
            }
            _ = sleep_until(deadline) => {
                end = End::TimedOut;
                let _ = child.kill().await;
                break;
            }
            _ = sleep_until(grace_deadline) => {
                let _ = child.kill().await;
                break;
            }
            changed = shutdown.changed(), if watching_shutdown => {
                if changed.is_err() || *shutdown.borrow() {
                    watching_shutdown = false;
                    if *shutdown.borrow() {
                        // Closing stdin asks the child to stop at its next step.
                        stdin = None;
                        grace_deadline = Some(Instant::now() + opts.grace);
                    }
                }
            }
        }
    }
    drop(stdin);
    let status = child.wait().await;
    let stderr_tail = stderr_task.await.unwrap_or_default();
    let stderr_tail = Some(stderr_tail.as_str()).filter(|s| !s.is_empty());

    if matches!(end, End::LeaseLost) {
        ctx.emit(Event::LeaseLost { job, attempt });
        return Ok(());
    }
    let failed = |error: String, status: JobStatus| Event::Failed {
        job: job.clone(),
        attempt,
        error,
        status,
    };
    match outcome {
        Some(ChildMessage::Done { result }) => {
            match store.complete(&job, attempt, worker, &result).await {
                Ok(CompleteOutcome::Recorded | CompleteOutcome::AlreadyRecorded) => {
                    let _ = store
                        .add_artifact(&job, "log", &log_path.to_string_lossy())
                        .await;
                    ctx.emit(Event::Completed {
                        job,
                        attempt,
                        test_acc: result.test_acc_final,
                        savings_nominal: result.savings_nominal,
                        wall_secs: result.wall_secs,
                    });
                }
                Err(cg_store::Error::StaleAttempt { .. }) => {
                    ctx.emit(Event::LeaseLost { job, attempt });
                }
                Err(e) => return Err(e.into()),
            }
        }
        _ if matches!(end, End::TimedOut) => {
            let secs = opts.timeout_per_job.unwrap_or_default().as_secs();
            let error = format!("timed out after {secs} s (--timeout-per-job); killed");
            let status = store
                .fail(&job, attempt, worker, &error, stderr_tail, true)
                .await?;
            ctx.emit(failed(error, status));
        }
        Some(ChildMessage::Failed { kind, message })
            if kind != FailureKind::Stopped && !ctx.stopping() =>
        {
            let status = store
                .fail(
                    &job,
                    attempt,
                    worker,
                    &message,
                    stderr_tail,
                    kind.retryable(),
                )
                .await?;
            ctx.emit(failed(message, status));
        }
        _ if ctx.stopping() || matches!(outcome, Some(ChildMessage::Failed { .. })) => {
            // Stopped on request (or asked to stop and it died): back to the queue.
            if store.requeue(&job, attempt).await? {
                ctx.emit(Event::Requeued { job, attempt });
            } else {
                ctx.emit(Event::LeaseLost { job, attempt });
            }
        }
        _ => {
            let how = match status {
                Ok(s) => describe_exit(s),
                Err(e) => format!("could not be waited for ({e})"),
            };
            let last = stderr_tail
                .and_then(|t| t.lines().rev().find(|l| !l.trim().is_empty()))
                .map(|l| format!(": {}", l.trim()))
                .unwrap_or_default();
            let error = format!("job runner {how} without a result{last}");
            let status = store
                .fail(&job, attempt, worker, &error, stderr_tail, true)
                .await?;
            ctx.emit(failed(error, status));
        }
    }
    Ok(())
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(9)) => "was killed (SIGKILL)".into(),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => "ended".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end_at_a_char_boundary() {
        let mut s = "ééééé".to_string();
        keep_tail(&mut s, 3);
        assert_eq!(s, "é");
        let mut s = "abc".to_string();
        keep_tail(&mut s, 10);
        assert_eq!(s, "abc");
    }
}
