//! A sweep's life cycle on both engines: active sweeps take turns at the queue (unless one has a
//! higher priority), a finished sweep is recorded once and exactly one worker takes its final
//! report, new jobs reopen it, and refused sweep files are recorded once per version.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cg_store::{FinalReport, SubmitOptions};
use common::{TestDb, info, jobs, result};

const LEASE: Duration = Duration::from_secs(60);

on_both_engines!(
    active_sweeps_take_turns,
    running_jobs_count_against_their_sweep,
    a_priority_sweep_goes_first,
    finish_is_recorded_and_one_worker_takes_the_report,
    a_stale_report_claim_is_taken_over,
    new_jobs_reopen_a_finished_sweep,
    rejections_are_recorded_once_per_version,
);

async fn submit(db: &TestDb, name: &str, n: usize, priority: i64) {
    let store = &db.store;
    store
        .upsert_sweep(name, &format!("name: {name}\n"), &info(name))
        .await
        .unwrap();
    let options = SubmitOptions {
        priority,
        ..SubmitOptions::default()
    };
    store
        .submit_jobs_with(name, &jobs(name, n), &options)
        .await
        .unwrap();
}

/// Claims and completes one job at a time (one worker); returns the sweeps in claim order.
async fn drain(db: &TestDb) -> Vec<String> {
    let mut order = Vec::new();
    while let Some(claim) = db.store.claim("w:1:0", LEASE).await.unwrap() {
        db.store
            .complete(
                &claim.job.id,
                claim.attempt,
                "w:1:0",
                &result(&claim.job, 0.5, 1),
            )
            .await
            .unwrap();
        order.push(claim.sweep);
    }
    order
}

async fn active_sweeps_take_turns(db: &TestDb) {
    submit(db, "a", 4, 0).await;
    // One job of `a` runs before `b` arrives: `b` does not wait for `a` to drain.
    let first = db.store.claim("w:1:0", LEASE).await.unwrap().unwrap();
    assert_eq!(first.sweep, "a");
    submit(db, "b", 3, 0).await;
    db.store
        .complete(
            &first.job.id,
            first.attempt,
            "w:1:0",
            &result(&first.job, 0.5, 1),
        )
        .await
        .unwrap();
    let order = drain(db).await;
    assert_eq!(order, ["b", "a", "b", "a", "b", "a"], "{order:?}");
    let a = db.store.sweep("a").await.unwrap();
    assert!(
        a.started_at_ms.is_some(),
        "the first claim starts the sweep"
    );
}

async fn running_jobs_count_against_their_sweep(db: &TestDb) {
    submit(db, "a", 5, 0).await;
    submit(db, "b", 5, 0).await;
    submit(db, "c", 5, 0).await;
    // Six claims without completing: each sweep runs two.
    let mut running: BTreeMap<String, usize> = BTreeMap::new();
    for slot in 0..6 {
        let claim = db
            .store
            .claim(&format!("w:1:{slot}"), LEASE)
            .await
            .unwrap()
            .unwrap();
        *running.entry(claim.sweep).or_default() += 1;
    }
    assert_eq!(
        running,
        BTreeMap::from([("a".into(), 2), ("b".into(), 2), ("c".into(), 2)])
    );
    // Concurrent claimers (PostgreSQL: SKIP LOCKED) still take each job once.
    let store = Arc::new(db.store.clone());
    let mut tasks = Vec::new();
    for slot in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            while let Some(c) = store.claim(&format!("w:2:{slot}"), LEASE).await.unwrap() {
                ids.push(c.job.id);
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!((n, ids.len()), (9, 9), "every remaining job once");
}

async fn a_priority_sweep_goes_first(db: &TestDb) {
    submit(db, "a", 3, 0).await;
    submit(db, "urgent", 2, 5).await;
    submit(db, "c", 1, 0).await;
    let order = drain(db).await;
    assert_eq!(order, ["urgent", "urgent", "a", "c", "a", "a"], "{order:?}");
}

async fn finish_is_recorded_and_one_worker_takes_the_report(db: &TestDb) {
    submit(db, "s", 2, 0).await;
    let store = &db.store;
    assert_eq!(
        store.finish_sweep("s", "w1", LEASE).await.unwrap(),
        FinalReport::NotFinished
    );
    let claim = store.claim("w:1:0", LEASE).await.unwrap().unwrap();
    assert_eq!(
        store.finish_sweep("s", "w1", LEASE).await.unwrap(),
        FinalReport::NotFinished,
        "a running job keeps it unfinished"
    );
    store
        .complete(
            &claim.job.id,
            claim.attempt,
            "w:1:0",
            &result(&claim.job, 0.5, 1),
        )
        .await
        .unwrap();
    drain(db).await;
    let summary = store.sweep("s").await.unwrap();
    assert!(summary.has_finished());
    assert_eq!(summary.lifecycle(), "finished");
    assert!(summary.finished_at_ms.is_none(), "nobody recorded it yet");

    // Eight workers on as many machines look at once: exactly one writes the final report.
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let who = format!("machine-{w}");
            (store.finish_sweep("s", &who, LEASE).await.unwrap(), who)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (outcome, who) = t.await.unwrap();
        if outcome == FinalReport::Mine {
            winners.push(who);
        } else {
            assert_eq!(outcome, FinalReport::Elsewhere);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let winner = &winners[0];
    let summary = store.sweep("s").await.unwrap();
    let finished = summary.finished_at_ms.expect("recorded");
    assert!(summary.started_at_ms.is_some_and(|s| s <= finished));
    // Asking again is the winner's (it may retry its write), nobody else's.
    assert_eq!(
        store.finish_sweep("s", winner, LEASE).await.unwrap(),
        FinalReport::Mine
    );
    assert_eq!(
        store.finish_sweep("s", "other", LEASE).await.unwrap(),
        FinalReport::Elsewhere
    );
    assert!(
        !store
            .final_report_written("s", "other", "/x/report.html")
            .await
            .unwrap()
    );
    assert!(
        store
            .final_report_written("s", winner, "/r/s/report.html")
            .await
            .unwrap()
    );
    assert_eq!(
        store.finish_sweep("s", winner, LEASE).await.unwrap(),
        FinalReport::Elsewhere,
        "written: nothing more to do"
    );
    let summary = store.sweep("s").await.unwrap();
    assert_eq!(summary.report_path.as_deref(), Some("/r/s/report.html"));
    assert_eq!(summary.finished_at_ms, Some(finished), "kept");
    assert!(summary.final_report_done_ms.is_some());
}

async fn a_stale_report_claim_is_taken_over(db: &TestDb) {
    submit(db, "s", 1, 0).await;
    drain(db).await;
    let store = &db.store;
    assert_eq!(
        store.finish_sweep("s", "dead", LEASE).await.unwrap(),
        FinalReport::Mine
    );
    assert_eq!(
        store.finish_sweep("s", "alive", LEASE).await.unwrap(),
        FinalReport::Elsewhere
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        store
            .finish_sweep("s", "alive", Duration::from_millis(5))
            .await
            .unwrap(),
        FinalReport::Mine,
        "the dead worker's claim is stale"
    );
    assert!(
        !store
            .final_report_written("s", "dead", "/d/report.html")
            .await
            .unwrap(),
        "the dead worker lost it"
    );
}

async fn new_jobs_reopen_a_finished_sweep(db: &TestDb) {
    submit(db, "s", 1, 0).await;
    drain(db).await;
    let store = &db.store;
    assert_eq!(
        store.finish_sweep("s", "w", LEASE).await.unwrap(),
        FinalReport::Mine
    );
    store.final_report_written("s", "w", "/r").await.unwrap();
    // The same sweep, one job more.
    store.submit_jobs("s", &jobs("s", 2), false).await.unwrap();
    let summary = store.sweep("s").await.unwrap();
    assert!(!summary.has_finished());
    assert_eq!(summary.lifecycle(), "active");
    assert_eq!(summary.finished_at_ms, None);
    assert_eq!(summary.final_report_done_ms, None);
    drain(db).await;
    assert_eq!(
        store.finish_sweep("s", "w2", LEASE).await.unwrap(),
        FinalReport::Mine,
        "its new end gets a new final report"
    );
}

async fn rejections_are_recorded_once_per_version(db: &TestDb) {
    let store = &db.store;
    assert!(
        store
            .record_rejection("exp/a.yaml", "h1", "exp/a.yaml:3:1: bad")
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_rejection("exp/a.yaml", "h1", "exp/a.yaml:3:1: bad")
            .await
            .unwrap(),
        "the same version again"
    );
    assert!(
        store
            .record_rejection("exp/a.yaml", "h2", "exp/a.yaml:4:1: worse")
            .await
            .unwrap()
    );
    let r = store.rejections().await.unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].message, "exp/a.yaml:4:1: worse");
    store.clear_rejection("exp/a.yaml").await.unwrap();
    assert!(store.rejections().await.unwrap().is_empty());
}
