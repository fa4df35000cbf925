//! Run and sweep files of cg: YAML (or JSON) in, typed cg-core values out. This is the only crate that
//! knows YAML. It parses with positions, validates and reports *every* problem at once with file, line,
//! column and dotted key, expands sweeps into [`cg_core::JobSpec`]s in a deterministic order, and gives
//! each job a stable id. It does no training, opens no database and runs no programs: a job is a typed
//! training configuration, never a command.

mod bench;
mod diag;
mod error;
mod id;
mod keys;
mod load;
mod plan;
mod run;
mod schema;
mod sections;
mod source;
mod sweep;
mod yaml;

pub use bench::{ExpandTiming, bench_expand};
pub use diag::{Diagnostic, Diagnostics, Pos};
pub use error::{Error, Result};
pub use id::{JOB_ID_LEN, SHORT_ID_LEN, data_fingerprint, job_id};
pub use keys::{DISTRIBUTIONS, METRICS, PARAMETER_KEYS, PRESET_AXIS, RUN_SECTIONS, SWEEP_KEYS};
pub use load::{load_sweep, load_sweep_str};
pub use plan::{plan_table, plan_table_with_axes, rungs_line, space_table};
pub use run::{load_run_file, load_run_file_with, load_run_str, load_run_str_with};
pub use schema::json_schema;
pub use source::{LoadOptions, open_regular};
pub use sweep::{DEFAULT_JOB_LIMIT, MAX_GRID_POINTS, MAX_JOBS, Method, Sweep};
pub use yaml::{MAX_ALIAS_REPLAYED_EVENTS, MAX_FILE_BYTES, MAX_NODES};
