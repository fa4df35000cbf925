//! Asynchronous multi-objective successive halving with promotion (MO-ASHA), as a state machine fed
//! with results in their stored order. Every decision it makes is a pure function of the spec and
//! the results it was given so far, and names the result it came from.
//!
//! - Draws: `sampler: random` draws all `n_samples` configurations at once; `sampler: nsga2` draws
//!   the first ones at random and one more per result at the lowest rung, by NSGA-II variation of
//!   that rung's front. Points are never drawn twice.
//! - Promotion: when a result arrives at rung k, the rung may have promoted ⌊n_k/eta⌋ of its n_k
//!   results; open places go to the best results not yet promoted, by non-dominated rank, then by
//!   hypervolume contribution within their rank, then by draw order.
//! - Seeds: with `seeds` > 1 a configuration's rung is one job per seed. Its result at the rung
//!   is taken once every seed's job there has ended: the mean over the seeds of each objective,
//!   or a failure when any seed failed (a mean over fewer seeds would rank configurations by
//!   estimates of unequal noise). Every decision is about the configuration, so its seeds are
//!   promoted or stopped together.
//! - Stop: a rung closes when no result can still arrive at it (every configuration is drawn and
//!   the rung below is closed, and no job of this rung is pending). It then fills its last places and
//!   stops the results it did not promote. So a result is never stopped while its rung may still
//!   promote, in any arrival order.

use cg_core::pareto::{hypervolume, hypervolume_contributions, non_dominated_ranks};
use cg_core::{Coord, DecisionKind, Direction, Sampler, SearchSettings};
use serde::{Deserialize, Serialize};

use crate::space::{random_point, vary};
use crate::{Error, Result};
use cg_core::SplitMix64;
use cg_core::all_points;

/// A search: its settings, the objectives' directions and the hypervolume reference point.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSpec {
    pub settings: SearchSettings,
    pub directions: Vec<Direction>,
    pub reference_point: Vec<f64>,
    /// The training seeds of each configuration (one job per seed at each rung); 0 counts as 1.
    pub seeds: usize,
}

impl SearchSpec {
    /// The jobs per configuration and rung: one per seed, at least one.
    pub fn seed_count(&self) -> usize {
        self.seeds.max(1)
    }
}

/// What a decision does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Action {
    /// Try a new configuration at rung 0.
    Draw { point: Vec<Coord> },
    /// Continue a configuration from the rung below to `rung`.
    Promote,
    /// The configuration ends at `rung`: a finished result, not a failure.
    Stop,
}

impl Action {
    /// The kind of decision, as the store names it.
    pub fn kind(&self) -> DecisionKind {
        match self {
            Action::Draw { .. } => DecisionKind::Draw,
            Action::Promote => DecisionKind::Promote,
            Action::Stop => DecisionKind::Stop,
        }
    }
}

/// One decision of a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The configuration, by draw number (0, 1, ...).
    pub config: usize,
    /// Draw: 0; promote: the rung it goes to; stop: the rung it ends at.
    pub rung: usize,
    pub action: Action,
    /// The position of the result it came from in the results' order; `None` for the first draws.
    pub from: Option<usize>,
}

/// A result of a configuration at a rung, for one of its seeds: its objective values, `None`
/// when the job failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub config: usize,
    pub rung: usize,
    /// Which of the configuration's seeds (0 when the search has one).
    pub seed: usize,
    pub objectives: Option<Vec<f64>>,
}

/// The hypervolume of the top rung's results after a result, and the epochs trained so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HvPoint {
    pub epochs_spent: usize,
    pub hypervolume: f64,
}

#[derive(Debug, Clone)]
struct Config {
    point: Vec<Coord>,
    /// The rung whose jobs are submitted and have not all ended yet.
    pending: Option<usize>,
    /// At the pending rung, per seed: `None` until its job ends, then its valid objective
    /// values (`None` inside when it failed).
    arrived: Vec<Option<Option<Vec<f64>>>>,
}

#[derive(Debug, Clone, Default)]
struct Rung {
    /// (configuration, objective values), in arrival order.
    results: Vec<(usize, Vec<f64>)>,
    promoted: Vec<usize>,
    closed: bool,
}

/// The state of a search after the results it was given.
#[derive(Debug, Clone)]
pub struct Search {
    spec: SearchSpec,
    rung_epochs: Vec<usize>,
    rng: SplitMix64,
    configs: Vec<Config>,
    rungs: Vec<Rung>,
    decisions: Vec<Decision>,
    observed: usize,
    exhausted: bool,
    epochs_spent: usize,
    history: Vec<HvPoint>,
}

impl Search {
    /// A search before any result: its first draws are made.
    pub fn new(spec: SearchSpec) -> Self {
        let rung_epochs = spec.settings.fidelity.rungs();
        let mut search = Search {
            rng: SplitMix64::new(spec.settings.seed),
            rungs: vec![Rung::default(); rung_epochs.len()],
            rung_epochs,
            spec,
            configs: Vec::new(),
            decisions: Vec::new(),
            observed: 0,
            exhausted: false,
            epochs_spent: 0,
            history: Vec::new(),
        };
        for _ in 0..search.initial_draws() {
            if !search.draw(None) {
                break;
            }
        }
        search.close_rungs(None);
        search
    }

    /// The search after `observations`, in order: the pure decision function.
    pub fn replay(spec: SearchSpec, observations: &[Observation]) -> Result<Self> {
        let mut search = Search::new(spec);
        for o in observations {
            search.observe(o.clone())?;
        }
        Ok(search)
    }

    /// Every decision so far, in order.
    pub fn decisions(&self) -> &[Decision] {
        &self.decisions
    }

    /// The epochs each rung trains to.
    pub fn rung_epochs(&self) -> &[usize] {
        &self.rung_epochs
    }

    /// The point of a drawn configuration.
    pub fn point(&self, config: usize) -> Option<&[Coord]> {
        self.configs.get(config).map(|c| c.point.as_slice())
    }

    /// Hypervolume after each result, in order.
    pub fn hv_history(&self) -> &[HvPoint] {
        &self.history
    }

    /// Epochs trained by the results so far (a promoted job counts its new epochs only).
    pub fn epochs_spent(&self) -> usize {
        self.epochs_spent
    }

    /// Whether the search can submit nothing more: every rung is closed.
    pub fn is_finished(&self) -> bool {
        self.rungs.iter().all(|r| r.closed)
    }

    /// The jobs submitted and still without a result: (configuration, rung).
    pub fn pending(&self) -> Vec<(usize, usize)> {
        self.configs
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.pending.map(|r| (i, r)))
            .collect()
    }

    /// The jobs submitted and still without a result: (configuration, rung, seed).
    pub fn pending_jobs(&self) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        for (i, c) in self.configs.iter().enumerate() {
            if let Some(rung) = c.pending {
                let missing = c.arrived.iter().enumerate().filter(|(_, a)| a.is_none());
                out.extend(missing.map(|(seed, _)| (i, rung, seed)));
            }
        }
        out
    }

    /// Adds the next result; returns how many decisions it led to. With several seeds, the
    /// results of a configuration's seeds but the last lead to none.
    pub fn observe(&mut self, obs: Observation) -> Result<usize> {
        let before = self.decisions.len();
        let (config, k) = (obs.config, obs.rung);
        let whole = self.arrive(obs)?;
        let from = Some(self.observed);
        self.observed += 1;
        if let Some(values) = whole {
            if let Some(values) = values {
                self.rungs[k].results.push((config, values));
            }
            if k == 0 && self.spec.settings.sampler == Sampler::Nsga2 {
                self.draw(from);
            }
            if k + 1 < self.rungs.len() {
                self.promote(k, from);
            }
            self.close_rungs(from);
        }
        let top = &self.rungs[self.rungs.len() - 1];
        let points: Vec<Vec<f64>> = top.results.iter().map(|(_, v)| v.clone()).collect();
        self.history.push(HvPoint {
            epochs_spent: self.epochs_spent,
            hypervolume: hypervolume(&points, &self.spec.directions, &self.spec.reference_point),
        });
        Ok(self.decisions.len() - before)
    }

    /// Takes one seed's result (its epochs count when it is valid). Once every seed of the
    /// configuration has one at the rung: `Some` of the configuration's result there, the mean
    /// over its seeds, `None` inside when any seed failed; `None` while some seed is missing.
    fn arrive(&mut self, obs: Observation) -> Result<Option<Option<Vec<f64>>>> {
        let n_obj = self.spec.directions.len();
        let k = obs.rung;
        let below = match k {
            0 => 0,
            _ => self.rung_epochs.get(k - 1).copied().unwrap_or(0),
        };
        let Some(config) = self.configs.get_mut(obs.config) else {
            return Err(Error::UnknownConfig(obs.config));
        };
        if config.pending != Some(k) {
            return Err(Error::NotPending {
                config: obs.config,
                rung: k,
            });
        }
        if !matches!(config.arrived.get(obs.seed), Some(None)) {
            return Err(Error::SeedNotPending {
                config: obs.config,
                rung: k,
                seed: obs.seed,
            });
        }
        let values = obs
            .objectives
            .filter(|v| v.len() == n_obj && v.iter().all(|x| x.is_finite()));
        if values.is_some() {
            self.epochs_spent += self.rung_epochs[k] - below;
        }
        config.arrived[obs.seed] = Some(values);
        if config.arrived.iter().any(Option::is_none) {
            return Ok(None);
        }
        config.pending = None;
        let seeds = std::mem::take(&mut config.arrived);
        Ok(Some(seed_mean(seeds.into_iter().flatten().collect())))
    }

    /// Submits configuration `c` to `rung`: one job per seed, none ended yet.
    fn submit(&mut self, c: usize, rung: usize) {
        let seeds = self.spec.seed_count();
        let config = &mut self.configs[c];
        config.pending = Some(rung);
        config.arrived = vec![None; seeds];
    }

    fn initial_draws(&self) -> usize {
        let s = &self.spec.settings;
        match s.sampler {
            Sampler::Random => s.n_samples,
            Sampler::Nsga2 => s
                .n_samples
                .div_ceil(s.fidelity.eta.max(2))
                .max(s.n_samples.min(4)),
        }
    }

    fn all_drawn(&self) -> bool {
        self.exhausted || self.configs.len() >= self.spec.settings.n_samples
    }

    /// Draws one new configuration; false when all are drawn or the space holds no new point.
    fn draw(&mut self, from: Option<usize>) -> bool {
        if self.all_drawn() {
            return false;
        }
        let space = self.spec.settings.space.clone();
        let seeded = self.spec.settings.sampler == Sampler::Nsga2
            && self.configs.len() >= self.initial_draws()
            && self.rungs[0].results.len() >= 2;
        let mut point = None;
        for tries in 0..64 {
            let p = if seeded && tries < 32 {
                self.propose(tries)
            } else {
                random_point(&space, &mut self.rng)
            };
            if !self.configs.iter().any(|c| c.point == p) {
                point = Some(p);
                break;
            }
        }
        if point.is_none() {
            point = self.unused_point();
        }
        let Some(point) = point else {
            self.exhausted = true;
            return false;
        };
        let config = self.configs.len();
        self.configs.push(Config {
            point: point.clone(),
            pending: None,
            arrived: Vec::new(),
        });
        self.submit(config, 0);
        self.decisions.push(Decision {
            config,
            rung: 0,
            action: Action::Draw { point },
            from,
        });
        true
    }

    /// A point not drawn yet, chosen at random among all of a finite space (of at most a million
    /// points); `None` when there is none or the space is too large to list.
    fn unused_point(&mut self) -> Option<Vec<Coord>> {
        let unused: Vec<Vec<Coord>> = all_points(&self.spec.settings.space, 1_000_000)?
            .into_iter()
            .filter(|p| !self.configs.iter().any(|c| &c.point == p))
            .collect();
        if unused.is_empty() {
            return None;
        }
        let i = self.rng.below(unused.len() as u64) as usize;
        unused.into_iter().nth(i)
    }

    /// A child of two parents picked by binary tournaments on the lowest rung's results.
    fn propose(&mut self, tries: usize) -> Vec<Coord> {
        let order = self.ranking(0);
        // Position in the ranking: smaller is better.
        let pick = |rng: &mut SplitMix64| {
            let a = rng.below(order.len() as u64) as usize;
            let b = rng.below(order.len() as u64) as usize;
            order[a.min(b)]
        };
        let first = pick(&mut self.rng);
        let mut second = pick(&mut self.rng);
        if second == first {
            second = pick(&mut self.rng);
        }
        let space = self.spec.settings.space.clone();
        let (a, b) = (
            self.configs[first].point.clone(),
            self.configs[second].point.clone(),
        );
        vary(&space, &a, &b, &mut self.rng, 1.0 + tries as f64)
    }

    /// The configurations with a result at rung `k`, best first: non-dominated rank, then
    /// hypervolume contribution within the rank, then draw order.
    fn ranking(&self, k: usize) -> Vec<usize> {
        let results = &self.rungs[k].results;
        let points: Vec<Vec<f64>> = results.iter().map(|(_, v)| v.clone()).collect();
        let dirs = &self.spec.directions;
        let ranks = non_dominated_ranks(&points, dirs);
        let mut contribution = vec![0.0; points.len()];
        let max_rank = ranks.iter().copied().filter(|&r| r != usize::MAX).max();
        for r in 0..=max_rank.unwrap_or(0) {
            let members: Vec<usize> = (0..points.len()).filter(|&i| ranks[i] == r).collect();
            let layer: Vec<Vec<f64>> = members.iter().map(|&i| points[i].clone()).collect();
            let c = hypervolume_contributions(&layer, dirs, &self.spec.reference_point);
            for (&i, c) in members.iter().zip(c) {
                contribution[i] = c;
            }
        }
        let mut order: Vec<usize> = (0..results.len()).collect();
        order.sort_by(|&a, &b| {
            ranks[a]
                .cmp(&ranks[b])
                .then(contribution[b].total_cmp(&contribution[a]))
                .then(results[a].0.cmp(&results[b].0))
        });
        order.into_iter().map(|i| results[i].0).collect()
    }

    /// Fills the open places of rung `k`: ⌊n_k/eta⌋ in all.
    fn promote(&mut self, k: usize, from: Option<usize>) {
        let eta = self.spec.settings.fidelity.eta.max(2);
        let allowed = self.rungs[k].results.len() / eta;
        let open = allowed.saturating_sub(self.rungs[k].promoted.len());
        if open == 0 {
            return;
        }
        let chosen: Vec<usize> = self
            .ranking(k)
            .into_iter()
            .filter(|c| !self.rungs[k].promoted.contains(c))
            .take(open)
            .collect();
        for c in chosen {
            self.rungs[k].promoted.push(c);
            self.submit(c, k + 1);
            self.decisions.push(Decision {
                config: c,
                rung: k + 1,
                action: Action::Promote,
                from,
            });
        }
    }

    /// Closes every rung that no result can reach any more, lowest first.
    fn close_rungs(&mut self, from: Option<usize>) {
        let top = self.rungs.len() - 1;
        for k in 0..self.rungs.len() {
            if self.rungs[k].closed {
                continue;
            }
            let below_done = if k == 0 {
                self.all_drawn()
            } else {
                self.rungs[k - 1].closed
            };
            if !below_done || self.configs.iter().any(|c| c.pending == Some(k)) {
                return;
            }
            if k < top {
                self.promote(k, from);
                let stopped: Vec<usize> = self.rungs[k]
                    .results
                    .iter()
                    .map(|(c, _)| *c)
                    .filter(|c| !self.rungs[k].promoted.contains(c))
                    .collect();
                for c in stopped {
                    self.decisions.push(Decision {
                        config: c,
                        rung: k,
                        action: Action::Stop,
                        from,
                    });
                }
            }
            self.rungs[k].closed = true;
        }
    }
}

/// The mean over seeds of each objective; `None` when any seed failed. One seed's values are
/// its own, unchanged.
fn seed_mean(seeds: Vec<Option<Vec<f64>>>) -> Option<Vec<f64>> {
    let seeds: Vec<Vec<f64>> = seeds.into_iter().collect::<Option<_>>()?;
    let n = seeds.len();
    let mut iter = seeds.into_iter();
    let mut sum = iter.next()?;
    for values in iter {
        for (s, v) in sum.iter_mut().zip(values) {
            *s += v;
        }
    }
    if n > 1 {
        for s in &mut sum {
            *s /= n as f64;
        }
    }
    Some(sum)
}
