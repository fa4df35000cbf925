//! Matched-compute controls in the store, on both engines: a sweep whose info lists `controls`
//! stays unfinished until `submit_controls` queued its control jobs (and those ended), a merge
//! that adds jobs makes them pending again, and each epoch's validation accuracy is stored and
//! read back.

mod common;

use std::time::Duration;

use cg_core::{Control, JobSpec};
use cg_store::{FinalReport, SubmitOptions};
use common::{TestDb, epoch, info, jobs, result};

const LEASE: Duration = Duration::from_secs(60);

on_both_engines!(
    pending_controls_keep_a_sweep_open_until_submitted_and_ended,
    a_merge_that_adds_jobs_makes_controls_pending_again,
    epoch_validation_accuracy_is_stored_and_read_back,
);

/// Claims and completes every claimable job; returns how many.
async fn drain(db: &TestDb) -> usize {
    let mut n = 0;
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
        n += 1;
    }
    n
}

/// A control job as cg-daemon plans one (the store does not look inside).
fn control_job(id: &str) -> JobSpec {
    let mut job = jobs("c", 1).remove(0);
    job.id = id.into();
    job.params = serde_json::json!({"control": "static", "control_of": [{"gate.threshold": 0.0}]})
        .as_object()
        .unwrap()
        .clone();
    job
}

async fn submit_with_controls(db: &TestDb, yaml: &str, n: usize) -> usize {
    let mut info = info("s");
    info.controls = vec![Control::Static, Control::Narrow];
    db.store
        .submit_sweep("s", yaml, &info, &jobs("s", n), &SubmitOptions::default())
        .await
        .unwrap()
        .added
}

async fn pending_controls_keep_a_sweep_open_until_submitted_and_ended(db: &TestDb) {
    let store = &db.store;
    submit_with_controls(db, "name: s\n", 2).await;
    let summary = store.sweep("s").await.unwrap();
    assert!(summary.controls_pending && summary.search_open);
    assert_eq!(store.controls_pending().await.unwrap(), ["s"]);
    assert_eq!(drain(db).await, 2);
    let summary = store.sweep("s").await.unwrap();
    assert!(summary.counts.is_finished());
    assert!(!summary.has_finished(), "its controls are still pending");
    assert_eq!(summary.lifecycle(), "active");
    assert_eq!(
        store.finish_sweep("s", "w1", LEASE).await.unwrap(),
        FinalReport::NotFinished
    );
    // The same file again adds nothing and leaves the flag as it is.
    assert_eq!(submit_with_controls(db, "name: s\n", 2).await, 0);
    assert!(store.sweep("s").await.unwrap().controls_pending);

    let controls = [control_job("ctl-1"), control_job("ctl-2")];
    assert_eq!(store.submit_controls("s", &controls).await.unwrap(), 2);
    let summary = store.sweep("s").await.unwrap();
    assert!(!summary.controls_pending && !summary.search_open);
    assert!(store.controls_pending().await.unwrap().is_empty());
    assert_eq!(summary.counts.queued, 2);
    assert!(!summary.has_finished(), "its controls are queued");
    let records = store.job_records("s").await.unwrap();
    let control = records.iter().find(|r| r.job.id == "ctl-1").unwrap();
    assert_eq!(control.control(), Some(Control::Static));
    assert_eq!(drain(db).await, 2);
    assert!(store.sweep("s").await.unwrap().has_finished());
    assert_eq!(
        store.finish_sweep("s", "w1", LEASE).await.unwrap(),
        FinalReport::Mine
    );
    // Submitting the same controls again (a second coordinator) adds nothing, reopens nothing.
    assert_eq!(store.submit_controls("s", &controls).await.unwrap(), 0);
    let summary = store.sweep("s").await.unwrap();
    assert!(summary.has_finished() && summary.finished_at_ms.is_some());
    assert_eq!(summary.counts.total(), 4);
    assert!(matches!(
        store.submit_controls("nope", &controls).await,
        Err(cg_store::Error::UnknownSweep(_))
    ));
}

async fn a_merge_that_adds_jobs_makes_controls_pending_again(db: &TestDb) {
    let store = &db.store;
    submit_with_controls(db, "name: s\n", 1).await;
    drain(db).await;
    store
        .submit_controls("s", &[control_job("ctl-1")])
        .await
        .unwrap();
    drain(db).await;
    assert_eq!(
        store.finish_sweep("s", "w1", LEASE).await.unwrap(),
        FinalReport::Mine
    );
    let merge = SubmitOptions {
        merge: true,
        ..SubmitOptions::default()
    };
    let mut info = info("s");
    info.controls = vec![Control::Static];
    let added = store
        .submit_sweep("s", "name: s\n# more\n", &info, &jobs("s", 3), &merge)
        .await
        .unwrap()
        .added;
    assert_eq!(added, 2);
    let summary = store.sweep("s").await.unwrap();
    assert!(summary.controls_pending);
    assert!(summary.finished_at_ms.is_none(), "new jobs reopen it");
    drain(db).await;
    assert!(!store.sweep("s").await.unwrap().has_finished());
    assert_eq!(
        store
            .submit_controls("s", &[control_job("ctl-1"), control_job("ctl-3")])
            .await
            .unwrap(),
        1,
        "the control already stored is not added again"
    );
    drain(db).await;
    assert!(store.sweep("s").await.unwrap().has_finished());
    // A file without `controls` clears the flag.
    store
        .submit_sweep(
            "s",
            "name: s\n# none\n",
            &common::info("s"),
            &jobs("s", 4),
            &merge,
        )
        .await
        .unwrap();
    assert!(!store.sweep("s").await.unwrap().controls_pending);
}

async fn epoch_validation_accuracy_is_stored_and_read_back(db: &TestDb) {
    let store = &db.store;
    store
        .upsert_sweep("v", "name: v\n", &info("v"))
        .await
        .unwrap();
    store.submit_jobs("v", &jobs("v", 2), false).await.unwrap();
    // Live: one epoch recorded while the job runs.
    let claim = store.claim("w:1:0", LEASE).await.unwrap().unwrap();
    let mut live = epoch(0);
    live.val_acc = Some(0.625);
    store.record_epoch(&claim.job.id, 1, &live).await.unwrap();
    assert_eq!(
        store.job_history(&claim.job.id).await.unwrap(),
        [live.clone()]
    );
    // Completed: the rest of the history comes with the result (one statement or script).
    let mut run = result(&claim.job, 0.5, 3);
    for (i, e) in run.history.iter_mut().enumerate() {
        e.val_acc = (i != 1).then_some(0.5 + 0.125 * i as f64);
    }
    run.history[0] = live;
    store
        .complete(&claim.job.id, claim.attempt, "w:1:0", &run)
        .await
        .unwrap();
    assert_eq!(store.job_history(&claim.job.id).await.unwrap(), run.history);
    // Without a split the column stays empty.
    let claim = store.claim("w:1:0", LEASE).await.unwrap().unwrap();
    let plain = result(&claim.job, 0.5, 2);
    store
        .complete(&claim.job.id, claim.attempt, "w:1:0", &plain)
        .await
        .unwrap();
    let history = store.job_history(&claim.job.id).await.unwrap();
    assert!(history.iter().all(|e| e.val_acc.is_none()));
    assert_eq!(
        db.count("SELECT COUNT(*) FROM epoch_metrics WHERE val_acc IS NOT NULL")
            .await,
        2
    );
}
