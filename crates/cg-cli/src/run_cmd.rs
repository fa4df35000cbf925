//! `cg run`, `cg sweep submit` and the hidden `cg job-runner`: glue between the command line and
//! cg-daemon. Validation, the job limit and the exit codes are decided here; submitting, the
//! workers and the child protocol live in cg-daemon.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cg_core::{JobRecord, JobStatus};
use cg_daemon::{Event, LocalOptions, Slot, submit_sweep};
use cg_model::{BackendKind, DeviceSpec};
use cg_store::{Store, SubmitOptions, SubmitSummary};
use cg_sweep::{DEFAULT_JOB_LIMIT, LoadOptions, SHORT_ID_LEN, Sweep, load_sweep};
use clap::Args;
use tokio::sync::{mpsc, watch};

use crate::db::{DbArg, Threads, runtime_with};
use crate::reporter::ReportSettings;
use crate::util::{
    BackendArgs, EXIT_INVALID, MAX_JOBS_AT_ONCE, MAX_JOBS_PER_GPU, backend_of, count_in,
    human_secs, parse_threads, stamp_provenance,
};

/// Longest `--timeout-per-job` and `--lease`: one year, far from overflowing a clock.
const MAX_SECS: u64 = 366 * 24 * 3600;

/// Exit code after an interruption (Ctrl-C / SIGTERM), as shells report SIGINT.
const EXIT_INTERRUPTED: u8 = 130;

/// A sweep file and where its jobs go: shared by `cg sweep submit` and `cg run`.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// Sweep file (YAML).
    pub file: PathBuf,
    #[command(flatten)]
    pub db: DbArg,
    /// Put completed and failed jobs of the sweep back in the queue.
    #[arg(long)]
    pub rerun: bool,
    /// Submit even when the sweep has more jobs than the safety limit.
    #[arg(long)]
    pub yes: bool,
    /// Add this file's jobs to an existing sweep of the same name made from a different file
    /// (the sweep then takes this file's axes and objectives). Without it, that is refused.
    #[arg(long)]
    pub merge: bool,
    /// Serve this sweep's jobs before those of sweeps with a lower priority (default 0: active
    /// sweeps take turns).
    #[arg(
        long,
        default_value_t = 0,
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub priority: i64,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub sweep: SubmitArgs,
    #[command(flatten)]
    pub workers: WorkerOpts,
    /// Keep every epoch checkpoint after a job completes.
    #[arg(long)]
    pub keep_checkpoints: bool,
}

/// How local workers run: shared by `cg run`, `cg worker` and `cg daemon`.
#[derive(Args, Debug)]
pub struct WorkerOpts {
    /// Jobs trained at once on the CPU (when no GPU is used), 1 to 256.
    #[arg(long, default_value_t = 1, value_parser = count_in(MAX_JOBS_AT_ONCE))]
    pub workers: usize,
    /// CPU threads per job, at most the CPUs (default: the cores divided among the workers).
    #[arg(long, value_parser = parse_threads)]
    pub threads_per_job: Option<usize>,
    /// Wall-clock limit of one attempt, in seconds; past it the job's runner is killed.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    pub timeout_per_job: Option<u64>,
    /// GPUs to use: `auto` (CUDA_VISIBLE_DEVICES or nvidia-smi, CUDA builds only), `none`, or
    /// indices like `0,1`.
    #[arg(long, default_value = "auto")]
    pub gpus: String,
    /// Jobs trained at once on each GPU, 1 to 64.
    #[arg(long, default_value_t = 1, value_parser = count_in(MAX_JOBS_PER_GPU))]
    pub jobs_per_gpu: usize,
    /// Checkpoints and logs go to DIR/<job-id>/.
    #[arg(long, default_value = "runs", value_name = "DIR")]
    pub runs_dir: PathBuf,
    /// Stop starting jobs once this many in a row have failed for good (0: never).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub max_consecutive_failures: u32,
    /// Backend of the jobs: `flex`, `cubecl`, `libtorch` or `auto` (as for `cg train`).
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// `cpu` (as `--gpus none`) or `cuda:N` (as `--gpus N`); default: as `--gpus` says.
    #[arg(long, conflicts_with = "gpus")]
    pub device: Option<String>,
}

#[derive(Args, Debug)]
pub struct JobRunnerArgs {
    /// The job (for messages only; the configuration comes on stdin).
    #[arg(long)]
    pub job_id: String,
    #[arg(long)]
    pub attempt: u32,
    #[arg(long)]
    pub checkpoint_dir: PathBuf,
    #[command(flatten)]
    pub target: BackendArgs,
    #[arg(long)]
    pub keep_checkpoints: bool,
}

/// The runtime of these commands: workers beside progress lines, reports and signals.
fn runtime() -> Result<tokio::runtime::Runtime> {
    runtime_with(Threads::Workers)
}

/// Loads and checks a sweep; `Err(code)` after printing every problem (or the job-limit refusal).
pub(crate) fn load_checked(file: &std::path::Path, yes: bool) -> Result<Sweep, ExitCode> {
    let sweep = match load_sweep(file, &LoadOptions::default()) {
        Ok(s) => s,
        Err(diags) => {
            eprintln!("{diags}");
            return Err(ExitCode::from(EXIT_INVALID));
        }
    };
    if !yes && let Err(e) = sweep.check_job_limit(DEFAULT_JOB_LIMIT) {
        eprintln!("error: {e}; pass --yes to submit it anyway");
        return Err(ExitCode::from(EXIT_INVALID));
    }
    Ok(sweep)
}

pub(crate) async fn submit(
    store: &Store,
    sweep: &Sweep,
    args: &SubmitArgs,
) -> Result<SubmitSummary> {
    let options = SubmitOptions {
        rerun: args.rerun,
        merge: args.merge,
        priority: args.priority,
        ..SubmitOptions::default()
    };
    let summary = submit_sweep(store, sweep, &options)
        .await
        .with_context(|| format!("cannot submit sweep `{}` to {}", sweep.name(), store.url()))?;
    eprintln!(
        "sweep `{}`: {} job(s) added, {} already stored, {} requeued ({})",
        sweep.name(),
        summary.added,
        summary.existing,
        summary.requeued,
        store.url()
    );
    Ok(summary)
}

/// `cg sweep submit`.
pub fn submit_cmd(args: SubmitArgs) -> Result<ExitCode> {
    let sweep = match load_checked(&args.file, args.yes) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    runtime()?.block_on(async {
        let store = Store::open(args.db.db.as_str())
            .await
            .context("cannot open the database")?;
        submit(&store, &sweep, &args).await?;
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Local-worker options shared by `cg run`, `cg worker` and `cg daemon`.
pub(crate) fn local_options(opts: &WorkerOpts) -> Result<LocalOptions> {
    let slots = slots(opts)?;
    // Every job, on a CPU or a GPU slot, gets its share of the cores for its host-side work.
    let per_job = slots.len().max(1);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // The backend must run on every slot's device; each job runner resolves `auto` itself.
    let backend: BackendKind = opts.backend.parse()?;
    for device in slots.iter().map(Slot::child_device) {
        backend.resolve(device)?;
    }
    let exe = std::env::current_exe().context("cannot find the cg binary to run jobs with")?;
    let runner = vec!["job-runner".into(), "--backend".into(), backend.to_string()];
    let mut options = LocalOptions::new(exe, runner);
    options.slots = slots;
    options.threads_per_job = Some(opts.threads_per_job.unwrap_or((cores / per_job).max(1)));
    options.timeout_per_job = opts.timeout_per_job.map(Duration::from_secs);
    options.runs_dir = opts.runs_dir.clone();
    options.max_consecutive_failures = Some(opts.max_consecutive_failures);
    Ok(options)
}

/// The devices of the worker slots: GPUs when asked for (or found, in a CUDA build), else CPUs.
fn slots(opts: &WorkerOpts) -> Result<Vec<Slot>> {
    let cuda_build = cfg!(feature = "cuda") || cfg!(feature = "libtorch");
    let gpus = match opts.device.as_deref() {
        None => opts.gpus.clone(),
        Some(d) => match d.parse::<DeviceSpec>()? {
            DeviceSpec::Cpu => "none".into(),
            DeviceSpec::Cuda(n) => n.to_string(),
        },
    };
    let gpus = match gpus.as_str() {
        "none" | "" => Vec::new(),
        "auto" if cuda_build => cg_daemon::detect_gpus().unwrap_or_default(),
        "auto" => Vec::new(),
        list => {
            let requested = list
                .split(',')
                .map(|s| s.trim().parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| {
                    format!("--gpus takes auto, none or indices like 0,1; got `{list}`")
                })?;
            anyhow::ensure!(
                cuda_build,
                "--gpus {list}: this cg was built without CUDA support; build it with \
                 `cargo build --release -p cg-cli --features cuda` (or `libtorch`), or run on the \
                 CPU with --gpus none"
            );
            cg_daemon::pick_gpus(&requested, cg_daemon::detect_gpus().as_deref())?
        }
    };
    if gpus.is_empty() {
        return Ok(vec![Slot::Cpu; opts.workers.max(1)]);
    }
    Ok(cg_daemon::gpu_slots(&gpus, opts.jobs_per_gpu))
}

/// `cg run`.
pub fn run_cmd(args: RunArgs) -> Result<ExitCode> {
    let sweep = match load_checked(&args.sweep.file, args.sweep.yes) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let mut options = local_options(&args.workers)?;
    let threads = options.threads_per_job.unwrap_or(1);
    options.sweep = Some(sweep.name().to_string());
    options.keep_checkpoints = args.keep_checkpoints;

    runtime()?.block_on(async move {
        check_gpus(&options).await?;
        let store = Store::open(args.sweep.db.db.as_str())
            .await
            .context("cannot open the database")?;
        submit(&store, &sweep, &args.sweep).await?;
        let name = sweep.name().to_string();
        eprintln!(
            "running sweep `{name}` with {} worker(s) ({}; {threads} CPU thread(s) per job); Ctrl-C stops and requeues",
            options.slots.len(),
            describe_slots(&options.slots),
        );

        let summary = drive(&store, options, Some(name.clone()), None, None).await?;
        if let Err(cg_store::Error::UnknownSweep(_)) = store.sweep(&name).await {
            // Deleted by `cg sweep delete` while this ran: a user's decision, not a failure.
            eprintln!("sweep `{name}` was deleted while it ran; nothing is left to run");
            store.close().await;
            return Ok(ExitCode::SUCCESS);
        }

        let records = store.job_records(&name).await?;
        print_summary(&records);
        print_overhead(&summary.overhead);
        if !summary.interrupted {
            match crate::reporter::foreground_report(&store, &name).await {
                Ok(path) => eprintln!("report: {}", path.display()),
                Err(e) => eprintln!("warning: the report could not be written: {e:#}"),
            }
        }
        store.close().await;
        if summary.interrupted {
            eprintln!("interrupted; run the same command again to resume");
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        if let Some(h) = &summary.halted {
            report_halt(h);
            return Ok(ExitCode::FAILURE);
        }
        let all_done = records.iter().all(|r| r.status == JobStatus::Completed);
        Ok(if all_done { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    })
}

/// Checks each GPU of the slots with `cg device-check` before any job is claimed, so that a
/// broken CUDA set-up fails once, here, rather than in every job.
pub(crate) async fn check_gpus(options: &LocalOptions) -> Result<()> {
    if options.slots.iter().all(|s| *s == Slot::Cpu) {
        return Ok(());
    }
    eprintln!("checking the GPUs ({})…", describe_slots(&options.slots));
    // `device-check` with the runner's own arguments (`--backend X`).
    let mut check = vec!["device-check".to_string()];
    check.extend(options.runner_args.iter().skip(1).cloned());
    cg_daemon::check_gpus(
        &options.exe,
        &check,
        &options.slots,
        Duration::from_secs(300),
    )
    .await?;
    Ok(())
}

/// Runs the workers with signal handling and progress lines until they finish or are stopped.
/// With `reports`, the sweeps' reports are written as they run (see `reporter`). `watcher` (the
/// daemon's folder watcher) and the reporter run beside the workers: if either dies (a panic),
/// the workers are stopped, their jobs go back to the queue and the run ends with an error; the
/// process never goes on half alive.
async fn drive(
    store: &Store,
    options: LocalOptions,
    sweep: Option<String>,
    reports: Option<ReportSettings>,
    watcher: Option<tokio::task::JoinHandle<()>>,
) -> Result<cg_daemon::RunSummary> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = std::sync::Arc::new(stop_tx);
    let signals = tokio::spawn({
        let stop_tx = std::sync::Arc::clone(&stop_tx);
        async move {
            wait_for_signal().await;
            eprintln!(
                "stopping: running jobs stop at their next step and go back to the queue (again to quit at once)"
            );
            let _ = stop_tx.send(true);
            wait_for_signal().await;
            eprintln!("quitting now; unfinished jobs are taken back on the next run");
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
    });
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<Event>();
    let (view_tx, view_rx) = mpsc::unbounded_channel();
    let view = tokio::spawn(show_progress(store.clone(), sweep, view_rx));
    let (report_tx, mut reporter) = match reports {
        Some(settings) => {
            let (tx, rx) = mpsc::unbounded_channel();
            let task = tokio::spawn(crate::reporter::run_reporter(store.clone(), settings, rx));
            (Some(tx), Some(task))
        }
        None => (None, None),
    };
    let tee = tokio::spawn(async move {
        while let Some(event) = events_rx.recv().await {
            if let Some(tx) = &report_tx
                && !matches!(event, Event::Step { .. })
            {
                let _ = tx.send(event.clone());
            }
            let _ = view_tx.send(event);
        }
    });
    let mut watcher = watcher;
    let mut died: Option<String> = None;
    let run = cg_daemon::run_local(store.clone(), options, events_tx, stop_rx);
    tokio::pin!(run);
    let outcome = loop {
        tokio::select! {
            outcome = &mut run => break outcome,
            joined = async { watcher.as_mut().expect("guarded").await }, if watcher.is_some() => {
                watcher = None;
                died.get_or_insert(side_task_died("the folder watcher", joined, &stop_tx));
            }
            joined = async { reporter.as_mut().expect("guarded").await }, if reporter.is_some() => {
                reporter = None;
                died.get_or_insert(side_task_died("the report writer", joined, &stop_tx));
            }
        }
    };
    if let Some(w) = watcher {
        w.abort();
    }
    let _ = tee.await;
    let _ = view.await;
    if let Some(task) = reporter {
        let _ = task.await;
    }
    signals.abort();
    if let Some(why) = died {
        anyhow::bail!("{why}; the workers were stopped and their jobs put back in the queue");
    }
    outcome.context("the workers stopped")
}

/// A task that runs as long as the workers ended early: says why and stops the workers.
fn side_task_died(
    what: &str,
    joined: std::result::Result<(), tokio::task::JoinError>,
    stop: &watch::Sender<bool>,
) -> String {
    let why = match joined {
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            format!("{what} failed: {text}")
        }
        Err(e) => format!("{what} was cancelled: {e}"),
        Ok(()) => format!("{what} ended"),
    };
    eprintln!("error: {why}; stopping the workers (their jobs go back to the queue)");
    let _ = stop.send(true);
    why
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub db: DbArg,
    #[command(flatten)]
    pub workers: WorkerOpts,
    /// Exit once no active sweep has queued jobs and nothing runs (default: wait for more).
    #[arg(long)]
    pub exit_when_idle: bool,
    /// Exit (status 0) once nothing has been claimable, and nothing has run in this worker, for
    /// SECS, whatever other workers still run: a Slurm array's tasks end when their sweep does.
    #[arg(long, value_name = "SECS", conflicts_with = "exit_when_idle",
          value_parser = clap::value_parser!(u64).range(0..=MAX_SECS))]
    pub until_idle: Option<u64>,
    /// Lease of a claimed job, in seconds: a worker that stops heartbeating (its machine died)
    /// loses its jobs to other workers this long after its last heartbeat.
    #[arg(long, default_value_t = 60, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    pub lease: u64,
    /// Reports of the sweeps worked on go to DIR/<sweep>/ (refreshed while they run).
    #[arg(long, default_value = "reports", value_name = "DIR")]
    pub reports: PathBuf,
    /// Write no reports.
    #[arg(long)]
    pub no_reports: bool,
    /// Least seconds between two refreshes of a running sweep's report.
    #[arg(long, default_value_t = 30, value_name = "SECS", hide = true,
          value_parser = clap::value_parser!(u64).range(0..=MAX_SECS))]
    pub report_every: u64,
}

#[derive(Args, Debug)]
pub struct DaemonArgs {
    #[command(flatten)]
    pub worker: WorkerArgs,
    /// Submit the sweep files (*.yaml, *.yml) that appear or change in DIR, as `cg sweep submit`
    /// would; a file that is refused is reported once, in the log and in `cg status`.
    #[arg(long, value_name = "DIR")]
    pub watch: Option<PathBuf>,
}

/// `cg worker`: train the queued jobs of every active sweep in an existing database.
pub fn worker_cmd(args: WorkerArgs) -> Result<ExitCode> {
    worker_or_daemon(args, None, false)
}

/// `cg daemon`: a worker that keeps running, one per SQLite database (an flock beside the file).
pub fn daemon_cmd(args: DaemonArgs) -> Result<ExitCode> {
    worker_or_daemon(args.worker, args.watch, true)
}

fn worker_or_daemon(args: WorkerArgs, watch: Option<PathBuf>, daemon: bool) -> Result<ExitCode> {
    if let Some(dir) = &watch {
        anyhow::ensure!(dir.is_dir(), "--watch {}: no such directory", dir.display());
    }
    let reports = (!args.no_reports).then(|| ReportSettings {
        dir: args.reports.clone(),
        every: Duration::from_secs(args.report_every),
    });
    let mut options = local_options(&args.workers)?;
    options.exit_when_idle = args.exit_when_idle;
    options.until_idle = args.until_idle.map(Duration::from_secs);
    options.lease = Duration::from_secs(args.lease);
    runtime()?.block_on(async move {
        // A worker joins a database its coordinator made; the daemon is the coordinator: it
        // creates the file if need be, takes the lock, then checks the GPUs and migrates.
        let store = if daemon {
            Store::open(args.db.db.as_str())
                .await
                .context("cannot open the database")?
        } else {
            Store::open_existing(args.db.db.as_str())
                .await
                .context("cannot open the database (submit a sweep first)")?
        };
        // Held until this process exits: a second daemon on the same SQLite file is refused.
        let _lock = match (daemon, store.sqlite_path()) {
            (true, Some(path)) => Some(daemon_lock(path)?),
            _ => None,
        };
        check_gpus(&options).await?;
        if daemon {
            store
                .migrate()
                .await
                .with_context(|| format!("cannot migrate {}", store.url()))?;
        }
        eprintln!(
            "{} on {} with {} slot(s) ({}); Ctrl-C stops and requeues",
            if daemon { "daemon" } else { "worker" },
            store.url(),
            options.slots.len(),
            describe_slots(&options.slots)
        );
        let watcher = watch.map(|dir| {
            eprintln!("watching {} for sweep files", dir.display());
            tokio::spawn(crate::reporter::watch_loop(
                store.clone(),
                cg_daemon::Watcher::new(dir, SubmitOptions::default()),
            ))
        });
        let summary = drive(&store, options, None, reports, watcher).await?;
        store.close().await;
        if let Some(h) = &summary.halted {
            report_halt(h);
        }
        Ok(if summary.interrupted {
            ExitCode::from(EXIT_INTERRUPTED)
        } else if summary.halted.is_some() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    })
}

/// Takes the lock file `<db>.daemon.lock` beside a SQLite database, or says who holds it.
fn daemon_lock(db: &std::path::Path) -> Result<std::fs::File> {
    let mut path = db.as_os_str().to_owned();
    path.push(".daemon.lock");
    let path = PathBuf::from(path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0).ok();
            std::io::Write::write_all(&mut &file, format!("{}\n", std::process::id()).as_bytes())
                .ok();
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            anyhow::bail!(
                "another cg daemon (pid {}) is running on {}",
                holder.trim(),
                db.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

fn report_halt(h: &cg_daemon::Halted) {
    eprintln!(
        "error: stopped after {} consecutive failed jobs (--max-consecutive-failures); the rest \
         stay queued. Last error: {}",
        h.failures, h.last_error
    );
}

/// The mean per-job overhead of the workers, on stdout after the summary table.
fn print_overhead(o: &cg_daemon::Overhead) {
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    if let Some(startup) = o.mean_startup() {
        let first = o
            .mean_to_first_progress()
            .map(ms)
            .unwrap_or_else(|| "-".into());
        println!(
            "per-job overhead (mean of {} attempt(s)): runner start-up {}, claim to first progress {}",
            o.started,
            ms(startup),
            first
        );
    }
}

fn describe_slots(slots: &[Slot]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for s in slots {
        *counts.entry(s.to_string()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(d, n)| format!("{n}× {d}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(SHORT_ID_LEN)]
}

/// Progress of one running job, as the last step message told it.
struct Running {
    attempt: u32,
    epoch: usize,
    epochs: usize,
    step: usize,
    steps_per_epoch: usize,
    img_per_s: f64,
    eta_secs: f64,
}

/// Draws the workers' events as lines on stderr, and every few seconds a status line with the
/// sweep's counts and each running job's epoch, images/s and ETA.
async fn show_progress(
    store: Store,
    sweep: Option<String>,
    mut events: mpsc::UnboundedReceiver<Event>,
) {
    let tty = std::io::stderr().is_terminal();
    let every = Duration::from_secs(if tty { 2 } else { 10 });
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    let mut last_status = Instant::now();
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                show_event(&event, &mut running);
            }
            _ = tick.tick() => {
                if !running.is_empty() && last_status.elapsed() >= every {
                    last_status = Instant::now();
                    let counts = match &sweep {
                        Some(name) => store.sweep_status(name).await.unwrap_or_default(),
                        None => total_counts(&store).await,
                    };
                    let jobs: Vec<String> = running
                        .iter()
                        .map(|(id, r)| {
                            format!(
                                "{} #{} epoch {}/{} step {}/{} {:.0} img/s ETA {}",
                                short(id), r.attempt, r.epoch, r.epochs, r.step, r.steps_per_epoch,
                                r.img_per_s, human_secs(r.eta_secs)
                            )
                        })
                        .collect();
                    eprintln!(
                        "[{}/{} done, {} running, {} failed, {} queued] {}",
                        counts.completed, counts.total(), counts.running, counts.failed,
                        counts.queued, jobs.join(" | ")
                    );
                }
            }
        }
    }
}

/// Job counts over every sweep (a job in two sweeps counts twice).
async fn total_counts(store: &Store) -> cg_store::StatusCounts {
    let mut total = cg_store::StatusCounts::default();
    for s in store.list_sweeps().await.unwrap_or_default() {
        total.queued += s.counts.queued;
        total.running += s.counts.running;
        total.completed += s.counts.completed;
        total.failed += s.counts.failed;
        total.cancelled += s.counts.cancelled;
    }
    total
}

/// One event as a line on stderr (a step only updates the status line's figures).
fn show_event(event: &Event, running: &mut BTreeMap<String, Running>) {
    if let Some(line) = event_line(event, running) {
        eprintln!("{line}");
    }
    track(event, running);
}

/// Keeps the running jobs' progress: a job starts, steps, and ends one way or another.
fn track(event: &Event, running: &mut BTreeMap<String, Running>) {
    match event {
        Event::Started { job, attempt, .. } => {
            running.insert(
                job.clone(),
                Running {
                    attempt: *attempt,
                    epoch: 0,
                    epochs: 0,
                    step: 0,
                    steps_per_epoch: 0,
                    img_per_s: 0.0,
                    eta_secs: 0.0,
                },
            );
        }
        Event::Step {
            job,
            epoch,
            epochs,
            step,
            steps_per_epoch,
            img_per_s,
            eta_secs,
            ..
        } => {
            if let Some(r) = running.get_mut(job) {
                r.epoch = *epoch;
                r.epochs = *epochs;
                r.step = *step;
                r.steps_per_epoch = *steps_per_epoch;
                r.img_per_s = *img_per_s;
                r.eta_secs = *eta_secs;
            }
        }
        Event::Completed { job, .. }
        | Event::Failed { job, .. }
        | Event::Requeued { job, .. }
        | Event::LeaseLost { job, .. } => {
            running.remove(job);
        }
        _ => {}
    }
}

/// The line an event shows, if any (`running` gives an epoch line its images/s).
fn event_line(event: &Event, running: &BTreeMap<String, Running>) -> Option<String> {
    Some(match event {
        Event::TakenBack { jobs, why } => {
            format!("took back {jobs} running job(s): {}", cg_core::shown(why))
        }
        Event::Started {
            job,
            attempt,
            device,
            ..
        } => format!(
            "{} started (attempt {attempt}, {})",
            short(job),
            cg_core::shown(device)
        ),
        Event::Step { .. } => return None,
        Event::Epoch {
            job,
            epochs,
            record,
            ..
        } => format!(
            "{} epoch {}/{}  loss {:.4}  test {:.2}%  savings {:.1}%  {:.0} img/s  {}",
            short(job),
            record.epoch,
            epochs,
            record.train_loss,
            100.0 * record.test_acc,
            100.0 * record.savings_nominal,
            running.get(job).map(|r| r.img_per_s).unwrap_or(0.0),
            human_secs(record.wall_secs)
        ),
        Event::Note { job, message } => format!("{} {}", short(job), cg_core::shown(message)),
        Event::Completed {
            job,
            test_acc,
            savings_nominal,
            wall_secs,
            ..
        } => format!(
            "{} completed: test {:.2}%, savings {:.1}% nominal, {}",
            short(job),
            100.0 * test_acc,
            100.0 * savings_nominal,
            human_secs(*wall_secs)
        ),
        Event::Failed {
            job,
            attempt,
            error,
            status,
        } => format!(
            "{} attempt {attempt} failed ({}): {}",
            short(job),
            if *status == JobStatus::Queued {
                "will retry"
            } else {
                "failed"
            },
            cg_core::shown(error)
        ),
        Event::Requeued { job, attempt } => {
            format!(
                "{} attempt {attempt} stopped; back in the queue",
                short(job)
            )
        }
        Event::LeaseLost { job, attempt } => {
            format!("{} attempt {attempt} lost its lease; dropped", short(job))
        }
        Event::Warning { message } => format!("warning: {}", cg_core::shown(message)),
    })
}

fn print_summary(records: &[JobRecord]) {
    let mut rows: Vec<[String; 7]> = vec![[
        "job".into(),
        "status".into(),
        "attempts".into(),
        "test acc".into(),
        "savings".into(),
        "backend".into(),
        "params".into(),
    ]];
    for r in records {
        let (acc, sav, backend) = match &r.result {
            Some(res) => (
                format!("{:.2}%", 100.0 * res.test_acc_final),
                format!("{:.1}%", 100.0 * res.savings_nominal),
                backend_of(res).to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        rows.push([
            short(&r.job.id).to_string(),
            r.status.as_str().to_string(),
            r.attempts.to_string(),
            acc,
            sav,
            backend,
            crate::util::params_line(&r.job.params),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    let count = |s: JobStatus| records.iter().filter(|r| r.status == s).count();
    println!(
        "{} job(s): {} completed, {} failed, {} queued, {} running, {} cancelled",
        records.len(),
        count(JobStatus::Completed),
        count(JobStatus::Failed),
        count(JobStatus::Queued),
        count(JobStatus::Running),
        count(JobStatus::Cancelled)
    );
    for r in records.iter().filter(|r| r.status == JobStatus::Failed) {
        println!(
            "failed {}: {}",
            short(&r.job.id),
            r.last_error.as_deref().unwrap_or("(no reason recorded)")
        );
    }
}

/// `cg job-runner` (hidden): one job in this process, for `cg run`'s workers.
pub fn job_runner_cmd(args: JobRunnerArgs) -> Result<ExitCode> {
    let (backend, device) = args.target.target()?;
    let options = cg_daemon::runner::ChildOptions {
        checkpoint_dir: args.checkpoint_dir,
        backend,
        device,
        keep_checkpoints: args.keep_checkpoints,
    };
    eprintln!(
        "job {} attempt {} on {}",
        args.job_id,
        args.attempt,
        cg_model::device::device_name(backend, device)
    );
    let input = std::io::BufReader::new(std::io::stdin());
    let code = cg_daemon::runner::run_child(input, std::io::stdout(), &options, |result| {
        stamp_provenance(result, backend, device);
    });
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

#[derive(Args, Debug)]
pub struct DeviceCheckArgs {
    #[command(flatten)]
    pub target: BackendArgs,
}

/// `cg device-check`: exit 0 and print `ok` when the device computes, else the reason and exit 1.
pub fn device_check_cmd(args: DeviceCheckArgs) -> Result<ExitCode> {
    let (backend, device) = args.target.target()?;
    let started = Instant::now();
    cg_model::check_device(backend, device)?;
    println!(
        "ok: {} ({:.2} s)",
        cg_model::device::device_name(backend, device),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
