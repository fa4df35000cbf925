//! A timing of sweep expansion, for `examples/expand_bench.rs` and `cg bench`: the budget is 100,000 jobs
//! in under a second (release build).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::load::load_sweep_str;
use crate::source::LoadOptions;

/// What [`bench_expand`] measured.
#[derive(Debug, Clone)]
pub struct ExpandTiming {
    pub jobs: usize,
    pub load: Duration,
    pub count: Duration,
    pub expand: Duration,
}

/// Loads a synthetic-data grid sweep of `100 × 100 × n/10,000` points (at least 10,000), then counts and
/// expands it, timing each step.
pub fn bench_expand(points: usize) -> ExpandTiming {
    let third = points.div_ceil(10_000).max(1);
    let text = format!(
        "name: bench\n\
         dataset: {{kind: synthetic}}\n\
         parameters:\n  \
           gate.threshold: {{min: 0.0, max: 2.0, grid_points: 100}}\n  \
           loss.flops_weight: {{min: 0.001, max: 10.0, distribution: log_uniform_values, grid_points: 100}}\n  \
           train.limit_train: {{min: 1, max: {third}}}\n"
    );
    let start = Instant::now();
    let sweep = load_sweep_str(
        &text,
        "bench.yaml",
        Path::new("."),
        &LoadOptions::no_data_check(),
    )
    .expect("the benchmark sweep is valid");
    let load = start.elapsed();
    let start = Instant::now();
    let n = sweep.count();
    let count = start.elapsed();
    let start = Instant::now();
    let jobs = sweep.expand();
    let expand = start.elapsed();
    assert_eq!(jobs.len(), n);
    ExpandTiming {
        jobs: jobs.len(),
        load,
        count,
        expand,
    }
}
