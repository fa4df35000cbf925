//! The report's figures, described (not drawn): accuracy against savings with the front, gate
//! heatmaps (open rate and CIR) and the front's training curves; a figure with nothing to show says
//! why. `plots` draws them.

use cg_core::{Direction, Objective};

use super::model::{Report, ReportOptions};
use crate::aggregate::FrontMembership;
use crate::aggregate::{self, Configuration};
use crate::plots::{
    self, ControlSeries, CurvesFigure, Figure, FigureKind, HeatmapFigure, Marker, ScatterFigure,
    ScatterPoint,
};
use cg_core::Control;

fn objective_desc(o: &Objective) -> String {
    let arrow = match o.direction {
        Direction::Maximize => "↑",
        Direction::Minimize => "↓",
    };
    format!("{} {arrow}", o.metric)
}

fn baseline_label(c: &Configuration) -> String {
    if c.label.chars().count() <= 40 {
        format!("{} {}", c.id, c.label)
    } else {
        c.id.clone()
    }
}

fn row_label(c: &Configuration) -> String {
    if c.short_label == c.id {
        c.id.clone()
    } else {
        format!("{} {}", c.id, c.short_label)
    }
}

/// The figures of a report: accuracy against savings, the two gate heatmaps, the curves, and the
/// front's open rate per class when the runs recorded it.
pub(super) fn figures(report: &Report, opts: &ReportOptions) -> Vec<Figure> {
    let no_runs = if report.counts.total == 0 {
        "the sweep has no jobs"
    } else {
        "no finished runs"
    };
    let (gates_open, gates_cir) = gate_heatmaps(report, opts, no_runs);
    let mut figures = vec![pareto_figure(report, opts, no_runs)];
    figures.extend(measured_figure(report, opts));
    figures.extend([gates_open, gates_cir, curves_figure(report, opts, no_runs)]);
    figures.extend(super::routing::class_figure(report, opts));
    figures
}

/// A figure that only says why there is nothing to draw.
fn message(stem: &str, caption: &str, title: String, text: &str) -> Figure {
    Figure {
        stem: stem.into(),
        caption: caption.into(),
        kind: FigureKind::Message {
            title,
            message: text.into(),
        },
    }
}

/// The objective drawn on the x axis: the second, or nominal savings.
fn x_objective(report: &Report) -> Objective {
    report.objectives.get(1).cloned().unwrap_or(Objective {
        metric: "savings_nominal".into(),
        direction: Direction::Maximize,
    })
}

/// The first objective against the second (or nominal savings), with the front, the dominated
/// points, the controls and the baselines.
fn pareto_figure(report: &Report, opts: &ReportOptions, no_runs: &str) -> Figure {
    let plane = Plane {
        stem: "pareto",
        x_obj: x_objective(report),
        on_front: |m| m.objectives,
        front: "the front of the objectives",
        note: "",
    };
    plane.figure(report, opts, no_runs)
}

/// The front drawn on measured savings (`pareto_measured`), when the x axis is nominal savings
/// and every front configuration measured its savings.
fn measured_figure(report: &Report, opts: &ReportOptions) -> Option<Figure> {
    let x_obj = x_objective(report);
    if x_obj.metric != "savings_nominal" || !super::fronts::front_measured(report) {
        return None;
    }
    let plane = Plane {
        stem: "pareto_measured",
        x_obj: Objective {
            metric: "savings_measured".into(),
            direction: x_obj.direction,
        },
        on_front: |m| m.measured,
        front: "the front with measured savings in place of nominal",
        note: " Measured savings: dense against sparse inference of the same weights, wall clock; controls sit at their MACs savings against the full network.",
    };
    Some(plane.figure(report, opts, "no finished runs"))
}

/// A Pareto plane: its file stem, x objective, which front it marks and a caption note.
struct Plane {
    stem: &'static str,
    x_obj: Objective,
    on_front: fn(&FrontMembership) -> Option<bool>,
    /// What the red points are.
    front: &'static str,
    note: &'static str,
}

impl Plane {
    fn figure(&self, report: &Report, opts: &ReportOptions, no_runs: &str) -> Figure {
        pareto_plane(report, opts, no_runs, self)
    }
}

fn pareto_plane(report: &Report, opts: &ReportOptions, no_runs: &str, plane: &Plane) -> Figure {
    let y_obj = report.objectives[0].clone();
    let x_obj = plane.x_obj.clone();
    let title = format!(
        "{}: {} vs {}",
        report.sweep.name, y_obj.metric, x_obj.metric
    );
    let mut points = scatter_points(report, &x_obj, &y_obj, plane.on_front);
    let controls = control_series(report, &x_obj, &y_obj);
    choose_point_labels(&mut points, opts.max_point_labels);
    let on_validation = report
        .configurations
        .iter()
        .any(|c| c.choice_name(&y_obj.metric) != y_obj.metric);
    let pareto_caption = format!(
        "{}{} against {}, mean over seeds; error bars: the 95% Student-t interval of {} over seeds (none for one seed) and ± sample std of {}. Red: {}; grey: dominated{}; dashed: ResNet baseline.{}{}",
        y_obj.metric,
        if on_validation {
            " (read on validation, as chosen)"
        } else {
            ""
        },
        x_obj.metric,
        y_obj.metric,
        x_obj.metric,
        plane.front,
        if points.len() > plots::MAX_DOMINATED_ERROR_BARS {
            " (error bars on the front only)"
        } else {
            ""
        },
        if controls.is_empty() {
            ""
        } else {
            " Green triangles: static controls; purple squares: narrow controls (plain ResNets at a configuration's compute, never front candidates)."
        },
        plane.note
    );
    let baselines: Vec<(String, f64)> = report
        .configurations
        .iter()
        .filter(|c| c.is_baseline())
        .filter_map(|c| {
            c.choice_stat(&y_obj.metric)
                .map(|s| (baseline_label(c), s.mean))
        })
        .filter(|(_, y)| y.is_finite())
        .collect();
    if points.is_empty() && baselines.is_empty() && controls.is_empty() {
        return message(plane.stem, &pareto_caption, title, no_runs);
    }
    Figure {
        stem: plane.stem.into(),
        caption: pareto_caption,
        kind: FigureKind::Scatter(ScatterFigure {
            title,
            x_desc: objective_desc(&x_obj),
            y_desc: if on_validation {
                format!("{} (validation)", objective_desc(&y_obj))
            } else {
                objective_desc(&y_obj)
            },
            points,
            baselines,
            controls,
        }),
    }
}

/// One point per front candidate that has both metrics (as chosen: accuracy on validation where
/// there is a split), unlabelled; the vertical bar is the 95% t interval.
fn scatter_points(
    report: &Report,
    x_obj: &Objective,
    y_obj: &Objective,
    on_front: fn(&FrontMembership) -> Option<bool>,
) -> Vec<ScatterPoint> {
    let mut points: Vec<ScatterPoint> = Vec::new();
    for c in report.configurations.iter().filter(|c| c.is_candidate()) {
        if let (Some(x), Some(y)) = (c.choice_stat(&x_obj.metric), c.choice_stat(&y_obj.metric))
            && x.mean.is_finite()
            && y.mean.is_finite()
        {
            points.push(ScatterPoint {
                label: c.short_label.clone(),
                x: x.mean,
                x_std: x.std,
                y: y.mean,
                y_err: y.ci95().unwrap_or(0.0),
                on_front: on_front(&c.front) == Some(true),
                show_label: false,
            });
        }
    }
    points
}

/// The controls of each kind as points: x where the control sits on the x objective
/// ([`control_x`]), y its accuracy as chosen, with its 95% interval; kinds without a control left out.
fn control_series(report: &Report, x_obj: &Objective, y_obj: &Objective) -> Vec<ControlSeries> {
    [
        (Control::Static, Marker::Triangle),
        (Control::Narrow, Marker::Square),
    ]
    .into_iter()
    .map(|(kind, marker)| ControlSeries {
        name: format!("{} control", kind.as_str()),
        marker,
        points: report
            .configurations
            .iter()
            .filter(|c| c.control == Some(kind))
            .filter_map(|c| {
                let x = control_x(report, c, &x_obj.metric)?;
                let y = c.choice_stat(&y_obj.metric)?;
                (x.is_finite() && y.mean.is_finite()).then(|| ScatterPoint {
                    label: c.short_label.clone(),
                    x,
                    x_std: 0.0,
                    y: y.mean,
                    y_err: y.ci95().unwrap_or(0.0),
                    on_front: false,
                    show_label: true,
                })
            })
            .collect(),
    })
    .filter(|s| !s.points.is_empty())
    .collect()
}

/// Where a control sits on the x objective. A plain ResNet saves nothing of its own MACs, so
/// savings are its MACs saved against the full network of a configuration it controls
/// (`1 − macs / full`); executed MACs are its MACs; other metrics its own value.
fn control_x(report: &Report, control: &Configuration, metric: &str) -> Option<f64> {
    match metric {
        "savings_nominal" | "savings_actual" | "savings_measured" => {
            let full = report
                .configurations
                .iter()
                .find(|c| c.is_candidate() && control.controls(&c.params))?
                .macs_full
                .mean;
            Some(1.0 - control.macs_full.mean / full)
        }
        "macs_executed_nominal" | "macs_executed_actual" => Some(control.macs_full.mean),
        other => control.choice_stat(other).map(|s| s.mean),
    }
}

/// Labels every point when few; else every k-th front point along the x axis.
fn choose_point_labels(points: &mut [ScatterPoint], max_labels: usize) {
    if points.len() <= max_labels {
        points.iter_mut().for_each(|p| p.show_label = true);
    } else if max_labels > 0 {
        let mut front: Vec<usize> = (0..points.len()).filter(|&i| points[i].on_front).collect();
        front.sort_by(|&a, &b| points[a].x.total_cmp(&points[b].x).then(a.cmp(&b)));
        let step = front.len().div_ceil(max_labels).max(1);
        for &i in front.iter().step_by(step) {
            points[i].show_label = true;
        }
    }
}

/// The gate-open rate and mean CIR heatmaps over the same rows and blocks.
fn gate_heatmaps(report: &Report, opts: &ReportOptions, no_runs: &str) -> (Figure, Figure) {
    let gated: Vec<&Configuration> = report
        .configurations
        .iter()
        .filter(|c| !c.gates.is_empty())
        .collect();
    let shown = heatmap_rows(&gated, opts.max_heatmap_rows);
    let mut blocks: Vec<usize> = shown
        .iter()
        .flat_map(|c| c.gates.iter().map(|g| g.block_idx))
        .collect();
    blocks.sort_unstable();
    blocks.dedup();
    let subset = if shown.len() < gated.len() {
        format!(
            " Showing {} of {} configurations (front first).",
            shown.len(),
            gated.len()
        )
    } else {
        String::new()
    };
    let heatmap = Heatmap {
        report,
        shown: &shown,
        blocks: &blocks,
        subset: &subset,
        no_runs,
    };
    (
        heatmap.figure(
            "gates_open",
            "gate-open rate",
            "fraction of samples executed",
            |g| g.gate_open_rate,
            Some((0.0, 1.0)),
        ),
        heatmap.figure(
            "gates_cir",
            "mean CIR",
            "mean 1 − cos(x, F(x))",
            |g| g.mean_cir,
            None,
        ),
    )
}

/// The gated configurations drawn as rows: all when they fit, else the front ones first (the
/// first in report order when even those do not fit), then others, in report order.
fn heatmap_rows<'a>(gated: &[&'a Configuration], max_rows: usize) -> Vec<&'a Configuration> {
    if gated.len() <= max_rows {
        return gated.to_vec();
    }
    let mut keep: Vec<bool> = gated
        .iter()
        .map(|c| c.front.objectives == Some(true))
        .collect();
    let mut n = keep.iter().filter(|k| **k).count().min(max_rows);
    if n == max_rows {
        // More front configurations than rows: the first ones in report order.
        let mut seen = 0;
        for k in keep.iter_mut() {
            if *k {
                seen += 1;
                *k = seen <= max_rows;
            }
        }
    }
    for k in keep.iter_mut() {
        if n >= max_rows {
            break;
        }
        if !*k {
            *k = true;
            n += 1;
        }
    }
    gated
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(c, _)| *c)
        .collect()
}

/// What the two gate heatmaps share: their rows, columns and caption tail.
struct Heatmap<'a> {
    report: &'a Report,
    shown: &'a [&'a Configuration],
    blocks: &'a [usize],
    subset: &'a str,
    no_runs: &'a str,
}

impl Heatmap<'_> {
    /// One heatmap of `pick` per block and configuration, on `fixed` or the values' range.
    fn figure(
        &self,
        stem: &str,
        what: &str,
        desc: &str,
        pick: fn(&aggregate::BlockGateMean) -> f64,
        fixed: Option<(f64, f64)>,
    ) -> Figure {
        let on = if !self.shown.is_empty() && self.shown.iter().all(|c| c.validation) {
            "the validation split"
        } else {
            "the test set"
        };
        let caption = format!(
            "{what} per gated block and configuration, mean over seeds, on {on}.{}",
            self.subset
        );
        let title = format!("{}: {what}", self.report.sweep.name);
        if self.shown.is_empty() {
            let text = if self.report.counts.finished == 0 {
                self.no_runs
            } else {
                "no gate statistics (baseline runs only)"
            };
            return message(stem, &caption, title, text);
        }
        let values: Vec<Vec<Option<f64>>> = self
            .shown
            .iter()
            .map(|c| {
                self.blocks
                    .iter()
                    .map(|b| c.gates.iter().find(|g| g.block_idx == *b).map(pick))
                    .collect()
            })
            .collect();
        let range = fixed.unwrap_or_else(|| value_range(&values));
        Figure {
            stem: stem.into(),
            caption,
            kind: FigureKind::Heatmap(HeatmapFigure {
                title,
                value_desc: desc.into(),
                column_labels: self.blocks.iter().map(usize::to_string).collect(),
                row_labels: self.shown.iter().map(|c| row_label(c)).collect(),
                values,
                range,
            }),
        }
    }
}

/// The lowest and highest value, or a unit window around a single value.
fn value_range(values: &[Vec<Option<f64>>]) -> (f64, f64) {
    let (lo, hi) = values
        .iter()
        .flatten()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5, lo + 0.5)
    }
}

/// Test accuracy and nominal savings per epoch of the front's configurations (the first few).
fn curves_figure(report: &Report, opts: &ReportOptions, no_runs: &str) -> Figure {
    let mut front: Vec<&Configuration> = report
        .configurations
        .iter()
        .filter(|c| c.front.objectives == Some(true) && !c.curve.is_empty())
        .collect();
    let n_front = front.len();
    front.truncate(opts.max_curves);
    let curves_caption = format!(
        "Test accuracy{} and nominal savings per epoch of the front's configurations, mean over seeds.{}",
        if front
            .iter()
            .any(|c| c.curve.iter().any(|p| p.val_acc.is_some()))
        {
            " (solid) with validation accuracy (dashed, what chose)"
        } else {
            ""
        },
        if n_front > front.len() {
            format!(" Showing {} of {}.", front.len(), n_front)
        } else {
            String::new()
        }
    );
    let curves_title = format!("{}: training curves of the front", report.sweep.name);
    if front.is_empty() {
        let text = if report.counts.finished == 0 {
            no_runs
        } else {
            "no training history on the front"
        };
        return message("curves", &curves_caption, curves_title, text);
    }
    Figure {
        stem: "curves".into(),
        caption: curves_caption,
        kind: FigureKind::Curves(CurvesFigure {
            title: curves_title,
            series: front
                .iter()
                .map(|c| {
                    (
                        row_label(c),
                        c.curve
                            .iter()
                            .map(|p| (p.epoch as f64, p.test_acc, p.savings_nominal))
                            .collect(),
                    )
                })
                .collect(),
            validation: front
                .iter()
                .map(|c| {
                    c.curve
                        .iter()
                        .filter_map(|p| Some((p.epoch as f64, p.val_acc?)))
                        .collect()
                })
                .collect(),
        }),
    }
}
