//! The run sections of a file (`dataset`, `model`, `gate`, `loss`, `train`) made into cg-core's
//! [`RunConfig`]: each key checked against the schema, the typed configuration built, the data path
//! resolved and checked, and cg-core's range problems mapped back to positions. Run files are only
//! this; sweep files use it for their base settings and their data-path values.

use std::path::{Component, Path, PathBuf};

use cg_core::{DatasetKind, RunConfig};
use serde_json::{Map, Value as Json};

use crate::diag::{Pos, Sink};
use crate::keys::{RUN_SECTIONS, keys, probe_config, type_problem};
use crate::source::{LoadOptions, Positions};
use crate::yaml::{Key, Node, join, unique_entries};

pub(crate) fn unknown_message(key: &str) -> String {
    match key {
        "program" | "command" | "cmd" | "script" | "run" | "exec" | "shell" => {
            "unknown key: cg runs no programs or commands; a job is a typed training configuration"
                .into()
        }
        _ => "unknown key".into(),
    }
}

/// A hint for an unknown top-level key: a near miss, or what W&B and Hydra users should write instead.
pub(crate) fn top_level_hint(key: &str, extra: &[&str]) -> Option<String> {
    match key {
        "metric" => {
            Some("write `objectives: [{metric: test_acc_final, direction: maximize}]`".into())
        }
        "defaults" | "hydra" => {
            Some("cg has no config groups; use `presets` and a `preset` axis".into())
        }
        "early_terminate" => Some("cg has no early termination; every job runs to the end".into()),
        _ => {
            let mut candidates: Vec<&str> = RUN_SECTIONS.to_vec();
            candidates.extend_from_slice(extra);
            let owned: Vec<String> = candidates.iter().map(|s| s.to_string()).collect();
            cg_core::closest(key, &owned).map(|k| format!("did you mean `{k}`?"))
        }
    }
}

/// The run sections of a top-level mapping as a JSON object; keys and values that do not fit the schema
/// are reported and left out (so the rest can still be checked).
pub(crate) fn run_sections(
    entries: &[(Key, Node)],
    sink: &mut Sink,
    positions: &mut Positions,
) -> Json {
    let mut out = Map::new();
    let probe = probe_config();
    for (key, node) in unique_entries(entries) {
        if RUN_SECTIONS.contains(&key.name.as_str()) {
            positions.record(&key.name, key.pos, node.pos);
            let mut section = Map::new();
            read_section(&key.name, node, &probe, &mut section, sink, positions);
            out.insert(key.name.clone(), Json::Object(section));
        }
    }
    Json::Object(out)
}

fn read_section(
    path: &str,
    node: &Node,
    probe: &RunConfig,
    out: &mut Map<String, Json>,
    sink: &mut Sink,
    positions: &mut Positions,
) {
    if node.is_null() {
        return;
    }
    let Some(entries) = node.as_map() else {
        sink.error(
            node.pos,
            path,
            format!("wrong type: expected a mapping, found {}", node.kind_name()),
        );
        return;
    };
    let schema = keys();
    for (key, value) in unique_entries(entries) {
        let child = join(path, &key.name);
        positions.record(&child, key.pos, value.pos);
        if schema.is_parent(&child) {
            let mut sub = Map::new();
            read_section(&child, value, probe, &mut sub, sink, positions);
            if !value.is_null() {
                out.insert(key.name.clone(), Json::Object(sub));
            }
        } else if schema.is_leaf(&child) {
            if let Some(json) = leaf_json(&child, value, probe, sink) {
                out.insert(key.name.clone(), json);
            }
        } else {
            sink.push(
                key.pos,
                &child,
                unknown_message(&key.name),
                schema.suggest(&child, &[]),
            );
        }
    }
}

/// A leaf value as JSON when it has the type its key needs; reported otherwise.
pub(crate) fn leaf_json(
    key: &str,
    value: &Node,
    base: &RunConfig,
    sink: &mut Sink,
) -> Option<Json> {
    let Some(json) = value.to_json() else {
        sink.error(value.pos, key, "not a finite number");
        return None;
    };
    match type_problem(base, key, &json) {
        None => Some(json),
        Some((message, hint)) => {
            sink.push(value.pos, key, message, hint);
            None
        }
    }
}

/// The typed configuration from the sections' JSON; the data path resolved and checked.
pub(crate) fn build_config(
    json: Json,
    base_dir: &Path,
    options: &LoadOptions,
    positions: &Positions,
    sink: &mut Sink,
) -> Option<RunConfig> {
    let dataset = json.get("dataset");
    if dataset.is_none() {
        sink.push(
            Pos::START,
            "dataset",
            "missing section",
            Some("e.g. `dataset: {kind: idx, path: ../data/sample}`".into()),
        );
        return None;
    }
    if dataset.and_then(|d| d.get("kind")).is_none() {
        if positions.key("dataset.kind").is_none() {
            sink.push(
                positions.of("dataset"),
                "dataset.kind",
                "missing",
                Some("one of idx, cifar-bin, image-folder, synthetic".into()),
            );
        }
        return None;
    }
    let mut config = match RunConfig::from_json(json) {
        Ok(c) => c,
        Err(e) => {
            sink.error(Pos::START, "", e.to_string());
            return None;
        }
    };
    resolve_data_path(
        &mut config,
        base_dir,
        options,
        positions.of("dataset.path"),
        "dataset.path",
        sink,
    );
    Some(config)
}

/// Makes a relative `dataset.path` absolute against `base_dir` and checks that it exists.
pub(crate) fn resolve_data_path(
    config: &mut RunConfig,
    base_dir: &Path,
    options: &LoadOptions,
    pos: Pos,
    key: &str,
    sink: &mut Sink,
) {
    let Some(path) = &config.dataset.path else {
        return;
    };
    let check_dir = !options.no_data_check && config.dataset.kind != DatasetKind::Synthetic;
    let stored = check_data_path(path, base_dir, check_dir, pos, key, sink);
    config.dataset.path = Some(stored);
}

/// A data path (`${VAR}` expanded) made absolute against `base_dir`, checked, and returned for
/// storing. Messages show the path as written, never a variable's value. An expansion that holds
/// a URL password (`${CG_DB}` by mistake or on purpose) is refused, and the path as written is
/// returned instead, so that the password reaches no message, database or report.
pub(crate) fn check_data_path(
    path: &str,
    base_dir: &Path,
    check_dir: bool,
    pos: Pos,
    key: &str,
    sink: &mut Sink,
) -> String {
    let written = sink.written(pos).map(str::to_string);
    if let Some(written) = written.as_deref()
        && cg_core::mask_credentials(path) != path
    {
        sink.push(
            pos,
            key,
            format!(
                "`{written}` expands to a URL with a password (not shown); a data path is a local folder"
            ),
            Some("set the variable to the data folder, or write the path itself".into()),
        );
        return written.to_string();
    }
    let resolved = resolve_path(base_dir, Path::new(path));
    // A `${VAR}` left in the path was reported as undefined already.
    if check_dir && !path.contains("${") && !resolved.is_dir() {
        let shown = match written {
            Some(w) => format!("{w}, with its variables expanded (their values are not shown)"),
            None => resolved.display().to_string(),
        };
        sink.push(
            pos,
            key,
            format!("data directory not found: {shown}"),
            Some(
                "check the path and any ${VAR} in it, or skip this check with --no-data-check"
                    .into(),
            ),
        );
    }
    resolved.to_string_lossy().into_owned()
}

/// `base_dir/path` made absolute, `.` and `..` removed lexically (symlinks are not resolved).
pub(crate) fn resolve_path(base_dir: &Path, path: &Path) -> PathBuf {
    let joined = base_dir.join(path);
    let absolute = std::path::absolute(&joined).unwrap_or(joined);
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else {
                    out.push(part);
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// cg-core's range problems, each at the position of its key in the file.
pub(crate) fn report_problems(config: &RunConfig, positions: &Positions, sink: &mut Sink) {
    for problem in config.problems() {
        sink.error(positions.of(&problem.key), &problem.key, problem.message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_against_the_file() {
        assert_eq!(
            resolve_path(Path::new("/a/b/experiments"), Path::new("../data/sample")),
            PathBuf::from("/a/b/data/sample")
        );
        assert_eq!(
            resolve_path(Path::new("/a"), Path::new("/abs/./x")),
            PathBuf::from("/abs/x")
        );
    }
}
