//! The coordinator and workers of cg: submitting a sweep's jobs to the store, running local workers
//! that claim jobs and train each one in its own child process, and recording what the children
//! report (epochs, results, failures) back in the store.
//!
//! - [`submit_sweep`]: migrate the database, store the sweep and queue its jobs.
//! - [`advance_search`] and [`advance_controls`]: the jobs a sweep submits as results arrive (a
//!   `method: mo-asha` search; matched-compute controls once its front is known).
//! - [`run_local`]: N local worker slots; each claims a job, re-invokes the `cg` binary as a job
//!   runner (see [`runner`]), heartbeats the lease while the child reports progress as JSON lines
//!   ([`ChildMessage`]) on its stdout, and completes, fails or requeues the job when it ends.
//!   Everything worth showing is sent as one closed enum, [`Event`]; the CLI draws it.
//! - [`Watcher`]: `cg daemon --watch DIR`, sweep files validated and submitted as they appear.
//! - [`runner::run_child`]: the child side: read the resolved config, train with epoch
//!   checkpoints (resuming), stop when the parent goes away.
//!
//! It does not parse command lines or draw terminals (cg-cli does), and it never touches SQL
//! (cg-store does). The child never opens the database: only the parent writes to the store.

mod controls;
mod devices;
mod error;
mod event;
mod gpu;
mod local;
mod proc;
mod protocol;
pub mod runner;
mod search;
mod submit;
mod watch;

pub use controls::{advance_controls, closed_blocks, closest_width, plan_controls};
pub use error::{Error, Result};
pub use event::Event;
pub use gpu::{Gpu, Slot, check_gpus, detect_gpus, gpu_slots, parse_visible_devices, pick_gpus};
pub use local::{Halted, LocalOptions, Overhead, RunSummary, is_out_of_memory, run_local};
pub use proc::{hostname, local_worker_prefix, reclaim_dead_local_workers};
pub use protocol::{ChildMessage, FailureKind};
pub use search::{advance_search, search_finished, search_spec, start_search, stored_search};
pub use submit::submit_sweep;
pub use watch::{WatchEvent, Watcher};
