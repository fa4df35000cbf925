//! A search replayed over recorded training curves, with no training: workers take the jobs the
//! decisions submit (higher rungs first, then in submission order, as the store hands them out),
//! each job lasts the recorded seconds of the epochs it adds, and its result is the curve's values
//! after its rung's epochs. This is how a grid's per-epoch results tell what a search would have
//! found with them, for any seed and sampler.

use cg_core::Coord;
use cg_core::pareto::hypervolume;

use crate::{Observation, Search, SearchSpec};

/// The recorded curve of one configuration of the search's space.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub point: Vec<Coord>,
    /// The objective values after each epoch (index 0: after epoch 1).
    pub values: Vec<Vec<f64>>,
    /// The seconds each epoch took.
    pub epoch_secs: Vec<f64>,
}

/// What a replayed search ended with.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    /// The hypervolume of its top rung once finished.
    pub hypervolume: f64,
    pub epochs_spent: usize,
    /// Simulated wall time with the given workers (sum of job times, packed on the workers).
    pub wall_secs: f64,
    /// The configurations of the top rung, as indices into the curves.
    pub top: Vec<usize>,
    pub finished: bool,
}

/// Why a replay could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimulateError {
    #[error("the search drew a point that has no recorded curve: {0:?}")]
    NoCurve(Vec<Coord>),
    #[error("the curve of {point:?} has {have} epochs; the search needs {need}")]
    ShortCurve {
        point: Vec<Coord>,
        have: usize,
        need: usize,
    },
    /// The fidelity makes no schedule, or no configuration would reach its top rung.
    #[error("fidelity: {0}")]
    Fidelity(String),
    #[error(transparent)]
    Search(#[from] crate::Error),
}

/// The final hypervolume of every curve after its last epoch (a full-budget grid).
pub fn grid_hypervolume(spec: &SearchSpec, curves: &[Curve]) -> f64 {
    let points: Vec<Vec<f64>> = curves
        .iter()
        .filter_map(|c| c.values.last().cloned())
        .collect();
    hypervolume(&points, &spec.directions, &spec.reference_point)
}

/// Runs the search `spec` over `curves` with `workers` simulated workers. A curve is one
/// configuration's result, so the search runs with one seed whatever `spec.seeds` says.
pub fn simulate(
    mut spec: SearchSpec,
    curves: &[Curve],
    workers: usize,
) -> Result<Simulation, SimulateError> {
    spec.seeds = 1;
    let workers = workers.max(1);
    let settings = &spec.settings;
    if let Some(why) = settings.schedule_problem() {
        return Err(SimulateError::Fidelity(why));
    }
    let mut search = Search::new(spec);
    let rung_epochs = search.rung_epochs().to_vec();
    let curve_of = |search: &Search, config: usize| -> Result<usize, SimulateError> {
        let point = search.point(config).unwrap_or_default();
        curves
            .iter()
            .position(|c| c.point == point)
            .ok_or_else(|| SimulateError::NoCurve(point.to_vec()))
    };
    // (rung, submission order, configuration) waiting; (finish time, start order, config, rung).
    let mut queue: Vec<(usize, usize, usize)> = Vec::new();
    let mut running: Vec<(f64, usize, usize, usize)> = Vec::new();
    let mut seen: Vec<(usize, usize)> = Vec::new();
    let (mut now, mut submitted, mut started) = (0.0f64, 0usize, 0usize);
    loop {
        for (config, rung) in search.pending() {
            if !seen.contains(&(config, rung)) {
                seen.push((config, rung));
                queue.push((rung, submitted, config));
                submitted += 1;
            }
        }
        while running.len() < workers && !queue.is_empty() {
            let best = (0..queue.len())
                .max_by(|&a, &b| {
                    queue[a]
                        .0
                        .cmp(&queue[b].0)
                        .then(queue[b].1.cmp(&queue[a].1))
                })
                .expect("the queue is not empty");
            let (rung, _, config) = queue.remove(best);
            let curve = &curves[curve_of(&search, config)?];
            let from = if rung == 0 { 0 } else { rung_epochs[rung - 1] };
            let to = rung_epochs[rung];
            if curve.values.len() < to || curve.epoch_secs.len() < to {
                return Err(SimulateError::ShortCurve {
                    point: curve.point.clone(),
                    have: curve.values.len().min(curve.epoch_secs.len()),
                    need: to,
                });
            }
            let secs: f64 = curve.epoch_secs[from..to].iter().sum();
            running.push((now + secs, started, config, rung));
            started += 1;
        }
        let Some(next) = (0..running.len()).min_by(|&a, &b| {
            running[a]
                .0
                .total_cmp(&running[b].0)
                .then(running[a].1.cmp(&running[b].1))
        }) else {
            break;
        };
        let (finish, _, config, rung) = running.remove(next);
        now = finish;
        let curve = &curves[curve_of(&search, config)?];
        search.observe(Observation {
            config,
            rung,
            seed: 0,
            objectives: Some(curve.values[rung_epochs[rung] - 1].clone()),
        })?;
    }
    let top_rung = rung_epochs.len() - 1;
    let mut top = Vec::new();
    for d in search.decisions() {
        let reaches_top = match d.action {
            crate::Action::Promote => d.rung == top_rung,
            crate::Action::Draw { .. } => top_rung == 0,
            crate::Action::Stop => false,
        };
        if reaches_top {
            top.push(curve_of(&search, d.config)?);
        }
    }
    Ok(Simulation {
        hypervolume: search.hv_history().last().map_or(0.0, |h| h.hypervolume),
        epochs_spent: search.epochs_spent(),
        wall_secs: now,
        top,
        finished: search.is_finished(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cg_core::{AxisSpace, Direction, Fidelity, Sampler, SearchSettings};

    fn spec(sampler: Sampler, seed: u64) -> SearchSpec {
        SearchSpec {
            settings: SearchSettings {
                space: vec![AxisSpace::Choice { n: 3 }, AxisSpace::Choice { n: 3 }],
                n_samples: 9,
                fidelity: Fidelity {
                    min_epochs: 1,
                    max_epochs: 9,
                    eta: 3,
                },
                sampler,
                seed,
            },
            directions: vec![Direction::Maximize, Direction::Maximize],
            reference_point: vec![0.0, 0.0],
            seeds: 1,
        }
    }

    /// Nine configurations whose ranking never changes: accuracy grows with `a`, savings with `b`
    /// and the trade-off is strict, so every configuration with a + b = 2 is on the final front.
    fn curves() -> Vec<Curve> {
        let mut out = Vec::new();
        for a in 0..3usize {
            for b in 0..3usize {
                let values = (1..=9)
                    .map(|e| {
                        let grow = e as f64 / 9.0;
                        vec![
                            grow * (0.5 + 0.2 * a as f64 - 0.1 * b as f64),
                            grow * (0.1 * b as f64 + 0.05 * (2 - a) as f64),
                        ]
                    })
                    .collect();
                out.push(Curve {
                    point: vec![Coord::Choice(a), Coord::Choice(b)],
                    values,
                    epoch_secs: vec![1.0 + a as f64; 9],
                });
            }
        }
        out
    }

    #[test]
    fn a_replay_spends_the_rungs_epochs_and_is_reproducible() {
        let curves = curves();
        for sampler in [Sampler::Random, Sampler::Nsga2] {
            let a = simulate(spec(sampler, 3), &curves, 2).unwrap();
            assert!(a.finished);
            // 9 configurations × 1 epoch, 3 promoted × 2 more, 1 promoted × 6 more.
            assert_eq!(a.epochs_spent, 9 + 3 * 2 + 6);
            assert_eq!(a.top.len(), 1);
            let grid = grid_hypervolume(&spec(sampler, 3), &curves);
            assert!(a.hypervolume > 0.0 && a.hypervolume <= grid + 1e-12);
            assert_eq!(simulate(spec(sampler, 3), &curves, 2).unwrap(), a);
            assert!(a.wall_secs > 0.0);
        }
    }

    #[test]
    fn a_schedule_that_cannot_reach_its_top_rung_is_refused() {
        let curves = curves();
        for (min_epochs, eta) in [(0, 3), (1, 1), (1, 0), (10, 3), (1, 100)] {
            let mut s = spec(Sampler::Random, 1);
            s.settings.fidelity.min_epochs = min_epochs;
            s.settings.fidelity.eta = eta;
            assert!(
                matches!(simulate(s, &curves, 1), Err(SimulateError::Fidelity(_))),
                "min_epochs {min_epochs}, eta {eta}"
            );
        }
    }

    #[test]
    fn a_curve_the_search_needs_must_be_recorded() {
        let mut curves = curves();
        curves.pop();
        assert!(matches!(
            simulate(spec(Sampler::Random, 1), &curves, 1),
            Err(SimulateError::NoCurve(_))
        ));
        let mut curves = self::curves();
        for c in &mut curves {
            c.values.truncate(3);
        }
        assert!(matches!(
            simulate(spec(Sampler::Random, 1), &curves, 1),
            Err(SimulateError::ShortCurve { need: 9, .. })
        ));
    }
}
