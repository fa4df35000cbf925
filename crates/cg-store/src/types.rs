//! Plain data the store hands out and takes in, besides cg-core's types.

use std::fmt;

use cg_core::{JobSpec, JobStatus, SweepInfo};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Whether a sweep's queued jobs may be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SweepStatus {
    /// Its queued jobs are handed out.
    Active,
    /// Its queued jobs wait; running ones finish.
    Paused,
    /// Its queued jobs are cancelled (unless another live sweep also holds them).
    Cancelled,
}

impl SweepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SweepStatus::Active => "active",
            SweepStatus::Paused => "paused",
            SweepStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => SweepStatus::Active,
            "paused" => SweepStatus::Paused,
            "cancelled" => SweepStatus::Cancelled,
            _ => return None,
        })
    }
}

impl fmt::Display for SweepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How [`Store::submit_jobs_with`](crate::Store::submit_jobs_with) treats the jobs it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmitOptions {
    /// Put completed and failed jobs back in the queue (their stored result is dropped).
    pub rerun: bool,
    /// Higher priorities are claimed first; within one priority, submission order.
    pub priority: i64,
    /// Attempts a new job may spend before it stays failed.
    pub max_attempts: u32,
    /// [`Store::submit_sweep`](crate::Store::submit_sweep): add the jobs to an existing sweep of
    /// the same name made from a different file (it takes the new file and info).
    pub merge: bool,
}

impl Default for SubmitOptions {
    fn default() -> Self {
        Self {
            rerun: false,
            priority: 0,
            max_attempts: 3,
            merge: false,
        }
    }
}

/// What a submission did. `added + existing + requeued` is the number of specs given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SubmitSummary {
    /// Jobs stored for the first time.
    pub added: usize,
    /// Jobs already stored and left as they were (duplicates within the call count here too).
    pub existing: usize,
    /// Jobs already stored and put back in the queue.
    pub requeued: usize,
}

/// A job handed to a worker. The worker passes `job.id` and `attempt` back with every report.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub job: JobSpec,
    /// The sweep that first submitted the job.
    pub sweep: String,
    /// The attempt number, 1 for the first claim of a job; never reused for the same job.
    pub attempt: u32,
}

/// What [`Store::complete`](crate::Store::complete) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompleteOutcome {
    /// The result was stored and the job is completed.
    Recorded,
    /// This attempt's result was already stored; nothing changed.
    AlreadyRecorded,
}

/// Number of jobs in each state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatusCounts {
    pub queued: usize,
    pub running: usize,
    pub completed: usize,
    pub failed: usize,
    pub cancelled: usize,
}

impl StatusCounts {
    pub fn total(&self) -> usize {
        self.queued + self.running + self.completed + self.failed + self.cancelled
    }

    /// No job is queued or running.
    pub fn is_finished(&self) -> bool {
        self.queued == 0 && self.running == 0
    }

    pub fn get(&self, status: JobStatus) -> usize {
        match status {
            JobStatus::Queued => self.queued,
            JobStatus::Running => self.running,
            JobStatus::Completed => self.completed,
            JobStatus::Failed => self.failed,
            JobStatus::Cancelled => self.cancelled,
        }
    }

    pub(crate) fn add(&mut self, status: &str, n: i64) -> Result<()> {
        let n = n.max(0) as usize;
        match parse_job_status(status)? {
            JobStatus::Queued => self.queued += n,
            JobStatus::Running => self.running += n,
            JobStatus::Completed => self.completed += n,
            JobStatus::Failed => self.failed += n,
            JobStatus::Cancelled => self.cancelled += n,
        }
        Ok(())
    }
}

/// One sweep as [`Store::list_sweeps`](crate::Store::list_sweeps) shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepSummary {
    pub name: String,
    pub status: SweepStatus,
    pub info: SweepInfo,
    pub hypervolume: Option<f64>,
    pub created_at_ms: i64,
    /// When one of its jobs was first claimed.
    pub started_at_ms: Option<i64>,
    /// When it was recorded finished ([`Store::finish_sweep`](crate::Store::finish_sweep));
    /// `None` again once jobs are queued in it anew.
    pub finished_at_ms: Option<i64>,
    /// Where the latest report of it was written (by whichever worker wrote it).
    pub report_path: Option<String>,
    /// When its final report was written; `None` while none was.
    pub final_report_done_ms: Option<i64>,
    /// Jobs may still be submitted to it other than by a user: its search (`method: mo-asha`) has
    /// not finished, or its matched-compute controls (`controls:`) are still to be planned
    /// ([`SweepSummary::controls_pending`]).
    pub search_open: bool,
    /// Its control jobs are still to be planned and submitted (`Store::submit_controls`).
    pub controls_pending: bool,
    pub counts: StatusCounts,
}

impl SweepSummary {
    /// THE rule for "this sweep has finished", used by `cg status`, the daemon's reports and
    /// [`Store::finish_sweep`](crate::Store::finish_sweep): it has jobs and none of them is queued
    /// or running (completed, failed and cancelled ones are all done). A paused sweep with queued
    /// jobs has not finished. A sweep whose search submits jobs as results arrive (`method:
    /// mo-asha`) must also have finished its search, and a sweep with `controls:` must have
    /// submitted its controls ([`SweepSummary::search_open`] covers both). (`finish_sweep` repeats
    /// this in SQL.)
    pub fn has_finished(&self) -> bool {
        self.counts.total() > 0 && self.counts.is_finished() && !self.search_open
    }

    /// `finished` when [`SweepSummary::has_finished`], else the stored status.
    pub fn lifecycle(&self) -> &'static str {
        if self.has_finished() {
            "finished"
        } else {
            self.status.as_str()
        }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    /// Still running (or its worker vanished and nobody has noticed yet).
    Running,
    Completed,
    Failed,
    /// Its lease ran out without heartbeats.
    Expired,
    /// Stopped gracefully and put back in the queue; it did not count against `max_attempts`.
    Requeued,
    /// Its worker process was found dead ([`Store::reclaim_owner`](crate::Store::reclaim_owner)).
    Reclaimed,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Running => "running",
            AttemptOutcome::Completed => "completed",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Expired => "expired",
            AttemptOutcome::Requeued => "requeued",
            AttemptOutcome::Reclaimed => "reclaimed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => AttemptOutcome::Running,
            "completed" => AttemptOutcome::Completed,
            "failed" => AttemptOutcome::Failed,
            "expired" => AttemptOutcome::Expired,
            "requeued" => AttemptOutcome::Requeued,
            "reclaimed" => AttemptOutcome::Reclaimed,
            _ => return None,
        })
    }
}

/// One attempt at running a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub job_id: String,
    pub attempt: u32,
    pub worker: String,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    pub outcome: AttemptOutcome,
    pub error: Option<String>,
    pub stderr_tail: Option<String>,
}

/// A file a job produced (result JSON, checkpoint, log), by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub job_id: String,
    pub kind: String,
    pub path: String,
    pub created_at_ms: i64,
}

pub(crate) fn parse_job_status(s: &str) -> Result<JobStatus> {
    JobStatus::parse(s).ok_or_else(|| Error::Corrupt {
        what: "jobs.status".into(),
        message: format!("unknown job status `{s}`"),
    })
}

pub(crate) fn parse_sweep_status(s: &str) -> Result<SweepStatus> {
    SweepStatus::parse(s).ok_or_else(|| Error::Corrupt {
        what: "sweeps.status".into(),
        message: format!("unknown sweep status `{s}`"),
    })
}

pub(crate) fn parse_attempt_outcome(s: &str) -> Result<AttemptOutcome> {
    AttemptOutcome::parse(s).ok_or_else(|| Error::Corrupt {
        what: "attempts.outcome".into(),
        message: format!("unknown attempt outcome `{s}`"),
    })
}

/// Attempt numbers are `u32` in the API and `BIGINT` in the database.
pub(crate) fn attempt_u32(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
