//! The objectives in force and the fronts: which configurations no other beats in every
//! objective (and, when savings are nominal, with actual or measured savings instead), and the
//! hypervolume of the objectives' front.

use cg_core::{Direction, Objective, SweepInfo};

use cg_core::METRICS;

use super::model::Report;
use crate::aggregate::{Configuration, FrontMembership};
use crate::pareto;
use crate::{Error, Result};

/// The sweep's objectives and reference point, or the defaults (accuracy and nominal savings, 0
/// per objective); refused when a metric is unknown or the reference point has the wrong length.
pub(super) fn effective_objectives(info: &SweepInfo) -> Result<(Vec<Objective>, Vec<f64>)> {
    let objectives = if info.objectives.is_empty() {
        SweepInfo::default_objectives()
    } else {
        info.objectives.clone()
    };
    for o in &objectives {
        if !METRICS.contains(&o.metric.as_str()) {
            return Err(Error::UnknownMetric {
                metric: o.metric.clone(),
                known: METRICS.join(", "),
            });
        }
    }
    let reference = if info.reference_point.is_empty() {
        vec![0.0; objectives.len()]
    } else {
        info.reference_point.clone()
    };
    if reference.len() != objectives.len() {
        return Err(Error::ReferencePoint {
            expected: objectives.len(),
            got: reference.len(),
        });
    }
    if objectives.is_empty() {
        return Err(Error::NoObjectives);
    }
    Ok((objectives, reference))
}

/// Marks each configuration's front memberships; returns the hypervolume of the objectives' front.
pub(super) fn mark_fronts(
    configurations: &mut [Configuration],
    objectives: &[Objective],
    reference: &[f64],
) -> Option<f64> {
    let directions: Vec<Direction> = objectives.iter().map(|o| o.direction).collect();
    let metrics: Vec<&str> = objectives.iter().map(|o| o.metric.as_str()).collect();
    let hypervolume = front_of(
        configurations,
        &metrics,
        &directions,
        Some(reference),
        |m, v| m.objectives = v,
    );
    if metrics.contains(&"savings_nominal") {
        for (replacement, setter) in [
            (
                "savings_actual",
                (|m: &mut FrontMembership, v| m.actual = v)
                    as fn(&mut FrontMembership, Option<bool>),
            ),
            ("savings_measured", |m: &mut FrontMembership, v| {
                m.measured = v
            }),
        ] {
            let replaced: Vec<&str> = metrics
                .iter()
                .map(|&m| {
                    if m == "savings_nominal" {
                        replacement
                    } else {
                        m
                    }
                })
                .collect();
            front_of(configurations, &replaced, &directions, None, setter);
        }
    }
    hypervolume
}

/// Computes one front over the candidate configurations (no baseline nor control, every metric present and
/// finite; accuracy read on validation where the configuration has it, [`Configuration::choice_stat`]), records membership with `set`, and returns the hypervolume when a reference is given and
/// there is a candidate.
fn front_of(
    configurations: &mut [Configuration],
    metrics: &[&str],
    directions: &[Direction],
    reference: Option<&[f64]>,
    set: impl Fn(&mut FrontMembership, Option<bool>),
) -> Option<f64> {
    let mut candidates: Vec<usize> = Vec::new();
    let mut points: Vec<Vec<f64>> = Vec::new();
    for (i, c) in configurations.iter().enumerate() {
        if !c.is_candidate() {
            continue;
        }
        let point: Option<Vec<f64>> = metrics
            .iter()
            .map(|m| c.choice_stat(m).map(|s| s.mean))
            .collect();
        if let Some(point) = point.filter(|p| p.iter().all(|v| v.is_finite())) {
            candidates.push(i);
            points.push(point);
        }
    }
    let mask = pareto::pareto_mask(&points, directions);
    for c in configurations.iter_mut() {
        set(&mut c.front, None);
    }
    for (&i, &on) in candidates.iter().zip(&mask) {
        set(&mut configurations[i].front, Some(on));
    }
    let reference = reference?;
    if candidates.is_empty() {
        return None;
    }
    let front: Vec<Vec<f64>> = points
        .into_iter()
        .zip(&mask)
        .filter(|(_, on)| **on)
        .map(|(p, _)| p)
        .collect();
    Some(pareto::hypervolume(&front, directions, reference))
}

/// The front's configurations, best in the first objective (as chosen) first, then by id.
pub(super) fn sorted_front(report: &Report) -> Vec<&Configuration> {
    let mut front: Vec<&Configuration> = report.front().collect();
    let first = &report.objectives[0];
    front.sort_by(|a, b| {
        let (x, y) = (
            a.choice_stat(&first.metric).map_or(f64::NAN, |s| s.mean),
            b.choice_stat(&first.metric).map_or(f64::NAN, |s| s.mean),
        );
        let order = match first.direction {
            Direction::Maximize => y.total_cmp(&x),
            Direction::Minimize => x.total_cmp(&y),
        };
        order.then_with(|| a.id.cmp(&b.id))
    });
    front
}

/// Whether every configuration on the objectives' front measured its savings (the front can
/// then be drawn on measured savings); `false` without a front.
pub(super) fn front_measured(report: &Report) -> bool {
    report.front().count() > 0 && report.front().all(|c| c.savings_measured.is_some())
}

/// The front configurations that lack a measured savings figure.
pub(super) fn front_unmeasured(report: &Report) -> Vec<&Configuration> {
    report
        .front()
        .filter(|c| c.savings_measured.is_none())
        .collect()
}
