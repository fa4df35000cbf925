//! The CIFAR-10 binary version: `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin`, each a
//! sequence of records of 1 label byte + 3,072 pixel bytes (channel-major 3×32×32).

use std::path::Path;

use super::{Dataset, read_file};
use crate::Result;
use crate::error::{data_err, io_err};

const RECORD: usize = 1 + 3 * 32 * 32;

/// Loads the train and test splits of a CIFAR-10 binary directory (or its `cifar-10-batches-bin/` child).
pub fn load_cifar_bin(dir: &Path) -> Result<(Dataset, Dataset)> {
    let nested = dir.join("cifar-10-batches-bin");
    let dir = if nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    };
    if !dir.is_dir() {
        return Err(data_err(
            &dir,
            "not a directory (expected data_batch_1.bin … test_batch.bin)",
        ));
    }
    let train_files: Vec<_> = (1..=5)
        .map(|i| dir.join(format!("data_batch_{i}.bin")))
        .collect();
    let train = load_files(&train_files)?;
    let test = load_files(&[dir.join("test_batch.bin")])?;
    Ok((train, test))
}

fn load_files(files: &[std::path::PathBuf]) -> Result<Dataset> {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for f in files {
        if !f.exists() {
            return Err(data_err(f, "missing"));
        }
        let bytes = read_file(f)?;
        if bytes.is_empty() || bytes.len() % RECORD != 0 {
            return Err(data_err(
                f,
                format!(
                    "{} bytes is not a whole number of {RECORD}-byte records (truncated or not CIFAR-10 binary)",
                    bytes.len()
                ),
            ));
        }
        for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
            if rec[0] >= 10 {
                return Err(data_err(
                    f,
                    format!("record {i}: label {} is outside 0..=9", rec[0]),
                ));
            }
            labels.push(rec[0]);
            images.extend_from_slice(&rec[1..]);
        }
    }
    Ok(Dataset {
        images,
        labels,
        channels: 3,
        side: 32,
        classes: 10,
    })
}

/// Writes a CIFAR-10 binary batch file from 3×32×32 images: for tests.
pub fn write_cifar_bin(path: &Path, images: &[u8], labels: &[u8]) -> Result<()> {
    let mut out = Vec::with_capacity(labels.len() * RECORD);
    for (i, l) in labels.iter().enumerate() {
        out.push(*l);
        out.extend_from_slice(&images[i * (RECORD - 1)..(i + 1) * (RECORD - 1)]);
    }
    std::fs::write(path, out).map_err(io_err(path))
}
