//! What cg-sweep knows of the keys of its files: the top-level vocabulary of run and sweep files
//! (sections, sweep keys, parameter keys, distributions, metrics), and the run-file schema, derived
//! from cg-core at run time (never copied): which dotted keys exist, which are leaves, what type a
//! leaf takes, and how to check one value for one key. Messages from serde are reworded here for
//! people who write YAML, not Rust.

use std::collections::HashSet;
use std::sync::OnceLock;

use cg_core::{DatasetKind, DatasetSpec, RunConfig, closest, known_keys};
use serde_json::Value as Json;

/// The top-level sections of a run file.
pub const RUN_SECTIONS: [&str; 5] = ["dataset", "model", "gate", "loss", "train"];

/// The top-level keys a sweep file has besides the run sections.
pub const SWEEP_KEYS: [&str; 14] = [
    "name",
    "description",
    "method",
    "n_samples",
    "seed",
    "fidelity",
    "sampler",
    "parameters",
    "presets",
    "baseline",
    "seeds",
    "objectives",
    "reference_point",
    "controls",
];

/// The keys of one entry of `parameters`.
pub const PARAMETER_KEYS: [&str; 6] = [
    "value",
    "values",
    "min",
    "max",
    "distribution",
    "grid_points",
];

/// The distributions of a `min`/`max` parameter (W&B's names), and the two that W&B writes for
/// `values` and `value`.
pub const DISTRIBUTIONS: [&str; 5] = [
    "uniform",
    "int_uniform",
    "log_uniform_values",
    "categorical",
    "constant",
];

/// The metrics of cg-core's `RunResult` that an objective can name (numeric top-level fields).
pub use cg_core::METRICS;

/// The axis name that picks a preset.
pub const PRESET_AXIS: &str = "preset";

/// The run-file schema as seen through cg-core's `known_keys()`.
#[derive(Debug)]
pub(crate) struct Keys {
    pub all: Vec<String>,
    leaves: HashSet<String>,
    parents: HashSet<String>,
}

pub(crate) fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let all = known_keys();
        let parents: HashSet<String> = all
            .iter()
            .filter(|k| {
                all.iter()
                    .any(|other| other.len() > k.len() && other.starts_with(&format!("{k}.")))
            })
            .cloned()
            .collect();
        let leaves = all
            .iter()
            .filter(|k| !parents.contains(*k))
            .cloned()
            .collect();
        Keys {
            all,
            leaves,
            parents,
        }
    })
}

impl Keys {
    pub fn is_leaf(&self, key: &str) -> bool {
        self.leaves.contains(key)
    }

    pub fn is_parent(&self, key: &str) -> bool {
        self.parents.contains(key)
    }

    /// Iterates the leaf keys in schema order.
    pub fn leaves(&self) -> impl Iterator<Item = &str> {
        self.all
            .iter()
            .filter(|k| self.leaves.contains(*k))
            .map(String::as_str)
    }

    /// "did you mean `gate.threshold`?" for a key that does not exist, when a likely one does.
    pub fn suggest(&self, key: &str, extra: &[&str]) -> Option<String> {
        let mut candidates = self.all.clone();
        candidates.extend(extra.iter().map(|s| s.to_string()));
        if let Some(k) = closest(key, &candidates) {
            return Some(format!("did you mean `{k}`?"));
        }
        // The right name in the wrong section: `gate.flops_weight` → `loss.flops_weight`.
        let last = key.rsplit('.').next().unwrap_or(key);
        let moved: Vec<&String> = self
            .all
            .iter()
            .filter(|k| k.rsplit('.').next() == Some(last))
            .collect();
        if let [only] = moved.as_slice() {
            return Some(format!("did you mean `{only}`?"));
        }
        None
    }
}

/// A configuration that accepts any single value that fits the schema; used to check values one by one.
pub(crate) fn probe_config() -> RunConfig {
    RunConfig::with_dataset(DatasetSpec {
        kind: DatasetKind::Synthetic,
        val_size: None,
        path: None,
        augment: None,
        synthetic: None,
    })
}

/// Why `value` does not fit `key` (type or enum variant), reworded; `None` when it fits. The second
/// element is a hint (closest enum variant).
pub(crate) fn type_problem(
    base: &RunConfig,
    key: &str,
    value: &Json,
) -> Option<(String, Option<String>)> {
    let mut cfg = base.clone();
    match cfg.set(key, value.clone()) {
        Ok(()) => None,
        Err(cg_core::Error::InvalidValue { message, .. }) => Some(reword(&message, value)),
        Err(other) => Some((other.to_string(), None)),
    }
}

/// Whether a leaf accepts fractional numbers (f64) rather than whole numbers only.
pub(crate) fn takes_fractions(key: &str) -> bool {
    type_problem(&probe_config(), key, &Json::from(0.5)).is_none()
}

/// The values an enum-valued leaf accepts, found by asking serde with a value that cannot match.
pub(crate) fn enum_variants(key: &str) -> Option<Vec<String>> {
    let mut cfg = probe_config();
    let Err(cg_core::Error::InvalidValue { message, .. }) = cfg.set(key, Json::from("\u{1}"))
    else {
        return None;
    };
    let rest = message.strip_prefix("unknown variant ")?;
    let (_, list) = rest.split_once(", expected ")?;
    Some(variant_list(list))
}

/// `a`, `one of `a`, `b`, `c``, or `` `a` or `b` `` (serde's wording) → the names.
fn variant_list(list: &str) -> Vec<String> {
    let list = list.strip_prefix("one of ").unwrap_or(list);
    list.split(", ")
        .flat_map(|part| part.split(" or "))
        .map(|v| v.trim().trim_matches('`').to_string())
        .collect()
}

fn reword(message: &str, value: &Json) -> (String, Option<String>) {
    let message = message.split(" at line ").next().unwrap_or(message);
    if let Some(rest) = message.strip_prefix("unknown variant ")
        && let Some((_, list)) = rest.split_once(", expected ")
    {
        let options = variant_list(list);
        let list = options
            .iter()
            .map(|o| format!("`{o}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let hint = value
            .as_str()
            .and_then(|v| closest(v, &options))
            .map(|v| format!("did you mean `{v}`?"));
        return (
            format!("unknown value {value}, expected one of {list}"),
            hint,
        );
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((found, expected)) = rest.rsplit_once(", expected ")
        {
            let found = match found {
                "sequence" => "a list",
                "map" => "a mapping",
                "unit value" => "null",
                other => other,
            };
            return (
                format!(
                    "wrong type: expected {}, found {found}",
                    expected_name(expected)
                ),
                None,
            );
        }
    }
    (message.to_string(), None)
}

fn expected_name(rust: &str) -> &str {
    match rust {
        "f64" | "f32" => "a number",
        "usize" | "u64" | "u32" | "u16" | "u8" => "a whole number >= 0",
        "i64" | "i32" => "a whole number",
        "a boolean" => "true or false",
        "a string" => "a string",
        other if other.starts_with("struct ") => "a mapping",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_and_parents() {
        let k = keys();
        assert!(k.is_leaf("gate.threshold"));
        assert!(k.is_parent("gate"));
        assert!(k.is_parent("dataset.synthetic"));
        assert!(k.is_leaf("dataset.synthetic.n_train"));
        assert!(!k.is_leaf("gate"));
    }

    #[test]
    fn suggestions() {
        let k = keys();
        assert_eq!(
            k.suggest("gate.treshold", &[]).unwrap(),
            "did you mean `gate.threshold`?"
        );
        assert_eq!(
            k.suggest("gate.flops_weight", &[]).unwrap(),
            "did you mean `loss.flops_weight`?"
        );
        assert_eq!(k.suggest("zzz.qqq", &[]), None);
    }

    #[test]
    fn reworded_type_errors() {
        let base = probe_config();
        let (m, _) = type_problem(&base, "gate.threshold", &Json::from("high")).unwrap();
        assert_eq!(m, "wrong type: expected a number, found string \"high\"");
        let (m, _) = type_problem(&base, "train.epochs", &Json::from(-1)).unwrap();
        assert_eq!(
            m,
            "wrong type: expected a whole number >= 0, found integer `-1`"
        );
        let (m, hint) = type_problem(&base, "gate.mode", &Json::from("ctrll")).unwrap();
        assert!(
            m.starts_with("unknown value \"ctrll\", expected one of"),
            "{m}"
        );
        assert_eq!(hint.unwrap(), "did you mean `ctrl`?");
        assert!(type_problem(&base, "gate.threshold", &Json::from(1)).is_none());
    }

    #[test]
    fn kinds_of_leaves() {
        assert!(takes_fractions("gate.threshold"));
        assert!(!takes_fractions("train.epochs"));
        assert_eq!(
            enum_variants("model.kind").unwrap(),
            ["resnet", "cosinegate"]
        );
        assert_eq!(
            enum_variants("gate.mode").unwrap(),
            ["cir+ctrl", "cir", "ctrl"]
        );
        assert_eq!(enum_variants("gate.threshold"), None);
    }
}
