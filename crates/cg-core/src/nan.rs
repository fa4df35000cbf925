//! JSON has no NaN: serde_json writes a non-finite float as `null`. Fields that may hold one read
//! `null` back as NaN, so a result with a NaN metric round-trips instead of failing to parse.

use serde::{Deserialize, Deserializer};

/// `deserialize_with` for an `f64` that may have been written as `null`.
pub fn f64_or_nan<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

#[cfg(test)]
mod tests {
    use crate::{BlockGateStats, EpochRecord};

    #[test]
    fn a_nan_metric_round_trips_through_json() {
        let record = EpochRecord {
            epoch: 1,
            train_loss: f64::NAN,
            train_acc: 0.5,
            test_acc: f64::INFINITY,
            val_acc: None,
            savings_nominal: 0.0,
            savings_actual: 0.0,
            lr: 0.1,
            tau: 1.0,
            flops_weight: 0.0,
            wall_secs: 1.0,
            gates: vec![BlockGateStats {
                block_idx: 0,
                gate_open_rate: 1.0,
                mean_cir: f64::NAN,
                routing_share: None,
                class_open_rates: None,
            }],
        };
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains("\"train_loss\":null"), "{json}");
        let back: EpochRecord = serde_json::from_str(&json).unwrap();
        assert!(back.train_loss.is_nan() && back.test_acc.is_nan());
        assert!(back.gates[0].mean_cir.is_nan());
        assert_eq!(back.train_acc, 0.5);
        assert!(serde_json::from_str::<EpochRecord>(&json.replace("0.5", "\"x\"")).is_err());
    }
}
