//! `cg bench-workers`: the workers' throughput and per-job overhead. The same short jobs run once
//! per packing (jobs at once: `--workers` on the CPU, `--jobs-per-gpu` on GPUs), each time from a
//! fresh SQLite store in a temporary directory, through the real path: submit, claim, one child
//! process per job, results recorded.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use cg_daemon::submit_sweep;
use cg_store::{Store, SubmitOptions};
use cg_sweep::{LoadOptions, load_sweep};
use clap::Args;
use tokio::sync::{mpsc, watch};

use crate::db::{Threads, runtime_with};
use crate::run_cmd::{WorkerOpts, local_options};
use crate::util::{MAX_BENCH_JOBS, MAX_BENCH_STEPS, MAX_JOBS_AT_ONCE, count_in};

#[derive(Args, Debug)]
pub struct BenchWorkersArgs {
    /// Jobs in the sweep, 1 to 10000.
    #[arg(long, default_value_t = 8, value_parser = count_in(MAX_BENCH_JOBS))]
    pub jobs: usize,
    /// Training steps (batches of 32) per job, in one epoch; 1 measures the per-job overhead.
    #[arg(long, default_value_t = 8, value_parser = count_in(MAX_BENCH_STEPS))]
    pub steps: usize,
    /// Jobs at once to compare: CPU workers, or jobs per GPU when GPUs are used (each 1 to 256).
    #[arg(long, value_delimiter = ',', default_value = "1,2",
          value_parser = count_in(MAX_JOBS_AT_ONCE))]
    pub packing: Vec<usize>,
    /// GPUs: `none`, `auto` or indices like `0` (as for `cg run`).
    #[arg(long, default_value = "none")]
    pub gpus: String,
    /// Backend of the jobs: `flex`, `cubecl`, `libtorch` or `auto` (as for `cg run`).
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// `cpu` (as `--gpus none`) or `cuda:N` (as `--gpus N`).
    #[arg(long, conflicts_with = "gpus")]
    pub device: Option<String>,
    /// CPU threads per job, at most the CPUs (default: the cores divided among the jobs at once).
    #[arg(long, value_parser = crate::util::parse_threads)]
    pub threads_per_job: Option<usize>,
    /// Network depth (6n+2) and width of the jobs.
    #[arg(long, default_value_t = 8)]
    pub depth: usize,
    #[arg(long, default_value_t = 16)]
    pub width: usize,
    /// Keep the temporary directories (stores, logs) here instead of deleting them.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

/// One packing's figures.
struct Line {
    packing: usize,
    slots: usize,
    wall_secs: f64,
    completed: usize,
    startup_ms: Option<f64>,
    first_progress_ms: Option<f64>,
}

pub fn run(args: BenchWorkersArgs) -> Result<ExitCode> {
    anyhow::ensure!(
        args.jobs > 0 && args.steps > 0,
        "--jobs and --steps must be positive"
    );
    let rt = runtime_with(Threads::Workers)?;
    eprintln!(
        "cg bench-workers: {} jobs of {} step(s) (ResNet-{} width {}, batch 32, synthetic 3x32x32), backend {}, {}",
        args.jobs,
        args.steps,
        args.depth,
        args.width,
        args.backend,
        args.device
            .clone()
            .unwrap_or_else(|| format!("gpus {}", args.gpus))
    );
    println!(
        "{:>7} {:>5} {:>9} {:>9} {:>10} {:>13} {:>17}",
        "packing", "slots", "completed", "wall s", "jobs/min", "startup ms", "claim→first ms"
    );
    let mut lines = Vec::new();
    for &packing in &args.packing {
        let line = rt.block_on(bench_one(&args, packing.max(1)))?;
        let opt = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.0}"));
        println!(
            "{:>7} {:>5} {:>9} {:>9.2} {:>10.1} {:>13} {:>17}",
            line.packing,
            line.slots,
            format!("{}/{}", line.completed, args.jobs),
            line.wall_secs,
            line.completed as f64 * 60.0 / line.wall_secs,
            opt(line.startup_ms),
            opt(line.first_progress_ms),
        );
        lines.push(line);
    }
    if let (Some(first), Some(best)) = (
        lines.first(),
        lines
            .iter()
            .min_by(|a, b| a.wall_secs.total_cmp(&b.wall_secs)),
    ) {
        println!(
            "packing {} is {:.2}x the speed of packing {}",
            best.packing,
            first.wall_secs / best.wall_secs,
            first.packing
        );
    }
    let all_done = lines.iter().all(|l| l.completed == args.jobs);
    Ok(if all_done {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: some jobs did not complete; see the logs (--keep DIR)");
        ExitCode::FAILURE
    })
}

async fn bench_one(args: &BenchWorkersArgs, packing: usize) -> Result<Line> {
    let dir = match &args.keep {
        Some(keep) => {
            let d = keep.join(format!("packing-{packing}"));
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create {}", d.display()))?;
            tempfile::TempDir::with_prefix_in("run-", &d)?
        }
        None => tempfile::tempdir()?,
    };
    let batch = 32;
    let seeds: Vec<String> = (0..args.jobs).map(|s| s.to_string()).collect();
    let yaml = dir.path().join("bench.yaml");
    std::fs::write(
        &yaml,
        format!(
            "name: bench-workers\n\
             dataset: {{kind: synthetic, synthetic: {{n_train: {n_train}, n_test: {batch}, side: 32, channels: 3}}}}\n\
             model: {{depth: {depth}, width: {width}}}\n\
             train: {{epochs: 1, batch_size: {batch}}}\n\
             parameters:\n  train.seed:\n    values: [{seeds}]\n",
            n_train = args.steps * batch,
            depth = args.depth,
            width = args.width,
            seeds = seeds.join(", "),
        ),
    )?;
    let sweep = load_sweep(&yaml, &LoadOptions::default()).map_err(|d| anyhow::anyhow!("{d}"))?;
    let store = Store::open(dir.path().join("cg.db").as_path()).await?;
    submit_sweep(&store, &sweep, &SubmitOptions::default()).await?;

    let opts = WorkerOpts {
        workers: packing,
        threads_per_job: args.threads_per_job,
        timeout_per_job: None,
        gpus: args.gpus.clone(),
        jobs_per_gpu: packing,
        runs_dir: dir.path().join("runs"),
        max_consecutive_failures: 0,
        backend: args.backend.clone(),
        device: args.device.clone(),
    };
    let mut options = local_options(&opts)?;
    options.sweep = Some(sweep.name().to_string());
    crate::run_cmd::check_gpus(&options).await?;
    let slots = options.slots.len();
    let (events, mut events_rx) = mpsc::unbounded_channel();
    let drain = tokio::spawn(async move { while events_rx.recv().await.is_some() {} });
    let (_stop, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let summary = cg_daemon::run_local(store.clone(), options, events, stop_rx).await?;
    let wall_secs = started.elapsed().as_secs_f64();
    let _ = drain.await;
    let completed = store.sweep_status(sweep.name()).await?.completed;
    store.close().await;
    if args.keep.is_some() {
        let _ = dir.keep();
    }
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    Ok(Line {
        packing,
        slots,
        wall_secs,
        completed,
        startup_ms: summary.overhead.mean_startup().map(ms),
        first_progress_ms: summary.overhead.mean_to_first_progress().map(ms),
    })
}
