//! Pareto dominance, the non-dominated front and its hypervolume, over points with any number of
//! objectives, each maximised or minimised. Exact: ties and duplicate points stay on the front together.
//! This module knows nothing of runs or configurations; it works on plain coordinates.

use std::cmp::Ordering;

use crate::Direction;

/// A coordinate turned into "larger is better".
fn oriented(value: f64, direction: Direction) -> f64 {
    match direction {
        Direction::Maximize => value,
        Direction::Minimize => -value,
    }
}

fn orient_point(point: &[f64], directions: &[Direction]) -> Vec<f64> {
    point
        .iter()
        .zip(directions)
        .map(|(&v, &d)| oriented(v, d))
        .collect()
}

fn is_finite_point(point: &[f64]) -> bool {
    point.iter().all(|v| v.is_finite())
}

/// Whether `a` Pareto-dominates `b`: at least as good in every objective and strictly better in one.
/// Equal points do not dominate each other.
///
/// # Panics
/// When the points and `directions` differ in length.
pub fn dominates(a: &[f64], b: &[f64], directions: &[Direction]) -> bool {
    assert_eq!(
        a.len(),
        directions.len(),
        "point and directions differ in length"
    );
    assert_eq!(
        b.len(),
        directions.len(),
        "point and directions differ in length"
    );
    let mut strictly_better = false;
    for ((&x, &y), &d) in a.iter().zip(b).zip(directions) {
        let (x, y) = (oriented(x, d), oriented(y, d));
        if x < y {
            return false;
        }
        if x > y {
            strictly_better = true;
        }
    }
    strictly_better
}

/// For each point, whether no other point dominates it. Duplicates of a front point are all on the
/// front. A point with a non-finite coordinate is never on the front and is ignored when judging others.
///
/// Two objectives take an `O(n log n)` sweep; more take the `O(n²)` pairwise definition.
///
/// # Panics
/// When a point's length differs from the number of `directions`.
pub fn pareto_mask(points: &[Vec<f64>], directions: &[Direction]) -> Vec<bool> {
    for p in points {
        assert_eq!(
            p.len(),
            directions.len(),
            "point and directions differ in length"
        );
    }
    let oriented: Vec<Vec<f64>> = points.iter().map(|p| orient_point(p, directions)).collect();
    let candidates: Vec<usize> = (0..points.len())
        .filter(|&i| is_finite_point(&oriented[i]))
        .collect();
    let mut mask = vec![false; points.len()];
    if directions.len() == 2 {
        mask_2d(&oriented, &candidates, &mut mask);
    } else {
        let all_max = vec![Direction::Maximize; directions.len()];
        for &i in &candidates {
            mask[i] = !candidates
                .iter()
                .any(|&j| dominates(&oriented[j], &oriented[i], &all_max));
        }
    }
    mask
}

/// The 2-D sweep over maximised coordinates: sort by x descending; a point is on the front iff it has
/// the largest y among the points with its x, and that y beats every y seen at a strictly larger x.
fn mask_2d(points: &[Vec<f64>], candidates: &[usize], mask: &mut [bool]) {
    let mut order = candidates.to_vec();
    order.sort_by(|&a, &b| {
        points[b][0]
            .total_cmp(&points[a][0])
            .then(points[b][1].total_cmp(&points[a][1]))
    });
    let mut best_y_at_larger_x = f64::NEG_INFINITY;
    let mut start = 0;
    while start < order.len() {
        let x = points[order[start]][0];
        let mut end = start;
        while end < order.len() && points[order[end]][0] == x {
            end += 1;
        }
        // Sorted by y descending within the group, so the group's best y comes first.
        let group_best_y = points[order[start]][1];
        if group_best_y > best_y_at_larger_x {
            for &i in &order[start..end] {
                mask[i] = points[i][1] == group_best_y;
            }
            best_y_at_larger_x = group_best_y;
        }
        start = end;
    }
}

/// The hypervolume dominated by `points` and bounded by `reference`: the measure of the set of
/// objective vectors that some point weakly dominates and that strictly dominate the reference.
/// Dominated points change nothing; points not strictly better than the reference in every objective,
/// and points with a non-finite coordinate, contribute nothing. Exact for any number of objectives
/// (a sweep for two, slicing along the last objective for more).
///
/// # Panics
/// When a point or the reference differs in length from `directions`.
pub fn hypervolume(points: &[Vec<f64>], directions: &[Direction], reference: &[f64]) -> f64 {
    assert_eq!(
        reference.len(),
        directions.len(),
        "reference and directions differ in length"
    );
    if directions.is_empty() {
        return 0.0;
    }
    let reference = orient_point(reference, directions);
    let inside: Vec<Vec<f64>> = points
        .iter()
        .map(|p| {
            assert_eq!(
                p.len(),
                directions.len(),
                "point and directions differ in length"
            );
            orient_point(p, directions)
        })
        .filter(|p| is_finite_point(p) && p.iter().zip(&reference).all(|(v, r)| v > r))
        .collect();
    if inside.is_empty() {
        return 0.0;
    }
    hypervolume_max(inside, &reference)
}

/// Hypervolume of points that are all maximised and strictly better than `reference` everywhere.
fn hypervolume_max(mut points: Vec<Vec<f64>>, reference: &[f64]) -> f64 {
    let d = reference.len();
    match d {
        1 => {
            points
                .iter()
                .map(|p| p[0])
                .fold(f64::NEG_INFINITY, f64::max)
                - reference[0]
        }
        2 => {
            points.sort_by(|a, b| b[0].total_cmp(&a[0]).then(b[1].total_cmp(&a[1])));
            let mut area = 0.0;
            let mut y_covered = reference[1];
            for p in &points {
                if p[1] > y_covered {
                    area += (p[0] - reference[0]) * (p[1] - y_covered);
                    y_covered = p[1];
                }
            }
            area
        }
        _ => {
            points.sort_by(|a, b| b[d - 1].partial_cmp(&a[d - 1]).unwrap_or(Ordering::Equal));
            let mut volume = 0.0;
            for i in 0..points.len() {
                let top = points[i][d - 1];
                let bottom = points.get(i + 1).map_or(reference[d - 1], |p| p[d - 1]);
                if top > bottom {
                    let slice: Vec<Vec<f64>> =
                        points[..=i].iter().map(|p| p[..d - 1].to_vec()).collect();
                    volume += (top - bottom) * hypervolume_max(slice, &reference[..d - 1]);
                }
            }
            volume
        }
    }
}

/// The non-dominated rank of each point: 0 for the front, 1 for the front of the rest, and so on.
/// Points with a non-finite coordinate get `usize::MAX` (behind every rank).
pub fn non_dominated_ranks(points: &[Vec<f64>], directions: &[Direction]) -> Vec<usize> {
    let mut rank = vec![usize::MAX; points.len()];
    let mut left: Vec<usize> = (0..points.len())
        .filter(|&i| is_finite_point(&points[i]))
        .collect();
    let mut r = 0;
    while !left.is_empty() {
        let subset: Vec<Vec<f64>> = left.iter().map(|&i| points[i].clone()).collect();
        let mask = pareto_mask(&subset, directions);
        let mut rest = Vec::new();
        for (k, &i) in left.iter().enumerate() {
            if mask[k] {
                rank[i] = r;
            } else {
                rest.push(i);
            }
        }
        left = rest;
        r += 1;
    }
    rank
}

/// Each point's exclusive hypervolume contribution within `points`: the hypervolume lost when it
/// alone is removed. Duplicates share their box, so each contributes 0; dominated points contribute 0.
pub fn hypervolume_contributions(
    points: &[Vec<f64>],
    directions: &[Direction],
    reference: &[f64],
) -> Vec<f64> {
    let total = hypervolume(points, directions, reference);
    (0..points.len())
        .map(|i| {
            let rest: Vec<Vec<f64>> = points
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| p.clone())
                .collect();
            (total - hypervolume(&rest, directions, reference)).max(0.0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::{Maximize as Max, Minimize as Min};

    fn check_mask(points: &[[f64; 2]], directions: [Direction; 2], expected: &[bool]) {
        let points: Vec<Vec<f64>> = points.iter().map(|p| p.to_vec()).collect();
        assert_eq!(pareto_mask(&points, &directions), expected);
    }

    fn check_hv(points: &[&[f64]], directions: &[Direction], reference: &[f64], expected: f64) {
        let points: Vec<Vec<f64>> = points.iter().map(|p| p.to_vec()).collect();
        let got = hypervolume(&points, directions, reference);
        assert!(
            (got - expected).abs() < 1e-12,
            "hypervolume {got}, expected {expected}"
        );
    }

    #[test]
    fn front_keeps_ties_and_duplicates() {
        check_mask(
            &[
                [1.0, 3.0],
                [2.0, 2.0],
                [2.0, 2.0],
                [3.0, 1.0],
                [1.0, 1.0],
                [2.0, 1.0],
                [3.0, 1.0],
            ],
            [Max, Max],
            &[true, true, true, true, false, false, true],
        );
        // Same x, smaller y: dominated. Same y, smaller x: dominated.
        check_mask(
            &[[1.0, 2.0], [1.0, 1.0], [0.5, 2.0]],
            [Max, Max],
            &[true, false, false],
        );
    }

    #[test]
    fn front_respects_directions() {
        check_mask(
            &[[1.0, 1.0], [2.0, 2.0], [0.5, 3.0]],
            [Min, Max],
            &[false, false, true],
        );
        check_mask(
            &[[1.0, 1.0], [2.0, 2.0], [0.5, 3.0]],
            [Min, Min],
            &[true, false, true],
        );
        check_mask(
            &[[1.0, 1.0], [2.0, 2.0], [0.5, 3.0]],
            [Max, Min],
            &[true, true, false],
        );
    }

    #[test]
    fn non_finite_points_are_never_on_the_front() {
        check_mask(
            &[[f64::NAN, 1.0], [0.0, 0.0], [f64::INFINITY, 5.0]],
            [Max, Max],
            &[false, true, false],
        );
    }

    #[test]
    fn ranks_and_contributions() {
        let points: Vec<Vec<f64>> = [[3.0, 1.0], [2.0, 2.0], [1.0, 1.0], [2.0, 2.0], [0.5, 0.5]]
            .iter()
            .map(|p| p.to_vec())
            .collect();
        assert_eq!(non_dominated_ranks(&points, &[Max, Max]), [0, 0, 1, 0, 2]);
        let c = hypervolume_contributions(&points, &[Max, Max], &[0.0, 0.0]);
        // (3,1) alone covers x in (2,3] below y=1; the duplicates (2,2) cover for each other.
        assert_eq!(c, [1.0, 0.0, 0.0, 0.0, 0.0]);
        // Minimising the first objective turns the order round.
        assert_eq!(non_dominated_ranks(&points, &[Min, Max]), [1, 0, 0, 0, 0]);
    }

    #[test]
    fn hypervolume_by_hand() {
        // One box.
        check_hv(&[&[2.0, 3.0]], &[Max, Max], &[0.0, 0.0], 6.0);
        // Staircase: 3x1 + 2x(2-1) + 1x(3-2) = 3 + 2 + 1.
        check_hv(
            &[&[3.0, 1.0], &[2.0, 2.0], &[1.0, 3.0]],
            &[Max, Max],
            &[0.0, 0.0],
            6.0,
        );
        // Duplicates and dominated points add nothing.
        check_hv(
            &[
                &[3.0, 1.0],
                &[2.0, 2.0],
                &[2.0, 2.0],
                &[1.0, 3.0],
                &[1.0, 1.0],
                &[3.0, 1.0],
            ],
            &[Max, Max],
            &[0.0, 0.0],
            6.0,
        );
        // Ties in x: only the larger y counts.
        check_hv(&[&[2.0, 1.0], &[2.0, 2.0]], &[Max, Max], &[0.0, 0.0], 4.0);
        // Points worse than the reference, or on its boundary, contribute nothing.
        check_hv(
            &[&[-1.0, 5.0], &[0.0, 4.0], &[2.0, 2.0]],
            &[Max, Max],
            &[0.0, 1.0],
            2.0,
        );
        check_hv(&[&[-1.0, -1.0]], &[Max, Max], &[0.0, 0.0], 0.0);
        check_hv(&[], &[Max, Max], &[0.0, 0.0], 0.0);
        // A non-zero reference point: (0.9-0.8)*(0.3-0.1) + (0.85-0.8)*(0.4-0.3).
        check_hv(
            &[&[0.9, 0.3], &[0.85, 0.4]],
            &[Max, Max],
            &[0.8, 0.1],
            0.1 * 0.2 + 0.05 * 0.1,
        );
    }

    #[test]
    fn hypervolume_with_minimised_objectives() {
        // Minimise both against (4, 4): boxes [1,4]x[3,4] and [2,4]x[2,3] and [3,4]x[1,2] -> 3 + 2 + 1.
        check_hv(
            &[&[1.0, 3.0], &[2.0, 2.0], &[3.0, 1.0]],
            &[Min, Min],
            &[4.0, 4.0],
            6.0,
        );
        // Accuracy up, MACs down: reference (0.5, 100): (0.9-0.5)*(100-60) + (0.8-0.5)*(60-40).
        check_hv(
            &[&[0.9, 60.0], &[0.8, 40.0], &[0.7, 70.0]],
            &[Max, Min],
            &[0.5, 100.0],
            0.4 * 40.0 + 0.3 * 20.0,
        );
        // A minimised point beyond the reference contributes nothing.
        check_hv(&[&[5.0, 1.0]], &[Min, Min], &[4.0, 4.0], 0.0);
    }

    #[test]
    fn hypervolume_in_one_and_three_dimensions() {
        check_hv(&[&[2.0], &[3.0]], &[Max], &[1.0], 2.0);
        check_hv(&[&[1.0, 1.0, 1.0]], &[Max, Max, Max], &[0.0, 0.0, 0.0], 1.0);
        // Two unit-overlapping boxes 2x1x1 and 1x2x1 -> union 3; plus a box 1x1x2 -> union 4.
        check_hv(
            &[&[2.0, 1.0, 1.0], &[1.0, 2.0, 1.0], &[1.0, 1.0, 2.0]],
            &[Max, Max, Max],
            &[0.0, 0.0, 0.0],
            4.0,
        );
        // The 3-D algorithm agrees with the 2-D sweep when the third coordinate is constant.
        check_hv(
            &[&[3.0, 1.0, 1.0], &[2.0, 2.0, 1.0], &[1.0, 3.0, 1.0]],
            &[Max, Max, Max],
            &[0.0, 0.0, 0.0],
            6.0,
        );
    }
}
