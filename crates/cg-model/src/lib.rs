//! The scientific core of cg: CosineGate ResNets in burn, exact MAC accounting, data loading, training
//! and evaluation, benchmarks. It knows nothing of databases, YAML or processes: it takes a
//! [`cg_core::RunConfig`] and returns a [`cg_core::RunResult`].

pub mod bench;
mod checkpoint;
pub mod data;
pub mod device;
mod error;
pub mod eval;
#[cfg(feature = "libtorch")]
pub mod fused;
pub mod libtorch;
pub mod macs;
pub mod model;
mod norm;
pub mod predictor;
mod prepared;
pub mod schedule;
pub mod train;

pub use device::{BackendKind, DeviceSpec, burn_version, check_device, run};
pub use error::{Error, Result};
