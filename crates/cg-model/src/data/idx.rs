//! The IDX format of MNIST and Fashion-MNIST: a directory with `train-images-idx3-ubyte`,
//! `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each raw or `.gz`.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::{Dataset, read_file};
use crate::error::{data_err, io_err};
use crate::{Error, Result};

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;
/// More than this many bytes after decompression is refused (a gzip bomb, or not MNIST).
const MAX_DECODED: u64 = 1 << 31;

/// Loads the train and test splits of an IDX directory.
pub fn load_idx_dir(dir: &Path) -> Result<(Dataset, Dataset)> {
    if !dir.is_dir() {
        return Err(data_err(
            dir,
            "not a directory (expected the MNIST IDX files inside)",
        ));
    }
    let train = load_split(dir, "train")?;
    let test = load_split(dir, "t10k")?;
    if train.side != test.side {
        return Err(data_err(
            dir,
            format!(
                "train images are {0}x{0} but test images are {1}x{1}",
                train.side, test.side
            ),
        ));
    }
    Ok((train, test))
}

fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    for name in [format!("{stem}.gz"), stem.to_string()] {
        let p = dir.join(&name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(data_err(
        dir.join(stem),
        "missing (looked for the raw file and `.gz`)",
    ))
}

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = read_file(path)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..])
            .take(MAX_DECODED)
            .read_to_end(&mut out)
            .map_err(|e| data_err(path, format!("corrupt gzip stream: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn load_split(dir: &Path, prefix: &str) -> Result<Dataset> {
    let img_path = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lbl_path = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let img = read_maybe_gz(&img_path)?;
    let lbl = read_maybe_gz(&lbl_path)?;

    if img.len() < 16 {
        return Err(data_err(
            &img_path,
            format!("truncated header: {} bytes, need 16", img.len()),
        ));
    }
    let magic = be_u32(&img, 0);
    if magic != IMAGES_MAGIC {
        return Err(data_err(
            &img_path,
            format!(
                "wrong magic number 0x{magic:08x}, expected 0x{IMAGES_MAGIC:08x} (IDX u8 images, 3 dims)"
            ),
        ));
    }
    let (n, rows, cols) = (
        be_u32(&img, 4) as usize,
        be_u32(&img, 8) as usize,
        be_u32(&img, 12) as usize,
    );
    if rows != cols || rows == 0 {
        return Err(data_err(
            &img_path,
            format!("images are {rows}x{cols}; only square images are supported"),
        ));
    }
    let expected = n
        .checked_mul(rows * cols)
        .and_then(|b| b.checked_add(16))
        .ok_or_else(|| data_err(&img_path, "header sizes overflow"))?;
    if img.len() != expected {
        return Err(data_err(
            &img_path,
            format!(
                "{} bytes, but the header announces {n} images of {rows}x{cols} ({expected} bytes){}",
                img.len(),
                if img.len() < expected {
                    ": truncated"
                } else {
                    ""
                }
            ),
        ));
    }

    if lbl.len() < 8 {
        return Err(data_err(
            &lbl_path,
            format!("truncated header: {} bytes, need 8", lbl.len()),
        ));
    }
    let magic = be_u32(&lbl, 0);
    if magic != LABELS_MAGIC {
        return Err(data_err(
            &lbl_path,
            format!(
                "wrong magic number 0x{magic:08x}, expected 0x{LABELS_MAGIC:08x} (IDX u8 labels)"
            ),
        ));
    }
    let n_labels = be_u32(&lbl, 4) as usize;
    if n_labels != n {
        return Err(data_err(
            &lbl_path,
            format!(
                "{n_labels} labels but {} holds {n} images",
                img_path.display()
            ),
        ));
    }
    if lbl.len() != 8 + n {
        return Err(data_err(
            &lbl_path,
            format!("{} bytes, expected {} for {n} labels", lbl.len(), 8 + n),
        ));
    }
    let labels = lbl[8..].to_vec();
    if let Some((i, bad)) = labels.iter().enumerate().find(|(_, l)| **l >= 10) {
        return Err(data_err(
            &lbl_path,
            format!("label {bad} at index {i} is outside 0..=9"),
        ));
    }
    Ok(Dataset {
        images: img[16..].to_vec(),
        labels,
        channels: 1,
        side: rows,
        classes: 10,
    })
}

/// Writes an IDX image file (raw, or gzip when the name ends in `.gz`): for tests and samples.
pub fn write_idx_images(path: &Path, images: &[u8], n: usize, side: usize) -> Result<()> {
    let mut bytes = Vec::with_capacity(16 + images.len());
    for v in [IMAGES_MAGIC, n as u32, side as u32, side as u32] {
        bytes.extend_from_slice(&v.to_be_bytes());
    }
    bytes.extend_from_slice(images);
    write_maybe_gz(path, &bytes)
}

/// Writes an IDX label file (raw, or gzip when the name ends in `.gz`).
pub fn write_idx_labels(path: &Path, labels: &[u8]) -> Result<()> {
    let mut bytes = Vec::with_capacity(8 + labels.len());
    for v in [LABELS_MAGIC, labels.len() as u32] {
        bytes.extend_from_slice(&v.to_be_bytes());
    }
    bytes.extend_from_slice(labels);
    write_maybe_gz(path, &bytes)
}

fn write_maybe_gz(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let out = if path.extension().is_some_and(|e| e == "gz") {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).map_err(io_err(path))?;
        enc.finish().map_err(io_err(path))?
    } else {
        bytes.to_vec()
    };
    std::fs::write(path, out).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}
