//! GrowthBook's sequential test: a two-sided asymptotic confidence sequence
//! (Waudby-Smith et al., arXiv 2103.06476v7), valid however often it is read, so a
//! campaign's stats can be looked at every day without inflating false positives.
//!
//! GrowthBook `sequential_rho`, `sequential_interval_halfwidth` and
//! `SequentialTwoSidedTTest` (`packages/stats/gbstats/frequentist/tests.py:244-335`)
//! at `8f1db44`. Only the two-sided test: GrowthBook's one-sided variants (`:338-455`)
//! are not implemented.

use crate::moments::{check_alpha, finite, moments};
use crate::{Difference, Insufficient, Interval, Moments, Sample};

/// GrowthBook's default tuning `N*`, the total sample size at which the sequence is
/// tightest (`sequential_tuning_parameter`, `gbstats/frequentist/tests.py:35`,
/// `gbstats/models/settings.py:24`).
pub const DEFAULT_TUNING: f64 = 5000.0;

/// The result of [`sequential`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sequential {
    pub moments: Moments,
    /// `ρ`, from `alpha` and the tuning `N*` ([`sequential_rho`]).
    pub rho: f64,
    /// The `1 − α` confidence sequence's interval at the current sample size.
    pub interval: Interval,
    /// The always-valid two-sided p-value of "no difference".
    pub p_value: f64,
}

/// `ρ = √((−2·ln α + ln(−2·ln α + 1)) / N*)`, which makes the confidence sequence
/// tightest at `N*` units in total (eq. 161 of arXiv 2103.06476v7; two-sided).
///
/// [`Insufficient::NonFinite`] for an `alpha` outside `(0, 1)` or a `tuning` that is
/// not positive and finite.
pub fn sequential_rho(alpha: f64, tuning: f64) -> Result<f64, Insufficient> {
    check_alpha(alpha)?;
    if !(tuning > 0.0 && tuning.is_finite()) {
        return Err(Insufficient::NonFinite);
    }
    let log_alpha = -2.0 * alpha.ln();
    let rho = ((log_alpha + (log_alpha + 1.0).ln()) / tuning).sqrt();
    finite(&[rho])?;
    if rho > 0.0 {
        Ok(rho)
    } else {
        Err(Insufficient::NonFinite)
    }
}

/// The two-sided confidence sequence of `treatment` against `control`, with `n =
/// n_a + n_b`, `Δ` and `se` from [`moments`] and `ρ` from [`sequential_rho`]:
/// - `s² = se²·n`;
/// - `CI = Δ ± √s² · √(2(nρ² + 1) · ln(√(nρ² + 1)/α) / (nρ)²)` (eq. 9);
/// - p-value (eq. 155): `st² = Δ²·n/se²`, `τ = nρ² + 1`,
///   `e = exp(ρ²·st²/(2τ)) / √τ`, `p = min(1, 1/e)`, computed in log space as
///   `p = min(1, exp(−(ρ²·st²/(2τ) − ½·ln τ)))` so that a strong effect gives 0
///   instead of overflowing `e`.
///
/// Refused as [`moments`] and [`sequential_rho`] refuse, and with
/// [`Insufficient::NonFinite`] for any result that is not finite.
pub fn sequential(
    control: &Sample,
    treatment: &Sample,
    difference: Difference,
    alpha: f64,
    tuning: f64,
) -> Result<Sequential, Insufficient> {
    let rho = sequential_rho(alpha, tuning)?;
    let moments = moments(control, treatment, difference)?;
    let n = control.n() as f64 + treatment.n() as f64;
    let (estimate, se) = (moments.estimate, moments.std_error);
    let tau = n * rho * rho + 1.0;
    let halfwidth = se * n.sqrt() * (2.0 * tau * (0.5 * tau.ln() - alpha.ln())).sqrt() / (n * rho);
    let interval = Interval::around(estimate, halfwidth);
    let z = estimate / se;
    let st2 = z * z * n;
    let log_e = rho * rho * st2 / (2.0 * tau) - 0.5 * tau.ln();
    let p_value = if log_e > 0.0 { (-log_e).exp() } else { 1.0 };
    finite(&[halfwidth, interval.lower, interval.upper, p_value])?;
    Ok(Sequential {
        moments,
        rho,
        interval,
        p_value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::assert_vector;

    #[track_caller]
    fn assert_sequential(r: &Sequential, estimate: f64, se: f64, ci: (f64, f64), p: f64) {
        let m = &r.moments;
        let got = [
            m.estimate,
            m.std_error,
            r.interval.lower,
            r.interval.upper,
            r.p_value,
        ];
        assert_vector(got, [estimate, se, ci.0, ci.1, p], r);
    }

    fn growthbook_a() -> Sample {
        Sample::mean_of(3000, 1396.87, 52377.9767)
    }

    fn growthbook_b() -> Sample {
        Sample::mean_of(3461, 2422.7, 134698.29)
    }

    // GrowthBook packages/stats/tests/frequentist/test_tests.py at 8f1db44,
    // TestSequentialTTest.test_sequential_test_runs (line 198): N* = 1000.
    #[test]
    fn test_sequential_test_runs() {
        let r = sequential(
            &growthbook_a(),
            &growthbook_b(),
            Difference::Relative,
            0.05,
            1000.0,
        )
        .unwrap();
        assert_sequential(&r, 0.50336, 0.33341, (-0.55844, 1.56516), 1.0);
    }

    // GrowthBook packages/stats/tests/frequentist/test_tests.py at 8f1db44,
    // TestSequentialTTest.test_sequential_test_runs_prop (line 218): the default
    // N* = 5000.
    #[test]
    fn test_sequential_test_runs_prop() {
        let (a, b) = (
            Sample::proportion(3000, 1396),
            Sample::proportion(3461, 2422),
        );
        let r = sequential(&a, &b, Difference::Relative, 0.05, DEFAULT_TUNING).unwrap();
        assert_sequential(&r, 0.50386, 0.03386, (0.40098, 0.60675), 0.0);
    }

    // GrowthBook packages/stats/tests/frequentist/test_tests.py at 8f1db44,
    // TestSequentialTTest.test_sequential_test_tuning_as_expected (line 331): tuning far
    // below the sample size (10) is widest, near it (6461 = n) narrowest.
    #[test]
    fn test_sequential_test_tuning_as_expected() {
        let at = |tuning| {
            sequential(
                &growthbook_a(),
                &growthbook_b(),
                Difference::Relative,
                0.05,
                tuning,
            )
            .unwrap()
            .interval
        };
        let (below, near_n, above) = (at(10.0), at(6461.0), at(10000.0));
        assert!(below.lower < above.lower && below.upper > above.upper);
        assert!(below.lower < near_n.lower && below.upper > near_n.upper);
        assert!(above.lower < near_n.lower && above.upper > near_n.upper);
    }

    // Cross-check, not a published vector: ρ(α = 0.05, N* = 5000) from the formula in
    // a Python copy of gbstats (0.03984006677137368).
    #[test]
    fn cross_check_default_rho() {
        let rho = sequential_rho(0.05, DEFAULT_TUNING).unwrap();
        assert!((rho - 0.039_840_066_771_373_68).abs() < 1e-15, "{rho}");
    }

    #[test]
    fn the_sequence_is_wider_than_the_fixed_horizon_interval() {
        let (a, b) = (growthbook_a(), growthbook_b());
        let s = sequential(&a, &b, Difference::Relative, 0.05, DEFAULT_TUNING).unwrap();
        let f = crate::welch(&a, &b, Difference::Relative, 0.05).unwrap();
        assert!(s.interval.lower < f.interval.lower && f.interval.upper < s.interval.upper);
        assert!(s.p_value >= f.p_value);
    }

    #[test]
    fn an_overwhelming_effect_has_p_zero_without_overflow() {
        // ρ²·st²/(2τ) is about 4e7 here, so e = exp(…) itself would overflow.
        let (a, b) = (
            Sample::proportion(1_000_000_000, 100_000_000),
            Sample::proportion(1_000_000_000, 900_000_000),
        );
        let r = sequential(&a, &b, Difference::Relative, 0.05, DEFAULT_TUNING).unwrap();
        assert_eq!(r.p_value, 0.0);
    }

    #[test]
    fn invalid_settings_are_refused() {
        let (a, b) = (growthbook_a(), growthbook_b());
        for (alpha, tuning) in [
            (0.0, 5000.0),
            (1.0, 5000.0),
            (0.05, 0.0),
            (0.05, -1.0),
            (0.05, f64::INFINITY),
            (0.05, f64::NAN),
        ] {
            assert_eq!(
                sequential(&a, &b, Difference::Relative, alpha, tuning),
                Err(Insufficient::NonFinite),
                "alpha {alpha}, tuning {tuning}"
            );
        }
    }
}
