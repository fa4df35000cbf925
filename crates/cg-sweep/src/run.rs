//! Run files: the five sections `dataset`, `model`, `gate`, `loss`, `train` of cg-core's [`RunConfig`],
//! read from YAML (or JSON) with every problem reported at its line and column. The file comes in
//! through [`crate::source`] and its sections become a configuration in [`crate::sections`]; range
//! rules are cg-core's ([`RunConfig::problems`]).

use std::path::Path;

use cg_core::RunConfig;

use crate::diag::{Diagnostics, Sink};
use crate::keys::{RUN_SECTIONS, SWEEP_KEYS};
use crate::sections::{
    build_config, report_problems, run_sections, top_level_hint, unknown_message,
};
use crate::source::{LoadOptions, Positions, base_dir_of, read_file, read_tree, root_entries};
use crate::yaml::unique_entries;

/// Loads a run file with the default options (data check on, `${VAR}` from the environment).
pub fn load_run_file(path: &Path) -> Result<RunConfig, Diagnostics> {
    load_run_file_with(path, &LoadOptions::default())
}

/// Loads a run file.
pub fn load_run_file_with(path: &Path, options: &LoadOptions) -> Result<RunConfig, Diagnostics> {
    let origin = path.display().to_string();
    let bytes = read_file(path, &origin)?;
    let base_dir = base_dir_of(path);
    load_run_bytes(&bytes, &origin, &base_dir, options)
}

/// Loads run-file text; `origin_name` names it in diagnostics, `base_dir` anchors a relative data path.
pub fn load_run_str(
    text: &str,
    origin_name: &str,
    base_dir: &Path,
) -> Result<RunConfig, Diagnostics> {
    load_run_str_with(text, origin_name, base_dir, &LoadOptions::default())
}

/// [`load_run_str`] with options.
pub fn load_run_str_with(
    text: &str,
    origin_name: &str,
    base_dir: &Path,
    options: &LoadOptions,
) -> Result<RunConfig, Diagnostics> {
    load_run_bytes(text.as_bytes(), origin_name, base_dir, options)
}

fn load_run_bytes(
    bytes: &[u8],
    origin: &str,
    base_dir: &Path,
    options: &LoadOptions,
) -> Result<RunConfig, Diagnostics> {
    let mut sink = Sink::new(origin);
    let Some(root) = read_tree(bytes, options, &mut sink) else {
        return Err(sink.finish());
    };
    let Some(entries) = root_entries(&root, &mut sink) else {
        return Err(sink.finish());
    };
    let mut positions = Positions::default();
    for (key, _) in unique_entries(entries) {
        if !RUN_SECTIONS.contains(&key.name.as_str()) {
            let hint = if SWEEP_KEYS.contains(&key.name.as_str()) {
                Some("sweep keys belong in a sweep file; load this file as a sweep".to_string())
            } else {
                top_level_hint(&key.name, &[])
            };
            sink.push(key.pos, &key.name, unknown_message(&key.name), hint);
        }
    }
    let json = run_sections(entries, &mut sink, &mut positions);
    let config = build_config(json, base_dir, options, &positions, &mut sink);
    match config {
        Some(config) => {
            report_problems(&config, &positions, &mut sink);
            sink.result(config)
        }
        None => Err(sink.finish()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn load(text: &str) -> Result<RunConfig, Diagnostics> {
        load_run_str_with(
            text,
            "run.yaml",
            Path::new("/base"),
            &LoadOptions::no_data_check(),
        )
    }

    fn check(text: &str, expected: &str) {
        let got = match load(text) {
            Ok(c) => format!("ok {}", serde_json::Value::Object(c.non_default_values())),
            Err(d) => d.to_string(),
        };
        assert_eq!(got, expected.trim());
    }

    #[test]
    fn minimal_and_defaults() {
        check(
            "dataset: {kind: idx, path: data}\n",
            r#"ok {"dataset.path":"/base/data"}"#,
        );
        check(
            "dataset: {kind: synthetic}\ngate: {threshold: 0.8}\ntrain:\n  epochs: 3\n",
            r#"ok {"gate.threshold":0.8,"train.epochs":3}"#,
        );
        check(
            r#"{"dataset": {"kind": "idx", "path": "../d"}, "model": {"depth": 8}}"#,
            r#"ok {"dataset.path":"/d","model.depth":8}"#,
        );
    }

    #[test]
    fn every_problem_at_once() {
        check(
            "
dataset: {kind: synthetic}
gate:
  treshold: 0.5
  tau_end: 0
  p_threshold: 1.5
  mode: ctrll
train:
  epochs: many
  batch_size: 0
  flops_weight: 1
",
            "
run.yaml:4:3: gate.treshold: unknown key (did you mean `gate.threshold`?)
run.yaml:5:12: gate.tau_end: temperature must be > 0, got 0
run.yaml:6:16: gate.p_threshold: must lie strictly between 0 and 1, got 1.5
run.yaml:7:9: gate.mode: unknown value \"ctrll\", expected one of `cir+ctrl`, `cir`, `ctrl` (did you mean `ctrl`?)
run.yaml:9:11: train.epochs: wrong type: expected a whole number >= 0, found string \"many\"
run.yaml:10:15: train.batch_size: must be at least 2 (batch norm needs two images per batch), got 0
run.yaml:11:3: train.flops_weight: unknown key (did you mean `loss.flops_weight`?)
",
        );
    }

    #[test]
    fn missing_dataset_and_sweep_keys() {
        check(
            "gate: {threshold: 0.5}\nparameters: {}\n",
            "
run.yaml:1:1: dataset: missing section (e.g. `dataset: {kind: idx, path: ../data/sample}`)
run.yaml:2:1: parameters: unknown key (sweep keys belong in a sweep file; load this file as a sweep)
",
        );
        check(
            "dataset: {path: x}\n",
            "run.yaml:1:10: dataset.kind: missing (one of idx, cifar-bin, image-folder, synthetic)",
        );
        check(
            "dataset: {kind: idx}\n",
            "run.yaml:1:1: dataset.path: required for this dataset kind",
        );
        check(
            "dataset: {kind: synthetic}\ncommand: python train.py\n",
            "run.yaml:2:1: command: unknown key: cg runs no programs or commands; a job is a typed training configuration",
        );
    }

    #[test]
    fn env_and_data_check() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("mnist")).unwrap();
        let mut env = BTreeMap::new();
        env.insert("CG_DATA".to_string(), dir.path().display().to_string());
        let options = LoadOptions {
            no_data_check: false,
            env: Some(env),
        };
        let text = "dataset: {kind: idx, path: \"${CG_DATA}/mnist\"}\n";
        let cfg = load_run_str_with(text, "r.yaml", Path::new("/elsewhere"), &options).unwrap();
        assert_eq!(
            cfg.dataset.path.unwrap(),
            dir.path().join("mnist").display().to_string()
        );

        let text = "dataset: {kind: idx, path: \"${CG_DATA}/cifar\"}\n";
        let err = load_run_str_with(text, "r.yaml", Path::new("/x"), &options).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("r.yaml:1:28: dataset.path: data directory not found"),
            "{err}"
        );

        let text = "dataset: {kind: idx, path: \"${CG_NOT_SET_ANYWHERE}/x\"}\n";
        let err = load_run_str_with(text, "r.yaml", Path::new("/x"), &options).unwrap_err();
        assert!(
            err.to_string().contains(
                "r.yaml:1:28: dataset.path: environment variable `CG_NOT_SET_ANYWHERE` is not set"
            ),
            "{err}"
        );
    }

    /// Issue 18: a message shows a data path as written, never a variable's value, and an
    /// expansion holding a URL password is refused even without the data check (run and sweep
    /// files, base and parameter values).
    #[test]
    fn data_paths_are_shown_as_written_and_passwords_refused() {
        let mut env = BTreeMap::new();
        env.insert("CG_DATA".to_string(), "/no/such/private-dir".to_string());
        env.insert("CG_DB".to_string(), "postgres://cg:s3cret@h/db".to_string());
        let checked = LoadOptions {
            no_data_check: false,
            env: Some(env),
        };
        let unchecked = LoadOptions {
            no_data_check: true,
            ..checked.clone()
        };
        let text = "dataset: {kind: idx, path: \"${CG_DATA}/x\"}\n";
        let err = load_run_str_with(text, "r.yaml", Path::new("/b"), &checked)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("data directory not found: ${CG_DATA}/x, with its variables expanded"),
            "{err}"
        );
        assert!(!err.contains("private-dir"), "{err}");
        for options in [&checked, &unchecked] {
            let text = "dataset: {kind: synthetic, path: \"${CG_DB}/x\"}\n";
            let err = load_run_str_with(text, "r.yaml", Path::new("/b"), options)
                .unwrap_err()
                .to_string();
            assert_eq!(
                err,
                "r.yaml:1:34: dataset.path: `${CG_DB}/x` expands to a URL with a password (not \
                 shown); a data path is a local folder (set the variable to the data folder, or \
                 write the path itself)"
            );
            let sweep = "name: s\ndataset: {kind: synthetic}\nparameters:\n  dataset.path: \
                         {values: [\"${CG_DATA}\", \"${CG_DB}\"]}\n";
            let err = crate::load_sweep_str(sweep, "s.yaml", Path::new("/b"), options)
                .unwrap_err()
                .to_string();
            assert!(err.contains("`${CG_DB}` expands to a URL"), "{err}");
            assert!(
                !err.contains("s3cret") && !err.contains("private-dir"),
                "{err}"
            );
        }
    }
}
