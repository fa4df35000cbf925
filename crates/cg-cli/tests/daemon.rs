//! The daemon workflow end to end on the CPU with tiny synthetic jobs: a sweep file dropped into a
//! watched folder is submitted, its report appears while it runs and is final once it has
//! finished, `cg status` says `finished`; an invalid file is refused once with its line and the
//! daemon goes on; two sweeps share the workers; a writer killed during a report write, or one
//! whose disk is full, leaves the previous report intact.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cg_core::{JobRecord, JobStatus};
use common::{kill9, runners_of, text, wait_dead};

const CG: &str = env!("CARGO_BIN_EXE_cg");

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let env = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(env.path("experiments")).unwrap();
        env
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// The text of a sweep of `seeds` jobs on a tiny synthetic set.
    fn sweep_text(name: &str, n_train: usize, epochs: usize, seeds: &str) -> String {
        format!(
            "name: {name}\n\
             dataset: {{kind: synthetic, synthetic: {{n_train: {n_train}, n_test: 16, side: 8, channels: 3}}}}\n\
             model: {{depth: 8, width: 4}}\n\
             train: {{epochs: {epochs}, batch_size: 16}}\n\
             parameters:\n  train.seed:\n    values: [{seeds}]\n"
        )
    }

    /// Writes `text` to `rel` at once (a temporary file renamed into place).
    fn drop_file(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        let temp = path.with_file_name(".incoming");
        std::fs::write(&temp, text).unwrap();
        std::fs::rename(&temp, &path).unwrap();
        path
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(CG);
        cmd.args(args)
            .arg("--db")
            .arg(self.path("cg.db"))
            .current_dir(self.dir.path())
            .env_remove("CG_DB");
        cmd
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        out
    }

    fn daemon(&self, extra: &[&str], log: &str) -> Child {
        let log = std::fs::File::create(self.path(log)).unwrap();
        let mut args = vec!["daemon", "--threads-per-job", "1"];
        args.extend_from_slice(extra);
        self.command(&args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn status(&self, sweep: Option<&str>) -> String {
        let mut args = vec!["status"];
        args.extend(sweep);
        String::from_utf8_lossy(&self.ok(&args).stdout).into_owned()
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    fn store<T>(&self, f: impl AsyncFnOnce(&cg_store::Store) -> T) -> T {
        common::with_store(&self.path("cg.db"), f)
    }

    fn records(&self, sweep: &str) -> Vec<JobRecord> {
        self.store(async |s| s.job_records(sweep).await.unwrap_or_default())
    }
}

/// Waits (up to `secs`) until `done` holds, or fails saying `what` (with the daemon's log).
fn wait_until(env: &Env, log: &str, secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "{what} did not happen in {secs} s; daemon log:\n{}",
            env.log(log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(mut daemon: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    daemon.wait().unwrap();
}

/// The `cg status` line of a sweep, split in columns.
fn status_row(status: &str, sweep: &str) -> Vec<String> {
    status
        .lines()
        .map(|l| l.split("  ").map(str::to_string).collect::<Vec<_>>())
        .find(|cols| cols[0] == sweep)
        .unwrap_or_else(|| panic!("no line for `{sweep}` in:\n{status}"))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_watched_sweep_is_submitted_reported_while_running_and_finished() {
    let env = Env::new();
    // A private database: the reports take its permissions.
    env.ok(&["db", "migrate"]);
    std::fs::set_permissions(env.path("cg.db"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let daemon = env.daemon(
        &["--watch", "experiments", "--report-every", "1"],
        "daemon.log",
    );
    env.drop_file(
        "experiments/watched.yaml",
        &Env::sweep_text("watched", 1024, 3, "0, 1, 2, 3"),
    );
    let html = env.path("reports/watched/report.html");
    let mut running_page = None;
    wait_until(&env, "daemon.log", 300, "a running report", || {
        let page = std::fs::read_to_string(&html).unwrap_or_default();
        let unfinished = env
            .records("watched")
            .iter()
            .any(|r| matches!(r.status, JobStatus::Queued | JobStatus::Running));
        if page.contains("Sweep running") && unfinished {
            running_page = Some(page);
        }
        running_page.is_some()
    });
    let page = running_page.unwrap();
    assert!(
        page.contains("http-equiv=\"refresh\" content=\"30\""),
        "{page}"
    );
    assert!(page.contains("of 4 jobs done"), "{page}");
    assert!(page.trim_end().ends_with("</html>"));

    wait_until(&env, "daemon.log", 600, "the final report", || {
        std::fs::read_to_string(&html)
            .unwrap_or_default()
            .contains("Sweep finished")
    });
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        !page.contains("http-equiv=\"refresh\""),
        "no reload once finished"
    );
    assert!(
        page.contains("Sweep finished: 4 jobs (4 completed)"),
        "{page}"
    );
    let records = env.records("watched");
    assert!(records.iter().all(|r| r.status == JobStatus::Completed));
    assert_eq!(mode(&html), 0o600, "the database's permissions");
    assert_eq!(mode(&env.path("reports/watched")), 0o700);
    assert_eq!(mode(&env.path("reports/watched/pareto.png")), 0o600);

    let status = env.status(None);
    let row = status_row(&status, "watched");
    assert_eq!(
        &row[1..7],
        ["finished", "4", "4", "0", "0", "0"],
        "{status}"
    );
    assert!(row[8].ends_with("reports/watched/report.html"), "{status}");
    let one = env.status(Some("watched"));
    assert!(one.contains("sweep `watched` (finished)"), "{one}");
    assert!(
        !one.contains("finished -"),
        "the finish time is recorded: {one}"
    );
    let log = env.log("daemon.log");
    assert_eq!(log.matches("watch: submitted").count(), 1, "{log}");
    assert_eq!(log.matches("has finished; report:").count(), 1, "{log}");
    stop(daemon);
}

#[test]
fn an_invalid_file_is_rejected_with_its_line_and_the_daemon_goes_on() {
    let env = Env::new();
    let daemon = env.daemon(&["--watch", "experiments"], "daemon.log");
    // Line 3 misspells a key; line 6 asks for a command, which is never run.
    env.drop_file(
        "experiments/bad.yaml",
        "name: bad\n\
         dataset: {kind: synthetic}\n\
         model: {depth: 8, wdth: 4}\n\
         parameters:\n  train.seed:\n    values: [0]\n\
         command: touch executed\n",
    );
    wait_until(&env, "daemon.log", 60, "the rejection", || {
        env.log("daemon.log").contains("watch: rejected")
    });
    env.drop_file(
        "experiments/good.yaml",
        &Env::sweep_text("good", 32, 1, "0, 1"),
    );
    wait_until(&env, "daemon.log", 300, "the good sweep to finish", || {
        env.log("daemon.log").contains("sweep `good` has finished")
    });
    // Several more scans: the bad file is not reported again.
    std::thread::sleep(Duration::from_secs(5));
    let log = env.log("daemon.log");
    assert_eq!(log.matches("watch: rejected").count(), 1, "{log}");
    assert!(log.contains("bad.yaml:3"), "file:line in the log: {log}");
    assert!(log.contains("wdth"), "{log}");
    assert!(
        !env.path("executed").exists(),
        "nothing in a sweep file runs"
    );
    let status = env.status(None);
    let rejected: Vec<&str> = status
        .lines()
        .filter(|l| l.starts_with("rejected"))
        .collect();
    assert_eq!(rejected.len(), 1, "{status}");
    assert!(rejected[0].contains("bad.yaml:3"), "{status}");
    assert_eq!(status_row(&status, "good")[1], "finished", "{status}");

    // A file changed after its submission is not taken silently: the rules of `cg sweep submit`
    // apply, which refuse a different file under an existing sweep's name, and say what to do.
    env.drop_file(
        "experiments/good.yaml",
        &Env::sweep_text("good", 32, 1, "0, 1, 2"),
    );
    wait_until(
        &env,
        "daemon.log",
        60,
        "the changed file to be refused",
        || {
            env.log("daemon.log")
                .contains("watch: rejected experiments/good.yaml")
        },
    );
    let log = env.log("daemon.log");
    assert!(log.contains("already exists"), "{log}");
    assert!(log.contains("cg sweep delete good"), "{log}");
    // The refusal points at the line of the file's `name:` (issue 18), named once.
    assert!(
        log.contains("experiments/good.yaml:1:7: name: a sweep named `good` already exists"),
        "{log}"
    );
    assert!(!log.contains("good.yaml: experiments/good.yaml"), "{log}");

    // Fixed, the bad file is submitted and its rejection goes away; the changed one stays refused.
    env.drop_file("experiments/bad.yaml", &Env::sweep_text("bad", 32, 1, "0"));
    wait_until(&env, "daemon.log", 300, "the fixed sweep to finish", || {
        env.log("daemon.log").contains("sweep `bad` has finished")
    });
    let status = env.status(None);
    let rejected: Vec<&str> = status
        .lines()
        .filter(|l| l.starts_with("rejected"))
        .collect();
    assert_eq!(rejected.len(), 1, "{status}");
    assert!(rejected[0].contains("good.yaml"), "{status}");
    assert_eq!(
        status_row(&status, "good")[2],
        "2",
        "the first file's jobs only: {status}"
    );
    stop(daemon);
}

#[test]
fn two_sweeps_submitted_one_after_the_other_both_progress() {
    let env = Env::new();
    let first = env.drop_file(
        "first.yaml",
        &Env::sweep_text("first", 128, 1, "0, 1, 2, 3"),
    );
    env.ok(&["sweep", "submit", first.to_str().unwrap()]);
    // One worker: the second sweep gets turns although the first still has queued jobs.
    let daemon = env.daemon(&[], "daemon.log");
    wait_until(
        &env,
        "daemon.log",
        120,
        "a job of the first sweep to start",
        || {
            env.records("first")
                .iter()
                .any(|r| r.status != JobStatus::Queued)
        },
    );
    let second = env.drop_file(
        "second.yaml",
        &Env::sweep_text("second", 128, 1, "0, 1, 2, 3"),
    );
    env.ok(&["sweep", "submit", second.to_str().unwrap()]);
    wait_until(&env, "daemon.log", 600, "both sweeps to finish", || {
        [env.records("first"), env.records("second")]
            .iter()
            .all(|rs| rs.iter().all(|r| r.status == JobStatus::Completed))
    });
    stop(daemon);
    // When each job started, by sweep.
    let starts: BTreeMap<String, Vec<i64>> = env.store(async |s| {
        let mut out = BTreeMap::new();
        for sweep in ["first", "second"] {
            let mut times = Vec::new();
            for r in s.job_records(sweep).await.unwrap() {
                for a in s.attempts(&r.job.id).await.unwrap() {
                    times.push(a.started_at_ms);
                }
            }
            times.sort();
            out.insert(sweep.to_string(), times);
        }
        out
    });
    let (first, second) = (&starts["first"], &starts["second"]);
    assert!(
        second[0] < *first.last().unwrap(),
        "the second sweep started before the first one's last job: {starts:?}"
    );
    assert!(
        first[1] < *second.last().unwrap(),
        "the first sweep kept going while the second ran: {starts:?}"
    );
}

/// Every file under `dir` with its bytes, leaving out the writers' temporary files.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if !e.file_name().to_string_lossy().starts_with(".cg-tmp.") {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// Whether each report file is whole: the page ends, the JSON parses, the PNGs end.
fn assert_whole(dir: &Path) {
    for (path, bytes) in snapshot(dir) {
        let name = path.display().to_string();
        if name.ends_with(".html") {
            assert!(bytes.ends_with(b"</html>\n"), "{name} is cut");
        } else if name.ends_with(".json") {
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        } else if name.ends_with(".png") {
            assert!(bytes.ends_with(&[0xae, 0x42, 0x60, 0x82]), "{name} is cut");
        } else if name.ends_with(".svg") {
            assert!(
                String::from_utf8_lossy(&bytes)
                    .trim_end()
                    .ends_with("</svg>"),
                "{name} is cut"
            );
        }
    }
}

#[test]
fn a_killed_or_failing_report_write_leaves_the_previous_report() {
    let env = Env::new();
    let sweep = env.drop_file("kept.yaml", &Env::sweep_text("kept", 32, 1, "0, 1"));
    let out = env
        .command(&["run", sweep.to_str().unwrap(), "--threads-per-job", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let dir = env.path("reports/kept");
    let before = snapshot(&dir);
    // A file size limit of half the page (above SQLite's 32 KiB shared-memory file).
    let page_len = before[Path::new("report.html")].len();
    let limit_kib = (page_len / 2048).max(40);
    assert!(
        page_len > limit_kib * 1024,
        "the page ({page_len} B) must outgrow the limit"
    );

    // Killed mid-write: the file size limit kills the writer (SIGXFSZ) in the middle of the first
    // report file that outgrows it (the page, or a larger figure before it).
    let db = env.path("cg.db");
    let report = |limit: &str| {
        Command::new("bash")
            .arg("-c")
            .arg(format!("{limit}; exec \"$0\" report kept --db \"$1\""))
            .arg(CG)
            .arg(&db)
            .current_dir(env.dir.path())
            .output()
            .unwrap()
    };
    let killed = report(&format!("ulimit -f {limit_kib}"));
    assert_eq!(
        killed.status.signal(),
        Some(25),
        "SIGXFSZ: {}",
        text(&killed)
    );
    assert_eq!(snapshot(&dir), before, "every file is as it was");

    // A full disk: the same limit, the signal ignored, so the write fails with an error.
    let full = report(&format!("trap '' XFSZ; ulimit -f {limit_kib}"));
    assert!(!full.status.success(), "{}", text(&full));
    assert!(
        String::from_utf8_lossy(&full.stderr).contains("cannot write"),
        "{}",
        text(&full)
    );
    assert_eq!(snapshot(&dir), before, "every file is as it was");
    let temps: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".cg-tmp."))
        .collect();
    assert_eq!(
        temps.len(),
        1,
        "only the killed writer's temporary file: {temps:?}"
    );

    // The next write cleans up after the killed one.
    env.ok(&["report", "kept"]);
    assert_eq!(snapshot(&dir), before, "same records, same bytes");
    assert!(
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().starts_with(".cg-tmp.")),
        "no temporary file is left"
    );
}

#[test]
fn kill_9_of_the_daemon_while_it_writes_reports_leaves_whole_reports() {
    let env = Env::new();
    let sweep = env.drop_file("k9.yaml", &Env::sweep_text("k9", 64, 1, "0, 1, 2, 3, 4, 5"));
    env.ok(&["sweep", "submit", sweep.to_str().unwrap()]);
    let dir = env.path("reports/k9");
    // `--report-every 0`: a report after every job event, so kills land in writes often.
    for round in 0..5u64 {
        let daemon = env.daemon(&["--report-every", "0"], &format!("daemon-{round}.log"));
        let start = Instant::now();
        while !dir.join("report.html").exists() && start.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300 + 370 * round));
        let runners = runners_of(daemon.id());
        kill9(daemon.id());
        let mut daemon = daemon;
        daemon.wait().unwrap();
        for pid in runners {
            wait_dead(pid, "a job runner of the killed daemon");
        }
        assert_whole(&dir);
    }
    let out = env
        .command(&["daemon", "--exit-when-idle", "--threads-per-job", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_whole(&dir);
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        page.contains("Sweep finished: 6 jobs (6 completed)"),
        "{page}"
    );
}
