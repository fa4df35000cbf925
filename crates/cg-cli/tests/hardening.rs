//! `cg` tried as a hostile or careless user would (issue 11): database URLs, permissions, read-only
//! databases, size limits, `${VAR}`, sweep identity, expired leases, messages, capped data files.
//! Each test names the class it covers and tries several variants of it.

#[allow(dead_code)]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::text;

const CG: &str = env!("CARGO_BIN_EXE_cg");

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `cg ARGS` in the directory, without `CG_DB` or secrets from the caller's environment.
    fn cg(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(CG);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("CG_DB")
            .env_remove("CG_DATA");
        cmd
    }

    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn store<T>(&self, f: impl AsyncFnOnce(&cg_store::Store) -> T) -> T {
        common::with_store(&self.path("cg.db"), f)
    }
}

/// A tiny sweep of `seeds` jobs named `name`.
fn sweep_text(name: &str, axis: &str) -> String {
    format!(
        "name: {name}\n\
         dataset: {{kind: synthetic, synthetic: {{n_train: 32, n_test: 16, side: 8, channels: 3}}}}\n\
         model: {{depth: 8, width: 4}}\n\
         train: {{epochs: 1, batch_size: 16}}\n\
         parameters:\n{axis}"
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Class 2: a URL-like `--db` is PostgreSQL in any case, or refused; it never becomes a SQLite
/// file or directory, and no message shows the password, whatever the command.
#[test]
fn database_urls_in_any_spelling_never_become_files_nor_print_passwords() {
    let env = Env::new();
    env.write("s.yaml", &sweep_text("s", "  train.seed: {values: [0]}\n"));
    let before = env.entries();
    let urls = [
        "Postgres://cg:s3cret@127.0.0.1:1/db",
        "POSTGRES://cg:s3cret@127.0.0.1:1/db",
        "postgresql://cg:s3cret@127.0.0.1:1/db",
        "postgres:/cg:s3cret@127.0.0.1:1/db",
        "Postgres:/cg:s3cret@127.0.0.1:1/db",
        "postgres:cg:s3cret@127.0.0.1:1/db",
        "mysql://cg:s3cret@127.0.0.1:1/db",
        "postgres://127.0.0.1:1/db?user=cg&Password=s3cret",
    ];
    for url in urls {
        for args in [
            vec!["status", "--db", url],
            vec!["logs", "abc", "--db", url],
            vec!["sweep", "submit", "s.yaml", "--db", url],
            vec!["db", "migrate", "--db", url],
            vec!["db", "backup", "b.db", "--db", url],
            vec!["report", "s", "--db", url],
        ] {
            let out = env.cg(&args);
            assert!(!out.status.success(), "{args:?}: {}", text(&out));
            assert!(!text(&out).contains("s3cret"), "{args:?}: {}", text(&out));
            assert!(!text(&out).contains("panicked"), "{args:?}: {}", text(&out));
        }
        // Through the environment too.
        let out = env.command(&["status"]).env("CG_DB", url).output().unwrap();
        assert!(
            !out.status.success() && !text(&out).contains("s3cret"),
            "{}",
            text(&out)
        );
    }
    assert_eq!(env.entries(), before, "a URL became a file or directory");
}

/// Class 4: the database is its owner's; backups and run directories follow its mode.
#[test]
fn backups_and_run_directories_follow_the_database_permissions() {
    let env = Env::new();
    env.write("s.yaml", &sweep_text("s", "  train.seed: {values: [0]}\n"));
    let out = env.cg(&["run", "s.yaml", "--threads-per-job", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(mode(&env.path("cg.db")), 0o600);
    let runs: Vec<PathBuf> = std::fs::read_dir(env.path("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1);
    assert_eq!(mode(&runs[0]), 0o700);
    for (db_mode, name) in [(0o600, "b1.db"), (0o640, "b2.db"), (0o644, "b3.db")] {
        std::fs::set_permissions(env.path("cg.db"), std::fs::Permissions::from_mode(db_mode))
            .unwrap();
        let out = env.cg(&["db", "backup", name]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(mode(&env.path(name)), db_mode, "{name}");
    }
}

/// Class 9: `cg status`, `cg logs`, `cg db backup` and `cg report` work on a database the user
/// cannot write (another user's file in another user's directory); `cg report` then skips storing
/// the hypervolume. Runs as `nobody` through `setpriv` when the tests run as root.
#[test]
fn read_only_commands_work_on_another_users_database() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !is_root || !setpriv {
        eprintln!("skipped: needs root and setpriv to act as another user");
        return;
    }
    let env = Env::new();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    env.write(
        "s.yaml",
        &sweep_text("ro", "  train.seed: {values: [0, 1]}\n"),
    );
    let out = env.cg(&["run", "s.yaml", "--threads-per-job", "1", "--workers", "2"]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::set_permissions(env.path("cg.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(!env.path("cg.db-wal").exists());
    let job = env.store(async |s| s.job_records("ro").await.unwrap()[0].job.id.clone());
    let out_dir = env.path("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let db_before = std::fs::read(env.path("cg.db")).unwrap();
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", CG])
            .args(args)
            .args(["--db", "cg.db"])
            .current_dir(env.dir.path())
            .env_remove("CG_DB")
            .output()
            .unwrap()
    };
    // Nobody can write here: the first command proves the set-up.
    let out = as_nobody(&["db", "migrate"]);
    assert!(!out.status.success(), "nobody could write: {}", text(&out));
    for args in [
        vec!["status"],
        vec!["status", "ro"],
        vec!["logs", job.as_str()],
        vec!["db", "backup", "out/copy.db"],
        vec!["report", "ro", "--out", "out/report"],
    ] {
        let out = as_nobody(&args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        if args[0] == "report" {
            assert!(stderr(&out).contains("read-only"), "{}", text(&out));
        }
    }
    assert!(out_dir.join("copy.db").is_file());
    assert!(out_dir.join("report/report.md").is_file());
    assert_eq!(std::fs::read(env.path("cg.db")).unwrap(), db_before);
    let hv = env.store(async |s| s.sweep("ro").await.unwrap().hypervolume);
    assert!(hv.is_some(), "the owner's `cg run` stored it");
}

/// Class 5: sizes are bounded at validation, before anything is allocated or expanded; the job
/// limit is checked before expansion; a huge timeout is refused by the command line.
#[test]
fn sizes_are_bounded_before_anything_is_allocated() {
    let env = Env::new();
    let base = "dataset: {kind: synthetic, synthetic: {n_train: 32, n_test: 16, side: 8}}\n";
    for (name, body, needle) in [
        (
            "width",
            "model: {width: 4294967296}\n",
            "model.width: must be at most 1024",
        ),
        (
            "depth",
            "model: {depth: 100004}\n",
            "model.depth: must be at most 1202",
        ),
        (
            "classes",
            "model: {num_classes: 4294967296}\n",
            "model.num_classes",
        ),
        (
            "epochs",
            "train: {epochs: 10000000000}\n",
            "train.epochs: must be at most",
        ),
        (
            "batch",
            "train: {batch_size: 4294967296}\n",
            "train.batch_size: must be at most",
        ),
        (
            "hidden",
            "gate: {controller_hidden: 99999999}\n",
            "gate.controller_hidden",
        ),
        (
            "grid",
            "parameters:\n  gate.threshold: {min: 0.0, max: 2.0, grid_points: 4000000000}\n",
            "grid_points: must be at most 10000",
        ),
        (
            "samples",
            "method: random\nn_samples: 4000000000\nparameters:\n  gate.threshold: {min: 0.0, max: 2.0}\n",
            "n_samples: must be at most 1000000",
        ),
        (
            "ints",
            "parameters:\n  train.seed: {min: 0, max: 999999999999, distribution: int_uniform}\n",
            "more than cg's limit of 1000000",
        ),
        (
            "product",
            "parameters:\n  train.seed: {min: 0, max: 9999, distribution: int_uniform}\n  \
             model.width: {min: 1, max: 1000, distribution: int_uniform}\n",
            "more than cg's limit",
        ),
    ] {
        let file = format!("{name}.yaml");
        env.write(&file, &format!("name: {name}\n{base}{body}"));
        for args in [
            vec!["sweep", "plan", file.as_str()],
            vec!["sweep", "submit", file.as_str(), "--yes"],
        ] {
            let out = env.cg(&args);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{name} {args:?}: {}",
                text(&out)
            );
            assert!(stderr(&out).contains(needle), "{name}: {}", text(&out));
        }
    }
    // Past the confirmation limit but within the hard one: refused without --yes, before
    // expansion and before the database is touched.
    env.write(
        "many.yaml",
        &format!(
            "name: many\n{base}parameters:\n  train.seed: {{min: 0, max: 19999, distribution: int_uniform}}\n"
        ),
    );
    for args in [
        vec!["sweep", "plan", "many.yaml"],
        vec!["sweep", "submit", "many.yaml"],
        vec!["run", "many.yaml"],
    ] {
        let out = env.cg(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(stderr(&out).contains("20000 jobs"), "{}", text(&out));
        assert!(stderr(&out).contains("--yes"), "{}", text(&out));
    }
    env.write(
        "one.yaml",
        &sweep_text("one", "  train.seed: {values: [0]}\n"),
    );
    for value in ["18446744073709551615", "0", "99999999999"] {
        for flag in ["--timeout-per-job", "--lease"] {
            let cmd = if flag == "--lease" { "worker" } else { "run" };
            let mut args = vec![cmd];
            if cmd == "run" {
                args.push("one.yaml");
            }
            args.extend([flag, value]);
            let out = env.cg(&args);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
            assert!(!text(&out).contains("panicked"), "{}", text(&out));
        }
    }
    assert!(
        !env.path("cg.db").exists(),
        "a refused command wrote the database"
    );
}

/// Class 6: a run that cannot train is refused, not stored as a result.
#[test]
fn a_run_that_cannot_train_is_refused() {
    let env = Env::new();
    for (name, text_, needle) in [
        (
            "b1",
            "dataset: {kind: synthetic}\ntrain: {batch_size: 1}\n",
            "train.batch_size: must be at least 2",
        ),
        (
            "l1",
            "dataset: {kind: synthetic}\ntrain: {limit_train: 1}\n",
            "train.limit_train: must be at least 2",
        ),
    ] {
        env.write(&format!("{name}.yaml"), text_);
        let out = env.cg(&[
            "train",
            "--config",
            &format!("{name}.yaml"),
            "--out",
            "r.json",
        ]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(stderr(&out).contains(needle), "{}", text(&out));
    }
    // A split of one image passes validation but cannot train: the run fails with the reason.
    env.write(
        "n1.yaml",
        "dataset: {kind: synthetic, synthetic: {n_train: 1, n_test: 4, side: 8}}\n\
         model: {depth: 8, width: 4}\ntrain: {epochs: 1, batch_size: 16}\n",
    );
    let out = env.cg(&["train", "--config", "n1.yaml", "--out", "r.json", "-q"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        stderr(&out).contains("the training split has 1 image(s)"),
        "{}",
        text(&out)
    );
    assert!(!env.path("r.json").exists());
    // The same through the queue: the job fails for good with the reason, no "completed" run.
    env.write(
        "q.yaml",
        "name: q\ndataset: {kind: synthetic, synthetic: {n_train: 1, n_test: 4, side: 8}}\n\
         model: {depth: 8, width: 4}\ntrain: {epochs: 1, batch_size: 16}\n",
    );
    let out = env.cg(&["run", "q.yaml", "--threads-per-job", "1"]);
    assert!(!out.status.success(), "{}", text(&out));
    let records = env.store(async |s| s.job_records("q").await.unwrap());
    assert_eq!(records[0].status, cg_core::JobStatus::Failed);
    assert!(records[0].result.is_none());
    assert!(
        records[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("training split has 1 image"),
        "{records:?}"
    );
}

/// Class 3: `${VAR}` only in data paths and only `CG_*`/`HOME`; errors name the variable, never
/// its value.
#[test]
fn variables_expand_only_in_data_paths_and_never_leak() {
    let env = Env::new();
    std::fs::create_dir(env.path("data")).unwrap();
    let secret = "s3cret-value-42";
    for (name, yaml, variable) in [
        (
            "n",
            "name: \"${AWS_SECRET_ACCESS_KEY}\"\ndataset: {kind: synthetic}\n",
            "${AWS_SECRET_ACCESS_KEY}",
        ),
        (
            "d",
            "name: d\ndescription: \"x ${CG_DATA}\"\ndataset: {kind: synthetic}\n",
            "${CG_DATA}",
        ),
        (
            "m",
            "name: m\ndataset: {kind: synthetic}\ngate: {mode: \"${CG_MODE:-ctrl}\"}\n",
            "${CG_MODE}",
        ),
        (
            "p",
            "name: p\ndataset: {kind: idx, path: \"${PGPASSWORD}/x\"}\n",
            "${PGPASSWORD}",
        ),
        (
            "h",
            "name: h\ndataset: {kind: idx, path: \"${HOMEDIR:-/x}/y\"}\n",
            "${HOMEDIR}",
        ),
        (
            "v",
            "name: v\ndataset: {kind: idx, path: x}\nparameters:\n  dataset.path: {values: [\"${AWS_SECRET_ACCESS_KEY}\"]}\n",
            "${AWS_SECRET_ACCESS_KEY}",
        ),
        (
            "o",
            "name: o\ndataset: {kind: synthetic}\nobjectives: [{metric: \"${USER}\", direction: maximize}]\n",
            "${USER}",
        ),
    ] {
        let file = format!("{name}.yaml");
        env.write(&file, yaml);
        let out = env
            .command(&["sweep", "plan", &file])
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("PGPASSWORD", secret)
            .env("HOMEDIR", secret)
            .env("USER", secret)
            .env("CG_DATA", secret)
            .env("CG_MODE", secret)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out));
        assert!(!text(&out).contains(secret), "{name}: {}", text(&out));
        assert!(text(&out).contains(variable), "{name}: {}", text(&out));
    }
    // In a data path, CG_* and HOME expand.
    env.write(
        "ok.yaml",
        "name: ok\ndataset: {kind: idx, path: \"${CG_DATA}/data\"}\nmodel: {in_channels: 1}\n",
    );
    let out = env
        .command(&["sweep", "plan", "ok.yaml"])
        .env("CG_DATA", env.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// Class 11: a sweep name is an identity, in `cg sweep submit` and `cg run` alike.
#[test]
fn a_different_file_under_an_existing_sweep_name_is_refused() {
    let env = Env::new();
    env.write(
        "a.yaml",
        &sweep_text("same", "  train.seed: {values: [0, 1]}\n"),
    );
    env.write(
        "b.yaml",
        &sweep_text("same", "  gate.threshold: {values: [0.5, 1.0, 1.5]}\n"),
    );
    let out = env.cg(&["sweep", "submit", "a.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    let info_before = env.store(async |s| s.sweep("same").await.unwrap().info);
    for args in [
        vec!["sweep", "submit", "b.yaml"],
        vec!["sweep", "submit", "b.yaml", "--rerun"],
        vec!["run", "b.yaml", "--threads-per-job", "1"],
    ] {
        let out = env.cg(&args);
        assert!(!out.status.success(), "{args:?}: {}", text(&out));
        let msg = stderr(&out);
        for way_out in [
            "already exists",
            "new `name`",
            "cg sweep delete same",
            "--merge",
        ] {
            assert!(msg.contains(way_out), "{args:?}: {msg}");
        }
    }
    let (info, total) = env.store(async |s| {
        let sweep = s.sweep("same").await.unwrap();
        (sweep.info, sweep.counts.total())
    });
    assert_eq!((info, total), (info_before.clone(), 2));
    // The same file again is fine.
    let out = env.cg(&["sweep", "submit", "a.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    // Merging is explicit; deleting frees the name.
    let out = env.cg(&["sweep", "submit", "b.yaml", "--merge"]);
    assert!(out.status.success(), "{}", text(&out));
    let total = env.store(async |s| s.sweep("same").await.unwrap().counts.total());
    // threshold 1.0 (the default) is a's seed-0 job: one job, held once.
    assert_eq!(total, 4);
    let out = env.cg(&["sweep", "delete", "same"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = env.cg(&["sweep", "submit", "b.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// Class 12: `name: yes` gives one error; names starting with `-` are refused.
#[test]
fn sweep_names_get_one_clear_error() {
    let env = Env::new();
    for (value, needle) in [
        ("yes", "expected a string, found a boolean"),
        ("12", "expected a string"),
        ("\"-rf\"", "is not a usable sweep name"),
        ("\"--db\"", "is not a usable sweep name"),
        ("\"../x\"", "is not a usable sweep name"),
        ("\".x\"", "is not a usable sweep name"),
    ] {
        env.write(
            "n.yaml",
            &format!("name: {value}\ndataset: {{kind: synthetic}}\n"),
        );
        let out = env.cg(&["sweep", "plan", "n.yaml"]);
        assert_eq!(out.status.code(), Some(2), "{value}: {}", text(&out));
        let msg = stderr(&out);
        assert!(msg.contains(needle), "{value}: {msg}");
        assert!(!msg.contains("missing"), "{value}: {msg}");
        assert_eq!(msg.matches("n.yaml:").count(), 1, "{value}: {msg}");
    }
}

/// Class 12: a running job whose lease expired shows as such in `cg status`.
#[test]
fn expired_leases_show_in_status() {
    let env = Env::new();
    env.write(
        "s.yaml",
        &sweep_text("lease", "  train.seed: {values: [0, 1]}\n"),
    );
    let out = env.cg(&["sweep", "submit", "s.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    let id = env.store(async |s| {
        let claim = s
            .claim("dead-host:1:0", Duration::from_millis(1))
            .await
            .unwrap()
            .unwrap();
        claim.job.id
    });
    std::thread::sleep(Duration::from_millis(20));
    let out = env.cg(&["status", "lease"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&id[..10]))
        .unwrap_or_default();
    assert!(line.contains("running (lease expired)"), "{stdout}");
    assert!(
        stdout.contains("1 running job(s) have an expired lease"),
        "{stdout}"
    );
    let out = env.cg(&["status"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("expired lease"),
        "{}",
        text(&out)
    );
}

/// Class 12: errors say what to run (`cg db migrate`), and print each cause once.
#[test]
fn errors_name_commands_and_print_each_cause_once() {
    let env = Env::new();
    // A database without the cg schema.
    std::fs::write(env.path("empty.db"), b"").unwrap();
    std::fs::create_dir(env.path("dir.db")).unwrap();
    for args in [
        vec!["status", "--db", "empty.db"],
        vec!["worker", "--db", "empty.db"],
        vec!["report", "x", "--db", "empty.db"],
        vec!["status", "--db", "dir.db"],
        vec!["sweep", "submit", "nope.yaml"],
        vec!["sweep", "delete", "x", "--db", "dir.db"],
    ] {
        let out = env.cg(&args);
        assert!(!out.status.success(), "{args:?}");
        let msg = stderr(&out);
        assert!(!msg.contains("Store::"), "{args:?}: {msg}");
        let segments: Vec<&str> = msg.trim().split(": ").filter(|s| s.len() > 12).collect();
        for (i, s) in segments.iter().enumerate() {
            assert!(
                !segments[i + 1..].contains(s),
                "{args:?}: `{s}` repeated in {msg}"
            );
        }
        if args[2..].contains(&"empty.db") {
            assert!(msg.contains("cg db migrate"), "{args:?}: {msg}");
        }
    }
}

/// Class 12: every command the experiments' comments tell users to run exists.
#[test]
fn experiment_comments_name_real_commands() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments");
    let mut checked = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let Some(comment) = line.trim_start().strip_prefix('#') else {
                continue;
            };
            let words: Vec<&str> = comment.split_whitespace().collect();
            let Some(at) = words.iter().position(|w| *w == "cg") else {
                continue;
            };
            let sub: Vec<&str> = words[at + 1..]
                .iter()
                .copied()
                .take_while(|w| !w.starts_with('-') && !w.contains('/') && !w.contains('.'))
                .collect();
            let out = Command::new(CG).args(&sub).arg("--help").output().unwrap();
            assert!(
                out.status.success(),
                "{}: `cg {}` is not a command: {}",
                path.display(),
                sub.join(" "),
                text(&out)
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 4,
        "only {checked} commands found in the comments"
    );
}

/// Class 7: data files are read only if they are regular files under a cap: a link to
/// `/dev/zero` or an oversized file named like an image or a CIFAR batch fails at once with the
/// reason.
#[test]
fn data_files_are_capped() {
    let env = Env::new();
    let folder = env.path("folder");
    for split in ["train", "test"] {
        for class in ["a", "b"] {
            std::fs::create_dir_all(folder.join(split).join(class)).unwrap();
        }
    }
    std::os::unix::fs::symlink("/dev/zero", folder.join("train/a/zero.jpg")).unwrap();
    env.write(
        "folder.yaml",
        "dataset: {kind: image-folder, path: folder}\nmodel: {depth: 8, width: 4}\ntrain: {epochs: 1}\n",
    );
    let cifar = env.path("cifar");
    std::fs::create_dir(&cifar).unwrap();
    for i in 1..=5 {
        std::os::unix::fs::symlink("/dev/zero", cifar.join(format!("data_batch_{i}.bin"))).unwrap();
    }
    std::os::unix::fs::symlink("/dev/zero", cifar.join("test_batch.bin")).unwrap();
    env.write(
        "cifar.yaml",
        "dataset: {kind: cifar-bin, path: cifar}\nmodel: {depth: 8, width: 4}\ntrain: {epochs: 1}\n",
    );
    for (file, needle) in [
        ("folder.yaml", "zero.jpg: not a regular file"),
        ("cifar.yaml", "data_batch_1.bin: not a regular file"),
    ] {
        let out = env.cg(&["train", "--config", file, "--out", "r.json", "-q"]);
        assert!(!out.status.success(), "{file}");
        assert!(stderr(&out).contains(needle), "{file}: {}", text(&out));
    }
    // A sparse 100 MB "image": refused by its size, not read.
    std::fs::remove_file(folder.join("train/a/zero.jpg")).unwrap();
    let big = std::fs::File::create(folder.join("train/a/big.png")).unwrap();
    big.set_len(100 << 20).unwrap();
    let out = env.cg(&["train", "--config", "folder.yaml", "--out", "r.json", "-q"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("big.png: 104857600 bytes, more than the 67108864"),
        "{}",
        text(&out)
    );
}

// ===== Issue 18: report folders, sizes and files, closed output =====

/// Runs `cmd` to its end, or kills it after two minutes and fails: a command that blocks (on a
/// FIFO, on `/dev/zero`) or runs away fails the test instead of hanging it.
fn finished(mut cmd: Command, what: &str) -> Output {
    use std::process::Stdio;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (done, waited) = std::sync::mpsc::channel();
    let guard = std::thread::spawn(move || {
        if waited.recv_timeout(Duration::from_secs(120)).is_err() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    guard.join().unwrap();
    assert!(
        out.status.code().is_some(),
        "{what} did not finish (killed): {}",
        text(&out)
    );
    out
}

/// One finished job with its runner's log: the sweep `logs`, and the job's id.
fn job_with_a_log(env: &Env) -> (String, PathBuf) {
    env.write(
        "l.yaml",
        &sweep_text("logs", "  train.seed: {values: [0]}\n"),
    );
    let out = env.cg(&["run", "l.yaml", "--threads-per-job", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let id = env.store(async |s| s.job_records("logs").await.unwrap()[0].job.id.clone());
    let log = env.path("runs").join(&id).join("attempt-1.log");
    assert!(log.is_file(), "{} is missing", log.display());
    (id, log)
}

/// Issue 18, defect 4: `cg report` refuses a report folder that is a symbolic link, naming it, and
/// writes nothing behind it.
#[test]
fn a_report_folder_that_is_a_link_is_refused() {
    let env = Env::new();
    env.write(
        "s.yaml",
        &sweep_text("linked", "  train.seed: {values: [0]}\n"),
    );
    let out = env.cg(&["sweep", "submit", "s.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    let elsewhere = env.path("elsewhere");
    std::fs::create_dir_all(env.path("reports")).unwrap();
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.path("reports/linked")).unwrap();
    for args in [
        vec!["report", "linked"],
        vec!["report", "linked", "--out", "reports/linked/"],
    ] {
        let out = env.cg(&args);
        assert!(!out.status.success(), "{args:?}: {}", text(&out));
        assert!(
            stderr(&out).contains("reports/linked is a symbolic link"),
            "{args:?}: {}",
            text(&out)
        );
    }
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

/// Issue 18, defect 10: every size set on the command line is bounded by clap before any work
/// starts (exit 2, the flag named, nothing written).
#[test]
fn command_line_sizes_are_bounded() {
    let env = Env::new();
    env.write(
        "one.yaml",
        &sweep_text("one", "  train.seed: {values: [0]}\n"),
    );
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let too_many = (cpus + 1).to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", "one.yaml", "--workers", "0"], "--workers"),
        (vec!["run", "one.yaml", "--workers", "100000"], "--workers"),
        (
            vec!["run", "one.yaml", "--threads-per-job", "0"],
            "--threads-per-job",
        ),
        (
            vec!["run", "one.yaml", "--threads-per-job", "4096"],
            "--threads-per-job",
        ),
        (
            vec!["run", "one.yaml", "--threads-per-job", &too_many],
            "--threads-per-job",
        ),
        (vec!["worker", "--jobs-per-gpu", "0"], "--jobs-per-gpu"),
        (vec!["daemon", "--jobs-per-gpu", "100000"], "--jobs-per-gpu"),
        (
            vec!["worker", "--report-every", "99999999999"],
            "--report-every",
        ),
        (
            vec![
                "train",
                "--config",
                "c.yaml",
                "--out",
                "r.json",
                "--threads",
                "4096",
            ],
            "--threads",
        ),
        (vec!["bench", "--threads", "4096"], "--threads"),
        (vec!["bench", "--iters", "0"], "--iters"),
        (vec!["bench", "--iters", "99999999999"], "--iters"),
        (vec!["bench", "--batch", "0"], "--batch"),
        (vec!["bench", "--batch", "128,99999999999"], "--batch"),
        (
            vec!["bench", "--sparse-models", "ctrl,cir"],
            "--sparse-models",
        ),
        (vec!["bench-workers", "--packing", "1,0"], "--packing"),
        (vec!["bench-workers", "--packing", "100000"], "--packing"),
        (vec!["bench-workers", "--jobs", "99999999999"], "--jobs"),
        (vec!["bench-workers", "--steps", "0"], "--steps"),
        (
            vec!["bench-workers", "--threads-per-job", "4096"],
            "--threads-per-job",
        ),
    ];
    for (args, flag) in cases {
        let out = finished(env.command(&args), &format!("{args:?}"));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(stderr(&out).contains(flag), "{args:?}: {}", text(&out));
        assert!(!text(&out).contains("panicked"), "{}", text(&out));
    }
    // Within the bounds but not a usable benchmark: refused by cg-core's bounds before measuring.
    let out = finished(
        env.command(&["bench", "--depth", "100004", "--threads", "1"]),
        "bench --depth",
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(stderr(&out).contains("model.depth"), "{}", text(&out));
    assert!(
        !env.path("cg.db").exists(),
        "a refused command wrote the database"
    );
    assert!(!env.path("r.json").exists());
}

/// Issue 18, defect 10: a synthetic data set's classes are bounded by its one-byte labels and
/// counted in its memory bound (one prototype image per class).
#[test]
fn synthetic_classes_are_bounded_and_counted() {
    let env = Env::new();
    for (name, synthetic, needle) in [
        (
            "many",
            "{classes: 100000, n_train: 32, n_test: 16, side: 8}",
            "dataset.synthetic.classes: must be at most 256",
        ),
        (
            "labels",
            "{classes: 257, n_train: 32, n_test: 16, side: 8}",
            "dataset.synthetic.classes: must be at most 256",
        ),
        (
            "prototypes",
            "{classes: 256, n_train: 2, n_test: 2, side: 1024, channels: 64}",
            "(n_train + n_test + classes) × channels × side²",
        ),
    ] {
        env.write(
            &format!("{name}.yaml"),
            &format!(
                "name: {name}\ndataset: {{kind: synthetic, synthetic: {synthetic}}}\n\
                 model: {{depth: 8, width: 4, num_classes: 100000}}\ntrain: {{epochs: 1}}\n"
            ),
        );
        let out = env.cg(&["sweep", "plan", &format!("{name}.yaml")]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out));
        assert!(stderr(&out).contains(needle), "{name}: {}", text(&out));
    }
}

/// Issue 18, defect 10: `cg logs` shows the end of a log, reading no more than a bounded tail,
/// and refuses what is not a regular file (a link to `/dev/zero`, a FIFO) without blocking.
#[test]
fn logs_are_read_with_a_cap() {
    let env = Env::new();
    let (id, log) = job_with_a_log(&env);
    // A sparse 3 GB log whose last line is the one that matters.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(&log).unwrap();
        f.set_len(3 << 30).unwrap();
        f.seek(SeekFrom::End(0)).unwrap();
        f.write_all(b"\nthe last line\n").unwrap();
    }
    let out = finished(env.command(&["logs", &id]), "logs of a 3 GB file");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("the last line"),
        "{}",
        &stdout[stdout.len().saturating_sub(300)..]
    );
    assert!(stdout.contains("are not shown"), "the cut is said");
    assert!(
        out.stdout.len() < 1 << 20,
        "{} bytes printed",
        out.stdout.len()
    );
    // Not regular files: refused with the reason; the database's tail is shown instead.
    std::fs::remove_file(&log).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &log).unwrap();
    let out = finished(env.command(&["logs", &id]), "logs of /dev/zero");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        text(&out)
    );
    std::fs::remove_file(&log).unwrap();
    let status = Command::new("mkfifo").arg(&log).status().unwrap();
    assert!(status.success());
    let out = finished(env.command(&["logs", &id]), "logs of a FIFO");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        text(&out)
    );
}

/// Issue 18, defect 10: `--preface` is read under a cap (64 KiB), from a regular file only.
#[test]
fn the_preface_is_read_with_a_cap() {
    let env = Env::new();
    env.write(
        "s.yaml",
        &sweep_text("pre", "  train.seed: {values: [0]}\n"),
    );
    let out = env.cg(&["sweep", "submit", "s.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    env.write("big.md", &"words and more words\n\n".repeat(4000));
    std::os::unix::fs::symlink("/dev/zero", env.path("zero.md")).unwrap();
    let status = Command::new("mkfifo")
        .arg(env.path("fifo.md"))
        .status()
        .unwrap();
    assert!(status.success());
    for (file, needle) in [
        (
            "big.md",
            "the preface big.md has 88000 bytes, more than the 65536",
        ),
        ("zero.md", "zero.md is not a regular file"),
        ("fifo.md", "fifo.md is not a regular file"),
    ] {
        let out = finished(
            env.command(&["report", "pre", "--preface", file]),
            &format!("--preface {file}"),
        );
        assert!(!out.status.success(), "{file}: {}", text(&out));
        assert!(stderr(&out).contains(needle), "{file}: {}", text(&out));
    }
    assert!(!env.path("reports/pre").exists(), "nothing was written");
    env.write("small.md", "A reading of the front.\n");
    let out = env.cg(&["report", "pre", "--preface", "small.md"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// Issue 18, defect 12: a command whose reader has gone (`cg status | head -1`) ends quietly:
/// exit 0, no panic message. The reading end of the pipe is closed before `cg` starts, so the
/// very first line it prints fails.
#[test]
fn a_closed_stdout_ends_commands_quietly() {
    let env = Env::new();
    let (id, _) = job_with_a_log(&env);
    for args in [
        vec!["status"],
        vec!["status", "logs"],
        vec!["logs", id.as_str()],
        vec!["sweep", "plan", "l.yaml"],
        vec!["report", "logs"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = env
            .command(&args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}

/// Issue 18, defect 10: run and sweep files given on the command line are read under the YAML
/// size limit, from regular files only: a link to `/dev/zero` or a FIFO is refused at once.
#[test]
fn sweep_files_are_read_with_a_cap() {
    let env = Env::new();
    std::os::unix::fs::symlink("/dev/zero", env.path("zero.yaml")).unwrap();
    let status = Command::new("mkfifo")
        .arg(env.path("fifo.yaml"))
        .status()
        .unwrap();
    assert!(status.success());
    let big = std::fs::File::create(env.path("big.yaml")).unwrap();
    big.set_len(100 << 20).unwrap();
    for (file, needle) in [
        ("zero.yaml", "not a regular file"),
        ("fifo.yaml", "not a regular file"),
        ("big.yaml", "file is 104857600 bytes"),
    ] {
        for args in [
            vec!["sweep", "plan", file],
            vec!["run", file, "--threads-per-job", "1"],
            vec!["train", "--config", file, "--out", "r.json", "-q"],
        ] {
            let out = finished(env.command(&args), &format!("{args:?}"));
            assert!(!out.status.success(), "{args:?}: {}", text(&out));
            assert!(stderr(&out).contains(needle), "{args:?}: {}", text(&out));
        }
    }
    assert!(!env.path("cg.db").exists());
}
