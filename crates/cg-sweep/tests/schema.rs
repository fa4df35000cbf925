//! The JSON Schema lists every run-file key and every sweep key.

use std::collections::BTreeSet;

use serde_json::Value;

/// Dotted paths of every property in a schema's nested `properties`.
fn property_paths(schema: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            out.insert(path.clone());
            property_paths(child, &path, out);
        }
    }
}

#[test]
fn schema_lists_every_key() {
    let schema = cg_sweep::json_schema();
    let mut paths = BTreeSet::new();
    property_paths(&schema, "", &mut paths);
    for key in cg_core::known_keys() {
        assert!(paths.contains(&key), "schema lacks `{key}`");
    }
    for key in cg_sweep::SWEEP_KEYS {
        assert!(paths.contains(key), "schema lacks sweep key `{key}`");
    }
    let axis_names: Vec<&str> = schema["properties"]["parameters"]["propertyNames"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(axis_names.contains(&"preset"));
    assert!(axis_names.contains(&"gate.threshold"));
    assert!(!axis_names.contains(&"gate"), "sections are not axes");
    let parameter: Vec<&String> = schema["$defs"]["parameter"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(parameter.len(), cg_sweep::PARAMETER_KEYS.len());
}

#[test]
fn schema_types_and_defaults_come_from_cg_core() {
    let schema = cg_sweep::json_schema();
    let gate = &schema["properties"]["gate"]["properties"];
    assert_eq!(gate["threshold"]["type"], "number");
    assert_eq!(gate["threshold"]["default"], 1.0);
    assert_eq!(
        gate["mode"]["enum"],
        serde_json::json!(["cir+ctrl", "cir", "ctrl"])
    );
    assert_eq!(gate["hard"]["type"], "boolean");
    let train = &schema["properties"]["train"]["properties"];
    assert_eq!(train["epochs"]["type"], "integer");
    assert_eq!(train["epochs"]["default"], 200);
    let dataset = &schema["properties"]["dataset"]["properties"];
    assert_eq!(
        dataset["kind"]["enum"],
        serde_json::json!(["idx", "cifar-bin", "image-folder", "synthetic"])
    );
    assert_eq!(
        dataset["synthetic"]["properties"]["n_train"]["type"],
        "integer"
    );
    assert_eq!(schema["required"], serde_json::json!(["dataset"]));
}

#[test]
fn schema_snapshot() {
    insta::assert_json_snapshot!(cg_sweep::json_schema());
}
