//! The report through the public API: fronts and hypervolume of a known sweep, the markdown snapshot,
//! reproducible files, figures that decode, and sweeps with nothing to show.

mod common;

use cg_core::{Direction, JobStatus, Objective, RunConfig};
use cg_report::{Error, Report, ReportOptions, build_report, write_report};
use common::{calibration_records, job, params, sweep};
use serde_json::json;

const STEMS: [&str; 4] = ["pareto", "gates_open", "gates_cir", "curves"];

fn small_opts() -> ReportOptions {
    ReportOptions {
        plot_size: (640, 420),
        ..ReportOptions::default()
    }
}

fn text<'a>(report: &'a Report, path: &str) -> &'a str {
    let file = report
        .file(path)
        .unwrap_or_else(|| panic!("{path} is missing"));
    std::str::from_utf8(&file.contents).expect("utf-8")
}

fn front_ids(
    report: &Report,
    pick: fn(&cg_report::FrontMembership) -> Option<bool>,
) -> Vec<String> {
    report
        .configurations
        .iter()
        .filter(|c| pick(&c.front) == Some(true))
        .map(|c| c.label.clone())
        .collect()
}

fn check_figures(report: &Report, size: (u32, u32)) {
    for stem in STEMS {
        let png = &report.file(&format!("{stem}.png")).unwrap().contents;
        let image = image::load_from_memory_with_format(png, image::ImageFormat::Png)
            .unwrap_or_else(|e| panic!("{stem}.png does not decode: {e}"));
        assert_eq!((image.width(), image.height()), size, "{stem}.png size");
        let svg = text(report, &format!("{stem}.svg"));
        let doc = roxmltree::Document::parse(svg)
            .unwrap_or_else(|e| panic!("{stem}.svg is not XML: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert_eq!(
            doc.root_element().attribute("width"),
            Some(size.0.to_string().as_str())
        );
    }
}

#[test]
fn calibration_front_and_hypervolume() {
    let (info, records) = calibration_records();
    let report = build_report(&info, &records, &small_opts()).unwrap();
    assert_eq!(report.counts.total, 16);
    assert_eq!(report.counts.finished, 14);
    assert_eq!(report.counts.failed, 1);
    assert_eq!(report.counts.queued, 1);
    assert_eq!(report.configurations.len(), 7);
    assert_eq!(report.configurations[0].label, "model.kind=resnet");
    assert!(report.configurations[0].is_baseline());
    assert_eq!(
        report.configurations[0].front.objectives, None,
        "baselines are no candidates"
    );

    // The duplicate balanced points both stay on the front.
    assert_eq!(
        front_ids(&report, |m| m.objectives),
        [
            "preset=aggressive, gate.threshold=0.9, loss.flops_weight=1.0",
            "preset=balanced, gate.threshold=0.9, loss.flops_weight=0.5",
            "preset=balanced, gate.threshold=1.0, loss.flops_weight=0.5",
            "preset=conservative, gate.threshold=0.9, loss.flops_weight=0.1",
        ]
    );
    assert_eq!(
        front_ids(&report, |m| m.actual),
        [
            "preset=aggressive, gate.threshold=0.9, loss.flops_weight=1.0",
            "preset=balanced, gate.threshold=1.0, loss.flops_weight=0.5",
            "preset=conservative, gate.threshold=0.9, loss.flops_weight=0.1",
        ]
    );
    assert_eq!(
        front_ids(&report, |m| m.measured),
        ["preset=balanced, gate.threshold=1.0, loss.flops_weight=0.5"]
    );
    // Only the balanced configurations measured savings; the others are no candidates.
    assert_eq!(report.configurations[1].front.measured, None);

    // (0.932·0.020) + 0.913·(0.185 − 0.020) + 0.899·(0.241 − 0.185)
    let expected = 0.932 * 0.020 + 0.913 * (0.185 - 0.020) + 0.899 * (0.241 - 0.185);
    let hv = report.hypervolume.unwrap();
    assert!(
        (hv - expected).abs() < 1e-12,
        "hypervolume {hv}, expected {expected}"
    );

    // Mean ± sample std over two seeds: ±0.001 around the mean gives std 0.001·√2.
    let balanced = &report.configurations[3];
    assert_eq!(balanced.seeds, [0, 1]);
    assert!((balanced.test_acc_final.mean - 0.913).abs() < 1e-12);
    assert!((balanced.test_acc_final.std - 0.001 * 2f64.sqrt()).abs() < 1e-12);
    assert_eq!(balanced.savings_measured.unwrap().n, 2);
    assert_eq!(balanced.gates.len(), 7);
    assert_eq!(balanced.curve.len(), 5);
    assert_eq!(balanced.rerun.job_id, "job05");
    assert_eq!(
        balanced.rerun.command,
        "cg train --config configs/job05.json"
    );

    assert_eq!(report.failed.len(), 1);
    assert_eq!(
        report.failed[0].label,
        "preset=aggressive, gate.threshold=1.1, train.seed=0"
    );
}

#[test]
fn report_markdown_snapshot() {
    let (info, records) = calibration_records();
    let report = build_report(&info, &records, &small_opts()).unwrap();
    insta::assert_snapshot!("calibration_report_md", report.markdown());
}

#[test]
fn same_records_give_identical_files_in_any_order() {
    let (info, records) = calibration_records();
    let a = build_report(&info, &records, &small_opts()).unwrap();
    let mut shuffled = records.clone();
    shuffled.reverse();
    shuffled.rotate_left(5);
    let b = build_report(&info, &shuffled, &small_opts()).unwrap();
    let c = build_report(&info, &records, &small_opts()).unwrap();
    for name in [
        "report.md",
        "report.html",
        "results.csv",
        "results.json",
        "front.csv",
        "front.json",
    ] {
        assert_eq!(
            text(&a, name),
            text(&b, name),
            "{name} depends on record order"
        );
        assert_eq!(
            text(&a, name),
            text(&c, name),
            "{name} differs between builds"
        );
    }
    for stem in STEMS {
        for ext in ["png", "svg"] {
            let name = format!("{stem}.{ext}");
            assert_eq!(
                a.file(&name).unwrap().contents,
                c.file(&name).unwrap().contents,
                "{name} differs"
            );
        }
    }
}

#[test]
fn csv_and_json_tables() {
    let (info, records) = calibration_records();
    let report = build_report(&info, &records, &small_opts()).unwrap();
    let results = text(&report, "results.csv");
    let lines: Vec<&str> = results.lines().collect();
    assert_eq!(lines.len(), 1 + 14, "a header and one row per finished run");
    assert_eq!(
        lines[0],
        "job_id,configuration,seed,preset,gate.threshold,loss.flops_weight,model.kind,control,attempts,\
         epochs,test_acc_final,test_acc_peak,val_acc_final,val_acc_peak,peak_epoch,macs_full,\
         macs_executed_nominal,macs_executed_actual,savings_nominal,savings_actual,savings_measured,\
         predictor_agreement,train_img_per_s,infer_img_per_s,wall_secs"
    );
    assert!(
        lines[1].starts_with("base0,c1,0,,,,resnet,,1,5,0.911,"),
        "{}",
        lines[1]
    );
    // Full precision: the value parses back to the exact f64.
    let acc: f64 = lines[3].split(',').nth(10).unwrap().parse().unwrap();
    assert_eq!(acc, 0.899 - 0.001);

    let results_json: serde_json::Value =
        serde_json::from_str(text(&report, "results.json")).unwrap();
    assert_eq!(results_json.as_array().unwrap().len(), 14);
    assert_eq!(results_json[2]["test_acc_final"], json!(0.899 - 0.001));
    assert_eq!(results_json[2]["savings_measured"], json!(null));
    assert_eq!(results_json[2]["preset"], json!("aggressive"));

    let front = text(&report, "front.csv");
    assert_eq!(front.lines().count(), 1 + 7);
    let header: Vec<&str> = front.lines().next().unwrap().split(',').collect();
    for column in [
        "test_acc_final_mean",
        "test_acc_final_std",
        "test_acc_final_ci95",
        "val_acc_final_mean",
        "savings_nominal_mean",
        "n_seeds",
        "on_front",
    ] {
        assert!(header.contains(&column), "front.csv lacks {column}");
    }
    let front_json: serde_json::Value = serde_json::from_str(text(&report, "front.json")).unwrap();
    let on_front: Vec<bool> = front_json
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["on_front"].as_bool().unwrap())
        .collect();
    assert_eq!(on_front, [false, true, false, true, true, true, false]);
}

#[test]
fn figures_decode_at_the_requested_size() {
    let (info, records) = calibration_records();
    let report = build_report(&info, &records, &small_opts()).unwrap();
    check_figures(&report, (640, 420));
    let html = text(&report, "report.html");
    assert_eq!(html.matches("<svg").count(), 4, "every figure is inline");
    assert!(!html.contains("<img"), "no figure is loaded from a file");
}

#[test]
fn written_files_and_configs() {
    let (info, records) = calibration_records();
    let report = build_report(&info, &records, &small_opts()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let written = write_report(&report, dir.path()).unwrap();
    assert_eq!(written.hypervolume, report.hypervolume);
    for name in [
        "report.md",
        "report.html",
        "results.csv",
        "results.json",
        "front.csv",
        "front.json",
        "pareto.png",
        "pareto.svg",
        "gates_open.png",
        "gates_open.svg",
        "gates_cir.png",
        "gates_cir.svg",
        "curves.png",
        "curves.svg",
        "configs/job05.json",
        "configs/base0.json",
    ] {
        let path = dir.path().join(name);
        assert!(path.is_file(), "{name} was not written");
        assert!(written.files.contains(&path), "{name} is not listed");
    }
    let config: RunConfig = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("configs/job05.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        config, records[4].job.config,
        "the re-run file is the job's resolved configuration"
    );
}

#[test]
fn empty_sweep() {
    let info = sweep("empty", &["gate.threshold"]);
    let report = build_report(&info, &[], &small_opts()).unwrap();
    assert_eq!(report.hypervolume, None);
    assert!(report.configurations.is_empty());
    let md = report.markdown();
    assert!(md.contains("The sweep has no jobs yet"), "{md}");
    check_figures(&report, (640, 420));
    assert_eq!(text(&report, "results.csv").lines().count(), 1);
    assert_eq!(text(&report, "front.json"), "[]\n");
    // The message is drawn with the embedded font: dark pixels in the middle of the picture.
    let png = &report.file("pareto.png").unwrap().contents;
    let image = image::load_from_memory(png).unwrap().to_rgb8();
    let dark = image
        .enumerate_pixels()
        .filter(|(_, y, p)| (180..240).contains(y) && p.0.iter().all(|c| *c < 160))
        .count();
    assert!(dark > 50, "no text drawn ({dark} dark pixels)");
}

#[test]
fn runs_with_non_finite_results_are_reported_but_never_on_the_front() {
    let (info, mut records) = calibration_records();
    for r in records
        .iter_mut()
        .filter(|r| r.job.id == "job01" || r.job.id == "job02")
    {
        r.result.as_mut().unwrap().test_acc_final = f64::NAN;
    }
    let report = build_report(&info, &records, &small_opts()).unwrap();
    let aggressive = &report.configurations[1];
    assert!(aggressive.test_acc_final.mean.is_nan());
    assert_eq!(aggressive.front.objectives, None);
    assert_eq!(
        report.front().count(),
        4,
        "the dominated aggressive point joins the front"
    );
    check_figures(&report, (640, 420));
    let results: serde_json::Value = serde_json::from_str(text(&report, "results.json")).unwrap();
    assert_eq!(results[2]["test_acc_final"], json!(null));
}

#[test]
fn all_failed_sweep() {
    let info = sweep("broken", &["gate.threshold"]);
    let records: Vec<_> = [0.8, 0.9]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut r = job(
                "broken",
                &format!("f{i}"),
                params(&[("gate.threshold", json!(t)), ("train.seed", json!(0))]),
                JobStatus::Failed,
                None,
            );
            r.last_error = Some(format!("out of memory | on `device` {i}"));
            r
        })
        .collect();
    let report = build_report(&info, &records, &small_opts()).unwrap();
    assert_eq!(report.hypervolume, None);
    let md = report.markdown();
    assert!(md.contains("(every job failed)"), "{md}");
    assert!(md.contains("## Failed jobs"), "{md}");
    assert!(
        md.contains(
            "| `f1` | `gate.threshold=0.9, train.seed=0` | 1 | out of memory \\| on 'device' 1 |"
        ),
        "{md}"
    );
    check_figures(&report, (640, 420));
}

#[test]
fn baseline_only_sweep_has_no_front_but_draws_the_baseline() {
    let info = sweep("baseline", &["train.seed"]);
    let (_, all) = calibration_records();
    let baselines: Vec<_> = all
        .into_iter()
        .filter(|r| r.job.id.starts_with("base"))
        .collect();
    let report = build_report(&info, &baselines, &small_opts()).unwrap();
    assert_eq!(report.configurations.len(), 1);
    assert_eq!(report.hypervolume, None);
    check_figures(&report, (640, 420));
    assert!(text(&report, "pareto.svg").contains("baseline"));
}

#[test]
fn minimised_objectives_and_custom_reference() {
    let (mut info, records) = calibration_records();
    info.objectives = vec![
        Objective {
            metric: "test_acc_final".into(),
            direction: Direction::Maximize,
        },
        Objective {
            metric: "macs_executed_nominal".into(),
            direction: Direction::Minimize,
        },
    ];
    info.reference_point = vec![0.9, common::MACS_FULL as f64];
    let report = build_report(&info, &records, &small_opts()).unwrap();
    // Minimising executed MACs is maximising nominal savings: the same front.
    let ids: Vec<&str> = report.front().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["c2", "c4", "c5", "c6"]);
    // Against (0.9, MACS_FULL) the aggressive point (0.899) is worse than the reference.
    let m = common::MACS_FULL as f64;
    let expected =
        (0.932 - 0.913) * (m - m * (1.0 - 0.020)) + (0.913 - 0.9) * (m - m * (1.0 - 0.185));
    let hv = report.hypervolume.unwrap();
    assert!(
        (hv - expected).abs() < 1e-6 * expected,
        "hypervolume {hv}, expected {expected}"
    );
    // No savings_nominal objective: the actual/measured variants are not computed.
    assert!(
        report
            .configurations
            .iter()
            .all(|c| c.front.actual.is_none())
    );
}

#[test]
fn invalid_objectives_are_errors() {
    let (mut info, records) = calibration_records();
    info.objectives[1].metric = "savings".into();
    let err = build_report(&info, &records, &small_opts()).unwrap_err();
    assert!(matches!(err, Error::UnknownMetric { .. }), "{err}");
    let (mut info, _) = calibration_records();
    info.reference_point = vec![0.0];
    let err = build_report(&info, &records, &small_opts()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ReferencePoint {
                expected: 2,
                got: 1
            }
        ),
        "{err}"
    );
    // An empty objective list means the default pair and an empty reference point 0 for each.
    let (mut info, _) = calibration_records();
    info.objectives.clear();
    info.reference_point.clear();
    let report = build_report(&info, &records, &small_opts()).unwrap();
    assert_eq!(report.reference_point, [0.0, 0.0]);
    assert_eq!(report.front().count(), 4);
}

#[test]
fn small_figures_do_not_panic() {
    let (info, records) = calibration_records();
    for size in [(320, 200), (200, 150)] {
        let opts = ReportOptions {
            plot_size: size,
            ..ReportOptions::default()
        };
        if let Ok(report) = build_report(&info, &records, &opts) {
            check_figures(&report, size);
        }
    }
}

#[test]
fn every_metric_reads_the_field_of_its_name() {
    let config = common::config(&serde_json::Map::new());
    for measured in [None, Some(0.25)] {
        let r = common::result(
            &config,
            &common::Outcome {
                acc: 0.9,
                savings_nominal: 0.3,
                savings_actual: -0.1,
                savings_measured: measured,
                epochs: 3,
                n_blocks: 4,
            },
        );
        let json = serde_json::to_value(&r).unwrap();
        for m in cg_report::METRICS {
            assert_eq!(r.metric(m), json[m].as_f64(), "{m}");
        }
        assert_eq!(r.metric("history"), None);
        let info = sweep("s", &[]);
        assert_eq!(info.objective_values(&r), Some(vec![0.9, 0.3]));
        assert_eq!(info.metrics(), ["test_acc_final", "savings_nominal"]);
    }
}

/// Three CosineGate configurations, one seed each, with the given (test, validation) accuracy
/// and nominal savings; `val: None` leaves the run without a validation split.
fn val_records(
    points: &[(f64, Option<f64>, f64)],
) -> (cg_core::SweepInfo, Vec<cg_core::JobRecord>) {
    let info = sweep("val", &["gate.threshold"]);
    let records = points
        .iter()
        .enumerate()
        .map(|(i, &(test, val, savings))| {
            let p = common::params(&[("gate.threshold", json!(0.5 + i as f64 / 10.0))]);
            let mut r = common::finished(
                "val",
                &format!("j{i}"),
                p,
                &common::Outcome {
                    acc: test,
                    savings_nominal: savings,
                    savings_actual: savings,
                    savings_measured: None,
                    epochs: 2,
                    n_blocks: 2,
                },
            );
            let result = r.result.as_mut().unwrap();
            result.val_acc_final = val;
            result.val_acc_peak = val;
            r
        })
        .collect();
    (info, records)
}

#[test]
fn the_front_is_chosen_on_validation_when_there_is_a_split() {
    // c1 is the test-best and the val-worst at the same savings as c2: on validation c2
    // dominates it; on test c1 dominates c2.
    let points = [
        (0.95, Some(0.80), 0.2),
        (0.90, Some(0.85), 0.2),
        (0.70, Some(0.70), 0.5),
    ];
    let (info, records) = val_records(&points);
    let report = build_report(&info, &records, &small_opts()).unwrap();
    let front: Vec<&str> = report.front().map(|c| c.id.as_str()).collect();
    assert_eq!(front, ["c2", "c3"]);
    // The hypervolume reads validation: 0.85·0.2 + 0.70·(0.5 − 0.2).
    let hv = report.hypervolume.unwrap();
    assert!((hv - (0.85 * 0.2 + 0.70 * 0.3)).abs() < 1e-12, "{hv}");
    let md = report.markdown();
    assert!(md.contains("Selection: on the validation split"), "{md}");
    assert!(md.contains("| val accuracy final | val accuracy peak | test accuracy final |"));
    // The test figures are shown beside: c2's test accuracy is in its row.
    assert!(md.contains("| 0.8500 | 0.8500 | 0.9000 |"), "{md}");
    insta::assert_snapshot!("validation_report_md", md);

    // The same runs without a split choose on test, and say so.
    let no_split: Vec<_> = points.iter().map(|&(t, _, s)| (t, None, s)).collect();
    let (info, records) = val_records(&no_split);
    let report = build_report(&info, &records, &small_opts()).unwrap();
    let front: Vec<&str> = report.front().map(|c| c.id.as_str()).collect();
    assert_eq!(front, ["c1", "c3"]);
    assert!(report.markdown().contains("Selection: on the test set."));
    assert!(!report.markdown().contains("val accuracy"));
}

#[test]
fn does_it_route_names_static_and_routing_configurations() {
    // c1: every block open or closed for (nearly) every input; c2: block 1 routes, with rates
    // per class. One dominates neither (c1 more accurate, c2 saves more).
    let (info, mut records) = val_records(&[(0.9, None, 0.2), (0.8, None, 0.4)]);
    let gates = |r: &mut cg_core::JobRecord, g: Vec<cg_core::BlockGateStats>| {
        r.result.as_mut().unwrap().gates = g;
    };
    let stats = |block_idx, open: f64, share: Option<f64>, classes: Option<Vec<f64>>| {
        cg_core::BlockGateStats {
            block_idx,
            gate_open_rate: open,
            mean_cir: 0.5,
            routing_share: share,
            class_open_rates: classes,
        }
    };
    // Older results: no routing share (derived from the open rate), no classes.
    gates(
        &mut records[0],
        vec![
            stats(0, 1.0, None, None),
            stats(1, 0.0, None, None),
            stats(3, 0.02, None, None),
        ],
    );
    gates(
        &mut records[1],
        vec![
            stats(0, 1.0, Some(0.0), Some(vec![1.0, 1.0, 1.0])),
            stats(1, 0.34, Some(0.34), Some(vec![0.81, 0.19, 0.02])),
        ],
    );
    let report = build_report(&info, &records, &small_opts()).unwrap();
    let md = report.markdown();
    assert!(md.contains("## Does it route?"), "{md}");
    assert!(
        md.contains(
            "- c1 `gate.threshold=0.5`: static: blocks 1 and 3 closed for every input, \
             block 0 open for every input."
        ),
        "{md}"
    );
    assert!(
        md.contains(
            "- c2 `gate.threshold=0.6`: routes: block 1 open for 34% of inputs, 81% of \
             class 0, 2% of class 2; static: block 0 open for every input."
        ),
        "{md}"
    );
    // The per-class figure exists for the blocks that recorded classes.
    assert!(report.file("gates_class.svg").is_some());
    assert!(md.contains("(gates_class.png)"));
    // Without class rates there is no such figure.
    let (info, records) = val_records(&[(0.9, None, 0.2)]);
    let report = build_report(&info, &records, &small_opts()).unwrap();
    assert!(report.file("gates_class.svg").is_none());
}

#[test]
fn controls_are_reported_beside_the_front_and_never_on_it() {
    let (info, records) = common::control_records();
    let report = build_report(&info, &records, &small_opts()).unwrap();
    let (plain_info, plain) = calibration_records();
    let plain = build_report(&plain_info, &plain, &small_opts()).unwrap();
    // The controls change neither the front nor the hypervolume.
    let ids = |r: &Report| -> Vec<String> { r.front().map(|c| c.label.clone()).collect() };
    assert_eq!(ids(&report), ids(&plain));
    assert_eq!(report.hypervolume, plain.hypervolume);
    let controls: Vec<&str> = report
        .configurations
        .iter()
        .filter(|c| c.is_control())
        .map(|c| c.label.as_str())
        .collect();
    assert_eq!(controls.len(), 4, "{controls:?}");
    assert!(
        report
            .configurations
            .iter()
            .filter(|c| c.is_control())
            .all(|c| { c.front == cg_report::FrontMembership::default() && !c.is_baseline() })
    );
    let md = report.markdown();
    assert!(md.contains("## Against matched-compute controls"), "{md}");
    let baseline = md.split("## Baseline").nth(1).unwrap();
    let baseline = baseline.split("## ").next().unwrap();
    assert!(!baseline.contains("control"), "{baseline}");
    let routing = md.split("## Does it route?").nth(1).unwrap();
    let routing = routing.split("## ").next().unwrap();
    assert!(!routing.contains("control"), "{routing}");

    // One row per (front configuration, control kind), best first; the verdict on test.
    let json: serde_json::Value = serde_json::from_str(text(&report, "controls.json")).unwrap();
    let verdicts: Vec<[&str; 3]> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|row| ["configuration", "control", "verdict"].map(|k| row[k].as_str().unwrap()))
        .collect();
    assert_eq!(
        verdicts,
        [
            ["c06", "narrow", "tied (no interval)"],
            ["c04", "static", "worse"],
            ["c05", "static", "worse"],
            ["c02", "static", "better"],
            ["c02", "narrow", "tied"],
        ]
    );
    assert_eq!(text(&report, "controls.csv").lines().count(), 1 + 5);
    assert_eq!(json[0]["control_macs"], json!(39_900_000.0));

    // results.csv names each run's control kind.
    let results = text(&report, "results.csv");
    let header: Vec<&str> = results.lines().next().unwrap().split(',').collect();
    let at = header.iter().position(|h| *h == "control").unwrap();
    let kinds: Vec<&str> = results
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(at).unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "static").count(), 6);
    assert_eq!(kinds.iter().filter(|k| **k == "narrow").count(), 3);
    assert_eq!(kinds.iter().filter(|k| k.is_empty()).count(), 14);
    insta::assert_snapshot!("controls_report_md", md);
}

#[test]
fn control_markers_and_the_measured_front_are_drawn() {
    let (info, records) = common::control_records();
    let report = build_report(&info, &records, &small_opts()).unwrap();
    check_figures(&report, (640, 420));
    for stem in ["pareto", "pareto_measured"] {
        let svg = text(&report, &format!("{stem}.svg"));
        let doc = roxmltree::Document::parse(svg).unwrap();
        let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
        for legend in ["static control", "narrow control", "Pareto front"] {
            assert!(
                texts.iter().any(|t| t.trim() == legend),
                "{stem} lacks {legend}"
            );
        }
        let png = &report.file(&format!("{stem}.png")).unwrap().contents;
        image::load_from_memory_with_format(png, image::ImageFormat::Png).unwrap();
    }
    let md = report.markdown();
    assert!(
        md.contains("`pareto_measured` draws the front on measured savings"),
        "{md}"
    );
    assert!(md.contains("| predictor agreement |"), "{md}");
    // Without a measurement on every front configuration there is no such figure.
    let (info, records) = calibration_records();
    let plain = build_report(&info, &records, &small_opts()).unwrap();
    assert!(plain.file("pareto_measured.svg").is_none());
    assert!(plain.file("controls.csv").is_none());
    assert!(!plain.markdown().contains("predictor agreement"));
}

#[test]
fn the_curves_draw_validation_beside_test() {
    let (info, mut records) = val_records(&[(0.9, Some(0.85), 0.2), (0.8, Some(0.8), 0.4)]);
    for r in &mut records {
        for e in &mut r.result.as_mut().unwrap().history {
            e.val_acc = Some(e.test_acc - 0.05);
        }
    }
    let report = build_report(&info, &records, &small_opts()).unwrap();
    let curves = text(&report, "curves.svg");
    assert!(
        curves.contains("validation (dashed)"),
        "no validation legend"
    );
    assert!(curves.contains("solid: test, dashed: validation"));
    let (info, records) = val_records(&[(0.9, None, 0.2)]);
    let report = build_report(&info, &records, &small_opts()).unwrap();
    assert!(!text(&report, "curves.svg").contains("validation"));
}
