//! Properties of the MO-ASHA decisions for any arrival order of results: the promotion budget, the
//! rule that a result no other result at its rung dominates is never stopped while its rung may
//! still promote, promotion by rank, finishing, and determinism.

use cg_core::pareto::dominates;
use cg_core::{AxisSpace, Direction, Fidelity, Sampler, SearchSettings};
use cg_search::{Action, Observation, Search, SearchSpec, SplitMix64};
use proptest::prelude::*;

fn spec(
    n_samples: usize,
    eta: usize,
    max_epochs: usize,
    sampler: Sampler,
    seed: u64,
    dirs: Vec<Direction>,
) -> SearchSpec {
    let n = dirs.len();
    SearchSpec {
        settings: SearchSettings {
            space: vec![
                AxisSpace::Choice { n: 4 },
                AxisSpace::Float {
                    min: 1e-3,
                    max: 1.0,
                    log: true,
                },
                AxisSpace::Int { min: 0, max: 5 },
            ],
            n_samples,
            fidelity: Fidelity {
                min_epochs: 1,
                max_epochs,
                eta,
            },
            sampler,
            seed,
        },
        directions: dirs,
        reference_point: vec![0.0; n],
        seeds: 1,
    }
}

/// Runs a search to its end: `order` picks which pending job reports next, `values` are the
/// objective values (coarse, so ties are common), `fail` which results are failures.
fn simulate(spec: &SearchSpec, order_seed: u64, fail_every: usize) -> (Search, Vec<Observation>) {
    let mut search = Search::new(spec.clone());
    let mut rng = SplitMix64::new(order_seed);
    let mut observations = Vec::new();
    loop {
        let pending = search.pending();
        if pending.is_empty() {
            break;
        }
        let (config, rung) = pending[rng.below(pending.len() as u64) as usize];
        let failed = fail_every > 0 && rng.below(fail_every as u64) == 0;
        let objectives = (!failed).then(|| {
            (0..spec.directions.len())
                .map(|_| rng.below(4) as f64 + rung as f64)
                .collect::<Vec<f64>>()
        });
        let obs = Observation {
            config,
            rung,
            seed: 0,
            objectives,
        };
        let before = search.decisions().len();
        search.observe(obs.clone()).unwrap();
        check_step(
            spec,
            &search,
            before,
            observations.len(),
            &observations,
            &obs,
        );
        observations.push(obs);
    }
    (search, observations)
}

/// Checks the decisions a result led to.
fn check_step(
    spec: &SearchSpec,
    search: &Search,
    before: usize,
    index: usize,
    earlier: &[Observation],
    latest: &Observation,
) {
    let eta = spec.settings.fidelity.eta;
    let all: Vec<&Observation> = earlier.iter().chain(std::iter::once(latest)).collect();
    let at = |k: usize| -> Vec<(usize, Vec<f64>)> {
        all.iter()
            .filter(|o| o.rung == k)
            .filter_map(|o| o.objectives.clone().map(|v| (o.config, v)))
            .collect()
    };
    for d in &search.decisions()[before..] {
        assert_eq!(d.from, Some(index));
    }
    let decisions = search.decisions();
    for k in 0..search.rung_epochs().len() {
        let results = at(k);
        let promoted: Vec<usize> = decisions
            .iter()
            .filter(|d| d.action == Action::Promote && d.rung == k + 1)
            .map(|d| d.config)
            .collect();
        // Budget: at most ⌊n_k/eta⌋ of the n_k results at rung k go on.
        assert!(
            promoted.len() <= results.len() / eta,
            "rung {k}: {} of {}",
            promoted.len(),
            results.len()
        );
    }
    // Promotion by rank: a configuration promoted now is dominated by no result at its rung that
    // was not promoted before or together with it.
    for d in &decisions[before..] {
        if d.action != Action::Promote {
            continue;
        }
        let k = d.rung - 1;
        let results = at(k);
        let promoted_so_far: Vec<usize> = decisions
            .iter()
            .filter(|e| e.action == Action::Promote && e.rung == d.rung)
            .map(|e| e.config)
            .collect();
        let mine = &results.iter().find(|(c, _)| *c == d.config).unwrap().1;
        for (c, v) in &results {
            if !promoted_so_far.contains(c) {
                assert!(
                    !dominates(v, mine, &spec.directions),
                    "promoted {} over dominating {c}",
                    d.config
                );
            }
        }
    }
}

fn dirs_strategy() -> impl Strategy<Value = Vec<Direction>> {
    prop::collection::vec(
        prop_oneof![Just(Direction::Maximize), Just(Direction::Minimize)],
        2..=3,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mo_asha_rules_hold_in_any_order(
        n_samples in 1usize..30,
        eta in 2usize..4,
        max_epochs in prop_oneof![Just(1usize), Just(4), Just(9), Just(10)],
        nsga2 in any::<bool>(),
        seed in any::<u64>(),
        order_seed in any::<u64>(),
        fail_every in prop_oneof![Just(0usize), Just(5)],
        dirs in dirs_strategy(),
    ) {
        let sampler = if nsga2 { Sampler::Nsga2 } else { Sampler::Random };
        let spec = spec(n_samples, eta, max_epochs, sampler, seed, dirs);
        let (search, observations) = simulate(&spec, order_seed, fail_every);
        prop_assert!(search.is_finished());
        let d = search.decisions();
        let draws = d.iter().filter(|d| matches!(d.action, Action::Draw { .. })).count();
        prop_assert_eq!(draws, n_samples, "every configuration is drawn (the space is large)");
        // The rule: a stop at rung k comes after the rung's last promotion.
        for (i, stop) in d.iter().enumerate().filter(|(_, d)| d.action == Action::Stop) {
            prop_assert!(!d[i..].iter().any(|e| e.action == Action::Promote && e.rung == stop.rung + 1));
        }
        // Every result below the top rung ends promoted or stopped, exactly once.
        let top = search.rung_epochs().len() - 1;
        for o in observations.iter().filter(|o| o.objectives.is_some() && o.rung < top) {
            let ends = d.iter().filter(|e| e.config == o.config
                && ((e.action == Action::Promote && e.rung == o.rung + 1) || (e.action == Action::Stop && e.rung == o.rung))).count();
            prop_assert_eq!(ends, 1);
        }
        // Points are never drawn twice.
        for a in 0..draws {
            for b in 0..a {
                prop_assert_ne!(search.point(a), search.point(b));
            }
        }
        // Determinism: the same results in the same order give the same decisions.
        let again = Search::replay(spec.clone(), &observations).unwrap();
        prop_assert_eq!(again.decisions(), d);
        prop_assert_eq!(again.hv_history(), search.hv_history());
        // Epochs: never more than a grid of the same configurations would spend.
        prop_assert!(search.epochs_spent() <= n_samples * max_epochs);
    }
}

#[test]
fn the_issue_example_spends_at_most_63_epochs() {
    for seed in 0..5 {
        for sampler in [Sampler::Random, Sampler::Nsga2] {
            let spec = spec(
                27,
                3,
                9,
                sampler,
                seed,
                vec![Direction::Maximize, Direction::Minimize],
            );
            let (search, obs) = simulate(&spec, seed + 100, 0);
            assert_eq!(search.rung_epochs(), [1, 3, 9]);
            assert!(search.epochs_spent() <= 63, "{}", search.epochs_spent());
            // 27 at rung 0, at most 9 at rung 1, at most 3 at the top.
            assert_eq!(obs.iter().filter(|o| o.rung == 0).count(), 27);
            assert!(obs.iter().filter(|o| o.rung == 1).count() <= 9);
            assert!(obs.iter().filter(|o| o.rung == 2).count() <= 3);
            assert_eq!(search.hv_history().len(), obs.len());
        }
    }
}

#[test]
fn one_worker_in_order_promotes_the_front_and_stops_the_rest() {
    // eta 3, 6 configurations, rungs 1 and 3: values chosen by hand (maximise both).
    let spec = spec(
        6,
        3,
        3,
        Sampler::Random,
        1,
        vec![Direction::Maximize, Direction::Maximize],
    );
    let mut s = Search::new(spec);
    let values = [
        [1.0, 1.0],
        [3.0, 1.0],
        [2.0, 2.0],
        [0.5, 0.5],
        [1.0, 3.0],
        [0.1, 0.1],
    ];
    for (c, v) in values.iter().enumerate() {
        s.observe(Observation {
            config: c,
            rung: 0,
            seed: 0,
            objectives: Some(v.to_vec()),
        })
        .unwrap();
    }
    let promoted: Vec<usize> = s
        .decisions()
        .iter()
        .filter(|d| d.action == Action::Promote)
        .map(|d| d.config)
        .collect();
    // After 3 results, one place: (3,1) and (2,2) form the front; (2,2) adds 2 alone, (3,1) adds 1.
    // After 6, a second place: the front (3,1), (2,2), (1,3) adds 1 each; draw order picks 1.
    assert_eq!(promoted, [2, 1]);
    let stopped: Vec<usize> = s
        .decisions()
        .iter()
        .filter(|d| d.action == Action::Stop)
        .map(|d| d.config)
        .collect();
    assert_eq!(stopped, [0, 3, 4, 5]);
    assert!(!s.is_finished());
    s.observe(Observation {
        config: 1,
        rung: 1,
        seed: 0,
        objectives: Some(vec![4.0, 1.0]),
    })
    .unwrap();
    s.observe(Observation {
        config: 2,
        rung: 1,
        seed: 0,
        objectives: None,
    })
    .unwrap();
    assert!(s.is_finished());
    assert_eq!(s.epochs_spent(), 6 + 2);
    assert_eq!(s.hv_history().last().unwrap().hypervolume, 4.0);
    assert!(
        s.observe(Observation {
            config: 2,
            rung: 1,
            seed: 0,
            objectives: None
        })
        .is_err()
    );
}
