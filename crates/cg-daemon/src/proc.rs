//! Local worker ids (`local:<hostname>:<machine>:<pid>:<slot>`) and taking back the jobs of local
//! workers whose process is gone.
//!
//! `<machine>` tells apart machines (and containers) that share a host name: a hash of the boot id
//! and of the pid namespace. Only workers with this process's host name *and* machine key are
//! judged by their pid here; any other worker's jobs come back when its lease expires.

use std::collections::BTreeSet;

use cg_core::JobStatus;
use cg_store::Store;

use crate::Result;

/// This machine's host name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`, else `localhost`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".into())
}

/// 8 hex digits naming this boot of this kernel and this pid namespace: two processes with the
/// same key see the same pids. `0` when neither can be read (no `/proc`).
fn machine_key() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let pid_ns = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if boot.is_empty() && pid_ns.is_empty() {
        return "0".into();
    }
    // FNV-1a: stable across builds, so workers of different cg versions agree.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in boot.trim().bytes().chain([0]).chain(pid_ns.bytes()) {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{hash:08x}")
}

/// The prefix of the worker ids of this machine: `local:<hostname>:<machine>:`.
fn machine_prefix() -> String {
    format!("local:{}:{}:", hostname(), machine_key())
}

/// The worker-id prefix of the local process `pid` on this machine:
/// `local:<hostname>:<machine>:<pid>:`.
pub fn local_worker_prefix(pid: u32) -> String {
    format!("{}{pid}:", machine_prefix())
}

/// The command name (`comm`) in a `/proc/<pid>/stat` line and the state letter after it.
fn comm_and_state(stat: &str) -> Option<(String, Option<char>)> {
    let (_, rest) = stat.split_once('(')?;
    let (comm, rest) = rest.rsplit_once(')')?;
    Some((comm.to_string(), rest.trim_start().chars().next()))
}

/// Whether `pid` is a live process running the same program as this one (other than this one).
/// A pid reused by some other program counts as dead; a pid we cannot inspect (no `/proc`)
/// counts as alive (leases expire anyway).
fn is_live_cg_process(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    let Some(own) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| comm_and_state(&s))
    else {
        return true;
    };
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => runs_program(&stat, &own.0),
        Err(_) => false,
    }
}

/// Whether a `/proc/<pid>/stat` line is a live (not zombie) process named `comm`; an unreadable
/// line counts as alive.
fn runs_program(stat: &str, comm: &str) -> bool {
    match comm_and_state(stat) {
        Some((name, state)) => name == comm && state != Some('Z'),
        None => true,
    }
}

/// Finds the running jobs leased to local workers of this host whose process no longer exists
/// (or is this very process, which has claimed nothing yet) and takes them back at once with
/// [`Store::reclaim_owner`] (the dead attempt is given back). Returns how many jobs were taken back.
pub async fn reclaim_dead_local_workers(store: &Store) -> Result<usize> {
    let host_prefix = machine_prefix();
    let mut dead: BTreeSet<u32> = BTreeSet::new();
    for sweep in store.list_sweeps().await? {
        if sweep.counts.running == 0 {
            continue;
        }
        for record in store.job_records(&sweep.name).await? {
            if record.status != JobStatus::Running {
                continue;
            }
            let attempts = store.attempts(&record.job.id).await?;
            let Some(last) = attempts.last() else {
                continue;
            };
            let Some(rest) = last.worker.strip_prefix(&host_prefix) else {
                continue;
            };
            let Some(pid) = rest.split(':').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if !is_live_cg_process(pid) {
                dead.insert(pid);
            }
        }
    }
    let mut taken = 0;
    for pid in dead {
        taken += store.reclaim_owner(&local_worker_prefix(pid)).await?;
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_not_a_live_worker_and_init_is_not_cg() {
        assert!(!is_live_cg_process(std::process::id()));
        assert!(!is_live_cg_process(1) || !std::path::Path::new("/proc/self").exists());
        assert!(!is_live_cg_process(u32::MAX - 1));
    }

    #[test]
    fn another_program_on_a_pid_is_no_worker() {
        let mut sleeper = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(!is_live_cg_process(sleeper.id()));
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        assert!(runs_program("7 (cg) S 1", "cg"));
        assert!(runs_program("7 (my-cg-build) S 1", "my-cg-build"));
        assert!(!runs_program("7 (cg) Z 1", "cg"), "a zombie is dead");
        assert!(!runs_program("7 (cgx) S 1", "cg"));
        assert!(
            runs_program("7 garbage", "cg"),
            "unreadable counts as alive"
        );
    }

    #[test]
    fn prefix_names_host_machine_and_pid() {
        let p = local_worker_prefix(42);
        let parts: Vec<&str> = p.split(':').collect();
        assert_eq!(parts.len(), 5, "{p}");
        assert_eq!((parts[0], parts[1]), ("local", hostname().as_str()));
        assert_eq!(parts[2], machine_key());
        assert_eq!((parts[3], parts[4]), ("42", ""));
        assert!(machine_key().len() == 8 || machine_key() == "0");
    }

    #[test]
    fn stat_lines_give_comm_and_state() {
        assert_eq!(
            comm_and_state("12 (cg job) R 1 2"),
            Some(("cg job".to_string(), Some('R')))
        );
        assert_eq!(
            comm_and_state("12 (a) b)) Z 1"),
            Some(("a) b)".to_string(), Some('Z')))
        );
        assert_eq!(comm_and_state("garbage"), None);
    }
}
