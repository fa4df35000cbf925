//! Local workers: N slots in this process, each claiming a job, training it in a child process
//! (the `cg` binary re-invoked as a job runner) and recording what the child reports.
//!
//! The parent alone talks to the store: it heartbeats the lease while the child runs, records
//! each epoch the child reports, and completes, fails or requeues the job when the child ends.
//! Shutting down (the `shutdown` watch turning true) closes every child's stdin; a child stops at
//! its next step, keeping its last epoch checkpoint, and its job goes back to the queue without
//! spending an attempt. A child that does not stop within `grace` is killed (and requeued too).
//!
//! The parts, by job: `ctx` holds what the slots share, `worker` is one slot's loop (claim,
//! run, back off, wait), `claim` is one claimed job's life from its folder to its recorded end,
//! and `child` runs the job's child process and watches it. Worker ids and the take-back of
//! dead local workers' jobs are in `crate::proc`.

mod child;
mod claim;
mod ctx;
mod worker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cg_store::Store;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::gpu::Slot;
use crate::proc::reclaim_dead_local_workers;
use crate::search::advance_search;
use crate::{Error, Event, Result};
use ctx::Ctx;
use worker::{Place, worker_loop};

/// How local workers run.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// The `cg` binary (usually `std::env::current_exe()`).
    pub exe: PathBuf,
    /// Arguments that make `exe` a job runner, e.g. `["job-runner"]`.
    pub runner_args: Vec<String>,
    /// One entry per concurrent job: where it trains. Slots on one device share it; when a job
    /// runs out of memory beside others there, the device gets one claiming slot fewer (down to
    /// one; see `devices.rs`).
    pub slots: Vec<Slot>,
    /// `RAYON_NUM_THREADS` (and `OMP_NUM_THREADS`, for LibTorch) of each child: its CPU thread
    /// budget; `None` leaves them unset.
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
    /// Claim only this sweep's jobs, and stop once it has no queued or running job (or is paused
    /// or cancelled and nothing of it runs). `None`: every active sweep's jobs, until shut down
    /// (or idle, see `exit_when_idle`).
    pub sweep: Option<String>,
    /// Keep every epoch checkpoint after a job completes.
    pub keep_checkpoints: bool,
    /// Without `sweep`: stop once no active sweep has a queued job and no job is running.
    pub exit_when_idle: bool,
    /// Without `sweep`: stop once no job has been claimable (no active sweep with a queued job)
    /// and none has run here for this long, whatever other workers still run (`cg worker
    /// --until-idle`: a Slurm array's tasks end when their sweep does).
    pub until_idle: Option<Duration>,
    /// Stop claiming jobs once this many jobs in a row have failed for good (a completed job
    /// resets the count); running jobs finish. `None` or 0: never stop for failures.
    pub max_consecutive_failures: Option<u32>,
    /// First delay before a slot whose job ran out of GPU memory claims again; it doubles with
    /// each further out-of-memory failure on that slot, up to `oom_backoff_max`.
    pub oom_backoff: Duration,
    /// Longest out-of-memory back-off.
    pub oom_backoff_max: Duration,
}

impl LocalOptions {
    /// Defaults: one CPU slot, a 60 s lease, 10 s grace, 1 s poll, `runs/`.
    pub fn new(exe: PathBuf, runner_args: Vec<String>) -> Self {
        Self {
            exe,
            runner_args,
            slots: vec![Slot::Cpu],
            threads_per_job: None,
            timeout_per_job: None,
            runs_dir: PathBuf::from("runs"),
            lease: Duration::from_secs(60),
            grace: Duration::from_secs(10),
            poll: Duration::from_secs(1),
            sweep: None,
            keep_checkpoints: false,
            exit_when_idle: false,
            until_idle: None,
            max_consecutive_failures: Some(5),
            oom_backoff: Duration::from_secs(30),
            oom_backoff_max: Duration::from_secs(480),
        }
    }
}

/// How [`run_local`] ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// Shut down before the work was finished.
    pub interrupted: bool,
    /// Stopped claiming jobs after too many consecutive failures
    /// ([`LocalOptions::max_consecutive_failures`]).
    pub halted: Option<Halted>,
    /// Per-job overhead of the attempts started.
    pub overhead: Overhead,
}

/// Why the workers stopped claiming jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Halted {
    /// Jobs that failed for good in a row.
    pub failures: u32,
    /// The reason of the last of them.
    pub last_error: String,
}

/// Per-job overhead of the workers, summed over the attempts started.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Overhead {
    /// Attempts whose runner started (wrote to stderr).
    pub started: u32,
    /// Sum of the runners' start-up times: spawning to their first output (on stderr).
    pub startup: Duration,
    /// Attempts that reported progress.
    pub progressed: u32,
    /// Sum of the times from claiming a job to its runner's first message on stdout (the first
    /// training step, or a failure before it): spawning, start-up, reading the data, building
    /// the model and the first step.
    pub to_first_progress: Duration,
}

impl Overhead {
    /// Mean runner start-up time.
    pub fn mean_startup(&self) -> Option<Duration> {
        (self.started > 0).then(|| self.startup / self.started)
    }

    /// Mean time from claim to first progress.
    pub fn mean_to_first_progress(&self) -> Option<Duration> {
        (self.progressed > 0).then(|| self.to_first_progress / self.progressed)
    }
}

/// Whether a failure reason (or a runner's stderr) says the device ran out of memory: worth
/// another attempt later, when the memory may be free.
pub fn is_out_of_memory(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("out of memory")
        || lower.contains("cuda_error_out_of_memory")
        || lower.contains("outofmemory")
        // LibTorch: its CPU allocator, cuBLAS and cuDNN.
        || lower.contains("can't allocate memory")
        || lower.contains("status_alloc_failed")
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
    check_runs_dir(&options.runs_dir)?;
    take_back_at_start(&store, &options, &events).await?;
    // The workers stop on the caller's `shutdown`, or when one of them fails (an error or a
    // panic): a run never goes on half alive.
    let (stop_tx, stop_rx) = watch::channel(*shutdown.borrow());
    let stop_tx = Arc::new(stop_tx);
    let forward = forward_shutdown(shutdown, Arc::clone(&stop_tx));
    let ctx = Arc::new(Ctx::new(store, options, events, stop_rx));
    let expiry = take_back_expired_leases(Arc::clone(&ctx));
    let workers = spawn_workers(&ctx);
    let first_error = join_workers(&ctx, workers, &stop_tx).await;
    expiry.abort();
    forward.abort();
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(RunSummary {
        interrupted: ctx.stopping(),
        halted: ctx.halted_for(),
        overhead: ctx.overhead(),
    })
}

/// Takes back the running jobs of dead local workers and of expired leases, and makes the
/// search decisions of results recorded before a kill.
async fn take_back_at_start(
    store: &Store,
    options: &LocalOptions,
    events: &mpsc::UnboundedSender<Event>,
) -> Result<()> {
    let reclaimed = reclaim_dead_local_workers(store).await?;
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
    // Results recorded before a kill, whose decisions were not made yet.
    let searches = match &options.sweep {
        Some(name) => vec![name.clone()],
        None => store.unfinished_searches().await?,
    };
    for sweep in searches {
        advance_search(store, &sweep).await?;
    }
    // Controls whose front was complete before a kill, not planned yet.
    crate::controls::advance_pending_controls(store, options.sweep.as_deref()).await?;
    Ok(())
}

/// Passes the caller's `shutdown` turning true on to the workers' stop channel.
fn forward_shutdown(
    mut shutdown: watch::Receiver<bool>,
    stop_tx: Arc<watch::Sender<bool>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if *shutdown.borrow_and_update() {
                let _ = stop_tx.send(true);
                return;
            }
            if shutdown.changed().await.is_err() {
                return;
            }
        }
    })
}

/// Takes back the jobs of expired leases every half lease, for as long as the run lasts.
fn take_back_expired_leases(ctx: Arc<Ctx>) -> JoinHandle<()> {
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
}

/// Starts one worker per slot, each knowing its rank among the slots of its device.
fn spawn_workers(ctx: &Arc<Ctx>) -> JoinSet<Result<()>> {
    let mut workers = JoinSet::new();
    let mut ranks: HashMap<String, usize> = HashMap::new();
    for (n, slot) in ctx.options.slots.iter().cloned().enumerate() {
        let rank = ranks.entry(slot.to_string()).or_default();
        let ctx = Arc::clone(ctx);
        let place = Place {
            n,
            rank: *rank,
            slot,
        };
        *rank += 1;
        workers.spawn(async move { worker_loop(&ctx, place).await });
    }
    workers
}

/// Waits for every worker; the first to fail (an error or a panic) stops the others, and its
/// error is returned.
async fn join_workers(
    ctx: &Ctx,
    mut workers: JoinSet<Result<()>>,
    stop_tx: &watch::Sender<bool>,
) -> Option<Error> {
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
            // The other workers stop at their next step and put their jobs back.
            ctx.warn(format!("stopping every worker: {e}"));
            let _ = stop_tx.send(true);
            first_error = Some(e);
        }
    }
    first_error
}

/// Creates the runs folder and checks that files can be made in it, before any job is claimed:
/// a folder that cannot hold checkpoints is refused here rather than failing every job.
fn check_runs_dir(dir: &Path) -> Result<()> {
    let refuse = |what: &str, source: std::io::Error| Error::Io {
        context: format!(
            "the runs folder {} {what} (set --runs-dir to a writable folder)",
            dir.display()
        ),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| refuse("cannot be created", e))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let probe = dir.join(format!(".cg-probe.{}.{nanos}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| refuse("is not writable", e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_memory_is_recognised_in_reasons_and_stderr() {
        assert!(is_out_of_memory(
            "CUDA out of memory. Tried to allocate 2.00 GiB"
        ));
        assert!(is_out_of_memory(
            "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")"
        ));
        assert!(is_out_of_memory("device error: OutOfMemory"));
        assert!(is_out_of_memory(
            "...\nthread 'main' panicked: Out Of Memory\n"
        ));
        // LibTorch, as burn-tch's panics carry them.
        assert!(is_out_of_memory(
            "LibTorch failed: called `Result::unwrap()` on an `Err` value: Torch(\"CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of 139.80 GiB\")"
        ));
        assert!(is_out_of_memory(
            "Torch(\"[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate 1099511627776 bytes.\")"
        ));
        assert!(is_out_of_memory(
            "Torch(\"CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`\")"
        ));
        assert!(is_out_of_memory("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"));
        assert!(!is_out_of_memory("loss became NaN at epoch 1, step 1"));
        assert!(!is_out_of_memory(
            "cannot read data/train.bin: memory map failed"
        ));
    }
}
