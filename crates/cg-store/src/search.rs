//! Searches (`method: mo-asha`): the results a search took, in its order; the decisions it made
//! from them; its hypervolume history. [`Store::advance_search`] reads and writes them in one
//! write transaction with the jobs the decisions submit, so a coordinator killed at any point and
//! started again, or two coordinators at once, record each decision once. The decisions
//! themselves are made by the caller (cg-search, through cg-daemon); this module stores them.

use cg_core::{DecisionKind, JobSpec, JobStatus, RunResult};
use sqlx::QueryBuilder;
use sqlx::types::Json;

use crate::SubmitOptions;
use crate::store::now_ms;
use crate::types::parse_job_status;
use crate::{BoxError, Error, Result, Store};

/// A result as the search took it: the `seq`-th one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedResult {
    pub seq: u64,
    pub job_id: String,
    /// The configuration, by draw number.
    pub config: u64,
    pub rung: u64,
    /// The job failed for good.
    pub failed: bool,
}

/// One recorded decision.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRow {
    pub seq: u64,
    pub kind: DecisionKind,
    pub config: u64,
    /// Draw: 0; promote: the rung it goes to; stop: the rung it ends at.
    pub rung: u64,
    /// The epochs of that rung.
    pub epochs: u64,
    /// Draw and promote: the job submitted; stop: the job the configuration ends with.
    pub job_id: String,
    /// Draw: the point of the search space (JSON).
    pub point: Option<serde_json::Value>,
    /// The result it came from (`LoggedResult::seq`); `None` for the first draws.
    pub from_seq: Option<u64>,
    pub from_job: Option<String>,
}

/// The hypervolume after the `seq`-th result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HvRow {
    pub seq: u64,
    pub epochs_spent: u64,
    pub hypervolume: f64,
}

/// A job of the search's sweep that has ended: completed (with its result) or failed for good.
#[derive(Debug, Clone, PartialEq)]
pub struct EndedJob {
    pub job_id: String,
    pub status: JobStatus,
    pub result: Option<RunResult>,
}

/// What [`Store::advance_search`] hands its decision function.
#[derive(Debug, Clone)]
pub struct SearchInput {
    /// Where the sweep file was (its relative data paths resolve against it).
    pub base_dir: String,
    /// The results taken so far, in order.
    pub log: Vec<LoggedResult>,
    /// The decisions recorded so far, in order.
    pub decisions: Vec<DecisionRow>,
    /// Every ended job of the sweep, by the time it ended, then id.
    pub ended: Vec<EndedJob>,
}

/// What the decision function asks [`Store::advance_search`] to write. Rows already stored (by
/// their `seq`) are left as they are.
#[derive(Debug, Clone, Default)]
pub struct SearchWrite {
    /// Results to add to the log, after the ones given.
    pub append: Vec<LoggedResult>,
    /// Every decision, in order (the recorded ones first).
    pub decisions: Vec<DecisionRow>,
    /// The jobs that new decisions submit, with their priority.
    pub jobs: Vec<(JobSpec, i64)>,
    /// The hypervolume after each result, in order.
    pub hv: Vec<HvRow>,
    /// Every rung is closed: the search submits nothing more.
    pub finished: bool,
}

/// What one [`Store::advance_search`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdvanceSummary {
    pub results_taken: usize,
    pub decisions_added: usize,
    pub jobs_added: usize,
    pub finished: bool,
}

/// A search's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRecord {
    pub base_dir: String,
    pub finished: bool,
}

#[derive(sqlx::FromRow)]
struct LogRow {
    seq: i64,
    job_id: String,
    config_idx: i64,
    rung: i64,
    failed: i64,
}

#[derive(sqlx::FromRow)]
struct DecisionSqlRow {
    seq: i64,
    kind: String,
    config_idx: i64,
    rung: i64,
    epochs: i64,
    job_id: String,
    point: Option<Json<serde_json::Value>>,
    from_seq: Option<i64>,
    from_job: Option<String>,
}

#[derive(sqlx::FromRow)]
struct EndedRow {
    id: String,
    status: String,
    result: Option<Json<RunResult>>,
}

fn u(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn i(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl TryFrom<DecisionSqlRow> for DecisionRow {
    type Error = Error;

    fn try_from(r: DecisionSqlRow) -> Result<Self> {
        let kind = DecisionKind::parse(&r.kind).ok_or_else(|| Error::Corrupt {
            what: "search_decisions.kind".into(),
            message: format!("unknown decision `{}`", r.kind),
        })?;
        Ok(DecisionRow {
            seq: u(r.seq),
            kind,
            config: u(r.config_idx),
            rung: u(r.rung),
            epochs: u(r.epochs),
            job_id: r.job_id,
            point: r.point.map(|p| p.0),
            from_seq: r.from_seq.map(u),
            from_job: r.from_job,
        })
    }
}

const DECISION_COLUMNS: &str =
    "seq, kind, config_idx, rung, epochs, job_id, point, from_seq, from_job";
const SELECT_DECISIONS: &str = "SELECT seq, kind, config_idx, rung, epochs, job_id, point, from_seq, \
     from_job FROM search_decisions WHERE sweep = $1 ORDER BY seq";

/// Reads what [`Store::advance_search`] hands its decision function, inside its write
/// transaction `$tx`: the search's base folder (on PostgreSQL its row locked, so one coordinator
/// at a time advances it; SQLite's `BEGIN IMMEDIATE` already is), its log, its decisions and the
/// sweep's ended jobs. Returns [`Error::UnknownSweep`] from the caller when `$sweep` is no search.
macro_rules! read_search_input {
    ($tx:ident, $pg:ident, $sweep:expr) => {{
        let sweep: &str = $sweep;
        let lock = if $pg {
            "SELECT base_dir FROM searches WHERE sweep = $1 FOR UPDATE"
        } else {
            "SELECT base_dir FROM searches WHERE sweep = $1"
        };
        let base_dir: Option<String> = sqlx::query_scalar(lock)
            .bind(sweep)
            .fetch_optional(&mut *$tx)
            .await?;
        let Some(base_dir) = base_dir else {
            return Err(Error::UnknownSweep(sweep.to_string()));
        };
        let log: Vec<LogRow> = sqlx::query_as(
            "SELECT seq, job_id, config_idx, rung, failed FROM search_results \
             WHERE sweep = $1 ORDER BY seq",
        )
        .bind(sweep)
        .fetch_all(&mut *$tx)
        .await?;
        let decisions: Vec<DecisionSqlRow> = sqlx::query_as(SELECT_DECISIONS)
            .bind(sweep)
            .fetch_all(&mut *$tx)
            .await?;
        let ended: Vec<EndedRow> = sqlx::query_as(
            "SELECT j.id, j.status, r.result FROM sweep_jobs sj \
             JOIN jobs j ON j.id = sj.job_id LEFT JOIN results r ON r.job_id = j.id \
             WHERE sj.sweep = $1 AND j.status IN ('completed', 'failed') \
             ORDER BY COALESCE(r.recorded_at_ms, j.updated_at_ms), j.id",
        )
        .bind(sweep)
        .fetch_all(&mut *$tx)
        .await?;
        search_input(base_dir, log, decisions, ended)?
    }};
}

/// Inserts `$rows` with `$into` (`INSERT INTO table (columns) `), `CHUNK` rows a statement, each
/// row pushed by `$push`; rows already stored (by `(sweep, seq)`) are kept as they are.
macro_rules! insert_new_rows {
    ($tx:ident, $db:ident, $into:expr, $rows:expr, $push:expr) => {
        for chunk in $rows.chunks($crate::queue::CHUNK) {
            let mut q = QueryBuilder::<$db>::new($into);
            q.push_values(chunk, $push);
            q.push(" ON CONFLICT (sweep, seq) DO NOTHING");
            q.build().execute(&mut *$tx).await?;
        }
    };
}

/// Writes the new rows of a decision function's `$write` inside the write transaction `$tx`:
/// results past the `$n_log` taken before, decisions past the `$n_decisions` recorded before,
/// and the hypervolume rows (each insert-if-absent by `seq`). Evaluates to how many results and
/// decisions were new.
macro_rules! write_search_rows {
    ($tx:ident, $db:ident, $sweep:expr, $write:expr, $n_log:expr, $n_decisions:expr, $now:expr) => {{
        let (sweep, write, now): (&str, &SearchWrite, i64) = ($sweep, $write, $now);
        let append: Vec<&LoggedResult> = write.append.iter().filter(|r| r.seq >= $n_log).collect();
        let into = "INSERT INTO search_results (sweep, seq, job_id, config_idx, rung, failed, \
                    recorded_at_ms) ";
        insert_new_rows!($tx, $db, into, append, |mut row, r| {
            row.push_bind(sweep)
                .push_bind(i(r.seq))
                .push_bind(r.job_id.as_str())
                .push_bind(i(r.config))
                .push_bind(i(r.rung))
                .push_bind(i64::from(r.failed))
                .push_bind(now);
        });
        let decisions: Vec<&DecisionRow> = write
            .decisions
            .iter()
            .filter(|d| d.seq >= $n_decisions)
            .collect();
        let into =
            format!("INSERT INTO search_decisions (sweep, {DECISION_COLUMNS}, created_at_ms) ");
        insert_new_rows!($tx, $db, into.as_str(), decisions, |mut row, d| {
            row.push_bind(sweep)
                .push_bind(i(d.seq))
                .push_bind(d.kind.as_str())
                .push_bind(i(d.config))
                .push_bind(i(d.rung))
                .push_bind(i(d.epochs))
                .push_bind(d.job_id.as_str())
                .push_bind(d.point.as_ref().map(Json))
                .push_bind(d.from_seq.map(i))
                .push_bind(d.from_job.as_deref())
                .push_bind(now);
        });
        let into = "INSERT INTO hv_history (sweep, seq, job_id, epochs_spent, hypervolume, \
                    recorded_at_ms) ";
        insert_new_rows!($tx, $db, into, write.hv, |mut row, h| {
            let job = write
                .append
                .iter()
                .find(|r| r.seq == h.seq)
                .map(|r| r.job_id.clone())
                .unwrap_or_default();
            row.push_bind(sweep)
                .push_bind(i(h.seq))
                .push_bind(job)
                .push_bind(i(h.epochs_spent))
                .push_bind(h.hypervolume)
                .push_bind(now);
        });
        (append.len(), decisions.len())
    }};
}

impl Store {
    /// Makes the sweep `sweep` a search whose file lies in `base_dir` (kept if it is one already,
    /// with the new `base_dir`).
    pub async fn create_search(&self, sweep: &str, base_dir: &str) -> Result<()> {
        let now = now_ms();
        with_writer!(self, |pool, pg, DB| {
            sqlx::query(
                "INSERT INTO searches (sweep, base_dir, finished, created_at_ms, updated_at_ms) \
                 VALUES ($1, $2, 0, $3, $3) \
                 ON CONFLICT (sweep) DO UPDATE SET base_dir = excluded.base_dir, \
                 updated_at_ms = excluded.updated_at_ms",
            )
            .bind(sweep)
            .bind(base_dir)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The search of the sweep `sweep`; `None` when the sweep is not a search.
    pub async fn search(&self, sweep: &str) -> Result<Option<SearchRecord>> {
        let row: Option<(String, i64)> = with_reader!(self, |pool, pg, DB| {
            sqlx::query_as("SELECT base_dir, finished FROM searches WHERE sweep = $1")
                .bind(sweep)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(base_dir, finished)| SearchRecord {
            base_dir,
            finished: finished != 0,
        }))
    }

    /// The names of the searches that can still submit jobs.
    pub async fn unfinished_searches(&self) -> Result<Vec<String>> {
        Ok(with_reader!(self, |pool, pg, DB| {
            sqlx::query_scalar("SELECT sweep FROM searches WHERE finished = 0 ORDER BY sweep")
                .fetch_all(pool)
                .await?
        }))
    }

    /// The recorded decisions of a search, in order.
    pub async fn search_decisions(&self, sweep: &str) -> Result<Vec<DecisionRow>> {
        let rows: Vec<DecisionSqlRow> = with_reader!(self, |pool, pg, DB| {
            sqlx::query_as(SELECT_DECISIONS)
                .bind(sweep)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(DecisionRow::try_from).collect()
    }

    /// The results a search took, in its order.
    pub async fn search_log(&self, sweep: &str) -> Result<Vec<LoggedResult>> {
        let rows: Vec<LogRow> = with_reader!(self, |pool, pg, DB| {
            sqlx::query_as(
                "SELECT seq, job_id, config_idx, rung, failed FROM search_results \
                 WHERE sweep = $1 ORDER BY seq",
            )
            .bind(sweep)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(log_entry).collect())
    }

    /// The hypervolume history of a search, in order.
    pub async fn hv_history(&self, sweep: &str) -> Result<Vec<HvRow>> {
        let rows: Vec<(i64, i64, f64)> = with_reader!(self, |pool, pg, DB| {
            sqlx::query_as(
                "SELECT seq, epochs_spent, hypervolume FROM hv_history WHERE sweep = $1 ORDER BY seq",
            )
            .bind(sweep)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(seq, epochs, hv)| HvRow {
                seq: u(seq),
                epochs_spent: u(epochs),
                hypervolume: hv,
            })
            .collect())
    }

    /// Runs `check` on what [`Store::advance_search`] would hand its decision function, and
    /// writes nothing (the transaction is always rolled back). A submit uses it to refuse a new
    /// version of a search's file that would change recorded decisions, before it writes.
    pub async fn check_search<F>(&self, sweep: &str, check: F) -> Result<()>
    where
        F: FnOnce(SearchInput) -> std::result::Result<(), BoxError>,
    {
        let mut verdict = None;
        let outcome = self
            .advance_search(sweep, |input| {
                verdict = Some(check(input));
                Err("a check writes nothing".into())
            })
            .await;
        match (outcome, verdict) {
            (Err(Error::Search(_)), Some(verdict)) => {
                verdict.map_err(|e| Error::Search(e.to_string()))
            }
            (Err(e), _) => Err(e),
            (Ok(_), _) => unreachable!("the decision function refused"),
        }
    }

    /// Advances the search of `sweep` in one write transaction: reads what it took and decided so
    /// far and the sweep's ended jobs, calls `decide` with them, and stores what it returns: new
    /// log rows, decisions and hypervolume rows (insert-if-absent by `seq`), the jobs of new
    /// decisions (a job already stored keeps its state) and whether the search is finished.
    /// `decide` failing rolls everything back. [`Error::UnknownSweep`] when `sweep` is no search.
    pub async fn advance_search<F>(&self, sweep: &str, decide: F) -> Result<AdvanceSummary>
    where
        F: FnOnce(SearchInput) -> std::result::Result<SearchWrite, BoxError>,
    {
        let now = now_ms();
        let mut decide = Some(decide);
        let summary = in_write_tx!(self, |tx, pg, DB| {
            let input = read_search_input!(tx, pg, sweep);
            let (n_log, n_decisions) = (input.log.len() as u64, input.decisions.len() as u64);
            let decide = decide.take().expect("the body runs once");
            let write = decide(input).map_err(|e| Error::Search(e.to_string()))?;
            let (results_taken, decisions_added) =
                write_search_rows!(tx, DB, sweep, &write, n_log, n_decisions, now);
            // A search's jobs take the attempts of a default submit (the sweep's own options
            // are not stored).
            let jobs: Vec<(&JobSpec, i64)> = write.jobs.iter().map(|(j, p)| (j, *p)).collect();
            let max_attempts = SubmitOptions::default().max_attempts;
            let jobs_added = insert_jobs!(tx, pg, DB, sweep, &jobs, max_attempts, now, false).len();
            sqlx::query("UPDATE searches SET finished = $2, updated_at_ms = $3 WHERE sweep = $1")
                .bind(sweep)
                .bind(i64::from(write.finished))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            AdvanceSummary {
                results_taken,
                decisions_added,
                jobs_added,
                finished: write.finished,
            }
        });
        Ok(summary)
    }
}

/// The decision function's input from the rows read.
fn search_input(
    base_dir: String,
    log: Vec<LogRow>,
    decisions: Vec<DecisionSqlRow>,
    ended: Vec<EndedRow>,
) -> Result<SearchInput> {
    let log: Vec<LoggedResult> = log.into_iter().map(log_entry).collect();
    let decisions: Vec<DecisionRow> = decisions
        .into_iter()
        .map(DecisionRow::try_from)
        .collect::<Result<_>>()?;
    let mut ended_jobs = Vec::with_capacity(ended.len());
    for row in ended {
        ended_jobs.push(EndedJob {
            job_id: row.id,
            status: parse_job_status(&row.status)?,
            result: row.result.map(|r| r.0),
        });
    }
    Ok(SearchInput {
        base_dir,
        log,
        decisions,
        ended: ended_jobs,
    })
}

fn log_entry(r: LogRow) -> LoggedResult {
    LoggedResult {
        seq: u(r.seq),
        job_id: r.job_id,
        config: u(r.config_idx),
        rung: u(r.rung),
        failed: r.failed != 0,
    }
}
