//! A `method: mo-asha` search advanced through the store whatever number of results arrive at
//! once: jobs are claimed and ended in batches (as many workers, or a second sweep over the same
//! configurations, deliver them), then the search is advanced once per batch. It never fails, it
//! finishes, and its decisions are the ones cg-search makes from the results in the stored order.
//! With `seeds`, every decision covers its configuration's job for each seed, and advancing again
//! over the stored log (a restarted coordinator) changes nothing. On SQLite, and on PostgreSQL
//! when `CG_TEST_PG_URL` is set (see `.ci/postgres.sh`).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cg_core::{DecisionKind, JobStatus, RunResult};
use cg_search::{Observation, Search};
use cg_store::{Store, SubmitOptions};
use cg_sweep::{LoadOptions, Sweep};
use proptest::prelude::*;
use sqlx::Connection;

fn sweep_text(name: &str, sampler: &str, seed: u64, eta: u64) -> String {
    seeded_sweep_text(name, sampler, seed, eta, &[])
}

/// [`sweep_text`] training each configuration once per seed of `seeds` (none: no `seeds` key).
fn seeded_sweep_text(name: &str, sampler: &str, seed: u64, eta: u64, seeds: &[u64]) -> String {
    let seeds = match seeds {
        [] => String::new(),
        s => format!("seeds: {s:?}\n"),
    };
    format!(
        "name: {name}
method: mo-asha
n_samples: 9
fidelity: {{min_epochs: 1, max_epochs: 4, eta: {eta}}}
sampler: {sampler}
seed: {seed}
dataset: {{kind: synthetic, synthetic: {{n_train: 64, n_test: 32, side: 8, channels: 1}}}}
model: {{depth: 8, width: 4}}
parameters:
  gate.threshold: {{values: [0.25, 0.5, 0.75, 1.0, 1.25]}}
  loss.flops_weight: {{min: 0.05, max: 2.0, distribution: log_uniform_values}}
objectives:
  - {{metric: test_acc_final, direction: maximize}}
  - {{metric: macs_executed_nominal, direction: minimize}}
reference_point: [0.0, 1.0e9]
{seeds}"
    )
}

fn load(text: &str) -> Sweep {
    cg_sweep::load_sweep_str(text, "test.yaml", Path::new("."), &LoadOptions::default())
        .unwrap_or_else(|d| panic!("{d}"))
}

/// A value in [0, 1) from a job id and a salt: results depend on the job alone, so the same job
/// reached through another sweep ends the same way.
fn unit(id: &str, salt: u64) -> f64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ salt;
    for b in id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn result(config: cg_core::RunConfig, id: &str) -> RunResult {
    let acc = 0.5 + 0.4 * unit(id, 1);
    let macs = 1.0e6 * (1.0 + unit(id, 2));
    RunResult {
        macs_executed_nominal: macs,
        macs_executed_actual: macs,
        savings_nominal: 1.0 - macs / 2.0e6,
        savings_actual: 1.0 - macs / 2.0e6,
        ..common::result(config, acc)
    }
}

/// Claims up to `batch` queued jobs of `sweep` and ends them all (about one in seven fails for
/// good); returns how many ended.
async fn end_batch(store: &Store, sweep: &str, batch: usize) -> usize {
    let mut ended = 0;
    for _ in 0..batch {
        let Some(claim) = store
            .claim_from("test:w", Duration::from_secs(60), Some(sweep))
            .await
            .unwrap()
        else {
            break;
        };
        let id = claim.job.id.clone();
        if unit(&id, 3) < 0.15 {
            store
                .fail(&id, claim.attempt, "test:w", "scripted", None, false)
                .await
                .unwrap();
        } else {
            store
                .complete(&id, claim.attempt, "test:w", &result(claim.job.config, &id))
                .await
                .unwrap();
        }
        ended += 1;
    }
    ended
}

/// Ends the sweep's jobs `batches[i]` at a time (cycling), advancing the search after each batch,
/// until nothing is queued; then checks the search against cg-search's replay of its log.
async fn run_search(store: &Store, text: &str, batches: &[usize]) {
    let sweep = load(text);
    let name = sweep.name().to_string();
    cg_daemon::submit_sweep(store, &sweep, &SubmitOptions::default())
        .await
        .unwrap();
    let mut round = 0;
    loop {
        let batch = batches[round % batches.len()];
        round += 1;
        assert!(round < 1_000, "the search does not end");
        let ended = end_batch(store, &name, batch).await;
        cg_daemon::advance_search(store, &name)
            .await
            .unwrap_or_else(|e| panic!("advance after a batch of {ended}: {e}"));
        if ended == 0 {
            break;
        }
    }
    check_search(store, &sweep).await;
}

/// The stored search has finished, took each ended job once per configuration, and its decisions
/// are exactly those of cg-search replaying the stored log; every rung promoted at most ⌊n/eta⌋.
async fn check_search(store: &Store, sweep: &Sweep) {
    let name = sweep.name();
    let record = store.search(name).await.unwrap().expect("a search");
    assert!(record.finished, "the search of `{name}` has not finished");
    let counts = store.sweep(name).await.unwrap().counts;
    assert_eq!((counts.queued, counts.running), (0, 0));

    let records: HashMap<String, _> = store
        .job_records(name)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.job.id.clone(), r))
        .collect();
    let log = store.search_log(name).await.unwrap();
    let info = sweep.info();
    // A result's seed: the place of its job's `train.seed` in `seeds` (0 without `seeds`).
    let seed_index = |job: &str| {
        let seed = records[job].job.config.train.seed;
        sweep.seeds().iter().position(|&s| s == seed).unwrap_or(0)
    };
    let observations: Vec<Observation> = log
        .iter()
        .map(|row| {
            let r = &records[&row.job_id];
            assert_eq!(row.failed, r.status == JobStatus::Failed, "{}", row.job_id);
            Observation {
                config: row.config as usize,
                rung: row.rung as usize,
                seed: seed_index(&row.job_id),
                objectives: r.result.as_ref().and_then(|res| info.objective_values(res)),
            }
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for row in &log {
        assert!(
            seen.insert((row.job_id.clone(), row.config)),
            "{} taken twice",
            row.job_id
        );
    }
    let spec = cg_daemon::search_spec(sweep).unwrap();
    let eta = spec.settings.fidelity.eta as usize;
    let n_seeds = spec.seed_count();
    let replay = Search::replay(spec, &observations).unwrap();
    let stored = store.search_decisions(name).await.unwrap();
    // One row per decision and seed: the seeds' jobs of a configuration go on or stop together.
    assert_eq!(stored.len(), replay.decisions().len() * n_seeds);
    for (rows, d) in stored.chunks(n_seeds).zip(replay.decisions()) {
        for (i, s) in rows.iter().enumerate() {
            assert_eq!(
                (s.kind, s.config, s.rung),
                (d.action.kind(), d.config as u64, d.rung as u64)
            );
            // Each row names its seed's job, at the same rung as the others.
            assert_eq!(seed_index(&s.job_id), i, "{}", s.job_id);
            let stop = |id: &str| records[id].job.config.train.stop_after;
            assert_eq!(stop(&s.job_id), stop(&rows[0].job_id));
        }
    }
    assert!(replay.is_finished());
    for rung in 1..replay.rung_epochs().len() {
        // The configurations with a result at the rung below: every seed's job there ended well.
        let mut below: HashMap<u64, usize> = HashMap::new();
        for r in log
            .iter()
            .filter(|r| r.rung as usize == rung - 1 && !r.failed)
        {
            *below.entry(r.config).or_default() += 1;
        }
        let below = below.values().filter(|&&n| n == n_seeds).count();
        let promoted = stored
            .iter()
            .filter(|d| d.kind == DecisionKind::Promote && d.rung as usize == rung)
            .count()
            / n_seeds;
        assert!(
            promoted <= below / eta,
            "rung {rung}: {promoted} promoted of {below} results"
        );
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh store: a temporary SQLite file, or a new schema on the test PostgreSQL server (`None`,
/// after saying so, when `CG_TEST_PG_URL` is not set).
async fn store(postgres: bool) -> Option<(Store, Option<tempfile::TempDir>)> {
    if !postgres {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("cg.db").as_path())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        return Some((store, Some(dir)));
    }
    let Some(base) = std::env::var("CG_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: set CG_TEST_PG_URL to run on PostgreSQL");
        return None;
    };
    let schema = format!(
        "cg_batches_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let store = Store::open(format!("{base}{sep}options[search_path]={schema}").as_str())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Some((store, None))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The issue's reproduction: a search run to its end, then the same file under a new name. Every
/// job of the second search has already ended, so its first advance takes many results at once
/// (it panicked with `index out of bounds`), and every later start on the database did too.
fn same_file_under_a_new_name(postgres: bool) {
    runtime().block_on(async {
        let Some((store, _dir)) = store(postgres).await else {
            return;
        };
        run_search(&store, &sweep_text("first", "random", 5, 2), &[1]).await;
        let second = load(&sweep_text("second", "random", 5, 2));
        cg_daemon::submit_sweep(&store, &second, &SubmitOptions::default())
            .await
            .unwrap();
        // Nothing was left to train: the second search finished from stored results alone.
        assert_eq!(end_batch(&store, "second", 100).await, 0);
        cg_daemon::advance_search(&store, "second").await.unwrap();
        check_search(&store, &second).await;
        // And the database still opens for the searches (what every later start does).
        cg_daemon::advance_search(&store, "first").await.unwrap();
        store.close().await;
    });
}

#[test]
fn a_second_sweep_over_ended_jobs_sqlite() {
    same_file_under_a_new_name(false);
}

#[test]
fn a_second_sweep_over_ended_jobs_postgres() {
    same_file_under_a_new_name(true);
}

fn batches_case(postgres: bool, sampler: &str, seed: u64, eta: u64, batches: &[usize]) {
    runtime().block_on(async {
        let Some((store, _dir)) = store(postgres).await else {
            return;
        };
        run_search(&store, &sweep_text("s", sampler, seed, eta), batches).await;
        store.close().await;
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_batches_of_arrivals_sqlite(
        nsga2 in any::<bool>(),
        seed in 0u64..1000,
        eta in 2u64..4,
        batches in prop::collection::vec(1usize..9, 1..5),
    ) {
        let sampler = if nsga2 { "nsga2" } else { "random" };
        batches_case(false, sampler, seed, eta, &batches);
    }
}

/// A search whose configurations train with two seeds, its jobs ended in `batches`: it finishes,
/// its stored decisions are cg-search's over the stored log (each covering both seeds' jobs, at
/// most ⌊n/eta⌋ configurations promoted a rung), and a restarted coordinator advancing again over
/// the stored log records nothing new.
fn seeded_case(postgres: bool, sampler: &str, seed: u64, eta: u64, batches: &[usize]) {
    runtime().block_on(async {
        let Some((store, _dir)) = store(postgres).await else {
            return;
        };
        let text = seeded_sweep_text("s2", sampler, seed, eta, &[11, 3]);
        run_search(&store, &text, batches).await;
        let decisions = store.search_decisions("s2").await.unwrap();
        assert!(
            decisions.iter().any(|d| d.kind == DecisionKind::Stop),
            "the search stopped no configuration"
        );
        let again = cg_daemon::advance_search(&store, "s2")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((again.results_taken, again.decisions_added), (0, 0));
        assert_eq!(store.search_decisions("s2").await.unwrap(), decisions);
        store.close().await;
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn two_seeds_any_batches_sqlite(
        nsga2 in any::<bool>(),
        seed in 0u64..1000,
        eta in 2u64..4,
        batches in prop::collection::vec(1usize..9, 1..5),
    ) {
        let sampler = if nsga2 { "nsga2" } else { "random" };
        seeded_case(false, sampler, seed, eta, &batches);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn two_seeds_any_batches_postgres(
        nsga2 in any::<bool>(),
        seed in 0u64..1000,
        batches in prop::collection::vec(1usize..9, 1..5),
    ) {
        let sampler = if nsga2 { "nsga2" } else { "random" };
        seeded_case(true, sampler, seed, 2, &batches);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn any_batches_of_arrivals_postgres(
        nsga2 in any::<bool>(),
        seed in 0u64..1000,
        batches in prop::collection::vec(1usize..9, 1..5),
    ) {
        let sampler = if nsga2 { "nsga2" } else { "random" };
        batches_case(true, sampler, seed, 2, &batches);
    }
}

/// A `--merge` of a changed copy of a search's file that would change recorded decisions is
/// refused, and writes nothing: the stored file stays, and submitting it again is accepted.
fn refused_merge_writes_nothing(postgres: bool) {
    runtime().block_on(async {
        let Some((store, _dir)) = store(postgres).await else {
            return;
        };
        let original = sweep_text("m", "random", 5, 2);
        cg_daemon::submit_sweep(&store, &load(&original), &SubmitOptions::default())
            .await
            .unwrap();
        let decisions = store.search_decisions("m").await.unwrap();
        let changed = load(&sweep_text("m", "random", 6, 2));
        let merge = SubmitOptions {
            merge: true,
            ..SubmitOptions::default()
        };
        let refused = cg_daemon::submit_sweep(&store, &changed, &merge)
            .await
            .expect_err("a merge that changes recorded decisions is refused");
        assert!(
            refused
                .to_string()
                .contains("differs from the recorded one"),
            "{refused}"
        );
        assert_eq!(store.sweep_source("m").await.unwrap(), original);
        assert_eq!(store.search_decisions("m").await.unwrap(), decisions);
        cg_daemon::submit_sweep(&store, &load(&original), &SubmitOptions::default())
            .await
            .expect("the original file is still the sweep's");
        store.close().await;
    });
}

#[test]
fn a_refused_merge_writes_nothing_sqlite() {
    refused_merge_writes_nothing(false);
}

#[test]
fn a_refused_merge_writes_nothing_postgres() {
    refused_merge_writes_nothing(true);
}

/// `--rerun` of a search is refused before anything is written (it requeued nothing, silently).
#[test]
fn rerun_of_a_search_is_refused() {
    runtime().block_on(async {
        let (store, _dir) = store(false).await.unwrap();
        let sweep = load(&sweep_text("r", "random", 5, 2));
        let rerun = SubmitOptions {
            rerun: true,
            ..SubmitOptions::default()
        };
        let refused = cg_daemon::submit_sweep(&store, &sweep, &rerun)
            .await
            .expect_err("--rerun of a search is refused");
        assert!(
            refused.to_string().contains("--rerun cannot rerun"),
            "{refused}"
        );
        assert!(store.list_sweeps().await.unwrap().is_empty());
        store.close().await;
    });
}
