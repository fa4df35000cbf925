//! The state the worker slots of one run share ([`Ctx`]): the store, the options, the event
//! channel, the shutdown watch, the run of failed jobs that halts the workers, the summed
//! overhead and the devices' limits; and the run-wide questions the slots ask of it (stopping?
//! halted? finished?).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cg_core::JobStatus;
use cg_store::{Store, SweepStatus};
use tokio::sync::{Notify, mpsc, watch};

use super::{Halted, LocalOptions, Overhead};
use crate::controls::{advance_controls, advance_pending_controls};
use crate::devices::Devices;
use crate::search::{advance_search, search_finished};
use crate::{Event, Result};

/// The run of jobs that failed for good since the last completed one.
#[derive(Default)]
struct Streak {
    failures: u32,
    last_error: String,
    halted: bool,
}

/// What the worker slots of one run share.
pub(super) struct Ctx {
    pub(super) store: Store,
    pub(super) options: LocalOptions,
    events: mpsc::UnboundedSender<Event>,
    pub(super) shutdown: watch::Receiver<bool>,
    streak: Mutex<Streak>,
    overhead: Mutex<Overhead>,
    /// How many slots of each device may claim jobs, and how many jobs run on it.
    pub(super) devices: Devices,
    /// Woken when a job's attempt ends, so idle workers look again at once instead of at the
    /// next poll (the last job ending would otherwise keep the run waiting for up to `poll`).
    pub(super) job_ended: Notify,
    /// The sweep of the run (`LocalOptions::sweep`) was deleted; said once.
    deleted: AtomicBool,
    /// `LocalOptions::until_idle`: since when nothing has been claimable and nothing has run
    /// here (`None`: something was, at the last look).
    idle_since: Mutex<Option<Instant>>,
}

impl Ctx {
    /// The shared state of a run whose workers stop when `shutdown` turns true.
    pub(super) fn new(
        store: Store,
        options: LocalOptions,
        events: mpsc::UnboundedSender<Event>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let devices = Devices::new(&options.slots);
        Self {
            store,
            options,
            events,
            shutdown,
            streak: Mutex::new(Streak::default()),
            overhead: Mutex::new(Overhead::default()),
            devices,
            job_ended: Notify::new(),
            deleted: AtomicBool::new(false),
            idle_since: Mutex::new(None),
        }
    }

    pub(super) fn emit(&self, event: Event) {
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

    pub(super) fn halted(&self) -> bool {
        self.streak.lock().expect("streak lock").halted
    }

    pub(super) fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub(super) fn warn(&self, message: String) {
        tracing::warn!("{message}");
        self.emit(Event::Warning { message });
    }

    /// Advances the searches the job's sweeps run ([`advance_search`]); a failure is a warning
    /// (the next result, or the next start, tries again).
    pub(super) async fn advance(&self) {
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
        if let Err(e) = advance_pending_controls(&self.store, self.options.sweep.as_deref()).await {
            self.warn(format!("cannot plan the matched-compute controls: {e}"));
        }
        self.job_ended.notify_waiters();
    }

    /// `--until-idle`: whether nothing has been claimable, and nothing has run here, for `limit`.
    async fn idle_for(&self, limit: Duration) -> Result<bool> {
        let sweeps = self.store.list_sweeps().await?;
        let claimable = sweeps
            .iter()
            .any(|s| s.status == SweepStatus::Active && s.counts.queued > 0);
        let mut since = self.idle_since.lock().expect("idle lock");
        if claimable || self.devices.running() > 0 {
            *since = None;
            return Ok(false);
        }
        Ok(since.get_or_insert_with(Instant::now).elapsed() >= limit)
    }

    /// Whether there is nothing more for the workers to do.
    pub(super) async fn finished(&self) -> Result<bool> {
        let Some(name) = &self.options.sweep else {
            if let Some(limit) = self.options.until_idle {
                return self.idle_for(limit).await;
            }
            if !self.options.exit_when_idle {
                return Ok(false);
            }
            advance_pending_controls(&self.store, None).await?;
            let sweeps = self.store.list_sweeps().await?;
            // `search_open`: a search that may still submit, or controls still to be planned.
            let busy = sweeps.iter().any(|s| {
                s.counts.running > 0
                    || (s.status == SweepStatus::Active && (s.counts.queued > 0 || s.search_open))
            });
            return Ok(!busy);
        };
        let sweep = match self.store.sweep(name).await {
            Err(cg_store::Error::UnknownSweep(_)) => {
                // `cg sweep delete` while it ran: its jobs are gone, nothing is left to do.
                if !self.deleted.swap(true, Ordering::Relaxed) {
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
        // Controls are planned once everything else has ended.
        if c.is_finished() && sweep.controls_pending {
            advance_controls(&self.store, name).await?;
            let again = self.store.sweep(name).await?;
            if again.counts.is_finished() && again.controls_pending {
                self.warn(format!(
                    "the controls of `{name}` cannot be planned: no job is left to run"
                ));
                return Ok(true);
            }
            return Ok(false);
        }
        Ok(c.is_finished())
    }

    /// Adds an attempt's start-up time and time to first progress (when it got that far) to the
    /// run's overhead.
    pub(super) fn add_overhead(&self, startup: Option<Duration>, first_progress: Option<Duration>) {
        let mut overhead = self.overhead.lock().expect("overhead lock");
        if let Some(t) = startup {
            overhead.started += 1;
            overhead.startup += t;
        }
        if let Some(t) = first_progress {
            overhead.progressed += 1;
            overhead.to_first_progress += t;
        }
    }

    /// Why the workers stopped claiming jobs, if they did.
    pub(super) fn halted_for(&self) -> Option<Halted> {
        let streak = self.streak.lock().expect("streak lock");
        streak.halted.then(|| Halted {
            failures: streak.failures,
            last_error: streak.last_error.clone(),
        })
    }

    /// The overhead summed over the attempts started so far.
    pub(super) fn overhead(&self) -> Overhead {
        *self.overhead.lock().expect("overhead lock")
    }
}
