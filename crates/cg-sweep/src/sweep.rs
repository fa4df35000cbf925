//! Sweep files: a run file (the base settings) plus `name`, `method`, `parameters`, `presets`, `seeds`,
//! `objectives` and `reference_point`, in the manner of W&B Sweeps. Loading checks everything and
//! reports every problem at once; [`Sweep::expand`] then turns the sweep into jobs in a fixed order.
//! A sweep never names a program or a command: each job is a typed [`RunConfig`].
//!
//! Order of settings in a job: base sections, then the chosen preset, then the other axes in file
//! order, then `train.seed` from `seeds`. Grid order: the first axis varies slowest, seeds fastest.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use cg_core::rng::{SplitMix64, unit_of};
use cg_core::{
    AxisSpace, Coord, DatasetSpec, Direction, Fidelity, JobSpec, Objective, RunConfig, Sampler,
    SearchSettings, SweepInfo,
};
use serde_json::{Map, Value as Json};

use crate::diag::{Diagnostics, Pos, Sink};
use crate::id::{data_fingerprint, id_from_settings, job_id};
use crate::keys::{keys, probe_config, takes_fractions, type_problem};
use crate::run::{
    LoadOptions, Positions, RUN_SECTIONS, base_dir_of, build_config, check_data_path, read_file,
    read_tree, root_entries, run_sections, top_level_hint, unknown_message,
};
use crate::yaml::{Key, Node, Value, join, unique_entries};
use crate::{Error, Result};

/// Sweeps larger than this need explicit confirmation (`cg sweep --yes`).
pub const DEFAULT_JOB_LIMIT: usize = 10_000;

/// No sweep may have more jobs than this, even with `--yes`: the queue stores every one of them.
pub const MAX_JOBS: usize = 1_000_000;

/// Most values of one `grid_points` axis.
pub const MAX_GRID_POINTS: u64 = 10_000;

/// The top-level keys a sweep file has besides the run sections.
pub const SWEEP_KEYS: [&str; 13] = [
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
pub const METRICS: [&str; 12] = [
    "test_acc_final",
    "test_acc_peak",
    "peak_epoch",
    "macs_full",
    "macs_executed_nominal",
    "macs_executed_actual",
    "savings_nominal",
    "savings_actual",
    "savings_measured",
    "train_img_per_s",
    "infer_img_per_s",
    "wall_secs",
];

/// The axis name that picks a preset.
pub const PRESET_AXIS: &str = "preset";

/// How a sweep chooses its points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Every combination of the axes' values.
    Grid,
    /// `n_samples` independent draws, reproducible from `seed`.
    Random,
    /// Multi-objective successive halving on epochs (`fidelity`), `n_samples` configurations
    /// proposed by `sampler`; its jobs are decided as results arrive (cg-search), not expanded.
    MoAsha,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Grid => "grid",
            Method::Random => "random",
            Method::MoAsha => "mo-asha",
        }
    }
}

/// A loaded, checked sweep.
#[derive(Debug, Clone)]
pub struct Sweep {
    name: String,
    /// The file as diagnostics name it, and the position of its `name:` value (`None`: the name
    /// is the file's stem).
    origin: String,
    name_pos: Option<Pos>,
    description: Option<String>,
    method: Method,
    source_text: String,
    /// The directory relative data paths resolve against (the file's).
    base_dir: std::path::PathBuf,
    base: RunConfig,
    /// The sections that axes or seeds change, with the base's JSON of each (rebuilt per job).
    sections: Vec<(String, Json)>,
    axes: Vec<Axis>,
    seeds: Vec<u64>,
    /// `baseline`: the settings of one reference job per seed, outside the axes and the search.
    baseline: Option<Choice>,
    n_samples: usize,
    seed: u64,
    objectives: Vec<Objective>,
    reference_point: Vec<f64>,
    /// `method: mo-asha` only.
    fidelity: Option<Fidelity>,
    sampler: Sampler,
    base_fingerprint: String,
    /// Whether some axis or preset changes a `dataset.*` key (then fingerprints are per job).
    varies_data: bool,
    /// The base's non-default settings without `dataset.path`: what a job id hashes, before the axes.
    base_settings: BTreeMap<String, Json>,
    /// Whether job ids may be computed from `base_settings` and the choices' deltas (else from each config).
    fast_ids: bool,
    /// cg-core's default `train.seed`, as JSON.
    seed_default: Json,
}

#[derive(Debug, Clone)]
struct Axis {
    key: String,
    /// A `value:` parameter: set in every job, but not an axis of the sweep.
    fixed: bool,
    kind: AxisKind,
    /// The default value at `key` as cg-core serialises it (null when absent), for job ids.
    default: Json,
    /// Whether the key takes fractional numbers (so an integer drawn for it is written as a float).
    fractions: bool,
}

#[derive(Debug, Clone)]
enum AxisKind {
    Values(Vec<Choice>),
    /// Every integer from `min` to `max` (grid), or one of them (random).
    IntRange {
        min: i64,
        max: i64,
    },
    /// Random only: uniform in [min, max).
    Uniform {
        min: f64,
        max: f64,
    },
    /// Random only: log-uniform in [min, max).
    LogUniform {
        min: f64,
        max: f64,
    },
}

/// One value of an axis: how it is shown in `JobSpec.params` and what it sets.
#[derive(Debug, Clone)]
struct Choice {
    shown: Json,
    /// (dotted key, value as cg-core serialises it).
    settings: Vec<(String, Json)>,
    /// What the choice changes in the job's non-default settings: `None` = back to the default. Keys that
    /// job ids leave out (`dataset.path`, `dataset.kind`) are not listed.
    delta: Vec<(String, Option<Json>)>,
}

impl Axis {
    /// Number of values in a grid; `None` past `usize`.
    fn grid_len(&self) -> Option<usize> {
        match &self.kind {
            AxisKind::Values(v) => Some(v.len()),
            AxisKind::IntRange { min, max } => {
                usize::try_from(i128::from(*max) - i128::from(*min) + 1).ok()
            }
            AxisKind::Uniform { .. } | AxisKind::LogUniform { .. } => Some(1),
        }
    }

    fn grid_pick(&self, index: usize) -> Cow<'_, Choice> {
        Cow::Owned(match &self.kind {
            AxisKind::Values(v) => return Cow::Borrowed(&v[index]),
            AxisKind::IntRange { min, .. } => {
                self.scalar((i128::from(*min) + index as i128) as i64)
            }
            AxisKind::Uniform { min, .. } | AxisKind::LogUniform { min, .. } => self.scalar(*min),
        })
    }

    fn random_pick(&self, rng: &mut SplitMix64) -> Cow<'_, Choice> {
        let r = rng.next_u64();
        Cow::Owned(match &self.kind {
            AxisKind::Values(v) => return Cow::Borrowed(&v[bounded(r, v.len() as u128) as usize]),
            AxisKind::IntRange { min, max } => {
                let span = (i128::from(*max) - i128::from(*min) + 1) as u128;
                self.scalar((i128::from(*min) + bounded(r, span) as i128) as i64)
            }
            AxisKind::Uniform { min, max } => self.scalar(min + (max - min) * unit_of(r)),
            AxisKind::LogUniform { min, max } => {
                let (a, b) = (min.ln(), max.ln());
                self.scalar((a + (b - a) * unit_of(r)).exp().clamp(*min, *max))
            }
        })
    }

    /// A drawn number as a choice (written as a float where the key takes fractions).
    fn scalar(&self, value: impl Into<Json>) -> Choice {
        let mut value: Json = value.into();
        if self.fractions
            && let Some(f) = value.as_f64()
        {
            value = Json::from(f);
        }
        let delta = (value != self.default).then(|| value.clone());
        Choice {
            shown: value.clone(),
            settings: vec![(self.key.clone(), value)],
            delta: vec![(self.key.clone(), delta)],
        }
    }
}

/// `r` mapped onto `0..n` without modulo bias worth speaking of (Lemire's multiply-shift).
fn bounded(r: u64, n: u128) -> u128 {
    (u128::from(r) * n) >> 64
}

impl Sweep {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the name comes from: the file as diagnostics name it, and the position of its
    /// `name:` value; no position when the file has no `name:` key (the name is its stem).
    pub fn name_origin(&self) -> (&str, Option<Pos>) {
        (&self.origin, self.name_pos)
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    pub fn method(&self) -> Method {
        self.method
    }

    /// The base settings (the run sections of the file), before any axis.
    pub fn base(&self) -> &RunConfig {
        &self.base
    }

    /// The file's text as it was read, to be stored with the sweep.
    pub fn source_text(&self) -> &str {
        &self.source_text
    }

    /// The directory relative data paths resolve against: load the source text again with it.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// The fingerprint of the base data set (see [`data_fingerprint`]).
    pub fn data_fingerprint(&self) -> &str {
        &self.base_fingerprint
    }

    /// The dotted keys the sweep varies, `preset` included, in file order; `train.seed` last when `seeds`
    /// is given.
    pub fn axes(&self) -> Vec<String> {
        let mut axes: Vec<String> = self
            .axes
            .iter()
            .filter(|a| !a.fixed)
            .map(|a| a.key.clone())
            .collect();
        if !self.seeds.is_empty() {
            axes.push("train.seed".into());
        }
        axes
    }

    /// What a report needs to know of the sweep.
    pub fn info(&self) -> SweepInfo {
        SweepInfo {
            name: self.name.clone(),
            objectives: self.objectives.clone(),
            reference_point: self.reference_point.clone(),
            axes: self.axes(),
        }
    }

    /// The number of jobs [`Sweep::expand`] gives, without making them (saturates at `usize::MAX`).
    pub fn count(&self) -> usize {
        let points = match self.method {
            Method::Grid => self.axes.iter().try_fold(1usize, |acc, a| {
                a.grid_len().and_then(|n| acc.checked_mul(n))
            }),
            Method::Random | Method::MoAsha => Some(self.n_samples),
        };
        points
            .and_then(|p| p.checked_add(usize::from(self.baseline.is_some())))
            .and_then(|p| p.checked_mul(self.seeds.len().max(1)))
            .unwrap_or(usize::MAX)
    }

    /// `Err(TooManyJobs)` when the sweep has more than `limit` jobs.
    pub fn check_job_limit(&self, limit: usize) -> Result<()> {
        let count = self.count();
        if count > limit {
            return Err(Error::TooManyJobs {
                name: self.name.clone(),
                count,
                limit,
            });
        }
        Ok(())
    }

    /// Every job, in a deterministic order, with its id.
    pub fn expand(&self) -> Vec<JobSpec> {
        let mut out = Vec::with_capacity(self.count().min(1 << 24));
        let mut cache: HashMap<String, String> = HashMap::new();
        self.for_each_job(|params, config, settings| {
            let fingerprint = if self.varies_data && config.dataset != self.base.dataset {
                let spec_key = serde_json::to_string(&config.dataset).expect("spec serialises");
                cache
                    .entry(spec_key)
                    .or_insert_with(|| data_fingerprint(&config.dataset))
                    .clone()
            } else {
                self.base_fingerprint.clone()
            };
            let id = match settings {
                Some(settings) => id_from_settings(config.dataset.kind, settings, &fingerprint),
                None => job_id(&config, &fingerprint),
            };
            out.push(JobSpec { id, params, config });
        });
        out.extend(self.baseline_jobs());
        out
    }

    /// The `baseline` jobs: the base settings plus the baseline's, once per seed (no axis, no
    /// search; a mo-asha sweep trains them on the whole schedule beside its search). Their params
    /// are `baseline: true` and the seed.
    pub fn baseline_jobs(&self) -> Vec<JobSpec> {
        let Some(choice) = &self.baseline else {
            return Vec::new();
        };
        let seeds: Vec<Option<u64>> = if self.seeds.is_empty() {
            vec![None]
        } else {
            self.seeds.iter().copied().map(Some).collect()
        };
        seeds
            .into_iter()
            .map(|seed| {
                let mut config = self.config_of(std::iter::once(choice));
                let mut params = Map::new();
                params.insert("baseline".into(), Json::Bool(true));
                if let Some(seed) = seed {
                    config.train.seed = seed;
                    params.insert("train.seed".into(), Json::from(seed));
                }
                let fingerprint = if config.dataset != self.base.dataset {
                    data_fingerprint(&config.dataset)
                } else {
                    self.base_fingerprint.clone()
                };
                JobSpec {
                    id: job_id(&config, &fingerprint),
                    params,
                    config,
                }
            })
            .collect()
    }

    /// Calls `f` with the axis values, the configuration and (when `fast_ids`) the non-default settings of
    /// each job, in order.
    fn for_each_job(
        &self,
        mut f: impl FnMut(Map<String, Json>, RunConfig, Option<&BTreeMap<String, Json>>),
    ) {
        let seeds: Vec<Option<u64>> = if self.seeds.is_empty() {
            vec![None]
        } else {
            self.seeds.iter().copied().map(Some).collect()
        };
        let train_section = self.sections.iter().position(|(name, _)| name == "train");
        let mut emit = |picks: &[Cow<'_, Choice>]| {
            // Only the sections that some axis touches are rebuilt; the rest is the base's, cloned.
            let mut sections: Vec<Json> = self.sections.iter().map(|(_, j)| j.clone()).collect();
            let mut settings = self.fast_ids.then(|| self.base_settings.clone());
            let mut params = self.axis_params(picks);
            for choice in self.presets_first(picks) {
                for (key, value) in &choice.settings {
                    self.set_in_sections(&mut sections, key, value.clone());
                }
                if let Some(settings) = &mut settings {
                    apply_delta(settings, &choice.delta);
                }
            }
            let n = seeds.len();
            for (i, seed) in seeds.iter().enumerate() {
                // The last seed takes the values; the others clone them.
                let (mut sections, mut params, mut settings) = if i + 1 == n {
                    (
                        std::mem::take(&mut sections),
                        std::mem::take(&mut params),
                        settings.take(),
                    )
                } else {
                    (sections.clone(), params.clone(), settings.clone())
                };
                if let Some(seed) = seed {
                    let value = Json::from(*seed);
                    let train = train_section.expect("seeds make `train` a rebuilt section");
                    set_json(&mut sections[train], "seed", value.clone());
                    params.insert("train.seed".into(), value.clone());
                    if let Some(settings) = &mut settings {
                        let change = (value != self.seed_default).then_some(value);
                        apply_delta(settings, &[("train.seed".into(), change)]);
                    }
                }
                let mut config = self.base.clone();
                for ((name, _), json) in self.sections.iter().zip(sections) {
                    replace_section(&mut config, name, json)
                        .expect("every setting was type-checked when the sweep was loaded");
                }
                f(params, config, settings.as_ref());
            }
        };
        match self.method {
            Method::Grid => {
                let sizes: Vec<usize> = self
                    .axes
                    .iter()
                    .map(|a| a.grid_len().unwrap_or(0))
                    .collect();
                if sizes.contains(&0) {
                    return;
                }
                let mut index = vec![0usize; sizes.len()];
                loop {
                    let picks: Vec<Cow<'_, Choice>> = self
                        .axes
                        .iter()
                        .zip(&index)
                        .map(|(a, &i)| a.grid_pick(i))
                        .collect();
                    emit(&picks);
                    // Odometer: the last axis turns fastest.
                    let mut d = sizes.len();
                    loop {
                        if d == 0 {
                            return;
                        }
                        d -= 1;
                        index[d] += 1;
                        if index[d] < sizes[d] {
                            break;
                        }
                        index[d] = 0;
                    }
                }
            }
            Method::Random | Method::MoAsha => {
                let mut rng = SplitMix64::new(self.seed);
                for _ in 0..self.n_samples {
                    let picks: Vec<Cow<'_, Choice>> =
                        self.axes.iter().map(|a| a.random_pick(&mut rng)).collect();
                    emit(&picks);
                }
            }
        }
    }

    /// The settings of a `method: mo-asha` sweep; `None` for the other methods.
    pub fn search_settings(&self) -> Option<SearchSettings> {
        let fidelity = self.fidelity?;
        let space = self
            .axes
            .iter()
            .filter(|a| !a.fixed)
            .map(|a| match &a.kind {
                AxisKind::Values(v) => AxisSpace::Choice { n: v.len() },
                AxisKind::IntRange { min, max } => AxisSpace::Int {
                    min: *min,
                    max: *max,
                },
                AxisKind::Uniform { min, max } => AxisSpace::Float {
                    min: *min,
                    max: *max,
                    log: false,
                },
                AxisKind::LogUniform { min, max } => AxisSpace::Float {
                    min: *min,
                    max: *max,
                    log: true,
                },
            })
            .collect();
        Some(SearchSettings {
            space,
            n_samples: self.n_samples,
            fidelity,
            sampler: self.sampler,
            seed: self.seed,
        })
    }

    /// The job of a point of [`Sweep::search_settings`]'s space, trained to `stop_after` epochs of
    /// its schedule (`None`: the whole schedule). Its params name the axis values, and
    /// `train.stop_after` when set. `None` when the point does not fit the space.
    pub fn job_at(&self, point: &[Coord], stop_after: Option<usize>) -> Option<JobSpec> {
        let mut coords = point.iter();
        let mut picks: Vec<Cow<'_, Choice>> = Vec::with_capacity(self.axes.len());
        for axis in &self.axes {
            if axis.fixed {
                picks.push(axis.grid_pick(0));
                continue;
            }
            let pick = match (&axis.kind, coords.next()?) {
                (AxisKind::Values(v), Coord::Choice(i)) => Cow::Borrowed(v.get(*i)?),
                (AxisKind::IntRange { min, max }, Coord::Int(x)) if min <= x && x <= max => {
                    Cow::Owned(axis.scalar(*x))
                }
                (
                    AxisKind::Uniform { min, max } | AxisKind::LogUniform { min, max },
                    Coord::Float(x),
                ) if min <= x && x <= max => Cow::Owned(axis.scalar(*x)),
                _ => return None,
            };
            picks.push(pick);
        }
        if coords.next().is_some() {
            return None;
        }
        let (mut params, mut config) = self.build(&picks);
        config.train.stop_after = stop_after;
        if let Some(s) = stop_after {
            params.insert("train.stop_after".into(), Json::from(s));
        }
        let fingerprint = if self.varies_data && config.dataset != self.base.dataset {
            data_fingerprint(&config.dataset)
        } else {
            self.base_fingerprint.clone()
        };
        let id = job_id(&config, &fingerprint);
        Some(JobSpec { id, params, config })
    }

    /// The values of the axes a user varied (not the fixed ones), for one pick per axis.
    fn axis_params(&self, picks: &[Cow<'_, Choice>]) -> Map<String, Json> {
        let mut params = Map::new();
        for (axis, choice) in self.axes.iter().zip(picks) {
            if !axis.fixed {
                params.insert(axis.key.clone(), choice.shown.clone());
            }
        }
        params
    }

    /// One pick per axis, presets first (conflicts between a preset and another axis are
    /// rejected at load).
    fn presets_first<'a>(
        &'a self,
        picks: &'a [Cow<'_, Choice>],
    ) -> impl Iterator<Item = &'a Choice> {
        let with_axes = || self.axes.iter().zip(picks);
        with_axes()
            .filter(|(a, _)| a.key == PRESET_AXIS)
            .chain(with_axes().filter(|(a, _)| a.key != PRESET_AXIS))
            .map(|(_, choice)| choice.as_ref())
    }

    /// The axis values and the configuration of one pick per axis (no seeds).
    fn build(&self, picks: &[Cow<'_, Choice>]) -> (Map<String, Json>, RunConfig) {
        (
            self.axis_params(picks),
            self.config_of(self.presets_first(picks)),
        )
    }

    /// The base configuration with `choices` applied in order.
    fn config_of<'a>(&self, choices: impl Iterator<Item = &'a Choice>) -> RunConfig {
        let mut sections: Vec<Json> = self.sections.iter().map(|(_, j)| j.clone()).collect();
        for choice in choices {
            for (key, value) in &choice.settings {
                self.set_in_sections(&mut sections, key, value.clone());
            }
        }
        let mut config = self.base.clone();
        for ((name, _), json) in self.sections.iter().zip(sections) {
            replace_section(&mut config, name, json)
                .expect("every setting was type-checked when the sweep was loaded");
        }
        config
    }

    /// Sets `section.rest` in the rebuilt section it belongs to.
    fn set_in_sections(&self, sections: &mut [Json], key: &str, value: Json) {
        let (section, rest) = key.split_once('.').unwrap_or((key, ""));
        if let Some(i) = self.sections.iter().position(|(name, _)| name == section) {
            set_json(&mut sections[i], rest, value);
        }
    }
}

/// Replaces one section of a configuration by its JSON.
fn replace_section(config: &mut RunConfig, name: &str, json: Json) -> serde_json::Result<()> {
    match name {
        "dataset" => config.dataset = serde_json::from_value(json)?,
        "model" => config.model = serde_json::from_value(json)?,
        "gate" => config.gate = serde_json::from_value(json)?,
        "loss" => config.loss = serde_json::from_value(json)?,
        "train" => config.train = serde_json::from_value(json)?,
        // A section cg-core added later: through the whole configuration.
        other => {
            let mut whole = config.to_json();
            whole[other] = json;
            *config = serde_json::from_value(whole)?;
        }
    }
    Ok(())
}

fn apply_delta(settings: &mut BTreeMap<String, Json>, delta: &[(String, Option<Json>)]) {
    for (key, value) in delta {
        match value {
            Some(v) => {
                settings.insert(key.clone(), v.clone());
            }
            None => {
                settings.remove(key);
            }
        }
    }
}

/// Sets a dotted key in a JSON tree, making objects on the way.
fn set_json(root: &mut Json, key: &str, value: Json) {
    let mut node = root;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        if !node.is_object() {
            *node = Json::Object(Map::new());
        }
        let map = node.as_object_mut().expect("made an object above");
        if parts.peek().is_none() {
            map.insert(part.to_string(), value);
            return;
        }
        node = map.entry(part.to_string()).or_insert(Json::Null);
    }
}

/// Loads and checks a sweep file. A plain run file is a sweep of one job.
pub fn load_sweep(path: &Path, options: &LoadOptions) -> Result<Sweep, Diagnostics> {
    let origin = path.display().to_string();
    let bytes = read_file(path, &origin)?;
    load_sweep_bytes(&bytes, &origin, &base_dir_of(path), options)
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
    let mut top: HashMap<&str, (&Key, &Node)> = HashMap::new();
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

    let mut positions = Positions::default();
    let json = run_sections(entries, &mut sink, &mut positions);
    let base = build_config(json, base_dir, options, &positions, &mut sink);
    let loader_base = base.clone().unwrap_or_else(probe_config);
    let defaults = RunConfig::with_dataset(DatasetSpec {
        kind: loader_base.dataset.kind,
        path: None,
        augment: None,
        synthetic: None,
    })
    .to_json();
    let mut loader = Loader {
        sink,
        base: loader_base,
        base_dir,
        options,
        grid: true,
        defaults,
    };

    let name = loader.name(top.get("name").copied(), origin);
    let description = top
        .get("description")
        .and_then(|(_, n)| loader.string(n, "description"));
    // An unknown method is reported; the rest is then checked as a grid, without complaints about
    // `n_samples` and `seed`.
    let method_given = loader.method(top.get("method").copied());
    let method = method_given.unwrap_or(Method::Grid);
    loader.grid = method == Method::Grid;
    let n_samples = match method_given {
        Some(m) => loader.n_samples(m, top.get("n_samples").copied()),
        None => 0,
    };
    let fidelity = loader.fidelity(method_given, top.get("fidelity").copied());
    let sampler = loader.sampler(method_given, top.get("sampler").copied());
    let seed = match top.get("seed") {
        Some((key, node)) => {
            if method_given == Some(Method::Grid) {
                loader.sink.push(
                    key.pos,
                    "seed",
                    "only used by `method: random` and `method: mo-asha`",
                    Some("for training seeds write `seeds: [0, 1, 2]`".into()),
                );
            }
            loader.uint(node, "seed").unwrap_or(0)
        }
        None => 0,
    };
    let presets = loader.presets(top.get("presets").map(|(_, n)| *n));
    let baseline = loader.baseline(top.get("baseline").map(|(_, n)| *n));
    let axes = loader.parameters(top.get("parameters").map(|(_, n)| *n), &presets);
    let seeds = loader.seeds(top.get("seeds").map(|(_, n)| *n), &axes);
    let objectives = loader.objectives(top.get("objectives").map(|(_, n)| *n));
    let reference_point = loader.reference_point(top.get("reference_point").copied(), &objectives);
    if method_given == Some(Method::MoAsha) {
        if !top.contains_key("reference_point") {
            loader.sink.push(
                Pos::START,
                "reference_point",
                "missing: `method: mo-asha` measures its hypervolume against a declared reference point",
                Some("add one value per objective, e.g. `reference_point: [0.1, 0.0]`".into()),
            );
        }
        if let Some((key, _)) = top.get("seeds") {
            loader.sink.push(
                key.pos,
                "seeds",
                "not used by `method: mo-asha`: it trains each configuration once",
                Some("set `train.seed` instead".into()),
            );
        }
        // The fidelity sets every job's schedule and stop: a base value would be overridden.
        if let (Some(f), Some(base)) = (fidelity, &base)
            && let Some(pos) = positions.value("train.epochs")
            && base.train.epochs != f.max_epochs
        {
            loader.sink.push(
                pos,
                "train.epochs",
                format!(
                    "{} differs from `fidelity.max_epochs` ({}), which sets the whole \
                     schedule of every job of `method: mo-asha`",
                    base.train.epochs, f.max_epochs
                ),
                Some(format!(
                    "leave `train.epochs` out or set it to {}",
                    f.max_epochs
                )),
            );
        }
        if let Some(pos) = positions.value("train.stop_after") {
            loader.sink.push(
                pos,
                "train.stop_after",
                "not used by `method: mo-asha`: each rung sets where its jobs stop",
                Some("remove it; `fidelity` sets the rungs".into()),
            );
        }
        for (axis, pos) in &axes {
            if axis.key == "train.epochs" || axis.key == "train.stop_after" {
                loader.sink.push(
                    *pos,
                    &format!("parameters.{}", axis.key),
                    "conflicts with `fidelity`, which sets the epochs of each rung",
                    Some("set `fidelity.max_epochs` instead".into()),
                );
            }
        }
    }

    // Range problems of the base, except for keys every job overrides.
    let overridden: HashSet<&str> = axes
        .iter()
        .flat_map(|(axis, _)| axis_keys(axis, &presets))
        .chain((!seeds.is_empty()).then_some("train.seed"))
        .collect();
    if let Some(base) = &base {
        for problem in base.problems() {
            if !overridden.contains(problem.key.as_str()) {
                loader
                    .sink
                    .error(positions.of(&problem.key), &problem.key, problem.message);
            }
        }
    }

    let Loader {
        mut sink, defaults, ..
    } = loader;
    let Some(mut base) = base else {
        return Err(sink.finish());
    };
    if !sink.is_empty() {
        return Err(sink.finish());
    }
    // A rung job trains part of the whole schedule, which spans `fidelity.max_epochs`.
    if let Some(f) = fidelity {
        base.train.epochs = f.max_epochs;
    }
    let varies_data = overridden.iter().any(|k| k.starts_with("dataset."));
    // Ids can be computed from the choices' deltas when every key set lies in a section that the
    // defaults have (not inside an optional object such as `dataset.synthetic`).
    let fast_ids = overridden.iter().all(|key| {
        let parent = key.rsplit_once('.').map_or("", |(p, _)| p);
        parent.is_empty() || lookup(&defaults, parent).is_some_and(Json::is_object)
    });
    let mut base_settings: BTreeMap<String, Json> = base.non_default_values().into_iter().collect();
    base_settings.remove("dataset.path");
    let parameters_pos = top.get("parameters").map_or(Pos::START, |(k, _)| k.pos);
    let sweep = Sweep {
        name,
        origin: origin.to_string(),
        name_pos: top.get("name").map(|(_, node)| node.pos),
        description,
        method,
        source_text: String::from_utf8_lossy(bytes).into_owned(),
        base_dir: base_dir.to_path_buf(),
        sections: touched_sections(
            &base,
            &overridden
                .iter()
                .copied()
                .chain(
                    baseline
                        .iter()
                        .flat_map(|b| b.settings.iter().map(|(k, _)| k.as_str())),
                )
                .collect(),
        ),
        base_fingerprint: data_fingerprint(&base.dataset),
        base,
        axes: axes.into_iter().map(|(axis, _)| axis).collect(),
        seeds,
        baseline,
        n_samples,
        seed,
        objectives,
        reference_point,
        fidelity,
        sampler,
        varies_data,
        base_settings,
        fast_ids,
        seed_default: lookup(&defaults, "train.seed")
            .cloned()
            .unwrap_or(Json::Null),
    };
    let jobs = check_jobs(&sweep, parameters_pos, &mut sink);
    if let Some((key, _)) = top.get("baseline") {
        check_baseline(&sweep, jobs.as_deref(), key.pos, &mut sink);
    }
    if let Some(settings) = sweep.search_settings()
        && let Some(why) = settings.unreachable_top()
    {
        let pos = top.get("fidelity").map_or(Pos::START, |(k, _)| k.pos);
        sink.push(
            pos,
            "fidelity",
            why,
            Some("raise `n_samples`, lower `eta`, or raise `min_epochs` for fewer rungs".into()),
        );
    }
    sink.result(sweep)
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

/// Problems that only show in combination (e.g. `loss.ramp_start` above `loss.ramp_end` from two axes), and
/// grid points that come out identical. Checked on every job when the sweep is within the job limit.
fn check_jobs(sweep: &Sweep, pos: Pos, sink: &mut Sink) -> Option<Vec<JobSpec>> {
    let count = sweep.count();
    if count > MAX_JOBS {
        let shown = if count == usize::MAX {
            "more jobs than can be counted".to_string()
        } else {
            format!("{count} jobs")
        };
        sink.push(
            pos,
            "parameters",
            format!(
                "the sweep expands to {shown}, more than cg's limit of {MAX_JOBS} (even with --yes)"
            ),
            Some(
                "split it into several sweeps, or use `method: random` with fewer `n_samples`"
                    .into(),
            ),
        );
        return None;
    }
    if count > DEFAULT_JOB_LIMIT {
        return None;
    }
    let mut reported: HashSet<String> = HashSet::new();
    let mut ids: HashMap<&str, &Map<String, Json>> = HashMap::new();
    let mut repeats: Vec<(&Map<String, Json>, &Map<String, Json>)> = Vec::new();
    let jobs = sweep.expand();
    for job in &jobs {
        for problem in job.config.problems() {
            if reported.insert(problem.key.clone()) {
                sink.push(
                    pos,
                    &problem.key,
                    format!(
                        "{} (in the job with {})",
                        problem.message,
                        show_params(&job.params)
                    ),
                    None,
                );
            }
        }
        if sweep.method == Method::Grid {
            match ids.get(job.id.as_str()) {
                Some(first) => repeats.push((first, &job.params)),
                None => {
                    ids.insert(&job.id, &job.params);
                }
            }
        }
    }
    if let Some((first, second)) = repeats.first() {
        let more = match repeats.len() {
            1 => String::new(),
            n => format!(" ({} more like it)", n - 1),
        };
        sink.push(
            pos,
            "parameters",
            format!(
                "two grid points give the same job: {} and {}{more}",
                show_params(first),
                show_params(second)
            ),
            Some("a value equals the base setting, or two presets set the same".into()),
        );
    }
    Some(jobs)
}

/// Most points of a finite search space looked at for a baseline that equals one of them.
const MAX_BASELINE_CHECK: u64 = 100_000;

/// A baseline job that is also a job of the axes (a random draw, or a point of a finite mo-asha
/// space) would be one job with one row: it would take that configuration's place in the report.
/// (A grid's repeats are reported by [`check_jobs`]; `jobs` are the ones it expanded, `None`
/// above the default job limit, where random draws are not looked at.)
fn check_baseline(sweep: &Sweep, jobs: Option<&[JobSpec]>, pos: Pos, sink: &mut Sink) {
    let baseline: HashSet<String> = sweep.baseline_jobs().into_iter().map(|j| j.id).collect();
    let clash = match sweep.method {
        Method::Grid => None,
        Method::Random => jobs
            .unwrap_or_default()
            .iter()
            .find(|j| !j.params.contains_key("baseline") && baseline.contains(&j.id))
            .map(|j| j.params.clone()),
        Method::MoAsha => sweep
            .search_settings()
            .and_then(|s| cg_core::all_points(&s.space, MAX_BASELINE_CHECK))
            .and_then(|points| {
                points
                    .iter()
                    .filter_map(|p| sweep.job_at(p, None))
                    .find(|j| baseline.contains(&j.id))
                    .map(|j| j.params)
            }),
    };
    if let Some(params) = clash {
        sink.push(
            pos,
            "baseline",
            format!(
                "the baseline trains the same configuration as the axes' point {}: they would be one job",
                show_params(&params)
            ),
            Some("change a baseline setting (e.g. `gate.mode: none`) or leave that value out of the axes".into()),
        );
    }
}

fn show_params(params: &Map<String, Json>) -> String {
    if params.is_empty() {
        return "the base settings".into();
    }
    params
        .iter()
        .map(|(k, v)| match v {
            Json::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A preset: named settings, each with the position of its value.
#[derive(Debug)]
struct Preset {
    settings: Vec<Setting>,
}

#[derive(Debug)]
struct Setting {
    key: String,
    value: Json,
    pos: Pos,
}

type Presets = BTreeMap<String, Preset>;

/// Checks the sweep keys; collects problems in `sink`.
struct Loader<'a> {
    sink: Sink,
    /// The base configuration (a probe when the base did not load), for checking values one by one.
    base: RunConfig,
    base_dir: &'a Path,
    options: &'a LoadOptions,
    grid: bool,
    /// cg-core's defaults for the base's data set kind, as JSON (what job ids are measured against).
    defaults: Json,
}

impl Loader<'_> {
    fn new_axis(&self, key: &str, fixed: bool, kind: AxisKind) -> Axis {
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
    fn choice(&self, shown: Json, settings: Vec<(String, Json)>) -> Choice {
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

    fn string(&mut self, node: &Node, key: &str) -> Option<String> {
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

    fn uint(&mut self, node: &Node, key: &str) -> Option<u64> {
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

    fn number(&mut self, node: &Node, key: &str) -> Option<f64> {
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

    fn list<'n>(&mut self, node: &'n Node, key: &str, example: &str) -> Option<&'n [Node]> {
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

    fn map<'n>(&mut self, node: &'n Node, key: &str) -> Option<&'n [(Key, Node)]> {
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

    fn name(&mut self, entry: Option<(&Key, &Node)>, origin: &str) -> String {
        let (name, pos) = match entry {
            Some((_, node)) => match self.string(node, "name") {
                Some(name) => (name, node.pos),
                // Its type is reported already; "missing" would contradict it.
                None => return String::new(),
            },
            None => {
                let stem = Path::new(origin)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned());
                (stem.unwrap_or_default(), Pos::START)
            }
        };
        let valid = name.len() <= 64 && cg_core::check_name(&name).is_ok();
        if name.is_empty() {
            self.sink
                .push(pos, "name", "missing", Some("add `name: my-sweep`".into()));
        } else if !valid {
            let hint = match entry {
                Some(_) => {
                    "use up to 64 letters, digits, `-`, `_` and `.`, starting with a letter or digit"
                }
                None => "the file name is used when `name` is absent; add `name: my-sweep`",
            };
            self.sink.push(
                pos,
                "name",
                format!("`{name}` is not a usable sweep name"),
                Some(hint.into()),
            );
        }
        name
    }

    fn method(&mut self, entry: Option<(&Key, &Node)>) -> Option<Method> {
        let Some((_, node)) = entry else {
            return Some(Method::Grid);
        };
        match self.string(node, "method").as_deref() {
            Some("grid") => Some(Method::Grid),
            Some("random") => Some(Method::Random),
            Some("mo-asha") => Some(Method::MoAsha),
            None => None,
            Some(other) => {
                let hint = match other {
                    "bayes" => {
                        "cg has no Bayesian search; use `grid`, `random` or `mo-asha`".to_string()
                    }
                    "asha" | "mo_asha" | "moasha" | "hyperband" => {
                        "did you mean `mo-asha`?".to_string()
                    }
                    _ => "`grid`, `random` or `mo-asha`".to_string(),
                };
                self.sink.push(
                    node.pos,
                    "method",
                    format!("unknown method `{other}`"),
                    Some(hint),
                );
                None
            }
        }
    }

    fn n_samples(&mut self, method: Method, entry: Option<(&Key, &Node)>) -> usize {
        match (method, entry) {
            (Method::Random | Method::MoAsha, Some((_, node))) => {
                match self.uint(node, "n_samples") {
                    Some(0) => {
                        self.sink.error(node.pos, "n_samples", "must be at least 1");
                        0
                    }
                    Some(n) if n > MAX_JOBS as u64 => {
                        self.sink.error(
                            node.pos,
                            "n_samples",
                            format!("must be at most {MAX_JOBS}, got {n}"),
                        );
                        0
                    }
                    Some(n) => n as usize,
                    None => 0,
                }
            }
            (Method::Random | Method::MoAsha, None) => {
                self.sink.push(
                    Pos::START,
                    "n_samples",
                    format!(
                        "missing: `method: {}` needs the number of draws",
                        method.as_str()
                    ),
                    Some("add e.g. `n_samples: 20`".into()),
                );
                0
            }
            (Method::Grid, Some((key, _))) => {
                self.sink.push(
                    key.pos,
                    "n_samples",
                    "only used by `method: random` and `method: mo-asha`",
                    Some("a grid runs every combination".into()),
                );
                0
            }
            (Method::Grid, None) => 0,
        }
    }

    /// `fidelity: {min_epochs, max_epochs, eta}`: required by `method: mo-asha`, refused elsewhere.
    fn fidelity(
        &mut self,
        method: Option<Method>,
        entry: Option<(&Key, &Node)>,
    ) -> Option<Fidelity> {
        let example = "add e.g. `fidelity: {min_epochs: 1, max_epochs: 9, eta: 3}`";
        let Some((key, node)) = entry else {
            if method == Some(Method::MoAsha) {
                self.sink.push(
                    Pos::START,
                    "fidelity",
                    "missing: `method: mo-asha` needs the epochs of its rungs",
                    Some(example.into()),
                );
            }
            return None;
        };
        if method != Some(Method::MoAsha) {
            if method.is_some() {
                self.sink
                    .push(key.pos, "fidelity", "only used by `method: mo-asha`", None);
            }
            return None;
        }
        let entries = self.map(node, "fidelity")?;
        let (mut min, mut max, mut eta) = (None, None, None);
        // Keys given with a value of the wrong type: reported as such, never also as missing.
        let mut given: Vec<&str> = Vec::new();
        for (k, value) in unique_entries(entries) {
            let path = format!("fidelity.{}", k.name);
            let (slot, least) = match k.name.as_str() {
                "min_epochs" => (&mut min, 1),
                "max_epochs" => (&mut max, 1),
                "eta" => (&mut eta, 2),
                other => {
                    let known = ["min_epochs", "max_epochs", "eta"].map(String::from);
                    let hint = cg_core::closest(other, &known)
                        .map(|k| format!("did you mean `{k}`?"))
                        .or_else(|| Some("`min_epochs`, `max_epochs` and `eta`".into()));
                    self.sink.push(k.pos, &path, "unknown key", hint);
                    continue;
                }
            };
            match value.value {
                Value::Int(i) if i < 0 => {
                    self.sink.error(
                        value.pos,
                        &path,
                        format!("must be at least {least}, got {i}"),
                    );
                    given.push(k.name.as_str());
                }
                Value::Int(i) => *slot = Some((i as usize, value.pos)),
                Value::UInt(u) => {
                    *slot = Some((usize::try_from(u).unwrap_or(usize::MAX), value.pos));
                }
                _ => {
                    let found = match value.value {
                        Value::Float(f) => f.to_string(),
                        _ => value.kind_name().to_string(),
                    };
                    self.sink.error(
                        value.pos,
                        &path,
                        format!("must be a whole number >= {least}, got {found}"),
                    );
                    given.push(k.name.as_str());
                }
            }
        }
        let mut ok = true;
        for (name, v) in [("min_epochs", min), ("max_epochs", max), ("eta", eta)] {
            if v.is_none() {
                if !given.contains(&name) {
                    self.sink.push(
                        node.pos,
                        &format!("fidelity.{name}"),
                        "missing",
                        Some(example.into()),
                    );
                }
                ok = false;
            }
        }
        let ((min, min_pos), (max, max_pos), (eta, eta_pos)) = (min?, max?, eta?);
        if min < 1 {
            self.sink
                .error(min_pos, "fidelity.min_epochs", "must be at least 1");
            ok = false;
        }
        if max < min {
            self.sink.error(
                max_pos,
                "fidelity.max_epochs",
                format!("must be at least `min_epochs` ({min}), got {max}"),
            );
            ok = false;
        }
        if eta < 2 {
            self.sink.push(
                eta_pos,
                "fidelity.eta",
                format!("must be at least 2, got {eta}"),
                Some("each rung keeps 1/eta of the one below".into()),
            );
            ok = false;
        }
        ok.then_some(Fidelity {
            min_epochs: min,
            max_epochs: max,
            eta,
        })
    }

    /// `sampler: random | nsga2` (default `nsga2`): `method: mo-asha` only.
    fn sampler(&mut self, method: Option<Method>, entry: Option<(&Key, &Node)>) -> Sampler {
        let Some((key, node)) = entry else {
            return Sampler::Nsga2;
        };
        if method != Some(Method::MoAsha) {
            if method.is_some() {
                self.sink
                    .push(key.pos, "sampler", "only used by `method: mo-asha`", None);
            }
            return Sampler::Nsga2;
        }
        match self.string(node, "sampler").as_deref() {
            Some("random") => Sampler::Random,
            Some("nsga2") | None => Sampler::Nsga2,
            Some(other) => {
                let hint = match other {
                    "nsga-ii" | "nsga_ii" | "nsga-2" | "nsgaii" => "did you mean `nsga2`?",
                    _ => "`random` or `nsga2`",
                };
                self.sink.push(
                    node.pos,
                    "sampler",
                    format!("unknown sampler `{other}`"),
                    Some(hint.into()),
                );
                Sampler::Nsga2
            }
        }
    }

    /// Run-file settings under `node` (dotted keys or nested mappings) → flat (key, value) list.
    fn settings(&mut self, node: &Node, prefix: &str, path: &str, out: &mut Vec<Setting>) {
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
    fn leaf(&mut self, run_key: &str, shown: &str, node: &Node) -> Option<Json> {
        let Some(mut json) = node.to_json() else {
            self.sink.error(node.pos, shown, "not a finite number");
            return None;
        };
        if let Some((message, hint)) = type_problem(&self.base, run_key, &json) {
            self.sink.push(node.pos, shown, message, hint);
            return None;
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

    fn presets(&mut self, node: Option<&Node>) -> Presets {
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
    fn baseline(&mut self, node: Option<&Node>) -> Option<Choice> {
        let node = node?;
        if node.is_null() {
            self.sink.push(
                node.pos,
                "baseline",
                "empty baseline",
                Some("give it settings, e.g. `{model.kind: resnet}`".into()),
            );
            return None;
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
    fn parameters(&mut self, node: Option<&Node>, presets: &Presets) -> Vec<(Axis, Pos)> {
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
    fn spec_entries<'n>(
        &mut self,
        path: &str,
        spec: &'n Node,
    ) -> Option<HashMap<&'n str, (&'n Key, &'n Node)>> {
        let Some(entries) = spec.as_map() else {
            let hint = match spec.value {
                Value::Seq(_) => "write `{values: [...]}`",
                _ => "write `{value: ...}`, `{values: [...]}` or `{min: ..., max: ...}`",
            };
            self.sink.push(
                spec.pos,
                path,
                format!("wrong type: expected a mapping, found {}", spec.kind_name()),
                Some(hint.into()),
            );
            return None;
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

    fn preset_axis(&mut self, path: &str, spec: &Node, presets: &Presets) -> Option<Axis> {
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

    fn axis(&mut self, run_key: &str, path: &str, spec: &Node) -> Option<Axis> {
        let entries = self.spec_entries(path, spec)?;
        let get = |k: &str| entries.get(k).copied();
        let distribution = match get("distribution") {
            Some((_, node)) => {
                let d = self.string(node, &format!("{path}.distribution"))?;
                if !DISTRIBUTIONS.contains(&d.as_str()) {
                    let known: Vec<String> = DISTRIBUTIONS.iter().map(|s| s.to_string()).collect();
                    let hint = match d.as_str() {
                        "log_uniform" => {
                            Some("cg takes the bounds themselves: use `log_uniform_values`".into())
                        }
                        "q_uniform"
                        | "q_log_uniform"
                        | "q_log_uniform_values"
                        | "normal"
                        | "log_normal"
                        | "q_normal" => Some(format!("one of {}", DISTRIBUTIONS[..3].join(", "))),
                        other => {
                            cg_core::closest(other, &known).map(|k| format!("did you mean `{k}`?"))
                        }
                    };
                    self.sink.push(
                        node.pos,
                        &format!("{path}.distribution"),
                        format!("unknown distribution `{d}`"),
                        hint,
                    );
                    return None;
                }
                Some((d, node.pos))
            }
            None => None,
        };
        let dist = distribution.as_ref().map(|(d, _)| d.as_str());
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
            return None;
        }

        if let Some((_, node)) = get("value") {
            self.only_with_range(
                path,
                &entries,
                &["distribution", "grid_points"],
                dist,
                "constant",
            );
            let json = self.leaf(run_key, &format!("{path}.value"), node)?;
            let choice = self.choice(json.clone(), vec![(run_key.into(), json)]);
            return Some(self.new_axis(run_key, true, AxisKind::Values(vec![choice])));
        }
        if let Some((_, node)) = get("values") {
            self.only_with_range(
                path,
                &entries,
                &["distribution", "grid_points"],
                dist,
                "categorical",
            );
            let items = self.list(node, &format!("{path}.values"), "[0.5, 1.0]")?;
            if items.is_empty() {
                self.sink.error(
                    node.pos,
                    &format!("{path}.values"),
                    "empty list: the sweep would have no jobs",
                );
                return None;
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
                choices.push(self.choice(json.clone(), vec![(run_key.into(), json)]));
            }
            return Some(self.new_axis(run_key, false, AxisKind::Values(choices)));
        }

        // A range.
        let (Some((_, min_node)), Some((_, max_node))) = (get("min"), get("max")) else {
            let (key, _) = get("min")
                .or(get("max"))
                .expect("one of min/max is present");
            self.sink
                .error(key.pos, path, "a range needs both `min` and `max`");
            return None;
        };
        let fractions = takes_fractions(run_key);
        let both_int = is_int(min_node) && is_int(max_node);
        let dist = match dist {
            Some(d) => d.to_string(),
            None if both_int && !fractions => "int_uniform".into(),
            None => "uniform".into(),
        };
        if matches!(dist.as_str(), "categorical" | "constant") {
            let (_, pos) = distribution.expect("given");
            self.sink.push(
                pos,
                &format!("{path}.distribution"),
                format!("`{dist}` goes with `values`/`value`, not `min`/`max`"),
                None,
            );
            return None;
        }
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
            self.sink.push(
                min_node.pos,
                &format!("{path}.min"),
                format!("min ({min}) is greater than max ({max})"),
                Some("swap them".into()),
            );
            return None;
        }
        if dist != "int_uniform" && !fractions {
            self.sink.push(
                spec.pos,
                path,
                format!("`{dist}` gives fractional values but `{run_key}` takes whole numbers"),
                Some("use `distribution: int_uniform` or `values`".into()),
            );
            return None;
        }
        if dist == "log_uniform_values" && min <= 0.0 {
            self.sink.push(
                min_node.pos,
                &format!("{path}.min"),
                format!("log_uniform_values needs min > 0, got {min}"),
                None,
            );
            return None;
        }
        let grid_points = match get("grid_points") {
            Some((key, node)) => match self.uint(node, &format!("{path}.grid_points")) {
                Some(n) if n > MAX_GRID_POINTS => {
                    self.sink.push(
                        node.pos,
                        &format!("{path}.grid_points"),
                        format!("must be at most {MAX_GRID_POINTS}, got {n}"),
                        None,
                    );
                    return None;
                }
                Some(n) if n >= 2 => Some((n as usize, key.pos)),
                Some(n) => {
                    self.sink.push(
                        node.pos,
                        &format!("{path}.grid_points"),
                        format!("must be at least 2, got {n}"),
                        Some("for one value write `value:`".into()),
                    );
                    return None;
                }
                None => return None,
            },
            None => None,
        };
        if dist == "int_uniform" {
            if !both_int {
                let node = if is_int(min_node) { max_node } else { min_node };
                self.sink
                    .error(node.pos, path, "int_uniform needs whole-number bounds");
                return None;
            }
            let (Some(lo), Some(hi)) = (int_of(min_node), int_of(max_node)) else {
                self.sink
                    .error(spec.pos, path, "bounds out of range for int_uniform");
                return None;
            };
            let kind = match grid_points {
                Some((n, _)) if self.grid => AxisKind::Values(
                    int_grid(lo, hi, n)
                        .into_iter()
                        .map(|v| self.choice(Json::from(v), vec![(run_key.into(), Json::from(v))]))
                        .collect(),
                ),
                _ => AxisKind::IntRange { min: lo, max: hi },
            };
            return Some(self.new_axis(run_key, false, kind));
        }
        let log = dist == "log_uniform_values";
        if !self.grid {
            let kind = if log {
                AxisKind::LogUniform { min, max }
            } else {
                AxisKind::Uniform { min, max }
            };
            return Some(self.new_axis(run_key, false, kind));
        }
        let Some((n, _)) = grid_points else {
            self.sink.push(
                spec.pos,
                path,
                format!("a grid cannot enumerate the continuous range {min}..{max}"),
                Some("add `grid_points: N`, list `values`, or use `method: random`".into()),
            );
            return None;
        };
        let choices = float_grid(min, max, n, log)
            .into_iter()
            .map(|v| self.choice(Json::from(v), vec![(run_key.into(), Json::from(v))]))
            .collect();
        Some(self.new_axis(run_key, false, AxisKind::Values(choices)))
    }

    /// Reports `distribution`/`grid_points` on a `value`/`values` parameter (W&B's `categorical` and
    /// `constant` are accepted where they fit).
    fn only_with_range(
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

    fn seeds(&mut self, node: Option<&Node>, axes: &[(Axis, Pos)]) -> Vec<u64> {
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

    fn objectives(&mut self, node: Option<&Node>) -> Vec<Objective> {
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
        let metrics: Vec<String> = METRICS.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        // The metrics named so far, in order.
        let mut seen: Vec<String> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("objectives[{i}]");
            let Some(entries) = self.map(item, &path) else {
                continue;
            };
            let (mut metric, mut direction) = (None, None);
            for (key, value) in unique_entries(entries) {
                let key_path = join(&path, &key.name);
                match key.name.as_str() {
                    "metric" => {
                        let Some(m) = self.string(value, &key_path) else {
                            continue;
                        };
                        if let Some(first) = seen.iter().position(|s| *s == m) {
                            self.sink.push(
                                value.pos,
                                &key_path,
                                format!("`{m}` is an objective already (objectives[{first}])"),
                                Some("name each metric once".into()),
                            );
                        }
                        seen.push(m.clone());
                        if METRICS.contains(&m.as_str()) {
                            metric = Some(m);
                        } else {
                            let hint = cg_core::closest(&m, &metrics)
                                .map(|k| format!("did you mean `{k}`?"))
                                .unwrap_or_else(|| format!("one of {}", METRICS.join(", ")));
                            self.sink.push(
                                value.pos,
                                &key_path,
                                format!("unknown metric `{m}`"),
                                Some(hint),
                            );
                            metric = Some(String::new());
                        }
                    }
                    "direction" => match self.string(value, &key_path).as_deref() {
                        Some("maximize") => direction = Some(Direction::Maximize),
                        Some("minimize") => direction = Some(Direction::Minimize),
                        Some(other) => {
                            self.sink.push(
                                value.pos,
                                &key_path,
                                format!("unknown direction `{other}`"),
                                Some("`maximize` or `minimize`".into()),
                            );
                            direction = Some(Direction::Maximize);
                        }
                        None => direction = Some(Direction::Maximize),
                    },
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
                (Some(metric), Some(direction)) => out.push(Objective { metric, direction }),
                (None, _) => self.sink.error(item.pos, &path, "missing `metric`"),
                (_, None) => self.sink.push(
                    item.pos,
                    &path,
                    "missing `direction`",
                    Some("`maximize` or `minimize`".into()),
                ),
            }
        }
        out
    }

    /// `reference_point`: one number per objective, each one that some result can beat.
    fn reference_point(
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

/// The value at a dotted key of a JSON tree.
fn lookup<'a>(root: &'a Json, key: &str) -> Option<&'a Json> {
    key.split('.').try_fold(root, |node, part| node.get(part))
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

    #[test]
    fn set_json_makes_objects() {
        let mut j = serde_json::json!({"gate": {"threshold": 1.0}});
        set_json(&mut j, "gate.threshold", Json::from(0.5));
        set_json(&mut j, "dataset.synthetic.n_train", Json::from(10));
        assert_eq!(
            j,
            serde_json::json!({"gate": {"threshold": 0.5}, "dataset": {"synthetic": {"n_train": 10}}})
        );
    }
}
