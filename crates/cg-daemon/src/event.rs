//! Everything the local workers report, as one closed enum: the CLI turns these into progress
//! lines, tests can collect them.

use cg_core::{EpochRecord, JobStatus};

/// One thing that happened while running jobs. Job ids are the full ids.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Running jobs of dead local workers (or with expired leases) were taken back at start.
    TakenBack { jobs: usize, why: String },
    /// A worker claimed a job and started its runner.
    Started {
        job: String,
        attempt: u32,
        worker: String,
        device: String,
    },
    /// Progress within an epoch.
    Step {
        job: String,
        epoch: usize,
        epochs: usize,
        step: usize,
        steps_per_epoch: usize,
        loss: f64,
        img_per_s: f64,
        eta_secs: f64,
    },
    /// An epoch finished (and was recorded).
    Epoch {
        job: String,
        attempt: u32,
        epochs: usize,
        record: EpochRecord,
    },
    /// A message from the runner.
    Note { job: String, message: String },
    /// The job completed and its result is stored.
    Completed {
        job: String,
        attempt: u32,
        test_acc: f64,
        savings_nominal: f64,
        wall_secs: f64,
    },
    /// The attempt failed; `status` is the job's status afterwards (`Queued` when it will be retried).
    Failed {
        job: String,
        attempt: u32,
        error: String,
        status: JobStatus,
    },
    /// The job was stopped and put back in the queue (shutting down).
    Requeued { job: String, attempt: u32 },
    /// The attempt lost its lease (taken back by someone else); its result, if any, is dropped.
    LeaseLost { job: String, attempt: u32 },
    /// Something went wrong around a job, not in it (the store was busy, ...).
    Warning { message: String },
}
