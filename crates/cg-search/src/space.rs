//! Points of a search space: uniform draws, and NSGA-II variation (simulated binary crossover and
//! polynomial mutation) on coordinates scaled to [0, 1] (log-scaled on log axes), snapped back to
//! the axis (nearest listed value, nearest integer).

use cg_core::{AxisSpace, Coord};

use cg_core::SplitMix64;

/// Distribution index of the crossover (larger: children nearer their parents).
const ETA_CROSSOVER: f64 = 15.0;
/// Distribution index of the mutation.
const ETA_MUTATION: f64 = 20.0;
/// Chance that two parents are crossed at all.
const CROSSOVER_PROB: f64 = 0.9;

/// A uniform draw on every axis.
pub fn random_point(space: &[AxisSpace], rng: &mut SplitMix64) -> Vec<Coord> {
    space
        .iter()
        .map(|axis| match *axis {
            AxisSpace::Choice { n } => Coord::Choice(rng.below(n.max(1) as u64) as usize),
            AxisSpace::Int { min, max } => {
                let span = (i128::from(max) - i128::from(min) + 1).max(1) as u64;
                Coord::Int(min + rng.below(span) as i64)
            }
            AxisSpace::Float { .. } => from_unit(axis, rng.unit()),
        })
        .collect()
}

/// A coordinate scaled to [0, 1]: the middle of its cell for listed values and integers.
pub fn to_unit(axis: &AxisSpace, coord: &Coord) -> f64 {
    match (axis, coord) {
        (AxisSpace::Choice { n }, Coord::Choice(i)) => (*i as f64 + 0.5) / (*n).max(1) as f64,
        (AxisSpace::Int { min, max }, Coord::Int(v)) => {
            let cells = (*max - *min + 1) as f64;
            ((*v - *min) as f64 + 0.5) / cells
        }
        (AxisSpace::Float { min, max, log }, Coord::Float(v)) => {
            let (a, b, x) = if *log {
                (min.ln(), max.ln(), v.ln())
            } else {
                (*min, *max, *v)
            };
            if b > a {
                ((x - a) / (b - a)).clamp(0.0, 1.0)
            } else {
                0.5
            }
        }
        _ => 0.5,
    }
}

/// The coordinate at `u` in [0, 1], snapped to the axis.
pub fn from_unit(axis: &AxisSpace, u: f64) -> Coord {
    let u = u.clamp(0.0, 1.0);
    match *axis {
        AxisSpace::Choice { n } => {
            Coord::Choice(((u * n as f64).floor() as usize).min(n.saturating_sub(1)))
        }
        AxisSpace::Int { min, max } => {
            let cells = (i128::from(max) - i128::from(min) + 1) as f64;
            let k = ((u * cells).floor() as i128).min(i128::from(max) - i128::from(min));
            Coord::Int((i128::from(min) + k) as i64)
        }
        AxisSpace::Float { min, max, log } => {
            let v = if log {
                (min.ln() + (max.ln() - min.ln()) * u).exp()
            } else {
                min + (max - min) * u
            };
            Coord::Float(v.clamp(min, max))
        }
    }
}

/// One child of two parents: simulated binary crossover, then polynomial mutation of each axis
/// with probability 1/axes, both on the [0, 1] scale.
pub fn vary(
    space: &[AxisSpace],
    a: &[Coord],
    b: &[Coord],
    rng: &mut SplitMix64,
    mutation_boost: f64,
) -> Vec<Coord> {
    let cross = rng.unit() < CROSSOVER_PROB;
    let p_mut = (mutation_boost / space.len().max(1) as f64).min(1.0);
    space
        .iter()
        .enumerate()
        .map(|(i, axis)| {
            let (x1, x2) = (to_unit(axis, &a[i]), to_unit(axis, &b[i]));
            let mut u = x1;
            if cross && rng.unit() < 0.5 {
                u = sbx(x1, x2, rng);
            }
            if rng.unit() < p_mut {
                u = polynomial_mutation(u, rng);
            }
            from_unit(axis, u)
        })
        .collect()
}

/// Simulated binary crossover of two values in [0, 1] (Deb & Agrawal), one child.
fn sbx(x1: f64, x2: f64, rng: &mut SplitMix64) -> f64 {
    let r = rng.unit();
    let beta = if r <= 0.5 {
        (2.0 * r).powf(1.0 / (ETA_CROSSOVER + 1.0))
    } else {
        (1.0 / (2.0 * (1.0 - r))).powf(1.0 / (ETA_CROSSOVER + 1.0))
    };
    let child = if rng.unit() < 0.5 {
        0.5 * ((1.0 + beta) * x1 + (1.0 - beta) * x2)
    } else {
        0.5 * ((1.0 - beta) * x1 + (1.0 + beta) * x2)
    };
    child.clamp(0.0, 1.0)
}

/// Polynomial mutation of a value in [0, 1] (Deb), bounded to [0, 1].
fn polynomial_mutation(x: f64, rng: &mut SplitMix64) -> f64 {
    let r = rng.unit();
    let p = 1.0 / (ETA_MUTATION + 1.0);
    let delta = if r < 0.5 {
        let d1 = x;
        (2.0 * r + (1.0 - 2.0 * r) * (1.0 - d1).powf(ETA_MUTATION + 1.0)).powf(p) - 1.0
    } else {
        let d2 = 1.0 - x;
        1.0 - (2.0 * (1.0 - r) + 2.0 * (r - 0.5) * (1.0 - d2).powf(ETA_MUTATION + 1.0)).powf(p)
    };
    (x + delta).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> Vec<AxisSpace> {
        vec![
            AxisSpace::Choice { n: 3 },
            AxisSpace::Int { min: -2, max: 4 },
            AxisSpace::Float {
                min: 1e-4,
                max: 1e-1,
                log: true,
            },
            AxisSpace::Float {
                min: 0.5,
                max: 1.5,
                log: false,
            },
        ]
    }

    fn inside(space: &[AxisSpace], p: &[Coord]) -> bool {
        space.iter().zip(p).all(|(a, c)| match (a, c) {
            (AxisSpace::Choice { n }, Coord::Choice(i)) => i < n,
            (AxisSpace::Int { min, max }, Coord::Int(v)) => min <= v && v <= max,
            (AxisSpace::Float { min, max, .. }, Coord::Float(v)) => min <= v && v <= max,
            _ => false,
        })
    }

    #[test]
    fn draws_and_children_stay_in_range() {
        let s = space();
        let mut rng = SplitMix64::new(3);
        for _ in 0..500 {
            let a = random_point(&s, &mut rng);
            let b = random_point(&s, &mut rng);
            assert!(inside(&s, &a), "{a:?}");
            let c = vary(&s, &a, &b, &mut rng, 4.0);
            assert!(inside(&s, &c), "{c:?}");
        }
    }

    #[test]
    fn unit_scale_round_trips() {
        let s = space();
        for (axis, coord) in s.iter().zip([
            Coord::Choice(2),
            Coord::Int(-2),
            Coord::Float(1e-3),
            Coord::Float(0.75),
        ]) {
            let back = from_unit(axis, to_unit(axis, &coord));
            match (&back, &coord) {
                (Coord::Float(x), Coord::Float(y)) => {
                    assert!((x - y).abs() < 1e-12 * y.abs().max(1.0))
                }
                _ => assert_eq!(back, coord),
            }
        }
        // Log axes are scaled by decades: 1e-2.5 lies halfway between 1e-4 and 1e-1.
        assert!((to_unit(&s[2], &Coord::Float(10f64.powf(-2.5))) - 0.5).abs() < 1e-12);
    }
}
