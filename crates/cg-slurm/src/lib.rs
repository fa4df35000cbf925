//! Slurm for cg, and nothing else: the batch script of an array of `cg worker` tasks
//! ([`batch_script`]), the calls to `sbatch`, `squeue` and `sacct` ([`sbatch`], [`task_states`]),
//! and whether a path lies on a network file system ([`network_fs`]), where a SQLite database
//! must not be shared by many nodes. Which job runs where is the queue's business (cg-store):
//! Slurm only starts and stops workers.

mod error;
mod fs;
mod script;
mod tools;

pub use error::{Error, Result};
pub use fs::{fs_kind_of_magic, network_fs};
pub use script::{ArraySpec, batch_script};
pub use tools::{TaskState, available, sbatch, task_states};
