//! Properties of the front and the hypervolume on random points with many ties.

use cg_core::Direction;
use cg_report::{dominates, hypervolume, pareto_mask};
use proptest::prelude::*;

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::Maximize), Just(Direction::Minimize)]
}

/// Points on a small integer grid, so that ties and duplicates are common.
fn points(dims: usize, max_len: usize) -> impl Strategy<Value = Vec<Vec<f64>>> {
    prop::collection::vec(
        prop::collection::vec((-4i32..=4).prop_map(f64::from), dims),
        0..max_len,
    )
}

fn case(dims: usize) -> impl Strategy<Value = (Vec<Vec<f64>>, Vec<Direction>)> {
    (points(dims, 40), prop::collection::vec(direction(), dims))
}

/// Hypervolume by counting unit cells of the integer grid that some point dominates.
fn grid_hypervolume(points: &[Vec<f64>], directions: &[Direction], reference: &[f64]) -> f64 {
    let d = directions.len();
    let oriented = |v: f64, i: usize| {
        if directions[i] == Direction::Maximize {
            v
        } else {
            -v
        }
    };
    let lo: Vec<i32> = (0..d).map(|i| oriented(reference[i], i) as i32).collect();
    let mut count = 0u64;
    let mut cell = lo.clone();
    loop {
        // The cell [cell, cell+1]^d is covered when some point is >= cell+1 everywhere.
        if points
            .iter()
            .any(|p| (0..d).all(|i| oriented(p[i], i) >= f64::from(cell[i] + 1)))
        {
            count += 1;
        }
        let mut i = 0;
        loop {
            if i == d {
                return count as f64;
            }
            cell[i] += 1;
            if cell[i] < 5 {
                break;
            }
            cell[i] = lo[i];
            i += 1;
        }
    }
}

fn check_front(points: &[Vec<f64>], directions: &[Direction]) -> Result<(), TestCaseError> {
    let mask = pareto_mask(points, directions);
    prop_assert_eq!(mask.len(), points.len());
    for (i, p) in points.iter().enumerate() {
        if mask[i] {
            for q in points {
                prop_assert!(
                    !dominates(q, p, directions),
                    "front point {:?} is dominated by {:?}",
                    p,
                    q
                );
            }
        } else {
            prop_assert!(
                points
                    .iter()
                    .zip(&mask)
                    .any(|(q, &on)| on && dominates(q, p, directions)),
                "{:?} is off the front but no front point dominates it",
                p
            );
        }
        for (j, q) in points.iter().enumerate() {
            if p == q {
                prop_assert_eq!(mask[i], mask[j], "duplicates {:?} are split", p);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn front_is_exact_in_2d((points, directions) in case(2)) {
        check_front(&points, &directions)?;
    }

    #[test]
    fn front_is_exact_in_3d((points, directions) in case(3)) {
        check_front(&points, &directions)?;
    }

    #[test]
    fn front_does_not_depend_on_order((points, directions) in case(2), rotate in 0usize..40) {
        let mask = pareto_mask(&points, &directions);
        let mut rotated = points.clone();
        let k = if points.is_empty() { 0 } else { rotate % points.len() };
        rotated.rotate_left(k);
        let mut rotated_mask = pareto_mask(&rotated, &directions);
        rotated_mask.rotate_right(k);
        prop_assert_eq!(mask, rotated_mask);
    }

    #[test]
    fn hypervolume_counts_grid_cells_2d((points, directions) in case(2), reference in prop::collection::vec(-5i32..=0, 2)) {
        let reference: Vec<f64> = reference.iter().zip(&directions)
            .map(|(&r, d)| if *d == Direction::Maximize { f64::from(r) } else { -f64::from(r) })
            .collect();
        let hv = hypervolume(&points, &directions, &reference);
        prop_assert_eq!(hv, grid_hypervolume(&points, &directions, &reference));
    }

    #[test]
    fn hypervolume_counts_grid_cells_3d((points, directions) in case(3), reference in prop::collection::vec(-5i32..=0, 3)) {
        let reference: Vec<f64> = reference.iter().zip(&directions)
            .map(|(&r, d)| if *d == Direction::Maximize { f64::from(r) } else { -f64::from(r) })
            .collect();
        let hv = hypervolume(&points, &directions, &reference);
        prop_assert_eq!(hv, grid_hypervolume(&points, &directions, &reference));
    }

    #[test]
    fn hypervolume_of_front_equals_hypervolume_of_all((points, directions) in case(2)) {
        let reference = vec![0.0, 0.0];
        let mask = pareto_mask(&points, &directions);
        let front: Vec<Vec<f64>> = points.iter().zip(&mask).filter(|(_, on)| **on).map(|(p, _)| p.clone()).collect();
        prop_assert_eq!(hypervolume(&points, &directions, &reference), hypervolume(&front, &directions, &reference));
    }
}
