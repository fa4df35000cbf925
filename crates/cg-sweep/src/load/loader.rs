//! The loader's state and its readers of one value: a [`Loader`] carries the diagnostics sink, the
//! base configuration to check single values against and cg-core's defaults, and reads strings,
//! numbers, lists and mappings, run-file settings and single leaves, reporting each problem. The
//! other files of [`crate::load`] read the sweep keys with it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use cg_core::{DatasetSpec, RunConfig};
use serde_json::Value as Json;

use crate::diag::{Pos, Sink};
use crate::keys::{PRESET_AXIS, keys, probe_config, takes_fractions, type_problem};
use crate::sections::{check_data_path, unknown_message};
use crate::source::LoadOptions;
use crate::sweep::{Axis, AxisKind, Choice, lookup};
use crate::yaml::{Key, Node, Value, join, unique_entries};

/// The top-level entries of a sweep file that are sweep keys or run sections, by name.
pub(super) type Top<'n> = HashMap<&'n str, (&'n Key, &'n Node)>;

/// A preset: named settings, each with the position of its value.
#[derive(Debug)]
pub(super) struct Preset {
    pub(super) settings: Vec<Setting>,
}

#[derive(Debug)]
pub(super) struct Setting {
    pub(super) key: String,
    pub(super) value: Json,
    pub(super) pos: Pos,
}

pub(super) type Presets = BTreeMap<String, Preset>;

/// Checks the sweep keys; collects problems in `sink`.
pub(super) struct Loader<'a> {
    pub(super) sink: Sink,
    /// The base configuration (a probe when the base did not load), for checking values one by one.
    pub(super) base: RunConfig,
    pub(super) base_dir: &'a Path,
    pub(super) options: &'a LoadOptions,
    pub(super) grid: bool,
    /// cg-core's defaults for the base's data set kind, as JSON (what job ids are measured against).
    pub(super) defaults: Json,
}

impl<'a> Loader<'a> {
    /// A loader over the base configuration (a probe when the base did not load).
    pub(super) fn new(
        sink: Sink,
        base: Option<&RunConfig>,
        base_dir: &'a Path,
        options: &'a LoadOptions,
    ) -> Self {
        let base = base.cloned().unwrap_or_else(probe_config);
        let defaults = RunConfig::with_dataset(DatasetSpec {
            kind: base.dataset.kind,
            val_size: None,
            path: None,
            augment: None,
            synthetic: None,
        })
        .to_json();
        Loader {
            sink,
            base,
            base_dir,
            options,
            grid: true,
            defaults,
        }
    }

    pub(super) fn new_axis(&self, key: &str, fixed: bool, kind: AxisKind) -> Axis {
        Axis {
            key: key.into(),
            fixed,
            kind,
            default: lookup(&self.defaults, key).cloned().unwrap_or(Json::Null),
            fractions: key != PRESET_AXIS && keys().is_leaf(key) && takes_fractions(key),
        }
    }

    /// A choice with its values as cg-core serialises them (`1` for a float key becomes `1.0`) and its
    /// change to the non-default settings.
    pub(super) fn choice(&self, shown: Json, settings: Vec<(String, Json)>) -> Choice {
        let mut cfg = self.base.clone();
        for (key, value) in &settings {
            // Values were type-checked one by one; a failure here was reported already.
            let _ = cfg.set(key, value.clone());
        }
        let json = cfg.to_json();
        let settings: Vec<(String, Json)> = settings
            .into_iter()
            .map(|(key, _)| {
                let value = lookup(&json, &key).cloned().unwrap_or(Json::Null);
                (key, value)
            })
            .collect();
        let delta = settings
            .iter()
            .filter(|(key, _)| key != "dataset.path" && key != "dataset.kind")
            .map(|(key, value)| {
                let default = lookup(&self.defaults, key).unwrap_or(&Json::Null);
                (key.clone(), (value != default).then(|| value.clone()))
            })
            .collect();
        Choice {
            shown,
            settings,
            delta,
        }
    }

    /// Reports a problem that ends the reading of a value: `None`, whatever was being read.
    pub(super) fn reject<T>(
        &mut self,
        pos: Pos,
        key: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Option<T> {
        self.sink.push(pos, key, message, hint);
        None
    }

    /// A choice that sets one key to one value, shown as that value.
    pub(super) fn single(&self, run_key: &str, value: Json) -> Choice {
        self.choice(value.clone(), vec![(run_key.into(), value)])
    }

    pub(super) fn string(&mut self, node: &Node, key: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            _ => {
                self.sink.error(
                    node.pos,
                    key,
                    format!("wrong type: expected a string, found {}", node.kind_name()),
                );
                None
            }
        }
    }

    pub(super) fn uint(&mut self, node: &Node, key: &str) -> Option<u64> {
        match node.value {
            Value::Int(i) if i >= 0 => Some(i as u64),
            Value::UInt(u) => Some(u),
            _ => {
                self.sink.error(
                    node.pos,
                    key,
                    format!(
                        "wrong type: expected a whole number >= 0, found {}",
                        node.kind_name()
                    ),
                );
                None
            }
        }
    }

    pub(super) fn number(&mut self, node: &Node, key: &str) -> Option<f64> {
        match node.value {
            Value::Int(i) => Some(i as f64),
            Value::UInt(u) => Some(u as f64),
            Value::Float(f) if f.is_finite() => Some(f),
            _ => {
                self.sink.error(
                    node.pos,
                    key,
                    format!("wrong type: expected a number, found {}", node.kind_name()),
                );
                None
            }
        }
    }

    pub(super) fn list<'n>(
        &mut self,
        node: &'n Node,
        key: &str,
        example: &str,
    ) -> Option<&'n [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            _ => {
                self.sink.push(
                    node.pos,
                    key,
                    format!("wrong type: expected a list, found {}", node.kind_name()),
                    Some(format!("e.g. `{key}: {example}`")),
                );
                None
            }
        }
    }

    pub(super) fn map<'n>(&mut self, node: &'n Node, key: &str) -> Option<&'n [(Key, Node)]> {
        match node.as_map() {
            Some(m) => Some(m),
            None => {
                self.sink.error(
                    node.pos,
                    key,
                    format!("wrong type: expected a mapping, found {}", node.kind_name()),
                );
                None
            }
        }
    }

    /// Run-file settings under `node` (dotted keys or nested mappings) → flat (key, value) list.
    pub(super) fn settings(
        &mut self,
        node: &Node,
        prefix: &str,
        path: &str,
        out: &mut Vec<Setting>,
    ) {
        let Some(entries) = self.map(node, path) else {
            return;
        };
        let schema = keys();
        for (key, value) in unique_entries(entries) {
            let run_key = join(prefix, &key.name);
            let shown = join(path, &key.name);
            if schema.is_leaf(&run_key) {
                if let Some(json) = self.leaf(&run_key, &shown, value) {
                    out.push(Setting {
                        key: run_key,
                        value: json,
                        pos: value.pos,
                    });
                }
            } else if schema.is_parent(&run_key) {
                self.settings(value, &run_key, &shown, out);
            } else {
                self.sink.push(
                    key.pos,
                    &shown,
                    unknown_message(&key.name),
                    schema.suggest(&run_key, &[]),
                );
            }
        }
    }

    /// One value for a run-file leaf: type-checked, range-checked against the base, data path resolved.
    pub(super) fn leaf(&mut self, run_key: &str, shown: &str, node: &Node) -> Option<Json> {
        let Some(mut json) = node.to_json() else {
            return self.reject(node.pos, shown, "not a finite number", None);
        };
        if let Some((message, hint)) = type_problem(&self.base, run_key, &json) {
            return self.reject(node.pos, shown, message, hint);
        }
        if run_key == "dataset.path"
            && let Some(path) = json.as_str()
        {
            let stored = check_data_path(
                path,
                self.base_dir,
                !self.options.no_data_check,
                node.pos,
                shown,
                &mut self.sink,
            );
            json = Json::String(stored);
        }
        let mut cfg = self.base.clone();
        if cfg.set(run_key, json.clone()).is_ok() {
            for problem in cfg.problems() {
                if problem.key == run_key {
                    self.sink.error(node.pos, shown, problem.message);
                }
            }
        }
        Some(json)
    }
}
