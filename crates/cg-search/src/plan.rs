//! A search described before it runs, for `cg sweep plan`: what it is (configurations, sampler,
//! seed), the most epochs it can spend against what training every point to the top budget would
//! cost, and the configurations it draws first. Every figure comes from the rules the search
//! decides by ([`Search::new`] makes the first draws; the rungs are cg-core's).

use cg_core::{Coord, Sampler, SearchSettings};

use crate::asha::{Action, Search, SearchSpec};

/// The search on one line: how many configurations it tries, how it proposes them, its seed.
pub fn search_line(settings: &SearchSettings) -> String {
    let sampler = match settings.sampler {
        Sampler::Random => "random",
        Sampler::Nsga2 => "nsga2",
    };
    format!(
        "mo-asha search of {} configurations (sampler {sampler}, seed {})",
        settings.draws(),
        settings.seed
    )
}

/// The most epochs the search trains when every rung fills: each configuration that reaches rung
/// k trains from the epochs of rung k − 1 to those of rung k (a promotion continues a job, it does
/// not start again). Saturates at `usize::MAX`.
pub fn epoch_budget(settings: &SearchSettings) -> usize {
    let mut below = 0;
    settings
        .rung_plan()
        .into_iter()
        .map(|(epochs, configs)| {
            let step = epochs.saturating_sub(below);
            below = epochs;
            configs.saturating_mul(step)
        })
        .fold(0, usize::saturating_add)
}

/// The budget on one line: [`epoch_budget`], and for comparison the epochs of training every
/// point of the space to `max_epochs` (a grid), or each configuration when an axis is continuous.
pub fn budget_line(settings: &SearchSettings) -> String {
    let max = settings.fidelity.max_epochs;
    let points = settings.space_size().and_then(|n| usize::try_from(n).ok());
    let full = |n: usize| n.saturating_mul(max);
    let compare = match points {
        Some(n) => format!(
            "the grid of all {n} points to {max} epochs would take {}",
            full(n)
        ),
        None => {
            let n = settings.draws();
            format!(
                "{n} configurations to {max} epochs each would take {}",
                full(n)
            )
        }
    };
    format!(
        "budget: at most {} epochs if every rung fills; {compare}",
        epoch_budget(settings)
    )
}

/// What `seeds` does to a search, on one line; `None` without seeds (or with one).
pub fn seeds_line(seeds: &[u64]) -> Option<String> {
    if seeds.len() < 2 {
        return None;
    }
    let list: Vec<String> = seeds.iter().map(u64::to_string).collect();
    Some(format!(
        "seeds: each configuration trains once per seed ({}) and each rung takes the mean over them; \
         the epochs above are per seed ({}× in all)",
        list.join(", "),
        seeds.len()
    ))
}

/// The configurations the search draws before any result, in draw order (`sampler: random`
/// draws all of them at once, `sampler: nsga2` the first ones): exactly [`Search::new`]'s draws.
pub fn first_draws(spec: &SearchSpec) -> Vec<Vec<Coord>> {
    Search::new(spec.clone())
        .decisions()
        .iter()
        .filter_map(|d| match &d.action {
            Action::Draw { point } => Some(point.clone()),
            _ => None,
        })
        .collect()
}

/// The heading of a table of the first `shown` of `drawn` first draws, which train to `epochs`.
pub fn draws_heading(shown: usize, drawn: usize, epochs: usize) -> String {
    let unit = if epochs == 1 { "epoch" } else { "epochs" };
    format!(
        "first draws ({shown} of the {drawn} drawn before any result; each trains {epochs} {unit} at the first rung):"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cg_core::{AxisSpace, Direction, Fidelity};

    fn spec(sampler: Sampler, space: Vec<AxisSpace>) -> SearchSpec {
        SearchSpec {
            settings: SearchSettings {
                space,
                n_samples: 27,
                fidelity: Fidelity {
                    min_epochs: 1,
                    max_epochs: 9,
                    eta: 3,
                },
                sampler,
                seed: 0,
            },
            directions: vec![Direction::Maximize, Direction::Maximize],
            reference_point: vec![0.8, 0.0],
            seeds: 1,
        }
    }

    fn grid() -> Vec<AxisSpace> {
        vec![AxisSpace::Choice { n: 3 }; 3]
    }

    /// experiments/fashion-mnist.yaml: 27 configurations get 1 epoch, 9 get 3, 3 get all 9: 63
    /// of the grid's 243 epochs.
    #[test]
    fn budget_of_the_fashion_mnist_search() {
        let s = spec(Sampler::Nsga2, grid()).settings;
        assert_eq!(epoch_budget(&s), 63);
        assert_eq!(
            budget_line(&s),
            "budget: at most 63 epochs if every rung fills; the grid of all 27 points to 9 epochs \
             would take 243"
        );
        let float = vec![AxisSpace::Float {
            min: 0.0,
            max: 1.0,
            log: false,
        }];
        assert!(
            budget_line(&spec(Sampler::Nsga2, float).settings)
                .ends_with("27 configurations to 9 epochs each would take 243")
        );
    }

    #[test]
    fn first_draws_are_the_searchs() {
        for sampler in [Sampler::Random, Sampler::Nsga2] {
            let spec = spec(sampler, grid());
            let draws = first_draws(&spec);
            let search = Search::new(spec.clone());
            let expected: Vec<Vec<Coord>> = (0..draws.len())
                .map(|i| search.point(i).unwrap().to_vec())
                .collect();
            assert_eq!(draws, expected);
            let n = if sampler == Sampler::Random { 27 } else { 9 };
            assert_eq!(draws.len(), n, "{sampler:?}");
        }
    }
}
