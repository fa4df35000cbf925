//! One claimed job's life, from its folder to its recorded end: the claim checked (the store's
//! rows are untrusted), the run folder made, the child spawned and run (`child`), and its end
//! judged and recorded: completed, failed (for good or back in the queue), requeued because the
//! run stops, or out of memory (beside other jobs: requeued without spending an attempt, and the
//! device's limit lowered).

use std::path::{Path, PathBuf};

use cg_core::{JobStatus, RunResult};
use cg_store::{Claim, CompleteOutcome, Store};
use tokio::time::Instant;

use super::LocalOptions;
use super::child::{
    ChildRun, End, child_command, describe_exit, last_line, panic_message, run_child,
};
use super::ctx::Ctx;
use super::is_out_of_memory;
use crate::devices::Reservation;
use crate::gpu::Slot;
use crate::protocol::{ChildMessage, FailureKind};
use crate::{Error, Event, Result};

/// How an attempt ended, for its slot.
pub(super) enum Ended {
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

/// Runs one claimed job to its end. The `reservation` (the slot's place on its device) is held
/// until the attempt's end is recorded.
pub(super) async fn run_claim(
    ctx: &Ctx,
    worker: &str,
    slot: &Slot,
    mut reservation: Reservation<'_>,
    claim: Claim,
    claimed_at: Instant,
) -> Result<Ended> {
    let job = claim.job.id.clone();
    let attempt = claim.attempt;
    // What the store hands out is untrusted (every machine of a shared queue writes it): the id
    // names a directory and goes on a command line, the configuration goes to the child.
    if let Err(reason) = check_claim(&claim) {
        let error = format!("refused: {reason}");
        return end_before_start(ctx, worker, job, attempt, error, false).await;
    }
    let folders = match make_folders(&ctx.options, &ctx.store, &claim) {
        Ok(folders) => folders,
        // The job goes back to the queue (another worker, or this one once the folder is
        // fixed, runs it); it is never left `running`.
        Err(error) => return end_before_start(ctx, worker, job, attempt, error, true).await,
    };
    let mut cmd = child_command(&ctx.options, slot, &job, attempt, &folders.checkpoints);
    let spawned_at = Instant::now();
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(source) => return end_unspawned(ctx, worker, job, attempt, source).await,
    };
    reservation.start();
    ctx.emit(Event::Started {
        job: job.clone(),
        attempt,
        worker: worker.to_string(),
        device: slot.to_string(),
    });
    let run = run_child(
        ctx,
        worker,
        &claim,
        child,
        spawned_at,
        claimed_at,
        &folders.log,
    )
    .await;
    ctx.add_overhead(run.startup, run.first_progress);
    let ended = settle(ctx, worker, slot, job, attempt, run, &folders.log).await;
    drop(reservation);
    ended
}

/// Where an attempt writes: its job's run folder holds its log; its checkpoints go to the run
/// folder of its whole run.
struct Folders {
    checkpoints: PathBuf,
    log: PathBuf,
}

/// Creates the job's run folder (as private as the database's file); a folder that cannot be
/// made is the error.
fn make_folders(
    opts: &LocalOptions,
    store: &Store,
    claim: &Claim,
) -> std::result::Result<Folders, String> {
    let job = &claim.job.id;
    let dir = opts.runs_dir.join(job);
    if let Err(source) = std::fs::create_dir_all(&dir) {
        return Err(format!("cannot create {}: {source}", dir.display()));
    }
    // A job's checkpoints and logs are the database's data: no more readable than its file.
    if let Some(mode) = store.file_mode() {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(dir_mode(mode)));
    }
    // A rung job (`train.stop_after`) keeps its checkpoint in the folder of its whole run, so
    // the next rung continues from it.
    let checkpoints = match claim.job.config.train.stop_after {
        None => dir.clone(),
        Some(_) => {
            let whole = claim.job.config.without_stop();
            let id = cg_sweep::job_id(&whole, &cg_sweep::data_fingerprint(&whole.dataset));
            opts.runs_dir.join(id)
        }
    };
    let log = dir.join(format!("attempt-{}.log", claim.attempt));
    Ok(Folders { checkpoints, log })
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
    fail_attempt(ctx, worker, job, attempt, error, None, retryable).await?;
    Ok(Ended::Other)
}

/// Records a failed attempt in the store (see `Store::fail`) and tells it; returns the job's
/// status afterwards.
async fn fail_attempt(
    ctx: &Ctx,
    worker: &str,
    job: String,
    attempt: u32,
    error: String,
    stderr_tail: Option<&str>,
    retryable: bool,
) -> Result<JobStatus> {
    let status = ctx
        .store
        .fail(&job, attempt, worker, &error, stderr_tail, retryable)
        .await?;
    ctx.emit(Event::Failed {
        job,
        attempt,
        error,
        status,
    });
    Ok(status)
}

/// Ends an attempt whose child could not be spawned: back in the queue while the job has
/// attempts left, and the error returned (the worker warns).
async fn end_unspawned(
    ctx: &Ctx,
    worker: &str,
    job: String,
    attempt: u32,
    source: std::io::Error,
) -> Result<Ended> {
    let error = Error::Spawn {
        exe: ctx.options.exe.clone(),
        source,
    };
    fail_attempt(ctx, worker, job, attempt, error.to_string(), None, true).await?;
    Err(error)
}

/// How an attempt whose child ran ended, before it is recorded.
enum Verdict {
    /// The child sent a result.
    Done(Box<RunResult>),
    /// Stopped on request (or asked to stop and it died): back to the queue, no attempt spent.
    Stopped,
    /// It failed.
    Failed(Failure),
}

/// Why an attempt failed, whether another may succeed, and whether memory ran out.
struct Failure {
    error: String,
    retry: bool,
    out_of_memory: bool,
}

/// Records how the child's run ended (see [`judge`]).
async fn settle(
    ctx: &Ctx,
    worker: &str,
    slot: &Slot,
    job: String,
    attempt: u32,
    run: ChildRun,
    log: &Path,
) -> Result<Ended> {
    let ChildRun {
        end,
        outcome,
        status,
        stderr_tail,
        ..
    } = run;
    if matches!(end, End::LeaseLost) {
        ctx.emit(Event::LeaseLost { job, attempt });
        return Ok(Ended::Other);
    }
    let stderr_tail = Some(stderr_tail.as_str()).filter(|s| !s.is_empty());
    match judge(ctx, end, outcome, status, stderr_tail) {
        Verdict::Done(result) => {
            record_completion(ctx, worker, slot, job, attempt, &result, log).await
        }
        Verdict::Stopped => {
            if ctx.store.requeue(&job, attempt).await? {
                ctx.emit(Event::Requeued { job, attempt });
            } else {
                ctx.emit(Event::LeaseLost { job, attempt });
            }
            Ok(Ended::Other)
        }
        Verdict::Failed(failure) => {
            record_failure(ctx, worker, slot, job, attempt, failure, stderr_tail).await
        }
    }
}

/// How a child that did not lose its lease ended: its result, a stop, or a failure (its
/// message, the time limit, or its exit described with its stderr).
fn judge(
    ctx: &Ctx,
    end: End,
    outcome: Option<ChildMessage>,
    status: std::io::Result<std::process::ExitStatus>,
    stderr_tail: Option<&str>,
) -> Verdict {
    let (error, retry, out_of_memory) = match outcome {
        Some(ChildMessage::Done { result }) => return Verdict::Done(result),
        _ if matches!(end, End::TimedOut) => {
            let secs = ctx.options.timeout_per_job.unwrap_or_default().as_secs();
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
            return Verdict::Stopped;
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
    Verdict::Failed(Failure {
        error,
        retry,
        out_of_memory,
    })
}

/// Records the child's result, with its log as an artifact, and advances the searches.
async fn record_completion(
    ctx: &Ctx,
    worker: &str,
    slot: &Slot,
    job: String,
    attempt: u32,
    result: &RunResult,
    log: &Path,
) -> Result<Ended> {
    match ctx.store.complete(&job, attempt, worker, result).await {
        Ok(CompleteOutcome::Recorded | CompleteOutcome::AlreadyRecorded) => {
            let _ = ctx
                .store
                .add_artifact(&job, "log", &log.to_string_lossy())
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
    }
}

/// Records a failed attempt: failed for good, or back in the queue while the job has attempts
/// left (`retry`); out of memory beside other jobs, see [`requeue_crowded_out`].
async fn record_failure(
    ctx: &Ctx,
    worker: &str,
    slot: &Slot,
    job: String,
    attempt: u32,
    failure: Failure,
    stderr_tail: Option<&str>,
) -> Result<Ended> {
    let Failure {
        error,
        retry,
        out_of_memory,
    } = failure;
    // The device's limits change before the job is back in the queue, so that no idle slot
    // takes it again under the old limit.
    let others = ctx.devices.running_on(slot).saturating_sub(1);
    if out_of_memory && others > 0 {
        return requeue_crowded_out(ctx, slot, job, attempt, error, others, stderr_tail).await;
    }
    if out_of_memory {
        ctx.devices.out_of_memory_alone(slot);
    }
    let status = fail_attempt(ctx, worker, job, attempt, error, stderr_tail, retry).await?;
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

/// An attempt that ran out of memory beside `others` jobs on its device: its neighbours took
/// the memory, not the job's fault, so it goes back to the queue without spending an attempt,
/// and the device runs fewer jobs at once.
async fn requeue_crowded_out(
    ctx: &Ctx,
    slot: &Slot,
    job: String,
    attempt: u32,
    error: String,
    others: usize,
    stderr_tail: Option<&str>,
) -> Result<Ended> {
    let lowered_to = ctx.devices.lower(slot);
    let error = format!(
        "{error} (out of memory beside {others} other job(s) on {slot}; back in the queue, \
         no attempt spent)"
    );
    if ctx
        .store
        .requeue_because(&job, attempt, Some(&error), stderr_tail)
        .await?
    {
        ctx.emit(Event::Failed {
            job,
            attempt,
            error,
            status: JobStatus::Queued,
        });
    } else {
        ctx.emit(Event::LeaseLost { job, attempt });
    }
    Ok(Ended::OutOfMemory {
        beside_others: true,
        lowered_to,
        retried: true,
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

#[cfg(test)]
mod tests {
    use super::*;

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
            val_size: None,
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
}
