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

/// What a search decision does; stored as its name (`draw`, `promote`, `stop`) and parsed once,
/// where it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// A new configuration at rung 0.
    Draw,
    /// A configuration continued to the next rung.
    Promote,
    /// A configuration ends at its rung.
    Stop,
}

impl DecisionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Draw => "draw",
            DecisionKind::Promote => "promote",
            DecisionKind::Stop => "stop",
        }
    }

    /// The kind named `s`; `None` for any other text.
    pub fn parse(s: &str) -> Option<Self> {
        [
            DecisionKind::Draw,
            DecisionKind::Promote,
            DecisionKind::Stop,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for DecisionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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

    /// What is wrong with the settings themselves (`min_epochs` ≥ 1, `max_epochs` ≥ `min_epochs`,
    /// `eta` ≥ 2); `None` when they make a schedule.
    pub fn problem(&self) -> Option<String> {
        if self.min_epochs < 1 {
            return Some("`min_epochs` must be at least 1".into());
        }
        if self.max_epochs < self.min_epochs {
            return Some(format!(
                "`max_epochs` ({}) must be at least `min_epochs` ({})",
                self.max_epochs, self.min_epochs
            ));
        }
        if self.eta < 2 {
            return Some(format!("`eta` must be at least 2, got {}", self.eta));
        }
        None
    }

    /// How many configurations each rung can hold when `configs` start at the lowest: a rung
    /// promotes ⌊n/eta⌋ of its n results (cg-search's rule), so rung k holds ⌊configs/eta^k⌋, and
    /// fewer when jobs fail.
    pub fn capacity(&self, configs: usize) -> Vec<usize> {
        let eta = self.eta.max(2);
        let mut n = configs;
        (0..self.rungs().len())
            .map(|k| {
                if k > 0 {
                    n /= eta;
                }
                n
            })
            .collect()
    }

    /// The fewest configurations from which one reaches the top rung: eta^(rungs − 1)
    /// (saturating).
    pub fn configs_for_top(&self) -> usize {
        let steps = u32::try_from(self.rungs().len() - 1).unwrap_or(u32::MAX);
        self.eta.max(2).saturating_pow(steps)
    }
}

impl AxisSpace {
    /// The number of values of the axis; `None` for a float range.
    pub fn size(&self) -> Option<u64> {
        match *self {
            AxisSpace::Choice { n } => Some(n as u64),
            AxisSpace::Int { min, max } => {
                u64::try_from(i128::from(max) - i128::from(min) + 1).ok()
            }
            AxisSpace::Float { .. } => None,
        }
    }
}

/// Every point of a space of listed values and integer ranges, the last axis turning fastest;
/// `None` when an axis is continuous or the space holds more than `limit` points.
pub fn all_points(space: &[AxisSpace], limit: u64) -> Option<Vec<Vec<Coord>>> {
    let mut sizes = Vec::with_capacity(space.len());
    let mut total: u64 = 1;
    for axis in space {
        let n = axis.size()?;
        total = total.checked_mul(n).filter(|t| *t <= limit)?;
        sizes.push(n);
    }
    let point = |mut index: u64| {
        let mut p = Vec::with_capacity(sizes.len());
        for (axis, &n) in space.iter().zip(&sizes).rev() {
            let i = index % n;
            index /= n;
            p.push(match *axis {
                AxisSpace::Int { min, .. } => Coord::Int(min + i as i64),
                _ => Coord::Choice(i as usize),
            });
        }
        p.reverse();
        p
    };
    Some((0..total).map(point).collect())
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

impl SearchSettings {
    /// The number of points of the space; `None` when an axis is a float range or the count
    /// overflows.
    pub fn space_size(&self) -> Option<u64> {
        self.space
            .iter()
            .try_fold(1u64, |acc, a| acc.checked_mul(a.size()?))
    }

    /// The configurations the search draws: `n_samples`, or all points of a smaller space.
    pub fn draws(&self) -> usize {
        match self.space_size() {
            Some(size) => self
                .n_samples
                .min(usize::try_from(size).unwrap_or(usize::MAX)),
            None => self.n_samples,
        }
    }

    /// Each rung as (epochs it trains to, configurations it can hold).
    pub fn rung_plan(&self) -> Vec<(usize, usize)> {
        self.fidelity
            .rungs()
            .into_iter()
            .zip(self.fidelity.capacity(self.draws()))
            .collect()
    }

    /// What makes the schedule unusable: settings that make no schedule
    /// ([`Fidelity::problem`]), or a top rung that no configuration reaches.
    pub fn schedule_problem(&self) -> Option<String> {
        self.fidelity.problem().or_else(|| self.unreachable_top())
    }

    /// `Some(why)` when no configuration can reach the top rung (`max_epochs`): the search would
    /// end with nothing trained on the whole schedule and no hypervolume.
    pub fn unreachable_top(&self) -> Option<String> {
        let plan = self.rung_plan();
        if plan.last().is_some_and(|&(_, n)| n >= 1) {
            return None;
        }
        let list = |f: &dyn Fn(&(usize, usize)) -> usize| {
            plan.iter()
                .map(|r| f(r).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let draws = self.draws();
        let limit = if draws < self.n_samples {
            format!("the space holds only {draws} points")
        } else {
            format!("`n_samples` is {draws}")
        };
        Some(format!(
            "no configuration reaches `max_epochs` ({}): the rungs at {} epochs hold {} \
             configurations (each keeps 1/eta of the one below, rounded down), and {} \
             configurations are needed for {} rungs with eta {}, but {limit}",
            self.fidelity.max_epochs,
            list(&|r| r.0),
            list(&|r| r.1),
            self.fidelity.configs_for_top(),
            plan.len(),
            self.fidelity.eta,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_points_lists_a_finite_space_last_axis_fastest() {
        let space = [
            AxisSpace::Choice { n: 2 },
            AxisSpace::Int { min: -1, max: 1 },
        ];
        let points = all_points(&space, 6).unwrap();
        assert_eq!(points.len(), 6);
        assert_eq!(points[0], [Coord::Choice(0), Coord::Int(-1)]);
        assert_eq!(points[1], [Coord::Choice(0), Coord::Int(0)]);
        assert_eq!(points[5], [Coord::Choice(1), Coord::Int(1)]);
        assert!(all_points(&space, 5).is_none(), "over the limit");
        let float = [AxisSpace::Float {
            min: 0.0,
            max: 1.0,
            log: false,
        }];
        assert!(all_points(&float, 100).is_none());
    }

    #[test]
    fn decision_kinds_round_trip_as_stored() {
        for kind in [
            DecisionKind::Draw,
            DecisionKind::Promote,
            DecisionKind::Stop,
        ] {
            assert_eq!(DecisionKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, serde_json::Value::from(kind.as_str()));
        }
        assert_eq!(DecisionKind::parse("Draw"), None);
        assert_eq!(DecisionKind::parse(""), None);
    }

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

    #[test]
    fn capacity_is_configs_over_eta_per_rung() {
        let f = |min, max, eta| Fidelity {
            min_epochs: min,
            max_epochs: max,
            eta,
        };
        assert_eq!(f(1, 9, 3).capacity(27), [27, 9, 3]);
        assert_eq!(f(1, 4, 3).capacity(8), [8, 2, 0]);
        assert_eq!(f(1, 4, 3).configs_for_top(), 9);
        assert_eq!(f(5, 5, 3).configs_for_top(), 1);
        assert_eq!(f(1, 9, usize::MAX).configs_for_top(), usize::MAX);
        let settings = |n_samples, space| SearchSettings {
            space,
            n_samples,
            fidelity: f(1, 9, 3),
            sampler: Sampler::Nsga2,
            seed: 0,
        };
        let small = vec![
            AxisSpace::Choice { n: 2 },
            AxisSpace::Int { min: 1, max: 3 },
        ];
        assert_eq!(settings(27, small.clone()).draws(), 6);
        assert_eq!(
            settings(27, small.clone()).rung_plan(),
            [(1, 6), (3, 2), (9, 0)]
        );
        let why = settings(27, small).unreachable_top().unwrap();
        assert!(why.contains("only 6 points"), "{why}");
        let float = vec![AxisSpace::Float {
            min: 0.0,
            max: 1.0,
            log: false,
        }];
        assert_eq!(settings(9, float.clone()).unreachable_top(), None);
        assert!(settings(8, float).unreachable_top().is_some());
    }
}
