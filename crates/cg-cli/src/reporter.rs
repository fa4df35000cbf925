//! The reports of `cg daemon` and `cg worker`: for every sweep whose jobs this process runs (and
//! every finished sweep still without a final report), `reports/<sweep>/` is written when its
//! first job starts, refreshed after results at most once per interval (30 s), and written a last
//! time when the sweep has finished, by exactly one worker (`Store::finish_sweep` decides). Every
//! file is replaced atomically (cg-report), so a reader never sees half a report. When each
//! report is due is cg-report's `ReportSchedule`; this module holds the loop that feeds it (job
//! events, the store's answers, the time) and writes what it says. `cg daemon --watch`'s log
//! loop lives here too.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cg_daemon::Event;
use cg_report::{Due, ReportSchedule, STALE_FINAL_CLAIM, SweepEnd};
use cg_store::{FinalReport, Store};
use tokio::sync::mpsc;

use crate::report::{report_html_path, write_sweep_report_quiet};

/// Where and how often the reports are written.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// Reports go to `dir/<sweep>/`.
    pub dir: PathBuf,
    /// Least time between two refreshes of a running sweep's report.
    pub every: Duration,
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
        worker: report_worker(),
        dir: settings.dir,
        schedule: ReportSchedule::new(settings.every, Instant::now()),
    };
    reporter.adopt_finished().await;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                None => break,
                Some(event) => reporter.note(&event).await,
            },
            _ = tick.tick() => {
                // Sweeps that finished without a job event here (cancelled, or their last job
                // ended on another machine whose worker died) are looked at now and then.
                if reporter.schedule.adopt_due(Instant::now()) {
                    reporter.adopt_finished().await;
                }
                reporter.pass(false).await;
            }
        }
    }
    reporter.pass(true).await;
}

/// The name under which this process claims final reports.
fn report_worker() -> String {
    format!(
        "{}report",
        cg_daemon::local_worker_prefix(std::process::id())
    )
}

/// What the store's answer about a sweep's final report means for its schedule.
fn sweep_end(finish: &cg_store::Result<FinalReport>) -> SweepEnd {
    match finish {
        Ok(FinalReport::NotFinished) => SweepEnd::NotFinished,
        Ok(FinalReport::Mine) => SweepEnd::FinalIsMine,
        Ok(FinalReport::Elsewhere) => SweepEnd::FinalElsewhere,
        Err(cg_store::Error::UnknownSweep(_)) => SweepEnd::Deleted,
        Err(_) => SweepEnd::Unknown,
    }
}

/// The loop's side of the reports: asks the store, feeds the schedule, writes what is due.
struct Reporter {
    store: Store,
    worker: String,
    /// Reports go to `dir/<sweep>/`.
    dir: PathBuf,
    schedule: ReportSchedule,
}

impl Reporter {
    /// Finished sweeps without a final report (the daemon was down, or the worker that took the
    /// report died) are this process's to report too.
    async fn adopt_finished(&mut self) {
        match self.store.list_sweeps().await {
            Ok(sweeps) => {
                for s in sweeps {
                    if s.has_finished() && s.final_report_done_ms.is_none() {
                        self.schedule.adopt(s.name);
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
            Ok(names) => names.into_iter().for_each(|n| self.schedule.job_event(n)),
            Err(e) => eprintln!("warning: cannot find the sweeps of job {job}: {e}"),
        }
    }

    /// Writes what is due: final reports of finished sweeps at once, and the reports of running
    /// sweeps that changed and were not written within the interval (all of them when `last`).
    async fn pass(&mut self, last: bool) {
        for name in self.schedule.pending() {
            // The name comes from the database: only a plain name may pick the directory.
            if let Err(reason) = cg_core::check_name(&name) {
                eprintln!("warning: no report for a sweep from the database: {reason}");
                self.schedule.forget(&name);
                continue;
            }
            let finish = self
                .store
                .finish_sweep(&name, &self.worker, STALE_FINAL_CLAIM)
                .await;
            match self
                .schedule
                .due(&name, Instant::now(), sweep_end(&finish), last)
            {
                Due::Nothing => {}
                Due::Live => self.write_live(&name).await,
                Due::Final => self.write_final(&name).await,
                // Deleted while it ran: said once, then the sweep is forgotten here.
                Due::Deleted => {
                    eprintln!("sweep `{name}` was deleted; its report is no longer updated")
                }
                Due::Warn => {
                    if let Err(e) = &finish {
                        eprintln!("warning: cannot check whether sweep `{name}` has finished: {e}");
                    }
                }
            }
        }
    }

    /// The report of a running sweep.
    async fn write_live(&self, name: &str) {
        let out = self.dir.join(name);
        if let Err(e) = write_sweep_report_quiet(&self.store, name, &out, false).await {
            eprintln!("warning: the report of sweep `{name}` was not written: {e:#}");
        }
    }

    /// The final report of a finished sweep, recorded so that no other process writes it.
    async fn write_final(&mut self, name: &str) {
        let out = self.dir.join(name);
        if let Err(e) = write_sweep_report_quiet(&self.store, name, &out, false).await {
            self.schedule.final_failed(name);
            eprintln!("warning: the report of sweep `{name}` was not written: {e:#}");
            return;
        }
        let path = report_html_path(&out);
        match self
            .store
            .final_report_written(name, &self.worker, &path)
            .await
        {
            Ok(_) => {
                self.schedule.final_recorded(name);
                eprintln!("sweep `{name}` has finished; report: {path}");
            }
            Err(e) => eprintln!(
                "warning: the final report of sweep `{name}` is written but not recorded: {e}"
            ),
        }
    }
}

/// `cg run`'s report at the end: records that the sweep finished (taking its final report, so
/// that no daemon writes it again) and writes `reports/<sweep>/`. Returns the path of `report.md`.
pub async fn foreground_report(store: &Store, sweep: &str) -> anyhow::Result<PathBuf> {
    let worker = report_worker();
    let finished = store
        .finish_sweep(sweep, &worker, STALE_FINAL_CLAIM)
        .await?;
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
