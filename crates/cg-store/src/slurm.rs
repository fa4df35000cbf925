//! The Slurm arrays of a sweep (`cg slurm submit`): recorded when submitted, read by `cg status`.
//! Slurm itself is cg-slurm's business; this only keeps the job ids with the sweep.

use crate::store::now_ms;
use crate::{Result, Store};

/// One Slurm array that runs workers for a sweep.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SlurmJob {
    pub slurm_job: String,
    pub workers: i64,
    /// Where its batch script was written.
    pub script: String,
    pub submitted_at_ms: i64,
}

impl Store {
    /// Records that Slurm job `slurm_job` runs `workers` workers for `sweep` (again: no change).
    pub async fn record_slurm_job(
        &self,
        sweep: &str,
        slurm_job: &str,
        workers: usize,
        script: &str,
    ) -> Result<()> {
        let now = now_ms();
        let workers = i64::try_from(workers).unwrap_or(i64::MAX);
        in_write_tx!(self, |tx, pg, DB| {
            require_sweep!(tx, sweep);
            sqlx::query(
                "INSERT INTO slurm_jobs (sweep, slurm_job, workers, script, submitted_at_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sweep, slurm_job) DO NOTHING",
            )
            .bind(sweep)
            .bind(slurm_job)
            .bind(workers)
            .bind(script)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// The Slurm arrays recorded for `sweep`, oldest first.
    pub async fn slurm_jobs(&self, sweep: &str) -> Result<Vec<SlurmJob>> {
        Ok(with_reader!(self, |pool, pg, DB| {
            sqlx::query_as(
                "SELECT slurm_job, workers, script, submitted_at_ms FROM slurm_jobs \
                 WHERE sweep = $1 ORDER BY submitted_at_ms, slurm_job",
            )
            .bind(sweep)
            .fetch_all(pool)
            .await?
        }))
    }
}
