//! Validation seen through the `cg` binary (issue 18): backend and device names in any case, with
//! an error that names the backends; the same-name refusal pointing at the file and the line of
//! its `name:` key, on SQLite and (when `CG_TEST_PG_URL` is set) PostgreSQL.

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::text;
use sqlx::Connection;

const CG: &str = env!("CARGO_BIN_EXE_cg");

fn cg(dir: &Path, args: &[&str]) -> Output {
    Command::new(CG)
        .args(args)
        .current_dir(dir)
        .env_remove("CG_DB")
        .env_remove("CG_DATA")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Backend and device names are taken in any case; an unknown backend is named as a backend,
/// with the valid ones, never as a device.
#[test]
fn backend_and_device_names_are_taken_in_any_case() {
    let dir = tempfile::tempdir().unwrap();
    for (backend, device) in [("FLEX", "CPU"), ("Flex", "cpu"), ("flex", "Cpu")] {
        let out = cg(
            dir.path(),
            &["device-check", "--backend", backend, "--device", device],
        );
        assert!(out.status.success(), "{backend} {device}: {}", text(&out));
    }
    for backend in ["torch", "LIBTORCHX", "cuda"] {
        let out = cg(dir.path(), &["device-check", "--backend", backend]);
        assert!(!out.status.success(), "{backend}: {}", text(&out));
        let msg = stderr(&out);
        assert!(
            msg.contains(&format!("unknown backend `{backend}`")),
            "{backend}: {msg}"
        );
        for name in ["flex", "cubecl", "libtorch", "auto"] {
            assert!(msg.contains(&format!("`{name}`")), "{backend}: {msg}");
        }
        assert!(!msg.contains("device"), "{backend}: {msg}");
    }
    let out = cg(dir.path(), &["device-check", "--device", "tpu"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("device tpu"), "{}", text(&out));
}

/// A tiny sweep whose `name:` (when given) is on line 3.
fn sweep_file(name: Option<&str>, threshold: &str) -> String {
    let name = name.map_or("# no name: the file's stem\n".to_string(), |n| {
        format!("name: {n}\n")
    });
    format!(
        "# a sweep\n\
         # with comments first\n\
         {name}\
         dataset: {{kind: synthetic, synthetic: {{n_train: 32, n_test: 16, side: 8, channels: 3}}}}\n\
         parameters:\n  gate.threshold: {{values: [{threshold}]}}\n"
    )
}

/// The same-name refusal of `cg sweep submit` and `cg run` names the file and the line of its
/// `name:` key, or says the name is the file's stem.
fn check_same_name_refusal(dir: &Path, db: &str) {
    std::fs::write(dir.join("a.yaml"), sweep_file(Some("same"), "0.5, 1.5")).unwrap();
    std::fs::write(dir.join("b.yaml"), sweep_file(Some("same"), "0.5, 1.9")).unwrap();
    std::fs::write(dir.join("same.yaml"), sweep_file(None, "0.7")).unwrap();
    let out = cg(dir, &["sweep", "submit", "a.yaml", "--db", db]);
    assert!(out.status.success(), "{}", text(&out));
    for args in [
        vec!["sweep", "submit", "b.yaml", "--db", db],
        vec!["run", "b.yaml", "--db", db, "--threads-per-job", "1"],
    ] {
        let out = cg(dir, &args);
        assert!(!out.status.success(), "{args:?}: {}", text(&out));
        let msg = stderr(&out);
        assert!(
            msg.contains("b.yaml:3:7: name: a sweep named `same` already exists"),
            "{args:?}: {msg}"
        );
        assert!(msg.contains("--merge"), "{args:?}: {msg}");
    }
    let out = cg(dir, &["sweep", "submit", "same.yaml", "--db", db]);
    assert!(!out.status.success(), "{}", text(&out));
    let msg = stderr(&out);
    assert!(
        msg.contains(
            "same.yaml: the name `same` comes from the file name (no `name:` key): a sweep \
             named `same` already exists"
        ),
        "{msg}"
    );
}

#[test]
fn the_same_name_refusal_points_at_the_name_line_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    check_same_name_refusal(dir.path(), "cg.db");
}

#[test]
fn the_same_name_refusal_points_at_the_name_line_on_postgres() {
    let Some(base_url) = std::env::var("CG_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: set CG_TEST_PG_URL (see .ci/postgres.sh) to run on PostgreSQL");
        return;
    };
    let schema = format!(
        "cg_validate_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let exec = |sql: String| {
        rt.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&base_url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        })
    };
    exec(format!("CREATE SCHEMA {schema}"));
    let sep = if base_url.contains('?') { '&' } else { '?' };
    let url = format!("{base_url}{sep}options[search_path]={schema}");
    let dir = tempfile::tempdir().unwrap();
    let result = std::panic::catch_unwind(|| check_same_name_refusal(dir.path(), &url));
    exec(format!("DROP SCHEMA {schema} CASCADE"));
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
