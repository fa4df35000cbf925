//! A report written while its sweep runs: the notice at the top, the page reloading itself only
//! while the sweep runs, and the files written atomically with the requested permissions.

mod common;

use std::os::unix::fs::PermissionsExt;

use cg_report::{Progress, ReportOptions, WriteOptions, build_report, write_report_with};
use common::calibration_records;

fn opts(progress: Option<Progress>) -> ReportOptions {
    ReportOptions {
        plot_size: (320, 240),
        progress,
        ..ReportOptions::default()
    }
}

fn page(progress: Option<Progress>) -> (String, String) {
    let (info, records) = calibration_records();
    let report = build_report(&info, &records, &opts(progress)).unwrap();
    let text = |p: &str| String::from_utf8(report.file(p).unwrap().contents.clone()).unwrap();
    (text("report.html"), text("report.md"))
}

#[test]
fn a_running_sweep_says_so_and_reloads() {
    let (html, md) = page(Some(Progress::Running {
        updated: "2026-12-02 01:00:00 UTC".into(),
        reload_secs: 30,
    }));
    assert!(html.contains("<meta http-equiv=\"refresh\" content=\"30\">"));
    let notice = html
        .lines()
        .find(|l| l.contains("class=\"notice running\""))
        .expect("a notice");
    assert!(notice.contains("Sweep running:"), "{notice}");
    assert!(
        notice.contains("Last update: 2026-12-02 01:00:00 UTC"),
        "{notice}"
    );
    assert!(md.contains("> **Sweep running:"), "{md}");
    // The notice comes first, right after the title.
    assert!(html.find("notice running").unwrap() < html.find("<ul>").unwrap());
}

#[test]
fn a_finished_sweep_stops_reloading() {
    let (html, md) = page(Some(Progress::Finished {
        finished: "2026-12-02 02:00:00 UTC".into(),
    }));
    assert!(!html.contains("http-equiv"));
    assert!(html.contains("class=\"notice finished\""));
    assert!(html.contains("Finished: 2026-12-02 02:00:00 UTC."));
    assert!(md.contains("> **Sweep finished:"));
    let (plain, _) = page(None);
    assert!(!plain.contains("class=\"notice") && !plain.contains("http-equiv"));
}

#[test]
fn files_take_the_mode_and_a_failed_write_keeps_the_old_report() {
    let (info, records) = calibration_records();
    let report = build_report(&info, &records, &opts(None)).unwrap();
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("reports/s");
    let mode = WriteOptions { mode: Some(0o600) };
    write_report_with(&report, &out, &mode).unwrap();
    let bits = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(bits(&out.join("report.html")), 0o600);
    assert_eq!(bits(&out.join("configs/job05.json")), 0o600);
    assert_eq!(bits(&out), 0o700);
    assert_eq!(bits(&out.join("configs")), 0o700);

    // A write that cannot finish: `configs` is now a file, so its files cannot be written.
    let before = std::fs::read(out.join("report.html")).unwrap();
    std::fs::remove_dir_all(out.join("configs")).unwrap();
    std::fs::write(out.join("configs"), b"in the way").unwrap();
    let other = build_report(
        &info,
        &records[..3],
        &opts(Some(Progress::Finished {
            finished: "now".into(),
        })),
    )
    .unwrap();
    assert!(write_report_with(&other, &out, &mode).is_err());
    assert_eq!(
        std::fs::read(out.join("report.html")).unwrap(),
        before,
        "the page is the previous one, whole"
    );
    let temps = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".cg-tmp."))
        .count();
    assert_eq!(temps, 0, "no temporary file is left");
}
