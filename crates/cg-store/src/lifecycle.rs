//! A sweep's life cycle beyond its status: when it started and finished, who writes its final
//! report, where its report is, and the sweep files `cg daemon --watch` refused.
//!
//! Exactly one worker writes a sweep's final report, however many machines share the database:
//! [`Store::finish_sweep`] takes the report with one conditional `UPDATE` of the sweep's row
//! (`final_report_by` is empty, or it is this worker's, or the taker has not written it within
//! `stale`); the database serialises the updates of one row, so one taker wins and the others
//! see zero rows changed. A taker that dies before [`Store::final_report_written`] leaves the
//! claim to go stale, and the next worker to look takes it over.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::now_ms;
use crate::{Error, Result, Store};

/// "The sweep has a queued or running job, or a search that may still submit one, or controls
/// still to be planned", for `sweeps` ([`SweepSummary::has_finished`](crate::SweepSummary::has_finished)
/// in SQL).
pub(crate) const UNFINISHED: &str = "(EXISTS (SELECT 1 FROM sweep_jobs sj JOIN jobs j ON j.id = sj.job_id \
     WHERE sj.sweep = sweeps.name AND j.status IN ('queued', 'running')) \
     OR EXISTS (SELECT 1 FROM searches s WHERE s.sweep = sweeps.name AND s.finished = 0) \
     OR sweeps.controls_pending = 1)";

/// What [`Store::finish_sweep`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalReport {
    /// The sweep has not finished ([`SweepSummary::has_finished`](crate::SweepSummary::has_finished)).
    NotFinished,
    /// It has finished and this worker writes its final report.
    Mine,
    /// It has finished; another worker writes (or wrote) its final report.
    Elsewhere,
}

/// A sweep file that `cg daemon --watch` refused (the latest refused version of the file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub path: String,
    pub content_sha256: String,
    pub message: String,
    pub rejected_at_ms: i64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

impl Store {
    /// Records that the sweep has finished, if it has, and decides who writes its final report:
    /// [`FinalReport::Mine`] for exactly one `worker` (see the module doc), until that worker calls
    /// [`Store::final_report_written`] or its claim is older than `stale`. The decision "has
    /// finished" is [`SweepSummary::has_finished`](crate::SweepSummary::has_finished); the SQL
    /// checks again that no job is queued or running, so a job queued in between wins.
    pub async fn finish_sweep(
        &self,
        name: &str,
        worker: &str,
        stale: Duration,
    ) -> Result<FinalReport> {
        let summary = self.sweep(name).await?;
        if !summary.has_finished() {
            return Ok(FinalReport::NotFinished);
        }
        let now = now_ms();
        with_writer!(self, |pool, pg, DB| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE sweeps SET finished_at_ms = $2, updated_at_ms = $2, \
                 started_at_ms = COALESCE(started_at_ms, \
                     (SELECT MIN(a.started_at_ms) FROM attempts a JOIN sweep_jobs sj \
                      ON sj.job_id = a.job_id WHERE sj.sweep = $1)) \
                 WHERE name = $1 AND finished_at_ms IS NULL AND NOT {UNFINISHED}"
            )))
            .bind(name)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        let taken = with_writer!(self, |pool, pg, DB| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE sweeps SET final_report_by = $2, final_report_at_ms = $3 \
                 WHERE name = $1 AND finished_at_ms IS NOT NULL AND final_report_done_ms IS NULL \
                   AND (final_report_by IS NULL OR final_report_by = $2 OR final_report_at_ms < $4) \
                   AND NOT {UNFINISHED}"
            )))
            .bind(name)
            .bind(worker)
            .bind(now)
            .bind(now.saturating_sub(ms(stale)))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(if taken == 1 {
            FinalReport::Mine
        } else {
            FinalReport::Elsewhere
        })
    }

    /// Records that `worker` wrote the sweep's final report at `path`. `false` (and nothing
    /// changes) when the report is not `worker`'s to write (any more).
    pub async fn final_report_written(&self, name: &str, worker: &str, path: &str) -> Result<bool> {
        let now = now_ms();
        let updated = with_writer!(self, |pool, pg, DB| {
            sqlx::query(
                "UPDATE sweeps SET final_report_done_ms = $3, report_path = $4 \
                 WHERE name = $1 AND final_report_by = $2 AND final_report_done_ms IS NULL",
            )
            .bind(name)
            .bind(worker)
            .bind(now)
            .bind(path)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(updated == 1)
    }

    /// Records where the sweep's latest (running) report was written.
    pub async fn set_report_path(&self, name: &str, path: &str) -> Result<()> {
        let updated = with_writer!(self, |pool, pg, DB| {
            sqlx::query("UPDATE sweeps SET report_path = $2 WHERE name = $1")
                .bind(name)
                .bind(path)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if updated == 0 {
            return Err(Error::UnknownSweep(name.to_string()));
        }
        Ok(())
    }

    /// Forgets that the sweep finished (and its final report) when it has queued or running jobs
    /// again: after a submission or a resume.
    pub(crate) async fn reopen_sweep(&self, name: &str) -> Result<()> {
        with_writer!(self, |pool, pg, DB| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE sweeps SET finished_at_ms = NULL, final_report_by = NULL, \
                 final_report_at_ms = NULL, final_report_done_ms = NULL \
                 WHERE name = $1 AND (finished_at_ms IS NOT NULL OR final_report_by IS NOT NULL) \
                   AND {UNFINISHED}"
            )))
            .bind(name)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// The sweeps that have jobs of `job` among theirs.
    pub async fn sweeps_of_job(&self, job: &str) -> Result<Vec<String>> {
        Ok(with_reader!(self, |pool, pg, DB| {
            sqlx::query_scalar("SELECT sweep FROM sweep_jobs WHERE job_id = $1 ORDER BY sweep")
                .bind(job)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Records that the sweep file at `path` (this content) was refused, with why. `false` when
    /// this very version was already recorded: it has been reported before.
    pub async fn record_rejection(
        &self,
        path: &str,
        content_sha256: &str,
        message: &str,
    ) -> Result<bool> {
        let now = now_ms();
        let changed = with_writer!(self, |pool, pg, DB| {
            sqlx::query(
                "INSERT INTO watch_rejections (path, content_sha256, message, rejected_at_ms) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (path) DO UPDATE SET content_sha256 = excluded.content_sha256, \
                 message = excluded.message, rejected_at_ms = excluded.rejected_at_ms \
                 WHERE watch_rejections.content_sha256 <> excluded.content_sha256 \
                    OR watch_rejections.message <> excluded.message",
            )
            .bind(path)
            .bind(content_sha256)
            .bind(message)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed == 1)
    }

    /// Forgets the refusal of the sweep file at `path` (it was submitted, or it is gone).
    pub async fn clear_rejection(&self, path: &str) -> Result<()> {
        with_writer!(self, |pool, pg, DB| {
            sqlx::query("DELETE FROM watch_rejections WHERE path = $1")
                .bind(path)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// The refused sweep files, by path.
    pub async fn rejections(&self) -> Result<Vec<Rejection>> {
        let rows: Vec<(String, String, String, i64)> = with_reader!(self, |pool, pg, DB| {
            sqlx::query_as(
                "SELECT path, content_sha256, message, rejected_at_ms FROM watch_rejections \
                 ORDER BY path",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(path, content_sha256, message, rejected_at_ms)| Rejection {
                    path,
                    content_sha256,
                    message,
                    rejected_at_ms,
                },
            )
            .collect())
    }
}
