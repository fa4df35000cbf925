//! Jobs: a stable id with its resolved configuration, the states a job moves through in the
//! queue, and the rules for the ids and names that pick files and directories.

use serde::{Deserialize, Serialize};

use crate::RunConfig;

/// Stable identifier of a job: a hex digest of its canonical configuration and data fingerprint.
pub type JobId = String;

/// One unit of work: a fully resolved training configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub id: JobId,
    /// The values of the sweep's axes for this job (dotted key -> value), for tables and reports.
    pub params: serde_json::Map<String, serde_json::Value>,
    pub config: RunConfig,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "completed" => JobStatus::Completed,
            "failed" => JobStatus::Failed,
            "cancelled" => JobStatus::Cancelled,
            _ => return None,
        })
    }
}

/// Longest job id or sweep name accepted.
pub const MAX_NAME_LEN: usize = 128;

/// Checks a job id read from a sweep or from the store before it names a directory (`runs/<id>/`)
/// or goes on a command line: 1 to 128 ASCII letters, digits, `_`, `-` and `.`, not starting with
/// `-` or `.` (so never an option, `..`, a hidden file or a path). `Err` says what is wrong.
pub fn check_job_id(id: &str) -> Result<(), String> {
    check_token(id, "job id")
}

/// Checks a sweep name (a report directory, a command-line argument): the rule of
/// [`check_job_id`], and it starts with a letter or digit (not `_` either).
pub fn check_name(name: &str) -> Result<(), String> {
    check_token(name, "sweep name")?;
    if name.starts_with('_') {
        return Err(format!(
            "the sweep name `{name}` starts with `_`; start it with a letter or digit"
        ));
    }
    Ok(())
}

fn check_token(s: &str, what: &str) -> Result<(), String> {
    let shown: String = s
        .chars()
        .take(40)
        .collect::<String>()
        .escape_debug()
        .to_string();
    if s.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if s.len() > MAX_NAME_LEN {
        return Err(format!(
            "the {what} `{shown}…` is longer than {MAX_NAME_LEN} characters"
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "the {what} `{shown}` contains {c:?}; use letters, digits, `_`, `-` and `.`"
        ));
    }
    if s.starts_with(['-', '.']) {
        return Err(format!(
            "the {what} `{shown}` starts with `{}`; start it with a letter or digit",
            &s[..1]
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_that_could_be_paths_or_options_are_refused() {
        for ok in ["0123abcdef", "mnist-grid", "a.b_c-1", "A"] {
            assert_eq!(check_job_id(ok), Ok(()), "{ok}");
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        for bad in [
            "",
            "/etc",
            "/tmp/x",
            "..",
            "../x",
            "a/b",
            ".hidden",
            "-rf",
            "--device",
            "a b",
            "a\nb",
            "é",
            "a\0b",
            "${HOME}",
            long.as_str(),
        ] {
            assert!(check_job_id(bad).is_err(), "{bad:?}");
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("-x").unwrap_err().contains("starts with `-`"));
        for bad in ["_", "_x", ".x", "-x"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
