//! The [`Sweep`] type and its expansion: a loaded, checked sweep file (base settings, axes, seeds,
//! baseline, objectives, and for `method: mo-asha` the search settings), and how it turns into jobs in
//! a fixed order with stable ids. A sweep never names a program or a command: each job is a typed
//! [`RunConfig`]. Loading and checking a file is [`crate::load`]'s; this module knows no YAML.
//!
//! Order of settings in a job: base sections, then the chosen preset, then the other axes in file
//! order, then `train.seed` from `seeds`. Grid order: the first axis varies slowest, seeds fastest.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use cg_core::rng::{SplitMix64, unit_of};
use cg_core::{
    AxisSpace, Control, Coord, Fidelity, JobSpec, Objective, RunConfig, Sampler, SearchSettings,
    SweepInfo,
};
use serde_json::{Map, Value as Json};

use crate::diag::Pos;
use crate::error::{Error, Result};
use crate::id::{data_fingerprint, id_from_settings, job_id};
use crate::keys::PRESET_AXIS;

/// Sweeps larger than this need explicit confirmation (`cg sweep --yes`).
pub const DEFAULT_JOB_LIMIT: usize = 10_000;

/// No sweep may have more jobs than this, even with `--yes`: the queue stores every one of them.
pub const MAX_JOBS: usize = 1_000_000;

/// Most values of one `grid_points` axis.
pub const MAX_GRID_POINTS: u64 = 10_000;

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
    pub(crate) name: String,
    /// The file as diagnostics name it, and the position of its `name:` value (`None`: the name
    /// is the file's stem).
    pub(crate) origin: String,
    pub(crate) name_pos: Option<Pos>,
    pub(crate) description: Option<String>,
    pub(crate) method: Method,
    pub(crate) source_text: String,
    /// The directory relative data paths resolve against (the file's).
    pub(crate) base_dir: std::path::PathBuf,
    pub(crate) base: RunConfig,
    /// The sections that axes or seeds change, with the base's JSON of each (rebuilt per job).
    pub(crate) sections: Vec<(String, Json)>,
    pub(crate) axes: Vec<Axis>,
    pub(crate) seeds: Vec<u64>,
    /// `baseline`: the settings of one reference job per seed, outside the axes and the search.
    pub(crate) baseline: Option<Choice>,
    pub(crate) n_samples: usize,
    pub(crate) seed: u64,
    pub(crate) objectives: Vec<Objective>,
    pub(crate) reference_point: Vec<f64>,
    /// `controls`: the matched-compute controls trained once the front is known (cg-daemon).
    pub(crate) controls: Vec<Control>,
    /// `method: mo-asha` only.
    pub(crate) fidelity: Option<Fidelity>,
    pub(crate) sampler: Sampler,
    pub(crate) base_fingerprint: String,
    /// Whether some axis or preset changes a `dataset.*` key (then fingerprints are per job).
    pub(crate) varies_data: bool,
    /// The base's non-default settings without `dataset.path`: what a job id hashes, before the axes.
    pub(crate) base_settings: BTreeMap<String, Json>,
    /// Whether job ids may be computed from `base_settings` and the choices' deltas (else from each config).
    pub(crate) fast_ids: bool,
    /// cg-core's default `train.seed`, as JSON.
    pub(crate) seed_default: Json,
}

#[derive(Debug, Clone)]
pub(crate) struct Axis {
    pub(crate) key: String,
    /// A `value:` parameter: set in every job, but not an axis of the sweep.
    pub(crate) fixed: bool,
    pub(crate) kind: AxisKind,
    /// The default value at `key` as cg-core serialises it (null when absent), for job ids.
    pub(crate) default: Json,
    /// Whether the key takes fractional numbers (so an integer drawn for it is written as a float).
    pub(crate) fractions: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum AxisKind {
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
pub(crate) struct Choice {
    pub(crate) shown: Json,
    /// (dotted key, value as cg-core serialises it).
    pub(crate) settings: Vec<(String, Json)>,
    /// What the choice changes in the job's non-default settings: `None` = back to the default. Keys that
    /// job ids leave out (`dataset.path`, `dataset.kind`) are not listed.
    pub(crate) delta: Vec<(String, Option<Json>)>,
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

    /// The axis as a dimension of a search space.
    fn space(&self) -> AxisSpace {
        match &self.kind {
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
        }
    }

    /// The choice at a coordinate of [`Axis::space`]; `None` when it does not fit the axis.
    fn pick_at(&self, coord: &Coord) -> Option<Cow<'_, Choice>> {
        Some(match (&self.kind, coord) {
            (AxisKind::Values(v), Coord::Choice(i)) => Cow::Borrowed(v.get(*i)?),
            (AxisKind::IntRange { min, max }, Coord::Int(x)) if min <= x && x <= max => {
                Cow::Owned(self.scalar(*x))
            }
            (
                AxisKind::Uniform { min, max } | AxisKind::LogUniform { min, max },
                Coord::Float(x),
            ) if min <= x && x <= max => Cow::Owned(self.scalar(*x)),
            _ => return None,
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
            controls: self.controls.clone(),
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
        self.seed_list()
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

    /// The seeds each point is trained with: `None` once when the file gives no `seeds`.
    fn seed_list(&self) -> Vec<Option<u64>> {
        if self.seeds.is_empty() {
            vec![None]
        } else {
            self.seeds.iter().copied().map(Some).collect()
        }
    }

    /// Calls `f` with the axis values, the configuration and (when `fast_ids`) the non-default settings of
    /// each job, in order: each point of the axes, then each seed of it.
    fn for_each_job(
        &self,
        mut f: impl FnMut(Map<String, Json>, RunConfig, Option<&BTreeMap<String, Json>>),
    ) {
        let seeds = self.seed_list();
        let mut emit =
            |picks: &[Cow<'_, Choice>]| self.emit_seeds(self.point(picks), &seeds, &mut f);
        match self.method {
            Method::Grid => self.for_each_grid_point(&mut emit),
            Method::Random | Method::MoAsha => self.for_each_random_point(&mut emit),
        }
    }

    /// Every combination of the axes' values, the last axis turning fastest (an odometer).
    fn for_each_grid_point(&self, emit: &mut impl FnMut(&[Cow<'_, Choice>])) {
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
            if !turn_odometer(&mut index, &sizes) {
                return;
            }
        }
    }

    /// `n_samples` draws of one value per axis, from one generator seeded with `seed`.
    fn for_each_random_point(&self, emit: &mut impl FnMut(&[Cow<'_, Choice>])) {
        let mut rng = SplitMix64::new(self.seed);
        for _ in 0..self.n_samples {
            let picks: Vec<Cow<'_, Choice>> =
                self.axes.iter().map(|a| a.random_pick(&mut rng)).collect();
            emit(&picks);
        }
    }

    /// One point of the axes before its seeds: only the sections that some axis touches are
    /// rebuilt; the rest is the base's, cloned.
    fn point(&self, picks: &[Cow<'_, Choice>]) -> Point {
        let mut sections = self.base_sections();
        let mut settings = self.fast_ids.then(|| self.base_settings.clone());
        for choice in self.presets_first(picks) {
            for (key, value) in &choice.settings {
                self.set_in_sections(&mut sections, key, value.clone());
            }
            if let Some(settings) = &mut settings {
                apply_delta(settings, &choice.delta);
            }
        }
        Point {
            sections,
            params: self.axis_params(picks),
            settings,
        }
    }

    /// Hands `f` one job per seed of `point`.
    fn emit_seeds(
        &self,
        mut point: Point,
        seeds: &[Option<u64>],
        f: &mut impl FnMut(Map<String, Json>, RunConfig, Option<&BTreeMap<String, Json>>),
    ) {
        let n = seeds.len();
        for (i, seed) in seeds.iter().enumerate() {
            // The last seed takes the values; the others clone them.
            let mut job = if i + 1 == n {
                std::mem::take(&mut point)
            } else {
                point.clone()
            };
            if let Some(seed) = seed {
                self.set_seed(&mut job, *seed);
            }
            let config = self.config_from(job.sections);
            f(job.params, config, job.settings.as_ref());
        }
    }

    /// `train.seed` set in a point's sections, params and settings.
    fn set_seed(&self, point: &mut Point, seed: u64) {
        let value = Json::from(seed);
        let train = self
            .sections
            .iter()
            .position(|(name, _)| name == "train")
            .expect("seeds make `train` a rebuilt section");
        set_json(&mut point.sections[train], "seed", value.clone());
        point.params.insert("train.seed".into(), value.clone());
        if let Some(settings) = &mut point.settings {
            let change = (value != self.seed_default).then_some(value);
            apply_delta(settings, &[("train.seed".into(), change)]);
        }
    }

    /// The settings of a `method: mo-asha` sweep; `None` for the other methods.
    pub fn search_settings(&self) -> Option<SearchSettings> {
        let fidelity = self.fidelity?;
        let space = self
            .axes
            .iter()
            .filter(|a| !a.fixed)
            .map(Axis::space)
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
        self.seeded_job_at(point, stop_after, None)
    }

    /// The training seeds of each point (`seeds`); empty when the file gives none.
    pub fn seeds(&self) -> &[u64] {
        &self.seeds
    }

    /// The jobs of a point of [`Sweep::search_settings`]'s space at a rung of a search: one per
    /// seed of `seeds`, in its order, each with `train.seed` set (in its params too); the one
    /// job of [`Sweep::job_at`] when the file gives no `seeds`. `None` when the point does not
    /// fit the space.
    pub fn search_jobs(&self, point: &[Coord], stop_after: Option<usize>) -> Option<Vec<JobSpec>> {
        self.seed_list()
            .into_iter()
            .map(|seed| self.seeded_job_at(point, stop_after, seed))
            .collect()
    }

    /// [`Sweep::job_at`] with `train.seed` set to `seed` when given.
    fn seeded_job_at(
        &self,
        point: &[Coord],
        stop_after: Option<usize>,
        seed: Option<u64>,
    ) -> Option<JobSpec> {
        let mut coords = point.iter();
        let mut picks: Vec<Cow<'_, Choice>> = Vec::with_capacity(self.axes.len());
        for axis in &self.axes {
            if axis.fixed {
                picks.push(axis.grid_pick(0));
                continue;
            }
            picks.push(axis.pick_at(coords.next()?)?);
        }
        if coords.next().is_some() {
            return None;
        }
        let (mut params, mut config) = self.build(&picks);
        if let Some(seed) = seed {
            config.train.seed = seed;
            params.insert("train.seed".into(), Json::from(seed));
        }
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
        let mut sections = self.base_sections();
        for choice in choices {
            for (key, value) in &choice.settings {
                self.set_in_sections(&mut sections, key, value.clone());
            }
        }
        self.config_from(sections)
    }

    /// The base's JSON of each section that axes or seeds change, to be rebuilt.
    fn base_sections(&self) -> Vec<Json> {
        self.sections.iter().map(|(_, j)| j.clone()).collect()
    }

    /// The base configuration with its rebuilt sections put back.
    fn config_from(&self, sections: Vec<Json>) -> RunConfig {
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

/// One point of the axes on its way to jobs: the rebuilt sections, the axis values shown, and
/// (when `fast_ids`) the non-default settings.
#[derive(Clone, Default)]
struct Point {
    sections: Vec<Json>,
    params: Map<String, Json>,
    settings: Option<BTreeMap<String, Json>>,
}

/// Turns the odometer `index` one step (the last digit fastest); `false` once it has gone round.
fn turn_odometer(index: &mut [usize], sizes: &[usize]) -> bool {
    for d in (0..index.len()).rev() {
        index[d] += 1;
        if index[d] < sizes[d] {
            return true;
        }
        index[d] = 0;
    }
    false
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

/// The value at a dotted key of a JSON tree.
pub(crate) fn lookup<'a>(root: &'a Json, key: &str) -> Option<&'a Json> {
    key.split('.').try_fold(root, |node, part| node.get(part))
}

#[cfg(test)]
mod tests {
    use super::*;

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
