//! Sweep files.

/// The top-level keys a sweep file has besides the run sections.
pub const SWEEP_KEYS: [&str; 10] = [
    "name",
    "description",
    "method",
    "n_samples",
    "seed",
    "parameters",
    "presets",
    "seeds",
    "objectives",
    "reference_point",
];
