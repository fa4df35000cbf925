//! The settings of a `method: mo-asha` search as plain data: its space (one entry per axis), its
//! fidelity (the epochs of its rungs) and its sampler. cg-sweep reads them from a sweep file;
//! cg-search decides with them.

use serde::{Deserialize, Serialize};

/// The range of one axis of a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AxisSpace {
    /// One of `n` listed values (`values:` or presets), in file order.
    Choice { n: usize },
    /// An integer in `min..=max`.
    Int { min: i64, max: i64 },
    /// A number in `[min, max]`, drawn and varied on a log scale when `log`.
    Float { min: f64, max: f64, log: bool },
}

/// One coordinate of a point of a search space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Coord {
    /// The index of a listed value.
    Choice(usize),
    Int(i64),
    Float(f64),
}

/// How new configurations are proposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sampler {
    /// Independent uniform draws.
    Random,
    /// After the first random draws, NSGA-II variation (crossover and mutation) of the front.
    Nsga2,
}

/// The epochs of the rungs: `min_epochs`, `min_epochs·eta`, ... up to `max_epochs` (always the
/// last rung).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fidelity {
    pub min_epochs: usize,
    pub max_epochs: usize,
    pub eta: usize,
}

impl Fidelity {
    /// The epochs each rung trains to, increasing, ending at `max_epochs`.
    pub fn rungs(&self) -> Vec<usize> {
        let mut out = Vec::new();
        let mut e = self.min_epochs.max(1);
        while e < self.max_epochs {
            out.push(e);
            e = e.saturating_mul(self.eta.max(2));
        }
        out.push(self.max_epochs);
        out
    }
}

/// Everything a search needs besides the objectives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchSettings {
    /// One entry per axis of the sweep, in the sweep's axis order.
    pub space: Vec<AxisSpace>,
    /// Configurations tried in total.
    pub n_samples: usize,
    pub fidelity: Fidelity,
    pub sampler: Sampler,
    pub seed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_end_at_max_epochs() {
        let f = |min, max, eta| Fidelity {
            min_epochs: min,
            max_epochs: max,
            eta,
        };
        assert_eq!(f(1, 9, 3).rungs(), [1, 3, 9]);
        assert_eq!(f(1, 10, 3).rungs(), [1, 3, 9, 10]);
        assert_eq!(f(2, 8, 2).rungs(), [2, 4, 8]);
        assert_eq!(f(5, 5, 3).rungs(), [5]);
    }
}
