-- cg store, initial schema (PostgreSQL). Kept in lockstep with migrations/sqlite/0001_initial.sql.
-- Append-only: never edit a migration once it has been applied; add a new numbered file instead.
-- Metric columns are nullable: NULL stands for NaN, which SQLite cannot store.
-- Timestamps are integer unix milliseconds (`*_ms`), JSON columns are JSONB.

CREATE TABLE sweeps (
    name            TEXT PRIMARY KEY,
    source_yaml     TEXT NOT NULL,
    info            JSONB NOT NULL,                 -- JSON: cg_core::SweepInfo
    hypervolume     DOUBLE PRECISION,
    status          TEXT NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'paused', 'cancelled')),
    created_at_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL
);

CREATE TABLE jobs (
    id                  TEXT PRIMARY KEY,          -- the job hash
    sweep               TEXT NOT NULL REFERENCES sweeps (name),  -- the sweep that first submitted it
    params              JSONB NOT NULL,             -- JSON object: dotted key -> value
    config              JSONB NOT NULL,             -- JSON: cg_core::RunConfig
    status              TEXT NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    attempts            BIGINT NOT NULL DEFAULT 0,  -- attempts spent (counted against max_attempts)
    max_attempts        BIGINT NOT NULL DEFAULT 3,
    last_attempt        BIGINT NOT NULL DEFAULT 0,  -- number of the latest attempt (never reused)
    lease_owner         TEXT,
    lease_expires_at_ms BIGINT,
    heartbeat_at_ms     BIGINT,
    last_error          TEXT,
    priority            BIGINT NOT NULL DEFAULT 0,  -- higher first
    seq                 BIGINT NOT NULL,            -- submission order within a priority
    created_at_ms       BIGINT NOT NULL,
    updated_at_ms       BIGINT NOT NULL
);
CREATE INDEX jobs_queue ON jobs (priority DESC, seq) WHERE status = 'queued';
CREATE INDEX jobs_running_lease ON jobs (lease_expires_at_ms) WHERE status = 'running';
CREATE INDEX jobs_sweep ON jobs (sweep);

-- Which sweeps contain which jobs: a job (one configuration) can belong to several sweeps.
CREATE TABLE sweep_jobs (
    sweep           TEXT NOT NULL REFERENCES sweeps (name) ON DELETE CASCADE,
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    params          JSONB NOT NULL,                 -- JSON: this sweep's axis values for the job
    position        BIGINT NOT NULL,              -- order within the sweep's submissions
    PRIMARY KEY (sweep, job_id)
);
CREATE INDEX sweep_jobs_job ON sweep_jobs (job_id);

CREATE TABLE attempts (
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt         BIGINT NOT NULL,
    worker          TEXT NOT NULL,
    started_at_ms   BIGINT NOT NULL,
    ended_at_ms     BIGINT,
    outcome         TEXT NOT NULL DEFAULT 'running'
                    CHECK (outcome IN ('running', 'completed', 'failed', 'expired', 'requeued', 'reclaimed')),
    error           TEXT,
    stderr_tail     TEXT,
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE epoch_metrics (
    job_id          TEXT NOT NULL,
    attempt         BIGINT NOT NULL,
    epoch           BIGINT NOT NULL,
    train_loss      DOUBLE PRECISION,
    train_acc       DOUBLE PRECISION,
    test_acc        DOUBLE PRECISION,
    savings_nominal DOUBLE PRECISION,
    savings_actual  DOUBLE PRECISION,
    lr              DOUBLE PRECISION,
    tau             DOUBLE PRECISION,
    flops_weight    DOUBLE PRECISION,
    wall_secs       DOUBLE PRECISION,
    gates           JSONB NOT NULL,                 -- JSON: [cg_core::BlockGateStats]
    recorded_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (job_id, attempt, epoch),
    FOREIGN KEY (job_id, attempt) REFERENCES attempts (job_id, attempt) ON DELETE CASCADE
);

CREATE TABLE results (
    job_id                  TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    attempt                 BIGINT NOT NULL,
    test_acc_final          DOUBLE PRECISION,
    test_acc_peak           DOUBLE PRECISION,
    peak_epoch              BIGINT NOT NULL,
    macs_full               BIGINT NOT NULL,
    macs_executed_nominal   DOUBLE PRECISION,
    macs_executed_actual    DOUBLE PRECISION,
    savings_nominal         DOUBLE PRECISION,
    savings_actual          DOUBLE PRECISION,
    savings_measured        DOUBLE PRECISION,
    train_img_per_s         DOUBLE PRECISION,
    infer_img_per_s         DOUBLE PRECISION,
    wall_secs               DOUBLE PRECISION,
    provenance              JSONB NOT NULL,         -- JSON: cg_core::Provenance
    result                  JSONB NOT NULL,         -- JSON: the whole cg_core::RunResult
    recorded_at_ms          BIGINT NOT NULL
);

CREATE TABLE gate_stats (
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    block_idx       BIGINT NOT NULL,
    gate_open_rate  DOUBLE PRECISION,
    mean_cir        DOUBLE PRECISION,
    PRIMARY KEY (job_id, block_idx)
);

CREATE TABLE artifacts (
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,                 -- e.g. result, checkpoint, log
    path            TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    PRIMARY KEY (job_id, kind, path)
);
