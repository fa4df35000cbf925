//! Planning matched-compute controls ([`cg_daemon::plan_controls`]) without a store: a static
//! control removes exactly the blocks its configuration closes (never a stride-2 block), a
//! narrow control takes the width with the closest MACs, only CosineGate configurations on the
//! front get controls (not dominated ones, not the baseline, not a plain ResNet axis value, not a
//! stopped rung job), one job per seed, and configurations whose control networks are the same
//! share one job that lists both.

mod common;

use cg_core::{
    BlockGateStats, Control, DatasetKind, DatasetSpec, JobRecord, JobSpec, JobStatus, ModelKind,
    RunConfig, RunResult, SweepInfo, SyntheticSpec,
};
use cg_daemon::plan_controls;
use cg_model::macs::MacsTable;
use serde_json::{Map, Value as Json, json};

const CHANNELS: usize = 1;
const SIDE: usize = 8;

fn info(controls: Vec<Control>) -> SweepInfo {
    SweepInfo {
        name: "c".into(),
        objectives: SweepInfo::default_objectives(),
        reference_point: vec![0.0, 0.0],
        axes: vec!["gate.threshold".into(), "train.seed".into()],
        controls,
    }
}

/// A ResNet-14 of width 4 (blocks 0..6; 2 and 4 have stride 2), CosineGate unless `plain`.
fn config(threshold: f64, seed: u64, plain: bool) -> RunConfig {
    let mut config = RunConfig::with_dataset(DatasetSpec {
        kind: DatasetKind::Synthetic,
        val_size: None,
        path: None,
        augment: None,
        synthetic: Some(SyntheticSpec {
            channels: CHANNELS,
            side: SIDE,
            ..SyntheticSpec::default()
        }),
    });
    config.model.kind = if plain {
        ModelKind::Resnet
    } else {
        ModelKind::Cosinegate
    };
    config.model.depth = 14;
    config.model.width = 4;
    config.gate.threshold = threshold;
    config.train.seed = seed;
    config
}

/// Per block: its open rate (blocks 0..6, 2 and 4 gated too as if `gate_downsample`).
fn gates(open: [f64; 6]) -> Vec<BlockGateStats> {
    open.iter()
        .enumerate()
        .map(|(block_idx, &gate_open_rate)| BlockGateStats {
            block_idx,
            gate_open_rate,
            mean_cir: 0.1,
            routing_share: None,
            class_open_rates: None,
        })
        .collect()
}

fn result(config: &RunConfig, acc: f64, savings: f64, nominal: f64, open: [f64; 6]) -> RunResult {
    RunResult {
        macs_full: plain_macs(config.model.width),
        macs_executed_nominal: nominal,
        macs_executed_actual: nominal,
        savings_nominal: savings,
        savings_actual: savings,
        gates: gates(open),
        ..common::result(config.clone(), acc)
    }
}

/// The backbone MACs of the plain ResNet-14 at `width` on the test's inputs.
fn plain_macs(width: usize) -> u64 {
    let mut c = config(1.0, 0, true);
    c.model.width = width;
    MacsTable::new(&c.model, CHANNELS, SIDE, false, c.gate.mode, 0).full()
}

fn params(pairs: Json) -> Map<String, Json> {
    pairs.as_object().unwrap().clone()
}

/// A completed job of the sweep.
fn record(params: Map<String, Json>, config: RunConfig, result: RunResult) -> JobRecord {
    JobRecord {
        sweep: "c".into(),
        job: JobSpec {
            id: format!("job-{}", serde_json::to_string(&params).unwrap()),
            params,
            config,
        },
        status: JobStatus::Completed,
        attempts: 1,
        last_error: None,
        result: Some(result),
    }
}

/// Configuration `threshold` at `seed`: accuracy, savings, nominal MACs and open rates given.
fn run(
    threshold: f64,
    seed: u64,
    acc: f64,
    savings: f64,
    nominal: f64,
    open: [f64; 6],
) -> JobRecord {
    let c = config(threshold, seed, false);
    let r = result(&c, acc, savings, nominal, open);
    record(
        params(json!({"gate.threshold": threshold, "train.seed": seed})),
        c,
        r,
    )
}

const OPEN: [f64; 6] = [1.0; 6];

fn control_of(job: &JobSpec) -> Vec<Map<String, Json>> {
    job.params["control_of"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_object().unwrap().clone())
        .collect()
}

#[test]
fn a_static_control_removes_exactly_the_blocks_its_configuration_closes() {
    // Mean open rates over the two seeds: block 0 0.04 (closed), 1 0.5, 2 0.0 (stride 2: kept),
    // 3 0.05 (closed, the boundary), 4 0.01 (stride 2: kept), 5 0.06 (open).
    let records = vec![
        run(0.5, 0, 0.9, 0.5, 1.0e5, [0.02, 0.5, 0.0, 0.0, 0.0, 0.06]),
        run(0.5, 1, 0.8, 0.5, 1.0e5, [0.06, 0.5, 0.0, 0.1, 0.02, 0.06]),
    ];
    let jobs = plan_controls(&info(vec![Control::Static]), &records);
    assert_eq!(jobs.len(), 2, "one per seed: {jobs:#?}");
    for (job, seed) in jobs.iter().zip([0u64, 1]) {
        assert_eq!(job.config.model.removed_blocks, [0, 3]);
        assert_eq!(job.config.model.kind, ModelKind::Resnet);
        assert_eq!(job.config.model.width, 4);
        assert_eq!(job.config.gate, cg_core::GateSpec::default());
        assert_eq!(job.config.loss, cg_core::LossSpec::default());
        assert_eq!(job.config.train.stop_after, None);
        assert_eq!(job.config.train.seed, seed);
        assert_eq!(job.params["control"], "static");
        assert_eq!(job.params["train.seed"], seed);
        assert_eq!(control_of(job), [params(json!({"gate.threshold": 0.5}))]);
        assert!(
            job.config.problems().is_empty(),
            "{:?}",
            job.config.problems()
        );
    }
    // Ids as the sweep's own jobs get them: cg-sweep's id of the config and its data.
    let c = &jobs[0].config;
    assert_eq!(
        jobs[0].id,
        cg_sweep::job_id(c, &cg_sweep::data_fingerprint(&c.dataset))
    );
    assert_ne!(jobs[0].id, jobs[1].id);
    // The same open rates with one more seed open for block 0 close nothing but block 3.
    let mut more = records.clone();
    more.push(run(
        0.5,
        2,
        0.85,
        0.5,
        1.0e5,
        [0.5, 0.5, 0.0, 0.05, 0.0, 0.06],
    ));
    let jobs = plan_controls(&info(vec![Control::Static]), &more);
    assert_eq!(jobs.len(), 3);
    assert!(jobs.iter().all(|j| j.config.model.removed_blocks == [3]));
}

#[test]
fn a_narrow_control_takes_the_width_with_the_closest_macs() {
    let check = |nominal: f64, width: usize| {
        let records = vec![run(0.5, 0, 0.9, 0.5, nominal, OPEN)];
        let jobs = plan_controls(&info(vec![Control::Narrow]), &records);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].config.model.width, width, "nominal {nominal}");
        assert_eq!(jobs[0].config.model.kind, ModelKind::Resnet);
        assert!(jobs[0].config.model.removed_blocks.is_empty());
        assert_eq!(jobs[0].params["control"], "narrow");
    };
    let (w2, w3) = (plain_macs(2) as f64, plain_macs(3) as f64);
    check(w3, 3);
    check(w3 - 1.0, 3);
    check(w2 + 1.0, 2);
    check((w2 + w3) / 2.0, 2); // a tie goes to the smaller width
    check(1.0, 1);
    check(1.0e12, 8); // at most twice the width
}

#[test]
fn the_mean_over_seeds_decides_the_width_and_the_front() {
    let (w2, w3) = (plain_macs(2) as f64, plain_macs(3) as f64);
    // Seed means: nominal (w2 + w3) / 2 + a little → width 3.
    let records = vec![
        run(0.5, 0, 0.9, 0.5, w2, OPEN),
        run(0.5, 1, 0.9, 0.5, w3 + 2.0, OPEN),
    ];
    let jobs = plan_controls(&info(vec![Control::Narrow]), &records);
    assert_eq!(jobs.len(), 2);
    assert!(jobs.iter().all(|j| j.config.model.width == 3));
}

#[test]
fn only_cosinegate_configurations_on_the_front_get_controls() {
    let mut records = vec![
        run(0.5, 0, 0.9, 0.5, 1.0e5, OPEN), // front
        run(1.0, 0, 0.8, 0.6, 1.0e5, OPEN), // front
        run(1.5, 0, 0.7, 0.4, 1.0e5, OPEN), // dominated by 0.5
    ];
    // The baseline beats every configuration on accuracy, yet is no candidate.
    let base = config(0.0, 0, true);
    let base_result = result(&base, 0.99, 0.0, 1.0e6, OPEN);
    records.push(record(
        params(json!({"baseline": true, "train.seed": 0})),
        base,
        base_result,
    ));
    // A plain ResNet axis value on the front gets no control.
    let plain = config(2.0, 0, true);
    let plain_result = result(&plain, 0.5, 0.9, 1.0e5, OPEN);
    records.push(record(
        params(json!({"gate.threshold": 2.0, "model.kind": "resnet", "train.seed": 0})),
        plain,
        plain_result,
    ));
    // A stopped rung job (better than all) and a failed job are no candidates.
    let mut stopped = run(3.0, 0, 0.999, 0.999, 1.0e5, OPEN);
    stopped.job.config.train.stop_after = Some(1);
    stopped
        .job
        .params
        .insert("train.stop_after".into(), Json::from(1));
    records.push(stopped);
    let mut failed = run(4.0, 0, 1.0, 1.0, 1.0e5, OPEN);
    failed.status = JobStatus::Failed;
    records.push(failed);

    let jobs = plan_controls(&info(vec![Control::Static]), &records);
    let of: Vec<_> = jobs.iter().flat_map(control_of).collect();
    assert_eq!(
        of,
        [
            params(json!({"gate.threshold": 0.5})),
            params(json!({"gate.threshold": 1.0}))
        ],
        "{jobs:#?}"
    );
    // Nothing to plan without `controls`.
    assert!(plan_controls(&info(Vec::new()), &records).is_empty());
}

#[test]
fn configurations_with_the_same_control_network_share_one_job() {
    let closed = [0.0, 1.0, 1.0, 1.0, 1.0, 1.0];
    let records = vec![
        run(0.5, 0, 0.9, 0.5, 1.0e5, closed),
        run(0.5, 1, 0.9, 0.5, 1.0e5, closed),
        run(1.0, 0, 0.8, 0.6, 1.0e5, closed),
        run(1.0, 1, 0.8, 0.6, 1.0e5, closed),
    ];
    let jobs = plan_controls(&info(vec![Control::Static, Control::Narrow]), &records);
    // Static: one network per seed (block 0 removed); narrow: one width per seed.
    assert_eq!(jobs.len(), 4, "{jobs:#?}");
    let both = [
        params(json!({"gate.threshold": 0.5})),
        params(json!({"gate.threshold": 1.0})),
    ];
    for job in &jobs {
        assert_eq!(control_of(job), both, "{job:#?}");
    }
    let kinds: Vec<(&str, u64)> = jobs
        .iter()
        .map(|j| (j.params["control"].as_str().unwrap(), j.config.train.seed))
        .collect();
    assert_eq!(
        kinds,
        [("static", 0), ("static", 1), ("narrow", 0), ("narrow", 1)]
    );
    // Planning again gives the same jobs (ids and params): a resumed coordinator adds none.
    assert_eq!(
        plan_controls(&info(vec![Control::Static, Control::Narrow]), &records),
        jobs
    );
}
