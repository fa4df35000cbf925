//! The two-engine trick: each macro expands its body once for SQLite and once for PostgreSQL, so one
//! piece of query code (runtime `sqlx::query`, `$1` placeholders, which SQLite accepts too) is
//! type-checked against both drivers without a generic-bounds maze or the lossy `Any` driver.
//! Inside a body, `$pg` is a `bool` for the few statements that differ, and `$db` names the
//! `sqlx::Database` type (for `QueryBuilder`).

/// Runs `$body` with `$pool` bound to a pool that may be used for reads.
macro_rules! with_reader {
    ($store:expr, |$pool:ident, $pg:ident, $db:ident| $body:expr) => {{
        match &$store.engine {
            $crate::store::Engine::Sqlite { read, .. } => {
                #[allow(unused)]
                type $db = ::sqlx::Sqlite;
                let $pool = read;
                #[allow(unused)]
                let $pg = false;
                $body
            }
            $crate::store::Engine::Postgres { pool } => {
                #[allow(unused)]
                type $db = ::sqlx::Postgres;
                let $pool = pool;
                #[allow(unused)]
                let $pg = true;
                $body
            }
        }
    }};
}

/// Runs `$body` inside one write transaction bound to `$tx`, and commits when `$body` finishes
/// without `?` returning early (an early return drops `$tx`, which rolls it back). On SQLite the
/// transaction is `BEGIN IMMEDIATE` on the process's single writer connection, so it takes the
/// write lock up front and never fails half-way on a read-to-write lock upgrade.
macro_rules! in_write_tx {
    ($store:expr, |$tx:ident, $pg:ident, $db:ident| $body:expr) => {{
        match &$store.engine {
            $crate::store::Engine::Sqlite { write, .. } => {
                #[allow(unused)]
                type $db = ::sqlx::Sqlite;
                #[allow(unused)]
                let $pg = false;
                let mut $tx = write.begin_with("BEGIN IMMEDIATE").await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            $crate::store::Engine::Postgres { pool } => {
                #[allow(unused)]
                type $db = ::sqlx::Postgres;
                #[allow(unused)]
                let $pg = true;
                let mut $tx = pool.begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    }};
}

/// Runs `$body` with `$pool` bound to a pool for single-statement writes (autocommit). On SQLite
/// this is the process's one writer connection; a lone write statement takes the write lock when
/// it starts, so it waits in the busy handler rather than failing.
macro_rules! with_writer {
    ($store:expr, |$pool:ident, $pg:ident, $db:ident| $body:expr) => {{
        match &$store.engine {
            $crate::store::Engine::Sqlite { write, .. } => {
                #[allow(unused)]
                type $db = ::sqlx::Sqlite;
                let $pool = write;
                #[allow(unused)]
                let $pg = false;
                $body
            }
            $crate::store::Engine::Postgres { pool } => {
                #[allow(unused)]
                type $db = ::sqlx::Postgres;
                let $pool = pool;
                #[allow(unused)]
                let $pg = true;
                $body
            }
        }
    }};
}

/// Inserts jobs into `jobs` and into the sweep's `sweep_jobs`, inside the caller's write
/// transaction `$tx` (of [`in_write_tx!`]): the one insertion path of submits and of searches.
/// `$jobs` is a `&[(&JobSpec, priority)]`. On PostgreSQL a transaction-scoped advisory lock makes
/// writers take turns, so two of them never read the same `MAX(seq)` (SQLite's `BEGIN IMMEDIATE`
/// already does). A job already stored keeps its row; its membership of the sweep takes the new
/// `params` when `$update_params`. Evaluates to the set of ids that were new.
macro_rules! insert_jobs {
    ($tx:ident, $pg:ident, $db:ident, $sweep:expr, $jobs:expr, $max_attempts:expr, $now:expr,
     $update_params:expr) => {{
        let jobs: &[(&cg_core::JobSpec, i64)] = $jobs;
        let sweep: &str = $sweep;
        let mut added: std::collections::HashSet<String> = std::collections::HashSet::new();
        if !jobs.is_empty() {
            if $pg {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind($crate::queue::JOB_SEQ_LOCK)
                    .execute(&mut *$tx)
                    .await?;
            }
            let base_seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM jobs")
                .fetch_one(&mut *$tx)
                .await?;
            let base_position: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(position), 0) FROM sweep_jobs WHERE sweep = $1",
            )
            .bind(sweep)
            .fetch_one(&mut *$tx)
            .await?;
            let n = |i: usize| i64::try_from(i).unwrap_or(i64::MAX);
            for (chunk_idx, chunk) in jobs.chunks($crate::queue::CHUNK).enumerate() {
                let offset = n(chunk_idx * $crate::queue::CHUNK) + 1;
                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO jobs (id, sweep, params, config, status, max_attempts, priority, seq, \
                     created_at_ms, updated_at_ms) ",
                );
                insert.push_values(chunk.iter().enumerate(), |mut row, (i, (job, priority))| {
                    row.push_bind(job.id.as_str())
                        .push_bind(sweep)
                        .push_bind(sqlx::types::Json(&job.params))
                        .push_bind(sqlx::types::Json(&job.config))
                        .push_bind("queued")
                        .push_bind(i64::from($max_attempts))
                        .push_bind(*priority)
                        .push_bind(base_seq + offset + n(i))
                        .push_bind($now)
                        .push_bind($now);
                });
                insert.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
                let ids: Vec<String> = insert.build_query_scalar().fetch_all(&mut *$tx).await?;
                added.extend(ids);

                let mut member = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO sweep_jobs (sweep, job_id, params, position) ",
                );
                member.push_values(chunk.iter().enumerate(), |mut row, (i, (job, _))| {
                    row.push_bind(sweep)
                        .push_bind(job.id.as_str())
                        .push_bind(sqlx::types::Json(&job.params))
                        .push_bind(base_position + offset + n(i));
                });
                member.push(if $update_params {
                    " ON CONFLICT (sweep, job_id) DO UPDATE SET params = excluded.params"
                } else {
                    " ON CONFLICT (sweep, job_id) DO NOTHING"
                });
                member.build().execute(&mut *$tx).await?;
            }
        }
        added
    }};
}

/// Ends attempt `$attempt` of job `$job` in the `attempts` table, inside the caller's write
/// transaction `$tx` (of [`in_write_tx!`]): its `$outcome`, its end time `$now`, why (`$error`)
/// and the tail of its stderr (`$stderr_tail`), each an `Option` or a value. An attempt no longer
/// running is left as it is. The statement is `queue::END_ATTEMPT`; the job's own row ends
/// through `queue::end_job_attempt_sql`.
macro_rules! end_attempt {
    ($tx:ident, $job:expr, $attempt:expr, $outcome:expr, $now:expr, $error:expr,
     $stderr_tail:expr) => {
        sqlx::query($crate::queue::END_ATTEMPT.as_str())
            .bind($job)
            .bind($attempt)
            .bind($outcome)
            .bind($now)
            .bind($error)
            .bind($stderr_tail)
            .execute(&mut *$tx)
            .await?
    };
}

/// Fails with [`Error::UnknownSweep`](crate::Error::UnknownSweep) unless the sweep `$name` exists,
/// inside the caller's write transaction `$tx` (of [`in_write_tx!`]), so what follows sees it.
macro_rules! require_sweep {
    ($tx:ident, $name:expr) => {{
        let exists: Option<String> = sqlx::query_scalar("SELECT name FROM sweeps WHERE name = $1")
            .bind($name)
            .fetch_optional(&mut *$tx)
            .await?;
        if exists.is_none() {
            return Err($crate::Error::UnknownSweep($name.to_string()));
        }
    }};
}
