//! The objectives of a sweep and its `reference_point`: which metrics of a result it measures, in
//! which direction, and the point its hypervolume is measured from (each value one that some result
//! can beat), read and checked by the [`Loader`].

use cg_core::{Direction, Objective, SweepInfo};

use super::loader::Loader;
use crate::diag::Pos;
use crate::keys::METRICS;
use crate::yaml::{Key, Node, join, unique_entries};

impl Loader<'_> {
    /// `objectives`: what the sweep measures, each metric once (the defaults when absent).
    pub(super) fn objectives(&mut self, node: Option<&Node>) -> Vec<Objective> {
        let Some(node) = node else {
            return SweepInfo::default_objectives();
        };
        let Some(items) = self.list(
            node,
            "objectives",
            "[{metric: test_acc_final, direction: maximize}]",
        ) else {
            return Vec::new();
        };
        if items.is_empty() {
            self.sink.push(
                node.pos,
                "objectives",
                "empty list",
                Some("leave `objectives` out for the defaults".into()),
            );
        }
        // The metrics named so far, in order.
        let mut seen: Vec<String> = Vec::new();
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            out.extend(self.objective(i, item, &mut seen));
        }
        out
    }

    /// One entry of `objectives`, `{metric, direction}`; `None` when it is incomplete (reported).
    fn objective(&mut self, i: usize, item: &Node, seen: &mut Vec<String>) -> Option<Objective> {
        let path = format!("objectives[{i}]");
        let entries = self.map(item, &path)?;
        let (mut metric, mut direction) = (None, None);
        for (key, value) in unique_entries(entries) {
            let key_path = join(&path, &key.name);
            match key.name.as_str() {
                "metric" => {
                    if let Some(m) = self.objective_metric(value, &key_path, seen) {
                        metric = Some(m);
                    }
                }
                "direction" => direction = Some(self.direction(value, &key_path)),
                other => {
                    let hint = match other {
                        "goal" | "dir" => Some("did you mean `direction`?".to_string()),
                        "name" => Some("did you mean `metric`?".to_string()),
                        _ => None,
                    };
                    self.sink.push(key.pos, &key_path, "unknown key", hint);
                }
            }
        }
        match (metric, direction) {
            (Some(metric), Some(direction)) => Some(Objective { metric, direction }),
            (None, _) => {
                self.sink.error(item.pos, &path, "missing `metric`");
                None
            }
            (_, None) => {
                self.sink.push(
                    item.pos,
                    &path,
                    "missing `direction`",
                    Some("`maximize` or `minimize`".into()),
                );
                None
            }
        }
    }

    /// The `metric` of an objective, one of [`METRICS`] named once; an unknown one is reported
    /// and read as `""`. `None` when it is not a string (reported).
    fn objective_metric(
        &mut self,
        value: &Node,
        key_path: &str,
        seen: &mut Vec<String>,
    ) -> Option<String> {
        let m = self.string(value, key_path)?;
        if let Some(first) = seen.iter().position(|s| *s == m) {
            self.sink.push(
                value.pos,
                key_path,
                format!("`{m}` is an objective already (objectives[{first}])"),
                Some("name each metric once".into()),
            );
        }
        seen.push(m.clone());
        if METRICS.contains(&m.as_str()) {
            return Some(m);
        }
        let metrics: Vec<String> = METRICS.iter().map(|s| s.to_string()).collect();
        let hint = cg_core::closest(&m, &metrics)
            .map(|k| format!("did you mean `{k}`?"))
            .unwrap_or_else(|| format!("one of {}", METRICS.join(", ")));
        self.sink.push(
            value.pos,
            key_path,
            format!("unknown metric `{m}`"),
            Some(hint),
        );
        Some(String::new())
    }

    /// The `direction` of an objective; one that is unknown or not a string is reported and read
    /// as `maximize`.
    fn direction(&mut self, value: &Node, key_path: &str) -> Direction {
        match self.string(value, key_path).as_deref() {
            Some("minimize") => Direction::Minimize,
            Some("maximize") | None => Direction::Maximize,
            Some(other) => {
                self.sink.push(
                    value.pos,
                    key_path,
                    format!("unknown direction `{other}`"),
                    Some("`maximize` or `minimize`".into()),
                );
                Direction::Maximize
            }
        }
    }

    /// `reference_point`: one number per objective, each one that some result can beat.
    pub(super) fn reference_point(
        &mut self,
        entry: Option<(&Key, &Node)>,
        objectives: &[Objective],
    ) -> Vec<f64> {
        let n_objectives = objectives.len();
        let Some((_, node)) = entry else {
            return vec![0.0; n_objectives];
        };
        let Some(items) = self.list(node, "reference_point", "[0.0, 0.0]") else {
            return vec![0.0; n_objectives];
        };
        let values: Vec<(f64, Pos)> = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let v = self.number(item, &format!("reference_point[{i}]"))?;
                Some((v, item.pos))
            })
            .collect();
        if items.len() != n_objectives {
            self.sink.push(
                node.pos,
                "reference_point",
                format!("has {} values for {n_objectives} objectives", items.len()),
                Some("give one value per objective".into()),
            );
        } else if values.len() == n_objectives {
            for (i, ((value, pos), objective)) in values.iter().zip(objectives).enumerate() {
                if let Some((message, hint)) = unbeatable(*value, objective) {
                    self.sink
                        .push(*pos, &format!("reference_point[{i}]"), message, Some(hint));
                }
            }
        }
        values.into_iter().map(|(v, _)| v).collect()
    }
}

/// The values a metric of a result can take: (least, greatest), `None` where unbounded.
fn metric_range(metric: &str) -> (Option<f64>, Option<f64>) {
    match metric {
        "test_acc_final" | "test_acc_peak" | "savings_nominal" => (Some(0.0), Some(1.0)),
        // Gate overhead can make these negative; skipping everything saves at most all.
        "savings_actual" | "savings_measured" => (None, Some(1.0)),
        "peak_epoch"
        | "macs_full"
        | "macs_executed_nominal"
        | "macs_executed_actual"
        | "train_img_per_s"
        | "infer_img_per_s"
        | "wall_secs" => (Some(0.0), None),
        _ => (None, None),
    }
}

/// Why no result can be strictly better than `value` in `objective` (the hypervolume counts only
/// results better than the reference point in every objective), with a hint; `None` when one can.
fn unbeatable(value: f64, objective: &Objective) -> Option<(String, String)> {
    let metric = &objective.metric;
    let (least, greatest) = metric_range(metric);
    match objective.direction {
        Direction::Maximize => {
            let top = greatest.filter(|g| value >= *g)?;
            Some((
                format!(
                    "{value} cannot be beaten: `{metric}` is at most {top}, and only results above \
                     the reference point count toward the hypervolume"
                ),
                format!("give a value below {top}: the worst `{metric}` worth counting"),
            ))
        }
        Direction::Minimize => {
            let bottom = least.filter(|l| value <= *l)?;
            Some((
                format!(
                    "{value} cannot be beaten: `{metric}` is at least {bottom}, and only results \
                     below the reference point count toward the hypervolume"
                ),
                format!("give a value above {bottom}: the worst `{metric}` worth counting"),
            ))
        }
    }
}
