//! The sweep keys that say what kind of sweep a file is: `name`, `method`, `n_samples`, `fidelity`,
//! `sampler`, `seed` and `controls`, each read and checked by the [`Loader`], and the checks that only
//! `method: mo-asha` makes on the rest of the file.

use std::path::Path;

use cg_core::{Control, Fidelity, RunConfig, Sampler};

use super::loader::{Loader, Top};
use crate::diag::Pos;
use crate::source::Positions;
use crate::sweep::{Axis, MAX_JOBS, Method};
use crate::yaml::{Key, Node, Value, unique_entries};

impl Loader<'_> {
    /// `name`: a usable sweep name, the file's stem when absent.
    pub(super) fn name(&mut self, entry: Option<(&Key, &Node)>, origin: &str) -> String {
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

    /// `method` (`grid` when absent); `None` when it is unknown (reported).
    pub(super) fn method(&mut self, entry: Option<(&Key, &Node)>) -> Option<Method> {
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

    /// `n_samples`: required by `method: random` and `mo-asha`, refused by a grid (0 then).
    pub(super) fn n_samples(&mut self, method: Method, entry: Option<(&Key, &Node)>) -> usize {
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
    pub(super) fn fidelity(
        &mut self,
        method: Option<Method>,
        entry: Option<(&Key, &Node)>,
    ) -> Option<Fidelity> {
        let Some((key, node)) = entry else {
            if method == Some(Method::MoAsha) {
                self.sink.push(
                    Pos::START,
                    "fidelity",
                    "missing: `method: mo-asha` needs the epochs of its rungs",
                    Some(FIDELITY_EXAMPLE.into()),
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
        let read = self.fidelity_entries(entries);
        self.report_missing_fidelity(node, &read);
        let (min, max, eta) = (read.min?, read.max?, read.eta?);
        self.fidelity_bounds(min, max, eta).then_some(Fidelity {
            min_epochs: min.0,
            max_epochs: max.0,
            eta: eta.0,
        })
    }

    /// The entries of `fidelity`, each a whole number; unknown keys and wrong values reported.
    fn fidelity_entries<'n>(&mut self, entries: &'n [(Key, Node)]) -> FidelityRead<'n> {
        let mut read = FidelityRead::default();
        for (k, value) in unique_entries(entries) {
            let path = format!("fidelity.{}", k.name);
            let (slot, least) = match k.name.as_str() {
                "min_epochs" => (&mut read.min, 1),
                "max_epochs" => (&mut read.max, 1),
                "eta" => (&mut read.eta, 2),
                other => {
                    let known = ["min_epochs", "max_epochs", "eta"].map(String::from);
                    let hint = cg_core::closest(other, &known)
                        .map(|k| format!("did you mean `{k}`?"))
                        .or_else(|| Some("`min_epochs`, `max_epochs` and `eta`".into()));
                    self.sink.push(k.pos, &path, "unknown key", hint);
                    continue;
                }
            };
            match self.fidelity_number(&path, value, least) {
                Some(number) => *slot = Some(number),
                None => read.given.push(k.name.as_str()),
            }
        }
        read
    }

    /// One whole number of `fidelity` with its position; a negative or non-whole one reported
    /// (`least` is only named in the message: the bounds are checked once all three are read).
    fn fidelity_number(&mut self, path: &str, value: &Node, least: usize) -> Option<(usize, Pos)> {
        match value.value {
            Value::Int(i) if i < 0 => {
                self.sink.error(
                    value.pos,
                    path,
                    format!("must be at least {least}, got {i}"),
                );
                None
            }
            Value::Int(i) => Some((i as usize, value.pos)),
            Value::UInt(u) => Some((usize::try_from(u).unwrap_or(usize::MAX), value.pos)),
            _ => {
                let found = match value.value {
                    Value::Float(f) => f.to_string(),
                    _ => value.kind_name().to_string(),
                };
                self.sink.error(
                    value.pos,
                    path,
                    format!("must be a whole number >= {least}, got {found}"),
                );
                None
            }
        }
    }

    /// Each of the three that is absent, and not given with a wrong value, reported as missing.
    fn report_missing_fidelity(&mut self, node: &Node, read: &FidelityRead<'_>) {
        for (name, v) in [
            ("min_epochs", read.min),
            ("max_epochs", read.max),
            ("eta", read.eta),
        ] {
            if v.is_none() && !read.given.contains(&name) {
                self.sink.push(
                    node.pos,
                    &format!("fidelity.{name}"),
                    "missing",
                    Some(FIDELITY_EXAMPLE.into()),
                );
            }
        }
    }

    /// Whether the three values make a schedule of rungs; each one that does not is reported.
    fn fidelity_bounds(
        &mut self,
        (min, min_pos): (usize, Pos),
        (max, max_pos): (usize, Pos),
        (eta, eta_pos): (usize, Pos),
    ) -> bool {
        let mut ok = true;
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
        ok
    }

    /// `sampler: random | nsga2` (default `nsga2`): `method: mo-asha` only.
    pub(super) fn sampler(
        &mut self,
        method: Option<Method>,
        entry: Option<(&Key, &Node)>,
    ) -> Sampler {
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

    /// `seed`: where the draws of `method: random` and `mo-asha` start (0 when absent).
    pub(super) fn seed(&mut self, method: Option<Method>, entry: Option<(&Key, &Node)>) -> u64 {
        let Some((key, node)) = entry else {
            return 0;
        };
        if method == Some(Method::Grid) {
            self.sink.push(
                key.pos,
                "seed",
                "only used by `method: random` and `method: mo-asha`",
                Some("for training seeds write `seeds: [0, 1, 2]`".into()),
            );
        }
        self.uint(node, "seed").unwrap_or(0)
    }

    /// What `method: mo-asha` refuses in the rest of the file: no reference point, a schedule or
    /// stop of its own, an axis on the epochs. (`seeds` is welcome: each configuration trains once
    /// per seed, and the search takes their mean.)
    pub(super) fn check_mo_asha(
        &mut self,
        top: &Top<'_>,
        fidelity: Option<Fidelity>,
        axes: &[(Axis, Pos)],
        base: Option<&RunConfig>,
        positions: &Positions,
    ) {
        if !top.contains_key("reference_point") {
            self.sink.push(
                Pos::START,
                "reference_point",
                "missing: `method: mo-asha` measures its hypervolume against a declared reference point",
                Some("add one value per objective, e.g. `reference_point: [0.1, 0.0]`".into()),
            );
        }
        if let (Some(f), Some(base)) = (fidelity, base) {
            self.check_base_epochs(f, base, positions);
        }
        if let Some(pos) = positions.value("train.stop_after") {
            self.sink.push(
                pos,
                "train.stop_after",
                "not used by `method: mo-asha`: each rung sets where its jobs stop",
                Some("remove it; `fidelity` sets the rungs".into()),
            );
        }
        for (axis, pos) in axes {
            if axis.key == "train.epochs" || axis.key == "train.stop_after" {
                self.sink.push(
                    *pos,
                    &format!("parameters.{}", axis.key),
                    "conflicts with `fidelity`, which sets the epochs of each rung",
                    Some("set `fidelity.max_epochs` instead".into()),
                );
            }
        }
    }

    /// The fidelity sets every job's schedule and stop: a base `train.epochs` would be overridden.
    fn check_base_epochs(&mut self, f: Fidelity, base: &RunConfig, positions: &Positions) {
        if let Some(pos) = positions.value("train.epochs")
            && base.train.epochs != f.max_epochs
        {
            self.sink.push(
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
    }
}

/// An example of `fidelity` for hints.
const FIDELITY_EXAMPLE: &str = "add e.g. `fidelity: {min_epochs: 1, max_epochs: 9, eta: 3}`";

/// The three numbers of `fidelity` as read (with their positions), and the keys given with a
/// wrong value (reported as such, never also as missing).
#[derive(Default)]
struct FidelityRead<'n> {
    min: Option<(usize, Pos)>,
    max: Option<(usize, Pos)>,
    eta: Option<(usize, Pos)>,
    given: Vec<&'n str>,
}

impl Loader<'_> {
    /// `controls`: a list of distinct control kinds (`static`, `narrow`); empty when absent.
    pub(super) fn controls(&mut self, node: Option<&Node>) -> Vec<Control> {
        let Some(node) = node else {
            return Vec::new();
        };
        let Some(items) = self.list(node, "controls", "[static, narrow]") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let key = format!("controls[{i}]");
            let Some(name) = self.string(item, &key) else {
                continue;
            };
            match Control::parse(&name) {
                Some(c) if out.contains(&c) => self.sink.push(
                    item.pos,
                    &key,
                    format!("control `{name}` is listed twice"),
                    Some("list each control once".into()),
                ),
                Some(c) => out.push(c),
                None => {
                    let known = ["static", "narrow"].map(String::from);
                    let hint = cg_core::closest(&name, &known)
                        .map(|k| format!("did you mean `{k}`?"))
                        .or_else(|| Some("`static` or `narrow`".into()));
                    self.sink
                        .push(item.pos, &key, format!("unknown control `{name}`"), hint);
                }
            }
        }
        out
    }
}
