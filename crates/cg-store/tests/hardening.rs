//! The store's trust boundaries and all-or-nothing writes, on SQLite always and on PostgreSQL when
//! `CG_TEST_PG_URL` is set: a submission is one transaction, a sweep name is an identity,
//! read-only opens never write, database URLs are parsed strictly and never print a password,
//! backups keep the database's permissions.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use cg_core::JobStatus;
use cg_store::{Error, Store, SubmitOptions};
use common::{TestDb, info, jobs, result};

const LEASE: Duration = Duration::from_secs(60);

on_both_engines!(
    a_failed_submission_leaves_nothing,
    a_sweep_name_is_an_identity,
    rerun_keeps_the_old_result_until_a_new_one_exists,
    a_read_only_store_reads_and_refuses_writes,
    concurrent_submits_take_distinct_seq_numbers,
);

/// A trigger makes the 700th job (in the second insert chunk) fail, as a kill or a full disk
/// would part-way: neither the sweep nor any of its jobs may remain.
async fn a_failed_submission_leaves_nothing(db: &TestDb) {
    if db.is_postgres() {
        db.exec(
            "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN \
             IF NEW.id = 'boom' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$ \
             LANGUAGE plpgsql",
        )
        .await;
        db.exec("CREATE TRIGGER boom BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION boom()")
            .await;
    } else {
        db.exec(
            "CREATE TRIGGER boom BEFORE INSERT ON jobs WHEN NEW.id = 'boom' \
             BEGIN SELECT RAISE(ABORT, 'boom'); END",
        )
        .await;
    }
    let mut specs = jobs("atomic", 1000);
    specs[700].id = "boom".into();
    let err = db
        .store
        .submit_sweep(
            "atomic",
            "name: atomic\n",
            &info("atomic"),
            &specs,
            &SubmitOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("boom"), "{err}");
    for table in ["sweeps", "jobs", "sweep_jobs"] {
        assert_eq!(
            db.count(&format!("SELECT COUNT(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
    db.exec(if db.is_postgres() {
        "DROP TRIGGER boom ON jobs"
    } else {
        "DROP TRIGGER boom"
    })
    .await;
    let summary = db
        .store
        .submit_sweep(
            "atomic",
            "name: atomic\n",
            &info("atomic"),
            &specs,
            &SubmitOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(summary.added, 1000);
}

async fn a_sweep_name_is_an_identity(db: &TestDb) {
    let store = &db.store;
    let options = SubmitOptions::default();
    let first = "name: s\nparameters: {gate.threshold: {values: [0.5, 1.0]}}\n";
    let mut info_a = info("s");
    info_a.axes = vec!["gate.threshold".into()];
    store
        .submit_sweep("s", first, &info_a, &jobs("a", 2), &options)
        .await
        .unwrap();
    // The same file again (up to trailing blanks) is a resubmission: nothing new.
    let again = store
        .submit_sweep(
            "s",
            &format!("{first}  \n\n"),
            &info_a,
            &jobs("a", 2),
            &options,
        )
        .await
        .unwrap();
    assert_eq!((again.added, again.existing), (0, 2));

    // A different file under the same name is refused and changes nothing.
    let second = "name: s\nparameters: {loss.flops_weight: {values: [0.1, 0.2, 0.3]}}\n";
    let mut info_b = info("s");
    info_b.axes = vec!["loss.flops_weight".into()];
    info_b.objectives.reverse();
    let err = store
        .submit_sweep("s", second, &info_b, &jobs("b", 3), &options)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::SweepExists(ref n) if n == "s"),
        "{err}"
    );
    let message = err.to_string();
    for way_out in ["new `name`", "cg sweep delete s", "--merge"] {
        assert!(message.contains(way_out), "{message}");
    }
    let summary = store.sweep("s").await.unwrap();
    assert_eq!(summary.info, info_a);
    assert_eq!(summary.counts.total(), 2);
    assert_eq!(store.sweep_source("s").await.unwrap(), first);

    // Merging is explicit.
    let merge = SubmitOptions {
        merge: true,
        ..SubmitOptions::default()
    };
    let merged = store
        .submit_sweep("s", second, &info_b, &jobs("b", 3), &merge)
        .await
        .unwrap();
    assert_eq!(merged.added, 3);
    let summary = store.sweep("s").await.unwrap();
    assert_eq!((summary.info, summary.counts.total()), (info_b, 5));

    // After deleting the old sweep the name is free again.
    store.delete_sweep("s").await.unwrap();
    store
        .submit_sweep("s", first, &info_a, &jobs("a", 2), &options)
        .await
        .unwrap();
}

async fn rerun_keeps_the_old_result_until_a_new_one_exists(db: &TestDb) {
    let store = &db.store;
    let specs = jobs("keep", 1);
    let options = SubmitOptions::default();
    store
        .submit_sweep("k", "name: k\n", &info("k"), &specs, &options)
        .await
        .unwrap();
    let a = store.claim("w", LEASE).await.unwrap().unwrap();
    store
        .complete(&a.job.id, a.attempt, "w", &result(&a.job, 0.5, 1))
        .await
        .unwrap();
    let gates_before = db.count("SELECT COUNT(*) FROM gate_stats").await;
    assert!(gates_before > 0);

    let rerun = SubmitOptions {
        rerun: true,
        ..SubmitOptions::default()
    };
    let summary = store
        .submit_sweep("k", "name: k\n", &info("k"), &specs, &rerun)
        .await
        .unwrap();
    assert_eq!(summary.requeued, 1);
    // Queued again, but the old result and gate statistics are still stored.
    assert_eq!(db.count("SELECT COUNT(*) FROM results").await, 1);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM gate_stats").await,
        gates_before
    );
    let record = store.job_record(&a.job.id).await.unwrap();
    assert_eq!((record.status, record.result), (JobStatus::Queued, None));

    // A failed rerun keeps it too; a completed one replaces it.
    let b = store.claim("w", LEASE).await.unwrap().unwrap();
    store
        .fail(&b.job.id, b.attempt, "w", "boom", None, true)
        .await
        .unwrap();
    assert_eq!(db.count("SELECT COUNT(*) FROM results").await, 1);
    let c = store.claim("w", LEASE).await.unwrap().unwrap();
    store
        .complete(&c.job.id, c.attempt, "w", &result(&c.job, 0.75, 1))
        .await
        .unwrap();
    let record = store.job_record(&a.job.id).await.unwrap();
    assert_eq!(record.status, JobStatus::Completed);
    assert_eq!(record.result.unwrap().test_acc_final, 0.75);
    assert_eq!(db.count("SELECT COUNT(*) FROM results").await, 1);
}

async fn a_read_only_store_reads_and_refuses_writes(db: &TestDb) {
    db.store
        .submit_sweep(
            "r",
            "name: r\n",
            &info("r"),
            &jobs("ro", 3),
            &SubmitOptions::default(),
        )
        .await
        .unwrap();
    let ro = Store::open_read_only(db.url.as_str()).await.unwrap();
    assert!(ro.is_read_only());
    assert_eq!(ro.job_records("r").await.unwrap().len(), 3);
    assert_eq!(ro.list_sweeps().await.unwrap().len(), 1);
    assert!(ro.set_hypervolume("r", 1.0).await.is_err());
    assert!(ro.claim("w", LEASE).await.is_err());
    ro.close().await;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM jobs WHERE status = 'queued'")
            .await,
        3
    );
}

#[tokio::test]
async fn a_sqlite_file_opened_read_only_is_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cg.db");
    let store = Store::open(path.as_path()).await.unwrap();
    store.migrate().await.unwrap();
    store
        .submit_sweep(
            "r",
            "name: r\n",
            &info("r"),
            &jobs("f", 2),
            &SubmitOptions::default(),
        )
        .await
        .unwrap();
    store.close().await;
    let before = std::fs::read(&path).unwrap();
    let ro = Store::open_read_only(path.as_path()).await.unwrap();
    assert_eq!(ro.job_records("r").await.unwrap().len(), 2);
    let backup = dir.path().join("copy.db");
    ro.backup(&backup).await.unwrap();
    ro.close().await;
    assert_eq!(std::fs::read(&path).unwrap(), before, "the file changed");
    // (SQLite may still make its -wal/-shm side files where the directory allows; where it does
    // not, the store opens the file immutable: see cg-cli's read-only test.)
    // A missing file is an error, never a new database.
    let missing = dir.path().join("nope.db");
    assert!(matches!(
        Store::open_read_only(missing.as_path()).await,
        Err(Error::Missing(_))
    ));
    assert!(!missing.exists());
}

#[tokio::test]
async fn backups_keep_the_database_permissions() {
    for mode in [0o600, 0o640, 0o644] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cg.db");
        let store = Store::open(path.as_path()).await.unwrap();
        store.migrate().await.unwrap();
        // A new database is its owner's only.
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let backup = dir.path().join("backup.db");
        store.backup(&backup).await.unwrap();
        assert_eq!(
            std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
            mode
        );
        let copy = Store::open_existing(backup.as_path()).await.unwrap();
        assert_eq!(
            copy.schema_version().await.unwrap(),
            Store::known_schema_version()
        );
        copy.close().await;
        store.close().await;
    }
}

/// URL-like strings that are not a supported scheme never become a SQLite file (nor a directory
/// named after them), whatever their case, and no message shows the password.
#[tokio::test]
async fn database_urls_are_parsed_strictly_and_passwords_masked() {
    let dir = tempfile::tempdir().unwrap();
    let cwd_before: Vec<_> = std::fs::read_dir(".")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    for url in [
        "postgres:/cg:s3cret@127.0.0.1:1/db",
        "Postgres:/cg:s3cret@127.0.0.1:1/db",
        "postgresql:cg:s3cret@127.0.0.1:1/db",
        "mysql://cg:s3cret@127.0.0.1:1/db",
        "file:cg:s3cret@x.db",
    ] {
        let err = Store::open(url).await.unwrap_err();
        assert!(matches!(err, Error::InvalidUrl { .. }), "{url}: {err}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
    for url in [
        "Postgres://cg:s3cret@127.0.0.1:1/db",
        "POSTGRES://cg:s3cret@127.0.0.1:1/db",
        "PostgreSQL://cg:s3cret@127.0.0.1:1/db?connect_timeout=2",
        "postgres://127.0.0.1:1/db?user=cg&PASSWORD=s3cret",
    ] {
        // Recognised as PostgreSQL: a refused connection, not a file.
        let err = Store::open(url).await.unwrap_err();
        assert!(matches!(err, Error::Connect { .. }), "{url}: {err}");
        let mut shown = format!("{err} {err:?}");
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            shown.push_str(&s.to_string());
            source = s.source();
        }
        assert!(!shown.contains("s3cret"), "{shown}");
    }
    // A sqlite: URL in any case still opens SQLite.
    let path = dir.path().join("upper.db");
    let store = Store::open(format!("SQLite://{}", path.display()).as_str())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store.close().await;
    assert!(path.is_file());
    let cwd_after: Vec<_> = std::fs::read_dir(".")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(
        cwd_before, cwd_after,
        "something was created in the working directory"
    );
}

/// Job insertion (submits and searches share it) takes its `seq` numbers in turn: eight
/// processes submitting at once never give two jobs the same place in the queue order (on
/// PostgreSQL each used to read the same `MAX(seq)`).
async fn concurrent_submits_take_distinct_seq_numbers(db: &TestDb) {
    let mut tasks = Vec::new();
    for k in 0..8 {
        let url = db.url.clone();
        tasks.push(tokio::spawn(async move {
            let store = Store::open(url.as_str()).await.unwrap();
            let name = format!("s{k}");
            store
                .submit_sweep(
                    &name,
                    &format!("name: {name}\n"),
                    &info(&name),
                    &jobs(&name, 60),
                    &SubmitOptions::default(),
                )
                .await
                .unwrap();
            store.close().await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM jobs").await, 8 * 60);
    assert_eq!(
        db.count("SELECT COUNT(DISTINCT seq) FROM jobs").await,
        8 * 60
    );
}
