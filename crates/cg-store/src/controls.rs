//! A sweep's matched-compute controls as the store sees them: a flag `sweeps.controls_pending`
//! (set at submit when the sweep's info lists `controls`, see `Store::submit_sweep`), and
//! [`Store::submit_controls`], which queues the planned control jobs and clears the flag in one
//! transaction. While the flag is set the sweep has not finished. Planning the controls (which
//! configurations, which networks) is cg-daemon's; this module only stores what it is given.

use cg_core::JobSpec;

use crate::store::now_ms;
use crate::{Result, Store, SubmitOptions};

impl Store {
    /// Queues the control jobs of `sweep` and records that its controls are planned, in one write
    /// transaction: the jobs go through the one insertion path (insert-if-absent; a job already
    /// stored keeps its state and its membership of the sweep keeps its params), with the
    /// attempts of a default submit; `controls_pending` becomes 0; and when jobs were added the
    /// sweep is open again (`finished_at_ms` and the final-report claim cleared). Returns the
    /// number of jobs added. Calling it again with the same jobs adds none.
    pub async fn submit_controls(&self, sweep: &str, jobs: &[JobSpec]) -> Result<usize> {
        let now = now_ms();
        let max_attempts = SubmitOptions::default().max_attempts;
        let jobs: Vec<(&JobSpec, i64)> = jobs.iter().map(|j| (j, 0)).collect();
        let added = in_write_tx!(self, |tx, pg, DB| {
            require_sweep!(tx, sweep);
            let added = insert_jobs!(tx, pg, DB, sweep, &jobs, max_attempts, now, false).len();
            sqlx::query(
                "UPDATE sweeps SET controls_pending = 0, updated_at_ms = $2 WHERE name = $1",
            )
            .bind(sweep)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if added > 0 {
                sqlx::query(
                    "UPDATE sweeps SET finished_at_ms = NULL, final_report_by = NULL, \
                     final_report_at_ms = NULL, final_report_done_ms = NULL WHERE name = $1",
                )
                .bind(sweep)
                .execute(&mut *tx)
                .await?;
            }
            added
        });
        Ok(added)
    }

    /// The sweeps whose controls are still to be planned, by name.
    pub async fn controls_pending(&self) -> Result<Vec<String>> {
        Ok(with_reader!(self, |pool, pg, DB| {
            sqlx::query_scalar("SELECT name FROM sweeps WHERE controls_pending = 1 ORDER BY name")
                .fetch_all(pool)
                .await?
        }))
    }
}
