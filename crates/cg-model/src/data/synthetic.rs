//! A seeded synthetic data set with a learnable signal: each class has a random prototype image, and
//! every sample is its class prototype plus noise. For tests and benchmarks only.

use cg_core::SyntheticSpec;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::Dataset;

/// Both splits of `spec` (validated: at most [`cg_core::limits::DATA_CLASSES`] classes, so that
/// every label fits its byte).
pub fn synthetic(spec: &SyntheticSpec, seed: u64) -> (Dataset, Dataset) {
    debug_assert!(spec.classes <= cg_core::limits::DATA_CLASSES);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_da7a);
    let len = spec.channels * spec.side * spec.side;
    let protos: Vec<Vec<u8>> = (0..spec.classes)
        .map(|_| (0..len).map(|_| rng.random::<u8>()).collect())
        .collect();
    let mut make = |n: usize| {
        let mut images = Vec::with_capacity(n * len);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let label = i % spec.classes;
            labels.push(label as u8);
            images.extend(protos[label].iter().map(|p| {
                let noise: i16 = rng.random_range(-64..=64);
                (i16::from(*p) + noise).clamp(0, 255) as u8
            }));
        }
        Dataset {
            images,
            labels,
            channels: spec.channels,
            side: spec.side,
            classes: spec.classes,
        }
    };
    let train = make(spec.n_train);
    let test = make(spec.n_test);
    (train, test)
}
