//! A JSON Schema (draft 2020-12) of the sweep format, for editor completion and checks in YAML-aware
//! editors. The run-file part is derived from cg-core at run time (keys, types, defaults, enum values), so
//! it cannot drift from the schema that loading enforces; the sweep keys are written out here.

use serde_json::{Map, Value as Json, json};

use cg_core::RunConfig;

use crate::keys::{
    DISTRIBUTIONS, METRICS, PRESET_AXIS, RUN_SECTIONS, enum_variants, keys, probe_config,
    takes_fractions, type_problem,
};
use crate::sweep::{MAX_GRID_POINTS, MAX_JOBS};

/// The JSON Schema of a sweep file (a run file is a sweep file without the sweep keys).
pub fn json_schema() -> Json {
    let leaves: Vec<&str> = keys().leaves().collect();
    let mut axis_names: Vec<Json> = vec![Json::from(PRESET_AXIS)];
    axis_names.extend(leaves.iter().map(|k| Json::from(*k)));
    let mut properties = Map::new();
    let sections = section_schemas();
    let mut sections = sections;
    if let Some(dataset) = sections.get_mut("dataset").and_then(Json::as_object_mut) {
        dataset.insert("required".into(), json!(["kind"]));
    }
    for section in RUN_SECTIONS {
        properties.insert(
            section.into(),
            sections
                .get(section)
                .cloned()
                .unwrap_or(json!({"type": "object"})),
        );
    }
    let sweep_properties = json!({
        "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                 "description": "Sweep name; default: the file name without extension."},
        "description": {"type": "string"},
        "method": {"enum": ["grid", "random", "mo-asha"], "default": "grid",
                   "description": "grid: every combination; random: n_samples draws from seed; mo-asha: multi-objective successive halving on epochs (needs fidelity and reference_point)."},
        "n_samples": {"type": "integer", "minimum": 1, "maximum": MAX_JOBS, "description": "Random and mo-asha methods: number of configurations drawn."},
        "seed": {"type": "integer", "minimum": 0, "default": 0,
                 "description": "Random and mo-asha methods: seed of the draws (training seeds: `seeds`)."},
        "fidelity": {
            "type": "object", "additionalProperties": false,
            "required": ["min_epochs", "max_epochs", "eta"],
            "description": "mo-asha: rungs at min_epochs, min_epochs*eta, ... and last max_epochs (= train.epochs of every job); n_samples must be at least eta^(rungs - 1) for a configuration to reach max_epochs.",
            "properties": {
                "min_epochs": {"type": "integer", "minimum": 1},
                "max_epochs": {"type": "integer", "minimum": 1},
                "eta": {"type": "integer", "minimum": 2}
            }
        },
        "sampler": {"enum": ["random", "nsga2"], "default": "nsga2",
                    "description": "mo-asha: proposals; nsga2 varies the front after the first random draws."},
        "parameters": {
            "type": "object",
            "description": "Axes: a dotted run-file key (or `preset`) -> value / values / min+max.",
            "propertyNames": {"enum": axis_names},
            "additionalProperties": {"$ref": "#/$defs/parameter"}
        },
        "presets": {
            "type": "object",
            "description": "Named bundles of settings (dotted keys -> values), used as `parameters: {preset: {values: [...]}}`.",
            "additionalProperties": {"$ref": "#/$defs/settings"}
        },
        "baseline": {"$ref": "#/$defs/settings",
                     "description": "Settings (dotted keys -> values) of one reference job per seed beside the axes, e.g. {model.kind: resnet}; mo-asha trains it on the whole schedule outside its search."},
        "seeds": {"type": "array", "items": {"type": "integer", "minimum": 0}, "uniqueItems": true, "minItems": 1,
                  "description": "Repeat every point once per seed, with train.seed set."},
        "objectives": {
            "type": "array", "minItems": 1,
            "items": {
                "type": "object", "additionalProperties": false, "required": ["metric", "direction"],
                "properties": {"metric": {"enum": METRICS}, "direction": {"enum": ["maximize", "minimize"]}}
            },
            "description": "Pareto objectives; default: maximize test_acc_final and savings_nominal."
        },
        "reference_point": {"type": "array", "items": {"type": "number"},
                            "description": "Hypervolume reference, one value per objective; default zeros."},
        "controls": {"type": "array", "items": {"enum": ["static", "narrow"]}, "uniqueItems": true,
                     "description": "Matched-compute controls trained per seed beside each CosineGate configuration of the final front: static (a plain ResNet without the blocks it closes) and narrow (a plain ResNet of the width with the closest MACs)."}
    });
    properties.extend(
        sweep_properties
            .as_object()
            .expect("object literal")
            .clone(),
    );
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "cg sweep file",
        "description": "A run configuration (dataset, model, gate, loss, train) plus the sweep keys.",
        "type": "object",
        "additionalProperties": false,
        "required": ["dataset"],
        "properties": properties,
        "$defs": {
            "parameter": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "value": {"description": "One fixed value."},
                    "values": {"type": "array", "minItems": 1, "description": "The values of the axis."},
                    "min": {"type": "number"},
                    "max": {"type": "number"},
                    "distribution": {"enum": DISTRIBUTIONS},
                    "grid_points": {"type": "integer", "minimum": 2, "maximum": MAX_GRID_POINTS,
                                    "description": "Grid method: evenly spaced points of a min/max range."}
                }
            },
            "settings": {
                "type": "object",
                "description": "Run-file settings by dotted key.",
                "propertyNames": {"enum": leaves},
            }
        }
    })
}

/// One object schema per run section, nested like the run file.
fn section_schemas() -> Map<String, Json> {
    let full = RunConfig::fully_specified().to_json();
    let defaults = probe_config().to_json();
    let mut root = Map::new();
    for key in &keys().all {
        let parts: Vec<&str> = key.split('.').collect();
        let schema = if keys().is_parent(key) {
            json!({"type": "object", "additionalProperties": false, "properties": {}})
        } else {
            leaf_schema(key, lookup(&full, &parts), lookup(&defaults, &parts))
        };
        insert(&mut root, &parts, schema);
    }
    root
}

fn leaf_schema(key: &str, example: Option<&Json>, default: Option<&Json>) -> Json {
    let mut schema = match example {
        Some(Json::Bool(_)) => json!({"type": "boolean"}),
        Some(Json::Number(_)) if !takes_fractions(key) => json!({"type": "integer", "minimum": 0}),
        Some(Json::Number(_)) => json!({"type": "number"}),
        Some(Json::String(_)) => match enum_variants(key) {
            Some(variants) => json!({"enum": variants}),
            None => json!({"type": "string"}),
        },
        _ => json!({}),
    };
    if let Some(obj) = schema.as_object_mut() {
        if let Some((min, max)) = size_bounds(key) {
            obj.insert("minimum".into(), json!(min));
            obj.insert("maximum".into(), json!(max));
        }
        if key == "dataset.path" {
            obj.insert("description".into(), json!(DATA_PATH_DOC));
        }
    }
    // Optional settings also take null, meaning "not set".
    let nullable = type_problem(&probe_config(), key, &Json::Null).is_none();
    if nullable && let Some(Json::String(t)) = schema.get("type").cloned() {
        schema["type"] = json!([t, "null"]);
    }
    // The default: cg-core's, or for a field inside an optional object (`dataset.synthetic.n_train`)
    // the object's own default, which `full_config` holds.
    let default = default.or(if nullable { None } else { example });
    if let (Some(d), Some(obj)) = (default, schema.as_object_mut())
        && !d.is_null()
        && key != "dataset.kind"
    {
        obj.insert("default".into(), d.clone());
    }
    schema
}

/// What the schema says of `dataset.path`, the only place `${VAR}` is expanded.
const DATA_PATH_DOC: &str = "Directory of the data; a relative path resolves against the file's \
    directory. `${CG_VAR}` and `${HOME}` (also `${CG_VAR:-fallback}`) are expanded here and only \
    here, and only variables named CG_* or HOME; `${` anywhere else is an error.";

/// The bounds of the sizes that cg-core checks ([`cg_core::limits`]).
fn size_bounds(key: &str) -> Option<(u64, u64)> {
    use cg_core::limits as l;
    let (min, max) = match key {
        "model.depth" => (8, l::DEPTH),
        "model.width" => (1, l::WIDTH),
        "model.num_classes" => (2, l::CLASSES),
        "model.in_channels" => (1, l::CHANNELS),
        "gate.controller_hidden" => (1, l::CONTROLLER_HIDDEN),
        "train.epochs" => (1, l::EPOCHS),
        "train.batch_size" => (2, l::BATCH_SIZE),
        "train.limit_train" | "train.limit_test" => (2, l::SAMPLES),
        "dataset.synthetic.n_train" | "dataset.synthetic.n_test" => (1, l::SAMPLES),
        "dataset.synthetic.channels" => (1, l::CHANNELS),
        "dataset.synthetic.side" => (1, l::SIDE),
        "dataset.synthetic.classes" => (2, l::DATA_CLASSES),
        _ => return None,
    };
    Some((min, max as u64))
}

fn lookup<'a>(root: &'a Json, parts: &[&str]) -> Option<&'a Json> {
    parts.iter().try_fold(root, |node, p| node.get(p))
}

fn insert(root: &mut Map<String, Json>, parts: &[&str], schema: Json) {
    let (last, parents) = parts.split_last().expect("keys are not empty");
    let mut map = root;
    for p in parents {
        map = map
            .entry(p.to_string())
            .or_insert_with(
                || json!({"type": "object", "additionalProperties": false, "properties": {}}),
            )
            .as_object_mut()
            .and_then(|o| o.get_mut("properties"))
            .and_then(Json::as_object_mut)
            .expect("parents are object schemas");
    }
    match map.get_mut(*last) {
        // A parent seen before its children keeps its properties.
        Some(existing) if existing.get("properties").is_some() => {}
        _ => {
            map.insert(last.to_string(), schema);
        }
    }
}
