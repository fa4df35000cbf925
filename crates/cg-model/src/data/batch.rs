//! Turning bytes into normalised f32 batches, with CIFAR-style augmentation (4-px zero-pad random crop
//! and horizontal flip) drawn from the caller's seeded generator.

use rand::Rng;
use rand::rngs::StdRng;

use super::Dataset;

/// Per-channel mean and standard deviation in [0, 1] pixel units.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalisation {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalisation {
    /// Statistics of a (training) set.
    pub fn of(data: &Dataset) -> Self {
        let c = data.channels;
        let plane = data.side * data.side;
        let mut sum = vec![0f64; c];
        let mut sq = vec![0f64; c];
        for i in 0..data.len() {
            let img = data.image(i);
            for ch in 0..c {
                for &p in &img[ch * plane..(ch + 1) * plane] {
                    let v = f64::from(p) / 255.0;
                    sum[ch] += v;
                    sq[ch] += v * v;
                }
            }
        }
        let n = (data.len() * plane).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| ((s / n - m * m).max(0.0)).sqrt().max(1e-3) as f32)
            .collect();
        Self {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        }
    }
}

/// A batch ready to become tensors. `images` is [n, channels, side, side] row-major.
#[derive(Debug, Clone)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<i32>,
    pub n: usize,
    pub channels: usize,
    pub side: usize,
}

/// Builds batches from one data set.
#[derive(Debug)]
pub struct Batcher<'a> {
    pub data: &'a Dataset,
    pub norm: &'a Normalisation,
    /// Random crop + flip (training only).
    pub augment: bool,
}

const PAD: i64 = 4;

impl Batcher<'_> {
    /// The images at `idx`, normalised; augmented when `augment` and an rng is given.
    pub fn batch(&self, idx: &[usize], mut rng: Option<&mut StdRng>) -> Batch {
        let d = self.data;
        let (c, s) = (d.channels, d.side);
        let plane = s * s;
        // Per channel: value = (p/255 − mean)/std = p·scale + shift.
        let scale: Vec<f32> = self.norm.std.iter().map(|sd| 1.0 / (255.0 * sd)).collect();
        let shift: Vec<f32> = self
            .norm
            .mean
            .iter()
            .zip(&self.norm.std)
            .map(|(m, sd)| -m / sd)
            .collect();
        let mut images = vec![0f32; idx.len() * c * plane];
        for (bi, &i) in idx.iter().enumerate() {
            let src = d.image(i);
            let out = &mut images[bi * c * plane..(bi + 1) * c * plane];
            let (dy, dx, flip) = match (self.augment, rng.as_deref_mut()) {
                (true, Some(r)) => (
                    r.random_range(-PAD..=PAD),
                    r.random_range(-PAD..=PAD),
                    r.random_bool(0.5),
                ),
                _ => (0, 0, false),
            };
            for ch in 0..c {
                for y in 0..s {
                    for x in 0..s {
                        let sy = y as i64 + dy;
                        let sx0 = if flip { (s - 1 - x) as i64 } else { x as i64 };
                        let sx = sx0 + dx;
                        let p = if sy >= 0 && sy < s as i64 && sx >= 0 && sx < s as i64 {
                            src[ch * plane + sy as usize * s + sx as usize]
                        } else {
                            0
                        };
                        out[ch * plane + y * s + x] = f32::from(p) * scale[ch] + shift[ch];
                    }
                }
            }
        }
        Batch {
            images,
            labels: idx.iter().map(|&i| i32::from(d.labels[i])).collect(),
            n: idx.len(),
            channels: c,
            side: s,
        }
    }
}
