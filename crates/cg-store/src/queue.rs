//! The job queue: submit, claim under a lease, heartbeat, record epochs, complete, fail, requeue,
//! and take back jobs whose worker stopped answering. Every transition is one statement or one
//! short write transaction whose `WHERE` clause checks that the caller's attempt still holds the
//! job, so races between workers, the coordinator and lease expiry resolve in the database.
//! It does not schedule: callers decide when to claim and when to look for expired leases.

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::Duration;

use cg_core::{EpochRecord, JobSpec, JobStatus, Provenance, RunConfig, RunResult, SweepInfo};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::types::Json;
use sqlx::{FromRow, QueryBuilder, Sqlite};

use crate::store::{Engine, now_ms};
use crate::types::{
    Claim, CompleteOutcome, SubmitOptions, SubmitSummary, attempt_u32, parse_job_status,
};
use crate::{Error, Result, Store};

/// Rows per multi-row `INSERT`/`IN (..)` list: far below SQLite's and PostgreSQL's bind limits.
pub(crate) const CHUNK: usize = 500;

/// The PostgreSQL advisory lock that job insertions take in turn (see `insert_jobs!`).
pub(crate) const JOB_SEQ_LOCK: i64 = 0x6367_5f6a_6f62; // "cg_job"

/// Longest stderr tail kept per attempt, in bytes (the end is kept).
pub const STDERR_TAIL_MAX_BYTES: usize = 64 * 1024;

/// The one `UPDATE jobs` that ends the running attempt of the jobs where `which` holds (every
/// end of an attempt goes through it): `set` gives their new status and what goes with it, the
/// lease is dropped and `updated_at_ms` becomes `now` (an SQL expression, usually a
/// placeholder). The `attempts` row ends through [`end_attempt_sql`].
fn end_job_attempt_sql(set: &str, now: &str, which: &str) -> String {
    format!(
        "UPDATE jobs SET {set}, lease_owner = NULL, lease_expires_at_ms = NULL, updated_at_ms = {now} \
         WHERE status = 'running' AND {which}"
    )
}

/// The one `UPDATE attempts` that ends attempt `$2` of job `$1` while it runs, where `guard`
/// holds too: its `outcome`, `ended_at_ms = now`, `error` and `stderr_tail` (SQL expressions,
/// usually placeholders).
fn end_attempt_sql(
    outcome: &str,
    now: &str,
    error: &str,
    stderr_tail: &str,
    guard: &str,
) -> String {
    format!(
        "UPDATE attempts SET outcome = {outcome}, ended_at_ms = {now}, error = {error}, \
         stderr_tail = {stderr_tail} WHERE job_id = $1 AND attempt = $2 AND outcome = 'running' \
         AND {guard}"
    )
}

/// [`end_attempt_sql`] with everything bound: `$3` outcome, `$4` end time, `$5` error, `$6`
/// stderr tail; run by `end_attempt!`.
pub(crate) static END_ATTEMPT: LazyLock<String> =
    LazyLock::new(|| end_attempt_sql("$3", "$4", "$5", "$6", "TRUE"));

/// Job `$1` while attempt `$2` of worker `$3` holds it (with [`end_job_attempt_sql`]'s
/// `status = 'running'`).
const HELD: &str = "id = $1 AND last_attempt = $2 AND lease_owner = $3";

/// The job's end when an attempt fails (`$4` the error, `$5` retryable, `$6` now): back in the
/// queue while attempts are left and the failure is retryable, else failed.
static FAIL_JOB: LazyLock<String> = LazyLock::new(|| {
    end_job_attempt_sql(
        "status = CASE WHEN $5 AND attempts < max_attempts THEN 'queued' ELSE 'failed' END, \
         last_error = $4",
        "$6",
        HELD,
    ) + " RETURNING status"
});

/// The job's end when attempt `$2` is put back without spending it (`$3` now, `$4` the error,
/// if any).
static REQUEUE_JOB: LazyLock<String> = LazyLock::new(|| {
    end_job_attempt_sql(
        "status = 'queued', attempts = attempts - 1, last_error = COALESCE($4, last_error)",
        "$3",
        "id = $1 AND last_attempt = $2",
    )
});

/// Takes back every job whose lease expired by `$1` (now): the attempt is spent.
static TAKE_BACK_EXPIRED: LazyLock<String> = LazyLock::new(|| {
    end_job_attempt_sql(
        "status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END, \
         last_error = 'lease expired: worker ' || lease_owner || ' sent no heartbeat in time (attempt ' \
                      || CAST(attempts AS TEXT) || ' of ' || CAST(max_attempts AS TEXT) || ')'",
        "$1",
        "lease_expires_at_ms <= $1",
    ) + " RETURNING id, last_attempt, last_error"
});

/// The queued job to hand out next, ignoring fairness: highest priority, then oldest, of a sweep
/// that is active. On PostgreSQL, `fence` is `OFFSET 0`: it keeps the planner from turning the
/// `EXISTS` into a join over every queued job (which it does on a freshly filled table without
/// statistics, making each claim a full scan and sort), so the plan walks the `jobs_queue` index
/// in order and stops at the first hit. SQLite never flattens the `EXISTS` (and rejects a bare
/// `OFFSET`).
fn next_queued(fence: &str) -> String {
    format!(
        "SELECT j.id FROM jobs j \
         WHERE j.status = 'queued' \
           AND EXISTS (SELECT 1 FROM sweep_jobs sj JOIN sweeps s ON s.name = sj.sweep \
                       WHERE sj.job_id = j.id AND s.status = 'active' \
                         AND (CAST($4 AS TEXT) IS NULL OR sj.sweep = $4) {fence}) \
         ORDER BY j.priority DESC, j.seq \
         LIMIT 1"
    )
}

/// The queued job to hand out next, fairly: the active sweep to serve is the one with the highest
/// priority among its queued jobs (`--priority`), then the fewest running jobs, then the one served least recently
/// (`claim_turn`, round-robin), and of it the highest-priority, oldest queued
/// job. Sweeps are the jobs' first sweeps (`jobs.sweep`); a queued job only another, active sweep
/// holds is handed out by [`next_queued`] when no sweep is picked here. The sub-queries walk the
/// partial indexes `jobs_sweep_queued` and `jobs_sweep_running`.
const NEXT_FAIR: &str = "SELECT j.id FROM jobs j \
     WHERE j.status = 'queued' AND j.sweep = (\
         SELECT s.name FROM sweeps s \
         WHERE s.status = 'active' AND (CAST($4 AS TEXT) IS NULL OR s.name = $4) \
           AND EXISTS (SELECT 1 FROM jobs q WHERE q.sweep = s.name AND q.status = 'queued') \
         ORDER BY (SELECT MAX(q.priority) FROM jobs q WHERE q.sweep = s.name AND q.status = 'queued') DESC, \
                  (SELECT COUNT(*) FROM jobs r WHERE r.sweep = s.name AND r.status = 'running'), \
                  COALESCE(s.claim_turn, 0), s.created_at_ms, s.name \
         LIMIT 1) \
     ORDER BY j.priority DESC, j.seq \
     LIMIT 1";

/// Marks the claimed job's first sweep as served now (for [`NEXT_FAIR`]) and started.
const TOUCH_SWEEP: &str = "claim_turn = (SELECT COALESCE(MAX(t.claim_turn), 0) + 1 FROM sweeps t), \
     started_at_ms = COALESCE(sweeps.started_at_ms, $3)";

const CLAIM_SET: &str = "status = 'running', attempts = attempts + 1, last_attempt = last_attempt + 1, \
     lease_owner = $1, lease_expires_at_ms = $2, heartbeat_at_ms = $3, updated_at_ms = $3";

/// SQLite: one `BEGIN IMMEDIATE` transaction in one round trip to the connection's thread. The
/// second statement records the attempt of the job the first one claimed (the only job of this
/// worker that is running without an attempt row yet).
static CLAIM_SQLITE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "BEGIN IMMEDIATE; \
         UPDATE jobs SET {CLAIM_SET} WHERE status = 'queued' AND id = COALESCE(({NEXT_FAIR}), ({next})) \
         RETURNING id, sweep, params, config, last_attempt; \
         UPDATE sweeps SET {TOUCH_SWEEP} WHERE name IN (SELECT sweep FROM jobs \
           WHERE status = 'running' AND lease_expires_at_ms = $2 AND lease_owner = $1 AND updated_at_ms = $3); \
         INSERT INTO attempts (job_id, attempt, worker, started_at_ms, outcome) \
         SELECT id, last_attempt, $1, $3, 'running' FROM jobs \
         WHERE status = 'running' AND lease_expires_at_ms = $2 AND lease_owner = $1 \
           AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.job_id = jobs.id AND a.attempt = jobs.last_attempt); \
         COMMIT;",
        next = next_queued("")
    )
});

/// PostgreSQL: one statement; `SKIP LOCKED` lets concurrent claimers pass each other's row.
static CLAIM_POSTGRES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH fair AS ({NEXT_FAIR} FOR UPDATE OF j SKIP LOCKED), \
         anyq AS ({next} FOR UPDATE OF j SKIP LOCKED), \
         picked AS (SELECT id FROM fair UNION ALL \
                    (SELECT id FROM anyq WHERE NOT EXISTS (SELECT 1 FROM fair)) LIMIT 1), \
         claimed AS (UPDATE jobs SET {CLAIM_SET} FROM picked \
                     WHERE jobs.id = picked.id AND jobs.status = 'queued' \
                     RETURNING jobs.id, jobs.sweep, jobs.params, jobs.config, jobs.last_attempt), \
         started AS (INSERT INTO attempts (job_id, attempt, worker, started_at_ms, outcome) \
                     SELECT id, last_attempt, $1, $3, 'running' FROM claimed), \
         touched AS (UPDATE sweeps SET {TOUCH_SWEEP} FROM claimed WHERE sweeps.name = claimed.sweep) \
         SELECT id, sweep, params, config, last_attempt FROM claimed",
        next = next_queued("OFFSET 0")
    )
});

/// Takes back the running jobs of a dead worker (`$2`: its id prefix). The attempt is given back
/// (a job runs in a child process, so its worker dying says nothing against the job) unless the job
/// was already taken back from dead workers `max_attempts` times: then it is spent, so a job that
/// somehow kills its worker every time still runs out of attempts.
static RECLAIM_OWNER: LazyLock<String> = LazyLock::new(|| {
    let spent = "(attempts - CASE WHEN (SELECT COUNT(*) FROM attempts a \
                  WHERE a.job_id = jobs.id AND a.outcome = 'reclaimed') < max_attempts \
                  THEN 1 ELSE 0 END)";
    let set = format!(
        "status = CASE WHEN {spent} >= max_attempts THEN 'failed' ELSE 'queued' END, \
         attempts = {spent}, \
         last_error = 'worker ' || lease_owner || ' died; job taken back (' \
                      || CAST({spent} AS TEXT) || ' of ' || CAST(max_attempts AS TEXT) || ' attempts spent)'"
    );
    end_job_attempt_sql(&set, "$1", "substr(lease_owner, 1, length($2)) = $2")
        + " RETURNING id, last_attempt, last_error"
});

/// The columns of `results` after `job_id, attempt`: bound as `$5..$18` by [`bind_result`], but
/// `recorded_at_ms`, which is `$4`.
const RESULT_COLUMNS: &str = "test_acc_final, test_acc_peak, peak_epoch, macs_full, macs_executed_nominal, \
     macs_executed_actual, savings_nominal, savings_actual, savings_measured, train_img_per_s, \
     infer_img_per_s, wall_secs, provenance, result, recorded_at_ms";

const RESULT_UPSERT: &str = "ON CONFLICT (job_id) DO UPDATE SET attempt = excluded.attempt, \
     test_acc_final = excluded.test_acc_final, test_acc_peak = excluded.test_acc_peak, \
     peak_epoch = excluded.peak_epoch, macs_full = excluded.macs_full, \
     macs_executed_nominal = excluded.macs_executed_nominal, \
     macs_executed_actual = excluded.macs_executed_actual, savings_nominal = excluded.savings_nominal, \
     savings_actual = excluded.savings_actual, savings_measured = excluded.savings_measured, \
     train_img_per_s = excluded.train_img_per_s, infer_img_per_s = excluded.infer_img_per_s, \
     wall_secs = excluded.wall_secs, provenance = excluded.provenance, result = excluded.result, \
     recorded_at_ms = excluded.recorded_at_ms";

const EPOCH_COLUMNS: &str = "job_id, attempt, epoch, train_loss, train_acc, test_acc, savings_nominal, \
     savings_actual, lr, tau, flops_weight, wall_secs, gates, recorded_at_ms, val_acc";

/// PostgreSQL: completing is one statement. `done` takes the job only if this attempt still holds
/// it; every other part inserts for the rows of `done`, so nothing is written when it took nothing.
/// Gates (`$19..$21`) and epochs (`$22..$33`) come as parallel arrays, so floats arrive bit-exact.
static COMPLETE_POSTGRES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH done AS ({complete_job} RETURNING id), \
         result_row AS (\
             INSERT INTO results (job_id, attempt, {RESULT_COLUMNS}) \
             SELECT id, $2, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $4 \
             FROM done {RESULT_UPSERT}), \
         gate_rows AS (\
             INSERT INTO gate_stats (job_id, block_idx, gate_open_rate, mean_cir) \
             SELECT done.id, g.block_idx, g.gate_open_rate, g.mean_cir \
             FROM done, unnest($19::bigint[], $20::float8[], $21::float8[]) \
                  AS g (block_idx, gate_open_rate, mean_cir) \
             ON CONFLICT (job_id, block_idx) DO UPDATE SET \
             gate_open_rate = excluded.gate_open_rate, mean_cir = excluded.mean_cir), \
         epoch_rows AS (\
             INSERT INTO epoch_metrics ({EPOCH_COLUMNS}) \
             SELECT done.id, $2, e.epoch, e.train_loss, e.train_acc, e.test_acc, e.savings_nominal, \
             e.savings_actual, e.lr, e.tau, e.flops_weight, e.wall_secs, e.gates::jsonb, $4, e.val_acc \
             FROM done, unnest($22::bigint[], $23::float8[], $24::float8[], $25::float8[], \
                               $26::float8[], $27::float8[], $28::float8[], $29::float8[], \
                               $30::float8[], $31::float8[], $32::text[], $33::float8[]) \
                  AS e (epoch, train_loss, train_acc, test_acc, savings_nominal, savings_actual, \
                        lr, tau, flops_weight, wall_secs, gates, val_acc) \
             ON CONFLICT (job_id, attempt, epoch) DO NOTHING), \
         attempt_row AS ({complete_attempt}) \
         SELECT id FROM done",
        complete_job = complete_job_sql(),
        complete_attempt = complete_attempt_sql("EXISTS (SELECT 1 FROM done)"),
    )
});

/// The job's end when attempt `$2` (of worker `$3`) completes at `$4`.
fn complete_job_sql() -> String {
    end_job_attempt_sql("status = 'completed', last_error = NULL", "$4", HELD)
}

/// The attempt's end when it completes at `$4`, where `guard` holds.
fn complete_attempt_sql(guard: &str) -> String {
    end_attempt_sql("'completed'", "$4", "NULL", "NULL", guard)
}

/// Binds `$1..$18` of the completion statements: job, attempt, worker, now, then the result row.
fn bind_result<'q, DB: sqlx::Database>(
    query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    job: &str,
    attempt: i64,
    worker: &str,
    now: i64,
    result: &RunResult,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    String: for<'a> sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: for<'a> sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    f64: for<'a> sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<f64>: for<'a> sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Json<Provenance>: for<'a> sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Json<RunResult>: for<'a> sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    query
        .bind(job.to_string())
        .bind(attempt)
        .bind(worker.to_string())
        .bind(now)
        .bind(result.test_acc_final)
        .bind(result.test_acc_peak)
        .bind(to_i64(result.peak_epoch))
        .bind(to_i64(result.macs_full))
        .bind(result.macs_executed_nominal)
        .bind(result.macs_executed_actual)
        .bind(result.savings_nominal)
        .bind(result.savings_actual)
        .bind(result.savings_measured)
        .bind(result.train_img_per_s)
        .bind(result.infer_img_per_s)
        .bind(result.wall_secs)
        .bind(Json(result.provenance.clone()))
        .bind(Json(result.clone()))
}

/// SQLite: completing is one `BEGIN IMMEDIATE` script, one round trip. Each write is guarded by
/// "this attempt still holds the job"; the last statement takes the job and returns a row only
/// if it did. Gates and epochs are bound as values, so floats arrive bit-exact (NaN as NULL).
fn complete_sqlite_script(
    job: &str,
    attempt: i64,
    worker: &str,
    now: i64,
    result: &RunResult,
) -> sqlx::query::Query<'static, Sqlite, SqliteArguments> {
    use std::fmt::Write;
    let holds = format!("EXISTS (SELECT 1 FROM jobs WHERE status = 'running' AND {HELD})");
    let mut sql = String::with_capacity(4096);
    let _ = write!(
        sql,
        "BEGIN IMMEDIATE; \
         INSERT INTO results (job_id, attempt, {RESULT_COLUMNS}) \
         SELECT $1, $2, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $4 WHERE {holds} \
         {RESULT_UPSERT}; "
    );
    let mut next = 19;
    let mut placeholders = |n: usize, sql: &mut String| {
        sql.push('(');
        for i in 0..n {
            if i > 0 {
                sql.push_str(", ");
            }
            let _ = write!(sql, "${next}");
            next += 1;
        }
        sql.push(')');
    };
    if !result.gates.is_empty() {
        sql.push_str(
            "INSERT INTO gate_stats (job_id, block_idx, gate_open_rate, mean_cir) \
             SELECT $1, column1, column2, column3 FROM (VALUES ",
        );
        for (i, _) in result.gates.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            placeholders(3, &mut sql);
        }
        let _ = write!(
            sql,
            ") WHERE {holds} ON CONFLICT (job_id, block_idx) DO UPDATE SET \
             gate_open_rate = excluded.gate_open_rate, mean_cir = excluded.mean_cir; "
        );
    }
    // One INSERT per CHUNK epochs keeps each statement far below SQLite's 32,766 parameters.
    for epochs in result.history.chunks(CHUNK) {
        let _ = write!(
            sql,
            "INSERT INTO epoch_metrics ({EPOCH_COLUMNS}) SELECT $1, $2, column1, column2, column3, column4, \
             column5, column6, column7, column8, column9, column10, column11, $4, column12 FROM (VALUES "
        );
        for (i, _) in epochs.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            placeholders(12, &mut sql);
        }
        let _ = write!(
            sql,
            ") WHERE {holds} ON CONFLICT (job_id, attempt, epoch) DO NOTHING; "
        );
    }
    let _ = write!(
        sql,
        "{}; {} RETURNING id; COMMIT;",
        complete_attempt_sql(&holds),
        complete_job_sql()
    );
    let mut query = bind_result(
        sqlx::query(sqlx::AssertSqlSafe(sql)),
        job,
        attempt,
        worker,
        now,
        result,
    );
    for g in &result.gates {
        query = query
            .bind(to_i64(g.block_idx))
            .bind(g.gate_open_rate)
            .bind(g.mean_cir);
    }
    for e in &result.history {
        query = query
            .bind(to_i64(e.epoch))
            .bind(e.train_loss)
            .bind(e.train_acc)
            .bind(e.test_acc)
            .bind(e.savings_nominal)
            .bind(e.savings_actual)
            .bind(e.lr)
            .bind(e.tau)
            .bind(e.flops_weight)
            .bind(e.wall_secs)
            .bind(Json(e.gates.clone()))
            .bind(e.val_acc);
    }
    query
}

/// Runs a `BEGIN IMMEDIATE; …; COMMIT;` script on the SQLite writer connection and returns the rows
/// its statements produced. Several statements with bound arguments in one query is SQLite-only
/// sqlx behaviour that sqlx 0.9 calls deprecated (launchbadge/sqlx#3108); if it goes, these
/// scripts become `begin_with("BEGIN IMMEDIATE")` transactions with one call per statement, at
/// about twice the round trips (the tests would fail first). It runs in its own task, so a caller that gives up half-way cannot
/// leave the script's transaction open; a script that fails is rolled back before the connection
/// goes back to the pool.
async fn run_sqlite_script(
    write: &sqlx::SqlitePool,
    query: sqlx::query::Query<'static, Sqlite, SqliteArguments>,
) -> Result<Vec<SqliteRow>> {
    let write = write.clone();
    let task = tokio::spawn(async move {
        let mut conn = write.acquire().await?;
        match query.fetch_all(&mut *conn).await {
            Ok(rows) => Ok(rows),
            Err(e) => {
                if let Err(rollback) = sqlx::query("ROLLBACK").execute(&mut *conn).await
                    && !rollback.to_string().contains("no transaction is active")
                {
                    // The state of this connection is unknown: do not reuse it.
                    conn.close_on_drop();
                }
                Err(Error::from(e))
            }
        }
    });
    task.await.map_err(|e| Error::Database(Box::new(e)))?
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    id: String,
    sweep: String,
    params: Json<serde_json::Map<String, serde_json::Value>>,
    config: Json<RunConfig>,
    last_attempt: i64,
}

/// Why a report from `attempt` does not apply, for [`Error::StaleAttempt`].
#[derive(sqlx::FromRow)]
struct JobState {
    status: String,
    last_attempt: i64,
    lease_owner: Option<String>,
    result_attempt: Option<i64>,
}

impl JobState {
    fn reason(&self, attempt: u32, worker: &str) -> String {
        let last = self.last_attempt;
        match self.status.as_str() {
            "running" if last != i64::from(attempt) => format!("attempt {last} runs it now"),
            "running" => format!(
                "it is leased to `{}`, not `{worker}`",
                self.lease_owner.as_deref().unwrap_or("nobody")
            ),
            "queued" => "it went back to the queue (lease expired or requeued)".into(),
            "completed" => match self.result_attempt {
                Some(r) => format!("attempt {r} already completed it"),
                None => "it is already completed".into(),
            },
            "failed" => "it has failed".into(),
            "cancelled" => "it was cancelled".into(),
            other => format!("it is {other}"),
        }
    }
}

const JOB_STATE: &str = "SELECT j.status, j.last_attempt, j.lease_owner, r.attempt AS result_attempt \
     FROM jobs j LEFT JOIN results r ON r.job_id = j.id WHERE j.id = $1";

fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2)
}

fn to_i64(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// The last `STDERR_TAIL_MAX_BYTES` of `s`, cut at a character boundary.
fn tail(s: &str) -> &str {
    if s.len() <= STDERR_TAIL_MAX_BYTES {
        return s;
    }
    let mut start = s.len() - STDERR_TAIL_MAX_BYTES;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

/// Whether two sweep files are the same file, up to trailing spaces and blank lines.
fn same_source(a: &str, b: &str) -> bool {
    let lines = |s: &str| -> Vec<String> {
        let mut v: Vec<String> = s.lines().map(|l| l.trim_end().to_string()).collect();
        while v.last().is_some_and(String::is_empty) {
            v.pop();
        }
        v
    };
    lines(a) == lines(b)
}

/// Which running jobs [`Store::take_back`] takes back.
enum TakeBack<'a> {
    Expired,
    Owner(&'a str),
}

impl Store {
    /// Adds `jobs` to the sweep's queue; see [`Store::submit_jobs_with`].
    pub async fn submit_jobs(
        &self,
        sweep: &str,
        jobs: &[JobSpec],
        rerun: bool,
    ) -> Result<SubmitSummary> {
        let options = SubmitOptions {
            rerun,
            ..SubmitOptions::default()
        };
        self.submit_jobs_with(sweep, jobs, &options).await
    }

    /// Adds `jobs` to the sweep, in one transaction. A job (by id) is stored once however often
    /// it is submitted, by whichever sweeps: a job already stored joins this sweep (with the
    /// `params` given here, for this sweep's tables) and keeps its state, except that a cancelled
    /// job goes back to the queue, and with `options.rerun` a completed or failed one does too
    /// (its attempts counter restarts; its stored result stays until a new attempt completes and
    /// replaces it; its old attempts and epoch metrics stay).
    pub async fn submit_jobs_with(
        &self,
        sweep: &str,
        jobs: &[JobSpec],
        options: &SubmitOptions,
    ) -> Result<SubmitSummary> {
        self.submit_inner(sweep, None, jobs, options).await
    }

    /// Creates the sweep `name` from its YAML and queues its jobs, all in one transaction: a
    /// submission that is killed or fails half-way leaves nothing. A sweep name is an identity: if
    /// a sweep of that name exists and was made from a different file, this is
    /// [`Error::SweepExists`] unless `options.merge` (then the sweep takes the new file's YAML and
    /// info and gains its jobs). The same file again updates nothing but the queue. A sweep whose
    /// info lists `controls` has them pending ([`SweepSummary::controls_pending`]) when it is new
    /// or this submission added or requeued jobs; an info without controls clears the flag.
    pub async fn submit_sweep(
        &self,
        name: &str,
        source_yaml: &str,
        info: &SweepInfo,
        jobs: &[JobSpec],
        options: &SubmitOptions,
    ) -> Result<SubmitSummary> {
        self.submit_inner(name, Some((source_yaml, info)), jobs, options)
            .await
    }

    async fn submit_inner(
        &self,
        sweep: &str,
        create: Option<(&str, &SweepInfo)>,
        jobs: &[JobSpec],
        options: &SubmitOptions,
    ) -> Result<SubmitSummary> {
        let mut seen = HashSet::with_capacity(jobs.len());
        let unique: Vec<&JobSpec> = jobs.iter().filter(|j| seen.insert(j.id.as_str())).collect();
        let duplicates = jobs.len() - unique.len();
        let now = now_ms();
        let max_attempts = options.max_attempts.max(1);
        let (added, requeued) = in_write_tx!(self, |tx, pg, DB| {
            let known: Option<String> =
                sqlx::query_scalar("SELECT source_yaml FROM sweeps WHERE name = $1")
                    .bind(sweep)
                    .fetch_optional(&mut *tx)
                    .await?;
            let new_sweep = known.is_none();
            match (create, known) {
                (None, None) => return Err(Error::UnknownSweep(sweep.to_string())),
                (None, Some(_)) => {}
                (Some((yaml, _)), Some(stored)) if same_source(yaml, &stored) => {}
                (Some((yaml, info)), stored) => {
                    if stored.is_some() && !options.merge {
                        return Err(Error::SweepExists(sweep.to_string()));
                    }
                    sqlx::query(
                        "INSERT INTO sweeps (name, source_yaml, info, status, created_at_ms, updated_at_ms) \
                         VALUES ($1, $2, $3, 'active', $4, $4) \
                         ON CONFLICT (name) DO UPDATE SET source_yaml = excluded.source_yaml, \
                         info = excluded.info, updated_at_ms = excluded.updated_at_ms",
                    )
                    .bind(sweep)
                    .bind(yaml)
                    .bind(Json(info))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            let with_priority: Vec<(&JobSpec, i64)> =
                unique.iter().map(|j| (*j, options.priority)).collect();
            let added = insert_jobs!(tx, pg, DB, sweep, &with_priority, max_attempts, now, true);
            let existing: Vec<&str> = unique
                .iter()
                .map(|j| j.id.as_str())
                .filter(|id| !added.contains(*id))
                .collect();
            let requeue_from = if options.rerun {
                "('cancelled', 'completed', 'failed')"
            } else {
                "('cancelled')"
            };
            let mut requeued = 0usize;
            for chunk in existing.chunks(CHUNK) {
                let mut update = QueryBuilder::<DB>::new(
                    "UPDATE jobs SET status = 'queued', attempts = 0, last_error = NULL, lease_owner = NULL, \
                     lease_expires_at_ms = NULL, heartbeat_at_ms = NULL, updated_at_ms = ",
                );
                update.push_bind(now);
                update
                    .push(" WHERE status IN ")
                    .push(requeue_from)
                    .push(" AND id IN (");
                let mut ids = update.separated(", ");
                for id in chunk {
                    ids.push_bind(*id);
                }
                update.push(") RETURNING id");
                let ids: Vec<String> = update.build_query_scalar().fetch_all(&mut *tx).await?;
                // A rerun keeps the stored result (and gate statistics) until the new attempt
                // completes and replaces them; while the job is not completed, no query shows it.
                requeued += ids.len();
            }
            if let Some((_, info)) = create {
                let changed = new_sweep || !added.is_empty() || requeued > 0;
                let pending = match (info.controls.is_empty(), changed) {
                    (true, _) => Some(0i64),
                    (false, true) => Some(1),
                    (false, false) => None,
                };
                if let Some(pending) = pending {
                    sqlx::query("UPDATE sweeps SET controls_pending = $2 WHERE name = $1")
                        .bind(sweep)
                        .bind(pending)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            (added.len(), requeued)
        });
        self.reopen_sweep(sweep).await?;
        if let Engine::Postgres { pool } = &self.engine
            && added > 0
        {
            // Fresh statistics keep the planner on the indexes (for a role that does not own the
            // tables this is a warning, not an error).
            sqlx::query("ANALYZE jobs, sweep_jobs")
                .execute(pool)
                .await?;
        }
        Ok(SubmitSummary {
            added,
            existing: unique.len() - added - requeued + duplicates,
            requeued,
        })
    }

    /// Hands the next queued job of an active sweep to `worker` under a lease of `lease`, atomically:
    /// on PostgreSQL with `FOR UPDATE SKIP LOCKED` (one statement), on SQLite in one short
    /// `BEGIN IMMEDIATE` transaction. `None` when nothing is claimable. The claim starts a new
    /// attempt and spends one of the job's `max_attempts`.
    ///
    /// `worker` should identify the process and slot, e.g. `host:pid:slot`, so that
    /// [`Store::reclaim_owner`] can find its jobs by prefix if the process dies.
    pub async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Claim>> {
        self.claim_from(worker, lease, None).await
    }

    /// [`Store::claim`], taking only jobs of the sweep `sweep` when it is `Some` (a job shared by
    /// several sweeps counts for each of them).
    pub async fn claim_from(
        &self,
        worker: &str,
        lease: Duration,
        sweep: Option<&str>,
    ) -> Result<Option<Claim>> {
        let now = now_ms();
        let expires = now.saturating_add(lease_ms(lease));
        let row: Option<ClaimRow> = match &self.engine {
            Engine::Postgres { pool } => {
                sqlx::query_as(CLAIM_POSTGRES.as_str())
                    .bind(worker)
                    .bind(expires)
                    .bind(now)
                    .bind(sweep)
                    .fetch_optional(pool)
                    .await?
            }
            Engine::Sqlite { write, .. } => {
                let query = sqlx::query(CLAIM_SQLITE.as_str())
                    .bind(worker.to_string())
                    .bind(expires)
                    .bind(now)
                    .bind(sweep.map(str::to_string));
                let rows = run_sqlite_script(write, query).await?;
                rows.first().map(ClaimRow::from_row).transpose()?
            }
        };
        Ok(row.map(|row| Claim {
            job: JobSpec {
                id: row.id,
                params: row.params.0,
                config: row.config.0,
            },
            sweep: row.sweep,
            attempt: attempt_u32(row.last_attempt),
        }))
    }

    /// Extends the lease of a running attempt to `lease` from now. `false` when the attempt no
    /// longer holds the job (its lease expired and the job was taken back, it was cancelled or
    /// deleted, or another attempt runs it): the worker should stop.
    pub async fn heartbeat(
        &self,
        job: &str,
        attempt: u32,
        worker: &str,
        lease: Duration,
    ) -> Result<bool> {
        let now = now_ms();
        let expires = now.saturating_add(lease_ms(lease));
        let updated = with_writer!(self, |pool, pg, DB| {
            sqlx::query(
                "UPDATE jobs SET lease_expires_at_ms = $4, heartbeat_at_ms = $5 \
                 WHERE id = $1 AND last_attempt = $2 AND lease_owner = $3 AND status = 'running'",
            )
            .bind(job)
            .bind(i64::from(attempt))
            .bind(worker)
            .bind(expires)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(updated == 1)
    }

    /// Stores the metrics of one epoch of an attempt. Idempotent: recording the same epoch of the
    /// same attempt again keeps the first record. [`Error::UnknownAttempt`] if the attempt was
    /// never claimed.
    pub async fn record_epoch(&self, job: &str, attempt: u32, epoch: &EpochRecord) -> Result<()> {
        let now = now_ms();
        let outcome = with_writer!(self, |pool, pg, DB| {
            let mut insert = QueryBuilder::<DB>::new("");
            push_epoch_insert(
                &mut insert,
                job,
                i64::from(attempt),
                std::slice::from_ref(epoch),
                now,
            );
            insert
                .build()
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        });
        match outcome {
            Ok(_) => Ok(()),
            Err(e) if is_foreign_key_violation(&e) => Err(Error::UnknownAttempt {
                job: job.to_string(),
                attempt,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores the result of an attempt and marks the job completed, in one transaction: the result
    /// row (with the whole `RunResult` as JSON), the final per-block gate statistics, and any epoch
    /// of `result.history` not yet recorded. Idempotent: the same attempt completing again gets
    /// [`CompleteOutcome::AlreadyRecorded`]. An attempt that no longer holds the job (a later
    /// attempt runs it, its lease was taken back, another attempt completed it) gets
    /// [`Error::StaleAttempt`] and changes nothing.
    pub async fn complete(
        &self,
        job: &str,
        attempt: u32,
        worker: &str,
        result: &RunResult,
    ) -> Result<CompleteOutcome> {
        let now = now_ms();
        let attempt_i = i64::from(attempt);
        let took = match &self.engine {
            Engine::Postgres { pool } => {
                let query = bind_result(
                    sqlx::query(COMPLETE_POSTGRES.as_str()),
                    job,
                    attempt_i,
                    worker,
                    now,
                    result,
                );
                let g = &result.gates;
                let h = &result.history;
                let gates_json: Vec<String> = h
                    .iter()
                    .map(|e| serde_json::to_string(&e.gates).expect("gate statistics serialise"))
                    .collect();
                let took = query
                    .bind(g.iter().map(|g| to_i64(g.block_idx)).collect::<Vec<_>>())
                    .bind(g.iter().map(|g| g.gate_open_rate).collect::<Vec<_>>())
                    .bind(g.iter().map(|g| g.mean_cir).collect::<Vec<_>>())
                    .bind(h.iter().map(|e| to_i64(e.epoch)).collect::<Vec<_>>())
                    .bind(h.iter().map(|e| e.train_loss).collect::<Vec<_>>())
                    .bind(h.iter().map(|e| e.train_acc).collect::<Vec<_>>())
                    .bind(h.iter().map(|e| e.test_acc).collect::<Vec<_>>())
                    .bind(h.iter().map(|e| e.savings_nominal).collect::<Vec<_>>())
                    .bind(h.iter().map(|e| e.savings_actual).collect::<Vec<_>>())
                    .bind(h.iter().map(|e| e.lr).collect::<Vec<_>>())
                    .bind(h.iter().map(|e| e.tau).collect::<Vec<_>>())
                    .bind(h.iter().map(|e| e.flops_weight).collect::<Vec<_>>())
                    .bind(h.iter().map(|e| e.wall_secs).collect::<Vec<_>>())
                    .bind(gates_json)
                    .bind(h.iter().map(|e| e.val_acc).collect::<Vec<_>>())
                    .fetch_optional(pool)
                    .await?;
                took.is_some()
            }
            Engine::Sqlite { write, .. } => {
                let query = complete_sqlite_script(job, attempt_i, worker, now, result);
                !run_sqlite_script(write, query).await?.is_empty()
            }
        };
        if took {
            return Ok(CompleteOutcome::Recorded);
        }
        let state: Option<JobState> = with_writer!(self, |pool, pg, DB| {
            sqlx::query_as(JOB_STATE)
                .bind(job)
                .fetch_optional(pool)
                .await?
        });
        match state {
            None => Err(Error::UnknownJob(job.to_string())),
            Some(s) if s.status == "completed" && s.result_attempt == Some(attempt_i) => {
                Ok(CompleteOutcome::AlreadyRecorded)
            }
            Some(s) => Err(Error::StaleAttempt {
                job: job.to_string(),
                attempt,
                reason: s.reason(attempt, worker),
            }),
        }
    }

    /// Records that an attempt failed with `error` (and the tail of its stderr, of which the last
    /// [`STDERR_TAIL_MAX_BYTES`] are kept). A `retryable` failure puts the job back in the queue
    /// while it has attempts left; otherwise, or when they are spent, the job is failed. Returns
    /// the job's status afterwards. Idempotent for an attempt already recorded as failed; an
    /// attempt that no longer holds the job gets [`Error::StaleAttempt`].
    pub async fn fail(
        &self,
        job: &str,
        attempt: u32,
        worker: &str,
        error: &str,
        stderr_tail: Option<&str>,
        retryable: bool,
    ) -> Result<JobStatus> {
        let now = now_ms();
        let attempt_i = i64::from(attempt);
        let stderr_tail = stderr_tail.map(tail);
        let status = in_write_tx!(self, |tx, pg, DB| {
            let status: Option<String> = sqlx::query_scalar(FAIL_JOB.as_str())
                .bind(job)
                .bind(attempt_i)
                .bind(worker)
                .bind(error)
                .bind(retryable)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            match status {
                Some(status) => {
                    end_attempt!(tx, job, attempt_i, "failed", now, Some(error), stderr_tail);
                    status
                }
                None => {
                    let state: Option<JobState> = sqlx::query_as(JOB_STATE)
                        .bind(job)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(state) = state else {
                        return Err(Error::UnknownJob(job.to_string()));
                    };
                    let outcome: Option<String> = sqlx::query_scalar(
                        "SELECT outcome FROM attempts WHERE job_id = $1 AND attempt = $2",
                    )
                    .bind(job)
                    .bind(attempt_i)
                    .fetch_optional(&mut *tx)
                    .await?;
                    match outcome.as_deref() {
                        None => {
                            return Err(Error::UnknownAttempt {
                                job: job.to_string(),
                                attempt,
                            });
                        }
                        Some("failed") => state.status,
                        Some(_) => {
                            return Err(Error::StaleAttempt {
                                job: job.to_string(),
                                attempt,
                                reason: state.reason(attempt, worker),
                            });
                        }
                    }
                }
            }
        });
        parse_job_status(&status)
    }

    /// Puts a running attempt's job back in the queue without spending an attempt: a graceful
    /// stop (the daemon shutting down). `false` if the attempt no longer held the job.
    pub async fn requeue(&self, job: &str, attempt: u32) -> Result<bool> {
        self.requeue_because(job, attempt, None, None).await
    }

    /// [`Store::requeue`], keeping why the attempt ended (`error`, and the tail of the runner's
    /// stderr) on the attempt and as the job's `last_error`: for an attempt that failed through
    /// no fault of its job (out of memory beside other jobs on its GPU).
    pub async fn requeue_because(
        &self,
        job: &str,
        attempt: u32,
        error: Option<&str>,
        stderr_tail: Option<&str>,
    ) -> Result<bool> {
        let now = now_ms();
        let attempt_i = i64::from(attempt);
        let stderr_tail = stderr_tail.map(tail);
        let requeued = in_write_tx!(self, |tx, pg, DB| {
            let n = sqlx::query(REQUEUE_JOB.as_str())
                .bind(job)
                .bind(attempt_i)
                .bind(now)
                .bind(error)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 1 {
                end_attempt!(tx, job, attempt_i, "requeued", now, error, stderr_tail);
            }
            n == 1
        });
        Ok(requeued)
    }

    /// Takes back every running job whose lease has expired: back to the queue while it has
    /// attempts left, else failed, with `last_error` "lease expired: …". The expired attempt is
    /// spent. Returns how many jobs were taken back. The coordinator calls this periodically.
    pub async fn requeue_expired(&self) -> Result<usize> {
        self.take_back(TakeBack::Expired).await
    }

    /// Takes back, like [`Store::requeue_expired`], every running job leased to a worker whose id
    /// starts with `worker_prefix` (e.g. `host:pid:` of a local process found dead), without
    /// waiting for the leases to expire. The attempt is not spent unless the job was already
    /// taken back from dead workers `max_attempts` times (see `RECLAIM_OWNER`). An empty prefix
    /// is refused.
    pub async fn reclaim_owner(&self, worker_prefix: &str) -> Result<usize> {
        if worker_prefix.is_empty() {
            return Err(Error::InvalidArgument(
                "reclaim_owner needs a non-empty worker prefix".into(),
            ));
        }
        self.take_back(TakeBack::Owner(worker_prefix)).await
    }

    async fn take_back(&self, which: TakeBack<'_>) -> Result<usize> {
        let now = now_ms();
        let (sql, outcome, prefix) = match which {
            TakeBack::Expired => (TAKE_BACK_EXPIRED.as_str(), "expired", None),
            TakeBack::Owner(prefix) => (RECLAIM_OWNER.as_str(), "reclaimed", Some(prefix)),
        };
        let taken = in_write_tx!(self, |tx, pg, DB| {
            let query = sqlx::query_as(sql).bind(now);
            let query = match prefix {
                Some(prefix) => query.bind(prefix),
                None => query,
            };
            let rows: Vec<(String, i64, Option<String>)> = query.fetch_all(&mut *tx).await?;
            for (job, attempt, error) in &rows {
                end_attempt!(tx, job, attempt, outcome, now, error, None::<&str>);
            }
            rows.len()
        });
        if taken > 0 {
            tracing::info!(taken, outcome, "jobs taken back from their workers");
        }
        Ok(taken)
    }
}

/// `INSERT INTO epoch_metrics … ON CONFLICT DO NOTHING` for `epochs` of one attempt.
fn push_epoch_insert<DB: sqlx::Database>(
    insert: &mut QueryBuilder<DB>,
    job: &str,
    attempt: i64,
    epochs: &[EpochRecord],
    now: i64,
) where
    for<'a> &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> f64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> Option<f64>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> Json<&'a [cg_core::BlockGateStats]>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    insert.push(
        "INSERT INTO epoch_metrics (job_id, attempt, epoch, train_loss, train_acc, test_acc, \
         savings_nominal, savings_actual, lr, tau, flops_weight, wall_secs, gates, recorded_at_ms, \
         val_acc) ",
    );
    insert.push_values(epochs, |mut row, e| {
        row.push_bind(job)
            .push_bind(attempt)
            .push_bind(to_i64(e.epoch))
            .push_bind(e.train_loss)
            .push_bind(e.train_acc)
            .push_bind(e.test_acc)
            .push_bind(e.savings_nominal)
            .push_bind(e.savings_actual)
            .push_bind(e.lr)
            .push_bind(e.tau)
            .push_bind(e.flops_weight)
            .push_bind(e.wall_secs)
            .push_bind(Json(e.gates.as_slice()))
            .push_bind(now)
            .push_bind(e.val_acc);
    });
    insert.push(" ON CONFLICT (job_id, attempt, epoch) DO NOTHING");
}
