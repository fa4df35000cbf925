//! Test fixtures: a fresh database per test on either engine, fake jobs and fake results, and raw
//! SQL access for checking what the store wrote.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use cg_core::{
    BlockGateStats, DatasetKind, DatasetSpec, EpochRecord, JobSpec, Provenance, RunConfig,
    RunResult, SweepInfo,
};
use cg_store::{Store, StoreOptions};
use sqlx::Connection;

pub enum Engine {
    Sqlite { dir: tempfile::TempDir },
    Postgres { base_url: String, schema: String },
}

/// A fresh, migrated database: a temporary SQLite file, or a new schema in the PostgreSQL
/// database named by `CG_TEST_PG_URL`.
pub struct TestDb {
    pub store: Store,
    /// The URL (or path) the store was opened with: open it again to act as another process.
    pub url: String,
    pub engine: Engine,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("cg.db").to_string_lossy().into_owned();
        let store = Store::open(url.as_str()).await.unwrap();
        store.migrate().await.unwrap();
        TestDb {
            store,
            url,
            engine: Engine::Sqlite { dir },
        }
    }

    /// `None` when `CG_TEST_PG_URL` is not set.
    pub async fn postgres() -> Option<TestDb> {
        let base_url = std::env::var("CG_TEST_PG_URL")
            .ok()
            .filter(|u| !u.is_empty())?;
        let schema = format!(
            "cg_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let mut conn = sqlx::PgConnection::connect(&base_url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let sep = if base_url.contains('?') { '&' } else { '?' };
        let url = format!("{base_url}{sep}options[search_path]={schema}");
        let mut options = StoreOptions::new(url.as_str());
        options.max_connections = 8;
        let store = Store::open_with(options).await.unwrap();
        store.migrate().await.unwrap();
        Some(TestDb {
            store,
            url,
            engine: Engine::Postgres { base_url, schema },
        })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.engine, Engine::Postgres { .. })
    }

    /// Runs one statement outside the store.
    pub async fn exec(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match &self.engine {
            Engine::Sqlite { .. } => {
                let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", self.url))
                    .await
                    .unwrap();
                sqlx::query(sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            Engine::Postgres { .. } => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query(sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }

    /// Runs a query returning one integer outside the store.
    pub async fn count(&self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match &self.engine {
            Engine::Sqlite { .. } => {
                let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", self.url))
                    .await
                    .unwrap();
                let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
                conn.close().await.unwrap();
                n
            }
            Engine::Postgres { .. } => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
                conn.close().await.unwrap();
                n
            }
        }
    }

    /// Closes the store and drops the PostgreSQL schema.
    pub async fn finish(self) {
        self.store.close().await;
        if let Engine::Postgres { base_url, schema } = &self.engine {
            let mut conn = sqlx::PgConnection::connect(base_url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        }
    }
}

/// Defines each named `async fn(&TestDb)` as two tests, `sqlite::NAME` (always) and
/// `postgres::NAME` (when `CG_TEST_PG_URL` is set; otherwise it passes after saying so).
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = $crate::common::TestDb::sqlite().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = $crate::common::TestDb::postgres().await else {
                        eprintln!("skipped: set CG_TEST_PG_URL (see .ci/postgres.sh) to run on PostgreSQL");
                        return;
                    };
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}

pub fn info(name: &str) -> SweepInfo {
    SweepInfo {
        name: name.into(),
        objectives: SweepInfo::default_objectives(),
        reference_point: vec![0.0, 0.0],
        axes: vec!["gate.threshold".into()],
        controls: Vec::new(),
    }
}

pub fn config(threshold: f64) -> RunConfig {
    let mut config = RunConfig::with_dataset(DatasetSpec {
        kind: DatasetKind::Synthetic,
        val_size: None,
        path: None,
        augment: None,
        synthetic: None,
    });
    config.gate.threshold = threshold;
    config
}

/// `n` distinct jobs named `{prefix}-{i}`.
pub fn jobs(prefix: &str, n: usize) -> Vec<JobSpec> {
    (0..n)
        .map(|i| {
            let threshold = i as f64 / n.max(1) as f64;
            let mut params = serde_json::Map::new();
            params.insert("gate.threshold".into(), serde_json::Value::from(threshold));
            JobSpec {
                id: format!("{prefix}-{i:05}"),
                params,
                config: config(threshold),
            }
        })
        .collect()
}

pub fn gates() -> Vec<BlockGateStats> {
    (0..3)
        .map(|block_idx| BlockGateStats {
            block_idx,
            gate_open_rate: 1.0 - 0.25 * block_idx as f64,
            mean_cir: 0.1 * (block_idx + 1) as f64,
            routing_share: None,
            class_open_rates: None,
        })
        .collect()
}

pub fn epoch(epoch: usize) -> EpochRecord {
    EpochRecord {
        epoch,
        train_loss: 2.0 / (epoch + 1) as f64,
        train_acc: 0.3 + 0.1 * epoch as f64,
        test_acc: 0.25 + 0.1 * epoch as f64,
        val_acc: None,
        savings_nominal: 0.05 * epoch as f64,
        savings_actual: 0.04 * epoch as f64,
        lr: 0.1,
        tau: 2.0 - 0.5 * epoch as f64,
        flops_weight: 0.1 * epoch as f64,
        wall_secs: 1.5,
        gates: gates(),
    }
}

/// A tiny result with `epochs` epochs of history.
pub fn result(job: &JobSpec, test_acc: f64, epochs: usize) -> RunResult {
    RunResult {
        config: job.config.clone(),
        provenance: Provenance {
            cg_version: "0.1.0-test".into(),
            git_commit: Some("abc123".into()),
            burn_version: "0.21.0".into(),
            device: "cpu".into(),
            backend: "flex".into(),
            hostname: Some("testhost".into()),
            finished_at: Some("2026-01-01T00:00:00Z".into()),
            val_split: None,
        },
        history: (0..epochs).map(epoch).collect(),
        test_acc_final: test_acc,
        test_acc_peak: test_acc + 0.01,
        peak_epoch: epochs.saturating_sub(1),
        val_acc_final: None,
        val_acc_peak: None,
        train_images: None,
        val_images: None,
        macs_full: 40_813_184,
        macs_executed_nominal: 30_000_000.5,
        macs_executed_actual: 31_000_000.25,
        savings_nominal: 0.2649,
        savings_actual: 0.2404,
        savings_measured: None,
        predictor_agreement: None,
        gates: gates(),
        train_img_per_s: 1234.5,
        infer_img_per_s: 5678.25,
        wall_secs: 12.75,
    }
}
