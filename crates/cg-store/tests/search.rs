//! Searches in the store, on SQLite and on PostgreSQL when `CG_TEST_PG_URL` is set: a search's log,
//! decisions, jobs and hypervolume are written once however often the same write is repeated, and
//! a refused decision writes nothing.

mod common;

use std::time::Duration;

use cg_core::{DecisionKind, JobStatus};
use cg_store::{DecisionRow, Error, HvRow, LoggedResult, SearchWrite};
use common::{TestDb, info, jobs, result};

on_both_engines!(
    advance_search_writes_once,
    a_refused_decision_writes_nothing
);

fn decision(
    seq: u64,
    kind: DecisionKind,
    config: u64,
    job: &str,
    from: Option<u64>,
) -> DecisionRow {
    DecisionRow {
        seq,
        kind,
        config,
        rung: 0,
        epochs: 1,
        job_id: job.into(),
        point: (kind == DecisionKind::Draw).then(|| serde_json::json!([{"choice": config}])),
        from_seq: from,
        from_job: None,
    }
}

async fn advance_search_writes_once(db: &TestDb) {
    let store = &db.store;
    store
        .upsert_sweep("s", "name: s\n", &info("s"))
        .await
        .unwrap();
    assert!(store.search("s").await.unwrap().is_none());
    store.create_search("s", "/data").await.unwrap();
    let specs = jobs("search", 2);
    let first = SearchWrite {
        decisions: vec![
            decision(0, DecisionKind::Draw, 0, &specs[0].id, None),
            decision(1, DecisionKind::Draw, 1, &specs[1].id, None),
        ],
        jobs: vec![(specs[0].clone(), 0), (specs[1].clone(), 0)],
        ..SearchWrite::default()
    };
    for round in 0..2 {
        let write = first.clone();
        let s = store
            .advance_search("s", |input| {
                assert_eq!(input.base_dir, "/data");
                assert_eq!(input.decisions.len(), 2 * round);
                Ok(write)
            })
            .await
            .unwrap();
        assert_eq!(s.decisions_added, if round == 0 { 2 } else { 0 });
        assert_eq!(s.jobs_added, if round == 0 { 2 } else { 0 });
    }
    assert_eq!(store.job_records("s").await.unwrap().len(), 2);
    // A job ends; the next advance sees it and takes it.
    let claim = store
        .claim("w", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    store
        .complete(
            &claim.job.id,
            claim.attempt,
            "w",
            &result(&claim.job, 0.5, 1),
        )
        .await
        .unwrap();
    let taken = LoggedResult {
        seq: 0,
        job_id: claim.job.id.clone(),
        config: 0,
        rung: 0,
        failed: false,
    };
    let mut second = first.clone();
    second.jobs.clear();
    second.append = vec![taken.clone()];
    second
        .decisions
        .push(decision(2, DecisionKind::Stop, 0, &claim.job.id, Some(0)));
    second.hv = vec![HvRow {
        seq: 0,
        epochs_spent: 1,
        hypervolume: 0.25,
    }];
    second.finished = true;
    let s = store
        .advance_search("s", |input| {
            assert_eq!(input.ended.len(), 1);
            assert_eq!(input.ended[0].job_id, claim.job.id);
            assert_eq!(input.ended[0].status, JobStatus::Completed);
            assert!(input.ended[0].result.is_some());
            Ok(second.clone())
        })
        .await
        .unwrap();
    assert_eq!(
        (s.results_taken, s.decisions_added, s.finished),
        (1, 1, true)
    );
    assert_eq!(store.search_log("s").await.unwrap(), [taken]);
    let decisions = store.search_decisions("s").await.unwrap();
    assert_eq!(decisions.len(), 3);
    assert_eq!(decisions[0].point, Some(serde_json::json!([{"choice": 0}])));
    assert_eq!(decisions[2].from_seq, Some(0));
    assert_eq!(store.hv_history("s").await.unwrap(), second.hv);
    assert!(store.search("s").await.unwrap().unwrap().finished);
    assert!(store.unfinished_searches().await.unwrap().is_empty());
}

async fn a_refused_decision_writes_nothing(db: &TestDb) {
    let store = &db.store;
    store
        .upsert_sweep("s", "name: s\n", &info("s"))
        .await
        .unwrap();
    store.create_search("s", ".").await.unwrap();
    let err = store
        .advance_search("s", |_| Err("the sweep file changed".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Search(ref m) if m.contains("changed")),
        "{err}"
    );
    assert!(store.search_decisions("s").await.unwrap().is_empty());
    assert!(store.job_records("s").await.unwrap().is_empty());
    let err = store
        .advance_search("nope", |_| Ok(SearchWrite::default()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownSweep(_)), "{err}");
}
