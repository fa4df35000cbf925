//! Read-side queries for reports and the CLI: a sweep's jobs with their results, a job's epoch
//! history and attempts, and artifacts. Nothing here changes the queue.

use cg_core::{EpochRecord, JobRecord, JobSpec, RunConfig, RunResult};
use sqlx::types::Json;

use crate::store::now_ms;
use crate::types::{Artifact, AttemptRecord, attempt_u32, parse_attempt_outcome, parse_job_status};
use crate::{Error, Result, Store};

#[derive(sqlx::FromRow)]
struct JobRecordRow {
    sweep: String,
    id: String,
    params: Json<serde_json::Map<String, serde_json::Value>>,
    config: Json<RunConfig>,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    result: Option<Json<RunResult>>,
}

impl JobRecordRow {
    fn into_record(self) -> Result<JobRecord> {
        Ok(JobRecord {
            sweep: self.sweep,
            job: JobSpec {
                id: self.id,
                params: self.params.0,
                config: self.config.0,
            },
            status: parse_job_status(&self.status)?,
            attempts: attempt_u32(self.attempts),
            last_error: self.last_error,
            result: self.result.map(|r| r.0),
        })
    }
}

/// Metric columns are NULL where the value was NaN (SQLite cannot store NaN).
#[derive(sqlx::FromRow)]
struct EpochRow {
    epoch: i64,
    train_loss: Option<f64>,
    train_acc: Option<f64>,
    test_acc: Option<f64>,
    savings_nominal: Option<f64>,
    savings_actual: Option<f64>,
    lr: Option<f64>,
    tau: Option<f64>,
    flops_weight: Option<f64>,
    wall_secs: Option<f64>,
    gates: Json<Vec<cg_core::BlockGateStats>>,
    val_acc: Option<f64>,
}

impl From<EpochRow> for EpochRecord {
    fn from(r: EpochRow) -> Self {
        EpochRecord {
            epoch: usize::try_from(r.epoch).unwrap_or(0),
            train_loss: r.train_loss.unwrap_or(f64::NAN),
            train_acc: r.train_acc.unwrap_or(f64::NAN),
            test_acc: r.test_acc.unwrap_or(f64::NAN),
            val_acc: r.val_acc,
            savings_nominal: r.savings_nominal.unwrap_or(f64::NAN),
            savings_actual: r.savings_actual.unwrap_or(f64::NAN),
            lr: r.lr.unwrap_or(f64::NAN),
            tau: r.tau.unwrap_or(f64::NAN),
            flops_weight: r.flops_weight.unwrap_or(f64::NAN),
            wall_secs: r.wall_secs.unwrap_or(f64::NAN),
            gates: r.gates.0,
        }
    }
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    job_id: String,
    attempt: i64,
    worker: String,
    started_at_ms: i64,
    ended_at_ms: Option<i64>,
    outcome: String,
    error: Option<String>,
    stderr_tail: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ArtifactRow {
    job_id: String,
    kind: String,
    path: String,
    created_at_ms: i64,
}

impl Store {
    /// Every job of the sweep in submission order, with this sweep's axis values as `params`, and
    /// the `RunResult` of the completed ones.
    pub async fn job_records(&self, sweep: &str) -> Result<Vec<JobRecord>> {
        let exists: Option<String> = with_reader!(self, |pool, pg, DB| {
            sqlx::query_scalar("SELECT name FROM sweeps WHERE name = $1")
                .bind(sweep)
                .fetch_optional(pool)
                .await?
        });
        if exists.is_none() {
            return Err(Error::UnknownSweep(sweep.to_string()));
        }
        let rows: Vec<JobRecordRow> = with_reader!(self, |pool, pg, DB| {
            sqlx::query_as(
                "SELECT sj.sweep, j.id, sj.params, j.config, j.status, j.attempts, j.last_error, r.result \
                 FROM sweep_jobs sj JOIN jobs j ON j.id = sj.job_id \
                 LEFT JOIN results r ON r.job_id = j.id AND j.status = 'completed' \
                 WHERE sj.sweep = $1 ORDER BY sj.position",
            )
            .bind(sweep)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(JobRecordRow::into_record).collect()
    }

    /// The running jobs (of `sweep`, or of every sweep) whose lease has expired: their worker
    /// stopped heartbeating and the next worker or coordinator to look takes them back. Read-only.
    pub async fn expired_leases(&self, sweep: Option<&str>) -> Result<Vec<String>> {
        let now = crate::store::now_ms();
        let ids: Vec<String> = with_reader!(self, |pool, pg, DB| {
            sqlx::query_scalar(
                "SELECT j.id FROM jobs j \
                 WHERE j.status = 'running' AND j.lease_expires_at_ms < $1 \
                   AND (CAST($2 AS TEXT) IS NULL \
                        OR EXISTS (SELECT 1 FROM sweep_jobs sj WHERE sj.job_id = j.id AND sj.sweep = $2)) \
                 ORDER BY j.seq",
            )
            .bind(now)
            .bind(sweep)
            .fetch_all(pool)
            .await?
        });
        Ok(ids)
    }

    /// The worker that holds each running job of `sweep` (its lease owner), in one query.
    pub async fn lease_owners(
        &self,
        sweep: &str,
    ) -> Result<std::collections::HashMap<String, String>> {
        let rows: Vec<(String, String)> = with_reader!(self, |pool, pg, DB| {
            sqlx::query_as(
                "SELECT j.id, j.lease_owner FROM sweep_jobs sj JOIN jobs j ON j.id = sj.job_id \
                 WHERE sj.sweep = $1 AND j.status = 'running' AND j.lease_owner IS NOT NULL",
            )
            .bind(sweep)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().collect())
    }

    /// One job as its first sweep knows it.
    pub async fn job_record(&self, job: &str) -> Result<JobRecord> {
        let row: Option<JobRecordRow> = with_reader!(self, |pool, pg, DB| {
            sqlx::query_as(
                "SELECT j.sweep, j.id, j.params, j.config, j.status, j.attempts, j.last_error, r.result \
                 FROM jobs j LEFT JOIN results r ON r.job_id = j.id AND j.status = 'completed' \
                 WHERE j.id = $1",
            )
            .bind(job)
            .fetch_optional(pool)
            .await?
        });
        row.ok_or_else(|| Error::UnknownJob(job.to_string()))?
            .into_record()
    }

    /// The epoch metrics of the job's latest attempt (the one that completed it, for a completed
    /// job), in epoch order.
    pub async fn job_history(&self, job: &str) -> Result<Vec<EpochRecord>> {
        let last: Option<i64> = with_reader!(self, |pool, pg, DB| {
            sqlx::query_scalar("SELECT last_attempt FROM jobs WHERE id = $1")
                .bind(job)
                .fetch_optional(pool)
                .await?
        });
        let last = last.ok_or_else(|| Error::UnknownJob(job.to_string()))?;
        self.attempt_history(job, attempt_u32(last)).await
    }

    /// The epoch metrics of one attempt, in epoch order.
    pub async fn attempt_history(&self, job: &str, attempt: u32) -> Result<Vec<EpochRecord>> {
        let rows: Vec<EpochRow> = with_reader!(self, |pool, pg, DB| {
            sqlx::query_as(
                "SELECT epoch, train_loss, train_acc, test_acc, savings_nominal, savings_actual, lr, tau, \
                 flops_weight, wall_secs, gates, val_acc FROM epoch_metrics \
                 WHERE job_id = $1 AND attempt = $2 ORDER BY epoch",
            )
            .bind(job)
            .bind(i64::from(attempt))
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(EpochRecord::from).collect())
    }

    /// Every attempt at the job, oldest first.
    pub async fn attempts(&self, job: &str) -> Result<Vec<AttemptRecord>> {
        let rows: Vec<AttemptRow> = with_reader!(self, |pool, pg, DB| {
            sqlx::query_as(
                "SELECT job_id, attempt, worker, started_at_ms, ended_at_ms, outcome, error, stderr_tail \
                 FROM attempts WHERE job_id = $1 ORDER BY attempt",
            )
            .bind(job)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|r| {
                Ok(AttemptRecord {
                    outcome: parse_attempt_outcome(&r.outcome)?,
                    job_id: r.job_id,
                    attempt: attempt_u32(r.attempt),
                    worker: r.worker,
                    started_at_ms: r.started_at_ms,
                    ended_at_ms: r.ended_at_ms,
                    error: r.error,
                    stderr_tail: r.stderr_tail,
                })
            })
            .collect()
    }

    /// Records a file the job produced (`kind`: `result`, `checkpoint`, `log`, ...). Recording the
    /// same (job, kind, path) twice keeps one row.
    pub async fn add_artifact(&self, job: &str, kind: &str, path: &str) -> Result<()> {
        let now = now_ms();
        let outcome = with_writer!(self, |pool, pg, DB| {
            sqlx::query(
                "INSERT INTO artifacts (job_id, kind, path, created_at_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (job_id, kind, path) DO NOTHING",
            )
            .bind(job)
            .bind(kind)
            .bind(path)
            .bind(now)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        });
        match outcome {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                Err(Error::UnknownJob(job.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The job's artifacts, oldest first.
    pub async fn artifacts(&self, job: &str) -> Result<Vec<Artifact>> {
        let rows: Vec<ArtifactRow> = with_reader!(self, |pool, pg, DB| {
            sqlx::query_as(
                "SELECT job_id, kind, path, created_at_ms FROM artifacts WHERE job_id = $1 \
                 ORDER BY created_at_ms, kind, path",
            )
            .bind(job)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| Artifact {
                job_id: r.job_id,
                kind: r.kind,
                path: r.path,
                created_at_ms: r.created_at_ms,
            })
            .collect())
    }
}
