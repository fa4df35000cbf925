//! Data sets, decoded once into memory as u8, and the batches built from them.
//!
//! Loaders: IDX (MNIST layout, `.gz` or raw), the CIFAR-10 binary format, image folders
//! (`train|test/<class>/*.jpg|png`) and a seeded synthetic set. Every malformed input is an
//! [`Error::Data`] naming the file and the problem; nothing here panics on bad bytes.

mod batch;
mod cifar;
pub mod fetch;
mod folder;
mod idx;
mod split;
mod synthetic;

use std::path::{Path, PathBuf};

use cg_core::{DatasetKind, DatasetSpec};

pub use batch::{Batch, Batcher, Normalisation};
pub use cifar::{load_cifar_bin, write_cifar_bin};
pub use folder::load_image_folder;
pub use idx::{load_idx_dir, write_idx_images, write_idx_labels};
pub use split::{HeldOut, split_hash, subset_indices, validation_indices};
pub use synthetic::synthetic;

use crate::{Error, Result};

/// Images of one split, N×C×H×W bytes, with their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub channels: usize,
    pub side: usize,
    pub classes: usize,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_len(&self) -> usize {
        self.channels * self.side * self.side
    }

    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// A seeded random subset of `limit` images (all of them when `limit` is None or too large), kept in
    /// their original order.
    pub fn subset(self, limit: Option<usize>, seed: u64) -> Self {
        match subset_indices(self.len(), limit, seed) {
            Some(idx) => self.select(&idx),
            None => self,
        }
    }

    /// The images at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Self {
        let mut images = Vec::with_capacity(idx.len() * self.image_len());
        let mut labels = Vec::with_capacity(idx.len());
        for i in idx {
            images.extend_from_slice(self.image(*i));
            labels.push(self.labels[*i]);
        }
        Self {
            images,
            labels,
            channels: self.channels,
            side: self.side,
            classes: self.classes,
        }
    }

    /// Zero-pads every image to `side × side` (centred), e.g. 28 → 32 for MNIST.
    pub fn pad_to(self, side: usize) -> Self {
        if self.side >= side {
            return self;
        }
        let (old, c) = (self.side, self.channels);
        let off = (side - old) / 2;
        let mut images = vec![0u8; self.len() * c * side * side];
        for i in 0..self.len() {
            let src = self.image(i);
            for ch in 0..c {
                for y in 0..old {
                    let s = ch * old * old + y * old;
                    let d = i * c * side * side + ch * side * side + (y + off) * side + off;
                    images[d..d + old].copy_from_slice(&src[s..s + old]);
                }
            }
        }
        Self {
            images,
            side,
            ..self
        }
    }
}

/// A training and a test split, and the validation images held out of the training split.
#[derive(Debug, Clone)]
pub struct DataSplits {
    pub train: Dataset,
    pub test: Dataset,
    /// Images held out of the training split (`dataset.val_size`, see
    /// [`DataSplits::split_training`]); None without a validation split.
    pub val: Option<HeldOut>,
    /// Where the data came from, for messages.
    pub source: String,
}

/// Loads the data set a run file names. `path` must already be resolved (absolute or relative to the
/// working directory). 28-pixel images (MNIST-like sets) are zero-padded to 32.
pub fn load(spec: &DatasetSpec, seed: u64) -> Result<DataSplits> {
    let path = || -> Result<PathBuf> {
        spec.path
            .as_ref()
            .map(PathBuf::from)
            .ok_or_else(|| Error::Config("dataset.path is required for this dataset kind".into()))
    };
    let (train, test, source) = match spec.kind {
        DatasetKind::Idx => {
            let p = path()?;
            let (a, b) = load_idx_dir(&p)?;
            (a, b, p.display().to_string())
        }
        DatasetKind::CifarBin => {
            let p = path()?;
            let (a, b) = load_cifar_bin(&p)?;
            (a, b, p.display().to_string())
        }
        DatasetKind::ImageFolder => {
            let p = path()?;
            let (a, b) = load_image_folder(&p)?;
            (a, b, p.display().to_string())
        }
        DatasetKind::Synthetic => {
            let s = spec.synthetic.clone().unwrap_or_default();
            let (a, b) = synthetic(&s, seed);
            (a, b, "synthetic".to_string())
        }
    };
    if train.is_empty() || test.is_empty() {
        return Err(Error::Data {
            path: PathBuf::from(&source),
            message: format!(
                "empty split: {} training and {} test images",
                train.len(),
                test.len()
            ),
        });
    }
    let side = if train.side == 28 { 32 } else { train.side };
    Ok(DataSplits {
        train: train.pad_to(side),
        test: test.pad_to(side),
        val: None,
        source,
    })
}

/// Largest data file read (CIFAR-10's batches are 30 MB, MNIST's raw images 47 MB).
pub const MAX_DATA_FILE_BYTES: u64 = 1 << 31;
/// Largest image file of an image folder.
pub const MAX_IMAGE_FILE_BYTES: u64 = 64 << 20;

/// Reads a data file of at most [`MAX_DATA_FILE_BYTES`].
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    read_file_capped(path, MAX_DATA_FILE_BYTES)
}

/// Reads a regular file (a symlink is followed) of at most `max` bytes. A device, FIFO or
/// directory (a link to `/dev/zero`, say) is refused before anything is read, and the read itself
/// stops past `max`, so a file that grows meanwhile cannot eat memory either.
pub(crate) fn read_file_capped(path: &Path, max: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(crate::error::io_err(path))?;
    if !meta.is_file() {
        return Err(crate::error::data_err(
            path,
            "not a regular file (a device, pipe or directory?)",
        ));
    }
    let too_big = |n: u64| {
        crate::error::data_err(
            path,
            format!("{n} bytes, more than the {max} that a file of this kind may have"),
        )
    };
    if meta.len() > max {
        return Err(too_big(meta.len()));
    }
    let file = std::fs::File::open(path).map_err(crate::error::io_err(path))?;
    let mut out = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1)
        .read_to_end(&mut out)
        .map_err(crate::error::io_err(path))?;
    if out.len() as u64 > max {
        return Err(too_big(out.len() as u64));
    }
    Ok(out)
}
