//! Loading a sweep file: bytes in through [`crate::source`], the run sections made the base
//! configuration by [`crate::sections`], then each sweep key read and checked by a [`Loader`]
//! (`header`: what kind of sweep; `axes`: presets, parameters, seeds; `objectives`), the [`Sweep`]
//! assembled, and the whole checked (`check`). Every problem is reported at once.

mod axes;
mod check;
mod header;
mod loader;
mod objectives;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use cg_core::{Control, Fidelity, Objective, RunConfig, Sampler};
use serde_json::Value as Json;

use self::check::{check_baseline, check_jobs, check_rungs};
use self::loader::{Loader, Presets, Top};
use crate::diag::{Diagnostics, Pos, Sink};
use crate::id::data_fingerprint;
use crate::keys::{PRESET_AXIS, RUN_SECTIONS, SWEEP_KEYS};
use crate::sections::{build_config, run_sections, top_level_hint, unknown_message};
use crate::source::{LoadOptions, Positions, base_dir_of, read_file, read_tree, root_entries};
use crate::sweep::{Axis, Choice, Method, Sweep, lookup};
use crate::yaml::{Key, Node, unique_entries};

/// Loads and checks a sweep file. A plain run file is a sweep of one job.
pub fn load_sweep(path: &Path, options: &LoadOptions) -> Result<Sweep, Diagnostics> {
    let origin = path.display().to_string();
    let bytes = read_file(path, &origin)?;
    let base_dir = base_dir_of(path);
    load_sweep_bytes(&bytes, &origin, &base_dir, options)
}

/// Loads sweep text; `origin_name` names it in diagnostics (its stem is the default sweep name),
/// `base_dir` anchors relative data paths.
pub fn load_sweep_str(
    text: &str,
    origin_name: &str,
    base_dir: &Path,
    options: &LoadOptions,
) -> Result<Sweep, Diagnostics> {
    load_sweep_bytes(text.as_bytes(), origin_name, base_dir, options)
}

fn load_sweep_bytes(
    bytes: &[u8],
    origin: &str,
    base_dir: &Path,
    options: &LoadOptions,
) -> Result<Sweep, Diagnostics> {
    let mut sink = Sink::new(origin);
    let Some(root) = read_tree(bytes, options, &mut sink) else {
        return Err(sink.finish());
    };
    let Some(entries) = root_entries(&root, &mut sink) else {
        return Err(sink.finish());
    };
    let top = top_level(entries, &mut sink);
    let mut positions = Positions::default();
    let json = run_sections(entries, &mut sink, &mut positions);
    let base = build_config(json, base_dir, options, &positions, &mut sink);
    let mut loader = Loader::new(sink, base.as_ref(), base_dir, options);
    let parts = read_parts(&mut loader, &top, origin);
    if parts.method_given == Some(Method::MoAsha) {
        loader.check_mo_asha(&top, parts.fidelity, &parts.axes, base.as_ref(), &positions);
    }
    let overridden = overridden_keys(&parts);
    if let Some(base) = &base {
        report_base_problems(base, &overridden, &positions, &mut loader.sink);
    }
    let Loader {
        mut sink, defaults, ..
    } = loader;
    let Some(base) = base else {
        return Err(sink.finish());
    };
    if !sink.is_empty() {
        return Err(sink.finish());
    }
    let file = File {
        origin,
        bytes,
        base_dir,
        name_pos: top.get("name").map(|(_, node)| node.pos),
    };
    let sweep = assemble(parts, base, &overridden, &defaults, file);
    check_whole(&sweep, &top, &mut sink);
    sink.result(sweep)
}

/// The sweep keys and run sections at the top of the file, by name; other keys are reported.
fn top_level<'n>(entries: &'n [(Key, Node)], sink: &mut Sink) -> Top<'n> {
    let mut top = Top::new();
    for (key, node) in unique_entries(entries) {
        let name = key.name.as_str();
        if RUN_SECTIONS.contains(&name) || SWEEP_KEYS.contains(&name) {
            top.insert(name, (key, node));
        } else {
            sink.push(
                key.pos,
                name,
                unknown_message(name),
                top_level_hint(name, &SWEEP_KEYS),
            );
        }
    }
    top
}

/// The sweep keys of a file, each read and checked.
struct Parts {
    name: String,
    description: Option<String>,
    /// `None`: the method is unknown (reported); the rest is checked as a grid.
    method_given: Option<Method>,
    method: Method,
    n_samples: usize,
    fidelity: Option<Fidelity>,
    sampler: Sampler,
    seed: u64,
    presets: Presets,
    baseline: Option<Choice>,
    axes: Vec<(Axis, Pos)>,
    seeds: Vec<u64>,
    objectives: Vec<Objective>,
    reference_point: Vec<f64>,
    controls: Vec<Control>,
}

/// Reads the sweep keys in a fixed order (later keys are checked against earlier ones).
fn read_parts(loader: &mut Loader<'_>, top: &Top<'_>, origin: &str) -> Parts {
    let entry = |k: &str| top.get(k).copied();
    let node = |k: &str| top.get(k).map(|(_, n)| *n);
    let name = loader.name(entry("name"), origin);
    let description = node("description").and_then(|n| loader.string(n, "description"));
    // An unknown method is reported; the rest is then checked as a grid, without complaints about
    // `n_samples` and `seed`.
    let method_given = loader.method(entry("method"));
    let method = method_given.unwrap_or(Method::Grid);
    loader.grid = method == Method::Grid;
    let n_samples = match method_given {
        Some(m) => loader.n_samples(m, entry("n_samples")),
        None => 0,
    };
    let fidelity = loader.fidelity(method_given, entry("fidelity"));
    let sampler = loader.sampler(method_given, entry("sampler"));
    let seed = loader.seed(method_given, entry("seed"));
    let presets = loader.presets(node("presets"));
    let baseline = loader.baseline(node("baseline"));
    let axes = loader.parameters(node("parameters"), &presets);
    let seeds = loader.seeds(node("seeds"), &axes);
    let objectives = loader.objectives(node("objectives"));
    let reference_point = loader.reference_point(entry("reference_point"), &objectives);
    let controls = loader.controls(node("controls"));
    Parts {
        name,
        description,
        method_given,
        method,
        n_samples,
        fidelity,
        sampler,
        seed,
        presets,
        baseline,
        axes,
        seeds,
        objectives,
        reference_point,
        controls,
    }
}

/// The run-file keys that every job sets from an axis or from `seeds`.
fn overridden_keys(parts: &Parts) -> HashSet<String> {
    parts
        .axes
        .iter()
        .flat_map(|(axis, _)| axis_keys(axis, &parts.presets))
        .chain((!parts.seeds.is_empty()).then_some("train.seed"))
        .map(str::to_string)
        .collect()
}

/// Range problems of the base, except for keys every job overrides.
fn report_base_problems(
    base: &RunConfig,
    overridden: &HashSet<String>,
    positions: &Positions,
    sink: &mut Sink,
) {
    for problem in base.problems() {
        if !overridden.contains(problem.key.as_str()) {
            sink.error(positions.of(&problem.key), &problem.key, problem.message);
        }
    }
}

/// Where a sweep was read from, for the sweep to keep.
struct File<'a> {
    origin: &'a str,
    bytes: &'a [u8],
    base_dir: &'a Path,
    /// The position of the `name:` value (`None`: the name is the file's stem).
    name_pos: Option<Pos>,
}

/// The sweep of checked parts: the base made the whole schedule of a search, and what expansion
/// needs precomputed (the sections to rebuild, whether data and ids vary per job).
fn assemble(
    parts: Parts,
    mut base: RunConfig,
    overridden: &HashSet<String>,
    defaults: &Json,
    file: File<'_>,
) -> Sweep {
    // A rung job trains part of the whole schedule, which spans `fidelity.max_epochs`.
    if let Some(f) = parts.fidelity {
        base.train.epochs = f.max_epochs;
    }
    let mut base_settings: BTreeMap<String, Json> = base.non_default_values().into_iter().collect();
    base_settings.remove("dataset.path");
    let touched: HashSet<&str> = overridden
        .iter()
        .map(String::as_str)
        .chain(
            parts
                .baseline
                .iter()
                .flat_map(|b| b.settings.iter().map(|(k, _)| k.as_str())),
        )
        .collect();
    let sections = touched_sections(&base, &touched);
    Sweep {
        name: parts.name,
        origin: file.origin.to_string(),
        name_pos: file.name_pos,
        description: parts.description,
        method: parts.method,
        source_text: String::from_utf8_lossy(file.bytes).into_owned(),
        base_dir: file.base_dir.to_path_buf(),
        sections,
        base_fingerprint: data_fingerprint(&base.dataset),
        base,
        axes: parts.axes.into_iter().map(|(axis, _)| axis).collect(),
        seeds: parts.seeds,
        baseline: parts.baseline,
        n_samples: parts.n_samples,
        seed: parts.seed,
        objectives: parts.objectives,
        reference_point: parts.reference_point,
        controls: parts.controls,
        fidelity: parts.fidelity,
        sampler: parts.sampler,
        varies_data: overridden.iter().any(|k| k.starts_with("dataset.")),
        base_settings,
        fast_ids: fast_ids(overridden, defaults),
        seed_default: lookup(defaults, "train.seed")
            .cloned()
            .unwrap_or(Json::Null),
    }
}

/// Whether job ids can be computed from the choices' deltas: when every key set lies in a section
/// that the defaults have (not inside an optional object such as `dataset.synthetic`).
fn fast_ids(overridden: &HashSet<String>, defaults: &Json) -> bool {
    overridden.iter().all(|key| {
        let parent = key.rsplit_once('.').map_or("", |(p, _)| p);
        parent.is_empty() || lookup(defaults, parent).is_some_and(Json::is_object)
    })
}

/// The checks of the loaded sweep as a whole: its jobs, its baseline, its rungs.
fn check_whole(sweep: &Sweep, top: &Top<'_>, sink: &mut Sink) {
    let pos_of = |k: &str| top.get(k).map_or(Pos::START, |(key, _)| key.pos);
    let jobs = check_jobs(sweep, pos_of("parameters"), sink);
    if top.contains_key("baseline") {
        check_baseline(sweep, jobs.as_deref(), pos_of("baseline"), sink);
    }
    check_rungs(sweep, pos_of("fidelity"), sink);
}

/// The base's JSON of each section that some key in `keys` lies in, in schema order.
fn touched_sections(base: &RunConfig, keys: &HashSet<&str>) -> Vec<(String, Json)> {
    let json = base.to_json();
    let Json::Object(map) = json else {
        return Vec::new();
    };
    map.into_iter()
        .filter(|(name, _)| {
            keys.iter()
                .any(|k| k.split('.').next() == Some(name.as_str()))
        })
        .collect()
}

/// The run-file keys an axis may set.
fn axis_keys<'a>(axis: &'a Axis, presets: &'a Presets) -> Vec<&'a str> {
    if axis.key == PRESET_AXIS {
        presets
            .values()
            .flat_map(|p| p.settings.iter().map(|s| s.key.as_str()))
            .collect()
    } else {
        vec![axis.key.as_str()]
    }
}
