//! A search whose configurations train once per seed: a configuration's result at a rung is the
//! mean of its seeds', taken when the last seed's arrives (a failure when any seed failed), and
//! every decision is the configuration's, so its seeds go on or stop together.

use cg_core::{AxisSpace, Direction, Fidelity, Sampler, SearchSettings};
use cg_search::{Action, Error, Observation, Search, SearchSpec, SplitMix64};
use proptest::prelude::*;

fn spec(n_samples: usize, eta: usize, sampler: Sampler, seed: u64, seeds: usize) -> SearchSpec {
    SearchSpec {
        settings: SearchSettings {
            space: vec![
                AxisSpace::Choice { n: 6 },
                AxisSpace::Int { min: 0, max: 9 },
            ],
            n_samples,
            fidelity: Fidelity {
                min_epochs: 1,
                max_epochs: 9,
                eta,
            },
            sampler,
            seed,
        },
        directions: vec![Direction::Maximize, Direction::Minimize],
        reference_point: vec![0.0, 10.0],
        seeds,
    }
}

/// A pending job's objective values: coarse, so ties are common; `None` now and then.
fn values(rng: &mut SplitMix64, rung: usize, fail_every: u64) -> Option<Vec<f64>> {
    if fail_every > 0 && rng.below(fail_every) == 0 {
        return None;
    }
    Some(vec![rng.below(4) as f64 + rung as f64, rng.below(4) as f64])
}

/// Runs a search to its end, the pending jobs (of any seed) ending in a random order.
fn run(spec: &SearchSpec, order_seed: u64, fail_every: u64) -> (Search, Vec<Observation>) {
    let mut search = Search::new(spec.clone());
    let mut rng = SplitMix64::new(order_seed);
    let mut observations = Vec::new();
    loop {
        let pending = search.pending_jobs();
        if pending.is_empty() {
            break;
        }
        let (config, rung, seed) = pending[rng.below(pending.len() as u64) as usize];
        let obs = Observation {
            config,
            rung,
            seed,
            objectives: values(&mut rng, rung, fail_every),
        };
        search.observe(obs.clone()).unwrap();
        observations.push(obs);
    }
    (search, observations)
}

/// Each configuration's result per rung from the seeds' observations: the mean of each
/// objective, `None` when a seed failed.
fn config_results(obs: &[Observation], seeds: usize) -> Vec<(usize, usize, Option<Vec<f64>>)> {
    let mut keys: Vec<(usize, usize)> = obs.iter().map(|o| (o.config, o.rung)).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|(c, k)| {
            let of: Vec<&Observation> = obs
                .iter()
                .filter(|o| o.config == c && o.rung == k)
                .collect();
            assert_eq!(of.len(), seeds, "configuration {c} at rung {k}");
            let all: Option<Vec<Vec<f64>>> = of.iter().map(|o| o.objectives.clone()).collect();
            let mean = all.map(|all| {
                (0..2)
                    .map(|i| all.iter().map(|v| v[i]).sum::<f64>() / seeds as f64)
                    .collect()
            });
            (c, k, mean)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// With two seeds, decisions are the configurations': each promotion comes from the last seed
    /// result of its configuration at the rung below, a rung promotes at most ⌊n/eta⌋ of its n
    /// configurations with a result, every configuration ends promoted, stopped or failed, and a
    /// replay of the results makes the same decisions.
    #[test]
    fn two_seeds_promote_configurations(
        n_samples in 3usize..16,
        eta in 2usize..4,
        nsga in any::<bool>(),
        seed in any::<u64>(),
        order in any::<u64>(),
        fail_every in prop_oneof![Just(0u64), 5u64..9],
    ) {
        let sampler = if nsga { Sampler::Nsga2 } else { Sampler::Random };
        let spec = spec(n_samples, eta, sampler, seed, 2);
        let (search, obs) = run(&spec, order, fail_every);
        prop_assert!(search.is_finished());
        let results = config_results(&obs, 2);
        for k in 0..search.rung_epochs().len() {
            let n = results.iter().filter(|(_, r, v)| *r == k && v.is_some()).count();
            let promoted: Vec<usize> = search
                .decisions()
                .iter()
                .filter(|d| d.action == Action::Promote && d.rung == k + 1)
                .map(|d| d.config)
                .collect();
            prop_assert!(promoted.len() <= n / eta, "rung {k}: {} of {n}", promoted.len());
            for c in &promoted {
                prop_assert!(results.iter().any(|(rc, r, v)| rc == c && *r == k && v.is_some()));
            }
        }
        for d in search.decisions() {
            let Some(from) = d.from else { continue };
            let source = &obs[from];
            // The result a decision comes from is the last of its configuration's seeds.
            let later = obs[from + 1..]
                .iter()
                .any(|o| o.config == source.config && o.rung == source.rung);
            prop_assert!(!later, "decision {d:?} came before all seeds of {source:?} ended");
        }
        let again = Search::replay(spec, &obs).unwrap();
        prop_assert_eq!(again.decisions(), search.decisions());
        prop_assert_eq!(again.hv_history(), search.hv_history());
    }

    /// A search with two seeds whose results arrive seed after seed decides as a one-seed search
    /// given their means, in the same order.
    #[test]
    fn the_rung_result_is_the_seed_mean(
        n_samples in 3usize..14,
        seed in any::<u64>(),
        order in any::<u64>(),
        fail_every in prop_oneof![Just(0u64), 4u64..8],
    ) {
        let one = spec(n_samples, 3, Sampler::Nsga2, seed, 1);
        let (single, single_obs) = run(&one, order, fail_every);
        let mut two = Search::new(spec(n_samples, 3, Sampler::Nsga2, seed, 2));
        let mut rng = SplitMix64::new(order ^ 0x5eed);
        for o in &single_obs {
            // Two seeds around the mean (a failure: the second seed fails, the first may not).
            let (a, b) = match &o.objectives {
                Some(v) => {
                    let d = rng.below(3) as f64;
                    (Some(vec![v[0] - d, v[1] + d]), Some(vec![v[0] + d, v[1] - d]))
                }
                None => (values(&mut rng, o.rung, 0), None),
            };
            for (s, objectives) in [(1, a), (0, b)] {
                two.observe(Observation { seed: s, objectives, ..o.clone() }).unwrap();
            }
        }
        let key = |s: &Search| -> Vec<(usize, usize, Action)> {
            s.decisions().iter().map(|d| (d.config, d.rung, d.action.clone())).collect()
        };
        prop_assert_eq!(key(&two), key(&single));
        prop_assert!(two.is_finished());
    }
}

/// One seed failing at a rung makes the configuration's result there a failure: it is neither
/// promoted nor stopped, though its other seed's epochs count as trained.
#[test]
fn a_failed_seed_fails_the_configuration() {
    let mut s = Search::new(spec(3, 3, Sampler::Random, 7, 2));
    assert_eq!(s.pending_jobs().len(), 6);
    let result = |config, seed, v: Option<f64>| Observation {
        config,
        rung: 0,
        seed,
        objectives: v.map(|v| vec![v, 1.0]),
    };
    assert_eq!(s.observe(result(0, 0, Some(9.0))).unwrap(), 0);
    assert_eq!(s.observe(result(0, 1, None)).unwrap(), 0);
    assert_eq!(s.epochs_spent(), 1);
    for (c, v) in [(1, 2.0), (2, 1.0)] {
        s.observe(result(c, 0, Some(v))).unwrap();
        s.observe(result(c, 1, Some(v))).unwrap();
    }
    // Two results at rung 0: ⌊2/3⌋ = 0 promoted, both stopped; configuration 0 ends failed.
    assert_eq!(s.epochs_spent(), 5);
    assert!(s.is_finished());
    let ends: Vec<(usize, Action)> = s
        .decisions()
        .iter()
        .filter(|d| !matches!(d.action, Action::Draw { .. }))
        .map(|d| (d.config, d.action.clone()))
        .collect();
    assert_eq!(ends, [(1, Action::Stop), (2, Action::Stop)]);
}

/// A seed's result taken twice, or a seed the search does not have, is refused.
#[test]
fn a_seed_is_taken_once() {
    let mut s = Search::new(spec(3, 3, Sampler::Random, 7, 2));
    let obs = |seed| Observation {
        config: 0,
        rung: 0,
        seed,
        objectives: Some(vec![1.0, 1.0]),
    };
    s.observe(obs(1)).unwrap();
    let twice = Error::SeedNotPending {
        config: 0,
        rung: 0,
        seed: 1,
    };
    assert_eq!(s.observe(obs(1)), Err(twice));
    assert!(matches!(
        s.observe(obs(2)),
        Err(Error::SeedNotPending { seed: 2, .. })
    ));
    assert_eq!(s.pending_jobs().len(), 5);
}
