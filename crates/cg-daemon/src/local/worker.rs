//! One worker slot's loop: reserve a place on the slot's device, claim a job, run it
//! (`claim::run_claim`), and after its end back off (out of memory) or go on; with nothing to
//! claim, wait for a job to end, the poll, or the shutdown, and stop once the run is finished.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::claim::{Ended, run_claim};
use super::ctx::Ctx;
use crate::gpu::Slot;
use crate::proc::own_worker_prefix;
use crate::{Event, Result};

/// A worker slot: its number, its rank among the slots of its device, and the device.
pub(super) struct Place {
    pub(super) n: usize,
    pub(super) rank: usize,
    pub(super) slot: Slot,
}

/// Claims and runs jobs on one slot until the run stops, halts or is finished; an error is the
/// store failing again and again.
pub(super) async fn worker_loop(ctx: &Ctx, place: Place) -> Result<()> {
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
                after_attempt(
                    ctx,
                    &worker,
                    &slot,
                    rank,
                    ended,
                    &mut backoff,
                    &mut shutdown,
                )
                .await;
            }
            (Ok(_), _) => {
                store_errors = 0;
                if wait_for_work(ctx, &mut shutdown).await? {
                    return Ok(());
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

/// Tells how an attempt ended where the slot should know, and backs off after running out of
/// memory (`backoff`: the last wait, doubled each time in a row, reset by any other end).
async fn after_attempt(
    ctx: &Ctx,
    worker: &str,
    slot: &Slot,
    rank: usize,
    ended: Result<Ended>,
    backoff: &mut Option<Duration>,
    shutdown: &mut watch::Receiver<bool>,
) {
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
            if !retried || ctx.devices.parked(slot, rank) {
                ctx.emit(Event::Warning { message });
                return;
            }
            // Time for the memory to come free before this slot claims again.
            let wait = backoff.map_or(ctx.options.oom_backoff, |b| {
                (b * 2).min(ctx.options.oom_backoff_max)
            });
            *backoff = Some(wait);
            message.push_str(&format!(
                "; waiting {} s before the next job",
                wait.as_secs_f64()
            ));
            ctx.emit(Event::Warning { message });
            back_off(ctx, shutdown, wait).await;
        }
        Ok(Ended::Completed { raised_to }) => {
            *backoff = None;
            if let Some(limit) = raised_to {
                ctx.emit(Event::Warning {
                    message: format!(
                        "{slot}: {} jobs in a row completed; up to {limit} job(s) at once on it again",
                        crate::devices::RAISE_AFTER
                    ),
                });
            }
        }
        Ok(Ended::Other) => *backoff = None,
        Err(e) => ctx.warn(format!("worker {worker}: {e}")),
    }
}

/// With nothing to claim: whether the run is finished, else waits for the poll, the shutdown or
/// a job ending (`false`).
async fn wait_for_work(ctx: &Ctx, shutdown: &mut watch::Receiver<bool>) -> Result<bool> {
    // Registered before looking, so a job ending meanwhile is not missed.
    let ended = ctx.job_ended.notified();
    tokio::pin!(ended);
    ended.as_mut().enable();
    if ctx.finished().await? {
        return Ok(true);
    }
    tokio::select! {
        _ = tokio::time::sleep(ctx.options.poll) => {}
        _ = shutdown.changed() => {}
        _ = ended => {}
    }
    Ok(false)
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
