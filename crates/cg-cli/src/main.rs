//! `cg`: the command line of the CosineGate research platform.

mod bench;
mod bench_workers;
mod data;
mod db;
mod progress;
mod replay;
mod report;
mod reporter;
mod run_cmd;
mod slurm;
mod status_cmd;
mod sweep;
mod train;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "cg",
    version,
    about = "Sweeps, training and Pareto reports for CosineGate dynamic routing"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train one configuration and write its result JSON.
    Train(train::TrainArgs),
    /// Measure training and inference images/s (dense and sparse) on synthetic data.
    Bench(bench::BenchArgs),
    /// Measure the workers: the same short jobs at several packings (jobs at once), wall time
    /// and per-job overhead.
    BenchWorkers(bench_workers::BenchWorkersArgs),
    /// Replay a `method: mo-asha` search over a grid's recorded per-epoch results (no
    /// training), for many seeds and both samplers: share of the grid's hypervolume and epochs.
    BenchReplay(replay::BenchReplayArgs),
    /// Data sets: download the official files.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Sweep files: plan, schema.
    #[command(subcommand)]
    Sweep(sweep::SweepCommand),
    /// Write a sweep's Pareto report (markdown, HTML, CSV, JSON, PNG/SVG plots).
    Report(report::ReportArgs),
    /// The results database: migrate, backup.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Submit a sweep and train its jobs with local workers until every job is done.
    Run(run_cmd::RunArgs),
    /// Slurm clusters: submit a sweep with an array of workers.
    #[command(subcommand)]
    Slurm(slurm::SlurmCommand),
    /// Train the queued jobs of every active sweep in a database, until stopped, and write the
    /// reports of the sweeps worked on.
    Worker(run_cmd::WorkerArgs),
    /// A long-running worker, one per SQLite database, that writes the sweeps' reports and
    /// (with --watch) submits the sweep files dropped in a folder (Ctrl-C stops and requeues).
    Daemon(run_cmd::DaemonArgs),
    /// Sweeps and their jobs in the database: counts, statuses, errors.
    Status(status_cmd::StatusArgs),
    /// A job's attempts, their errors and the job runner's logs.
    Logs(status_cmd::LogsArgs),
    /// Check that a device can run cg: start its backend and compute on it (on CUDA: load the
    /// driver and NVRTC, compile a kernel). Workers run it on each GPU before taking jobs.
    DeviceCheck(run_cmd::DeviceCheckArgs),
    /// Train one job for `cg run` (configuration on stdin, JSON lines on stdout).
    #[command(hide = true)]
    JobRunner(run_cmd::JobRunnerArgs),
}

/// glibc gives large freed blocks back to the kernel at once (mmap'd blocks, and the heap's top past
/// 128 KiB), so every training step pays page faults again for its activation-sized buffers: ~9% of a
/// LibTorch training profile. Keeping freed memory in the process measured +8–10% training img/s on
/// LibTorch (CosineGate-20, batch 128) and +4% on flex; the process still holds no more than its peak.
/// Left alone when the user tunes malloc through `GLIBC_TUNABLES`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn keep_freed_memory() {
    if std::env::var_os("GLIBC_TUNABLES").is_some() {
        return;
    }
    // SAFETY: mallopt only sets allocator parameters; called first in main, before any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

/// `cg status | head -1`: once the reader of stdout (or stderr) has gone, the command ends quietly
/// with exit 0 instead of panicking (exit 101). Rust ignores SIGPIPE, so such a write fails with
/// EPIPE and `println!` panics with "failed printing to stdout: Broken pipe"; this hook recognises
/// that panic, whatever thread printed, and exits. SIGPIPE itself stays ignored: its default
/// action would kill a worker whose job runner closed its pipe, or whose database connection
/// broke. The hidden job runner is left as it was (it writes its protocol through its own handle
/// and reports failed writes).
fn quiet_when_output_closes() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_closed_output(info.payload_as_str().unwrap_or_default()) {
            std::process::exit(0);
        }
        default(info)
    }));
}

/// Whether a panic message is the one `print!` and `eprint!` give when their reader has gone.
fn is_closed_output(message: &str) -> bool {
    let epipe = std::io::Error::from_raw_os_error(libc::EPIPE).to_string();
    (message.starts_with("failed printing to stdout")
        || message.starts_with("failed printing to stderr"))
        && message.ends_with(&epipe)
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    // A job runner keeps the default: its parent reads its protocol and judges its end.
    if !matches!(cli.command, Command::JobRunner(_)) {
        quiet_when_output_closes();
    }
    let outcome = match cli.command {
        Command::Train(a) => train::run(a),
        Command::Bench(a) => bench::run(a),
        Command::BenchWorkers(a) => bench_workers::run(a),
        Command::BenchReplay(a) => replay::run(a),
        Command::Data(c) => data::run(c),
        Command::Sweep(c) => sweep::run(c),
        Command::Report(a) => report::run(a),
        Command::Db(c) => db::run(c),
        Command::Run(a) => run_cmd::run_cmd(a),
        Command::Slurm(c) => slurm::run(c),
        Command::Worker(a) => run_cmd::worker_cmd(a),
        Command::Daemon(a) => run_cmd::daemon_cmd(a),
        Command::Status(a) => status_cmd::status_cmd(a),
        Command::Logs(a) => status_cmd::logs_cmd(a),
        Command::JobRunner(a) => run_cmd::job_runner_cmd(a),
        Command::DeviceCheck(a) => run_cmd::device_check_cmd(a),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", util::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_closed_output_is_quiet() {
        let epipe = std::io::Error::from_raw_os_error(libc::EPIPE);
        assert!(is_closed_output(&format!(
            "failed printing to stdout: {epipe}"
        )));
        assert!(is_closed_output(&format!(
            "failed printing to stderr: {epipe}"
        )));
        let other = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert!(!is_closed_output(&format!(
            "failed printing to stdout: {other}"
        )));
        assert!(!is_closed_output("index out of bounds"));
    }
}
