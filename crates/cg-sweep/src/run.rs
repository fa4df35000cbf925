//! Run files: the five sections `dataset`, `model`, `gate`, `loss`, `train` of cg-core's [`RunConfig`],
//! read from YAML (or JSON) with every problem reported at its line and column. Sweep files reuse this
//! for their base settings. Range rules are cg-core's ([`RunConfig::problems`]); this module only maps
//! them back to positions, expands `${VAR}` and resolves the data path.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use cg_core::{DatasetKind, RunConfig};
use serde_json::{Map, Value as Json};

use crate::diag::{Diagnostics, Pos, Sink};
use crate::keys::{keys, probe_config, type_problem};
use crate::yaml::{self, Key, Node, join, unique_entries};

/// The top-level sections of a run file.
pub const RUN_SECTIONS: [&str; 5] = ["dataset", "model", "gate", "loss", "train"];

/// How files are loaded.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Skip the check that `dataset.path` exists (planning on a machine without the data, CI).
    pub no_data_check: bool,
    /// Variables for `${VAR}`; `None` reads the process environment.
    pub env: Option<BTreeMap<String, String>>,
}

impl LoadOptions {
    /// Options for checking a file's form only: no data check.
    pub fn no_data_check() -> Self {
        Self {
            no_data_check: true,
            env: None,
        }
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<String> {
        match &self.env {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
        }
    }
}

/// Loads a run file with the default options (data check on, `${VAR}` from the environment).
pub fn load_run_file(path: &Path) -> Result<RunConfig, Diagnostics> {
    load_run_file_with(path, &LoadOptions::default())
}

/// Loads a run file.
pub fn load_run_file_with(path: &Path, options: &LoadOptions) -> Result<RunConfig, Diagnostics> {
    let origin = path.display().to_string();
    let bytes = read_file(path, &origin)?;
    load_run_bytes(&bytes, &origin, &base_dir_of(path), options)
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
            let hint = if crate::sweep::SWEEP_KEYS.contains(&key.name.as_str()) {
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

/// Opens `path` to read without blocking (a FIFO would wait for a writer) and checks, on the open
/// handle, that it is a regular file (a link is followed): a device (a link to `/dev/zero`), a
/// FIFO or a directory is refused before a byte is read, with `InvalidInput`. Returns the file
/// and its length. cg's one way to open a file from outside that it reads under a cap.
pub fn open_regular(path: &Path) -> std::io::Result<(std::fs::File, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a device, pipe or directory?); cg reads only regular files",
        ));
    }
    Ok((file, meta.len()))
}

/// Reads a run or sweep file: a regular file ([`open_regular`]) of at most
/// [`MAX_FILE_BYTES`](crate::yaml::MAX_FILE_BYTES); the read stops past the cap.
pub(crate) fn read_file(path: &Path, origin: &str) -> Result<Vec<u8>, Diagnostics> {
    use std::io::Read;
    let max = crate::yaml::MAX_FILE_BYTES as u64;
    let refuse = |message: String| {
        let mut sink = Sink::new(origin);
        sink.error(Pos::default(), "", message);
        sink.finish()
    };
    let too_big = |n: u64| format!("file is {n} bytes; run and sweep files are limited to {max}");
    let (file, len) = open_regular(path).map_err(|e| refuse(format!("cannot read file: {e}")))?;
    if len > max {
        return Err(refuse(too_big(len)));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(format!("cannot read file: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(refuse(too_big(bytes.len() as u64)));
    }
    Ok(bytes)
}

pub(crate) fn base_dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Bytes → tree, with duplicate keys reported and `${VAR}` expanded.
pub(crate) fn read_tree(bytes: &[u8], options: &LoadOptions, sink: &mut Sink) -> Option<Node> {
    let mut root = yaml::parse(bytes, sink)?;
    yaml::check_duplicates(&root, "", sink);
    yaml::expand_env(&mut root, "", &|name| options.lookup(name), sink);
    Some(root)
}

pub(crate) fn root_entries<'a>(root: &'a Node, sink: &mut Sink) -> Option<&'a [(Key, Node)]> {
    match root.as_map() {
        Some(entries) => Some(entries),
        None => {
            sink.push(
                root.pos,
                "",
                format!(
                    "expected a mapping of sections at the top level, found {}",
                    root.kind_name()
                ),
                Some("start with `dataset:`".into()),
            );
            None
        }
    }
}

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

/// Where each dotted key of a file sits: its key and its value.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    keys: HashMap<String, Pos>,
    values: HashMap<String, Pos>,
}

impl Positions {
    pub fn record(&mut self, key: &str, key_pos: Pos, value_pos: Pos) {
        self.keys.entry(key.to_string()).or_insert(key_pos);
        self.values.entry(key.to_string()).or_insert(value_pos);
    }

    pub fn key(&self, key: &str) -> Option<Pos> {
        self.keys.get(key).copied()
    }

    /// The value at `key`, when the file sets it.
    pub fn value(&self, key: &str) -> Option<Pos> {
        self.values.get(key).copied()
    }

    /// The value at `key`, else the key of its nearest ancestor in the file, else the start of the file.
    pub fn of(&self, key: &str) -> Pos {
        if let Some(p) = self.values.get(key) {
            return *p;
        }
        let mut k = key;
        while let Some((parent, _)) = k.rsplit_once('.') {
            if let Some(p) = self.keys.get(parent) {
                return *p;
            }
            k = parent;
        }
        Pos::START
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
