//! The decisions of a `method: mo-asha` sweep: asynchronous multi-objective successive halving with
//! promotion, and proposals seeded by the front (NSGA-II variation). Pure: it does no IO and reads
//! no clock; [`Search::replay`] turns a spec and the results in their stored order into every
//! decision (draw, promote, stop), so a store can record them, a restarted coordinator can make the
//! same ones again, and a recorded grid can be replayed through them without training.

mod asha;
mod plan;
mod simulate;
mod space;

pub use asha::{Action, Decision, HvPoint, Observation, Search, SearchSpec};
pub use cg_core::SplitMix64;
pub use cg_core::all_points;
pub use plan::{budget_line, draws_heading, epoch_budget, first_draws, search_line, seeds_line};
pub use simulate::{Curve, SimulateError, Simulation, grid_hypervolume, simulate};
pub use space::{from_unit, random_point, to_unit, vary};

/// Errors of cg-search: results that do not fit the decisions made so far.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("a result for configuration {0}, which was never drawn")]
    UnknownConfig(usize),
    #[error("a result for configuration {config} at rung {rung}, which it was not submitted to")]
    NotPending { config: usize, rung: usize },
    #[error(
        "a result for seed {seed} of configuration {config} at rung {rung}, which has one already or no such seed"
    )]
    SeedNotPending {
        config: usize,
        rung: usize,
        seed: usize,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
