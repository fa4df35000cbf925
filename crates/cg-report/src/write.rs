//! Writing a report's files so that no reader, crash, full disk or planted link ever leaves a
//! half-written file in place of a good one, or a file written outside the report.
//!
//! Each file goes to a new temporary file with an unpredictable name, created exclusively and
//! without following links (`O_CREAT | O_EXCL | O_NOFOLLOW`) in the report's folder, gets its
//! permission bits through its handle, is synced, then is renamed over the old one (a rename within
//! a directory is atomic and replaces a link, never what it points to); the folder is synced last.
//! A report folder that is a symbolic link, or a link inside it where a sub-folder should be, is
//! refused. The folder is held open while it is written: on Linux every name is resolved through
//! that handle (`/proc/self/fd/N/…`), so swapping the folder for a link meanwhile changes nothing.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::report::{Report, WrittenReport};
use crate::{Error, Result};

/// How [`write_report_with`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOptions {
    /// Permission bits of the files (e.g. the database file's `0o600`); directories it creates get
    /// the same bits plus search (`x`) where they can be read. `None`: the process's umask decides.
    pub mode: Option<u32>,
}

/// Prefix of the temporary files (`.cg-tmp.<pid>.<random>.<name>`); a file left by a killed
/// writer is removed by the next write.
const TEMP_PREFIX: &str = ".cg-tmp.";

/// Random characters in a temporary file's name (62 possible each).
const TEMP_RANDOM_CHARS: usize = 16;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { path, source }
}

/// Directory bits for file bits: `x` wherever `r` is set.
fn dir_mode(mode: u32) -> u32 {
    let mode = mode & 0o777;
    mode | ((mode & 0o444) >> 2)
}

/// `path` without a trailing `/` or `.` (which would make the kernel follow a final link).
fn normalised(path: &Path) -> PathBuf {
    let out: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

/// A folder held open, whose names are resolved through its handle.
struct Folder {
    /// The folder as the caller named it, for messages.
    path: PathBuf,
    handle: File,
    /// `/proc/self/fd/N` where the kernel offers it, else `path`.
    base: PathBuf,
}

impl Folder {
    /// Opens the folder `path`; with `follow` false, a final component that is a symbolic link is
    /// refused.
    fn open(path: &Path, follow: bool) -> Result<Folder> {
        let mut flags = libc::O_DIRECTORY;
        if !follow {
            flags |= libc::O_NOFOLLOW;
        }
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(path);
        let handle = match opened {
            Ok(handle) => handle,
            Err(e) => {
                let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink());
                if !follow && (e.raw_os_error() == Some(libc::ELOOP) || is_link) {
                    return Err(Error::LinkedFolder {
                        path: path.to_path_buf(),
                    });
                }
                return Err(io(path)(e));
            }
        };
        let via_fd = PathBuf::from(format!("/proc/self/fd/{}", handle.as_raw_fd()));
        let base = if via_fd.is_dir() {
            via_fd
        } else {
            path.to_path_buf()
        };
        Ok(Folder {
            path: path.to_path_buf(),
            handle,
            base,
        })
    }

    /// Opens the report folder `path` (never through a link), creating it and its missing parents
    /// first; a folder it creates gets [`dir_mode`] of `mode` through its handle.
    fn create(path: &Path, mode: Option<u32>) -> Result<Folder> {
        let path = normalised(path);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => return Folder::open(&path, false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
            && !parent.is_dir()
        {
            // Parents may be links (a `reports` on another disk); only the report's own folder may not.
            Folder::create(parent, mode)?;
        }
        let created = make_dir(&path, mode).map_err(io(&path))?;
        let folder = Folder::open(&path, false)?;
        if created {
            folder.set_mode(mode)?;
        }
        Ok(folder)
    }

    /// The sub-folder `name` (one plain component), created when missing; a link is refused.
    fn child(&self, name: &OsStr, mode: Option<u32>) -> Result<Folder> {
        let shown = self.path.join(name);
        let via = self.base.join(name);
        let created = make_dir(&via, mode).map_err(io(&shown))?;
        let mut folder = Folder::open(&via, false).map_err(|e| match e {
            Error::LinkedFolder { .. } => Error::LinkedFolder {
                path: shown.clone(),
            },
            Error::Io { source, .. } => Error::Io {
                path: shown.clone(),
                source,
            },
            other => other,
        })?;
        if folder.base == via {
            folder.base = shown.clone();
        }
        folder.path = shown;
        if created {
            folder.set_mode(mode)?;
        }
        Ok(folder)
    }

    fn set_mode(&self, mode: Option<u32>) -> Result<()> {
        if let Some(mode) = mode {
            self.handle
                .set_permissions(std::fs::Permissions::from_mode(dir_mode(mode)))
                .map_err(io(&self.path))?;
        }
        Ok(())
    }

    /// Writes `contents` as the file `name` of this folder: a new temporary file, synced, renamed
    /// over the old one. On any failure the temporary file is removed and the old file is kept.
    fn write(&self, name: &OsStr, contents: &[u8], mode: Option<u32>) -> Result<()> {
        let shown = self.path.join(name);
        let prefix = format!("{TEMP_PREFIX}{}.", std::process::id());
        let mut suffix = std::ffi::OsString::from(".");
        suffix.push(name);
        let create_mode = mode.map_or(0o666, |m| m & 0o777);
        let mut temp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(&suffix)
            .rand_bytes(TEMP_RANDOM_CHARS)
            .make_in(&self.base, |path| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .mode(create_mode)
                    .open(path)
            })
            .map_err(io(&shown))?;
        if let Some(mode) = mode {
            // The umask trims the creation bits; the handle gets them exactly.
            temp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(mode & 0o777))
                .map_err(io(&shown))?;
        }
        temp.as_file_mut().write_all(contents).map_err(io(&shown))?;
        temp.as_file().sync_all().map_err(io(&shown))?;
        // On failure the temporary file is dropped, which removes it.
        temp.persist(self.base.join(name))
            .map_err(|e| io(&shown)(e.error))?;
        Ok(())
    }

    /// Removes temporary files a killed writer left here (those of live processes are kept).
    fn remove_stale_temps(&self) {
        let Ok(entries) = std::fs::read_dir(&self.base) else {
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
                let _ = std::fs::remove_file(self.base.join(entry.file_name()));
            }
        }
    }

    fn sync(&self) -> Result<()> {
        self.handle.sync_all().map_err(io(&self.path))
    }
}

/// Creates the directory `path` with [`dir_mode`] of `mode` (trimmed by the umask); `false` when it
/// was already there.
fn make_dir(path: &Path, mode: Option<u32>) -> std::io::Result<bool> {
    let mut builder = std::fs::DirBuilder::new();
    builder.mode(mode.map_or(0o777, dir_mode));
    match builder.create(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// The folder and the file name of `path`.
fn split(path: &Path) -> Result<(PathBuf, &OsStr)> {
    let name = path.file_name().ok_or_else(|| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
    })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok((dir.to_path_buf(), name))
}

/// Writes `contents` to `path` atomically: a new temporary file beside it (an unpredictable name,
/// created exclusively, never through a link), synced, renamed over it. On any failure the
/// temporary file is removed and `path` is as it was. The folder must exist; it may be a link.
pub fn write_atomic(path: &Path, contents: &[u8], mode: Option<u32>) -> Result<()> {
    let (dir, name) = split(path)?;
    Folder::open(&dir, true)?.write(name, contents, mode)
}

/// Writes the files `(name, contents)` into the report folder `dir` (created when missing, refused
/// when it is a symbolic link), each one atomically, then syncs the folder.
pub(crate) fn write_files_into(
    dir: &Path,
    files: &[(&str, &[u8])],
    mode: Option<u32>,
) -> Result<Vec<PathBuf>> {
    let folder = Folder::create(dir, mode)?;
    let mut written = Vec::with_capacity(files.len());
    for (name, contents) in files {
        folder.write(OsStr::new(name), contents, mode)?;
        written.push(dir.join(name));
    }
    folder.remove_stale_temps();
    folder.sync()?;
    Ok(written)
}

/// Writes every file of a report under `out_dir`, each one atomically, with the process's
/// permissions; see [`write_report_with`].
pub fn write_report(report: &Report, out_dir: &Path) -> Result<WrittenReport> {
    write_report_with(report, out_dir, &WriteOptions::default())
}

/// Writes every file of a report under `out_dir` (created when missing; existing files of the same
/// names are replaced, others are left alone), each one atomically (see [`write_atomic`]). The
/// documents (`report.md`, `report.html`) are written last, so that when they change the files
/// they name are already there. A failure stops the writing: files already replaced stay new,
/// the others stay as they were; no file is ever half-written. `out_dir`, or a sub-folder in it,
/// that is a symbolic link is refused ([`Error::LinkedFolder`]) before anything is written there.
pub fn write_report_with(
    report: &Report,
    out_dir: &Path,
    options: &WriteOptions,
) -> Result<WrittenReport> {
    let root = Folder::create(out_dir, options.mode)?;
    let is_document = |p: &Path| p == Path::new("report.md") || p == Path::new("report.html");
    let ordered = report
        .files
        .iter()
        .filter(|f| !is_document(&f.path))
        .chain(report.files.iter().filter(|f| is_document(&f.path)));
    // Sub-folders by their path relative to `out_dir`.
    let mut folders: Vec<(PathBuf, Folder)> = Vec::new();
    let mut written = Vec::with_capacity(report.files.len());
    for f in ordered {
        let (rel_dir, name) = split(&f.path)?;
        let mut parts = Vec::new();
        for c in rel_dir.components() {
            match c {
                Component::Normal(part) => parts.push(part),
                Component::CurDir => {}
                _ => {
                    return Err(Error::Io {
                        path: f.path.clone(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            "a report file must lie inside the report's folder",
                        ),
                    });
                }
            }
        }
        let mut rel = PathBuf::new();
        let mut current: Option<usize> = None;
        for part in parts {
            rel.push(part);
            let index = match folders.iter().position(|(p, _)| *p == rel) {
                Some(i) => i,
                None => {
                    let parent = current.map_or(&root, |i| &folders[i].1);
                    let child = parent.child(part, options.mode)?;
                    folders.push((rel.clone(), child));
                    folders.len() - 1
                }
            };
            current = Some(index);
        }
        let folder = current.map_or(&root, |i| &folders[i].1);
        folder.write(name, &f.contents, options.mode)?;
        written.push(out_dir.join(&f.path));
    }
    for folder in std::iter::once(&root).chain(folders.iter().map(|(_, f)| f)) {
        folder.remove_stale_temps();
        folder.sync()?;
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
        // The rename cannot replace a folder that holds something: the write fails at its end.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir_all(blocked.join("inside")).unwrap();
        assert!(write_atomic(&blocked, b"<html>new", None).is_err());
        assert!(blocked.join("inside").is_dir());
        assert_eq!(std::fs::read(&path).unwrap(), b"<html>good</html>");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file is left: {names:?}");
    }

    #[test]
    fn temporary_names_are_unpredictable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        // The name the old writer used: a link planted there is never written through.
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"keep").unwrap();
        let planted = dir
            .path()
            .join(format!("{TEMP_PREFIX}{}.a.txt", std::process::id()));
        std::os::unix::fs::symlink(&outside, &planted).unwrap();
        write_atomic(&path, b"new", Some(0o600)).unwrap();
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep");
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }
}
