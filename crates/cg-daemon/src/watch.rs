//! `cg daemon --watch DIR`: sweep files (`*.yaml`, `*.yml`) that appear or change in DIR are
//! validated and submitted through [`submit_sweep`], the same path and rules as `cg sweep submit`.
//! A file that does not validate, or that the submission refuses, is reported once per version
//! (its content hash), with file:line, and recorded in the store for `cg status`; the daemon goes
//! on. A sweep file is only parsed: nothing in it is ever executed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use cg_store::{Store, SubmitOptions, SubmitSummary};
use cg_sweep::{DEFAULT_JOB_LIMIT, LoadOptions, load_sweep_str};
use sha2::{Digest, Sha256};

use crate::error::io_err;
use crate::{Result, submit_sweep};

/// A file younger than this may still be being written: it is looked at on a later scan.
const SETTLE: Duration = Duration::from_millis(500);

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
    /// The file was refused; reported once per version of the file.
    Rejected { path: PathBuf, message: String },
}

/// Watches one directory by scanning it ([`Watcher::scan`]); remembers each file's last version.
#[derive(Debug)]
pub struct Watcher {
    dir: PathBuf,
    options: SubmitOptions,
    seen: HashMap<PathBuf, String>,
}

fn is_sweep_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'));
    let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
    yaml && !hidden
}

impl Watcher {
    pub fn new(dir: impl Into<PathBuf>, options: SubmitOptions) -> Self {
        Self {
            dir: dir.into(),
            options,
            seen: HashMap::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Looks at every sweep file of the directory once: new and changed ones are validated and
    /// submitted (or refused); files that vanished are forgotten. An error is the directory's
    /// (or the store's), never a file's.
    pub async fn scan(&mut self, store: &Store) -> Result<Vec<WatchEvent>> {
        let mut files = Vec::new();
        let entries = std::fs::read_dir(&self.dir)
            .map_err(io_err(format!("cannot read {}", self.dir.display())))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if is_sweep_file(&path) && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        let gone: Vec<PathBuf> = self
            .seen
            .keys()
            .filter(|p| !files.contains(p))
            .cloned()
            .collect();
        for path in gone {
            self.seen.remove(&path);
            store.clear_rejection(&path.display().to_string()).await?;
        }
        let mut events = Vec::new();
        for path in files {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let young = meta
                .modified()
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_none_or(|age| age < SETTLE);
            if young {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let hash = hex::encode(Sha256::digest(&bytes));
            if self.seen.get(&path) == Some(&hash) {
                continue;
            }
            let changed = self.seen.insert(path.clone(), hash.clone()).is_some();
            if let Some(event) = self.take(store, &path, &bytes, &hash, changed).await? {
                events.push(event);
            }
        }
        Ok(events)
    }

    /// Validates and submits one version of one file.
    async fn take(
        &self,
        store: &Store,
        path: &Path,
        bytes: &[u8],
        hash: &str,
        changed: bool,
    ) -> Result<Option<WatchEvent>> {
        let shown = path.display().to_string();
        let refusal = match std::str::from_utf8(bytes) {
            Err(_) => Err(format!("{shown}: not UTF-8 text")),
            Ok(text) => {
                let base = path.parent().unwrap_or(Path::new("."));
                match load_sweep_str(text, &shown, base, &LoadOptions::default()) {
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
                store.clear_rejection(&shown).await?;
                Ok(Some(WatchEvent::Submitted {
                    path: path.to_path_buf(),
                    sweep,
                    summary,
                    changed,
                }))
            }
            Err(message) => {
                let message = message.trim_end().to_string();
                let new = store.record_rejection(&shown, hash, &message).await?;
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
