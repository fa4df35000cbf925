-- Slurm arrays started by `cg slurm submit`: which Slurm job runs a sweep's workers, so that
-- `cg status SWEEP` can ask Slurm about its tasks. The queue stays the single source of truth
-- for jobs; this only records what was submitted. Kept in lockstep with the other engine's 0004.
CREATE TABLE slurm_jobs (
    sweep           TEXT NOT NULL REFERENCES sweeps (name) ON DELETE CASCADE,
    slurm_job       TEXT NOT NULL,       -- the array's job id, as sbatch --parsable printed it
    workers         BIGINT NOT NULL,     -- tasks in the array
    script          TEXT NOT NULL,       -- where the batch script was written
    submitted_at_ms BIGINT NOT NULL,
    PRIMARY KEY (sweep, slurm_job)
);
