-- Sweep life cycle, fair claiming and the daemon's reports (PostgreSQL). Lockstep with sqlite/0002.
-- Columns are added, no table is rebuilt: `sweeps.status` keeps its CHECK; `finished` is derived
-- (no queued or running job) and recorded in finished_at_ms.
ALTER TABLE sweeps ADD COLUMN started_at_ms BIGINT;        -- first claim of one of its jobs
ALTER TABLE sweeps ADD COLUMN finished_at_ms BIGINT;       -- set once it finished; NULL again when jobs are queued anew
ALTER TABLE sweeps ADD COLUMN claim_turn BIGINT;           -- higher: served more recently (round-robin)
ALTER TABLE sweeps ADD COLUMN report_path TEXT;             -- where the latest report was written
ALTER TABLE sweeps ADD COLUMN final_report_by TEXT;         -- the worker that took the final report
ALTER TABLE sweeps ADD COLUMN final_report_at_ms BIGINT;   -- when it took it (taken over when stale)
ALTER TABLE sweeps ADD COLUMN final_report_done_ms BIGINT; -- when the final report was written

-- Per-sweep running and queued jobs, for the fair choice of the next sweep to serve.
CREATE INDEX jobs_sweep_running ON jobs (sweep) WHERE status = 'running';
CREATE INDEX jobs_sweep_queued ON jobs (sweep, priority DESC, seq) WHERE status = 'queued';

-- Sweep files `cg daemon --watch` refused, one row per file (the latest refused version).
CREATE TABLE watch_rejections (
    path            TEXT PRIMARY KEY,
    content_sha256  TEXT NOT NULL,
    message         TEXT NOT NULL,
    rejected_at_ms  BIGINT NOT NULL
);
