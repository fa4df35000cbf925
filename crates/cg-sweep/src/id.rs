//! Job ids and data fingerprints. A job id is a hash of what makes a run what it is: the settings that
//! differ from the defaults (so adding a new default-valued field to cg-core changes no id), the data set
//! kind and a fingerprint of the data. The absolute data path is left out, so the same sweep gets the same
//! ids on every machine that holds the same files.

use std::collections::BTreeMap;
use std::path::Path;

use cg_core::{DatasetKind, DatasetSpec, JobId, RunConfig};
use sha2::{Digest, Sha256};

/// Bumped if the id recipe ever changes (old ids then stop matching on purpose).
const ID_VERSION: &[u8] = b"cg-job-v1\n";
/// Hex digits of a job id (128 bits of SHA-256).
pub const JOB_ID_LEN: usize = 32;
/// Hex digits shown in tables.
pub const SHORT_ID_LEN: usize = 10;

/// The id of a job: SHA-256 over the non-default settings (without `dataset.path`), the data set kind and
/// `data_fingerprint`, as 32 hex digits.
pub fn job_id(config: &RunConfig, data_fingerprint: &str) -> JobId {
    let mut settings: BTreeMap<String, serde_json::Value> =
        config.non_default_values().into_iter().collect();
    settings.remove("dataset.path");
    id_from_settings(config.dataset.kind, &settings, data_fingerprint)
}

/// [`job_id`] from the non-default settings (without `dataset.path`), for expansion, which keeps them up
/// to date per job instead of recomputing them from each configuration.
pub(crate) fn id_from_settings(
    kind: DatasetKind,
    settings: &BTreeMap<String, serde_json::Value>,
    data_fingerprint: &str,
) -> JobId {
    let mut hasher = Sha256::new();
    hasher.update(ID_VERSION);
    hasher.update(kind_name(kind).as_bytes());
    hasher.update(b"\n");
    hasher.update(serde_json::to_vec(settings).expect("JSON values serialise"));
    hasher.update(b"\n");
    hasher.update(data_fingerprint.as_bytes());
    let digest = hasher.finalize();
    hex::encode(&digest[..JOB_ID_LEN / 2])
}

/// A fingerprint of the data a spec names: the data set kind plus the relative names and sizes of all
/// files under `path` (hidden files skipped; contents are not read, so it is fast on 60,000 images).
/// Synthetic data hashes its spec. A missing directory has a fingerprint of its own (`missing`), so ids
/// computed without the data differ from ids computed with it. 32 hex digits.
pub fn data_fingerprint(spec: &DatasetSpec) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"cg-data-v1\n");
    hasher.update(kind_name(spec.kind).as_bytes());
    hasher.update(b"\n");
    match (spec.kind, &spec.path) {
        (DatasetKind::Synthetic, _) => {
            let synthetic = spec.synthetic.clone().unwrap_or_default();
            hasher.update(serde_json::to_vec(&synthetic).expect("spec serialises"));
        }
        (_, None) => hasher.update(b"no path"),
        (_, Some(path)) => {
            let root = Path::new(path);
            if root.is_dir() {
                let mut files = Vec::new();
                list_files(root, "", 0, &mut files);
                files.sort();
                for (name, size) in files {
                    hasher.update(name.as_bytes());
                    hasher.update(format!("\t{size}\n").as_bytes());
                }
            } else {
                hasher.update(b"missing");
            }
        }
    }
    hex::encode(&hasher.finalize()[..16])
}

fn list_files(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<(String, u64)>) {
    // Data sets are at most `train/<class>/<file>` deep; the cap only guards against symlink loops.
    if depth > 16 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue;
        };
        if meta.is_dir() {
            list_files(&entry.path(), &rel, depth + 1, out);
        } else {
            out.push((rel, meta.len()));
        }
    }
}

fn kind_name(kind: DatasetKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &Path) -> DatasetSpec {
        DatasetSpec {
            kind: DatasetKind::Idx,
            val_size: None,
            path: Some(path.display().to_string()),
            augment: None,
            synthetic: None,
        }
    }

    #[test]
    fn fingerprint_follows_names_and_sizes_not_location() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for dir in [a.path(), b.path()] {
            std::fs::create_dir(dir.join("train")).unwrap();
            std::fs::write(dir.join("train/x.bin"), b"1234").unwrap();
            std::fs::write(dir.join(".DS_Store"), b"junk").unwrap();
        }
        let fa = data_fingerprint(&spec(a.path()));
        assert_eq!(fa, data_fingerprint(&spec(b.path())));
        assert_eq!(fa.len(), 32);
        std::fs::write(b.path().join("train/x.bin"), b"12345").unwrap();
        assert_ne!(fa, data_fingerprint(&spec(b.path())));
        assert_ne!(fa, data_fingerprint(&spec(&a.path().join("nope"))));
    }

    #[test]
    fn ids_ignore_the_data_path() {
        let mut a = RunConfig::with_dataset(spec(Path::new("/one/place")));
        let mut b = RunConfig::with_dataset(spec(Path::new("/another/place")));
        assert_eq!(job_id(&a, "fp"), job_id(&b, "fp"));
        assert_ne!(job_id(&a, "fp"), job_id(&a, "other fp"));
        a.gate.threshold = 0.9;
        assert_ne!(job_id(&a, "fp"), job_id(&b, "fp"));
        b.gate.threshold = 0.9;
        assert_eq!(job_id(&a, "fp"), job_id(&b, "fp"));
        assert_eq!(job_id(&a, "fp").len(), JOB_ID_LEN);
    }
}
