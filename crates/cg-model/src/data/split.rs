//! The validation split (`dataset.val_size`) and the training subset (`train.limit_train`).
//!
//! The held-out images are one draw per data set: seeded from a fixed constant and the training
//! split's own identity (its size and labels), never from `train.seed`, so every job over the same
//! data set and `val_size` holds out the same images. The generator is cg-core's SplitMix64 (fixed
//! forever), so the split also survives a `rand` upgrade. `train.limit_train` then draws its subset
//! from the remaining images with the run's seed, as it draws from the whole split without a
//! validation split.

use cg_core::SplitMix64;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;

use super::{DataSplits, Dataset};
use crate::{Error, Result};

/// The constant every validation draw is seeded from (mixed with the data set's identity).
const VAL_SEED: u64 = 0xc05e_6a7e_0da1_5e75;

/// Images held out of the training split for validation.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldOut {
    /// The held-out images, in their order in the training split.
    pub data: Dataset,
    /// Their indices in the training split as loaded (sorted).
    pub indices: Vec<usize>,
    /// The indices, in the training split as loaded, of the images trained on (sorted).
    pub trained: Vec<usize>,
}

impl HeldOut {
    /// The split's short hex hash (`provenance.val_split`), see [`split_hash`].
    pub fn hash(&self) -> String {
        split_hash(&self.indices)
    }
}

/// FNV-1a, 64 bits: a stable hash of bytes (the std hasher may change between releases).
fn fnv1a(bytes: impl IntoIterator<Item = u8>, mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// The identity a validation draw is seeded from: the split's size and a hash of its labels.
fn identity(train: &Dataset) -> u64 {
    let size = fnv1a((train.len() as u64).to_le_bytes(), FNV_OFFSET);
    fnv1a(train.labels.iter().copied(), size)
}

/// A short hex hash (16 digits) of sorted indices: equal for equal held-out sets.
pub fn split_hash(indices: &[usize]) -> String {
    let h = indices
        .iter()
        .fold(FNV_OFFSET, |h, i| fnv1a((*i as u64).to_le_bytes(), h));
    format!("{h:016x}")
}

/// The indices (sorted) of the `n` images of `train` held out for validation: the same for every
/// run over this training split, whatever its seed. `n` must be at least 1 and smaller than the
/// split.
pub fn validation_indices(train: &Dataset, n: usize) -> Result<Vec<usize>> {
    let len = train.len();
    if n == 0 || n >= len {
        return Err(Error::Config(format!(
            "dataset.val_size is {n} but the training split has {len} images; it must be at \
             least 1 and smaller than the split"
        )));
    }
    // A partial Fisher–Yates shuffle: the first `n` places are a uniform draw without replacement.
    let mut rng = SplitMix64::new(VAL_SEED ^ identity(train));
    let mut order: Vec<usize> = (0..len).collect();
    for i in 0..n {
        let j = i + rng.below((len - i) as u64) as usize;
        order.swap(i, j);
    }
    let mut held = order[..n].to_vec();
    held.sort_unstable();
    Ok(held)
}

/// The indices (sorted) of a seeded random subset of `limit` of `len` images; None when `limit` is
/// None or not smaller than `len` (everything is kept). The draw [`Dataset::subset`] makes.
pub fn subset_indices(len: usize, limit: Option<usize>, seed: u64) -> Option<Vec<usize>> {
    let limit = limit.filter(|l| *l < len)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut idx = sample(&mut rng, len, limit).into_vec();
    idx.sort_unstable();
    Some(idx)
}

/// The indices of `0..len` that are not in `held` (sorted).
fn complement(len: usize, held: &[usize]) -> Vec<usize> {
    let mut keep = vec![true; len];
    for i in held {
        keep[*i] = false;
    }
    (0..len).filter(|i| keep[*i]).collect()
}

impl DataSplits {
    /// Holds `val_size` images out of the training split ([`validation_indices`]), then keeps a
    /// seeded subset of `limit_train` of the remaining images for training (`seed`: the run's).
    /// Without `val_size` this is exactly `train.subset(limit_train, seed)`.
    pub fn split_training(
        mut self,
        val_size: Option<usize>,
        limit_train: Option<usize>,
        seed: u64,
    ) -> Result<Self> {
        let Some(n) = val_size else {
            self.train = self.train.subset(limit_train, seed);
            return Ok(self);
        };
        let held = validation_indices(&self.train, n)?;
        let rest = complement(self.train.len(), &held);
        let trained: Vec<usize> = match subset_indices(rest.len(), limit_train, seed) {
            Some(pick) => pick.into_iter().map(|i| rest[i]).collect(),
            None => rest,
        };
        let data = self.train.select(&held);
        self.train = self.train.select(&trained);
        self.val = Some(HeldOut {
            data,
            indices: held,
            trained,
        });
        Ok(self)
    }
}
