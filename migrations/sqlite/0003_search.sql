-- Searches (`method: mo-asha`): what the search was given, what it decided, and its hypervolume.
-- Kept in lockstep with migrations/postgres/0003_search.sql. A stopped configuration is a
-- completed rung job without a promotion: jobs.status is unchanged.

-- One row per mo-asha sweep: where its file was (relative data paths resolve against it).
CREATE TABLE searches (
    sweep           TEXT PRIMARY KEY REFERENCES sweeps (name) ON DELETE CASCADE,
    base_dir        TEXT NOT NULL,
    finished        INTEGER NOT NULL DEFAULT 0,    -- 1: every rung is closed, nothing more to submit
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL
);

-- The results the search took, in the order it took them: its decisions are a pure function of
-- the sweep file and these rows in `seq` order.
CREATE TABLE search_results (
    sweep           TEXT NOT NULL REFERENCES searches (sweep) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,              -- 0, 1, ...
    job_id          TEXT NOT NULL,
    config_idx      INTEGER NOT NULL,              -- the configuration, by draw number
    rung            INTEGER NOT NULL,              -- 0 = the lowest rung
    failed          INTEGER NOT NULL,              -- 1: the job failed for good (no objectives)
    recorded_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (sweep, seq)
) WITHOUT ROWID;

CREATE TABLE search_decisions (
    sweep           TEXT NOT NULL REFERENCES searches (sweep) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,              -- order of the decision
    kind            TEXT NOT NULL CHECK (kind IN ('draw', 'promote', 'stop')),
    config_idx      INTEGER NOT NULL,
    rung            INTEGER NOT NULL,              -- draw: 0; promote: the rung it goes to; stop: where it ends
    epochs          INTEGER NOT NULL,              -- the epochs of that rung
    job_id          TEXT NOT NULL,                 -- draw/promote: the job submitted; stop: the job it ends with
    point           TEXT,                          -- draw: JSON, the point of the search space
    from_seq        INTEGER,                       -- the result it came from (search_results.seq); NULL: first draws
    from_job        TEXT,
    created_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (sweep, seq)
) WITHOUT ROWID;

-- After every result: the hypervolume of the top rung's results against the declared reference point.
CREATE TABLE hv_history (
    sweep           TEXT NOT NULL REFERENCES searches (sweep) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,              -- the result it follows (search_results.seq)
    job_id          TEXT NOT NULL,
    epochs_spent    INTEGER NOT NULL,              -- epochs trained so far (a promotion adds its new epochs)
    hypervolume     REAL NOT NULL,
    recorded_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (sweep, seq)
) WITHOUT ROWID;
