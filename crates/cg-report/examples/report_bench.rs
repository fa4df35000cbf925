//! Times a report of a large synthetic sweep: `build_report` + `write_report` for 10,000 finished runs
//! (2,000 configurations × 5 seeds, 200 epochs of history, 7 gated blocks) by default.
//!
//! ```text
//! cargo run --release -p cg-report --example report_bench -- [--runs N] [--seeds S] [--epochs E] [--out DIR]
//! cargo run --release -p cg-report --example report_bench -- --calibration --out DIR   # the small test sweep
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Instant;

use cg_report::{ReportOptions, build_report, write_report};

fn main() {
    let mut runs = 10_000usize;
    let mut seeds = 5u64;
    let mut epochs = 200usize;
    let mut out: Option<PathBuf> = None;
    let mut calibration = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--runs" => runs = value().parse().expect("--runs N"),
            "--seeds" => seeds = value().parse().expect("--seeds S"),
            "--epochs" => epochs = value().parse().expect("--epochs E"),
            "--out" => out = Some(PathBuf::from(value())),
            "--calibration" => calibration = true,
            other => panic!("unknown argument {other}"),
        }
    }
    let started = Instant::now();
    let (info, records) = if calibration {
        common::calibration_records()
    } else {
        common::synthetic_records(runs, seeds, epochs)
    };
    println!(
        "made {} records in {:.2?}",
        records.len(),
        started.elapsed()
    );

    let dir = tempdir_or(out);
    let started = Instant::now();
    let report = build_report(&info, &records, &ReportOptions::default()).expect("report builds");
    let built = started.elapsed();
    let written = write_report(&report, &dir).expect("report writes");
    let total = started.elapsed();
    let bytes: u64 = written
        .files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    println!(
        "{} runs, {} configurations, {} on the front, hypervolume {:.6}",
        report.counts.finished,
        report.configurations.len(),
        report.front().count(),
        report.hypervolume.unwrap_or(f64::NAN)
    );
    println!(
        "build {built:.2?}, build + write {total:.2?}: {} files, {:.1} MB in {}",
        written.files.len(),
        bytes as f64 / 1e6,
        dir.display()
    );
}

fn tempdir_or(out: Option<PathBuf>) -> PathBuf {
    out.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("cg-report-bench-{}", std::process::id()))
    })
}
