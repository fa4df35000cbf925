//! Finished runs grouped into configurations (a configuration = the resolved run config without
//! `train.seed`), with mean ± sample standard deviation over seeds of every reported figure (and its
//! 95% t interval, [`Stat::ci95`]), the mean gate statistics per block (open rate, CIR, routing
//! share, open rate per class) and the mean training curve. Deterministic: configurations are ordered by
//! their swept values in axis order, then by their canonical JSON. Knows nothing of fronts or files.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use cg_core::{
    BlockGateStats, CONTROL_KEY, CONTROL_OF_KEY, Control, JobRecord, METRICS, ModelKind, RunConfig,
    RunResult,
};
use serde::Serialize;
use serde_json::{Map, Value};

/// The parameter key of the seed, left out when grouping runs into configurations.
pub const SEED_KEY: &str = "train.seed";

/// Mean and sample standard deviation (n − 1 in the denominator; 0 for a single value).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
    /// Number of values averaged.
    pub n: usize,
}

impl Stat {
    /// `None` for no values.
    pub fn of(values: &[f64]) -> Option<Stat> {
        if values.is_empty() {
            return None;
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = if n > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Some(Stat { mean, std, n })
    }

    /// The half-width of the 95% Student-t interval of the mean, `t(0.975, n − 1) · std / √n`;
    /// `None` for a single value (no interval).
    pub fn ci95(&self) -> Option<f64> {
        crate::interval::half_width_95(self.std, self.n)
    }
}

/// Mean gate statistics of one block over a configuration's seeds (of its final evaluation).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockGateMean {
    pub block_idx: usize,
    pub gate_open_rate: f64,
    pub mean_cir: f64,
    /// `min(open, 1 − open)` per run, averaged; derived from the open rate for older results
    /// that lack it.
    pub routing_share: f64,
    /// The open rate per class, averaged over the runs that recorded it; `None` when none did.
    pub class_open_rates: Option<Vec<f64>>,
}

impl BlockGateMean {
    /// Whether the block routes per input, by cg-core's rule ([`BlockGateStats::routes`]) applied
    /// to the mean statistics.
    pub fn routes(&self) -> bool {
        BlockGateStats {
            block_idx: self.block_idx,
            gate_open_rate: self.gate_open_rate,
            mean_cir: self.mean_cir,
            routing_share: Some(self.routing_share),
            class_open_rates: None,
        }
        .routes()
    }
}

/// One epoch of a configuration's mean training curve (mean over the seeds that reached the epoch).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurvePoint {
    pub epoch: usize,
    pub test_acc: f64,
    /// Over the seeds that evaluated validation at this epoch; `None` when none did.
    pub val_acc: Option<f64>,
    pub savings_nominal: f64,
    pub n_seeds: usize,
}

/// What it takes to run a configuration again: a representative job (the lowest seed) and its
/// resolved configuration, written next to the report as `configs/<job_id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rerun {
    pub job_id: String,
    pub config: RunConfig,
    pub command: String,
}

/// One finished run, flattened for tables: its scalar results, without history or gates.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub job_id: String,
    pub configuration_id: String,
    pub seed: u64,
    pub params: Map<String, Value>,
    pub attempts: u32,
    /// Epochs in the run's history.
    pub epochs: usize,
    pub test_acc_final: f64,
    pub test_acc_peak: f64,
    pub val_acc_final: Option<f64>,
    pub val_acc_peak: Option<f64>,
    pub peak_epoch: usize,
    pub savings_nominal: f64,
    pub savings_actual: f64,
    pub savings_measured: Option<f64>,
    pub predictor_agreement: Option<f64>,
    pub macs_full: u64,
    pub macs_executed_nominal: f64,
    pub macs_executed_actual: f64,
    pub train_img_per_s: f64,
    pub infer_img_per_s: f64,
    pub wall_secs: f64,
    /// The training backend from the result's provenance (`unrecorded` in older results).
    pub backend: String,
    /// The kind of matched-compute control the run is; `None` for a configuration's run.
    pub control: Option<Control>,
}

/// Which front memberships a configuration has. `None`: the configuration is no candidate for that
/// front (a baseline, or a metric it lacks), or the front is not computed for this sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct FrontMembership {
    /// The front of the sweep's objectives.
    pub objectives: Option<bool>,
    /// The same objectives with `savings_nominal` replaced by `savings_actual`.
    pub actual: Option<bool>,
    /// The same objectives with `savings_nominal` replaced by `savings_measured`.
    pub measured: Option<bool>,
}

/// Finished runs of one configuration, aggregated over seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Configuration {
    /// `c1`, `c2`, … in report order, zero-padded to a common width.
    pub id: String,
    /// The swept values without the seed, `key=value, …`; `default` when nothing is swept.
    pub label: String,
    /// A compact label for plots.
    pub short_label: String,
    /// The job's swept values without the seed.
    pub params: Map<String, Value>,
    pub kind: ModelKind,
    /// Sorted seeds of the finished runs (repeated when a seed ran twice).
    pub seeds: Vec<u64>,
    pub job_ids: Vec<String>,
    /// Epochs of the longest run's history (the configured epochs when no history was kept).
    pub epochs: usize,
    pub test_acc_final: Stat,
    pub test_acc_peak: Stat,
    /// Over the seeds with a validation split; `None` when none had one.
    pub val_acc_final: Option<Stat>,
    pub val_acc_peak: Option<Stat>,
    /// Every seed held out a validation split: what chooses reads validation accuracy
    /// ([`Configuration::choice_stat`]).
    pub validation: bool,
    pub peak_epoch: Stat,
    pub savings_nominal: Stat,
    pub savings_actual: Stat,
    /// Over the seeds that measured it; `None` when none did.
    pub savings_measured: Option<Stat>,
    /// Over the seeds of predictor runs; `None` when none has a predictor.
    pub predictor_agreement: Option<Stat>,
    pub macs_full: Stat,
    pub macs_executed_nominal: Stat,
    pub macs_executed_actual: Stat,
    pub train_img_per_s: Stat,
    pub infer_img_per_s: Stat,
    pub wall_secs: Stat,
    pub gates: Vec<BlockGateMean>,
    pub curve: Vec<CurvePoint>,
    pub rerun: Rerun,
    pub front: FrontMembership,
    /// The kind of matched-compute control this is (its jobs' `control`); `None` otherwise.
    pub control: Option<Control>,
    /// A control's `control_of`: the params (without the seed) of each configuration it
    /// controls; empty for others.
    pub control_of: Vec<Map<String, Value>>,
}

impl Configuration {
    /// A plain ResNet of the sweep (no control), drawn as a reference and never a candidate for
    /// a front.
    pub fn is_baseline(&self) -> bool {
        self.kind == ModelKind::Resnet && self.control.is_none()
    }

    /// A matched-compute control: in the tables and figures with its own markers, never a
    /// front candidate, never a baseline.
    pub fn is_control(&self) -> bool {
        self.control.is_some()
    }

    /// A candidate for the fronts: a CosineGate configuration that is no control.
    pub fn is_candidate(&self) -> bool {
        self.kind == ModelKind::Cosinegate && self.control.is_none()
    }

    /// Whether this control controls the configuration whose jobs' params (without the seed)
    /// are `params`.
    pub fn controls(&self, params: &Map<String, Value>) -> bool {
        self.control_of.iter().any(|p| p == params)
    }

    /// The statistic of a metric named as in [`METRICS`]; `None` for an unknown name or a measured
    /// savings (or validation) figure no seed has.
    pub fn stat(&self, metric: &str) -> Option<Stat> {
        Some(match metric {
            "test_acc_final" => self.test_acc_final,
            "test_acc_peak" => self.test_acc_peak,
            "val_acc_final" => return self.val_acc_final,
            "val_acc_peak" => return self.val_acc_peak,
            "peak_epoch" => self.peak_epoch,
            "savings_nominal" => self.savings_nominal,
            "savings_actual" => self.savings_actual,
            "savings_measured" => return self.savings_measured,
            "predictor_agreement" => return self.predictor_agreement,
            "macs_full" => self.macs_full,
            "macs_executed_nominal" => self.macs_executed_nominal,
            "macs_executed_actual" => self.macs_executed_actual,
            "train_img_per_s" => self.train_img_per_s,
            "infer_img_per_s" => self.infer_img_per_s,
            "wall_secs" => self.wall_secs,
            _ => return None,
        })
    }

    /// The metric that a choice (the front, the hypervolume, "best") reads for an objective named
    /// `metric`: cg-core's rule ([`RunResult::choice_metric`]) for a configuration whose seeds
    /// all held out a validation split, so test accuracy is read as validation accuracy.
    pub fn choice_name<'a>(&self, metric: &'a str) -> &'a str {
        cg_core::chosen_metric(metric, self.validation)
    }

    /// The statistic a choice reads for the objective `metric` ([`Configuration::choice_name`]).
    pub fn choice_stat(&self, metric: &str) -> Option<Stat> {
        self.stat(self.choice_name(metric))
    }
}

impl RunRow {
    /// The value of a metric named as in [`METRICS`].
    pub fn metric(&self, metric: &str) -> Option<f64> {
        Some(match metric {
            "test_acc_final" => self.test_acc_final,
            "test_acc_peak" => self.test_acc_peak,
            "val_acc_final" => return self.val_acc_final,
            "val_acc_peak" => return self.val_acc_peak,
            "peak_epoch" => self.peak_epoch as f64,
            "savings_nominal" => self.savings_nominal,
            "savings_actual" => self.savings_actual,
            "savings_measured" => return self.savings_measured,
            "predictor_agreement" => return self.predictor_agreement,
            "macs_full" => self.macs_full as f64,
            "macs_executed_nominal" => self.macs_executed_nominal,
            "macs_executed_actual" => self.macs_executed_actual,
            "train_img_per_s" => self.train_img_per_s,
            "infer_img_per_s" => self.infer_img_per_s,
            "wall_secs" => self.wall_secs,
            _ => return None,
        })
    }
}

/// The value of a metric named as in [`METRICS`] in one run (cg-core's reading).
pub fn run_metric(result: &RunResult, metric: &str) -> Option<f64> {
    debug_assert!(METRICS.contains(&metric) || result.metric(metric).is_none());
    result.metric(metric)
}

/// A JSON value as a table cell or label shows it: strings bare, everything else as JSON.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Orders JSON values: null < bools < numbers (numerically) < strings < arrays < objects.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            x.total_cmp(&y)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => rank(a)
            .cmp(&rank(b))
            .then_with(|| a.to_string().cmp(&b.to_string())),
    }
}

/// The keys that tables show as columns: the sweep's axes in file order without the seed, then any
/// other key some job has, sorted; never a control's `control` and `control_of` (tables have a
/// column of their own for the control kind, and labels name what a control controls).
pub fn param_columns(axes: &[String], runs: &[&JobRecord]) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for axis in axes {
        if axis != SEED_KEY && !columns.contains(axis) {
            columns.push(axis.clone());
        }
    }
    let extra: BTreeSet<&String> = runs
        .iter()
        .flat_map(|r| r.job.params.keys())
        .filter(|k| !is_hidden_key(k) && !columns.contains(k))
        .collect();
    columns.extend(extra.into_iter().cloned());
    columns
}

/// Keys that are no table column: the seed and a control's parameters.
fn is_hidden_key(key: &str) -> bool {
    key == SEED_KEY || key == CONTROL_KEY || key == CONTROL_OF_KEY
}

/// The canonical identity of a configuration: its control kind and `control_of` (so that a control
/// never shares a group with a baseline, or another configuration's control, of the same network)
/// and its resolved config with the seed zeroed, as JSON
/// with sorted keys.
fn configuration_key(record: &JobRecord) -> String {
    let mut config = record.job.config.clone();
    config.train.seed = 0;
    let control = match record.control() {
        Some(kind) => {
            let of = record
                .job
                .params
                .get(CONTROL_OF_KEY)
                .unwrap_or(&Value::Null);
            format!("{}:{of}", kind.as_str())
        }
        None => String::new(),
    };
    format!("{control}|{}", config.to_json())
}

/// A control's `control_of` list (each entry's params object); empty for other jobs.
fn control_of(params: &Map<String, Value>) -> Vec<Map<String, Value>> {
    params
        .get(CONTROL_OF_KEY)
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(|p| p.as_object().cloned()).collect())
        .unwrap_or_default()
}

/// A control's label: its kind and the labels of the configurations it controls.
fn control_label(kind: Control, of: &[Map<String, Value>], columns: &[String]) -> String {
    let of: Vec<String> = of.iter().map(|p| label_of(p, columns)).collect();
    if of.is_empty() {
        format!("{} control", kind.as_str())
    } else {
        format!("{} control of {}", kind.as_str(), of.join("; "))
    }
}

fn params_without_seed(params: &Map<String, Value>) -> Map<String, Value> {
    params
        .iter()
        .filter(|(k, _)| !is_hidden_key(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn label_of(params: &Map<String, Value>, columns: &[String]) -> String {
    let parts: Vec<String> = columns
        .iter()
        .filter_map(|k| params.get(k).map(|v| format!("{k}={}", value_text(v))))
        .collect();
    if parts.is_empty() {
        "default".to_string()
    } else {
        parts.join(", ")
    }
}

/// `preset` first by its value, then the other values of the sweep's axes by the last segment of their
/// key; the id when that is empty or longer than 32 characters.
fn short_label_of(params: &Map<String, Value>, axes: &[String], id: &str) -> String {
    let columns = axes;
    let mut parts: Vec<String> = Vec::new();
    if let Some(preset) = params.get("preset") {
        parts.push(value_text(preset));
    }
    for k in columns.iter().filter(|k| k.as_str() != "preset") {
        if let Some(v) = params.get(k) {
            let name = k.rsplit('.').next().unwrap_or(k);
            parts.push(format!("{name}={}", value_text(v)));
        }
    }
    let label = parts.join(" ");
    if label.is_empty() || label.chars().count() > 32 {
        id.to_string()
    } else {
        label
    }
}

/// Groups finished runs into configurations, in report order, and flattens the runs into rows.
/// `axes` are the sweep's axes (for short labels), `columns` every parameter key shown in tables.
/// `rerun_command` is completed with the path of the configuration file.
pub fn group(
    finished: &[&JobRecord],
    axes: &[String],
    columns: &[String],
    rerun_command: &dyn Fn(&str) -> String,
) -> (Vec<Configuration>, Vec<RunRow>) {
    let groups = sorted_groups(finished, columns);
    let width = groups.len().to_string().len();
    let mut labels_seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut configurations = Vec::with_capacity(groups.len());
    let mut rows = Vec::with_capacity(finished.len());
    for (index, (_, records)) in groups.iter().enumerate() {
        let id = format!("c{:0width$}", index + 1);
        let params = params_without_seed(&records[0].job.params);
        let control = records[0].control();
        let of = control_of(&records[0].job.params);
        let mut label = match control {
            Some(kind) => control_label(kind, &of, columns),
            None => label_of(&params, columns),
        };
        let seen = labels_seen.entry(label.clone()).or_insert(0);
        *seen += 1;
        if *seen > 1 {
            label = format!("{label} #{seen}");
        }
        let short_label = match control {
            Some(kind) => format!("{} {id}", kind.as_str()),
            None => short_label_of(&params, axes, &id),
        };
        rows.extend(records.iter().map(|record| run_row(record, &id)));
        let mut c = aggregate(id, label, short_label, params, records, rerun_command);
        c.control = control;
        c.control_of = of;
        configurations.push(c);
    }
    rows.sort_by(|a, b| {
        a.configuration_id
            .cmp(&b.configuration_id)
            .then(a.seed.cmp(&b.seed))
            .then_with(|| a.job_id.cmp(&b.job_id))
    });
    (configurations, rows)
}

/// The finished runs grouped by configuration (each group by seed, then job id), in report
/// order: by swept values in column order, then by the canonical key.
fn sorted_groups<'a>(
    finished: &[&'a JobRecord],
    columns: &[String],
) -> Vec<(String, Vec<&'a JobRecord>)> {
    let mut groups: BTreeMap<String, Vec<&JobRecord>> = BTreeMap::new();
    for record in finished {
        groups
            .entry(configuration_key(record))
            .or_default()
            .push(record);
    }
    let mut groups: Vec<(String, Vec<&JobRecord>)> = groups.into_iter().collect();
    for (_, records) in &mut groups {
        records.sort_by(|a, b| {
            a.job
                .config
                .train
                .seed
                .cmp(&b.job.config.train.seed)
                .then_with(|| a.job.id.cmp(&b.job.id))
        });
    }
    // Report order: controls last (static, then narrow), by swept values in column order, then by
    // the canonical key.
    groups.sort_by(|(ka, a), (kb, b)| {
        let (pa, pb) = (&a[0].job.params, &b[0].job.params);
        let by_control = a[0].control().cmp(&b[0].control());
        let by_values = columns
            .iter()
            .map(|c| match (pa.get(c), pb.get(c)) {
                (Some(x), Some(y)) => compare_values(x, y),
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal);
        by_control.then(by_values).then_with(|| ka.cmp(kb))
    });
    groups
}

/// The row of one finished run of the configuration `id`.
fn run_row(record: &JobRecord, id: &str) -> RunRow {
    let r = record.result.as_ref().expect("finished runs have a result");
    RunRow {
        job_id: record.job.id.clone(),
        configuration_id: id.to_string(),
        seed: record.job.config.train.seed,
        params: record.job.params.clone(),
        attempts: record.attempts,
        epochs: r.history.len(),
        test_acc_final: r.test_acc_final,
        test_acc_peak: r.test_acc_peak,
        val_acc_final: r.val_acc_final,
        val_acc_peak: r.val_acc_peak,
        peak_epoch: r.peak_epoch,
        savings_nominal: r.savings_nominal,
        savings_actual: r.savings_actual,
        savings_measured: r.savings_measured,
        predictor_agreement: r.predictor_agreement,
        macs_full: r.macs_full,
        macs_executed_nominal: r.macs_executed_nominal,
        macs_executed_actual: r.macs_executed_actual,
        train_img_per_s: r.train_img_per_s,
        infer_img_per_s: r.infer_img_per_s,
        wall_secs: r.wall_secs,
        backend: if r.provenance.backend.is_empty() {
            "unrecorded".into()
        } else {
            r.provenance.backend.clone()
        },
        control: record.control(),
    }
}

fn aggregate(
    id: String,
    label: String,
    short_label: String,
    params: Map<String, Value>,
    records: &[&JobRecord],
    rerun_command: &dyn Fn(&str) -> String,
) -> Configuration {
    let results: Vec<&RunResult> = records.iter().filter_map(|r| r.result.as_ref()).collect();
    let stat = |metric: &str| -> Option<Stat> {
        let values: Vec<f64> = results
            .iter()
            .filter_map(|r| run_metric(r, metric))
            .collect();
        Stat::of(&values)
    };
    let must = |metric: &str| stat(metric).expect("every finished run has this metric");
    let representative = records[0];
    let epochs = results
        .iter()
        .map(|r| r.history.len())
        .max()
        .filter(|&n| n > 0)
        .unwrap_or(representative.job.config.train.epochs);
    let rerun = Rerun {
        job_id: representative.job.id.clone(),
        config: representative.job.config.clone(),
        command: rerun_command(&representative.job.id),
    };
    Configuration {
        id,
        label,
        short_label,
        params,
        kind: representative.job.config.model.kind,
        seeds: records.iter().map(|r| r.job.config.train.seed).collect(),
        job_ids: records.iter().map(|r| r.job.id.clone()).collect(),
        epochs,
        test_acc_final: must("test_acc_final"),
        test_acc_peak: must("test_acc_peak"),
        val_acc_final: stat("val_acc_final"),
        val_acc_peak: stat("val_acc_peak"),
        validation: results.iter().all(|r| r.has_validation()),
        peak_epoch: must("peak_epoch"),
        savings_nominal: must("savings_nominal"),
        savings_actual: must("savings_actual"),
        savings_measured: stat("savings_measured"),
        predictor_agreement: stat("predictor_agreement"),
        macs_full: must("macs_full"),
        macs_executed_nominal: must("macs_executed_nominal"),
        macs_executed_actual: must("macs_executed_actual"),
        train_img_per_s: must("train_img_per_s"),
        infer_img_per_s: must("infer_img_per_s"),
        wall_secs: must("wall_secs"),
        gates: mean_gates(&results),
        curve: mean_curve(&results),
        rerun,
        front: FrontMembership::default(),
        control: None,
        control_of: Vec::new(),
    }
}

/// Each gated block's final gate statistics, averaged over the runs that have the block.
fn mean_gates(results: &[&RunResult]) -> Vec<BlockGateMean> {
    let mut by_block: BTreeMap<usize, Vec<&BlockGateStats>> = BTreeMap::new();
    for g in results.iter().flat_map(|r| &r.gates) {
        by_block.entry(g.block_idx).or_default().push(g);
    }
    by_block
        .into_iter()
        .map(|(block_idx, stats)| block_mean(block_idx, &stats))
        .collect()
}

/// One block's statistics averaged over runs; a run without a routing share (an older result)
/// counts with the one its open rate implies, `min(open, 1 − open)`.
fn block_mean(block_idx: usize, stats: &[&BlockGateStats]) -> BlockGateMean {
    let mean = |f: &dyn Fn(&BlockGateStats) -> f64| {
        stats.iter().map(|g| f(g)).sum::<f64>() / stats.len() as f64
    };
    BlockGateMean {
        block_idx,
        gate_open_rate: mean(&|g| g.gate_open_rate),
        mean_cir: mean(&|g| g.mean_cir),
        routing_share: mean(&BlockGateStats::share),
        class_open_rates: mean_class_rates(stats),
    }
}

/// The open rate per class averaged over the runs that recorded it (per class, over the runs
/// that have the class); `None` when no run did.
fn mean_class_rates(stats: &[&BlockGateStats]) -> Option<Vec<f64>> {
    let rates: Vec<&Vec<f64>> = stats
        .iter()
        .filter_map(|g| g.class_open_rates.as_ref())
        .collect();
    let n_classes = rates.iter().map(|r| r.len()).max()?;
    Some(
        (0..n_classes)
            .map(|k| {
                let values: Vec<f64> = rates.iter().filter_map(|r| r.get(k).copied()).collect();
                values.iter().sum::<f64>() / values.len() as f64
            })
            .collect(),
    )
}

/// Test accuracy, nominal savings and validation accuracy per epoch, averaged over the runs that
/// reached the epoch (validation over those that evaluated it).
fn mean_curve(results: &[&RunResult]) -> Vec<CurvePoint> {
    let epochs = results.iter().flat_map(|r| &r.history);
    let val = means_by_key(
        epochs
            .clone()
            .filter_map(|e| e.val_acc.map(|v| (e.epoch, v, 0.0))),
    );
    means_by_key(epochs.map(|e| (e.epoch, e.test_acc, e.savings_nominal)))
        .into_iter()
        .map(|(epoch, test_acc, savings_nominal, n_seeds)| CurvePoint {
            epoch,
            test_acc,
            val_acc: val.iter().find(|v| v.0 == epoch).map(|v| v.1),
            savings_nominal,
            n_seeds,
        })
        .collect()
}

/// `(key, a, b)` triples averaged per key: `(key, mean a, mean b, count)`, by key.
fn means_by_key(values: impl Iterator<Item = (usize, f64, f64)>) -> Vec<(usize, f64, f64, usize)> {
    let mut sums: BTreeMap<usize, (f64, f64, usize)> = BTreeMap::new();
    for (key, a, b) in values {
        let s = sums.entry(key).or_insert((0.0, 0.0, 0));
        s.0 += a;
        s.1 += b;
        s.2 += 1;
    }
    sums.into_iter()
        .map(|(key, (a, b, n))| (key, a / n as f64, b / n as f64, n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_std() {
        assert_eq!(Stat::of(&[]), None);
        assert_eq!(
            Stat::of(&[0.5]),
            Some(Stat {
                mean: 0.5,
                std: 0.0,
                n: 1
            })
        );
        let s = Stat::of(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(s.mean, 2.5);
        assert!((s.std - (5.0f64 / 3.0).sqrt()).abs() < 1e-15);
    }

    #[test]
    fn gate_means_derive_the_routing_share_of_older_results() {
        let stats = |open: f64, share: Option<f64>, classes: Option<Vec<f64>>| BlockGateStats {
            block_idx: 2,
            gate_open_rate: open,
            mean_cir: 0.5,
            routing_share: share,
            class_open_rates: classes,
        };
        let old = stats(0.9, None, None);
        let new = stats(0.7, Some(0.3), Some(vec![0.2, 1.0]));
        let newer = stats(0.5, Some(0.5), Some(vec![0.4, 0.8, 0.6]));
        let means = mean_class_rates(&[&old, &new, &newer]).unwrap();
        assert_eq!(means.len(), 3);
        assert!((means[0] - 0.3).abs() < 1e-12 && (means[1] - 0.9).abs() < 1e-12);
        assert_eq!(means[2], 0.6);
        assert_eq!(mean_class_rates(&[&old]), None);
        // The old run's share is min(0.9, 0.1) = 0.1: (0.1 + 0.3) / 2.
        let mean = block_mean(2, &[&old, &new]);
        assert!((mean.routing_share - 0.2).abs() < 1e-12);
        assert!((mean.gate_open_rate - 0.8).abs() < 1e-12);
        assert!(mean.routes());
        assert!(!block_mean(2, &[&stats(0.99, None, None)]).routes());
    }

    #[test]
    fn values_order_numerically() {
        use serde_json::json;
        assert_eq!(compare_values(&json!(2), &json!(10)), Ordering::Less);
        assert_eq!(compare_values(&json!(0.5), &json!(0.25)), Ordering::Greater);
        assert_eq!(compare_values(&json!("b"), &json!("a")), Ordering::Greater);
        assert_eq!(compare_values(&json!(1), &json!("a")), Ordering::Less);
    }
}
