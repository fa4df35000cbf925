//! The database of cg, and the only crate that knows sqlx: sweeps, the job queue with leases,
//! per-epoch metrics, results, gate statistics and artifacts, on SQLite (a file, the default) or
//! PostgreSQL (shared by several machines), with one schema on both.
//!
//! ```no_run
//! # async fn demo(info: cg_core::SweepInfo, jobs: Vec<cg_core::JobSpec>) -> cg_store::Result<()> {
//! use std::time::Duration;
//! let store = cg_store::Store::open("runs/cg.db").await?;
//! store.migrate().await?;
//! store.upsert_sweep("gates", "name: gates\n", &info).await?;
//! store.submit_jobs("gates", &jobs, false).await?;
//! while let Some(claim) = store.claim("host:4242:0", Duration::from_secs(60)).await? {
//!     // train, calling store.heartbeat(..) and store.record_epoch(..) on the way, then
//!     // store.complete(&claim.job.id, claim.attempt, "host:4242:0", &result)
//! #   let _ = claim;
//! }
//! # Ok(()) }
//! ```
//!
//! Design:
//! - Runtime `sqlx::query`/`query_as` + `FromRow`, no compile-time-checked macros: no database is
//!   needed to build. Every statement is written once with `$1` placeholders (SQLite accepts them)
//!   and compiled against both drivers by the macros in `macros.rs`. The hot path differs on
//!   purpose: `claim` and `complete` are one statement each on PostgreSQL (CTEs, `FOR UPDATE SKIP
//!   LOCKED`) and one `BEGIN IMMEDIATE … COMMIT` script each on SQLite, one round trip either way.
//! - Migrations are embedded from `migrations/sqlite` and `migrations/postgres` (repository root),
//!   numbered in lockstep and append-only. [`Store::migrate`] applies them;
//!   [`Store::open_existing`] (workers) refuses a schema it does not know.
//! - Timestamps are integer unix milliseconds (`*_ms` columns) on both engines; JSON is TEXT on
//!   SQLite and JSONB on PostgreSQL.
//! - SQLite runs in WAL mode with `synchronous=NORMAL`; each process writes through one
//!   connection, and multi-statement writes are `BEGIN IMMEDIATE` transactions, so concurrent
//!   workers queue instead of failing with "database is locked" (other processes wait in the
//!   busy timeout, 30 s by default).
//! - Every queue transition checks in its `WHERE` clause that the caller's attempt (job id,
//!   attempt number, worker id) still holds the job: a stale worker's report changes nothing.
//! - Metric columns hold NULL for NaN (SQLite cannot store NaN); reads turn it back into NaN.
//!
//! It does not schedule, spawn workers, train, or compute Pareto fronts: the daemon and report
//! crates do, through this API.

#[macro_use]
mod macros;

mod bench;
mod controls;
mod error;
mod lifecycle;
mod options;
mod query;
mod queue;
mod search;
mod slurm;
mod store;
mod sweeps;
mod types;

pub use bench::{BenchReport, bench_queue};
pub use error::{BoxError, Error, Result};
pub use lifecycle::{FinalReport, Rejection};
pub use options::{DatabaseUrl, StoreOptions, UrlKind};
pub use queue::STDERR_TAIL_MAX_BYTES;
pub use search::{
    AdvanceSummary, DecisionRow, EndedJob, HvRow, LoggedResult, SearchInput, SearchRecord,
    SearchWrite,
};
pub use slurm::SlurmJob;
pub use store::{EngineKind, Store};
pub use types::{
    Artifact, AttemptOutcome, AttemptRecord, Claim, CompleteOutcome, StatusCounts, SubmitOptions,
    SubmitSummary, SweepStatus, SweepSummary,
};
