//! The 95% confidence interval of a mean over seeds: Student's t quantile `t(0.975, n − 1)` from an
//! exact table up to 30 degrees of freedom and a Cornish–Fisher expansion beyond (error below
//! 1e-8), and the interval's half-width `t · s / √n`. No interval for fewer than two values.

/// `t(0.975, df)` for `df` = 1..=30 (Student's t, two-sided 95%).
const T_975: [f64; 30] = [
    12.706_204_7,
    4.302_652_7,
    3.182_446_3,
    2.776_445_1,
    2.570_581_8,
    2.446_911_9,
    2.364_624_3,
    2.306_004_1,
    2.262_157_2,
    2.228_138_9,
    2.200_985_2,
    2.178_812_8,
    2.160_368_7,
    2.144_786_7,
    2.131_449_5,
    2.119_905_3,
    2.109_815_6,
    2.100_922_0,
    2.093_024_1,
    2.085_963_4,
    2.079_613_8,
    2.073_873_1,
    2.068_657_6,
    2.063_898_6,
    2.059_538_6,
    2.055_529_4,
    2.051_830_7,
    2.048_407_1,
    2.045_229_6,
    2.042_272_5,
];

/// The standard normal quantile at 0.975.
const Z_975: f64 = 1.959_963_984_540_054;

/// Student's t quantile at 0.975 for `df` degrees of freedom; `None` for `df` = 0.
pub fn t_975(df: usize) -> Option<f64> {
    match df {
        0 => None,
        1..=30 => Some(T_975[df - 1]),
        _ => {
            // Cornish–Fisher expansion of the t quantile around the normal one.
            let (z, n) = (Z_975, df as f64);
            let z2 = z * z;
            let g1 = (z2 + 1.0) * z / 4.0;
            let g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * z / 96.0;
            let g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * z / 384.0;
            let g4 =
                ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) * z / 92_160.0;
            Some(z + g1 / n + g2 / n.powi(2) + g3 / n.powi(3) + g4 / n.powi(4))
        }
    }
}

/// The half-width of the 95% t interval of a mean of `n` values with sample standard deviation
/// `std`: `t(0.975, n − 1) · std / √n`; `None` for fewer than two values.
pub fn half_width_95(std: f64, n: usize) -> Option<f64> {
    let t = t_975(n.checked_sub(1)?)?;
    Some(t * std / (n as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_tables() {
        for (df, known) in [
            (1, 12.706),
            (2, 4.303),
            (4, 2.776),
            (30, 2.042),
            (60, 2.000),
        ] {
            let t = t_975(df).unwrap();
            assert!(
                (t - known).abs() < 5e-4,
                "t(0.975, {df}) = {t}, not {known}"
            );
        }
        assert_eq!(t_975(0), None);
        // The expansion continues the table smoothly and tends to the normal quantile.
        assert!(t_975(31).unwrap() < t_975(30).unwrap());
        assert!((t_975(31).unwrap() - 2.039_513).abs() < 1e-5);
        assert!((t_975(1_000_000).unwrap() - Z_975).abs() < 1e-5);
    }

    #[test]
    fn interval_of_known_samples() {
        // 1, 2, 3, 4: mean 2.5, s = √(5/3), t(0.975, 3) = 3.182446.
        let s = (5.0f64 / 3.0).sqrt();
        let h = half_width_95(s, 4).unwrap();
        assert!((h - 3.182_446_3 * s / 2.0).abs() < 1e-12);
        assert!((h - 2.054_260).abs() < 1e-5, "{h}");
        assert_eq!(half_width_95(0.3, 1), None);
        assert_eq!(half_width_95(0.0, 0), None);
    }
}
