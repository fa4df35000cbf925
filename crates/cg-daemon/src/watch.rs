//! `cg daemon --watch DIR`: sweep files (`*.yaml`, `*.yml`) that appear or change in DIR are
//! validated and submitted through [`submit_sweep`], the same path and rules as `cg sweep submit`.
//! A file is taken only once it is settled: the same size, times, inode and content on two
//! consecutive scans (a file still being written waits). A file that does not validate, or that
//! the submission refuses, is reported once per version, with file:line, and recorded in the
//! store for `cg status`; the daemon goes on. A sweep file is only parsed: nothing in it is ever
//! executed.
//!
//! Whoever can write to the folder can make the daemon do what it can do for them: the scan
//! therefore never follows a symbolic link (refused), never blocks on what it opens (a FIFO is
//! refused from its handle), reads no byte of a file that is not regular or is over
//! [`MAX_FILE_BYTES`], reads with that cap, and does not read a file again until its size, times or
//! inode change. Paths and messages are escaped and URL passwords masked before they are shown or
//! stored ([`cg_core::shown`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use cg_store::{Store, SubmitOptions, SubmitSummary};
use cg_sweep::{DEFAULT_JOB_LIMIT, LoadOptions, MAX_FILE_BYTES, load_sweep_str};
use sha2::{Digest, Sha256};

use crate::error::io_err;
use crate::{Result, submit_sweep};

/// What a scan did with one file.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// The file was valid and its sweep was submitted.
    Submitted {
        path: PathBuf,
        sweep: String,
        summary: SubmitSummary,
        /// An earlier version of the file had been seen (in this process).
        changed: bool,
    },
    /// The file was refused; reported once per version of the file. `message` is fit to show
    /// (escaped, passwords masked); `path` is as found, to be escaped where shown.
    Rejected { path: PathBuf, message: String },
}

/// What identifies one version of a file without reading it: device, inode, size, modification
/// and change times (nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// What the watcher knows of one file.
#[derive(Debug, Clone)]
struct FileState {
    /// The version last looked at.
    stamp: Stamp,
    /// Its content hash, when it was read whole (`None`: refused from its handle, or caught
    /// while changing).
    hash: Option<String>,
    /// That version was taken (submitted or refused): it is not read again until it changes.
    taken: bool,
    /// The hash of the last version taken, so that a file touched without a change is not
    /// submitted again, and a changed one is reported as such.
    last_taken: Option<String>,
}

/// One look at one file, before anything is decided.
enum Look {
    /// Refused from its link or handle, no byte read; the message names the file.
    Refused(Stamp, String),
    /// The version at `Stamp` is the one already taken: nothing to do.
    Unchanged,
    /// Read whole (at most [`MAX_FILE_BYTES`]) while its stamp stayed the same.
    Read(Stamp, Vec<u8>),
    /// Read while it changed, or vanished: look again at the next scan.
    Changing(Option<Stamp>),
}

/// Watches one directory by scanning it ([`Watcher::scan`]); remembers each file's last version.
#[derive(Debug)]
pub struct Watcher {
    dir: PathBuf,
    options: SubmitOptions,
    files: HashMap<PathBuf, FileState>,
    bytes_read: u64,
}

fn is_sweep_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'));
    let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
    yaml && !hidden
}

/// A path as shown in messages and stored in `watch_rejections`: control characters escaped.
fn shown_path(path: &Path) -> String {
    cg_core::shown(&path.display().to_string()).into_owned()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Opens `path` without following a link and without blocking, checks the handle, and reads the
/// file (capped) unless `known` says this version was taken already.
fn look(path: &Path, shown: &str, known: Option<&FileState>, bytes_read: &mut u64) -> Look {
    let taken = |stamp: Stamp| known.is_some_and(|k| k.taken && k.stamp == stamp);
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) => {
            let Ok(meta) = std::fs::symlink_metadata(path) else {
                return Look::Changing(None);
            };
            let stamp = Stamp::of(&meta);
            if taken(stamp) {
                return Look::Unchanged;
            }
            let message = if meta.file_type().is_symlink() {
                format!(
                    "{shown}: is a symbolic link; the watched folder takes regular files only and \
                     follows no link (move or copy the file itself in)"
                )
            } else {
                format!("{shown}: cannot be opened: {e}")
            };
            return Look::Refused(stamp, message);
        }
    };
    let Ok(meta) = file.metadata() else {
        return Look::Changing(None);
    };
    let stamp = Stamp::of(&meta);
    if taken(stamp) {
        return Look::Unchanged;
    }
    if !meta.file_type().is_file() {
        return Look::Refused(
            stamp,
            format!("{shown}: not a regular file (a FIFO, socket or device); nothing was read"),
        );
    }
    if meta.len() > MAX_FILE_BYTES as u64 {
        let message = format!(
            "{shown}: {} bytes, larger than {MAX_FILE_BYTES} bytes, the limit for sweep files; \
             nothing was read",
            meta.len()
        );
        return Look::Refused(stamp, message);
    }
    read_capped(file, stamp, bytes_read)
}

/// Reads at most [`MAX_FILE_BYTES`] + 1 bytes; a file that changed while read (grown past the
/// cap included) is [`Look::Changing`], and looked at again at the next scan.
fn read_capped(file: File, stamp: Stamp, bytes_read: &mut u64) -> Look {
    let mut bytes = Vec::with_capacity(stamp.len as usize);
    let mut handle = file.take(MAX_FILE_BYTES as u64 + 1);
    let read = handle.read_to_end(&mut bytes);
    *bytes_read += bytes.len() as u64;
    if read.is_err() {
        return Look::Changing(Some(stamp));
    }
    let after = handle.into_inner().metadata().map(|m| Stamp::of(&m));
    if bytes.len() as u64 != stamp.len || after.ok() != Some(stamp) {
        return Look::Changing(Some(stamp));
    }
    Look::Read(stamp, bytes)
}

impl Watcher {
    pub fn new(dir: impl Into<PathBuf>, options: SubmitOptions) -> Self {
        Self {
            dir: dir.into(),
            options,
            files: HashMap::new(),
            bytes_read: 0,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes read from the folder's files so far: what the scans cost (an unchanged or refused
    /// file costs nothing after its first look).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Looks at every sweep file of the directory once: settled new and changed ones are
    /// validated and submitted (or refused); files that vanished are forgotten. An error is the
    /// directory's (or the store's), never a file's.
    pub async fn scan(&mut self, store: &Store) -> Result<Vec<WatchEvent>> {
        let mut files = Vec::new();
        let entries = std::fs::read_dir(&self.dir)
            .map_err(io_err(format!("cannot read {}", shown_path(&self.dir))))?;
        for entry in entries.flatten() {
            let path = entry.path();
            // The entry's own type: a link is listed (to be refused), a directory is not.
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_sweep_file(&path) && !is_dir {
                files.push(path);
            }
        }
        files.sort();
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !files.contains(p))
            .cloned()
            .collect();
        for path in gone {
            self.files.remove(&path);
            store.clear_rejection(&shown_path(&path)).await?;
        }
        let mut events = Vec::new();
        for path in files {
            if let Some(event) = self.scan_file(store, &path).await? {
                events.push(event);
            }
        }
        Ok(events)
    }

    /// One file of a scan: taken once settled, otherwise remembered for the next scan.
    async fn scan_file(&mut self, store: &Store, path: &Path) -> Result<Option<WatchEvent>> {
        let shown = shown_path(path);
        let known = self.files.get(path).cloned();
        let (stamp, bytes) = match look(path, &shown, known.as_ref(), &mut self.bytes_read) {
            Look::Unchanged => return Ok(None),
            Look::Changing(stamp) => {
                if let Some(stamp) = stamp {
                    let last_taken = known.and_then(|k| k.last_taken);
                    let state = FileState {
                        stamp,
                        hash: None,
                        taken: false,
                        last_taken,
                    };
                    self.files.insert(path.to_path_buf(), state);
                }
                return Ok(None);
            }
            Look::Refused(stamp, message) => {
                // Nothing was read: the message stands for the content.
                let message = cg_core::shown_lines(&message).into_owned();
                let hash = sha256_hex(format!("refused without reading: {message}").as_bytes());
                // Remembered once recorded: a store error leaves it to be tried again.
                let new = store.record_rejection(&shown, &hash, &message).await?;
                self.files.insert(
                    path.to_path_buf(),
                    FileState {
                        stamp,
                        hash: None,
                        taken: true,
                        last_taken: Some(hash),
                    },
                );
                return Ok(new.then(|| WatchEvent::Rejected {
                    path: path.to_path_buf(),
                    message,
                }));
            }
            Look::Read(stamp, bytes) => (stamp, bytes),
        };
        let hash = sha256_hex(&bytes);
        let last_taken = known.as_ref().and_then(|k| k.last_taken.clone());
        let settled = known
            .as_ref()
            .is_some_and(|k| k.stamp == stamp && k.hash.as_deref() == Some(hash.as_str()));
        let already = last_taken.as_deref() == Some(hash.as_str());
        let take = settled && !already;
        self.files.insert(
            path.to_path_buf(),
            FileState {
                stamp,
                hash: Some(hash.clone()),
                taken: take || already,
                last_taken: if take {
                    Some(hash.clone())
                } else {
                    last_taken.clone()
                },
            },
        );
        if !take {
            return Ok(None);
        }
        let taken = self
            .take(store, path, &shown, &bytes, &hash, last_taken.is_some())
            .await;
        if taken.is_err()
            && let Some(state) = self.files.get_mut(path)
        {
            // The store failed, not the file: it is taken again at the next scan.
            state.taken = false;
            state.last_taken = last_taken;
        }
        taken
    }

    /// Validates and submits one version of one file.
    async fn take(
        &self,
        store: &Store,
        path: &Path,
        shown: &str,
        bytes: &[u8],
        hash: &str,
        changed: bool,
    ) -> Result<Option<WatchEvent>> {
        let refusal = match std::str::from_utf8(bytes) {
            Err(_) => Err(format!("{shown}: not UTF-8 text")),
            Ok(text) => {
                let base = path.parent().unwrap_or(Path::new("."));
                match load_sweep_str(text, shown, base, &LoadOptions::default()) {
                    Err(diags) => Err(diags.to_string()),
                    Ok(sweep) => match sweep.check_job_limit(DEFAULT_JOB_LIMIT) {
                        Err(e) => Err(format!(
                            "{shown}: {e}; submit it with `cg sweep submit {shown} --yes`"
                        )),
                        Ok(()) => match submit_sweep(store, &sweep, &self.options).await {
                            Err(crate::Error::Store(e)) if !is_refusal(&e) => {
                                return Err(crate::Error::Store(e));
                            }
                            // Names the file and the line of its `name:` already.
                            Err(e @ crate::Error::SweepExists { .. }) => Err(e.to_string()),
                            Err(e) => Err(format!("{shown}: {e}")),
                            Ok(summary) => Ok((sweep.name().to_string(), summary)),
                        },
                    },
                }
            }
        };
        match refusal {
            Ok((sweep, summary)) => {
                store.clear_rejection(shown).await?;
                Ok(Some(WatchEvent::Submitted {
                    path: path.to_path_buf(),
                    sweep,
                    summary,
                    changed,
                }))
            }
            Err(message) => {
                let message = cg_core::shown_lines(message.trim_end()).into_owned();
                let new = store.record_rejection(shown, hash, &message).await?;
                Ok(new.then(|| WatchEvent::Rejected {
                    path: path.to_path_buf(),
                    message,
                }))
            }
        }
    }
}

/// A store error that refuses the file (rather than a failing database, which stops the daemon).
fn is_refusal(e: &cg_store::Error) -> bool {
    !matches!(
        e,
        cg_store::Error::Connect { .. }
            | cg_store::Error::Busy(_)
            | cg_store::Error::Database(_)
            | cg_store::Error::Migrate(_)
    )
}
