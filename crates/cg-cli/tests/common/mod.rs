//! Helpers shared by the end-to-end tests that start `cg` processes: output for messages, and the
//! job runners of a process, found and killed through `/proc`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A command's status and output, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Processes whose parent is `parent` and whose command line contains `job-runner` (so they
/// have exec'd: a forked child still shows its parent's command line).
pub fn runners_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) != Some(parent) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("job-runner") {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` is alive (a zombie counts as dead).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

pub fn kill9(pid: u32) {
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -9 {pid} failed");
}

/// Waits (up to 60 s) until `pid` is dead, or fails naming `what`.
pub fn wait_dead(pid: u32, what: &str) {
    let start = Instant::now();
    while alive(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} (pid {pid}) did not die"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `f` on the existing SQLite database `db` (as another process would open it), then
/// closes it.
#[allow(dead_code)] // not every test binary opens a SQLite file
pub fn with_store<T>(db: &Path, f: impl AsyncFnOnce(&cg_store::Store) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = cg_store::Store::open_existing(db).await.unwrap();
        let out = f(&store).await;
        store.close().await;
        out
    })
}
