//! `cg bench`: images/s of training and inference, dense and sparse.

use std::process::ExitCode;

use anyhow::Result;
use cg_model::bench::{BenchLine, BenchOptions, SparseModel, run_bench};
use clap::Args;

use crate::util::{BackendArgs, MAX_BENCH_ITERS, count_in, parse_threads, set_threads};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub target: BackendArgs,
    /// Batch sizes (each within `train.batch_size`'s bounds).
    #[arg(long, value_delimiter = ',', default_value = "128,256",
          value_parser = count_in(cg_core::limits::BATCH_SIZE as u64))]
    pub batch: Vec<usize>,
    /// Timed iterations per line (after one warm-up), 1 to 10000.
    #[arg(long, default_value_t = 2, value_parser = count_in(MAX_BENCH_ITERS))]
    pub iters: usize,
    /// Network depth (6n+2) and width.
    #[arg(long, default_value_t = 20)]
    pub depth: usize,
    #[arg(long, default_value_t = 16)]
    pub width: usize,
    /// Fractions of closed gates for the sparse-inference lines.
    #[arg(long, value_delimiter = ',', default_value = "0,0.25,0.5,0.75,1")]
    pub closed: Vec<f64>,
    /// Gated networks whose real skipping is timed: `ctrl` (the controller decides) and/or
    /// `predictor` (`cir+ctrl` gates whose predictor decides).
    #[arg(long, value_delimiter = ',', default_value = "ctrl", value_parser = parse_sparse_model)]
    pub sparse_models: Vec<SparseModel>,
    /// Inference only.
    #[arg(long)]
    pub no_train: bool,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// CPU threads for the backend, at most the CPUs (default: all of them).
    #[arg(long, value_parser = parse_threads)]
    pub threads: Option<usize>,
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    set_threads(args.threads)?;
    let (backend, device) = args.target.target()?;
    let opts = BenchOptions {
        batches: args.batch.clone(),
        iters: args.iters.max(1),
        closed: args.closed.clone(),
        depth: args.depth,
        width: args.width,
        train: !args.no_train,
        sparse_models: args.sparse_models.clone(),
    };
    if !args.json {
        eprintln!(
            "cg bench on {} ({}), synthetic 3x32x32 data, consistency loss off",
            backend,
            cg_model::device::device_name(backend, device)
        );
        println!(
            "{:<22} {:<13} {:>5} {:>10} {:>7} {:>8} {:>8} {:>8}",
            "model", "mode", "batch", "img/s", "closed", "speedup", "theory", "warmup"
        );
    }
    let json = args.json;
    let mut print = |l: &BenchLine| {
        if json {
            println!(
                "{}",
                serde_json::to_string(l).expect("bench line serialises")
            );
        } else {
            let opt = |v: Option<f64>, prec: usize| {
                v.map(|v| format!("{v:.prec$}"))
                    .unwrap_or_else(|| "-".into())
            };
            println!(
                "{:<22} {:<13} {:>5} {:>10.1} {:>7} {:>8} {:>8} {:>7.1}s",
                l.model,
                l.mode,
                l.batch,
                l.img_per_s,
                opt(l.closed, 2),
                opt(l.speedup, 2),
                opt(l.theoretical_speedup, 2),
                l.warmup_secs
            );
        }
    };
    run_bench(backend, device, &opts, &mut print)?;
    Ok(ExitCode::SUCCESS)
}

/// `ctrl` or `predictor`.
fn parse_sparse_model(s: &str) -> std::result::Result<SparseModel, String> {
    SparseModel::parse(s).ok_or_else(|| format!("expected `ctrl` or `predictor`, got `{s}`"))
}
