//! A benchmark of the queue itself: `workers` tasks claim and complete `jobs` tiny fake jobs as
//! fast as the database lets them. It measures the store, not training.

use std::fmt;
use std::time::{Duration, Instant};

use cg_core::{
    BlockGateStats, DatasetKind, DatasetSpec, EpochRecord, JobSpec, Provenance, RunConfig,
    RunResult, SweepInfo,
};
use serde::{Deserialize, Serialize};

use crate::store::now_ms;
use crate::{Error, Result, Store};

/// What [`bench_queue`] measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub engine: String,
    pub workers: usize,
    pub jobs: usize,
    /// Time to submit all jobs in one call.
    pub submit_secs: f64,
    /// Time from the first claim to the last completion.
    pub elapsed_secs: f64,
    /// Claim + complete round trips per second, all workers together.
    pub jobs_per_sec: f64,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} jobs, {} workers: {:.0} jobs/s (claim + complete), {:.2} s; submit {:.2} s",
            self.engine,
            self.jobs,
            self.workers,
            self.jobs_per_sec,
            self.elapsed_secs,
            self.submit_secs
        )
    }
}

/// Submits `jobs` fake jobs to a new sweep, lets `workers` concurrent tasks claim and complete
/// them until the queue is empty, then deletes the sweep again. Needs a tokio runtime.
///
/// Run it on a scratch database: it refuses to start when other jobs are queued or running,
/// since its workers would claim them too.
pub async fn bench_queue(store: &Store, workers: usize, jobs: usize) -> Result<BenchReport> {
    let busy = store
        .list_sweeps()
        .await?
        .iter()
        .map(|s| s.counts.queued + s.counts.running)
        .sum::<usize>();
    if busy > 0 {
        return Err(Error::InvalidArgument(format!(
            "the queue benchmark needs a database without queued or running jobs ({busy} found); \
             use a scratch database"
        )));
    }
    let sweep = format!("__bench-{}-{}", now_ms(), std::process::id());
    let info = SweepInfo {
        name: sweep.clone(),
        objectives: SweepInfo::default_objectives(),
        reference_point: vec![0.0, 0.0],
        axes: vec!["train.seed".into()],
        controls: Vec::new(),
    };
    store
        .upsert_sweep(&sweep, "# cg-store queue benchmark\n", &info)
        .await?;
    let specs: Vec<JobSpec> = (0..jobs).map(|i| bench_job(&sweep, i)).collect();
    let start = Instant::now();
    store.submit_jobs(&sweep, &specs, false).await?;
    let submit_secs = start.elapsed().as_secs_f64();

    let result = fake_result(
        &specs
            .first()
            .map(|s| s.config.clone())
            .unwrap_or_else(bench_config),
    );
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers.max(1) {
        let store = store.clone();
        let result = result.clone();
        tasks.spawn(async move {
            let worker = format!("bench:{}:{w}", std::process::id());
            let mut done = 0usize;
            while let Some(claim) = store.claim(&worker, Duration::from_secs(600)).await? {
                store
                    .complete(&claim.job.id, claim.attempt, &worker, &result)
                    .await?;
                done += 1;
            }
            Ok::<usize, Error>(done)
        });
    }
    let mut done = 0;
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(n)) => done += n,
            Ok(Err(e)) => first_error = first_error.or(Some(e)),
            Err(e) => first_error = first_error.or(Some(Error::Database(Box::new(e)))),
        }
    }
    let elapsed_secs = start.elapsed().as_secs_f64();
    store.delete_sweep(&sweep).await?;
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(BenchReport {
        engine: store.engine_kind().to_string(),
        workers: workers.max(1),
        jobs: done,
        submit_secs,
        elapsed_secs,
        jobs_per_sec: done as f64 / elapsed_secs.max(1e-9),
    })
}

fn bench_config() -> RunConfig {
    RunConfig::with_dataset(DatasetSpec {
        kind: DatasetKind::Synthetic,
        val_size: None,
        path: None,
        augment: None,
        synthetic: None,
    })
}

fn bench_job(sweep: &str, i: usize) -> JobSpec {
    let mut config = bench_config();
    config.train.seed = i as u64;
    let mut params = serde_json::Map::new();
    params.insert("train.seed".into(), serde_json::Value::from(i));
    JobSpec {
        id: format!("{sweep}-{i:06}"),
        params,
        config,
    }
}

fn fake_result(config: &RunConfig) -> RunResult {
    let gates: Vec<BlockGateStats> = (0..3)
        .map(|block_idx| BlockGateStats {
            block_idx,
            gate_open_rate: 0.75,
            mean_cir: 0.4,
            routing_share: None,
            class_open_rates: None,
        })
        .collect();
    RunResult {
        config: config.clone(),
        provenance: Provenance {
            cg_version: env!("CARGO_PKG_VERSION").into(),
            device: "bench".into(),
            backend: "flex".into(),
            ..Provenance::default()
        },
        history: vec![EpochRecord {
            epoch: 0,
            train_loss: 1.0,
            train_acc: 0.5,
            test_acc: 0.5,
            val_acc: None,
            savings_nominal: 0.25,
            savings_actual: 0.2,
            lr: 0.1,
            tau: 1.0,
            flops_weight: 0.5,
            wall_secs: 0.01,
            gates: gates.clone(),
        }],
        test_acc_final: 0.5,
        test_acc_peak: 0.5,
        peak_epoch: 0,
        val_acc_final: None,
        val_acc_peak: None,
        train_images: None,
        val_images: None,
        macs_full: 40_000_000,
        macs_executed_nominal: 30_000_000.0,
        macs_executed_actual: 32_000_000.0,
        savings_nominal: 0.25,
        savings_actual: 0.2,
        savings_measured: None,
        predictor_agreement: None,
        gates,
        train_img_per_s: 1000.0,
        infer_img_per_s: 5000.0,
        wall_secs: 0.01,
    }
}
