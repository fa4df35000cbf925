//! Local workers: N slots in this process, each claiming a job, training it in a child process
//! (the `cg` binary re-invoked as a job runner) and recording what the child reports.
//!
//! The parent alone talks to the store: it heartbeats the lease while the child runs, records
//! each epoch the child reports, and completes, fails or requeues the job when the child ends.
//! Shutting down (the `shutdown` watch turning true) closes every child's stdin; a child stops at
//! its next step, keeping its last epoch checkpoint, and its job goes back to the queue without
//! spending an attempt. A child that does not stop within `grace` is killed (and requeued too).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cg_core::JobStatus;
use cg_store::{Claim, CompleteOutcome, Store, SweepStatus};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::devices::{Devices, Reservation};
use crate::gpu::Slot;
use crate::proc::{own_worker_prefix, reclaim_dead_local_workers};
use crate::protocol::{ChildMessage, FailureKind};
use crate::search::{advance_search, search_finished};
use crate::{Error, Event, Result};

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

/// The run of jobs that failed for good since the last completed one.
#[derive(Default)]
struct Streak {
    failures: u32,
    last_error: String,
    halted: bool,
}

struct Ctx {
    store: Store,
    options: LocalOptions,
    events: mpsc::UnboundedSender<Event>,
    shutdown: watch::Receiver<bool>,
    streak: Mutex<Streak>,
    overhead: Mutex<Overhead>,
    /// How many slots of each device may claim jobs, and how many jobs run on it.
    devices: Devices,
    /// Woken when a job's attempt ends, so idle workers look again at once instead of at the
    /// next poll (the last job ending would otherwise keep the run waiting for up to `poll`).
    job_ended: Notify,
    /// The sweep of the run (`LocalOptions::sweep`) was deleted; said once.
    deleted: std::sync::atomic::AtomicBool,
}

impl Ctx {
    fn emit(&self, event: Event) {
        self.count(&event);
        let _ = self.events.send(event);
    }

    /// Keeps the run of jobs failed for good, and halts the workers when it is too long.
    fn count(&self, event: &Event) {
        let mut streak = self.streak.lock().expect("streak lock");
        match event {
            Event::Completed { .. } => {
                streak.failures = 0;
            }
            Event::Failed { error, status, .. } if *status != JobStatus::Queued => {
                streak.failures += 1;
                streak.last_error = error.clone();
                let limit = self.options.max_consecutive_failures.unwrap_or(0);
                if limit > 0 && streak.failures >= limit && !streak.halted {
                    streak.halted = true;
                    let message = format!(
                        "{} jobs in a row failed (--max-consecutive-failures {limit}); no more \
                         jobs are started, running ones finish. Last error: {error}",
                        streak.failures
                    );
                    tracing::warn!("{message}");
                    let _ = self.events.send(Event::Warning { message });
                }
            }
            _ => {}
        }
    }

    fn halted(&self) -> bool {
        self.streak.lock().expect("streak lock").halted
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    fn warn(&self, message: String) {
        tracing::warn!("{message}");
        self.emit(Event::Warning { message });
    }

    /// Advances the searches the job's sweeps run ([`advance_search`]); a failure is a warning
    /// (the next result, or the next start, tries again).
    async fn advance(&self) {
        let sweeps = match &self.options.sweep {
            Some(name) => vec![name.clone()],
            None => match self.store.unfinished_searches().await {
                Ok(s) => s,
                Err(e) => return self.warn(format!("cannot list the searches: {e}")),
            },
        };
        for sweep in &sweeps {
            if let Err(e) = advance_search(&self.store, sweep).await {
                self.warn(format!("cannot advance the search of `{sweep}`: {e}"));
            }
        }
        self.job_ended.notify_waiters();
    }

    /// Whether there is nothing more for the workers to do.
    async fn finished(&self) -> Result<bool> {
        let Some(name) = &self.options.sweep else {
            if !self.options.exit_when_idle {
                return Ok(false);
            }
            let sweeps = self.store.list_sweeps().await?;
            let searching = self.store.unfinished_searches().await?;
            let busy = sweeps.iter().any(|s| {
                s.counts.running > 0
                    || (s.status == SweepStatus::Active
                        && (s.counts.queued > 0 || searching.contains(&s.name)))
            });
            return Ok(!busy);
        };
        let sweep = match self.store.sweep(name).await {
            Err(cg_store::Error::UnknownSweep(_)) => {
                // `cg sweep delete` while it ran: its jobs are gone, nothing is left to do.
                if !self
                    .deleted
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    self.warn(format!(
                        "sweep `{name}` was deleted; its running jobs stop, no more are started"
                    ));
                }
                return Ok(true);
            }
            other => other?,
        };
        let c = sweep.counts;
        if sweep.status != SweepStatus::Active && c.running == 0 {
            return Ok(true);
        }
        // A search may still submit jobs after its last one ended.
        if c.is_finished() && !search_finished(&self.store, name).await? {
            advance_search(&self.store, name).await?;
            let again = self.store.sweep(name).await?.counts;
            if again.is_finished() && !search_finished(&self.store, name).await? {
                self.warn(format!(
                    "the search of `{name}` cannot go on: no job is left to run"
                ));
                return Ok(true);
            }
            return Ok(false);
        }
        Ok(c.is_finished())
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
    check_runs_dir(&options.runs_dir)?;
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
    // Results recorded before a kill, whose decisions were not made yet.
    let searches = match &options.sweep {
        Some(name) => vec![name.clone()],
        None => store.unfinished_searches().await?,
    };
    for sweep in searches {
        advance_search(&store, &sweep).await?;
    }
    let slots = options.slots.clone();
    // The workers stop on the caller's `shutdown`, or when one of them fails (an error or a
    // panic): a run never goes on half alive.
    let (stop_tx, stop_rx) = watch::channel(*shutdown.borrow());
    let stop_tx = Arc::new(stop_tx);
    let forward = {
        let stop_tx = Arc::clone(&stop_tx);
        let mut shutdown = shutdown;
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
    };
    let ctx = Arc::new(Ctx {
        store,
        options,
        events,
        shutdown: stop_rx,
        streak: Mutex::new(Streak::default()),
        overhead: Mutex::new(Overhead::default()),
        devices: Devices::new(&slots),
        job_ended: Notify::new(),
        deleted: std::sync::atomic::AtomicBool::new(false),
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
    let mut ranks: HashMap<String, usize> = HashMap::new();
    for (n, slot) in slots.into_iter().enumerate() {
        let rank = ranks.entry(slot.to_string()).or_default();
        let ctx = Arc::clone(&ctx);
        let place = Place {
            n,
            rank: *rank,
            slot,
        };
        *rank += 1;
        workers.spawn(async move { worker_loop(&ctx, place).await });
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
            // The other workers stop at their next step and put their jobs back.
            ctx.warn(format!("stopping every worker: {e}"));
            let _ = stop_tx.send(true);
            first_error = Some(e);
        }
    }
    expiry.abort();
    forward.abort();
    if let Some(e) = first_error {
        return Err(e);
    }
    let halted = {
        let streak = ctx.streak.lock().expect("streak lock");
        streak.halted.then(|| Halted {
            failures: streak.failures,
            last_error: streak.last_error.clone(),
        })
    };
    let overhead = *ctx.overhead.lock().expect("overhead lock");
    Ok(RunSummary {
        interrupted: ctx.stopping(),
        halted,
        overhead,
    })
}

/// A worker slot: its number, its rank among the slots of its device, and the device.
struct Place {
    n: usize,
    rank: usize,
    slot: Slot,
}

/// How an attempt ended, for its slot.
enum Ended {
    /// Completed; `raised_to`: its device may run this many jobs at once again.
    Completed {
        raised_to: Option<usize>,
    },
    /// It ran out of device memory. `beside_others`: other jobs ran on the device then, and the
    /// job went back to the queue without spending an attempt; `lowered_to`: the device runs at
    /// most this many jobs at once from now on; `retried`: the job will run again.
    OutOfMemory {
        beside_others: bool,
        lowered_to: Option<usize>,
        retried: bool,
    },
    Other,
}

async fn worker_loop(ctx: &Ctx, place: Place) -> Result<()> {
    let Place { n, rank, slot } = place;
    let worker = format!("{}{n}", own_worker_prefix());
    let mut shutdown = ctx.shutdown.clone();
    let mut store_errors = 0u32;
    let mut backoff: Option<Duration> = None;
    loop {
        if ctx.stopping() || ctx.halted() {
            return Ok(());
        }
        let claimed_at = Instant::now();
        // A place on the device first: a slot above its device's limit, or on a device already
        // running as many jobs as the limit, waits like an idle one (see `Devices`).
        let reservation = ctx.devices.reserve(&slot, rank);
        let claimed = match &reservation {
            Some(_) => {
                ctx.store
                    .claim_from(&worker, ctx.options.lease, ctx.options.sweep.as_deref())
                    .await
            }
            None => Ok(None),
        };
        match (claimed, reservation) {
            (Ok(Some(claim)), Some(reservation)) => {
                store_errors = 0;
                let ended = run_claim(ctx, &worker, &slot, reservation, claim, claimed_at).await;
                ctx.job_ended.notify_waiters();
                match ended {
                    Ok(Ended::OutOfMemory {
                        beside_others,
                        lowered_to,
                        retried,
                    }) => {
                        let mut message = format!("worker {worker}: out of memory on {slot}");
                        if beside_others {
                            message.push_str(" beside other jobs");
                        }
                        if let Some(limit) = lowered_to {
                            message.push_str(&format!("; at most {limit} job(s) at once on it"));
                        }
                        if !retried || ctx.devices.parked(&slot, rank) {
                            ctx.emit(Event::Warning { message });
                            continue;
                        }
                        // Time for the memory to come free before this slot claims again.
                        let wait = backoff.map_or(ctx.options.oom_backoff, |b| {
                            (b * 2).min(ctx.options.oom_backoff_max)
                        });
                        backoff = Some(wait);
                        message.push_str(&format!(
                            "; waiting {} s before the next job",
                            wait.as_secs_f64()
                        ));
                        ctx.emit(Event::Warning { message });
                        back_off(ctx, &mut shutdown, wait).await;
                    }
                    Ok(Ended::Completed { raised_to }) => {
                        backoff = None;
                        if let Some(limit) = raised_to {
                            ctx.emit(Event::Warning {
                                message: format!(
                                    "{slot}: {} jobs in a row completed; up to {limit} job(s) at once on it again",
                                    crate::devices::RAISE_AFTER
                                ),
                            });
                        }
                    }
                    Ok(Ended::Other) => backoff = None,
                    Err(e) => ctx.warn(format!("worker {worker}: {e}")),
                }
            }
            (Ok(_), _) => {
                store_errors = 0;
                // Registered before looking, so a job ending meanwhile is not missed.
                let ended = ctx.job_ended.notified();
                tokio::pin!(ended);
                ended.as_mut().enable();
                if ctx.finished().await? {
                    return Ok(());
                }
                tokio::select! {
                    _ = tokio::time::sleep(ctx.options.poll) => {}
                    _ = shutdown.changed() => {}
                    _ = ended => {}
                }
            }
            (Err(e), _) => {
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

/// Waits `wait`, or less when the workers stop, halt or have nothing left to do.
async fn back_off(ctx: &Ctx, shutdown: &mut watch::Receiver<bool>, wait: Duration) {
    let until = Instant::now() + wait;
    loop {
        let now = Instant::now();
        if now >= until || ctx.stopping() || ctx.halted() {
            return;
        }
        match ctx.finished().await {
            Ok(true) => return,
            Ok(false) => {}
            // The claim loop decides what a failing store means; here it only ends the wait.
            Err(e) => {
                ctx.warn(format!("cannot read the sweep's state: {e}"));
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep((until - now).min(ctx.options.poll)) => {}
            _ = shutdown.changed() => {}
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

/// Ends an attempt that never started a child: failed for good, or (`retryable`) back in the
/// queue while the job has attempts left.
async fn end_before_start(
    ctx: &Ctx,
    worker: &str,
    job: String,
    attempt: u32,
    error: String,
    retryable: bool,
) -> Result<Ended> {
    let status = ctx
        .store
        .fail(&job, attempt, worker, &error, None, retryable)
        .await?;
    ctx.emit(Event::Failed {
        job,
        attempt,
        error,
        status,
    });
    Ok(Ended::Other)
}

/// Runs one claimed job to its end.
async fn run_claim(
    ctx: &Ctx,
    worker: &str,
    slot: &Slot,
    mut reservation: Reservation<'_>,
    claim: Claim,
    claimed_at: Instant,
) -> Result<Ended> {
    let store = &ctx.store;
    let opts = &ctx.options;
    let job = claim.job.id.clone();
    let attempt = claim.attempt;
    // What the store hands out is untrusted (every machine of a shared queue writes it): the id
    // names a directory and goes on a command line, the configuration goes to the child.
    if let Err(reason) = check_claim(&claim) {
        let error = format!("refused: {reason}");
        return end_before_start(ctx, worker, job, attempt, error, false).await;
    }
    let dir = opts.runs_dir.join(&job);
    if let Err(source) = std::fs::create_dir_all(&dir) {
        // The job goes back to the queue (another worker, or this one once the folder is
        // fixed, runs it); it is never left `running`.
        let error = format!("cannot create {}: {source}", dir.display());
        return end_before_start(ctx, worker, job, attempt, error, true).await;
    }
    // A job's checkpoints and logs are the database's data: no more readable than its file.
    if let Some(mode) = store.file_mode() {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(dir_mode(mode)));
    }
    // A rung job (`train.stop_after`) keeps its checkpoint in the folder of its whole run, so
    // the next rung continues from it.
    let checkpoint_dir = match claim.job.config.train.stop_after {
        None => dir.clone(),
        Some(_) => {
            let whole = claim.job.config.without_stop();
            let id = cg_sweep::job_id(&whole, &cg_sweep::data_fingerprint(&whole.dataset));
            opts.runs_dir.join(id)
        }
    };
    let log_path = dir.join(format!("attempt-{attempt}.log"));

    let mut cmd = tokio::process::Command::new(&opts.exe);
    cmd.args(&opts.runner_args)
        .arg("--job-id")
        .arg(&job)
        .arg("--attempt")
        .arg(attempt.to_string())
        .arg("--checkpoint-dir")
        .arg(&checkpoint_dir)
        .arg("--device")
        .arg(slot.child_device().to_string())
        // Pinned: the child sees its own GPU only (as cuda:0), or none on a CPU slot.
        .env("CUDA_VISIBLE_DEVICES", slot.child_visible_devices())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group: a Ctrl-C at the terminal reaches the parent only, which then
        // stops the child cleanly.
        .process_group(0)
        // The child never opens the database; it need not see where it is or how to log in.
        .env_remove("CG_DB")
        .env_remove("PGPASSWORD")
        .env_remove("PGPASSFILE");
    if opts.keep_checkpoints {
        cmd.arg("--keep-checkpoints");
    }
    if let Some(t) = opts.threads_per_job {
        cmd.env("RAYON_NUM_THREADS", t.max(1).to_string())
            .env("OMP_NUM_THREADS", t.max(1).to_string());
    }
    let spawned_at = Instant::now();
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
    reservation.start();
    ctx.emit(Event::Started {
        job: job.clone(),
        attempt,
        worker: worker.to_string(),
        device: slot.to_string(),
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
            let mut startup = None;
            while let Ok(n) = reader.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                startup.get_or_insert_with(|| spawned_at.elapsed());
                if let Some(f) = log.as_mut() {
                    let _ = f.write_all(&buf[..n]).await;
                }
                tail.push_str(&String::from_utf8_lossy(&buf[..n]));
                keep_tail(&mut tail, 16 * 1024);
            }
            if let Some(f) = log.as_mut() {
                let _ = f.flush().await;
            }
            (tail, startup)
        }
    });

    let mut lines = BufReader::new(stdout).lines();
    let mut heartbeat = tokio::time::interval((opts.lease / 4).max(Duration::from_millis(100)));
    heartbeat.tick().await;
    let deadline = opts
        .timeout_per_job
        .and_then(|t| Instant::now().checked_add(t));
    let mut grace_deadline: Option<Instant> = None;
    let mut shutdown = ctx.shutdown.clone();
    let mut watching_shutdown = true;
    let mut outcome: Option<ChildMessage> = None;
    let mut epochs_total = claim.job.config.train.epochs;
    let mut end = End::Exited;
    let mut first_progress = None;
    if ctx.stopping() {
        stdin = None;
        grace_deadline = Some(Instant::now() + opts.grace);
    }
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => match ChildMessage::parse(&line).inspect(|_| {
                    first_progress.get_or_insert_with(|| claimed_at.elapsed());
                }) {
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
    let (stderr_tail, startup) = stderr_task.await.unwrap_or_default();
    let stderr_tail = Some(stderr_tail.as_str()).filter(|s| !s.is_empty());
    {
        let mut overhead = ctx.overhead.lock().expect("overhead lock");
        if let Some(t) = startup {
            overhead.started += 1;
            overhead.startup += t;
        }
        if let Some(t) = first_progress {
            overhead.progressed += 1;
            overhead.to_first_progress += t;
        }
    }

    if matches!(end, End::LeaseLost) {
        ctx.emit(Event::LeaseLost { job, attempt });
        return Ok(Ended::Other);
    }
    let failed = |error: String, status: JobStatus| Event::Failed {
        job: job.clone(),
        attempt,
        error,
        status,
    };
    // Why the attempt failed, whether another may succeed, and whether memory ran out.
    let (error, retry, out_of_memory) = match outcome {
        Some(ChildMessage::Done { result }) => {
            return match store.complete(&job, attempt, worker, &result).await {
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
                    ctx.advance().await;
                    Ok(Ended::Completed {
                        raised_to: ctx.devices.completed(slot),
                    })
                }
                Err(cg_store::Error::StaleAttempt { .. }) => {
                    ctx.emit(Event::LeaseLost { job, attempt });
                    Ok(Ended::Other)
                }
                Err(e) => Err(e.into()),
            };
        }
        _ if matches!(end, End::TimedOut) => {
            let secs = opts.timeout_per_job.unwrap_or_default().as_secs();
            let error = format!("timed out after {secs} s (--timeout-per-job); killed");
            (error, true, false)
        }
        Some(ChildMessage::Failed { kind, message })
            if kind != FailureKind::Stopped && !ctx.stopping() =>
        {
            let oom = is_out_of_memory(&message) || stderr_tail.is_some_and(is_out_of_memory);
            (message, kind.retryable() || oom, oom)
        }
        _ if ctx.stopping() || matches!(outcome, Some(ChildMessage::Failed { .. })) => {
            // Stopped on request (or asked to stop and it died): back to the queue.
            if store.requeue(&job, attempt).await? {
                ctx.emit(Event::Requeued { job, attempt });
            } else {
                ctx.emit(Event::LeaseLost { job, attempt });
            }
            return Ok(Ended::Other);
        }
        _ => {
            let how = match status {
                Ok(s) => describe_exit(s),
                Err(e) => format!("could not be waited for ({e})"),
            };
            let last = stderr_tail
                .and_then(|t| panic_message(t).or_else(|| last_line(t)))
                .map(|l| format!(": {l}"))
                .unwrap_or_default();
            let error = format!("job runner {how} without a result{last}");
            (error, true, stderr_tail.is_some_and(is_out_of_memory))
        }
    };
    // The device's limits change before the job is back in the queue, so that no idle slot
    // takes it again under the old limit.
    let others = ctx.devices.running_on(slot).saturating_sub(1);
    if out_of_memory && others > 0 {
        // Its neighbours took the memory: not the job's fault, so no attempt is spent.
        let lowered_to = ctx.devices.lower(slot);
        let error = format!(
            "{error} (out of memory beside {others} other job(s) on {slot}; back in the queue, \
             no attempt spent)"
        );
        if store
            .requeue_because(&job, attempt, Some(&error), stderr_tail)
            .await?
        {
            ctx.emit(failed(error, JobStatus::Queued));
        } else {
            ctx.emit(Event::LeaseLost { job, attempt });
        }
        return Ok(Ended::OutOfMemory {
            beside_others: true,
            lowered_to,
            retried: true,
        });
    }
    if out_of_memory {
        ctx.devices.out_of_memory_alone(slot);
    }
    let status = store
        .fail(&job, attempt, worker, &error, stderr_tail, retry)
        .await?;
    ctx.emit(failed(error, status));
    if status == JobStatus::Failed {
        ctx.advance().await;
    }
    Ok(if out_of_memory {
        Ended::OutOfMemory {
            beside_others: false,
            lowered_to: None,
            retried: status == JobStatus::Queued,
        }
    } else {
        Ended::Other
    })
}

/// Why a job from the store cannot run as it is: an id that is not a plain name (it would name a
/// path or an option) or a configuration outside its bounds.
fn check_claim(claim: &Claim) -> std::result::Result<(), String> {
    cg_core::check_job_id(&claim.job.id)?;
    let problems = claim.job.config.problems();
    if !problems.is_empty() {
        let list: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect();
        return Err(format!(
            "the job's configuration in the database is invalid ({})",
            list.join("; ")
        ));
    }
    Ok(())
}

/// A directory mode for files of mode `file`: searchable where readable (0600 → 0700).
fn dir_mode(file: u32) -> u32 {
    let file = file & 0o777;
    file | ((file & 0o444) >> 2)
}

/// The last line of `s` that is not blank, trimmed.
fn last_line(s: &str) -> Option<String> {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
}

/// A Rust panic in `stderr` as `panicked at FILE:LINE:COL: MESSAGE` (the last panic; its message
/// may span lines up to the backtrace note), so that the job's error says why it died.
fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.rfind("panicked at ")?;
    let rest = &stderr[start..];
    let mut lines = rest.lines();
    let head = lines.next()?.trim_end();
    let message: Vec<&str> = lines
        .take_while(|l| !l.starts_with("note: ") && !l.starts_with("stack backtrace:"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    // Before Rust 1.73 the message followed on the same line: `panicked at 'msg', file:line`.
    let mut out = head.trim_end_matches(':').to_string();
    if !message.is_empty() {
        out.push_str(": ");
        out.push_str(&message.join(" "));
    }
    let mut out: String = out.chars().take(2000).collect();
    out.truncate(out.trim_end().len());
    Some(out)
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

    #[test]
    fn a_panic_is_told_by_its_message_not_the_backtrace_hint() {
        for (stderr, expected) in [
            (
                "epoch 1\nthread 'main' panicked at crates/x/src/lib.rs:10:5:\nindex out of bounds: \
                 the len is 3 but the index is 7\nnote: run with `RUST_BACKTRACE=1` environment \
                 variable to display a backtrace\n",
                "panicked at crates/x/src/lib.rs:10:5: index out of bounds: the len is 3 but the index is 7",
            ),
            (
                "thread '<unnamed>' panicked at src/a.rs:1:1:\nfirst\nsecond line\nstack backtrace:\n   0: x\n",
                "panicked at src/a.rs:1:1: first second line",
            ),
            (
                "thread 'main' panicked at 'old style', src/a.rs:1:1\nnote: run with `RUST_BACKTRACE=1`\n",
                "panicked at 'old style', src/a.rs:1:1",
            ),
        ] {
            assert_eq!(panic_message(stderr).as_deref(), Some(expected), "{stderr}");
        }
        assert_eq!(panic_message("Killed\n"), None);
        assert_eq!(last_line("a\n  b  \n\n").as_deref(), Some("b"));
    }

    #[test]
    fn run_directories_follow_the_database_mode() {
        assert_eq!(dir_mode(0o600), 0o700);
        assert_eq!(dir_mode(0o640), 0o750);
        assert_eq!(dir_mode(0o644), 0o755);
        assert_eq!(dir_mode(0o100600), 0o700);
    }

    #[test]
    fn claims_with_unsafe_ids_or_configs_are_refused() {
        let config = cg_core::RunConfig::with_dataset(cg_core::DatasetSpec {
            kind: cg_core::DatasetKind::Synthetic,
            path: None,
            augment: None,
            synthetic: None,
        });
        let claim = |id: &str, config: cg_core::RunConfig| Claim {
            job: cg_core::JobSpec {
                id: id.to_string(),
                params: Default::default(),
                config,
            },
            sweep: "s".into(),
            attempt: 1,
        };
        assert_eq!(check_claim(&claim("0123abcd", config.clone())), Ok(()));
        for id in ["/tmp/evil", "../../etc", "--device", "a/b", "", ".x"] {
            let err = check_claim(&claim(id, config.clone())).unwrap_err();
            assert!(err.contains("job id"), "{id}: {err}");
        }
        let mut huge = config.clone();
        huge.model.width = 4_294_967_296;
        let err = check_claim(&claim("ok", huge)).unwrap_err();
        assert!(err.contains("model.width: must be at most"), "{err}");
        let mut one = config;
        one.train.batch_size = 1;
        assert!(
            check_claim(&claim("ok", one))
                .unwrap_err()
                .contains("train.batch_size")
        );
    }

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
