//! `cg slurm submit`: the sweep is submitted as `cg sweep submit` would (same checks), then one
//! Slurm array of `cg worker --until-idle` tasks runs it. cg-slurm writes the script and calls
//! `sbatch`; the queue in the database stays the single source of truth for what runs where.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cg_slurm::ArraySpec;
use cg_store::{DatabaseUrl, Store, UrlKind};
use clap::{Args, Subcommand};

use crate::db::runtime;
use crate::run_cmd::{SubmitArgs, load_checked, submit};
use crate::util::{MAX_JOBS_AT_ONCE, count_in};

#[derive(Subcommand, Debug)]
pub enum SlurmCommand {
    /// Submit a sweep and one `sbatch --array` job whose tasks each run `cg worker` on it. The
    /// runs folder (--runs-dir) must be one that every node sees: checkpoints go there, and a
    /// task that Slurm preempts or times out is resumed from them by whichever worker takes the
    /// job back.
    Submit(SlurmSubmitArgs),
}

#[derive(Args, Debug)]
pub struct SlurmSubmitArgs {
    #[command(flatten)]
    pub sweep: SubmitArgs,
    /// Worker tasks in the array (`sbatch --array=0-(N-1)`), one `cg worker` each.
    #[arg(long, value_parser = count_in(MAX_JOBS_AT_ONCE))]
    pub workers: usize,
    /// GPUs per task (`--gres=gpu:K`); the worker uses the GPUs Slurm gives it.
    #[arg(long, value_name = "K")]
    pub gpus_per_worker: Option<u32>,
    /// Jobs trained at once on each GPU of a task.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub jobs_per_gpu: u32,
    /// CPUs per task (`--cpus-per-task`); a CPU task trains one job with this many threads.
    #[arg(long, value_name = "N")]
    pub cpus_per_worker: Option<u32>,
    /// Slurm partition.
    #[arg(long)]
    pub partition: Option<String>,
    /// Time limit of each task, as Slurm writes it (`--time`, e.g. `02:00:00`).
    #[arg(long)]
    pub time: Option<String>,
    /// Slurm account to charge.
    #[arg(long)]
    pub account: Option<String>,
    /// Any other `#SBATCH` option, e.g. `--sbatch-arg=--mem=16G` (repeatable).
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// Checkpoints and logs go to DIR/<job-id>/ and the batch script and task logs to DIR/slurm/;
    /// every node must see DIR (a shared file system).
    #[arg(long, default_value = "runs", value_name = "DIR")]
    pub runs_dir: PathBuf,
    /// A task exits once nothing has been claimable for SECS (`cg worker --until-idle`).
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub until_idle: u64,
    /// Slurm's warning before a time limit or preemption kills a task (`--signal=B:TERM@SECS`):
    /// the worker then puts its jobs back in the queue and exits.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub signal_secs: u64,
    /// Lease of a claimed job, in seconds (`cg worker --lease`).
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub lease: u64,
    /// Print the batch script and submit nothing (no database is touched).
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(cmd: SlurmCommand) -> Result<ExitCode> {
    match cmd {
        SlurmCommand::Submit(args) => submit_cmd(args),
    }
}

fn submit_cmd(args: SlurmSubmitArgs) -> Result<ExitCode> {
    let sweep = match load_checked(&args.sweep.file, args.sweep.yes) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let db = absolute_db(&args.sweep.db.db)?;
    refuse_shared_sqlite(&db, args.workers)?;
    let spec = array_spec(&args, sweep.name())?;
    let script = cg_slurm::batch_script(&spec)?;
    if args.dry_run {
        print!("{script}");
        return Ok(ExitCode::SUCCESS);
    }
    let path = write_script(&spec, &script)?;
    runtime()?.block_on(async {
        let store = Store::open(db.as_str())
            .await
            .context("cannot open the database")?;
        submit(&store, &sweep, &args.sweep).await?;
        let cwd = std::env::current_dir().context("cannot read the current folder")?;
        let job = cg_slurm::sbatch(&path, &cwd, &[("CG_DB", db.as_str())])
            .with_context(|| format!("cannot submit {}", path.display()))?;
        store
            .record_slurm_job(sweep.name(), &job, args.workers, &path.display().to_string())
            .await?;
        store.close().await;
        println!(
            "Slurm job {job}: {} worker task(s) for sweep `{}`; script {}; `cg status {}` shows them",
            args.workers,
            sweep.name(),
            path.display(),
            sweep.name()
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// The database as the tasks must see it: a SQLite path made absolute (a task's folder may
/// differ), a URL as it is.
fn absolute_db(db: &str) -> Result<String> {
    let url = DatabaseUrl::new(db.to_string());
    let kind = url
        .kind()
        .map_err(|reason| anyhow::anyhow!("--db {}: {reason}", url.redacted()))?;
    if kind != UrlKind::SqlitePath {
        return Ok(db.to_string());
    }
    Ok(std::path::absolute(db)
        .with_context(|| format!("cannot make {db} absolute"))?
        .display()
        .to_string())
}

/// SQLite's locks do not hold on a network file system: many tasks on one file there are refused.
fn refuse_shared_sqlite(db: &str, workers: usize) -> Result<()> {
    let url = DatabaseUrl::new(db.to_string());
    if workers < 2 || url.kind().ok() != Some(UrlKind::SqlitePath) {
        return Ok(());
    }
    if let Some(fs) = cg_slurm::network_fs(Path::new(db))? {
        bail!(
            "--db {db} is a SQLite file on a network file system ({fs}): {workers} workers on \
             many nodes would share it, and SQLite's locks do not hold there. Use a PostgreSQL \
             database that the nodes can reach (--db postgres://…), or --workers 1"
        );
    }
    Ok(())
}

fn array_spec(args: &SlurmSubmitArgs, sweep: &str) -> Result<ArraySpec> {
    let runs_dir = std::path::absolute(&args.runs_dir)
        .with_context(|| format!("cannot make {} absolute", args.runs_dir.display()))?;
    let cg = std::env::current_exe().context("cannot find the cg binary for the tasks")?;
    Ok(ArraySpec {
        sweep: sweep.to_string(),
        workers: args.workers,
        cg,
        log_dir: runs_dir.join("slurm"),
        runs_dir,
        gpus_per_worker: args.gpus_per_worker,
        jobs_per_gpu: args.jobs_per_gpu,
        cpus_per_worker: args.cpus_per_worker,
        partition: args.partition.clone(),
        time: args.time.clone(),
        account: args.account.clone(),
        sbatch_args: args.sbatch_args.clone(),
        until_idle_secs: args.until_idle,
        signal_secs: args.signal_secs,
        lease_secs: args.lease,
    })
}

/// Writes the script to `runs/slurm/cg-<sweep>-<time>.sbatch`.
fn write_script(spec: &ArraySpec, script: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(&spec.log_dir)
        .with_context(|| format!("cannot create {}", spec.log_dir.display()))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let path = spec
        .log_dir
        .join(format!("cg-{}-{stamp}.sbatch", spec.sweep));
    std::fs::write(&path, script).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
