//! The Slurm commands cg calls: `sbatch --parsable` to submit a script, `squeue` (and `sacct`,
//! where accounting is on) to read an array's task states. Their failures are errors with the
//! command's own message.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::{Error, Result};

/// One task of an array job as Slurm sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState {
    /// `JOB_TASK`, e.g. `42_3` (or `42_[4-7]` for tasks not started yet).
    pub id: String,
    /// `PENDING`, `RUNNING`, `COMPLETED`, `CANCELLED`, `PREEMPTED`, …
    pub state: String,
    /// The node(s) it runs on, or the reason it waits.
    pub where_: String,
}

/// Whether the Slurm clients are on PATH (`squeue` answers `--version`).
pub fn available() -> bool {
    Command::new("squeue")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `sbatch --parsable SCRIPT` in `cwd` with `env` added to the environment (which sbatch
/// exports to the tasks); the job id.
pub fn sbatch(script: &Path, cwd: &Path, env: &[(&str, &str)]) -> Result<String> {
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable").arg(script).current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(cmd, "sbatch")?;
    // `--parsable` prints `JOBID` or `JOBID;CLUSTER`.
    let id = out.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::NoJobId(out));
    }
    Ok(id)
}

/// The states of job `job`'s tasks: from `squeue` while any is queued or running, else from
/// `sacct` where accounting is on; an empty list when Slurm no longer knows the job.
pub fn task_states(job: &str) -> Result<Vec<TaskState>> {
    let mut cmd = Command::new("squeue");
    cmd.args(["-h", "-r", "-j", job, "-o", "%i|%T|%R"]);
    let queued = match run(cmd, "squeue") {
        Ok(out) => parse_lines(&out, 3),
        // squeue refuses a job id it has forgotten: fall through to sacct.
        Err(Error::Failed { .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    if !queued.is_empty() {
        return Ok(queued);
    }
    let mut cmd = Command::new("sacct");
    cmd.args(["-n", "-P", "-X", "-j", job, "-o", "JobID,State,NodeList"]);
    Ok(run(cmd, "sacct")
        .map(|out| parse_lines(&out, 3))
        .unwrap_or_default())
}

fn parse_lines(out: &str, fields: usize) -> Vec<TaskState> {
    out.lines()
        .filter_map(|line| {
            let parts: Vec<&str> = line.trim().split('|').collect();
            (parts.len() == fields && !parts[0].is_empty()).then(|| TaskState {
                id: parts[0].to_string(),
                state: parts[1].to_string(),
                where_: parts[2].to_string(),
            })
        })
        .collect()
}

/// Runs `cmd` (named `name` in errors) with its output captured; stdout on success.
fn run(mut cmd: Command, name: &str) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            command: name.to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(Error::Failed {
            command: name.to_string(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_are_read_and_junk_is_skipped() {
        let out = "12_0|RUNNING|cgnode\n12_[1-3]|PENDING|(Priority)\n\nnot a line\n";
        let states = parse_lines(out, 3);
        assert_eq!(states.len(), 2);
        assert_eq!(states[0].id, "12_0");
        assert_eq!(states[0].state, "RUNNING");
        assert_eq!(states[1].where_, "(Priority)");
    }
}
