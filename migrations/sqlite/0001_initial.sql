-- cg store, initial schema (SQLite). Kept in lockstep with migrations/postgres/0001_initial.sql.
-- Append-only: never edit a migration once it has been applied; add a new numbered file instead.
-- Metric columns are nullable: NULL stands for NaN, which SQLite cannot store.
-- Tables keyed by several columns are WITHOUT ROWID here: one b-tree each instead of two.
-- Timestamps are integer unix milliseconds (`*_ms`), JSON columns hold serde_json text.

CREATE TABLE sweeps (
    name            TEXT PRIMARY KEY,
    source_yaml     TEXT NOT NULL,
    info            TEXT NOT NULL,                 -- JSON: cg_core::SweepInfo
    hypervolume     REAL,
    status          TEXT NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'paused', 'cancelled')),
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL
);

CREATE TABLE jobs (
    id                  TEXT PRIMARY KEY,          -- the job hash
    sweep               TEXT NOT NULL REFERENCES sweeps (name),  -- the sweep that first submitted it
    params              TEXT NOT NULL,             -- JSON object: dotted key -> value
    config              TEXT NOT NULL,             -- JSON: cg_core::RunConfig
    status              TEXT NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    attempts            INTEGER NOT NULL DEFAULT 0,  -- attempts spent (counted against max_attempts)
    max_attempts        INTEGER NOT NULL DEFAULT 3,
    last_attempt        INTEGER NOT NULL DEFAULT 0,  -- number of the latest attempt (never reused)
    lease_owner         TEXT,
    lease_expires_at_ms INTEGER,
    heartbeat_at_ms     INTEGER,
    last_error          TEXT,
    priority            INTEGER NOT NULL DEFAULT 0,  -- higher first
    seq                 INTEGER NOT NULL,            -- submission order within a priority
    created_at_ms       INTEGER NOT NULL,
    updated_at_ms       INTEGER NOT NULL
);
CREATE INDEX jobs_queue ON jobs (priority DESC, seq) WHERE status = 'queued';
CREATE INDEX jobs_running_lease ON jobs (lease_expires_at_ms) WHERE status = 'running';
CREATE INDEX jobs_sweep ON jobs (sweep);

-- Which sweeps contain which jobs: a job (one configuration) can belong to several sweeps.
CREATE TABLE sweep_jobs (
    sweep           TEXT NOT NULL REFERENCES sweeps (name) ON DELETE CASCADE,
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    params          TEXT NOT NULL,                 -- JSON: this sweep's axis values for the job
    position        INTEGER NOT NULL,              -- order within the sweep's submissions
    PRIMARY KEY (sweep, job_id)
) WITHOUT ROWID;
CREATE INDEX sweep_jobs_job ON sweep_jobs (job_id);

CREATE TABLE attempts (
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt         INTEGER NOT NULL,
    worker          TEXT NOT NULL,
    started_at_ms   INTEGER NOT NULL,
    ended_at_ms     INTEGER,
    outcome         TEXT NOT NULL DEFAULT 'running'
                    CHECK (outcome IN ('running', 'completed', 'failed', 'expired', 'requeued', 'reclaimed')),
    error           TEXT,
    stderr_tail     TEXT,
    PRIMARY KEY (job_id, attempt)
) WITHOUT ROWID;

CREATE TABLE epoch_metrics (
    job_id          TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    epoch           INTEGER NOT NULL,
    train_loss      REAL,
    train_acc       REAL,
    test_acc        REAL,
    savings_nominal REAL,
    savings_actual  REAL,
    lr              REAL,
    tau             REAL,
    flops_weight    REAL,
    wall_secs       REAL,
    gates           TEXT NOT NULL,                 -- JSON: [cg_core::BlockGateStats]
    recorded_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (job_id, attempt, epoch),
    FOREIGN KEY (job_id, attempt) REFERENCES attempts (job_id, attempt) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE results (
    job_id                  TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    attempt                 INTEGER NOT NULL,
    test_acc_final          REAL,
    test_acc_peak           REAL,
    peak_epoch              INTEGER NOT NULL,
    macs_full               INTEGER NOT NULL,
    macs_executed_nominal   REAL,
    macs_executed_actual    REAL,
    savings_nominal         REAL,
    savings_actual          REAL,
    savings_measured        REAL,
    train_img_per_s         REAL,
    infer_img_per_s         REAL,
    wall_secs               REAL,
    provenance              TEXT NOT NULL,         -- JSON: cg_core::Provenance
    result                  TEXT NOT NULL,         -- JSON: the whole cg_core::RunResult
    recorded_at_ms          INTEGER NOT NULL
);

CREATE TABLE gate_stats (
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    block_idx       INTEGER NOT NULL,
    gate_open_rate  REAL,
    mean_cir        REAL,
    PRIMARY KEY (job_id, block_idx)
) WITHOUT ROWID;

CREATE TABLE artifacts (
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,                 -- e.g. result, checkpoint, log
    path            TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (job_id, kind, path)
) WITHOUT ROWID;
