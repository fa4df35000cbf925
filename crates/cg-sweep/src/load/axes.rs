//! The axes of a sweep: `presets`, `baseline`, `parameters` (one axis per entry, read by its form:
//! a `value`, a list of `values`, an integer range or a float range, plain or logarithmic) and
//! `seeds`, each read and checked by the [`Loader`].

use std::collections::{HashMap, HashSet};

use serde_json::Value as Json;

use super::loader::{Loader, Preset, Presets};
use crate::diag::Pos;
use crate::keys::{DISTRIBUTIONS, PARAMETER_KEYS, PRESET_AXIS, keys, takes_fractions};
use crate::sections::unknown_message;
use crate::sweep::{Axis, AxisKind, Choice, MAX_GRID_POINTS};
use crate::yaml::{Key, Node, Value, join, unique_entries};

impl Loader<'_> {
    /// `presets`: named settings for a `preset` axis.
    pub(super) fn presets(&mut self, node: Option<&Node>) -> Presets {
        let mut out = Presets::new();
        let Some(node) = node else {
            return out;
        };
        let Some(entries) = self.map(node, "presets") else {
            return out;
        };
        for (key, value) in unique_entries(entries) {
            let path = format!("presets.{}", key.name);
            let mut settings = Vec::new();
            if value.is_null() {
                self.sink.push(
                    value.pos,
                    &path,
                    "empty preset",
                    Some("give it settings, e.g. `{gate.threshold: 1.2}`".into()),
                );
            } else {
                self.settings(value, "", &path, &mut settings);
            }
            out.insert(key.name.clone(), Preset { settings });
        }
        out
    }

    /// `baseline`: settings like a preset's, for one reference job per seed.
    pub(super) fn baseline(&mut self, node: Option<&Node>) -> Option<Choice> {
        let node = node?;
        if node.is_null() {
            return self.reject(
                node.pos,
                "baseline",
                "empty baseline",
                Some("give it settings, e.g. `{model.kind: resnet}`".into()),
            );
        }
        let mut settings = Vec::new();
        self.settings(node, "", "baseline", &mut settings);
        if settings.is_empty() {
            return None;
        }
        let settings = settings.into_iter().map(|s| (s.key, s.value)).collect();
        Some(self.choice(Json::Bool(true), settings))
    }

    /// `parameters` → axes (with the position of their key).
    pub(super) fn parameters(
        &mut self,
        node: Option<&Node>,
        presets: &Presets,
    ) -> Vec<(Axis, Pos)> {
        let mut axes = Vec::new();
        let Some(node) = node else {
            return axes;
        };
        if node.is_null() {
            return axes;
        }
        let Some(entries) = self.map(node, "parameters") else {
            return axes;
        };
        let schema = keys();
        for (key, spec) in unique_entries(entries) {
            let path = format!("parameters.{}", key.name);
            if key.name == PRESET_AXIS {
                if let Some(axis) = self.preset_axis(&path, spec, presets) {
                    axes.push((axis, key.pos));
                }
            } else if schema.is_leaf(&key.name) {
                if let Some(axis) = self.axis(&key.name, &path, spec) {
                    axes.push((axis, key.pos));
                }
            } else if schema.is_parent(&key.name) {
                self.sink.push(
                    key.pos,
                    &path,
                    "names a section, not a setting",
                    Some(format!(
                        "parameters take dotted keys, e.g. `{}.<setting>`",
                        key.name
                    )),
                );
            } else {
                self.sink.push(
                    key.pos,
                    &path,
                    unknown_message(&key.name),
                    schema.suggest(&key.name, &[PRESET_AXIS]),
                );
            }
        }
        // A preset that sets a key which is also an axis would be silently overridden.
        if axes.iter().any(|(a, _)| a.key == PRESET_AXIS) {
            let axis_keys: HashSet<&str> = axes.iter().map(|(a, _)| a.key.as_str()).collect();
            let used: HashSet<String> = axes
                .iter()
                .filter(|(a, _)| a.key == PRESET_AXIS)
                .flat_map(|(a, _)| match &a.kind {
                    AxisKind::Values(v) => v
                        .iter()
                        .filter_map(|c| c.shown.as_str().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                })
                .collect();
            for (name, preset) in presets {
                if !used.contains(name) {
                    continue;
                }
                for s in &preset.settings {
                    if axis_keys.contains(s.key.as_str()) {
                        self.sink.push(
                            s.pos,
                            &format!("presets.{name}.{}", s.key),
                            "also an axis in `parameters`; the two would fight",
                            Some("set it in the presets or as an axis, not both".into()),
                        );
                    }
                }
            }
        }
        axes
    }

    /// The entries of one parameter spec, unknown keys reported.
    pub(super) fn spec_entries<'n>(
        &mut self,
        path: &str,
        spec: &'n Node,
    ) -> Option<HashMap<&'n str, (&'n Key, &'n Node)>> {
        let Some(entries) = spec.as_map() else {
            let hint = match spec.value {
                Value::Seq(_) => "write `{values: [...]}`",
                _ => "write `{value: ...}`, `{values: [...]}` or `{min: ..., max: ...}`",
            };
            return self.reject(
                spec.pos,
                path,
                format!("wrong type: expected a mapping, found {}", spec.kind_name()),
                Some(hint.into()),
            );
        };
        let mut out = HashMap::new();
        let mut unknown = false;
        for (key, value) in unique_entries(entries) {
            if PARAMETER_KEYS.contains(&key.name.as_str()) {
                out.insert(key.name.as_str(), (key, value));
            } else {
                let known: Vec<String> = PARAMETER_KEYS.iter().map(|s| s.to_string()).collect();
                let hint = match key.name.as_str() {
                    "q" | "mu" | "sigma" | "probabilities" | "parameters" => Some(format!(
                        "`{}` is not supported; use `values` or `min`/`max`",
                        key.name
                    )),
                    other => {
                        cg_core::closest(other, &known).map(|k| format!("did you mean `{k}`?"))
                    }
                };
                self.sink
                    .push(key.pos, &join(path, &key.name), "unknown key", hint);
                unknown = true;
            }
        }
        // With a misspelt key the rest of the spec would only draw follow-on complaints.
        (!unknown).then_some(out)
    }

    /// The `preset` axis: presets named in `values` (or one `value`), each defined and listed once.
    pub(super) fn preset_axis(
        &mut self,
        path: &str,
        spec: &Node,
        presets: &Presets,
    ) -> Option<Axis> {
        let entries = self.spec_entries(path, spec)?;
        let mut names: Vec<&Node> = Vec::new();
        let mut fixed = false;
        if let Some((_, node)) = entries.get("values") {
            names.extend(self.list(node, &format!("{path}.values"), "[aggressive, balanced]")?);
        } else if let Some((_, node)) = entries.get("value") {
            names.push(node);
            fixed = true;
        } else {
            self.sink
                .push(spec.pos, path, "needs `values: [...]` naming presets", None);
            return None;
        }
        for k in ["min", "max", "distribution", "grid_points"] {
            if let Some((key, _)) = entries.get(k) {
                self.sink.error(
                    key.pos,
                    &join(path, k),
                    "a preset axis takes only `values` (or `value`)",
                );
            }
        }
        let known: Vec<String> = presets.keys().cloned().collect();
        let mut choices = Vec::new();
        let mut seen = HashSet::new();
        for (i, node) in names.into_iter().enumerate() {
            let shown = if fixed {
                format!("{path}.value")
            } else {
                format!("{path}.values[{i}]")
            };
            let Some(name) = self.string(node, &shown) else {
                continue;
            };
            let Some(preset) = presets.get(&name) else {
                let hint = match cg_core::closest(&name, &known) {
                    Some(k) => Some(format!("did you mean `{k}`?")),
                    None if known.is_empty() => Some("define it under `presets:`".into()),
                    None => Some(format!("defined presets: {}", known.join(", "))),
                };
                self.sink
                    .push(node.pos, &shown, format!("unknown preset `{name}`"), hint);
                continue;
            };
            if !seen.insert(name.clone()) {
                self.sink
                    .error(node.pos, &shown, format!("preset `{name}` is listed twice"));
                continue;
            }
            let settings = preset
                .settings
                .iter()
                .map(|s| (s.key.clone(), s.value.clone()))
                .collect();
            choices.push(self.choice(Json::String(name), settings));
        }
        if choices.is_empty() {
            return None;
        }
        Some(self.new_axis(PRESET_AXIS, fixed, AxisKind::Values(choices)))
    }

    /// One `parameters` entry for a run-file leaf, read by its form: `value`, `values`, or a
    /// `min`/`max` range (integer, or float drawn uniformly or log-uniformly).
    pub(super) fn axis(&mut self, run_key: &str, path: &str, spec: &Node) -> Option<Axis> {
        let entries = self.spec_entries(path, spec)?;
        let distribution = self.distribution(path, &entries)?;
        if !self.one_form(path, spec, &entries) {
            return None;
        }
        let dist = distribution.as_ref().map(|(d, _)| d.as_str());
        let range_keys = ["distribution", "grid_points"];
        if let Some((_, node)) = entries.get("value") {
            self.only_with_range(path, &entries, &range_keys, dist, "constant");
            return self.value_axis(run_key, path, node);
        }
        if let Some((_, node)) = entries.get("values") {
            self.only_with_range(path, &entries, &range_keys, dist, "categorical");
            return self.values_axis(run_key, path, node);
        }
        self.range_axis(run_key, path, spec, &entries, distribution)
    }

    /// The `distribution` of a spec with its position: `Some(None)` when absent, `None` when it is
    /// not one cg knows (reported).
    fn distribution(&mut self, path: &str, entries: &Spec<'_>) -> Option<Option<(String, Pos)>> {
        let Some((_, node)) = entries.get("distribution") else {
            return Some(None);
        };
        let d = self.string(node, &format!("{path}.distribution"))?;
        if !DISTRIBUTIONS.contains(&d.as_str()) {
            return self.reject(
                node.pos,
                &format!("{path}.distribution"),
                format!("unknown distribution `{d}`"),
                distribution_hint(&d),
            );
        }
        Some(Some((d, node.pos)))
    }

    /// Whether a spec gives its values in exactly one form; reported otherwise.
    fn one_form(&mut self, path: &str, spec: &Node, entries: &Spec<'_>) -> bool {
        let forms = ["value", "values", "min"]
            .iter()
            .filter(|k| entries.contains_key(*k))
            .count()
            + usize::from(!entries.contains_key("min") && entries.contains_key("max"));
        if forms != 1 {
            self.sink.push(
                spec.pos,
                path,
                if forms == 0 {
                    "gives no values"
                } else {
                    "mixes `value`, `values` and `min`/`max`"
                },
                Some("write one of `{value: x}`, `{values: [x, y]}`, `{min: a, max: b}`".into()),
            );
        }
        forms == 1
    }

    /// `{value: x}`: set in every job, not an axis of the sweep (W&B's `constant`).
    fn value_axis(&mut self, run_key: &str, path: &str, node: &Node) -> Option<Axis> {
        let json = self.leaf(run_key, &format!("{path}.value"), node)?;
        let choice = self.single(run_key, json);
        Some(self.new_axis(run_key, true, AxisKind::Values(vec![choice])))
    }

    /// `{values: [x, y]}`: one of the listed values (W&B's `categorical`), none twice.
    fn values_axis(&mut self, run_key: &str, path: &str, node: &Node) -> Option<Axis> {
        let items = self.list(node, &format!("{path}.values"), "[0.5, 1.0]")?;
        if items.is_empty() {
            return self.reject(
                node.pos,
                &format!("{path}.values"),
                "empty list: the sweep would have no jobs",
                None,
            );
        }
        let mut choices: Vec<Choice> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let shown = format!("{path}.values[{i}]");
            let Some(json) = self.leaf(run_key, &shown, item) else {
                continue;
            };
            if choices.iter().any(|c| same_value(&c.shown, &json)) {
                self.sink.push(
                    item.pos,
                    &shown,
                    format!("{json} is listed twice"),
                    Some("jobs would repeat".into()),
                );
                continue;
            }
            choices.push(self.single(run_key, json));
        }
        Some(self.new_axis(run_key, false, AxisKind::Values(choices)))
    }

    /// `{min: a, max: b}`: an integer range or a float one, by its distribution.
    fn range_axis(
        &mut self,
        run_key: &str,
        path: &str,
        spec: &Node,
        entries: &Spec<'_>,
        distribution: Option<(String, Pos)>,
    ) -> Option<Axis> {
        let mut range = self.range(run_key, path, spec, entries, distribution)?;
        range.grid_points = self.grid_points(path, entries)?;
        if range.dist == "int_uniform" {
            return self.int_range_axis(run_key, path, &range);
        }
        self.float_range_axis(run_key, path, &range)
    }

    /// The bounds of a range and the distribution they are drawn from, checked against the key.
    fn range<'n>(
        &mut self,
        run_key: &str,
        path: &str,
        spec: &Node,
        entries: &Spec<'n>,
        distribution: Option<(String, Pos)>,
    ) -> Option<Range<'n>> {
        let (Some((_, min_node)), Some((_, max_node))) = (entries.get("min"), entries.get("max"))
        else {
            let (key, _) = entries
                .get("min")
                .or(entries.get("max"))
                .expect("one of min/max is present");
            return self.reject(key.pos, path, "a range needs both `min` and `max`", None);
        };
        let fractions = takes_fractions(run_key);
        let both_int = is_int(min_node) && is_int(max_node);
        let dist = self.range_distribution(path, distribution, both_int && !fractions)?;
        let (min, max) = self.bounds(run_key, path, min_node, max_node)?;
        if dist != "int_uniform" && !fractions {
            return self.reject(
                spec.pos,
                path,
                format!("`{dist}` gives fractional values but `{run_key}` takes whole numbers"),
                Some("use `distribution: int_uniform` or `values`".into()),
            );
        }
        if dist == "log_uniform_values" && min <= 0.0 {
            return self.reject(
                min_node.pos,
                &format!("{path}.min"),
                format!("log_uniform_values needs min > 0, got {min}"),
                None,
            );
        }
        Some(Range {
            min,
            max,
            dist,
            both_int,
            min_node,
            max_node,
            spec_pos: spec.pos,
            grid_points: None,
        })
    }

    /// The distribution of a range: the one given (not `categorical` or `constant`, which go
    /// with `values`), else `int_uniform` for whole bounds of a whole-number key, else `uniform`.
    fn range_distribution(
        &mut self,
        path: &str,
        distribution: Option<(String, Pos)>,
        whole: bool,
    ) -> Option<String> {
        let dist = match &distribution {
            Some((d, _)) => d.clone(),
            None if whole => "int_uniform".into(),
            None => "uniform".into(),
        };
        if matches!(dist.as_str(), "categorical" | "constant") {
            let (_, pos) = distribution.expect("given");
            return self.reject(
                pos,
                &format!("{path}.distribution"),
                format!("`{dist}` goes with `values`/`value`, not `min`/`max`"),
                None,
            );
        }
        Some(dist)
    }

    /// `min` and `max` as numbers, each a valid value of the key, in order.
    fn bounds(
        &mut self,
        run_key: &str,
        path: &str,
        min_node: &Node,
        max_node: &Node,
    ) -> Option<(f64, f64)> {
        let min = self.number(min_node, &format!("{path}.min"));
        let max = self.number(max_node, &format!("{path}.max"));
        let (min, max) = (min?, max?);
        let min_ok = self
            .leaf(run_key, &format!("{path}.min"), min_node)
            .is_some();
        let max_ok = self
            .leaf(run_key, &format!("{path}.max"), max_node)
            .is_some();
        if !(min_ok && max_ok) {
            return None;
        }
        if min > max {
            return self.reject(
                min_node.pos,
                &format!("{path}.min"),
                format!("min ({min}) is greater than max ({max})"),
                Some("swap them".into()),
            );
        }
        Some((min, max))
    }

    /// `grid_points` of a range: `Some(None)` when absent, `None` when out of bounds (reported).
    fn grid_points(&mut self, path: &str, entries: &Spec<'_>) -> Option<Option<usize>> {
        let Some((_, node)) = entries.get("grid_points") else {
            return Some(None);
        };
        match self.uint(node, &format!("{path}.grid_points"))? {
            n if n > MAX_GRID_POINTS => {
                self.sink.push(
                    node.pos,
                    &format!("{path}.grid_points"),
                    format!("must be at most {MAX_GRID_POINTS}, got {n}"),
                    None,
                );
                None
            }
            n if n >= 2 => Some(Some(n as usize)),
            n => {
                self.sink.push(
                    node.pos,
                    &format!("{path}.grid_points"),
                    format!("must be at least 2, got {n}"),
                    Some("for one value write `value:`".into()),
                );
                None
            }
        }
    }

    /// `int_uniform`: every integer from `min` to `max` (a search draws one), or `grid_points`
    /// of them in a grid.
    fn int_range_axis(&mut self, run_key: &str, path: &str, range: &Range<'_>) -> Option<Axis> {
        if !range.both_int {
            let node = if is_int(range.min_node) {
                range.max_node
            } else {
                range.min_node
            };
            return self.reject(
                node.pos,
                path,
                "int_uniform needs whole-number bounds",
                None,
            );
        }
        let (Some(lo), Some(hi)) = (int_of(range.min_node), int_of(range.max_node)) else {
            return self.reject(
                range.spec_pos,
                path,
                "bounds out of range for int_uniform",
                None,
            );
        };
        let kind = match range.grid_points {
            Some(n) if self.grid => AxisKind::Values(
                int_grid(lo, hi, n)
                    .into_iter()
                    .map(|v| self.single(run_key, Json::from(v)))
                    .collect(),
            ),
            _ => AxisKind::IntRange { min: lo, max: hi },
        };
        Some(self.new_axis(run_key, false, kind))
    }

    /// `uniform` or `log_uniform_values`: drawn from the range by a search, `grid_points` values
    /// (spaced evenly or geometrically) in a grid.
    fn float_range_axis(&mut self, run_key: &str, path: &str, range: &Range<'_>) -> Option<Axis> {
        let (min, max) = (range.min, range.max);
        let log = range.dist == "log_uniform_values";
        if !self.grid {
            let kind = if log {
                AxisKind::LogUniform { min, max }
            } else {
                AxisKind::Uniform { min, max }
            };
            return Some(self.new_axis(run_key, false, kind));
        }
        let Some(n) = range.grid_points else {
            return self.reject(
                range.spec_pos,
                path,
                format!("a grid cannot enumerate the continuous range {min}..{max}"),
                Some("add `grid_points: N`, list `values`, or use `method: random`".into()),
            );
        };
        let choices = float_grid(min, max, n, log)
            .into_iter()
            .map(|v| self.single(run_key, Json::from(v)))
            .collect();
        Some(self.new_axis(run_key, false, AxisKind::Values(choices)))
    }

    /// Reports `distribution`/`grid_points` on a `value`/`values` parameter (W&B's `categorical` and
    /// `constant` are accepted where they fit).
    pub(super) fn only_with_range(
        &mut self,
        path: &str,
        entries: &HashMap<&str, (&Key, &Node)>,
        range_keys: &[&str],
        dist: Option<&str>,
        fitting: &str,
    ) {
        for k in range_keys {
            if let Some((key, _)) = entries.get(k) {
                if *k == "distribution" && dist == Some(fitting) {
                    continue;
                }
                self.sink.push(
                    key.pos,
                    &join(path, k),
                    "only applies to `min`/`max` ranges",
                    None,
                );
            }
        }
    }

    /// `seeds`: training seeds, each once; every point is trained with each.
    pub(super) fn seeds(&mut self, node: Option<&Node>, axes: &[(Axis, Pos)]) -> Vec<u64> {
        let Some(node) = node else {
            return Vec::new();
        };
        let Some(items) = self.list(node, "seeds", "[0, 1, 2]") else {
            return Vec::new();
        };
        if items.is_empty() {
            self.sink.push(
                node.pos,
                "seeds",
                "empty list: the sweep would have no jobs",
                Some("leave `seeds` out to use `train.seed`".into()),
            );
        }
        if let Some((_, pos)) = axes.iter().find(|(a, _)| a.key == "train.seed") {
            self.sink.push(
                *pos,
                "parameters.train.seed",
                "conflicts with `seeds`",
                Some("use one of them".into()),
            );
        }
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let key = format!("seeds[{i}]");
            if let Some(seed) = self.uint(item, &key) {
                if out.contains(&seed) {
                    self.sink.push(
                        item.pos,
                        &key,
                        format!("seed {seed} is listed twice"),
                        Some("jobs would repeat".into()),
                    );
                } else {
                    out.push(seed);
                }
            }
        }
        out
    }
}

/// The entries of one parameter spec, by key.
type Spec<'n> = HashMap<&'n str, (&'n Key, &'n Node)>;

/// The checked bounds of a `min`/`max` parameter and its distribution.
struct Range<'n> {
    min: f64,
    max: f64,
    dist: String,
    both_int: bool,
    min_node: &'n Node,
    max_node: &'n Node,
    /// The position of the whole spec.
    spec_pos: Pos,
    /// `grid_points`, when given.
    grid_points: Option<usize>,
}

/// A hint for a distribution cg does not know.
fn distribution_hint(d: &str) -> Option<String> {
    match d {
        "log_uniform" => Some("cg takes the bounds themselves: use `log_uniform_values`".into()),
        "q_uniform"
        | "q_log_uniform"
        | "q_log_uniform_values"
        | "normal"
        | "log_normal"
        | "q_normal" => Some(format!("one of {}", DISTRIBUTIONS[..3].join(", "))),
        other => {
            let known: Vec<String> = DISTRIBUTIONS.iter().map(|s| s.to_string()).collect();
            cg_core::closest(other, &known).map(|k| format!("did you mean `{k}`?"))
        }
    }
}

fn is_int(node: &Node) -> bool {
    matches!(node.value, Value::Int(_) | Value::UInt(_))
}

fn int_of(node: &Node) -> Option<i64> {
    match node.value {
        Value::Int(i) => Some(i),
        Value::UInt(u) => i64::try_from(u).ok(),
        _ => None,
    }
}

/// Two axis values that give the same setting (`1` and `1.0` for a number).
fn same_value(a: &Json, b: &Json) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// `n` evenly spaced values from `min` to `max` (geometrically when `log`), ends exact, rounded to 12
/// significant digits so that 0.1 + 0.2 shows as 0.3.
pub(crate) fn float_grid(min: f64, max: f64, n: usize, log: bool) -> Vec<f64> {
    let mut out: Vec<f64> = (0..n)
        .map(|i| {
            if i == 0 {
                return min;
            }
            if i + 1 == n {
                return max;
            }
            let t = i as f64 / (n - 1) as f64;
            let v = if log {
                (min.ln() + (max.ln() - min.ln()) * t).exp()
            } else {
                min + (max - min) * t
            };
            round_sig(v, 12)
        })
        .collect();
    out.dedup();
    out
}

fn round_sig(v: f64, digits: usize) -> f64 {
    format!("{v:.*e}", digits - 1).parse().unwrap_or(v)
}

/// `n` evenly spaced integers from `min` to `max`, rounded, without repeats.
pub(crate) fn int_grid(min: i64, max: i64, n: usize) -> Vec<i64> {
    let mut out: Vec<i64> = (0..n)
        .map(|i| {
            let t = i as f64 / (n - 1) as f64;
            (min as f64 + (max as f64 - min as f64) * t).round() as i64
        })
        .collect();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids() {
        assert_eq!(float_grid(0.0, 1.0, 3, false), [0.0, 0.5, 1.0]);
        assert_eq!(float_grid(0.1, 0.3, 3, false), [0.1, 0.2, 0.3]);
        assert_eq!(float_grid(0.01, 1.0, 3, true), [0.01, 0.1, 1.0]);
        assert_eq!(int_grid(1, 10, 4), [1, 4, 7, 10]);
        assert_eq!(int_grid(1, 2, 5), [1, 2]);
    }
}
