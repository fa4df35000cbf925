//! A hypervolume one can trust: how much of it the largest single front configuration holds
//! (its exclusive contribution over the total), and how it moves with stricter reference
//! accuracies (+2 and +5 points, capped at the best baseline's accuracy), with a search's share
//! of a full grid's at each. Points are read as chosen ([`Configuration::choice_stat`]).

use cg_core::{Direction, Objective};

use super::model::{GridComparison, HvReference, HvTrust, Report};
use crate::aggregate::Configuration;
use crate::pareto;

/// Accuracy points added to the reference accuracy for the stricter rows.
pub const STRICTER_POINTS: [f64; 2] = [2.0, 5.0];

fn is_accuracy(o: &Objective) -> bool {
    o.direction == Direction::Maximize
        && matches!(
            o.metric.as_str(),
            "test_acc_final" | "test_acc_peak" | "val_acc_final" | "val_acc_peak"
        )
}

/// The front's points (as chosen) with their configuration ids.
fn front_points(report: &Report) -> (Vec<String>, Vec<Vec<f64>>) {
    report
        .front()
        .filter_map(|c| {
            let p: Option<Vec<f64>> = report
                .objectives
                .iter()
                .map(|o| c.choice_stat(&o.metric).map(|s| s.mean))
                .collect();
            Some((c.id.clone(), p?))
        })
        .unzip()
}

/// The best baseline's accuracy (as chosen) for the objective `o`, if there is a baseline.
fn best_baseline(configurations: &[Configuration], o: &Objective) -> Option<f64> {
    configurations
        .iter()
        .filter(|c| c.is_baseline())
        .filter_map(|c| c.choice_stat(&o.metric).map(|s| s.mean))
        .filter(|v| v.is_finite())
        .max_by(f64::total_cmp)
}

/// The references of the sensitivity table: the sweep's, then each accuracy coordinate raised by
/// each of [`STRICTER_POINTS`] (as fractions: 2 points = 0.02), capped at `caps[j]` (never below
/// the sweep's own). Only the sweep's when no coordinate is an accuracy.
pub fn references(reference: &[f64], caps: &[Option<Option<f64>>]) -> Vec<HvReference> {
    let mut rows = vec![HvReference {
        label: "the sweep's".into(),
        reference: reference.to_vec(),
        capped: false,
        hypervolume: 0.0,
        search_share: None,
    }];
    if caps.iter().all(Option::is_none) {
        return rows;
    }
    for points in STRICTER_POINTS {
        let mut capped = false;
        let stricter: Vec<f64> = reference
            .iter()
            .zip(caps)
            .map(|(&r, cap)| match cap {
                None => r,
                Some(cap) => {
                    let raised = r + points / 100.0;
                    match cap {
                        Some(c) if *c < raised => {
                            capped = true;
                            c.max(r)
                        }
                        _ => raised,
                    }
                }
            })
            .collect();
        rows.push(HvReference {
            label: format!("+{points} points"),
            reference: stricter,
            capped,
            hypervolume: 0.0,
            search_share: None,
        });
    }
    rows
}

/// The largest exclusive contribution of one point over the total hypervolume, with its index;
/// `None` without points or with a total of zero.
pub fn largest_share(
    points: &[Vec<f64>],
    directions: &[Direction],
    reference: &[f64],
) -> Option<(usize, f64)> {
    let total = pareto::hypervolume(points, directions, reference);
    if points.is_empty() || total.is_nan() || total <= 0.0 {
        return None;
    }
    let contributions = pareto::hypervolume_contributions(points, directions, reference);
    let (i, c) = contributions
        .iter()
        .enumerate()
        .max_by(|(a, x), (b, y)| x.total_cmp(y).then(b.cmp(a)))?;
    Some((i, c / total))
}

/// The trust figures of a report's front, and of a search against a grid when given.
pub(super) fn hv_trust(report: &Report, against: Option<&GridComparison>) -> Option<HvTrust> {
    let (ids, points) = front_points(report);
    if points.is_empty() {
        return None;
    }
    let directions: Vec<Direction> = report.objectives.iter().map(|o| o.direction).collect();
    let caps: Vec<Option<Option<f64>>> = report
        .objectives
        .iter()
        .map(|o| is_accuracy(o).then(|| best_baseline(&report.configurations, o)))
        .collect();
    let mut rows = references(&report.reference_point, &caps);
    for row in &mut rows {
        row.hypervolume = pareto::hypervolume(&points, &directions, &row.reference);
        row.search_share = against.and_then(|g| {
            let grid = pareto::hypervolume(&g.grid_points, &directions, &row.reference);
            (grid > 0.0).then(|| row.hypervolume / grid)
        });
    }
    let largest = largest_share(&points, &directions, &report.reference_point);
    Some(HvTrust {
        largest: largest.map(|(i, share)| (ids[i].clone(), share)),
        references: rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX2: [Direction; 2] = [Direction::Maximize, Direction::Maximize];

    fn front() -> Vec<Vec<f64>> {
        vec![vec![0.9, 0.1], vec![0.8, 0.3], vec![0.6, 0.5]]
    }

    #[test]
    fn largest_contributor_by_hand() {
        // Total 0.9·0.1 + 0.8·0.2 + 0.6·0.2 = 0.37; exclusive parts 0.01, 0.04, 0.12.
        let (i, share) = largest_share(&front(), &MAX2, &[0.0, 0.0]).unwrap();
        assert_eq!(i, 2);
        assert!((share - 0.12 / 0.37).abs() < 1e-12, "{share}");
        assert_eq!(largest_share(&[], &MAX2, &[0.0, 0.0]), None);
    }

    #[test]
    fn sensitivity_by_hand() {
        let hv = |r: &HvReference| pareto::hypervolume(&front(), &MAX2, &r.reference);
        // No baseline: +2 and +5 points on the accuracy axis only.
        let rows = references(&[0.0, 0.0], &[Some(None), None]);
        let refs: Vec<&[f64]> = rows.iter().map(|r| r.reference.as_slice()).collect();
        assert_eq!(refs, [&[0.0, 0.0][..], &[0.02, 0.0], &[0.05, 0.0]]);
        assert!((hv(&rows[1]) - 0.36).abs() < 1e-12);
        assert!((hv(&rows[2]) - 0.345).abs() < 1e-12);
        // A baseline at 0.03 caps the +5 row.
        let rows = references(&[0.0, 0.0], &[Some(Some(0.03)), None]);
        assert!(!rows[1].capped && rows[2].capped);
        assert_eq!(rows[2].reference, [0.03, 0.0]);
        assert!((hv(&rows[2]) - 0.355).abs() < 1e-12);
        // No accuracy objective: the sweep's reference only.
        assert_eq!(references(&[0.0, 0.0], &[None, None]).len(), 1);
    }
}
