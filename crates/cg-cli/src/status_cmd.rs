//! `cg status [SWEEP]`, `cg sweep pause|resume|cancel SWEEP` and `cg logs JOB`: looking at and
//! steering what is in the database. Read-mostly glue over cg-store.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cg_core::{DecisionKind, JobRecord};
use cg_store::{Store, SweepStatus};
use cg_sweep::SHORT_ID_LEN;
use clap::Args;

use crate::db::{DbArg, runtime};
use crate::util::backend_of;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// One sweep's jobs; without it, every sweep with its counts.
    pub sweep: Option<String>,
    #[command(flatten)]
    pub db: DbArg,
}

#[derive(Args, Debug)]
pub struct SweepControlArgs {
    pub sweep: String,
    #[command(flatten)]
    pub db: DbArg,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// A job id or a unique prefix of one (the short ids of the tables work).
    pub job: String,
    #[command(flatten)]
    pub db: DbArg,
    /// Where `cg run` kept its checkpoints and logs.
    #[arg(long, default_value = "runs", value_name = "DIR")]
    pub runs_dir: PathBuf,
}

fn block_on<T>(f: impl Future<Output = Result<T>>) -> Result<T> {
    runtime()?.block_on(f)
}

async fn open(db: &DbArg) -> Result<Store> {
    Store::open_existing(db.db.as_str()).await.with_context(|| {
        format!(
            "cannot open the database {}",
            cg_store::DatabaseUrl::new(db.db.clone())
        )
    })
}

/// For commands that only look: read-only, so a read-only mount or another user's file works.
async fn open_read_only(db: &DbArg) -> Result<Store> {
    Store::open_read_only(db.db.as_str())
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                cg_store::DatabaseUrl::new(db.db.clone())
            )
        })
}

fn short(id: &str) -> &str {
    &id[..id.len().min(SHORT_ID_LEN)]
}

/// `cg status`.
pub fn status_cmd(args: StatusArgs) -> Result<ExitCode> {
    block_on(async {
        let store = open_read_only(&args.db).await?;
        match &args.sweep {
            None => print_sweeps(&store).await?,
            Some(name) => print_sweep(&store, name).await?,
        }
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// `cg status`: every sweep with its counts, the refused sweep files, expired leases.
async fn print_sweeps(store: &Store) -> Result<()> {
    println!("sweep  status  jobs  completed  running  queued  failed  cancelled  report");
    let expired = store.expired_leases(None).await?.len();
    for s in store.list_sweeps().await? {
        let c = s.counts;
        println!(
            "{}  {}  {}  {}  {}  {}  {}  {}  {}",
            s.name,
            s.lifecycle(),
            c.total(),
            c.completed,
            c.running,
            c.queued,
            c.failed,
            c.cancelled,
            s.report_path.as_deref().unwrap_or("-")
        );
    }
    // Stored by a watcher from names and files of the watched folder: escaped and
    // masked again here, whatever wrote them.
    for r in store.rejections().await? {
        let lines: Vec<_> = r.message.lines().map(cg_core::shown).collect();
        println!(
            "rejected  {}  {}",
            cg_core::shown(&r.path),
            lines.join(" | ")
        );
    }
    if expired > 0 {
        println!("{}", expired_note(expired));
    }
    Ok(())
}

/// `cg status SWEEP`: the sweep's counts and times, its search, and each of its jobs.
async fn print_sweep(store: &Store, name: &str) -> Result<()> {
    let sweep = store.sweep(name).await?;
    let c = sweep.counts;
    println!(
        "sweep `{}` ({}): {} job(s): {} completed, {} running, {} queued, {} failed, {} cancelled",
        sweep.name,
        sweep.lifecycle(),
        c.total(),
        c.completed,
        c.running,
        c.queued,
        c.failed,
        c.cancelled
    );
    let expired = store.expired_leases(Some(name)).await?;
    if !expired.is_empty() {
        println!("{}", expired_note(expired.len()));
    }
    let when = |ms: Option<i64>| ms.map_or("-".into(), crate::util::utc_text);
    println!(
        "started {}, finished {}; report: {}",
        when(sweep.started_at_ms),
        when(sweep.finished_at_ms),
        sweep.report_path.as_deref().unwrap_or("-")
    );
    print_search(store, name).await?;
    print_slurm(store, name).await?;
    let records = store.job_records(name).await?;
    if let Some(line) = controls_line(&sweep, &records) {
        println!("{line}");
    }
    let owners = store.lease_owners(name).await?;
    for r in records {
        let status = if expired.contains(&r.job.id) {
            "running (lease expired)"
        } else {
            r.status.as_str()
        };
        let acc = r
            .result
            .as_ref()
            .map(|res| format!("{:.2}% {}", 100.0 * res.test_acc_final, backend_of(res)))
            .unwrap_or_else(|| "-".into());
        let holder = owners
            .get(&r.job.id)
            .map(|w| format!("  on {}", cg_core::shown(w)))
            .unwrap_or_default();
        let error = r
            .last_error
            .as_deref()
            .map(|e| format!("  {}", cg_core::shown(e)))
            .unwrap_or_default();
        println!(
            "{}  {}  attempts {}  {}  {}{}{}",
            short(&r.job.id),
            status,
            r.attempts,
            acc,
            crate::util::params_line(&r.job.params),
            holder,
            error
        );
    }
    Ok(())
}

/// The line on a sweep's matched-compute controls (`controls:`); `None` for a sweep without.
fn controls_line(sweep: &cg_store::SweepSummary, records: &[JobRecord]) -> Option<String> {
    if sweep.info.controls.is_empty() {
        return None;
    }
    let kinds: Vec<&str> = sweep.info.controls.iter().map(|c| c.as_str()).collect();
    let controls: Vec<&JobRecord> = records.iter().filter(|r| r.control().is_some()).collect();
    let completed = controls
        .iter()
        .filter(|r| r.status == cg_core::JobStatus::Completed)
        .count();
    Some(if sweep.controls_pending {
        format!(
            "controls ({}): planned once the front is known",
            kinds.join(", ")
        )
    } else {
        format!(
            "controls ({}): {} job(s), {} completed",
            kinds.join(", "),
            controls.len(),
            completed
        )
    })
}

/// The sweep's Slurm arrays (`cg slurm submit`) and, where Slurm's clients are on PATH, their
/// tasks' states from `squeue` (or `sacct` once they left the queue).
async fn print_slurm(store: &Store, name: &str) -> Result<()> {
    let jobs = store.slurm_jobs(name).await?;
    let slurm = !jobs.is_empty() && cg_slurm::available();
    for j in jobs {
        println!(
            "Slurm job {} ({} worker task(s), script {})",
            j.slurm_job, j.workers, j.script
        );
        if !slurm {
            continue;
        }
        match cg_slurm::task_states(&j.slurm_job) {
            Ok(tasks) if tasks.is_empty() => {
                println!("  Slurm no longer lists it: its tasks ended")
            }
            Ok(tasks) => {
                for t in tasks {
                    println!("  {}  {}  {}", t.id, t.state, t.where_);
                }
            }
            Err(e) => println!("  cannot ask Slurm: {e}"),
        }
    }
    Ok(())
}

/// A line on running jobs whose worker stopped heartbeating.
fn expired_note(n: usize) -> String {
    format!(
        "{n} running job(s) have an expired lease: their worker stopped; the next `cg run`, \
         `cg worker` or `cg daemon` takes them back"
    )
}

/// How many configurations a kind of decision took at `rung` (draws: rung 0). A decision is
/// recorded once per job it covers, one per seed with `seeds`: configurations are counted once.
fn configurations(decisions: &[cg_store::DecisionRow], kind: DecisionKind, rung: u64) -> usize {
    let configs: std::collections::BTreeSet<u64> = decisions
        .iter()
        .filter(|d| d.kind == kind && d.rung == rung)
        .map(|d| d.config)
        .collect();
    configs.len()
}

/// The rungs of a `method: mo-asha` sweep: results, promotions and stops at each; nothing for
/// other sweeps.
async fn print_search(store: &Store, name: &str) -> Result<()> {
    let Some(search) = store.search(name).await? else {
        return Ok(());
    };
    let decisions = store.search_decisions(name).await?;
    let log = store.search_log(name).await?;
    let hv = store.hv_history(name).await?;
    let rungs = decisions.iter().map(|d| d.rung).max().map_or(0, |r| r + 1);
    let (spent, volume) = hv
        .last()
        .map_or((0, 0.0), |h| (h.epochs_spent, h.hypervolume));
    println!(
        "search: {}, {} configuration(s) drawn, {} result(s) taken, {spent} epoch(s) trained, hypervolume {volume:.6}",
        if search.finished {
            "finished"
        } else {
            "running"
        },
        configurations(&decisions, DecisionKind::Draw, 0),
        log.len(),
    );
    for k in 0..rungs {
        let epochs = decisions
            .iter()
            .find(|d| d.rung == k)
            .map_or(0, |d| d.epochs);
        let count = |kind: DecisionKind, rung: u64| configurations(&decisions, kind, rung);
        let results = log.iter().filter(|r| r.rung == k && !r.failed).count();
        let failed = log.iter().filter(|r| r.rung == k && r.failed).count();
        println!(
            "  rung {k} ({epochs} epoch(s)): {results} result(s), {} promoted, {} stopped, {failed} failed",
            count(DecisionKind::Promote, k + 1),
            count(DecisionKind::Stop, k),
        );
    }
    Ok(())
}

/// `cg sweep pause`.
pub fn pause(args: SweepControlArgs) -> Result<ExitCode> {
    sweep_control_cmd(args, SweepStatus::Paused)
}

/// `cg sweep resume`.
pub fn resume(args: SweepControlArgs) -> Result<ExitCode> {
    sweep_control_cmd(args, SweepStatus::Active)
}

/// `cg sweep cancel`.
pub fn cancel(args: SweepControlArgs) -> Result<ExitCode> {
    sweep_control_cmd(args, SweepStatus::Cancelled)
}

fn sweep_control_cmd(args: SweepControlArgs, status: SweepStatus) -> Result<ExitCode> {
    block_on(async {
        let store = open(&args.db).await?;
        let changed = store.set_sweep_status(&args.sweep, status).await?;
        println!(
            "sweep `{}` is {status}; {changed} job(s) changed",
            args.sweep
        );
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Finds the job whose id starts with `prefix` among every sweep's jobs.
async fn find_job(store: &Store, prefix: &str) -> Result<JobRecord> {
    let mut found: Vec<JobRecord> = Vec::new();
    for sweep in store.list_sweeps().await? {
        for r in store.job_records(&sweep.name).await? {
            if r.job.id.starts_with(prefix) && !found.iter().any(|f| f.job.id == r.job.id) {
                found.push(r);
            }
        }
    }
    match found.len() {
        0 => bail!("no job id starts with `{prefix}`"),
        1 => Ok(found.remove(0)),
        n => bail!("{n} job ids start with `{prefix}`; give more of the id"),
    }
}

/// `cg logs`: every attempt of the job with its outcome and error, then the runner's stderr logs.
pub fn logs_cmd(args: LogsArgs) -> Result<ExitCode> {
    block_on(async {
        let store = open_read_only(&args.db).await?;
        let record = find_job(&store, &args.job).await?;
        let id = &record.job.id;
        println!(
            "job {id} ({}), sweep `{}`",
            record.status.as_str(),
            record.sweep
        );
        for a in store.attempts(id).await? {
            println!(
                "attempt {} on {}: {}{}",
                a.attempt,
                a.worker,
                a.outcome.as_str(),
                a.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
            // The id comes from the database: only a plain name may pick a file to read.
            let log = args
                .runs_dir
                .join(id)
                .join(format!("attempt-{}.log", a.attempt));
            let tail = match cg_core::check_job_id(id) {
                Ok(()) if log.symlink_metadata().is_ok() => {
                    crate::util::read_tail(&log, crate::util::LOG_TAIL_BYTES).map(Some)
                }
                Ok(()) => Ok(None),
                Err(reason) => Err(anyhow::anyhow!(reason)),
            };
            let tail = tail.unwrap_or_else(|e| {
                eprintln!("cg logs: {}", crate::util::error_chain(&e));
                None
            });
            match tail {
                Some((bytes, skipped)) => {
                    if skipped > 0 {
                        println!(
                            "--- {} (its last {} bytes; the {skipped} before them are not shown)",
                            log.display(),
                            bytes.len()
                        );
                    } else {
                        println!("--- {}", log.display());
                    }
                    print!("{}", text_from(&bytes, skipped > 0));
                }
                None => {
                    if let Some(tail) = &a.stderr_tail {
                        println!("--- stderr tail (from the database)");
                        println!("{tail}");
                    }
                }
            }
        }
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// A log's bytes as text; a tail cut inside a character starts at the next one.
fn text_from(bytes: &[u8], cut: bool) -> String {
    let start = if cut {
        bytes
            .iter()
            .take(4)
            .position(|b| (b & 0xC0) != 0x80)
            .unwrap_or(0)
    } else {
        0
    };
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}
