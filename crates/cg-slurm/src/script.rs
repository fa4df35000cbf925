//! The batch script of a worker array: `#SBATCH` lines from an [`ArraySpec`], then one `exec` of
//! `cg worker` per task. The database URL is not in the script: the task reads it from `CG_DB`,
//! which `sbatch` exports from the submitting environment, so a password never lands on disk.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// What an array of `cg worker` tasks is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct ArraySpec {
    /// The sweep (for the job name and the log file names).
    pub sweep: String,
    /// Tasks in the array, one worker each (at least 1).
    pub workers: usize,
    /// The `cg` binary the tasks run (absolute: the nodes do not share the submitter's PATH).
    pub cg: PathBuf,
    /// The runs folder every node shares (checkpoints; absolute).
    pub runs_dir: PathBuf,
    /// Where the tasks' output files go (absolute).
    pub log_dir: PathBuf,
    /// `--gres=gpu:K`; the worker then uses the GPUs Slurm gives it.
    pub gpus_per_worker: Option<u32>,
    /// Jobs at once on each GPU (`cg worker --jobs-per-gpu`).
    pub jobs_per_gpu: u32,
    /// `--cpus-per-task`; a CPU worker trains one job with this many threads.
    pub cpus_per_worker: Option<u32>,
    pub partition: Option<String>,
    pub time: Option<String>,
    pub account: Option<String>,
    /// Further `#SBATCH` arguments, as given.
    pub sbatch_args: Vec<String>,
    /// A task ends once nothing has been claimable for this long (`cg worker --until-idle`).
    pub until_idle_secs: u64,
    /// Slurm's warning before a kill (`--signal=B:TERM@SECS`).
    pub signal_secs: u64,
    /// The lease of a claimed job (`cg worker --lease`).
    pub lease_secs: u64,
}

/// The batch script for `spec`, or what in it would break the script.
pub fn batch_script(spec: &ArraySpec) -> Result<String> {
    check(spec)?;
    let mut s = String::from("#!/bin/bash\n");
    s.push_str(&header_comment(spec));
    for line in sbatch_lines(spec) {
        s.push_str("#SBATCH ");
        s.push_str(&line);
        s.push('\n');
    }
    s.push_str("set -u\n");
    s.push_str(": \"${CG_DB:?the database URL comes in CG_DB (cg slurm submit exports it)}\"\n");
    s.push_str("echo \"cg worker: task ${SLURM_ARRAY_TASK_ID:-?} of job ${SLURM_ARRAY_JOB_ID:-?} on $(hostname)\" >&2\n");
    s.push_str("exec ");
    s.push_str(&worker_command(spec).join(" "));
    s.push('\n');
    Ok(s)
}

fn header_comment(spec: &ArraySpec) -> String {
    format!(
        "# The workers of sweep `{sweep}`, written by `cg slurm submit`. Each array task runs one\n\
         # `cg worker` that claims jobs from the queue in $CG_DB and exits once nothing has been\n\
         # claimable for {idle} s. Before a time limit or a preemption Slurm sends SIGTERM {signal} s\n\
         # ahead: the worker puts its jobs back in the queue (their checkpoints stay in the shared\n\
         # runs folder) and exits; --requeue brings the task back.\n",
        sweep = spec.sweep.replace('\n', " "),
        idle = spec.until_idle_secs,
        signal = spec.signal_secs,
    )
}

fn sbatch_lines(spec: &ArraySpec) -> Vec<String> {
    let log = spec.log_dir.join(format!("cg-{}-%A_%a.out", spec.sweep));
    let mut lines = vec![
        format!("--job-name=cg-{}", spec.sweep),
        format!("--array=0-{}", spec.workers - 1),
        format!("--output={}", log.display()),
        format!("--signal=B:TERM@{}", spec.signal_secs),
        "--requeue".to_string(),
        "--open-mode=append".to_string(),
    ];
    if let Some(c) = spec.cpus_per_worker {
        lines.push(format!("--cpus-per-task={c}"));
    }
    if let Some(k) = spec.gpus_per_worker {
        lines.push(format!("--gres=gpu:{k}"));
    }
    for (flag, value) in [
        ("partition", &spec.partition),
        ("time", &spec.time),
        ("account", &spec.account),
    ] {
        if let Some(v) = value {
            lines.push(format!("--{flag}={v}"));
        }
    }
    lines.extend(spec.sbatch_args.iter().cloned());
    lines
}

fn worker_command(spec: &ArraySpec) -> Vec<String> {
    let mut cmd = vec![
        quote_path(&spec.cg),
        "worker".into(),
        "--db".into(),
        "\"$CG_DB\"".into(),
        "--runs-dir".into(),
        quote_path(&spec.runs_dir),
        "--until-idle".into(),
        spec.until_idle_secs.to_string(),
        "--lease".into(),
        spec.lease_secs.to_string(),
    ];
    if spec.gpus_per_worker.is_some() {
        // Slurm sets CUDA_VISIBLE_DEVICES to the GPUs it gave the task; `auto` takes them.
        cmd.extend([
            "--gpus".into(),
            "auto".into(),
            "--jobs-per-gpu".into(),
            spec.jobs_per_gpu.to_string(),
        ]);
    } else {
        cmd.extend([
            "--gpus".into(),
            "none".into(),
            "--workers".into(),
            "1".into(),
        ]);
        if let Some(c) = spec.cpus_per_worker {
            cmd.extend(["--threads-per-job".into(), c.to_string()]);
        }
    }
    cmd
}

/// A path in single quotes for the shell (a `'` inside becomes `'\''`).
fn quote_path(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

fn check(spec: &ArraySpec) -> Result<()> {
    let unsafe_value = |what, value: &str, why| Error::Unsafe {
        what,
        value: value.to_string(),
        why,
    };
    if spec.workers == 0 {
        return Err(unsafe_value("--workers", "0", "an array needs a task"));
    }
    for (what, path) in [
        ("the cg binary", &spec.cg),
        ("--runs-dir", &spec.runs_dir),
        ("the log folder", &spec.log_dir),
    ] {
        let text = path.display().to_string();
        if !path.is_absolute() {
            return Err(unsafe_value(what, &text, "the nodes need an absolute path"));
        }
        if text.contains(['\n', '\r', '%']) {
            return Err(unsafe_value(what, &text, "it holds a newline or a `%`"));
        }
    }
    let single: [(&'static str, Option<&String>); 4] = [
        ("the sweep name", Some(&spec.sweep)),
        ("--partition", spec.partition.as_ref()),
        ("--time", spec.time.as_ref()),
        ("--account", spec.account.as_ref()),
    ];
    for (what, value) in single {
        if let Some(v) = value
            && (v.is_empty() || v.contains(char::is_whitespace) || v.contains('%'))
        {
            return Err(unsafe_value(what, v, "it must be one word without `%`"));
        }
    }
    for arg in &spec.sbatch_args {
        if !arg.starts_with('-') || arg.contains(['\n', '\r']) {
            return Err(unsafe_value(
                "--sbatch-arg",
                arg,
                "it must be one option line starting with `-`",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ArraySpec {
        ArraySpec {
            sweep: "grid".into(),
            workers: 4,
            cg: "/opt/cg/bin/cg".into(),
            runs_dir: "/shared/runs".into(),
            log_dir: "/shared/runs/slurm".into(),
            gpus_per_worker: None,
            jobs_per_gpu: 1,
            cpus_per_worker: Some(8),
            partition: Some("gpu".into()),
            time: Some("02:00:00".into()),
            account: None,
            sbatch_args: vec!["--mem=16G".into()],
            until_idle_secs: 60,
            signal_secs: 120,
            lease_secs: 60,
        }
    }

    #[test]
    fn a_cpu_array_runs_one_job_per_task_with_its_cpus() {
        let s = batch_script(&spec()).unwrap();
        assert!(s.starts_with("#!/bin/bash\n"), "{s}");
        for line in [
            "#SBATCH --array=0-3\n",
            "#SBATCH --signal=B:TERM@120\n",
            "#SBATCH --requeue\n",
            "#SBATCH --cpus-per-task=8\n",
            "#SBATCH --partition=gpu\n",
            "#SBATCH --time=02:00:00\n",
            "#SBATCH --mem=16G\n",
            "#SBATCH --output=/shared/runs/slurm/cg-grid-%A_%a.out\n",
            "exec '/opt/cg/bin/cg' worker --db \"$CG_DB\" --runs-dir '/shared/runs' \
             --until-idle 60 --lease 60 --gpus none --workers 1 --threads-per-job 8\n",
        ] {
            assert!(s.contains(line), "missing {line:?} in\n{s}");
        }
        assert!(!s.contains("--account"), "{s}");
        assert!(!s.contains("--gres"), "{s}");
    }

    #[test]
    fn a_gpu_array_asks_for_gres_and_uses_what_it_gets() {
        let mut g = spec();
        g.gpus_per_worker = Some(2);
        g.jobs_per_gpu = 3;
        let s = batch_script(&g).unwrap();
        assert!(s.contains("#SBATCH --gres=gpu:2\n"), "{s}");
        assert!(s.contains("--gpus auto --jobs-per-gpu 3\n"), "{s}");
    }

    #[test]
    fn what_would_break_the_script_is_refused() {
        let cases: [(&str, fn(&mut ArraySpec)); 5] = [
            ("--partition", |s| s.partition = Some("a b".into())),
            ("--sbatch-arg", |s| {
                s.sbatch_args = vec!["--x\n#SBATCH --y".into()]
            }),
            ("--sbatch-arg", |s| s.sbatch_args = vec!["mem=1G".into()]),
            ("--runs-dir", |s| s.runs_dir = "runs".into()),
            ("--workers", |s| s.workers = 0),
        ];
        for (what, change) in cases {
            let mut s = spec();
            change(&mut s);
            let err = batch_script(&s).unwrap_err().to_string();
            assert!(err.starts_with(what), "{what}: {err}");
        }
    }

    #[test]
    fn a_quote_in_a_path_stays_one_word() {
        assert_eq!(quote_path(Path::new("/a/it's")), r"'/a/it'\''s'");
    }
}
