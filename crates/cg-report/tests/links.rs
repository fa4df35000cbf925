//! Report writes never go through a symbolic link (issue 18, defect 4). A link planted in a report
//! folder, at a report file's name or at a name the writer once used for its temporary files, is
//! replaced or left alone, never written through: the file it points to keeps its bytes and its
//! mode. A report folder, or a sub-folder of it, that is a link is refused with a message naming
//! it, before anything is written there.

mod common;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use cg_report::{
    Error, HvHistoryRow, ReportOptions, WriteOptions, build_report, write_hv_history,
    write_report_with,
};
use common::calibration_records;

fn report() -> cg_report::Report {
    let (info, records) = calibration_records();
    let opts = ReportOptions {
        plot_size: (320, 240),
        ..ReportOptions::default()
    };
    build_report(&info, &records, &opts).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A file outside the report, with bytes and a mode that a write through a link would change.
fn victim(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, b"not a report").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}

fn assert_untouched(path: &Path) {
    assert_eq!(
        std::fs::read(path).unwrap(),
        b"not a report",
        "{} was written through a link",
        path.display()
    );
    assert_eq!(mode(path), 0o644, "{} was chmod-ed", path.display());
}

const HV_FILES: [&str; 3] = ["hv_history.csv", "hv_history.png", "hv_history.svg"];

#[test]
fn links_planted_in_a_report_folder_are_never_written_through() {
    let report = report();
    let root = tempfile::tempdir().unwrap();
    let outside = root.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let out = root.path().join("reports/s");
    std::fs::create_dir_all(out.join("configs")).unwrap();
    let pid = std::process::id();
    let mut victims = Vec::new();
    let names = report
        .files
        .iter()
        .map(|f| f.path.clone())
        .chain(HV_FILES.iter().map(PathBuf::from));
    for (i, rel) in names.enumerate() {
        let dir = out.join(rel.parent().unwrap());
        let name = rel.file_name().unwrap().to_string_lossy().into_owned();
        // At the file's own name, and at the temporary name the writer used to give it.
        for (j, planted) in [name.clone(), format!(".cg-tmp.{pid}.{name}")]
            .into_iter()
            .enumerate()
        {
            let target = victim(&outside, &format!("victim-{i}-{j}"));
            symlink(&target, dir.join(planted)).unwrap();
            victims.push(target);
        }
    }
    let options = WriteOptions { mode: Some(0o600) };
    write_report_with(&report, &out, &options).unwrap();
    let rows = [HvHistoryRow {
        seq: 0,
        epochs_spent: 1,
        hypervolume: 0.5,
    }];
    write_hv_history(&out, "s", &rows, options.mode).unwrap();
    for v in &victims {
        assert_untouched(v);
    }
    // The report's files are new regular files in place of the links, with the report's mode.
    for f in &report.files {
        let path = out.join(&f.path);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.is_file(), "{} is still a link", path.display());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            f.contents,
            "{}",
            path.display()
        );
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    for name in HV_FILES {
        assert!(std::fs::symlink_metadata(out.join(name)).unwrap().is_file());
    }
}

#[test]
fn a_report_folder_that_is_a_link_is_refused() {
    let report = report();
    let root = tempfile::tempdir().unwrap();
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let kept = victim(&elsewhere, "report.html");
    std::fs::create_dir(root.path().join("reports")).unwrap();
    let out = root.path().join("reports/s");
    symlink(&elsewhere, &out).unwrap();
    let options = WriteOptions { mode: Some(0o600) };
    // However the folder is spelled: a trailing `/` or `/.` would make the kernel follow it.
    let spellings = [
        out.clone(),
        PathBuf::from(format!("{}/", out.display())),
        out.join("."),
    ];
    for spelling in &spellings {
        let err = write_report_with(&report, spelling, &options).unwrap_err();
        assert!(matches!(err, Error::LinkedFolder { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(&out.display().to_string()) && message.contains("symbolic link"),
            "{message}"
        );
        let err = write_hv_history(spelling, "s", &[], options.mode).unwrap_err();
        assert!(matches!(err, Error::LinkedFolder { .. }), "{err:?}");
    }
    assert_untouched(&kept);
    let names: Vec<_> = std::fs::read_dir(&elsewhere).unwrap().flatten().collect();
    assert_eq!(names.len(), 1, "nothing was written through the link");

    // A sub-folder that is a link: refused by its name, and nothing lands behind it.
    let real = root.path().join("reports/real");
    std::fs::create_dir(&real).unwrap();
    symlink(&elsewhere, real.join("configs")).unwrap();
    let err = write_report_with(&report, &real, &options).unwrap_err();
    assert!(
        err.to_string()
            .contains(&real.join("configs").display().to_string()),
        "{err}"
    );
    let names: Vec<_> = std::fs::read_dir(&elsewhere).unwrap().flatten().collect();
    assert_eq!(
        names.len(),
        1,
        "nothing was written through the sub-folder's link"
    );
}
