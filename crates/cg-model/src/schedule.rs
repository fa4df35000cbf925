//! Schedules over training progress p ∈ [0, 1]: learning rate, Gumbel temperature, FLOPs-loss weight.

use cg_core::{LossSpec, Schedule, TrainSpec};

/// Learning rate at progress `p`: linear warm-up over `warmup`, then cosine / step / constant.
pub fn learning_rate(train: &TrainSpec, p: f64) -> f64 {
    let peak = train.effective_lr();
    if train.warmup > 0.0 && p < train.warmup {
        return peak * (p / train.warmup).max(1e-3);
    }
    let q = if train.warmup < 1.0 {
        ((p - train.warmup) / (1.0 - train.warmup)).clamp(0.0, 1.0)
    } else {
        1.0
    };
    match train.schedule {
        Schedule::Cosine => peak * 0.5 * (1.0 + (std::f64::consts::PI * q).cos()),
        Schedule::Step => {
            let drops = usize::from(q >= 0.5) + usize::from(q >= 0.75);
            peak * 0.1f64.powi(drops as i32)
        }
        Schedule::Constant => peak,
    }
}

/// Geometric annealing `τ = τ_start·(τ_end/τ_start)^p`.
pub fn temperature(tau_start: f64, tau_end: f64, p: f64) -> f64 {
    tau_start * (tau_end / tau_start).powf(p.clamp(0.0, 1.0))
}

/// Progressive λ_flops: 0 before `ramp_start`, linear up to `flops_weight` at `ramp_end`, then constant.
pub fn flops_weight(loss: &LossSpec, p: f64) -> f64 {
    if p < loss.ramp_start {
        0.0
    } else if p >= loss.ramp_end {
        loss.flops_weight
    } else {
        loss.flops_weight * (p - loss.ramp_start) / (loss.ramp_end - loss.ramp_start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_hit_their_end_points() {
        let t = TrainSpec::default();
        assert!((learning_rate(&t, 0.01) - 0.1).abs() < 1e-12);
        assert!(learning_rate(&t, 1.0).abs() < 1e-12);
        assert!(learning_rate(&t, 0.005) < 0.1);
        assert!((temperature(2.0, 0.5, 0.0) - 2.0).abs() < 1e-12);
        assert!((temperature(2.0, 0.5, 1.0) - 0.5).abs() < 1e-12);
        assert!((temperature(2.0, 0.5, 0.5) - 1.0).abs() < 1e-12);
        let l = LossSpec::default();
        assert_eq!(flops_weight(&l, 0.05), 0.0);
        assert!((flops_weight(&l, 0.3) - 0.25).abs() < 1e-12);
        assert_eq!(flops_weight(&l, 0.9), 0.5);
        let step = TrainSpec {
            schedule: Schedule::Step,
            warmup: 0.0,
            ..TrainSpec::default()
        };
        assert!((learning_rate(&step, 0.8) - 0.001).abs() < 1e-12);
    }
}
