//! Local worker ids (`local:<hostname>:<machine>:<pid>-<start>:<slot>`) and taking back the jobs
//! of local workers whose process is gone.
//!
//! `<machine>` tells apart machines (and containers) that share a host name: a hash of the boot id
//! and of the pid namespace. `<start>` is the process's start time (in clock ticks since boot), so
//! a pid reused by another process is not mistaken for the worker. Only workers with this
//! process's host name *and* machine key are judged by their pid here; any other worker's jobs
//! come back when its lease expires.

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

/// The prefix of every worker id of the local process `pid`, whatever its start time:
/// `local:<hostname>:<machine>:<pid>-`.
pub fn local_worker_prefix(pid: u32) -> String {
    format!("{}{pid}-", machine_prefix())
}

/// The prefix of this process's worker ids: `local:<hostname>:<machine>:<pid>-<start>:`.
pub(crate) fn own_worker_prefix() -> String {
    let pid = std::process::id();
    let start = read_stat(pid).map_or(0, |s| s.start);
    format!("{}{start}:", local_worker_prefix(pid))
}

/// What `/proc/<pid>/stat` says of a process.
#[derive(Debug, PartialEq)]
struct Stat {
    zombie: bool,
    /// Start time after boot, in clock ticks (field 22).
    start: u64,
}

fn parse_stat(stat: &str) -> Option<Stat> {
    // `pid (comm) state ppid …`: the command name may hold spaces and parentheses.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        zombie: *fields.first()? == "Z",
        start: fields.get(19)?.parse().ok()?,
    })
}

fn read_stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Whether the worker process `pid` started at `start` still runs (not as a zombie). Without
/// `/proc` nothing can be judged: alive (leases expire anyway).
fn is_live_worker(pid: u32, start: u64) -> bool {
    if pid == std::process::id() {
        return false;
    }
    if !std::path::Path::new("/proc/self/stat").exists() {
        return true;
    }
    read_stat(pid).is_some_and(|s| !s.zombie && s.start == start)
}

/// Finds the running jobs leased to local workers of this host whose process no longer exists
/// (or is this very process, which has claimed nothing yet) and takes them back at once with
/// [`Store::reclaim_owner`] (the dead attempt is given back). Returns how many jobs were taken back.
pub async fn reclaim_dead_local_workers(store: &Store) -> Result<usize> {
    let host_prefix = machine_prefix();
    let mut dead: BTreeSet<String> = BTreeSet::new();
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
            // `<pid>-<start>:<slot>`
            let Some(process) = last
                .worker
                .strip_prefix(&host_prefix)
                .and_then(|rest| rest.split(':').next())
            else {
                continue;
            };
            let Some((pid, start)) = process
                .split_once('-')
                .and_then(|(p, s)| Some((p.parse::<u32>().ok()?, s.parse::<u64>().ok()?)))
            else {
                continue;
            };
            if !is_live_worker(pid, start) {
                dead.insert(format!("{host_prefix}{process}:"));
            }
        }
    }
    let mut taken = 0;
    for prefix in dead {
        taken += store.reclaim_owner(&prefix).await?;
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_not_a_live_worker_and_a_stale_start_is_dead() {
        let me = read_stat(std::process::id()).expect("/proc");
        assert!(!is_live_worker(std::process::id(), me.start));
        assert!(!is_live_worker(u32::MAX - 1, 0));
        let mut sleeper = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let start = read_stat(sleeper.id()).unwrap().start;
        assert!(is_live_worker(sleeper.id(), start));
        assert!(
            !is_live_worker(sleeper.id(), start + 1),
            "the same pid started at another time is another process"
        );
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        assert!(!is_live_worker(sleeper.id(), start));
    }

    #[test]
    fn ids_name_host_machine_pid_and_start() {
        let own = own_worker_prefix();
        let parts: Vec<&str> = own.split(':').collect();
        assert_eq!(parts.len(), 5, "{own}");
        assert_eq!((parts[0], parts[1]), ("local", hostname().as_str()));
        assert_eq!(parts[2], machine_key());
        assert!(machine_key().len() == 8 || machine_key() == "0");
        let pid = std::process::id();
        assert!(own.starts_with(&local_worker_prefix(pid)), "{own}");
        assert!(!local_worker_prefix(12).starts_with(&local_worker_prefix(1)));
    }

    #[test]
    fn stat_lines_give_state_and_start() {
        let line = "12 (cg (job) x) S 1 12 12 0 -1 4194560 100 0 0 0 5 1 0 0 20 0 3 0 987654 1 2";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                zombie: false,
                start: 987654
            })
        );
        assert!(parse_stat(&line.replace(") S", ") Z")).unwrap().zombie);
        assert_eq!(parse_stat("12 (cg) S 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }
}
