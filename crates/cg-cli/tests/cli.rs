//! The `cg` binary end to end: run files in, result JSON out; reports from a real SQLite store.

use std::path::Path;
use std::process::{Command, Output};

use cg_core::{BlockGateStats, EpochRecord, Provenance, RunResult};

fn cg(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cg"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("cg runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const TINY: &str = "\
dataset: {kind: synthetic, synthetic: {n_train: 32, n_test: 16, side: 8, channels: 3, classes: 4}}
model: {depth: 14, width: 4}
gate: {mode: ctrl}
train: {epochs: 2, batch_size: 16}
";

#[test]
fn train_writes_a_complete_result_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("run.yaml"), TINY).unwrap();
    let out = cg(
        &[
            "train",
            "--config",
            "run.yaml",
            "--set",
            "gate.threshold=0.7",
            "--out",
            "out/result.json",
            "-q",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/result.json")).unwrap())
            .unwrap();
    for key in [
        "config",
        "provenance",
        "history",
        "test_acc_final",
        "test_acc_peak",
        "peak_epoch",
        "macs_full",
        "macs_executed_nominal",
        "macs_executed_actual",
        "savings_nominal",
        "savings_actual",
        "savings_measured",
        "train_img_per_s",
        "infer_img_per_s",
    ] {
        assert!(r.get(key).is_some(), "RESULT.json lacks `{key}`");
    }
    assert!(r["macs_full"].is_u64());
    assert_eq!(r["config"]["gate"]["threshold"], 0.7);
    assert_eq!(r["history"].as_array().unwrap().len(), 2);
    let epoch = &r["history"][0];
    for key in [
        "epoch",
        "train_loss",
        "test_acc",
        "savings_nominal",
        "gates",
    ] {
        assert!(epoch.get(key).is_some(), "history lacks `{key}`");
    }
    assert!(
        epoch["gates"][0].get("gate_open_rate").is_some()
            && epoch["gates"][0].get("mean_cir").is_some()
    );
    assert!(
        r["savings_measured"].is_number(),
        "ctrl mode measures real skipping"
    );
    assert_eq!(r["provenance"]["burn_version"], "0.21.0");
    assert!(
        r["provenance"]["device"]
            .as_str()
            .unwrap()
            .starts_with("cpu")
    );
}

#[test]
fn bad_run_files_exit_2_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("run.yaml"),
        format!("{TINY}loss: {{flops_wieght: 1}}\n"),
    )
    .unwrap();
    let out = cg(
        &["train", "--config", "run.yaml", "--out", "r.json"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("run.yaml:5:")
            && msg.contains("loss.flops_wieght")
            && msg.contains("flops_weight"),
        "{msg}"
    );
    assert!(!dir.path().join("r.json").exists());

    let out = cg(
        &[
            "train",
            "--config",
            "run.yaml",
            "--set",
            "gate.tau_end=0",
            "--out",
            "r.json",
        ],
        dir.path(),
    );
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn sweep_plan_lists_the_quickstart_jobs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = cg(&["sweep", "plan", "experiments/quickstart.yaml"], &root);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("4 job(s)"),
        "{}",
        text(&out)
    );
}

fn fake_result(config: &cg_core::RunConfig, acc: f64, savings: f64) -> RunResult {
    let gates = vec![BlockGateStats {
        block_idx: 0,
        gate_open_rate: 1.0 - savings,
        mean_cir: 0.9,
        routing_share: None,
        class_open_rates: None,
    }];
    RunResult {
        config: config.clone(),
        provenance: Provenance::default(),
        history: vec![EpochRecord {
            epoch: 1,
            train_loss: 1.0,
            train_acc: acc,
            test_acc: acc,
            val_acc: None,
            savings_nominal: savings,
            savings_actual: savings - 0.1,
            lr: 0.1,
            tau: 1.0,
            flops_weight: 0.5,
            wall_secs: 1.0,
            gates: gates.clone(),
        }],
        test_acc_final: acc,
        test_acc_peak: acc,
        peak_epoch: 1,
        val_acc_final: None,
        val_acc_peak: None,
        train_images: None,
        val_images: None,
        macs_full: 1000,
        macs_executed_nominal: 1000.0 * (1.0 - savings),
        macs_executed_actual: 1000.0 * (1.1 - savings),
        savings_nominal: savings,
        savings_actual: savings - 0.1,
        savings_measured: None,
        predictor_agreement: None,
        gates,
        train_img_per_s: 10.0,
        infer_img_per_s: 20.0,
        wall_secs: 1.0,
    }
}

#[test]
fn report_reads_the_store_and_records_the_hypervolume() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cg.db");
    let sweep_yaml =
        format!("name: tiny\n{TINY}parameters:\n  gate.threshold: {{values: [0.5, 1.0, 1.5]}}\n");
    let sweep = cg_sweep::load_sweep_str(
        &sweep_yaml,
        "tiny.yaml",
        dir.path(),
        &cg_sweep::LoadOptions::default(),
    )
    .expect("valid sweep");
    let jobs = sweep.expand();
    assert_eq!(jobs.len(), 3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = cg_store::Store::open(db.as_path()).await.unwrap();
        store.migrate().await.unwrap();
        store
            .upsert_sweep("tiny", &sweep_yaml, &sweep.info())
            .await
            .unwrap();
        store.submit_jobs("tiny", &jobs, false).await.unwrap();
        for (acc, savings) in [(0.9, 0.1), (0.8, 0.3)] {
            let claim = store
                .claim("test", std::time::Duration::from_secs(60))
                .await
                .unwrap()
                .expect("a job");
            store
                .complete(
                    &claim.job.id,
                    claim.attempt,
                    "test",
                    &fake_result(&claim.job.config, acc, savings),
                )
                .await
                .unwrap();
        }
        store.close().await;
    });
    let out = cg(
        &[
            "report",
            "tiny",
            "--db",
            db.to_str().unwrap(),
            "--out",
            "rep",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    for f in [
        "report.md",
        "report.html",
        "results.csv",
        "front.csv",
        "pareto.png",
        "pareto.svg",
    ] {
        assert!(dir.path().join("rep").join(f).is_file(), "missing {f}");
    }
    let md = std::fs::read_to_string(dir.path().join("rep/report.md")).unwrap();
    assert!(md.contains("tiny"), "{md}");
    let hv = rt.block_on(async {
        let store = cg_store::Store::open_existing(db.as_path()).await.unwrap();
        store.sweep("tiny").await.unwrap().hypervolume
    });
    // Front {(0.9, 0.1), (0.8, 0.3)} against (0, 0): 0.9·0.1 + 0.8·(0.3 − 0.1) = 0.25.
    let hv = hv.expect("hypervolume stored");
    assert!((hv - 0.25).abs() < 1e-9, "hypervolume {hv}");

    let out = cg(
        &["report", "nope", "--db", db.to_str().unwrap()],
        dir.path(),
    );
    assert!(!out.status.success() && text(&out).contains("nope"));
}

/// This test binary is built without the `cuda` and `libtorch` features: asking for GPUs is
/// refused up front, before anything is submitted, with the way out in the message.
#[cfg(not(any(feature = "cuda", feature = "libtorch")))]
#[test]
fn gpus_on_a_cpu_build_are_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let sweep = format!("name: g\n{TINY}");
    std::fs::write(dir.path().join("g.yaml"), sweep).unwrap();
    let out = cg(
        &["run", "g.yaml", "--gpus", "0", "--db", "g.db"],
        dir.path(),
    );
    assert!(!out.status.success(), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("built without CUDA") && msg.contains("--features cuda"),
        "{msg}"
    );
    assert!(
        !dir.path().join("g.db").exists(),
        "nothing is submitted: {msg}"
    );
    let out = cg(&["worker", "--gpus", "x", "--db", "g.db"], dir.path());
    assert!(
        text(&out).contains("--gpus takes auto, none or indices"),
        "{}",
        text(&out)
    );
    let out = cg(&["device-check", "--device", "cuda:0"], dir.path());
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("no CUDA support"), "{}", text(&out));
}

#[test]
fn device_check_computes_on_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let out = cg(&["device-check"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("ok: cpu"),
        "{}",
        text(&out)
    );
}

#[test]
fn bench_workers_runs_every_job_at_each_packing() {
    let dir = tempfile::tempdir().unwrap();
    let out = cg(
        &[
            "bench-workers",
            "--jobs",
            "2",
            "--steps",
            "1",
            "--packing",
            "1,2",
            "--width",
            "4",
            "--keep",
            "kept",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = stdout.lines().filter(|l| l.contains("2/2")).collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(
        stdout.contains("is ") && stdout.contains("x the speed of packing 1"),
        "{stdout}"
    );
    let kept: Vec<_> = std::fs::read_dir(dir.path().join("kept/packing-2"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].join("cg.db").is_file(), "{kept:?}");
    assert!(kept[0].join("runs").is_dir(), "{kept:?}");
}

/// `--backend` is checked before anything runs; a build without LibTorch says how to get it.
#[cfg(not(feature = "libtorch"))]
#[test]
fn libtorch_on_a_build_without_it_names_the_set_up() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("run.yaml"), TINY).unwrap();
    let out = cg(
        &[
            "train",
            "--config",
            "run.yaml",
            "--out",
            "r.json",
            "--backend",
            "libtorch",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(
        msg.contains("no LibTorch support") && msg.contains("scripts/libtorch.sh"),
        "{msg}"
    );
    let out = cg(&["device-check", "--backend", "tensorflow"], dir.path());
    assert!(!out.status.success());
    assert!(text(&out).contains("`flex`, `cubecl`, `libtorch` or `auto`"));
    let out = cg(
        &["bench", "--backend", "cubecl", "--device", "cpu"],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("CUDA devices only"), "{}", text(&out));
}

/// The smoke test of a LibTorch build: `auto` picks libtorch, the device check names the libtorch
/// the binary loaded (through its run path: no LD_LIBRARY_PATH), and a result records the backend.
#[cfg(feature = "libtorch")]
#[test]
fn a_libtorch_build_trains_on_libtorch_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = cg(&["device-check"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        stdout.starts_with("ok: cpu (libtorch 2.") && stdout.contains("torch/lib"),
        "{stdout}"
    );
    std::fs::write(dir.path().join("run.yaml"), TINY).unwrap();
    for backend in ["libtorch", "flex"] {
        let out = cg(
            &[
                "train",
                "--config",
                "run.yaml",
                "--out",
                "r.json",
                "--backend",
                backend,
                "--threads",
                "1",
                "-q",
            ],
            dir.path(),
        );
        assert!(out.status.success(), "{}", text(&out));
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("r.json")).unwrap()).unwrap();
        assert_eq!(r["provenance"]["backend"], backend);
        let device = r["provenance"]["device"].as_str().unwrap();
        assert!(device.contains(backend), "{device}");
        assert!(
            device.contains("1 threads"),
            "--threads bounds the backend: {device}"
        );
    }
}

/// Issue 22, item 8: the plan of a `method: mo-asha` sweep describes its search (space, rungs,
/// budget, first draws) instead of listing random draws as if they were its jobs.
#[test]
fn sweep_plan_describes_a_mo_asha_search() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = cg(
        &[
            "sweep",
            "plan",
            "experiments/fashion-mnist.yaml",
            "--no-data-check",
        ],
        &root,
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "sweep `fashion-mnist`: mo-asha search of 27 configurations (sampler nsga2, seed 0)",
        "space (27 points):",
        "  gate.threshold     one of 1.0, 1.2, 1.4",
        "  loss.flops_weight  one of 0.25, 0.5, 1.0",
        "  loss.flops_target  one of 0, 0.5, 0.7",
        "rungs (eta 3): 1 epoch (up to 27 configurations), 3 epochs (up to 9), 9 epochs (up to 3)",
        "budget: at most 63 epochs if every rung fills; the grid of all 27 points to 9 epochs \
         would take 243",
        "first draws (9 of the 9 drawn before any result; each trains 1 epoch at the first rung):",
        "id          gate.threshold  loss.flops_weight  loss.flops_target",
        "baseline (the whole schedule, beside the search):",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line:?} in\n{stdout}");
    }
    assert!(!stdout.contains("job(s)"), "{stdout}");
}

/// A tiny search with continuous and integer axes, drawn by `sampler: random`.
const TINY_SEARCH: &str = "\
name: tiny-search
method: mo-asha
n_samples: 6
sampler: random
seed: 7
fidelity: {min_epochs: 2, max_epochs: 4, eta: 2}
reference_point: [0.1, 0.0]
dataset: {kind: synthetic}
parameters:
  train.lr: {min: 0.001, max: 0.1, distribution: log_uniform_values}
  model.width: {min: 4, max: 8}
  gate.mode: {values: [ctrl, cir]}
";

/// The draws that `cg sweep plan` lists are the search's first draws, as the jobs of its first
/// rung (the same ids the daemon submits).
#[test]
fn sweep_plan_lists_the_searchs_first_draws() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.yaml"), TINY_SEARCH).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (file, cwd) in [
        ("tiny.yaml", dir.path()),
        ("experiments/fashion-mnist.yaml", root.as_path()),
    ] {
        let out = cg(&["sweep", "plan", file, "--no-data-check"], cwd);
        assert!(out.status.success(), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let listed: Vec<&str> = stdout
            .lines()
            .skip_while(|l| !l.starts_with("first draws"))
            .skip(2)
            .take_while(|l| !l.starts_with("baseline"))
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        let sweep =
            cg_sweep::load_sweep(&cwd.join(file), &cg_sweep::LoadOptions::no_data_check()).unwrap();
        let spec = cg_daemon::search_spec(&sweep).unwrap();
        let rungs = spec.settings.fidelity.rungs();
        let search = cg_search::Search::new(spec);
        let drawn: Vec<String> = search
            .decisions()
            .iter()
            .filter(|d| matches!(d.action, cg_search::Action::Draw { .. }))
            .take(listed.len())
            .map(|d| {
                let job = sweep.job_at(search.point(d.config).unwrap(), Some(rungs[0]));
                job.unwrap().id[..cg_sweep::SHORT_ID_LEN].to_string()
            })
            .collect();
        assert!(listed.len() >= 5, "{stdout}");
        assert_eq!(listed, drawn, "{stdout}");
    }
    let out = cg(&["sweep", "plan", "tiny.yaml"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "sweep `tiny-search`: mo-asha search of 6 configurations (sampler random, seed 7)",
        "space (continuous):",
        "  train.lr     log-uniform in [0.001, 0.1]",
        "  model.width  an integer in 4..=8",
        "  gate.mode    one of ctrl, cir",
        "rungs (eta 2): 2 epochs (up to 6 configurations), 4 epochs (up to 3)",
        "budget: at most 18 epochs if every rung fills; 6 configurations to 4 epochs each would \
         take 24",
        "first draws (6 of the 6 drawn before any result; each trains 2 epochs at the first rung):",
        "id          train.lr    model.width  gate.mode",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line:?} in\n{stdout}");
    }
}
