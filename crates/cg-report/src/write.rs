//! Writing a report's files so that no reader, crash or full disk ever leaves a half-written file in
//! place of a good one: each file goes to a temporary file in the same directory, is synced, then
//! renamed over the old one (a rename within a directory is atomic), and the directory is synced.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::report::{Report, WrittenReport};
use crate::{Error, Result};

/// How [`write_report_with`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOptions {
    /// Permission bits of the files (e.g. the database file's `0o600`); directories it creates get
    /// the same bits plus search (`x`) where they can be read. `None`: the process's umask decides.
    pub mode: Option<u32>,
}

/// Prefix of the temporary files; a file left by a killed writer is removed by the next write.
const TEMP_PREFIX: &str = ".cg-tmp.";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { path, source }
}

/// Directory bits for file bits: `x` wherever `r` is set.
fn dir_mode(mode: u32) -> u32 {
    let mode = mode & 0o777;
    mode | ((mode & 0o444) >> 2)
}

fn create_dirs(dir: &Path, mode: Option<u32>) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent()
        && !parent.as_os_str().is_empty()
    {
        create_dirs(parent, mode)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(io(dir)(e)),
    }
    if let Some(mode) = mode {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode(mode)))
            .map_err(io(dir))?;
    }
    Ok(())
}

/// Writes `contents` to `path` atomically: a temporary file beside it, synced, renamed over it.
/// On any failure the temporary file is removed and `path` is as it was.
pub fn write_atomic(path: &Path, contents: &[u8], mode: Option<u32>) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!("{TEMP_PREFIX}{}.{name}", std::process::id()));
    let outcome = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        if let Some(mode) = mode {
            options.mode(mode & 0o777);
        }
        let mut file = options.open(&temp).map_err(io(&temp))?;
        if let Some(mode) = mode {
            // An existing temporary file keeps its old bits through `open`; the umask trims `mode`.
            file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777))
                .map_err(io(&temp))?;
        }
        file.write_all(contents).map_err(io(&temp))?;
        file.sync_all().map_err(io(&temp))?;
        drop(file);
        std::fs::rename(&temp, path).map_err(io(path))
    })();
    if outcome.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    outcome
}

/// Removes temporary files a killed writer left in `dir` (those of live processes are kept).
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
            continue;
        };
        let pid = rest.split('.').next().unwrap_or_default();
        let alive = pid == std::process::id().to_string()
            || (!pid.is_empty() && Path::new("/proc").join(pid).exists());
        if !alive {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// Writes every file of a report under `out_dir` (created when missing; existing files of the same
/// names are replaced, others are left alone), each one atomically (see [`write_atomic`]). The
/// documents (`report.md`, `report.html`) are written last, so that when they change the files
/// they name are already there. A failure stops the writing: files already replaced stay new,
/// the others stay as they were; no file is ever half-written.
pub fn write_report_with(
    report: &Report,
    out_dir: &Path,
    options: &WriteOptions,
) -> Result<WrittenReport> {
    create_dirs(out_dir, options.mode)?;
    let is_document = |p: &Path| p == Path::new("report.md") || p == Path::new("report.html");
    let ordered = report
        .files
        .iter()
        .filter(|f| !is_document(&f.path))
        .chain(report.files.iter().filter(|f| is_document(&f.path)));
    let mut dirs: Vec<PathBuf> = vec![out_dir.to_path_buf()];
    let mut written = Vec::with_capacity(report.files.len());
    for f in ordered {
        let path = out_dir.join(&f.path);
        let dir = path.parent().unwrap_or(out_dir).to_path_buf();
        if !dirs.contains(&dir) {
            create_dirs(&dir, options.mode)?;
            dirs.push(dir);
        }
        write_atomic(&path, &f.contents, options.mode)?;
        written.push(path);
    }
    for dir in &dirs {
        remove_stale_temps(dir);
        sync_dir(dir)?;
    }
    // Back in the report's order.
    let order = |p: &PathBuf| {
        report
            .files
            .iter()
            .position(|f| out_dir.join(&f.path) == *p)
    };
    written.sort_by_key(order);
    Ok(WrittenReport {
        hypervolume: report.hypervolume,
        files: written,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_bits_follow_file_bits() {
        assert_eq!(dir_mode(0o600), 0o700);
        assert_eq!(dir_mode(0o644), 0o755);
        assert_eq!(dir_mode(0o640), 0o750);
    }

    #[test]
    fn atomic_write_replaces_and_takes_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        write_atomic(&path, b"one", Some(0o600)).unwrap();
        write_atomic(&path, b"two", Some(0o600)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file is left: {names:?}");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.html");
        write_atomic(&path, b"<html>good</html>", None).unwrap();
        // The temporary file's name is taken by a directory: opening it fails.
        let temp = dir
            .path()
            .join(format!("{TEMP_PREFIX}{}.report.html", std::process::id()));
        std::fs::create_dir(&temp).unwrap();
        assert!(write_atomic(&path, b"<html>new", None).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"<html>good</html>");
    }
}
