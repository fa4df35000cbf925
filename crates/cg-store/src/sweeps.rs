//! Sweeps: create or update one from its YAML, pause, resume, cancel, delete, and count its jobs.
//! A job can belong to several sweeps (`sweep_jobs`); `jobs.sweep` names the one that first
//! submitted it.

use std::collections::BTreeMap;

use cg_core::SweepInfo;
use sqlx::types::Json;

use crate::store::now_ms;
use crate::types::{StatusCounts, SweepStatus, SweepSummary, parse_sweep_status};
use crate::{Error, Result, Store};

#[derive(sqlx::FromRow)]
struct SweepRow {
    name: String,
    status: String,
    info: Json<SweepInfo>,
    hypervolume: Option<f64>,
    created_at_ms: i64,
    started_at_ms: Option<i64>,
    finished_at_ms: Option<i64>,
    report_path: Option<String>,
    final_report_done_ms: Option<i64>,
    searching: i64,
    controls_pending: i64,
}

/// The columns of [`SweepRow`] (`searching`: 1 while a `method: mo-asha` search may still submit;
/// `controls_pending`: 1 while its matched-compute controls are still to be planned).
const SWEEP_COLUMNS: &str = "name, status, info, hypervolume, created_at_ms, started_at_ms, \
     finished_at_ms, report_path, final_report_done_ms, controls_pending, \
     (SELECT COUNT(*) FROM searches s WHERE s.sweep = sweeps.name AND s.finished = 0) AS searching";

impl SweepRow {
    fn into_summary(self, counts: StatusCounts) -> Result<SweepSummary> {
        Ok(SweepSummary {
            status: parse_sweep_status(&self.status)?,
            name: self.name,
            info: self.info.0,
            hypervolume: self.hypervolume,
            created_at_ms: self.created_at_ms,
            started_at_ms: self.started_at_ms,
            finished_at_ms: self.finished_at_ms,
            report_path: self.report_path,
            final_report_done_ms: self.final_report_done_ms,
            search_open: self.searching > 0 || self.controls_pending != 0,
            controls_pending: self.controls_pending != 0,
            counts,
        })
    }
}

impl Store {
    /// Creates the sweep `name`, or updates its source YAML and info if it exists (its status,
    /// hypervolume and jobs stay as they are). A new sweep is active.
    pub async fn upsert_sweep(
        &self,
        name: &str,
        source_yaml: &str,
        info: &SweepInfo,
    ) -> Result<()> {
        let now = now_ms();
        with_writer!(self, |pool, pg, DB| {
            sqlx::query(
                "INSERT INTO sweeps (name, source_yaml, info, status, created_at_ms, updated_at_ms) \
                 VALUES ($1, $2, $3, 'active', $4, $4) \
                 ON CONFLICT (name) DO UPDATE SET source_yaml = excluded.source_yaml, \
                 info = excluded.info, updated_at_ms = excluded.updated_at_ms",
            )
            .bind(name)
            .bind(source_yaml)
            .bind(Json(info))
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Pauses, resumes or cancels a sweep. Cancelling also cancels its queued jobs (except those
    /// that another sweep, not cancelled, still holds); making a cancelled sweep active again puts
    /// its cancelled jobs back in the queue. Running jobs are left alone. Returns the number of
    /// jobs whose status changed.
    pub async fn set_sweep_status(&self, name: &str, status: SweepStatus) -> Result<usize> {
        let now = now_ms();
        let changed = in_write_tx!(self, |tx, pg, DB| {
            let updated =
                sqlx::query("UPDATE sweeps SET status = $2, updated_at_ms = $3 WHERE name = $1")
                    .bind(name)
                    .bind(status.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            if updated == 0 {
                return Err(Error::UnknownSweep(name.to_string()));
            }
            let jobs_sql = match status {
                SweepStatus::Paused => None,
                SweepStatus::Cancelled => Some(
                    "UPDATE jobs SET status = 'cancelled', updated_at_ms = $2 \
                     WHERE status = 'queued' \
                       AND id IN (SELECT job_id FROM sweep_jobs WHERE sweep = $1) \
                       AND NOT EXISTS (SELECT 1 FROM sweep_jobs o JOIN sweeps s ON s.name = o.sweep \
                                       WHERE o.job_id = jobs.id AND o.sweep <> $1 AND s.status <> 'cancelled')",
                ),
                SweepStatus::Active => Some(
                    "UPDATE jobs SET status = 'queued', updated_at_ms = $2 \
                     WHERE status = 'cancelled' AND id IN (SELECT job_id FROM sweep_jobs WHERE sweep = $1)",
                ),
            };
            match jobs_sql {
                Some(sql) => sqlx::query(sql)
                    .bind(name)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                None => 0,
            }
        });
        self.reopen_sweep(name).await?;
        Ok(changed as usize)
    }

    /// Stores the hypervolume of the sweep's Pareto front.
    pub async fn set_hypervolume(&self, name: &str, hypervolume: f64) -> Result<()> {
        let now = now_ms();
        let updated = with_writer!(self, |pool, pg, DB| {
            sqlx::query("UPDATE sweeps SET hypervolume = $2, updated_at_ms = $3 WHERE name = $1")
                .bind(name)
                .bind(hypervolume)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if updated == 0 {
            return Err(Error::UnknownSweep(name.to_string()));
        }
        Ok(())
    }

    /// Deletes a sweep. Its jobs that no other sweep holds go too, with their attempts, metrics,
    /// results and artifact rows (not the files); jobs another sweep also holds stay with it.
    /// Returns the number of jobs deleted.
    pub async fn delete_sweep(&self, name: &str) -> Result<usize> {
        let deleted = in_write_tx!(self, |tx, pg, DB| {
            require_sweep!(tx, name);
            sqlx::query(
                "UPDATE jobs SET sweep = (SELECT MIN(o.sweep) FROM sweep_jobs o \
                                          WHERE o.job_id = jobs.id AND o.sweep <> $1) \
                 WHERE sweep = $1 \
                   AND EXISTS (SELECT 1 FROM sweep_jobs o WHERE o.job_id = jobs.id AND o.sweep <> $1)",
            )
            .bind(name)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM sweep_jobs WHERE sweep = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            let deleted = sqlx::query("DELETE FROM jobs WHERE sweep = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM sweeps WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            deleted
        });
        Ok(deleted as usize)
    }

    /// How many of the sweep's jobs are in each state.
    pub async fn sweep_status(&self, name: &str) -> Result<StatusCounts> {
        Ok(self.sweep(name).await?.counts)
    }

    /// One sweep with its job counts.
    pub async fn sweep(&self, name: &str) -> Result<SweepSummary> {
        let row: Option<SweepRow> = with_reader!(self, |pool, pg, DB| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {SWEEP_COLUMNS} FROM sweeps WHERE name = $1"
            )))
            .bind(name)
            .fetch_optional(pool)
            .await?
        });
        let row = row.ok_or_else(|| Error::UnknownSweep(name.to_string()))?;
        let counts: Vec<(String, i64)> = with_reader!(self, |pool, pg, DB| {
            sqlx::query_as(
                "SELECT j.status, COUNT(*) FROM sweep_jobs sj JOIN jobs j ON j.id = sj.job_id \
                 WHERE sj.sweep = $1 GROUP BY j.status",
            )
            .bind(name)
            .fetch_all(pool)
            .await?
        });
        let mut total = StatusCounts::default();
        for (status, n) in counts {
            total.add(&status, n)?;
        }
        row.into_summary(total)
    }

    /// Every sweep, oldest first, with its job counts.
    pub async fn list_sweeps(&self) -> Result<Vec<SweepSummary>> {
        let rows: Vec<SweepRow> = with_reader!(self, |pool, pg, DB| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {SWEEP_COLUMNS} FROM sweeps ORDER BY created_at_ms, name"
            )))
            .fetch_all(pool)
            .await?
        });
        let counts: Vec<(String, String, i64)> = with_reader!(self, |pool, pg, DB| {
            sqlx::query_as(
                "SELECT sj.sweep, j.status, COUNT(*) FROM sweep_jobs sj JOIN jobs j ON j.id = sj.job_id \
                 GROUP BY sj.sweep, j.status",
            )
            .fetch_all(pool)
            .await?
        });
        let mut by_sweep: BTreeMap<String, StatusCounts> = BTreeMap::new();
        for (sweep, status, n) in counts {
            by_sweep.entry(sweep).or_default().add(&status, n)?;
        }
        rows.into_iter()
            .map(|row| {
                let counts = by_sweep.remove(&row.name).unwrap_or_default();
                row.into_summary(counts)
            })
            .collect()
    }

    /// The YAML the sweep was created (or last updated) from.
    pub async fn sweep_source(&self, name: &str) -> Result<String> {
        let yaml: Option<String> = with_reader!(self, |pool, pg, DB| {
            sqlx::query_scalar("SELECT source_yaml FROM sweeps WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?
        });
        yaml.ok_or_else(|| Error::UnknownSweep(name.to_string()))
    }
}
