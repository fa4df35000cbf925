//! Local worker ids (`local:<hostname>:<pid>:<slot>`) and taking back the jobs of local workers
//! whose process is gone.

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

/// The worker-id prefix of the local process `pid` on this host: `local:<hostname>:<pid>:`.
pub fn local_worker_prefix(pid: u32) -> String {
    format!("local:{}:{pid}:", hostname())
}

/// Whether `pid` is a live `cg` process other than this one. A pid reused by some other program
/// counts as dead; a pid we cannot inspect (no `/proc`) counts as alive (leases expire anyway).
fn is_live_cg_process(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) state ...`; a zombie (`Z`) is as good as dead.
        Ok(stat) => {
            let comm = stat
                .split_once('(')
                .and_then(|(_, rest)| rest.rsplit_once(')'))
                .map(|(comm, rest)| (comm.to_string(), rest.trim_start().chars().next()));
            match comm {
                Some((comm, state)) => comm.starts_with("cg") && state != Some('Z'),
                None => true,
            }
        }
        Err(_) => false,
    }
}

/// Finds the running jobs leased to local workers of this host whose process no longer exists
/// (or is this very process, which has claimed nothing yet) and takes them back at once with
/// [`Store::reclaim_owner`] (the dead attempt is given back). Returns how many jobs were taken back.
pub async fn reclaim_dead_local_workers(store: &Store) -> Result<usize> {
    let host_prefix = format!("local:{}:", hostname());
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
    fn prefix_names_host_and_pid() {
        let p = local_worker_prefix(42);
        assert!(p.starts_with("local:") && p.ends_with(":42:"), "{p}");
    }
}
