//! When the reports of running sweeps are written (`cg daemon`, `cg worker`): a sweep's report is
//! due when one of its jobs starts or ends, at most once per interval while it runs (all changed
//! ones at the last pass), and its final report once it has finished, by the one process that
//! holds the claim on it; a final report that failed is tried again once per interval. Pure: the
//! caller tells the time and what the store says, and writes what is due.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A claim on a final report not written within this long is taken over by another process.
pub const STALE_FINAL_CLAIM: Duration = Duration::from_secs(120);

/// How often finished sweeps without a final report are looked for.
pub const ADOPT_EVERY: Duration = Duration::from_secs(30);

/// Where a sweep stands, as the store says when its report is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepEnd {
    /// Jobs are still queued or running.
    NotFinished,
    /// Finished, and this process holds the claim on its final report.
    FinalIsMine,
    /// Finished, and its final report is written (or being written) elsewhere.
    FinalElsewhere,
    /// The sweep was deleted.
    Deleted,
    /// The store could not say.
    Unknown,
}

/// What to do about a sweep's report now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing yet.
    Nothing,
    /// Write the report of the running sweep.
    Live,
    /// Write the final report, then say how it went ([`ReportSchedule::final_recorded`],
    /// [`ReportSchedule::final_failed`]).
    Final,
    /// Say, once, that the sweep was deleted; it is forgotten.
    Deleted,
    /// Say that the store could not tell whether the sweep has finished (once per interval).
    Warn,
}

#[derive(Debug, Default)]
struct SweepState {
    /// Something changed since the last write.
    dirty: bool,
    last_write: Option<Instant>,
    /// The final report is written (here or elsewhere): nothing more to do.
    done: bool,
    /// Writing the final report failed: it is tried again once per interval.
    failed_final: bool,
}

/// The report timing of every sweep this process reports on.
#[derive(Debug)]
pub struct ReportSchedule {
    /// Least time between two writes of a running sweep's report.
    every: Duration,
    /// When finished sweeps were last looked for.
    adopted: Instant,
    sweeps: BTreeMap<String, SweepState>,
}

impl ReportSchedule {
    /// A schedule that writes a running sweep's report at most once per `every`; finished sweeps
    /// were last looked for at `now`.
    pub fn new(every: Duration, now: Instant) -> ReportSchedule {
        ReportSchedule {
            every,
            adopted: now,
            sweeps: BTreeMap::new(),
        }
    }

    /// A job of `sweep` started or ended: its report is due, final or not.
    pub fn job_event(&mut self, sweep: String) {
        let state = self.sweeps.entry(sweep).or_default();
        state.dirty = true;
        state.done = false;
    }

    /// `sweep` has finished without a final report: this process may write it.
    pub fn adopt(&mut self, sweep: String) {
        self.sweeps.entry(sweep).or_default().dirty = true;
    }

    /// Whether finished sweeps are to be looked for again (every [`ADOPT_EVERY`]); when so, the
    /// time is noted.
    pub fn adopt_due(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.adopted) < ADOPT_EVERY {
            return false;
        }
        self.adopted = now;
        true
    }

    /// The sweeps to look at, by name: changed, and without a final report.
    pub fn pending(&self) -> Vec<String> {
        self.sweeps
            .iter()
            .filter(|(_, s)| !s.done && s.dirty)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Nothing more is to be written for `sweep` (until one of its jobs starts or ends).
    pub fn forget(&mut self, sweep: &str) {
        self.sweeps.entry(sweep.to_string()).or_default().done = true;
    }

    /// What to do for `sweep` at `now`, given what the store says of it; `last`: the workers have
    /// stopped, so a changed report is due whatever the interval. A write that is due counts as
    /// done at `now`.
    pub fn due(&mut self, sweep: &str, now: Instant, end: SweepEnd, last: bool) -> Due {
        let every = self.every;
        let state = self.sweeps.entry(sweep.to_string()).or_default();
        let due = last
            || state
                .last_write
                .is_none_or(|t| now.saturating_duration_since(t) >= every);
        match end {
            SweepEnd::Deleted => {
                state.done = true;
                Due::Deleted
            }
            SweepEnd::FinalElsewhere => {
                state.done = true;
                Due::Nothing
            }
            SweepEnd::Unknown | SweepEnd::NotFinished if !due => Due::Nothing,
            SweepEnd::FinalIsMine if state.failed_final && !due => Due::Nothing,
            SweepEnd::Unknown => {
                state.last_write = Some(now);
                Due::Warn
            }
            SweepEnd::FinalIsMine => {
                state.last_write = Some(now);
                Due::Final
            }
            SweepEnd::NotFinished => {
                state.last_write = Some(now);
                state.dirty = false;
                Due::Live
            }
        }
    }

    /// The final report of `sweep` is written and recorded: nothing more to do.
    pub fn final_recorded(&mut self, sweep: &str) {
        self.forget(sweep);
    }

    /// Writing the final report of `sweep` failed: it is tried again once per interval.
    pub fn final_failed(&mut self, sweep: &str) {
        self.sweeps
            .entry(sweep.to_string())
            .or_default()
            .failed_final = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Due::{Final, Live, Nothing, Warn};
    use SweepEnd::{FinalIsMine, NotFinished};

    /// A schedule (30 s interval) with its clock; every call is about the sweep `a`.
    struct Check {
        start: Instant,
        schedule: ReportSchedule,
    }

    impl Check {
        fn new() -> Check {
            let start = Instant::now();
            Check {
                start,
                schedule: ReportSchedule::new(Duration::from_secs(30), start),
            }
        }

        fn at(&self, secs: u64) -> Instant {
            self.start + Duration::from_secs(secs)
        }

        /// What is due for `a` at `secs`, in a pass that is not the last.
        fn due(&mut self, secs: u64, end: SweepEnd) -> Due {
            self.schedule.due("a", self.at(secs), end, false)
        }

        fn pending(&self) -> Vec<String> {
            self.schedule.pending()
        }
    }

    #[test]
    fn a_running_sweep_is_written_at_most_once_per_interval() {
        let mut c = Check::new();
        c.schedule.job_event("a".into());
        assert_eq!(c.pending(), ["a"]);
        assert_eq!(c.due(0, NotFinished), Live);
        // Written: nothing pending until a job changes again.
        assert!(c.pending().is_empty());
        c.schedule.job_event("a".into());
        assert_eq!(c.due(10, NotFinished), Nothing);
        assert_eq!(c.pending(), ["a"], "still changed, written later");
        assert_eq!(c.due(30, NotFinished), Live);
    }

    #[test]
    fn the_last_pass_writes_whatever_changed() {
        let mut c = Check::new();
        c.schedule.job_event("a".into());
        assert_eq!(c.due(0, NotFinished), Live);
        c.schedule.job_event("a".into());
        assert_eq!(c.schedule.due("a", c.at(1), NotFinished, true), Live);
    }

    #[test]
    fn a_final_report_is_written_at_once_and_then_forgotten() {
        let mut c = Check::new();
        c.schedule.job_event("a".into());
        assert_eq!(c.due(0, NotFinished), Live);
        c.schedule.job_event("a".into());
        // Within the interval, but final: due now.
        assert_eq!(c.due(1, FinalIsMine), Final);
        c.schedule.final_recorded("a");
        assert!(c.pending().is_empty());
        // A job of it runs again (resumed): its report is due again.
        c.schedule.job_event("a".into());
        assert_eq!(c.pending(), ["a"]);
    }

    #[test]
    fn a_failed_final_report_is_retried_once_per_interval() {
        let mut c = Check::new();
        c.schedule.adopt("a".into());
        assert_eq!(c.due(0, FinalIsMine), Final);
        c.schedule.final_failed("a");
        assert_eq!(c.pending(), ["a"]);
        assert_eq!(c.due(29, FinalIsMine), Nothing);
        assert_eq!(c.due(30, FinalIsMine), Final);
    }

    #[test]
    fn a_final_report_not_recorded_is_written_again() {
        let mut c = Check::new();
        c.schedule.adopt("a".into());
        assert_eq!(c.due(0, FinalIsMine), Final);
        // Neither recorded nor failed (recording it failed): still pending, due at once.
        assert_eq!(c.due(1, FinalIsMine), Final);
    }

    #[test]
    fn a_final_report_elsewhere_or_a_deleted_sweep_is_forgotten() {
        let mut c = Check::new();
        c.schedule.job_event("a".into());
        c.schedule.job_event("b".into());
        assert_eq!(c.due(0, SweepEnd::FinalElsewhere), Nothing);
        let deleted = c.schedule.due("b", c.at(0), SweepEnd::Deleted, false);
        assert_eq!(deleted, Due::Deleted);
        assert!(c.pending().is_empty());
    }

    #[test]
    fn a_store_that_cannot_say_is_warned_about_once_per_interval() {
        let mut c = Check::new();
        c.schedule.job_event("a".into());
        assert_eq!(c.due(0, SweepEnd::Unknown), Warn);
        assert_eq!(c.due(5, SweepEnd::Unknown), Nothing);
        assert_eq!(c.pending(), ["a"]);
        assert_eq!(c.due(30, SweepEnd::Unknown), Warn);
    }

    #[test]
    fn finished_sweeps_are_looked_for_every_thirty_seconds() {
        let mut c = Check::new();
        let due: Vec<bool> = [29, 30, 31, 60]
            .map(|secs| c.schedule.adopt_due(c.at(secs)))
            .to_vec();
        assert_eq!(due, [false, true, false, true]);
    }

    #[test]
    fn a_forgotten_sweep_is_not_pending() {
        let mut c = Check::new();
        c.schedule.job_event("bad/name".into());
        c.schedule.forget("bad/name");
        assert!(c.pending().is_empty());
    }
}
