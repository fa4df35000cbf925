//! Records for tests and the benchmark: deterministic, made from formulas, no randomness.
#![allow(dead_code)]

use cg_core::{
    BlockGateStats, DatasetKind, DatasetSpec, EpochRecord, JobRecord, JobSpec, JobStatus,
    ModelKind, Provenance, RunConfig, RunResult, SweepInfo,
};
use serde_json::{Map, Value, json};

pub const MACS_FULL: u64 = 40_551_040;

pub fn sweep(name: &str, axes: &[&str]) -> SweepInfo {
    SweepInfo {
        name: name.into(),
        objectives: SweepInfo::default_objectives(),
        reference_point: vec![0.0, 0.0],
        axes: axes.iter().map(|a| a.to_string()).collect(),
        controls: Vec::new(),
    }
}

/// A synthetic-data configuration with the given dotted keys set.
pub fn config(params: &Map<String, Value>) -> RunConfig {
    let mut c = RunConfig::with_dataset(DatasetSpec {
        kind: DatasetKind::Synthetic,
        val_size: None,
        path: None,
        augment: None,
        synthetic: None,
    });
    c.train.epochs = 5;
    for (k, v) in params {
        if k == "preset" {
            continue;
        }
        c.set(k, v.clone()).expect("test parameters fit the schema");
    }
    c
}

pub struct Outcome {
    pub acc: f64,
    pub savings_nominal: f64,
    pub savings_actual: f64,
    pub savings_measured: Option<f64>,
    pub epochs: usize,
    pub n_blocks: usize,
}

pub fn result(config: &RunConfig, o: &Outcome) -> RunResult {
    let gated = config.model.kind == ModelKind::Cosinegate;
    let gates_at = |scale: f64| -> Vec<BlockGateStats> {
        if !gated {
            return Vec::new();
        }
        (0..o.n_blocks)
            .map(|b| BlockGateStats {
                block_idx: b,
                gate_open_rate: (1.0
                    - o.savings_nominal * scale * (1.0 + b as f64 / o.n_blocks as f64))
                    .clamp(0.0, 1.0),
                mean_cir: 0.5 + 0.1 * b as f64 + 0.25 * o.savings_nominal,
                routing_share: None,
                class_open_rates: None,
            })
            .collect()
    };
    let history: Vec<EpochRecord> = (1..=o.epochs)
        .map(|e| {
            let p = e as f64 / o.epochs as f64;
            EpochRecord {
                epoch: e,
                train_loss: 2.0 * (1.0 - p) + 0.1,
                train_acc: o.acc * p,
                test_acc: o.acc * (0.5 + 0.5 * p),
                val_acc: None,
                savings_nominal: o.savings_nominal * p,
                savings_actual: o.savings_actual * p,
                lr: 0.1 * (1.0 - p),
                tau: 2.0 - 1.5 * p,
                flops_weight: 0.5 * p,
                wall_secs: 10.0,
                gates: gates_at(p),
            }
        })
        .collect();
    let peak_epoch = o.epochs;
    RunResult {
        config: config.clone(),
        provenance: Provenance {
            cg_version: "0.1.0".into(),
            git_commit: None,
            burn_version: "0.21.0".into(),
            device: "cpu".into(),
            backend: "flex".into(),
            hostname: None,
            finished_at: Some("2026-01-01T00:00:00Z".into()),
            val_split: None,
        },
        history,
        test_acc_final: o.acc,
        test_acc_peak: o.acc + 0.002,
        peak_epoch,
        val_acc_final: None,
        val_acc_peak: None,
        train_images: None,
        val_images: None,
        macs_full: MACS_FULL,
        macs_executed_nominal: MACS_FULL as f64 * (1.0 - o.savings_nominal),
        macs_executed_actual: MACS_FULL as f64 * (1.0 - o.savings_actual),
        savings_nominal: o.savings_nominal,
        savings_actual: o.savings_actual,
        savings_measured: o.savings_measured,
        predictor_agreement: None,
        gates: gates_at(1.0),
        train_img_per_s: 1000.0,
        infer_img_per_s: 5000.0 * (1.0 + o.savings_nominal),
        wall_secs: 50.0 * o.epochs as f64,
    }
}

pub fn params(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

pub fn job(
    sweep: &str,
    id: &str,
    params: Map<String, Value>,
    status: JobStatus,
    result: Option<RunResult>,
) -> JobRecord {
    let config = config(&params);
    JobRecord {
        sweep: sweep.into(),
        job: JobSpec {
            id: id.into(),
            params,
            config,
        },
        status,
        attempts: 1,
        last_error: None,
        result,
    }
}

pub fn finished(sweep: &str, id: &str, params: Map<String, Value>, o: &Outcome) -> JobRecord {
    let mut record = job(sweep, id, params, JobStatus::Completed, None);
    record.result = Some(result(&record.job.config, o));
    record
}

/// A small calibration sweep: 3 presets × 2 thresholds × 2 seeds of CosineGate, a 2-seed ResNet
/// baseline, one failed and one queued job. Values are chosen so that the front is known:
/// accuracy falls as savings rise, with one dominated configuration per preset and a tie.
pub fn calibration_records() -> (SweepInfo, Vec<JobRecord>) {
    let name = "calibrate";
    let info = sweep(name, &["preset", "gate.threshold", "train.seed"]);
    let presets = [
        // (preset, flops_weight, [(threshold, acc, savings_nominal, savings_actual, measured)])
        (
            "aggressive",
            1.0,
            [
                (0.9, 0.899, 0.241, 0.20, None),
                (1.0, 0.890, 0.230, 0.19, None),
            ],
        ),
        (
            "balanced",
            0.5,
            [
                (0.9, 0.913, 0.185, 0.15, Some(0.10)),
                (1.0, 0.913, 0.185, 0.16, Some(0.12)),
            ],
        ),
        (
            "conservative",
            0.1,
            [
                (0.9, 0.932, 0.020, 0.01, None),
                (1.0, 0.925, 0.015, 0.00, None),
            ],
        ),
    ];
    let mut records = Vec::new();
    let mut n = 0;
    for (preset, weight, points) in presets {
        for (threshold, acc, sn, sa, measured) in points {
            for seed in 0..2u64 {
                n += 1;
                let delta = if seed == 0 { -0.001 } else { 0.001 };
                let p = params(&[
                    ("preset", json!(preset)),
                    ("loss.flops_weight", json!(weight)),
                    ("gate.threshold", json!(threshold)),
                    ("train.seed", json!(seed)),
                ]);
                records.push(finished(
                    name,
                    &format!("job{n:02}"),
                    p,
                    &Outcome {
                        acc: acc + delta,
                        savings_nominal: sn - delta,
                        savings_actual: sa,
                        savings_measured: measured.map(|m: f64| m + delta),
                        epochs: 5,
                        n_blocks: 7,
                    },
                ));
            }
        }
    }
    for seed in 0..2u64 {
        let p = params(&[("model.kind", json!("resnet")), ("train.seed", json!(seed))]);
        records.push(finished(
            name,
            &format!("base{seed}"),
            p,
            &Outcome {
                acc: 0.913 + if seed == 0 { -0.002 } else { 0.002 },
                savings_nominal: 0.0,
                savings_actual: 0.0,
                savings_measured: None,
                epochs: 5,
                n_blocks: 0,
            },
        ));
    }
    let mut failed = job(
        name,
        "job99",
        params(&[
            ("preset", json!("aggressive")),
            ("gate.threshold", json!(1.1)),
            ("train.seed", json!(0)),
        ]),
        JobStatus::Failed,
        None,
    );
    failed.attempts = 3;
    failed.last_error =
        Some("training diverged: loss is NaN at epoch 3\nstack trace follows".into());
    records.push(failed);
    records.push(job(
        name,
        "job98",
        params(&[
            ("preset", json!("balanced")),
            ("gate.threshold", json!(1.1)),
            ("train.seed", json!(0)),
        ]),
        JobStatus::Queued,
        None,
    ));
    (info, records)
}

/// `n_runs` finished runs of a synthetic sweep over (threshold, flops_weight, tau_end) with
/// `seeds` seeds each, and `epochs` epochs of history with 7 gated blocks.
pub fn synthetic_records(n_runs: usize, seeds: u64, epochs: usize) -> (SweepInfo, Vec<JobRecord>) {
    let name = "synthetic";
    let info = sweep(
        name,
        &[
            "gate.threshold",
            "loss.flops_weight",
            "gate.tau_end",
            "train.seed",
        ],
    );
    let mut records = Vec::with_capacity(n_runs);
    let mut i = 0usize;
    while records.len() < n_runs {
        let configuration = i / seeds as usize;
        let seed = i as u64 % seeds;
        let threshold = 0.5 + 0.05 * (configuration % 20) as f64;
        let weight = 0.1 * (1 + (configuration / 20) % 10) as f64;
        let tau_end = 0.1 * (1 + configuration / 200) as f64;
        // A smooth trade-off with a deterministic wobble.
        let wobble = ((configuration * 7919 + seed as usize * 104_729) % 1000) as f64 / 1000.0;
        let savings = (0.05 + 0.3 * weight * (1.5 - threshold).max(0.0) + 0.02 * wobble).min(0.6);
        let acc = 0.93 - 0.15 * savings * savings - 0.01 * wobble - 0.001 * tau_end;
        let p = params(&[
            ("gate.threshold", json!(threshold)),
            ("loss.flops_weight", json!(weight)),
            ("gate.tau_end", json!(tau_end)),
            ("train.seed", json!(seed)),
        ]);
        records.push(finished(
            name,
            &format!("{i:08x}"),
            p,
            &Outcome {
                acc,
                savings_nominal: savings,
                savings_actual: savings * 0.8,
                savings_measured: configuration.is_multiple_of(3).then_some(savings * 0.5),
                epochs,
                n_blocks: 7,
            },
        ));
        i += 1;
    }
    (info, records)
}

/// A matched-compute control job (`control`, `control_of`, `train.seed`) of a plain ResNet:
/// `removed_blocks` for a static control, `width` for a narrow one, with `macs` MACs.
pub struct ControlJob<'a> {
    pub kind: cg_core::Control,
    /// The params (without the seed) of each configuration it controls.
    pub of: &'a [Map<String, Value>],
    pub seed: u64,
    pub acc: f64,
    pub macs: u64,
}

pub fn control_record(sweep: &str, id: &str, c: &ControlJob<'_>) -> JobRecord {
    let mut config = config(&params(&[("model.kind", json!("resnet"))]));
    config.train.seed = c.seed;
    // A network per MACs figure, as a sweep builds it.
    match c.kind {
        cg_core::Control::Static => config.model.removed_blocks = vec![(c.macs % 7) as usize],
        cg_core::Control::Narrow => config.model.width = (c.macs % 13 + 2) as usize,
    }
    let mut result = result(
        &config,
        &Outcome {
            acc: c.acc,
            savings_nominal: 0.0,
            savings_actual: 0.0,
            savings_measured: None,
            epochs: 5,
            n_blocks: 0,
        },
    );
    result.macs_full = c.macs;
    result.macs_executed_nominal = c.macs as f64;
    result.macs_executed_actual = c.macs as f64;
    let of: Vec<Value> = c.of.iter().cloned().map(Value::Object).collect();
    let params = params(&[
        (cg_core::CONTROL_KEY, json!(c.kind.as_str())),
        (cg_core::CONTROL_OF_KEY, Value::Array(of)),
        ("train.seed", json!(c.seed)),
    ]);
    JobRecord {
        sweep: sweep.into(),
        job: JobSpec {
            id: id.into(),
            params,
            config,
        },
        status: JobStatus::Completed,
        attempts: 1,
        last_error: None,
        result: Some(result),
    }
}

/// The calibration sweep with `controls: [static, narrow]` results for its front (c2, c4, c5,
/// c6), every CosineGate run with a measured savings and a predictor agreement. Verdicts are
/// known: c2 beats its static control (intervals apart) and ties its narrow one; c4 and c5
/// share a static control that beats both; c6's narrow control has one seed (no interval).
pub fn control_records() -> (SweepInfo, Vec<JobRecord>) {
    let (mut info, mut records) = calibration_records();
    info.controls = vec![cg_core::Control::Static, cg_core::Control::Narrow];
    for r in records.iter_mut() {
        if r.job.config.model.kind != ModelKind::Cosinegate {
            continue;
        }
        if let Some(result) = r.result.as_mut() {
            let seed = r.job.config.train.seed as f64;
            result.savings_measured = Some(result.savings_nominal * 0.5);
            result.predictor_agreement = Some(0.9 + 0.02 * seed);
        }
    }
    let of = |preset: &str, weight: f64, threshold: f64| {
        params(&[
            ("preset", json!(preset)),
            ("loss.flops_weight", json!(weight)),
            ("gate.threshold", json!(threshold)),
        ])
    };
    let c2 = [of("aggressive", 1.0, 0.9)];
    let c4_c5 = [of("balanced", 0.5, 0.9), of("balanced", 0.5, 1.0)];
    let c6 = [of("conservative", 0.1, 0.9)];
    use cg_core::Control::{Narrow, Static};
    let jobs: [(&str, cg_core::Control, &[Map<String, Value>], &[f64], u64); 4] = [
        ("static-c2", Static, &c2, &[0.860, 0.861, 0.862], 30_000_000),
        ("narrow-c2", Narrow, &c2, &[0.897, 0.901], 30_500_000),
        (
            "static-bal",
            Static,
            &c4_c5,
            &[0.950, 0.951, 0.952],
            33_000_000,
        ),
        ("narrow-c6", Narrow, &c6, &[0.930], 39_900_000),
    ];
    for (id, kind, of, accs, macs) in jobs {
        for (seed, &acc) in accs.iter().enumerate() {
            let control = ControlJob {
                kind,
                of,
                seed: seed as u64,
                acc,
                macs,
            };
            records.push(control_record(
                &info.name,
                &format!("{id}-{seed}"),
                &control,
            ));
        }
    }
    (info, records)
}
