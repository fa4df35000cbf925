//! The store through its public API, on SQLite always and on PostgreSQL when `CG_TEST_PG_URL` is
//! set (`eval "$(.ci/postgres.sh start)"`). Every test gets a fresh database.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cg_core::JobStatus;
use cg_store::{
    AttemptOutcome, CompleteOutcome, Error, Store, SubmitOptions, SubmitSummary, SweepStatus,
};
use common::{TestDb, epoch, info, jobs, result};
use tokio::sync::Mutex;

const LEASE: Duration = Duration::from_secs(60);

on_both_engines!(
    story,
    submit_twice_adds_nothing,
    rerun_requeues_finished_jobs,
    a_job_shared_by_two_sweeps_is_stored_once,
    concurrent_claimers_take_each_job_once,
    expired_leases_go_back_to_the_queue,
    lease_owners_name_the_worker_of_each_running_job,
    expired_attempts_run_out_into_failed,
    retryable_failures_retry_until_attempts_run_out,
    complete_is_idempotent,
    a_result_with_nan_metrics_round_trips,
    a_long_history_is_stored_whole,
    a_stale_attempt_cannot_complete,
    record_epoch_is_idempotent,
    graceful_requeue_spends_no_attempt,
    reclaim_owner_takes_back_a_dead_process_jobs,
    requeue_because_keeps_the_reason,
    a_job_whose_workers_keep_dying_runs_out,
    claim_from_keeps_to_one_sweep,
    paused_and_cancelled_sweeps_hand_out_nothing,
    delete_sweep_removes_its_jobs,
    open_existing_refuses_a_newer_schema,
    backup_copies_the_database,
    bench_queue_runs_and_cleans_up,
);

/// create sweep → submit → claim → heartbeat → epoch metrics → complete → query records.
async fn story(db: &TestDb) {
    let store = &db.store;
    assert_eq!(
        store.schema_version().await.unwrap(),
        Store::known_schema_version()
    );
    store
        .upsert_sweep("gates", "name: gates\n", &info("gates"))
        .await
        .unwrap();
    let specs = jobs("story", 3);
    let summary = store.submit_jobs("gates", &specs, false).await.unwrap();
    assert_eq!(
        summary,
        SubmitSummary {
            added: 3,
            existing: 0,
            requeued: 0
        }
    );
    let counts = store.sweep_status("gates").await.unwrap();
    assert_eq!((counts.queued, counts.total()), (3, 3));

    let claim = store
        .claim("host:1:0", LEASE)
        .await
        .unwrap()
        .expect("a job is queued");
    assert_eq!(
        claim.job, specs[0],
        "submission order, the spec round-trips"
    );
    assert_eq!((claim.sweep.as_str(), claim.attempt), ("gates", 1));
    assert!(
        store
            .heartbeat(&claim.job.id, 1, "host:1:0", LEASE)
            .await
            .unwrap()
    );
    assert!(
        !store
            .heartbeat(&claim.job.id, 1, "host:2:0", LEASE)
            .await
            .unwrap(),
        "not the owner"
    );
    assert!(
        !store
            .heartbeat(&claim.job.id, 2, "host:1:0", LEASE)
            .await
            .unwrap(),
        "not the attempt"
    );

    store
        .record_epoch(&claim.job.id, 1, &epoch(0))
        .await
        .unwrap();
    store
        .record_epoch(&claim.job.id, 1, &epoch(1))
        .await
        .unwrap();
    assert_eq!(
        store.job_history(&claim.job.id).await.unwrap(),
        vec![epoch(0), epoch(1)]
    );
    let running = store.sweep_status("gates").await.unwrap();
    assert_eq!((running.queued, running.running), (2, 1));

    let run = result(&claim.job, 0.91, 3);
    let outcome = store
        .complete(&claim.job.id, 1, "host:1:0", &run)
        .await
        .unwrap();
    assert_eq!(outcome, CompleteOutcome::Recorded);
    store
        .add_artifact(
            &claim.job.id,
            "result",
            "runs/gates/story-00000/RESULT.json",
        )
        .await
        .unwrap();
    store
        .add_artifact(
            &claim.job.id,
            "result",
            "runs/gates/story-00000/RESULT.json",
        )
        .await
        .unwrap();
    store.set_hypervolume("gates", 0.42).await.unwrap();

    let records = store.job_records("gates").await.unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].job, specs[0]);
    assert_eq!(records[0].status, JobStatus::Completed);
    assert_eq!(records[0].attempts, 1);
    assert_eq!(
        records[0].result.as_ref(),
        Some(&run),
        "the RunResult round-trips exactly"
    );
    assert!(
        records[1..]
            .iter()
            .all(|r| r.status == JobStatus::Queued && r.result.is_none())
    );
    assert_eq!(store.job_record(&claim.job.id).await.unwrap(), records[0]);

    // The history holds the streamed epochs plus the rest of result.history.
    assert_eq!(store.job_history(&claim.job.id).await.unwrap(), run.history);
    let attempts = store.attempts(&claim.job.id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (attempts[0].attempt, attempts[0].worker.as_str()),
        (1, "host:1:0")
    );
    assert_eq!(attempts[0].outcome, AttemptOutcome::Completed);
    assert!(attempts[0].ended_at_ms.unwrap() >= attempts[0].started_at_ms);
    let artifacts = store.artifacts(&claim.job.id).await.unwrap();
    assert_eq!(artifacts.len(), 1);
    assert_eq!(artifacts[0].kind, "result");

    let sweeps = store.list_sweeps().await.unwrap();
    assert_eq!(sweeps.len(), 1);
    assert_eq!(sweeps[0].name, "gates");
    assert_eq!(sweeps[0].info, info("gates"));
    assert_eq!(sweeps[0].status, SweepStatus::Active);
    assert_eq!(sweeps[0].hypervolume, Some(0.42));
    assert_eq!(
        (sweeps[0].counts.completed, sweeps[0].counts.queued),
        (1, 2)
    );
    assert_eq!(store.sweep_source("gates").await.unwrap(), "name: gates\n");

    // The result columns are plain SQL for ad-hoc queries.
    assert_eq!(db.count("SELECT COUNT(*) FROM gate_stats").await, 3);
    assert_eq!(db.count("SELECT macs_full FROM results").await, 40_813_184);
    assert_eq!(db.count("SELECT COUNT(*) FROM epoch_metrics").await, 3);

    assert!(matches!(
        store.job_records("nope").await,
        Err(Error::UnknownSweep(_))
    ));
    assert!(matches!(
        store.job_history("nope").await,
        Err(Error::UnknownJob(_))
    ));
    assert!(matches!(
        store.add_artifact("nope", "log", "x").await,
        Err(Error::UnknownJob(_))
    ));
    assert!(matches!(
        store.submit_jobs("nope", &specs, false).await,
        Err(Error::UnknownSweep(_))
    ));
}

async fn submit_twice_adds_nothing(db: &TestDb) {
    let store = &db.store;
    store.upsert_sweep("s", "", &info("s")).await.unwrap();
    let specs = jobs("twice", 1200);
    let first = store.submit_jobs("s", &specs, false).await.unwrap();
    assert_eq!(
        first,
        SubmitSummary {
            added: 1200,
            existing: 0,
            requeued: 0
        }
    );
    let second = store.submit_jobs("s", &specs, false).await.unwrap();
    assert_eq!(
        second,
        SubmitSummary {
            added: 0,
            existing: 1200,
            requeued: 0
        }
    );
    let doubled: Vec<_> = specs[..2]
        .iter()
        .chain(specs[..2].iter())
        .cloned()
        .collect();
    let third = store.submit_jobs("s", &doubled, false).await.unwrap();
    assert_eq!(
        third,
        SubmitSummary {
            added: 0,
            existing: 4,
            requeued: 0
        }
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM jobs").await, 1200);
    assert_eq!(store.sweep_status("s").await.unwrap().queued, 1200);
    // Upserting the sweep again keeps its jobs.
    store
        .upsert_sweep("s", "changed: yes\n", &info("s"))
        .await
        .unwrap();
    assert_eq!(store.sweep_status("s").await.unwrap().queued, 1200);
    assert_eq!(store.sweep_source("s").await.unwrap(), "changed: yes\n");
    // Claims follow submission order.
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(store.claim("w", LEASE).await.unwrap().unwrap().job.id);
        }
        ids
    };
    assert_eq!(ids, ["twice-00000", "twice-00001", "twice-00002"]);
}

async fn rerun_requeues_finished_jobs(db: &TestDb) {
    let store = &db.store;
    store.upsert_sweep("s", "", &info("s")).await.unwrap();
    let specs = jobs("rerun", 3);
    store.submit_jobs("s", &specs, false).await.unwrap();
    let a = store.claim("w", LEASE).await.unwrap().unwrap();
    store
        .complete(&a.job.id, a.attempt, "w", &result(&a.job, 0.5, 1))
        .await
        .unwrap();
    let b = store.claim("w", LEASE).await.unwrap().unwrap();
    store
        .fail(&b.job.id, b.attempt, "w", "boom", None, false)
        .await
        .unwrap();
    let c = store.claim("w", LEASE).await.unwrap().unwrap();

    let again = store.submit_jobs("s", &specs, false).await.unwrap();
    assert_eq!(
        again,
        SubmitSummary {
            added: 0,
            existing: 3,
            requeued: 0
        }
    );
    let rerun = store.submit_jobs("s", &specs, true).await.unwrap();
    assert_eq!(
        rerun,
        SubmitSummary {
            added: 0,
            existing: 1,
            requeued: 2
        },
        "the running one stays"
    );
    let counts = store.sweep_status("s").await.unwrap();
    assert_eq!((counts.queued, counts.running), (2, 1));
    let record = store.job_record(&a.job.id).await.unwrap();
    assert_eq!(
        (record.status, record.attempts, record.result),
        (JobStatus::Queued, 0, None)
    );
    // The old result stays stored (not shown) until the new attempt completes.
    assert_eq!(db.count("SELECT COUNT(*) FROM results").await, 1);
    // The rerun is a new attempt; the old one stays on record.
    let next = store.claim("w2", LEASE).await.unwrap().unwrap();
    assert_eq!((next.job.id.as_str(), next.attempt), (a.job.id.as_str(), 2));
    assert_eq!(store.attempts(&a.job.id).await.unwrap().len(), 2);
    let _ = c;
}

async fn a_job_shared_by_two_sweeps_is_stored_once(db: &TestDb) {
    let store = &db.store;
    store.upsert_sweep("a", "", &info("a")).await.unwrap();
    store.upsert_sweep("b", "", &info("b")).await.unwrap();
    let specs = jobs("shared", 2);
    store.submit_jobs("a", &specs, false).await.unwrap();
    let mut in_b = specs[1].clone();
    in_b.params
        .insert("other.axis".into(), serde_json::Value::from(7));
    let summary = store
        .submit_jobs("b", std::slice::from_ref(&in_b), false)
        .await
        .unwrap();
    assert_eq!(
        summary,
        SubmitSummary {
            added: 0,
            existing: 1,
            requeued: 0
        }
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM jobs").await, 2);
    let b = store.job_records("b").await.unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].sweep, "b");
    assert_eq!(
        b[0].job.params, in_b.params,
        "each sweep keeps its own axis values"
    );
    // Cancelling `a` leaves the job `b` still wants.
    assert_eq!(
        store
            .set_sweep_status("a", SweepStatus::Cancelled)
            .await
            .unwrap(),
        1
    );
    let claim = store.claim("w", LEASE).await.unwrap().unwrap();
    assert_eq!(claim.job.id, specs[1].id);
    assert!(store.claim("w", LEASE).await.unwrap().is_none());
}

/// 32 claimers over 5,000 jobs: every job is claimed exactly once and nothing reports a locked
/// database. On SQLite the claimers use four separate stores, like four worker processes.
async fn concurrent_claimers_take_each_job_once(db: &TestDb) {
    const JOBS: usize = 5000;
    const CLAIMERS: usize = 32;
    db.store.upsert_sweep("s", "", &info("s")).await.unwrap();
    let specs = jobs("many", JOBS);
    db.store.submit_jobs("s", &specs, false).await.unwrap();
    let mut stores = vec![db.store.clone()];
    for _ in 1..4 {
        stores.push(Store::open_existing(db.url.as_str()).await.unwrap());
    }
    let done = Arc::new(Mutex::new(Vec::with_capacity(JOBS)));
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CLAIMERS {
        let store = stores[c % stores.len()].clone();
        let done = done.clone();
        let template = result(&specs[0], 0.5, 0);
        tasks.spawn(async move {
            let worker = format!("host:{}:{c}", c % 4);
            while let Some(claim) = store.claim(&worker, LEASE).await? {
                assert_eq!(claim.attempt, 1);
                store
                    .complete(&claim.job.id, claim.attempt, &worker, &template)
                    .await?;
                done.lock().await.push(claim.job.id);
            }
            Ok::<(), Error>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined
            .unwrap()
            .expect("no claimer fails, none sees a locked database");
    }
    let done = done.lock().await;
    assert_eq!(done.len(), JOBS, "every job claimed once");
    let unique: HashSet<&String> = done.iter().collect();
    assert_eq!(unique.len(), JOBS, "no job claimed twice");
    let counts = db.store.sweep_status("s").await.unwrap();
    assert_eq!(counts.completed, JOBS);
    assert_eq!(db.count("SELECT COUNT(*) FROM attempts").await, JOBS as i64);
    for store in &stores[1..] {
        store.close().await;
    }
}

/// `cg status`'s "on <worker>": one query, the running jobs only.
async fn lease_owners_name_the_worker_of_each_running_job(db: &TestDb) {
    let store = &db.store;
    store.upsert_sweep("s", "", &info("s")).await.unwrap();
    store
        .submit_jobs("s", &jobs("own", 3), false)
        .await
        .unwrap();
    let a = store.claim("host:1:0", LEASE).await.unwrap().unwrap();
    let b = store.claim("host:2:0", LEASE).await.unwrap().unwrap();
    let owners = store.lease_owners("s").await.unwrap();
    assert_eq!(owners.len(), 2, "{owners:?}");
    assert_eq!(owners[&a.job.id], "host:1:0");
    assert_eq!(owners[&b.job.id], "host:2:0");
    store
        .complete(&a.job.id, a.attempt, "host:1:0", &result(&a.job, 0.9, 1))
        .await
        .unwrap();
    let owners = store.lease_owners("s").await.unwrap();
    assert_eq!(owners.keys().collect::<Vec<_>>(), [&b.job.id]);
}

async fn expired_leases_go_back_to_the_queue(db: &TestDb) {
    let store = &db.store;
    store.upsert_sweep("s", "", &info("s")).await.unwrap();
    let specs = jobs("lease", 2);
    store.submit_jobs("s", &specs, false).await.unwrap();
    let short = store
        .claim("host:1:0", Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    let long = store.claim("host:1:1", LEASE).await.unwrap().unwrap();
    assert_eq!(
        store.requeue_expired().await.unwrap(),
        1,
        "only the expired lease"
    );
    let record = store.job_record(&short.job.id).await.unwrap();
    assert_eq!(record.status, JobStatus::Queued);
    assert_eq!(record.attempts, 1, "the expired attempt is spent");
    let error = record.last_error.unwrap();
    assert!(error.starts_with("lease expired"), "{error}");
    assert!(
        error.contains("host:1:0") && error.contains("attempt 1 of 3"),
        "{error}"
    );
    assert!(
        !store
            .heartbeat(&short.job.id, short.attempt, "host:1:0", LEASE)
            .await
            .unwrap()
    );
    let attempts = store.attempts(&short.job.id).await.unwrap();
    assert_eq!(attempts[0].outcome, AttemptOutcome::Expired);
    assert_eq!(
        store.job_record(&long.job.id).await.unwrap().status,
        JobStatus::Running
    );
    let again = store.claim("host:2:0", LEASE).await.unwrap().unwrap();
    assert_eq!(
        (again.job.id.as_str(), again.attempt),
        (short.job.id.as_str(), 2)
    );
    assert_eq!(store.requeue_expired().await.unwrap(), 0);
}

async fn expired_attempts_run_out_into_failed(db: &TestDb) {
    let store = &db.store;
    store.upsert_sweep("s", "", &info("s")).await.unwrap();
    let spec = jobs("runout", 1);
    store.submit_jobs("s", &spec, false).await.unwrap();
    for attempt in 1..=3 {
        let claim = store
            .claim("w", Duration::ZERO)
            .await
            .unwrap()
            .expect("still queued");
        assert_eq!(claim.attempt, attempt);
        assert_eq!(store.requeue_expired().await.unwrap(), 1);
    }
    assert!(store.claim("w", LEASE).await.unwrap().is_none());
    let record = store.job_record(&spec[0].id).await.unwrap();
    assert_eq!((record.status, record.attempts), (JobStatus::Failed, 3));
    let error = record.last_error.unwrap();
    assert!(
        error.starts_with("lease expired") && error.contains("attempt 3 of 3"),
        "{error}"
    );
    assert_eq!(store.sweep_status("s").await.unwrap().failed, 1);
}

async fn retryable_failures_retry_until_attempts_run_out(db: &TestDb) {
    let store = &db.store;
    store.upsert_sweep("s", "", &info("s")).await.unwrap();
    let specs = jobs("retry", 2);
    let options = SubmitOptions {
        max_attempts: 2,
        ..SubmitOptions::default()
    };
    store.submit_jobs_with("s", &specs, &options).await.unwrap();
    let first = store.claim("w", LEASE).await.unwrap().unwrap();
    let status = store
        .fail(
            &first.job.id,
            1,
            "w",
            "cuda oom",
            Some("stderr line\n"),
            true,
        )
        .await
        .unwrap();
    assert_eq!(status, JobStatus::Queued);
    // Same failure reported twice: nothing changes.
    assert_eq!(
        store
            .fail(&first.job.id, 1, "w", "cuda oom", None, true)
            .await
            .unwrap(),
        JobStatus::Queued
    );
    let second = store.claim("w", LEASE).await.unwrap().unwrap();
    assert_eq!(
        (second.job.id.as_str(), second.attempt),
        (first.job.id.as_str(), 2)
    );
    let status = store
        .fail(&second.job.id, 2, "w", "cuda oom again", None, true)
        .await
        .unwrap();
    assert_eq!(status, JobStatus::Failed, "two attempts allowed");
    let record = store.job_record(&first.job.id).await.unwrap();
    assert_eq!(record.last_error.as_deref(), Some("cuda oom again"));
    let attempts = store.attempts(&first.job.id).await.unwrap();
    assert_eq!(attempts[0].stderr_tail.as_deref(), Some("stderr line\n"));
    assert_eq!(attempts[1].outcome, AttemptOutcome::Failed);
    // A failure that is not retryable fails at once, and a long stderr keeps its end.
    let other = store.claim("w", LEASE).await.unwrap().unwrap();
    let long = format!("{}THE END", "x".repeat(cg_store::STDERR_TAIL_MAX_BYTES));
    let status = store
        .fail(&other.job.id, 1, "w", "bad config", Some(&long), false)
        .await
        .unwrap();
    assert_eq!(status, JobStatus::Failed);
    let tail = store.attempts(&other.job.id).await.unwrap()[0]
        .stderr_tail
        .clone()
        .unwrap();
    assert!(tail.ends_with("THE END") && tail.len() == cg_store::STDERR_TAIL_MAX_BYTES);
}

async fn complete_is_idempotent(db: &TestDb) {
    let store = &db.store;
    store.upsert_sweep("s", "", &info("s")).await.unwrap();
    let specs = jobs("idem", 1);
    store.submit_jobs("s", &specs, false).await.unwrap();
    let claim = store.claim("w", LEASE).await.unwrap().unwrap();
    let run = result(&claim.job, 0.8, 2);
    assert_eq!(
        store.complete(&claim.job.id, 1, "w", &run).await.unwrap(),
        CompleteOutcome::Recorded
    );
    assert_eq!(
        store.complete(&claim.job.id, 1, "w", &run).await.unwrap(),
        CompleteOutcome::AlreadyRecorded
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM results").await, 1);
    assert_eq!(db.count("SELECT COUNT(*) FROM gate_stats").await, 3);
    assert_eq!(db.count("SELECT COUNT(*) FROM epoch_metrics").await, 2);
    assert_eq!(
        store.job_record(&claim.job.id).await.unwrap().result,
        Some(run)
    );
}

/// A result with NaN metrics (a gate that never opened has no mean CIR) is stored and read back.
async fn a_result_with_nan_metrics_round_trips(db: &TestDb) {
    let store = &db.store;
    store.upsert_sweep("s", "", &info("s")).await.unwrap();
    store
        .submit_jobs("s", &jobs("nan", 1), false)
        .await
        .unwrap();
    let claim = store.claim("w", LEASE).await.unwrap().unwrap();
    let mut run = result(&claim.job, 0.8, 2);
    run.gates[0].mean_cir = f64::NAN;
    run.history[1].train_loss = f64::NAN;
    run.infer_img_per_s = f64::NAN;
    store
        .record_epoch(&claim.job.id, 1, &run.history[1])
        .await
        .unwrap();
    store.complete(&claim.job.id, 1, "w", &run).await.unwrap();
    let back = store
        .job_record(&claim.job.id)
        .await
        .unwrap()
        .result
        .unwrap();
    assert!(back.gates[0].mean_cir.is_nan());
    assert!(back.history[1].train_loss.is_nan());
    assert!(back.infer_img_per_s.is_nan());
    assert_eq!(back.test_acc_final, run.test_acc_final);
    let history = store.job_history(&claim.job.id).await.unwrap();
    assert_eq!(history.len(), 2);
    assert!(history[1].train_loss.is_nan(), "{history:?}");
    let live = store.attempt_history(&claim.job.id, 1).await.unwrap();
    assert!(live.iter().any(|e| e.train_loss.is_nan()), "{live:?}");
}

/// More epochs than fit in one SQLite statement's parameters.
async fn a_long_history_is_stored_whole(db: &TestDb) {
    let store = &db.store;
    store.upsert_sweep("s", "", &info("s")).await.unwrap();
    let specs = jobs("long", 1);
    store.submit_jobs("s", &specs, false).await.unwrap();
    let claim = store.claim("w", LEASE).await.unwrap().unwrap();
    let run = result(&claim.job, 0.8, 3100);
    store.complete(&claim.job.id, 1, "w", &run).await.unwrap();
    assert_eq!(store.job_history(&claim.job.id).await.unwrap(), run.history);
    assert_eq!(
        store.job_record(&claim.job.id).await.unwrap().result,
        Some(run)
    );
}

async fn a_stale_attempt_cannot_complete(db: &TestDb) {
    let store = &db.store;
    store.upsert_sweep("s", "", &info("s")).await.unwrap();
    let specs = jobs("stale", 1);
    store.submit_jobs("s", &specs, false).await.unwrap();
    let old = store
        .claim("host:a:0", Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.requeue_expired().await.unwrap(), 1);
    let new = store.claim("host:b:0", LEASE).await.unwrap().unwrap();
    assert_eq!(new.attempt, 2);
    let stale = store
        .complete(
            &old.job.id,
            old.attempt,
            "host:a:0",
            &result(&old.job, 0.1, 0),
        )
        .await;
    match stale {
        Err(Error::StaleAttempt {
            attempt: 1, reason, ..
        }) => assert!(reason.contains("attempt 2"), "{reason}"),
        other => panic!("expected a stale attempt, got {other:?}"),
    }
    let wrong_worker = store
        .complete(
            &new.job.id,
            new.attempt,
            "host:a:0",
            &result(&new.job, 0.1, 0),
        )
        .await;
    assert!(
        matches!(wrong_worker, Err(Error::StaleAttempt { .. })),
        "{wrong_worker:?}"
    );
    let good = result(&new.job, 0.9, 0);
    store
        .complete(&new.job.id, new.attempt, "host:b:0", &good)
        .await
        .unwrap();
    let late = store
        .complete(
            &old.job.id,
            old.attempt,
            "host:a:0",
            &result(&old.job, 0.1, 0),
        )
        .await;
    assert!(matches!(late, Err(Error::StaleAttempt { .. })), "{late:?}");
    assert!(matches!(
        store
            .fail(&old.job.id, old.attempt, "host:a:0", "late", None, true)
            .await,
        Err(Error::StaleAttempt { .. })
    ));
    assert_eq!(
        store.job_record(&new.job.id).await.unwrap().result,
        Some(good),
        "not overwritten"
    );
    assert!(matches!(
        store
            .complete("missing", 1, "w", &result(&new.job, 0.1, 0))
            .await,
        Err(Error::UnknownJob(_))
    ));
}

async fn record_epoch_is_idempotent(db: &TestDb) {
    let store = &db.store;
    store.upsert_sweep("s", "", &info("s")).await.unwrap();
    let specs = jobs("epochs", 1);
    store.submit_jobs("s", &specs, false).await.unwrap();
    let claim = store.claim("w", LEASE).await.unwrap().unwrap();
    for _ in 0..2 {
        store
            .record_epoch(&claim.job.id, 1, &epoch(0))
            .await
            .unwrap();
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM epoch_metrics").await, 1);
    // A diverged epoch (NaN loss) is stored and read back as NaN.
    let mut diverged = epoch(1);
    diverged.train_loss = f64::NAN;
    store
        .record_epoch(&claim.job.id, 1, &diverged)
        .await
        .unwrap();
    let history = store.job_history(&claim.job.id).await.unwrap();
    assert_eq!(history.len(), 2);
    assert!(history[1].train_loss.is_nan());
    assert_eq!(history[1].test_acc, diverged.test_acc);
    assert!(matches!(
        store.record_epoch(&claim.job.id, 7, &epoch(0)).await,
        Err(Error::UnknownAttempt { attempt: 7, .. })
    ));
}

async fn graceful_requeue_spends_no_attempt(db: &TestDb) {
    let store = &db.store;
    store.upsert_sweep("s", "", &info("s")).await.unwrap();
    let specs = jobs("requeue", 1);
    store.submit_jobs("s", &specs, false).await.unwrap();
    let first = store.claim("w", LEASE).await.unwrap().unwrap();
    assert!(store.requeue(&first.job.id, first.attempt).await.unwrap());
    assert!(
        !store.requeue(&first.job.id, first.attempt).await.unwrap(),
        "already requeued"
    );
    let record = store.job_record(&first.job.id).await.unwrap();
    assert_eq!((record.status, record.attempts), (JobStatus::Queued, 0));
    let second = store.claim("w", LEASE).await.unwrap().unwrap();
    assert_eq!(second.attempt, 2, "attempt numbers are never reused");
    assert_eq!(store.job_record(&first.job.id).await.unwrap().attempts, 1);
    assert_eq!(
        store.attempts(&first.job.id).await.unwrap()[0].outcome,
        AttemptOutcome::Requeued
    );
}

/// A requeue with a reason keeps it on the attempt and the job, and spends no attempt.
async fn requeue_because_keeps_the_reason(db: &TestDb) {
    let store = &db.store;
    store.upsert_sweep("s", "", &info("s")).await.unwrap();
    store
        .submit_jobs("s", &jobs("why", 1), false)
        .await
        .unwrap();
    let claim = store.claim("w", LEASE).await.unwrap().unwrap();
    let requeued = store
        .requeue_because(
            &claim.job.id,
            1,
            Some("out of memory beside 2"),
            Some("tail"),
        )
        .await
        .unwrap();
    assert!(requeued);
    let record = store.job_record(&claim.job.id).await.unwrap();
    assert_eq!((record.status, record.attempts), (JobStatus::Queued, 0));
    assert_eq!(record.last_error.as_deref(), Some("out of memory beside 2"));
    let attempt = &store.attempts(&claim.job.id).await.unwrap()[0];
    assert_eq!(attempt.outcome, AttemptOutcome::Requeued);
    assert_eq!(
        (attempt.error.as_deref(), attempt.stderr_tail.as_deref()),
        (Some("out of memory beside 2"), Some("tail"))
    );
}

async fn reclaim_owner_takes_back_a_dead_process_jobs(db: &TestDb) {
    let store = &db.store;
    store.upsert_sweep("s", "", &info("s")).await.unwrap();
    store
        .submit_jobs("s", &jobs("reclaim", 3), false)
        .await
        .unwrap();
    let dead_a = store.claim("host:100:0", LEASE).await.unwrap().unwrap();
    let _dead_b = store.claim("host:100:1", LEASE).await.unwrap().unwrap();
    let alive = store.claim("host:1000:0", LEASE).await.unwrap().unwrap();
    assert_eq!(store.reclaim_owner("host:100:").await.unwrap(), 2);
    assert!(matches!(
        store.reclaim_owner("").await,
        Err(Error::InvalidArgument(_))
    ));
    let record = store.job_record(&dead_a.job.id).await.unwrap();
    assert_eq!(record.status, JobStatus::Queued);
    assert_eq!(record.attempts, 0, "a dead worker's attempt is given back");
    assert!(record.last_error.unwrap().contains("host:100:0"));
    assert_eq!(
        store.attempts(&dead_a.job.id).await.unwrap()[0].outcome,
        AttemptOutcome::Reclaimed
    );
    assert_eq!(
        store.job_record(&alive.job.id).await.unwrap().status,
        JobStatus::Running
    );
}

/// A job whose workers keep dying is given its attempts back `max_attempts` times, then spends
/// them: it cannot loop forever.
async fn a_job_whose_workers_keep_dying_runs_out(db: &TestDb) {
    let store = &db.store;
    store.upsert_sweep("s", "", &info("s")).await.unwrap();
    let options = SubmitOptions {
        max_attempts: 2,
        ..SubmitOptions::default()
    };
    store
        .submit_jobs_with("s", &jobs("dying", 1), &options)
        .await
        .unwrap();
    let mut taken = 0;
    for pid in 0.. {
        let worker = format!("host:{pid}:0");
        let Some(_claim) = store.claim(&worker, LEASE).await.unwrap() else {
            break;
        };
        assert_eq!(
            store.reclaim_owner(&format!("host:{pid}:")).await.unwrap(),
            1
        );
        taken += 1;
        assert!(taken < 10, "the job never ran out of attempts");
    }
    assert_eq!(taken, 4, "2 attempts given back, then 2 spent");
    let record = store.job_record(&jobs("dying", 1)[0].id).await.unwrap();
    assert_eq!((record.status, record.attempts), (JobStatus::Failed, 2));
    assert!(record.last_error.unwrap().contains("2 of 2 attempts spent"));
}

/// `claim_from` takes only the named sweep's jobs; `claim` takes any active sweep's.
async fn claim_from_keeps_to_one_sweep(db: &TestDb) {
    let store = &db.store;
    for name in ["a", "b"] {
        store.upsert_sweep(name, "", &info(name)).await.unwrap();
    }
    store
        .submit_jobs("a", &jobs("in-a", 2), false)
        .await
        .unwrap();
    store
        .submit_jobs("b", &jobs("in-b", 1), false)
        .await
        .unwrap();
    let b = store
        .claim_from("w", LEASE, Some("b"))
        .await
        .unwrap()
        .expect("b has a job");
    assert_eq!(b.sweep, "b");
    assert!(
        store
            .claim_from("w", LEASE, Some("b"))
            .await
            .unwrap()
            .is_none(),
        "a's jobs are not b's"
    );
    assert!(
        store
            .claim_from("w", LEASE, Some("nope"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.claim("w", LEASE).await.unwrap().unwrap().sweep, "a");
    // A job submitted to both sweeps is claimable from either.
    store
        .submit_jobs("b", &jobs("in-a", 2)[1..], false)
        .await
        .unwrap();
    let shared = store
        .claim_from("w", LEASE, Some("b"))
        .await
        .unwrap()
        .expect("the shared job");
    assert_eq!(shared.job.id, jobs("in-a", 2)[1].id);
}

async fn paused_and_cancelled_sweeps_hand_out_nothing(db: &TestDb) {
    let store = &db.store;
    store.upsert_sweep("s", "", &info("s")).await.unwrap();
    store
        .submit_jobs("s", &jobs("pause", 3), false)
        .await
        .unwrap();
    let running = store.claim("w", LEASE).await.unwrap().unwrap();
    assert_eq!(
        store
            .set_sweep_status("s", SweepStatus::Paused)
            .await
            .unwrap(),
        0
    );
    assert!(store.claim("w", LEASE).await.unwrap().is_none());
    assert!(
        store
            .heartbeat(&running.job.id, 1, "w", LEASE)
            .await
            .unwrap(),
        "running jobs go on"
    );
    store
        .set_sweep_status("s", SweepStatus::Active)
        .await
        .unwrap();
    assert!(store.claim("w", LEASE).await.unwrap().is_some());
    assert_eq!(
        store
            .set_sweep_status("s", SweepStatus::Cancelled)
            .await
            .unwrap(),
        1
    );
    let counts = store.sweep_status("s").await.unwrap();
    assert_eq!((counts.queued, counts.running, counts.cancelled), (0, 2, 1));
    assert!(store.claim("w", LEASE).await.unwrap().is_none());
    assert_eq!(
        store
            .set_sweep_status("s", SweepStatus::Active)
            .await
            .unwrap(),
        1,
        "requeued"
    );
    assert_eq!(store.sweep("s").await.unwrap().status, SweepStatus::Active);
    assert!(store.claim("w", LEASE).await.unwrap().is_some());
    assert!(matches!(
        store.set_sweep_status("nope", SweepStatus::Paused).await,
        Err(Error::UnknownSweep(_))
    ));
}

async fn delete_sweep_removes_its_jobs(db: &TestDb) {
    let store = &db.store;
    store.upsert_sweep("a", "", &info("a")).await.unwrap();
    store.upsert_sweep("b", "", &info("b")).await.unwrap();
    let specs = jobs("del", 3);
    store.submit_jobs("a", &specs, false).await.unwrap();
    store.submit_jobs("b", &specs[2..], false).await.unwrap();
    let claim = store.claim("w", LEASE).await.unwrap().unwrap();
    store
        .record_epoch(&claim.job.id, 1, &epoch(0))
        .await
        .unwrap();
    store
        .complete(&claim.job.id, 1, "w", &result(&claim.job, 0.5, 1))
        .await
        .unwrap();
    store
        .add_artifact(&claim.job.id, "log", "x.log")
        .await
        .unwrap();
    assert_eq!(store.delete_sweep("a").await.unwrap(), 2);
    assert_eq!(db.count("SELECT COUNT(*) FROM jobs").await, 1);
    for table in [
        "results",
        "gate_stats",
        "epoch_metrics",
        "attempts",
        "artifacts",
    ] {
        assert_eq!(
            db.count(&format!("SELECT COUNT(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
    let b = store.job_records("b").await.unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(
        store.job_record(&specs[2].id).await.unwrap().sweep,
        "b",
        "ownership moved"
    );
    assert!(matches!(
        store.delete_sweep("a").await,
        Err(Error::UnknownSweep(_))
    ));
}

async fn open_existing_refuses_a_newer_schema(db: &TestDb) {
    let known = Store::known_schema_version();
    let worker = Store::open_existing(db.url.as_str()).await.unwrap();
    assert_eq!(worker.schema_version().await.unwrap(), known);
    worker.close().await;
    db.exec(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', TRUE, X'00', 0)"
            .replace(
                "X'00'",
                if db.is_postgres() {
                    "'\\x00'::bytea"
                } else {
                    "X'00'"
                },
            )
            .as_str(),
    )
    .await;
    match Store::open_existing(db.url.as_str()).await {
        Err(e @ Error::SchemaTooNew { found: 9999, .. }) => {
            assert!(e.to_string().contains("newer than version"), "{e}");
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert!(matches!(
        db.store.migrate().await,
        Err(Error::SchemaTooNew { .. })
    ));
}

async fn backup_copies_the_database(db: &TestDb) {
    let store = &db.store;
    store.upsert_sweep("s", "", &info("s")).await.unwrap();
    store
        .submit_jobs("s", &jobs("backup", 5), false)
        .await
        .unwrap();
    let claim = store.claim("w", LEASE).await.unwrap().unwrap();
    store
        .complete(&claim.job.id, 1, "w", &result(&claim.job, 0.7, 2))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("sub").join("backup.db");
    if db.is_postgres() {
        let err = store.backup(&dest).await.unwrap_err();
        assert!(err.to_string().contains("pg_dump"), "{err}");
        return;
    }
    store.backup(&dest).await.unwrap();
    assert!(
        matches!(store.backup(&dest).await, Err(Error::Io { .. })),
        "never overwrites"
    );
    let copy = Store::open_existing(&dest).await.unwrap();
    assert_eq!(
        copy.job_records("s").await.unwrap(),
        store.job_records("s").await.unwrap()
    );
    copy.close().await;
    // Plain sqlite3 reads it, when installed.
    match std::process::Command::new("sqlite3")
        .arg(&dest)
        .arg("SELECT COUNT(*), SUM(status = 'completed') FROM jobs; SELECT COUNT(*) FROM epoch_metrics;")
        .output()
    {
        Ok(out) => {
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(String::from_utf8_lossy(&out.stdout), "5|1\n2\n");
        }
        Err(e) => eprintln!("sqlite3 not run ({e}); the copy was checked through the store"),
    }
}

#[tokio::test]
async fn open_existing_needs_a_migrated_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.db");
    assert!(matches!(
        Store::open_existing(&path).await,
        Err(Error::Missing(_))
    ));
    assert!(!path.exists(), "open_existing creates nothing");
    let fresh = Store::open(&path).await.unwrap();
    assert_eq!(fresh.schema_version().await.unwrap(), 0);
    assert!(matches!(
        Store::open_existing(&path).await,
        Err(Error::NotMigrated)
    ));
    fresh.migrate().await.unwrap();
    fresh.migrate().await.unwrap();
    Store::open_existing(&path).await.unwrap();
    let url = format!("sqlite://{}", path.display());
    Store::open_existing(url.as_str()).await.unwrap();
}

#[tokio::test]
async fn sqlite_file_is_in_wal_mode() {
    let db = TestDb::sqlite().await;
    // The file is in WAL mode for every connection, the store's or not.
    assert_eq!(
        db.count("SELECT COUNT(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'")
            .await,
        1
    );
    db.finish().await;
}

#[tokio::test]
async fn a_new_sqlite_file_is_for_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/cg.db");
    let store = Store::open(path.as_path()).await.unwrap();
    store.migrate().await.unwrap();
    store.upsert_sweep("p", "", &info("p")).await.unwrap();
    for file in ["cg.db", "cg.db-wal", "cg.db-shm"] {
        let p = dir.path().join("sub").join(file);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{}: {mode:o}", p.display());
    }
    store.close().await;
}

#[tokio::test]
async fn a_password_never_shows_in_errors() {
    let err = Store::open("postgres://cg:s3cret@127.0.0.1:1/cg")
        .await
        .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("cg:***@127.0.0.1"), "{shown}");
}

#[tokio::test]
async fn in_memory_sqlite_works() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    store.upsert_sweep("m", "", &info("m")).await.unwrap();
    let specs = jobs("mem", 2);
    store.submit_jobs("m", &specs, false).await.unwrap();
    let claim = store.claim("w", LEASE).await.unwrap().unwrap();
    store
        .complete(
            &claim.job.id,
            claim.attempt,
            "w",
            &result(&claim.job, 0.5, 1),
        )
        .await
        .unwrap();
    let counts = store.sweep_status("m").await.unwrap();
    assert_eq!((counts.completed, counts.queued), (1, 1));
    assert_eq!(store.sqlite_path(), None);
}

async fn bench_queue_runs_and_cleans_up(db: &TestDb) {
    let report = cg_store::bench_queue(&db.store, 4, 300).await.unwrap();
    assert_eq!((report.jobs, report.workers), (300, 4));
    assert!(report.jobs_per_sec > 0.0);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM jobs").await,
        0,
        "its sweep is deleted"
    );
    assert!(db.store.list_sweeps().await.unwrap().is_empty());
    // It refuses to run next to real work, which its workers would claim.
    db.store
        .upsert_sweep("real", "", &info("real"))
        .await
        .unwrap();
    db.store
        .submit_jobs("real", &jobs("real", 1), false)
        .await
        .unwrap();
    assert!(matches!(
        cg_store::bench_queue(&db.store, 1, 10).await,
        Err(Error::InvalidArgument(_))
    ));
}
