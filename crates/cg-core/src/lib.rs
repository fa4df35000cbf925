//! Domain types shared by every cg crate: the run configuration (the run-file schema), the result of
//! one training run, jobs and their states. This crate does no IO and knows no framework: it is
//! plain data with serde, defaults from `METHOD.md`, and validation that returns every problem at once.

mod config;
mod error;
mod job;
mod nan;
pub mod pareto;
mod result;
pub mod rng;
mod search;
mod shown;
mod sweep;

pub use config::{
    DatasetKind, DatasetSpec, GateMode, GateSpec, LossSpec, ModelKind, ModelSpec, Problem,
    RunConfig, Schedule, Shortcut, SyntheticSpec, TrainSpec, closest, known_keys, limits,
    parse_set_value,
};
pub use error::{Error, Result};
pub use job::{JobId, JobSpec, JobStatus, check_job_id, check_name};
pub use nan::f64_or_nan;
pub use result::{
    BlockGateStats, EpochRecord, METRICS, Provenance, ROUTING_SHARE, RunResult, chosen_metric,
    routing_share_of,
};
pub use rng::SplitMix64;
pub use search::{AxisSpace, Coord, DecisionKind, Fidelity, Sampler, SearchSettings, all_points};
pub use shown::{
    escape_control, escape_control_lines, mask_credentials, mask_url, shown, shown_lines,
    url_scheme,
};
pub use sweep::{
    CONTROL_KEY, CONTROL_OF_KEY, Control, Direction, JobRecord, Objective, STATIC_CLOSED,
    SweepInfo, control_of_params,
};
