//! The reports of `cg daemon` and `cg worker`: for every sweep whose jobs this process runs (and
//! every finished sweep still without a final report), `reports/<sweep>/` is written when its
//! first job starts, refreshed after results at most once per interval (30 s), and written a last
//! time when the sweep has finished, by exactly one worker (`Store::finish_sweep` decides). Every
//! file is replaced atomically (cg-report), so a reader never sees half a report.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cg_daemon::Event;
use cg_store::{FinalReport, Store};
use tokio::sync::mpsc;

use crate::report::{report_html_path, write_sweep_report_quiet};

/// A claim on a final report not written within this long is taken over by another worker.
const STALE_CLAIM: Duration = Duration::from_secs(120);

/// How often finished sweeps without a final report are looked for.
const ADOPT_EVERY: Duration = Duration::from_secs(30);

/// Where and how often the reports are written.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// Reports go to `dir/<sweep>/`.
    pub dir: PathBuf,
    /// Least time between two refreshes of a running sweep's report.
    pub every: Duration,
}

#[derive(Default)]
struct SweepState {
    /// Something changed since the last write.
    dirty: bool,
    last_write: Option<Instant>,
    /// The final report is written (here or elsewhere): nothing more to do.
    done: bool,
    /// Writing the final report failed: it is tried again once per interval.
    failed_final: bool,
}

/// Writes the reports while the workers run; `events` are the workers' events. Returns after
/// `events` closes (the workers stopped) and one last pass.
pub async fn run_reporter(
    store: Store,
    settings: ReportSettings,
    mut events: mpsc::UnboundedReceiver<Event>,
) {
    let mut reporter = Reporter {
        store,
        worker: format!(
            "{}report",
            cg_daemon::local_worker_prefix(std::process::id())
        ),
        settings,
        sweeps: BTreeMap::new(),
    };
    reporter.adopt_finished().await;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut adopted = Instant::now();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                None => break,
                Some(event) => reporter.note(&event).await,
            },
            _ = tick.tick() => {
                // Sweeps that finished without a job event here (cancelled, or their last job
                // ended on another machine whose worker died) are looked at now and then.
                if adopted.elapsed() >= ADOPT_EVERY {
                    adopted = Instant::now();
                    reporter.adopt_finished().await;
                }
                reporter.pass(false).await;
            }
        }
    }
    reporter.pass(true).await;
}

struct Reporter {
    store: Store,
    worker: String,
    settings: ReportSettings,
    sweeps: BTreeMap<String, SweepState>,
}

impl Reporter {
    /// Finished sweeps without a final report (the daemon was down, or the worker that took the
    /// report died) are this process's to report too.
    async fn adopt_finished(&mut self) {
        match self.store.list_sweeps().await {
            Ok(sweeps) => {
                for s in sweeps {
                    if s.has_finished() && s.final_report_done_ms.is_none() {
                        self.sweeps.entry(s.name).or_default().dirty = true;
                    }
                }
            }
            Err(e) => eprintln!("warning: cannot list the sweeps for their reports: {e}"),
        }
    }

    /// A job started or ended: its sweeps' reports are due.
    async fn note(&mut self, event: &Event) {
        let job = match event {
            Event::Started { job, .. }
            | Event::Completed { job, .. }
            | Event::Failed { job, .. }
            | Event::Requeued { job, .. }
            | Event::LeaseLost { job, .. } => job,
            _ => return,
        };
        match self.store.sweeps_of_job(job).await {
            Ok(names) => {
                for name in names {
                    let state = self.sweeps.entry(name).or_default();
                    state.dirty = true;
                    state.done = false;
                }
            }
            Err(e) => eprintln!("warning: cannot find the sweeps of job {job}: {e}"),
        }
    }

    /// Writes what is due: final reports of finished sweeps at once, and the reports of running
    /// sweeps that changed and were not written within the interval (all of them when `last`).
    async fn pass(&mut self, last: bool) {
        let every = self.settings.every;
        let names: Vec<String> = self
            .sweeps
            .iter()
            .filter(|(_, s)| !s.done && s.dirty)
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            // The name comes from the database: only a plain name may pick the directory.
            if let Err(reason) = cg_core::check_name(&name) {
                eprintln!("warning: no report for a sweep from the database: {reason}");
                self.sweeps.get_mut(&name).expect("listed above").done = true;
                continue;
            }
            let due = {
                let s = &self.sweeps[&name];
                last || s.last_write.is_none_or(|t| t.elapsed() >= every)
            };
            let out = self.settings.dir.join(&name);
            let finish = self
                .store
                .finish_sweep(&name, &self.worker, STALE_CLAIM)
                .await;
            let state = self.sweeps.get_mut(&name).expect("listed above");
            match finish {
                Err(cg_store::Error::UnknownSweep(_)) => {
                    // Deleted while it ran: said once, then the sweep is forgotten here.
                    eprintln!("sweep `{name}` was deleted; its report is no longer updated");
                    state.done = true;
                }
                Err(e) => {
                    if due {
                        eprintln!("warning: cannot check whether sweep `{name}` has finished: {e}");
                        state.last_write = Some(Instant::now());
                    }
                }
                Ok(FinalReport::Elsewhere) => {
                    state.done = true;
                }
                Ok(FinalReport::Mine) if state.failed_final && !due => {}
                Ok(FinalReport::Mine) => {
                    state.last_write = Some(Instant::now());
                    match write_sweep_report_quiet(&self.store, &name, &out, false).await {
                        Ok(()) => {
                            let path = report_html_path(&out);
                            match self
                                .store
                                .final_report_written(&name, &self.worker, &path)
                                .await
                            {
                                Ok(_) => {
                                    state.done = true;
                                    eprintln!("sweep `{name}` has finished; report: {path}");
                                }
                                Err(e) => eprintln!(
                                    "warning: the final report of sweep `{name}` is written but not recorded: {e}"
                                ),
                            }
                        }
                        Err(e) => {
                            state.failed_final = true;
                            eprintln!(
                                "warning: the report of sweep `{name}` was not written: {e:#}"
                            )
                        }
                    }
                }
                Ok(FinalReport::NotFinished) if !due => {}
                Ok(FinalReport::NotFinished) => {
                    state.last_write = Some(Instant::now());
                    state.dirty = false;
                    if let Err(e) = write_sweep_report_quiet(&self.store, &name, &out, false).await
                    {
                        eprintln!("warning: the report of sweep `{name}` was not written: {e:#}");
                    }
                }
            }
        }
    }
}

/// `cg run`'s report at the end: records that the sweep finished (taking its final report, so
/// that no daemon writes it again) and writes `reports/<sweep>/`. Returns the path of `report.md`.
pub async fn foreground_report(store: &Store, sweep: &str) -> anyhow::Result<PathBuf> {
    let worker = format!(
        "{}report",
        cg_daemon::local_worker_prefix(std::process::id())
    );
    let finished = store.finish_sweep(sweep, &worker, STALE_CLAIM).await?;
    let out = PathBuf::from("reports").join(sweep);
    let path = crate::report::write_sweep_report(store, sweep, Some(out.clone())).await?;
    if finished == FinalReport::Mine {
        store
            .final_report_written(sweep, &worker, &report_html_path(&out))
            .await?;
    }
    Ok(path)
}

/// How often `--watch` looks at its folder.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// `cg daemon --watch DIR`: scans the folder every 2 s and logs what it submitted or refused,
/// until aborted.
pub async fn watch_loop(store: Store, mut watcher: cg_daemon::Watcher) {
    let mut failing = false;
    loop {
        // Fault injection for the tests, in debug builds only: the watcher dies as a bug would.
        #[cfg(debug_assertions)]
        if std::env::var_os("CG_TEST_FAULT").is_some_and(|v| v == "watch-panic") {
            panic!("injected fault (CG_TEST_FAULT=watch-panic)");
        }
        match watcher.scan(&store).await {
            Ok(events) => {
                failing = false;
                for event in events {
                    match event {
                        cg_daemon::WatchEvent::Submitted {
                            path,
                            sweep,
                            summary,
                            changed,
                        } => eprintln!(
                            "watch: submitted {}{} as sweep `{}`: {} job(s) added, {} already stored, {} requeued",
                            cg_core::shown(&path.display().to_string()),
                            if changed { " (changed)" } else { "" },
                            cg_core::shown(&sweep),
                            summary.added,
                            summary.existing,
                            summary.requeued
                        ),
                        cg_daemon::WatchEvent::Rejected { path, message } => {
                            eprintln!(
                                "watch: rejected {}:",
                                cg_core::shown(&path.display().to_string())
                            );
                            for line in message.lines() {
                                // Escaped and masked by the watcher already.
                                eprintln!("  {line}");
                            }
                        }
                    }
                }
            }
            Err(e) => {
                if !failing {
                    eprintln!(
                        "warning: watching {}: {}",
                        cg_core::shown(&watcher.dir().display().to_string()),
                        cg_core::shown(&e.to_string())
                    );
                }
                failing = true;
            }
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}
