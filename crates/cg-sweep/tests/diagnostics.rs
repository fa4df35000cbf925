//! Snapshots of the diagnostics for each broken file in `tests/broken/`: one `check` per file, the
//! rendered lines as the user sees them. Add a file there and run `INSTA_UPDATE=always cargo test` (or
//! `cargo insta review`) to record its snapshot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cg_sweep::{LoadOptions, load_run_file_with, load_sweep};

/// Loads `path` as a sweep (and, when asked, as a run file) and renders what comes out.
fn check(path: &Path, as_run_file: bool) -> String {
    // A fixed environment: `${CG_DATA}` unset, nothing else defined.
    let options = LoadOptions {
        no_data_check: false,
        env: Some(BTreeMap::new()),
    };
    let mut out = match load_sweep(path, &options) {
        Ok(sweep) => format!("ok: {} jobs\n", sweep.count()),
        Err(diagnostics) => format!("{diagnostics}\n"),
    };
    if as_run_file {
        out.push_str("--- as a run file:\n");
        match load_run_file_with(path, &options) {
            Ok(_) => out.push_str("ok\n"),
            Err(diagnostics) => out.push_str(&format!("{diagnostics}\n")),
        }
    }
    // Absolute paths differ between machines.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    out.replace(&root.display().to_string(), "[crate]")
}

fn broken_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("tests/broken")
        .expect("tests/broken exists")
        .map(|e| e.expect("readable entry").path())
        .collect();
    files.sort();
    files
}

#[test]
fn broken_files_render_every_problem() {
    let files = broken_files();
    assert!(files.len() >= 12, "{files:?}");
    for path in files {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let as_run_file = matches!(name.as_str(), "unknown_key" | "wrong_type" | "bad_ranges");
        let rendered = check(&path, as_run_file);
        assert!(
            !rendered.starts_with("ok"),
            "{name} should not load:\n{rendered}"
        );
        insta::assert_snapshot!(name, rendered);
    }
}

#[test]
fn every_line_has_file_line_column() {
    for path in broken_files() {
        let options = LoadOptions::no_data_check();
        if let Err(diagnostics) = load_sweep(&path, &options) {
            for d in &diagnostics {
                assert_eq!(d.file, path.display().to_string());
                assert!(d.line >= 1 && d.column >= 1, "{d}");
                assert!(!d.message.is_empty(), "{d}");
            }
        }
    }
}

#[test]
fn alias_bomb_fails_fast() {
    let start = std::time::Instant::now();
    let err = load_sweep(
        Path::new("tests/broken/alias_bomb.yaml"),
        &LoadOptions::no_data_check(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("aliases expand past the size limit"),
        "{err}"
    );
    assert!(
        start.elapsed().as_secs_f64() < 2.0,
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn unreadable_file() {
    let err = load_sweep(
        Path::new("tests/broken/no-such-file.yaml"),
        &LoadOptions::no_data_check(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("tests/broken/no-such-file.yaml:0:0: cannot read file:"),
        "{err}"
    );
}

#[test]
fn a_name_starts_with_a_letter_or_digit() {
    let load = |text: &str, origin: &str| {
        cg_sweep::load_sweep_str(text, origin, Path::new("."), &LoadOptions::no_data_check())
            .map(|s| s.name().to_string())
            .map_err(|d| d.to_string())
    };
    for name in ["_", "_x", "-x", ".x"] {
        let err = load(
            &format!("name: \"{name}\"\ndataset: {{kind: synthetic}}\n"),
            "s.yaml",
        )
        .unwrap_err();
        assert!(
            err.contains("s.yaml:1:7: name:") && err.contains("not a usable sweep name"),
            "{name}: {err}"
        );
    }
    // A name from the file's stem follows the same rule.
    let err = load("dataset: {kind: synthetic}\n", "_.yaml").unwrap_err();
    assert!(err.contains("not a usable sweep name"), "{err}");
    for name in ["x", "0x", "x_", "a.b-c_d"] {
        let text = format!("name: \"{name}\"\ndataset: {{kind: synthetic}}\n");
        assert_eq!(load(&text, "s.yaml").as_deref(), Ok(name));
    }
}

#[test]
fn a_search_plan_states_its_rungs() {
    let sweep = cg_sweep::load_sweep_str(
        "name: s\nmethod: mo-asha\nn_samples: 27\nfidelity: {min_epochs: 1, max_epochs: 9, eta: 3}\n\
         reference_point: [0.0, 0.0]\ndataset: {kind: synthetic}\n\
         parameters:\n  gate.threshold: {min: 0.5, max: 1.5}\n",
        "s.yaml",
        Path::new("."),
        &LoadOptions::no_data_check(),
    )
    .unwrap();
    assert_eq!(
        cg_sweep::rungs_line(&sweep).as_deref(),
        Some(
            "rungs (eta 3): 1 epoch (up to 27 configurations), 3 epochs (up to 9), 9 epochs (up to 3)"
        )
    );
    let grid = cg_sweep::load_sweep_str(
        "name: g\ndataset: {kind: synthetic}\n",
        "g.yaml",
        Path::new("."),
        &LoadOptions::no_data_check(),
    )
    .unwrap();
    assert_eq!(cg_sweep::rungs_line(&grid), None);
}

#[test]
fn controls_are_stored_in_the_sweep_info_for_every_method() {
    let load = |text: &str| {
        cg_sweep::load_sweep_str(
            text,
            "c.yaml",
            Path::new("."),
            &LoadOptions::no_data_check(),
        )
        .map_err(|d| d.to_string())
    };
    let grid = load(
        "name: g\ndataset: {kind: synthetic}\ncontrols: [narrow, static]\n\
         parameters:\n  gate.threshold: {values: [0.5, 1.0]}\n",
    )
    .unwrap();
    assert_eq!(
        grid.info().controls,
        vec![cg_core::Control::Narrow, cg_core::Control::Static]
    );
    // Controls are planned later: they add no job to the expansion.
    assert_eq!(grid.expand().len(), 2);
    let search = load(
        "name: s\nmethod: mo-asha\nn_samples: 4\nfidelity: {min_epochs: 1, max_epochs: 4, eta: 2}\n\
         reference_point: [0.0, 0.0]\ndataset: {kind: synthetic}\ncontrols: [static]\n\
         parameters:\n  gate.threshold: {min: 0.5, max: 1.5}\n",
    )
    .unwrap();
    assert_eq!(search.info().controls, vec![cg_core::Control::Static]);
    let random = load(
        "name: r\nmethod: random\nn_samples: 2\ndataset: {kind: synthetic}\ncontrols: []\n\
         parameters:\n  gate.threshold: {min: 0.5, max: 1.5}\n",
    )
    .unwrap();
    assert!(random.info().controls.is_empty());
    // Without the key the info serialises as before.
    let json = serde_json::to_value(random.info()).unwrap();
    assert!(json.get("controls").is_none(), "{json}");
}
