//! Sample ratio mismatch: do the arms hold the shares of users their weights promise?
//! A mismatch means the assignment or the counting is broken, and the comparisons
//! cannot be trusted.
//!
//! GrowthBook `checkSrm` (`packages/back-end/src/util/stats.ts:4-37`) at `8f1db44`,
//! its thresholds (`packages/shared/src/constants.ts:111,113`) and
//! `getSRMHealthData` (`packages/shared/src/health/health.ts:73-95`).

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// GrowthBook `DEFAULT_SRM_MINIMINUM_COUNT_PER_VARIATION`.
pub const DEFAULT_SRM_MIN_USERS: u64 = 8;

/// GrowthBook `DEFAULT_SRM_THRESHOLD`: a p-value below it is a mismatch.
pub const DEFAULT_SRM_THRESHOLD: f64 = 0.001;

/// The p-value of Pearson's χ² test of `users` (per arm) against the shares promised
/// by `weights` (per arm, any positive scale), as GrowthBook's TypeScript `checkSrm`:
/// - an arm is kept when its weight is positive and it has a count (`users` may be
///   shorter than `weights`; users beyond the last weight are ignored);
/// - fewer than 2 kept arms, or no users in them: 1;
/// - else `e_i = w_i/Σw · Σo`, `χ² = Σ (o_i − e_i)²/e_i`, and
///   `p = 1 − F_χ²(χ², k − 1)` with `k` the number of **kept** arms (the Python
///   `check_srm` uses all arms and disagrees when a weight is 0); `χ² = 0` gives 1.
///
/// GrowthBook keeps a negative or infinite weight and returns nonsense; here only
/// positive, finite weights count. The result is always in `[0, 1]`.
pub fn srm_p_value(users: &[u64], weights: &[f64]) -> f64 {
    let kept = kept_arms(users, weights);
    if kept.len() < 2 {
        return 1.0;
    }
    let total_users: f64 = kept.iter().map(|(o, _)| *o as f64).sum();
    if total_users == 0.0 {
        return 1.0;
    }
    // Weights rescaled by the largest, so that their sum cannot overflow.
    let largest = kept.iter().map(|(_, w)| *w).fold(0.0, f64::max);
    let total_weight: f64 = kept.iter().map(|(_, w)| w / largest).sum();
    let chi_squared: f64 = kept
        .iter()
        .map(|(o, w)| {
            let (observed, expected) = (*o as f64, w / largest / total_weight * total_users);
            if expected > 0.0 {
                (observed - expected).powi(2) / expected
            } else if observed == 0.0 {
                0.0
            } else {
                // A share below f64's range holding users: infinitely unlikely.
                f64::INFINITY
            }
        })
        .sum();
    // χ² = 0 (a perfect split) answers 1 without reaching the gamma function, whose
    // ln(x) it would hit; NaN cannot happen, but would also read as "no evidence".
    if chi_squared.is_nan() || chi_squared <= 0.0 {
        return 1.0;
    }
    let Ok(distribution) = ChiSquared::new((kept.len() - 1) as f64) else {
        return 1.0;
    };
    let p = distribution.sf(chi_squared);
    if p.is_finite() {
        p.clamp(0.0, 1.0)
    } else {
        1.0
    }
}

/// The verdict of [`sample_ratio`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SampleRatio {
    /// Too few users to judge: fewer than `min_users` per kept arm on average, or
    /// fewer than two kept arms.
    Insufficient { min_users: u64 },
    /// No evidence of a mismatch: `p_value ≥ threshold`.
    Ok { p_value: f64 },
    /// The split is not what the weights promise: `p_value < threshold`.
    Mismatch { p_value: f64 },
}

/// The sample ratio check of `users` against `weights` ([`srm_p_value`]), as
/// GrowthBook's `getSRMHealthData` judges it: not computed while the kept arms hold
/// fewer than `k · min_users` users in total (GrowthBook's default 8 per arm,
/// [`DEFAULT_SRM_MIN_USERS`]), else a mismatch when `p < threshold` (GrowthBook's
/// default 0.001, [`DEFAULT_SRM_THRESHOLD`]).
///
/// A total rather than a per-arm minimum, as GrowthBook does: an arm that receives
/// nobody at all is the plainest mismatch, and must not read as "too few users".
/// GrowthBook counts every arm and its users; here only the kept arms (positive
/// weight), the ones the χ² test compares.
pub fn sample_ratio(users: &[u64], weights: &[f64], min_users: u64, threshold: f64) -> SampleRatio {
    let kept = kept_arms(users, weights);
    let total: u128 = kept.iter().map(|(o, _)| u128::from(*o)).sum();
    if kept.len() < 2 || total < kept.len() as u128 * u128::from(min_users) {
        return SampleRatio::Insufficient { min_users };
    }
    let p_value = srm_p_value(users, weights);
    if p_value < threshold {
        SampleRatio::Mismatch { p_value }
    } else {
        SampleRatio::Ok { p_value }
    }
}

/// The `(users, weight)` of the arms that take part: a positive, finite weight and a
/// user count.
fn kept_arms(users: &[u64], weights: &[f64]) -> Vec<(u64, f64)> {
    users
        .iter()
        .zip(weights)
        .filter(|(_, w)| **w > 0.0 && w.is_finite())
        .map(|(o, w)| (*o, *w))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // GrowthBook packages/back-end/test/stats.test.ts at 8f1db44, "calculates SRM
    // correctly" (lines 1-45): checkSrm(users, weights).toFixed(9), so each value is
    // checked to within half a unit of the 9th decimal (5e-10), the precision it is
    // published at. The exact 1s are compared exactly.
    #[test]
    fn calculates_srm_correctly() {
        let vectors: [(&[u64], &[f64], f64); 10] = [
            // Simple 2-way test
            (&[1000, 1200], &[0.5, 0.5], 0.000020079),
            // Another 2-way test
            (&[135, 115], &[0.5, 0.5], 0.205903211),
            // Uneven weights
            (&[310, 98], &[0.75, 0.25], 0.647434186),
            // Not enough valid variations
            (&[1000], &[0.5, 0.5], 1.0),
            // Not enough valid weights
            (&[1000, 900, 800], &[1.0, 0.0, 0.0], 1.0),
            // Skip empty weights
            (&[1000, 1200, 900], &[0.5, 0.5, 0.0], 0.000020079),
            // Skip if all users are 0
            (&[0, 0, 0], &[0.34, 0.33, 0.33], 1.0),
            // Use empty users in the test
            (&[0, 10, 10], &[0.34, 0.33, 0.33], 0.005790624),
            // More than 2 variations
            (&[500, 500, 600], &[0.34, 0.33, 0.33], 0.000592638),
            // Completely equal (χ² = 0)
            (&[500, 500], &[0.5, 0.5], 1.0),
        ];
        for (users, weights, want) in vectors {
            let got = srm_p_value(users, weights);
            if want == 1.0 {
                assert_eq!(got, 1.0, "{users:?} {weights:?}");
            } else {
                assert!(
                    (got - want).abs() <= 5e-10,
                    "{users:?} {weights:?}: {got} vs {want}"
                );
            }
        }
    }

    // Cross-check, not a published vector: the same cases to full precision, from
    // mpmath 1.3.0 at 40 digits (`gammainc(k/2, χ²/2, inf, regularized=True)`), at
    // 1e-12 relative.
    #[test]
    fn cross_check_srm_at_full_precision() {
        let cases: [(&[u64], &[f64], f64); 5] = [
            (&[1000, 1200], &[0.5, 0.5], 2.007_865_612_426_485e-5),
            (&[135, 115], &[0.5, 0.5], 0.205_903_210_732_068_3),
            (&[310, 98], &[0.75, 0.25], 0.647_434_185_701_797),
            (&[0, 10, 10], &[0.34, 0.33, 0.33], 0.005_790_624_403_423_195),
            (
                &[500, 500, 600],
                &[0.34, 0.33, 0.33],
                0.000_592_637_931_527_318_5,
            ),
        ];
        for (users, weights, want) in cases {
            let got = srm_p_value(users, weights);
            assert!(
                (got - want).abs() <= 1e-12 * want,
                "{users:?}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn invalid_weights_drop_their_arm() {
        let p = srm_p_value(&[1000, 1200, 5], &[0.5, 0.5, 0.0]);
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(srm_p_value(&[1000, 1200, 5], &[0.5, 0.5, bad]), p);
        }
        // Weights need not sum to 1, and may be huge.
        assert_eq!(srm_p_value(&[1000, 1200], &[1e308, 1e308]), p);
        assert_eq!(srm_p_value(&[1000, 1200], &[3.0, 3.0]), p);
    }

    #[test]
    fn huge_counts_stay_in_range() {
        assert_eq!(srm_p_value(&[u64::MAX, u64::MAX], &[1.0, 1.0]), 1.0);
        assert_eq!(srm_p_value(&[u64::MAX, 0], &[1.0, 1.0]), 0.0);
        // A weight so small its expected count is 0, yet a user landed there.
        let smallest = f64::from_bits(1);
        assert_eq!(srm_p_value(&[0, 1], &[1e300, smallest]), 0.0);
        assert_eq!(srm_p_value(&[5, 0], &[1e300, smallest]), 1.0);
    }

    #[test]
    fn the_check_waits_for_enough_users() {
        // 7 users per arm: GrowthBook's "not-enough-traffic".
        assert_eq!(
            sample_ratio(&[7, 7], &[0.5, 0.5], 8, 0.001),
            SampleRatio::Insufficient { min_users: 8 }
        );
        // One weighted arm: nothing to compare.
        assert_eq!(
            sample_ratio(&[1000, 1200], &[1.0, 0.0], 8, 0.001),
            SampleRatio::Insufficient { min_users: 8 }
        );
        // 8 per arm on average is enough.
        assert!(matches!(
            sample_ratio(&[8, 8], &[0.5, 0.5], 8, 0.001),
            SampleRatio::Ok { p_value } if p_value == 1.0
        ));
    }

    #[test]
    fn a_mismatch_is_below_the_threshold() {
        let SampleRatio::Mismatch { p_value } =
            sample_ratio(&[1000, 1200], &[0.5, 0.5], DEFAULT_SRM_MIN_USERS, 0.001)
        else {
            panic!("1000/1200 at 1:1 is a mismatch");
        };
        assert!((p_value - 0.000020079).abs() <= 5e-10);
        assert!(matches!(
            sample_ratio(&[135, 115], &[0.5, 0.5], 8, DEFAULT_SRM_THRESHOLD),
            SampleRatio::Ok { .. }
        ));
        // An arm that nobody reached is a mismatch, not "too few users".
        assert!(matches!(
            sample_ratio(&[0, 1000], &[0.5, 0.5], 8, DEFAULT_SRM_THRESHOLD),
            SampleRatio::Mismatch { p_value } if p_value < 1e-200
        ));
    }
}
