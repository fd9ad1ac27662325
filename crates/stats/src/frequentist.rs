//! Welch's unequal-variance t-test at a fixed horizon: valid when the result is read
//! once, at a sample size fixed in advance.
//!
//! GrowthBook `TwoSidedTTest` (`packages/stats/gbstats/frequentist/tests.py:63-72`
//! for the degrees of freedom, `:198-211` for the p-value and interval) at `8f1db44`,
//! with its test value 0 and default `α = 0.05` (`gbstats/models/settings.py:27`).

use crate::dist::{t_sf, t_upper_quantile};
use crate::moments::{check_alpha, finite, moments};
use crate::{Difference, Insufficient, Interval, Moments, Sample};

/// The result of [`welch`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixedHorizon {
    pub moments: Moments,
    /// `ν`, the Welch–Satterthwaite degrees of freedom.
    pub dof: f64,
    /// The `1 − α` confidence interval of the difference.
    pub interval: Interval,
    /// The two-sided p-value of "no difference".
    pub p_value: f64,
}

/// Welch's two-sided t-test of `treatment` against `control` at level `alpha`:
/// - `ν = (v_b/n_b + v_a/n_a)² / (v_b²/(n_b²(n_b − 1)) + v_a²/(n_a²(n_a − 1)))`, on the
///   unit variances of the arms whichever the [`Difference`];
/// - `t = Δ/se`, `p = 2·(1 − F_ν(|t|))`;
/// - `CI = Δ ± F_ν⁻¹(1 − α/2)·se`;
///
/// with `Δ` and `se` from [`moments`] and `F_ν` Student's t distribution function,
/// kept exact for any `ν` (`statrs` below 1e5 degrees of freedom, expansions around the
/// normal above, and never `statrs`' own inverse, which stalls for large `ν`).
///
/// Refused as [`moments`] refuses, and with [`Insufficient::NonFinite`] for an `alpha`
/// outside `(0, 1)` or any result that is not finite.
pub fn welch(
    control: &Sample,
    treatment: &Sample,
    difference: Difference,
    alpha: f64,
) -> Result<FixedHorizon, Insufficient> {
    check_alpha(alpha)?;
    let moments = moments(control, treatment, difference)?;
    let dof = welch_dof(control, treatment);
    let t = moments.estimate / moments.std_error;
    // sf rather than GrowthBook's 1 − cdf: the same number, without the cancellation.
    let p_value = (2.0 * t_sf(t.abs(), dof)).clamp(0.0, 1.0);
    let halfwidth = t_upper_quantile(alpha / 2.0, dof) * moments.std_error;
    let interval = Interval::around(moments.estimate, halfwidth);
    finite(&[dof, p_value, halfwidth, interval.lower, interval.upper])?;
    Ok(FixedHorizon {
        moments,
        dof,
        interval,
        p_value,
    })
}

/// The Welch–Satterthwaite degrees of freedom, computed from the shares `s_i` of the
/// two arms in `Var = v_b/n_b + v_a/n_a` as `1 / (s_b²/(n_b − 1) + s_a²/(n_a − 1))`,
/// which is the same number without squaring the variances. Meaningful once both arms
/// have a positive variance, which [`moments`] checks first and which implies `n ≥ 2`.
fn welch_dof(control: &Sample, treatment: &Sample) -> f64 {
    let (n_a, n_b) = (control.n() as f64, treatment.n() as f64);
    let (spread_a, spread_b) = (control.variance() / n_a, treatment.variance() / n_b);
    let total = spread_a + spread_b;
    let (share_a, share_b) = (spread_a / total, spread_b / total);
    1.0 / (share_b * share_b / (n_b - 1.0) + share_a * share_a / (n_a - 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::{assert_vector, near};

    #[track_caller]
    fn assert_fixed(r: &FixedHorizon, estimate: f64, se: f64, ci: (f64, f64), p: f64) {
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
        Sample::mean_of(3407, 1396.87, 52377.9767)
    }

    fn growthbook_b() -> Sample {
        Sample::mean_of(3461, 2422.7, 134698.29)
    }

    // GrowthBook packages/stats/tests/frequentist/test_tests.py at 8f1db44,
    // TestTwoSidedTTest.test_two_sided_ttest (line 64).
    #[test]
    fn test_two_sided_ttest() {
        let r = welch(&growthbook_a(), &growthbook_b(), Difference::Relative, 0.05).unwrap();
        assert_fixed(&r, 0.70732, 0.37879, (-0.03526, 1.44989), 0.06191);
    }

    // GrowthBook packages/stats/tests/frequentist/test_tests.py at 8f1db44,
    // TestTwoSidedTTest.test_two_sided_ttest_absolute (line 85).
    #[test]
    fn test_two_sided_ttest_absolute() {
        let r = welch(&growthbook_a(), &growthbook_b(), Difference::Absolute, 0.05).unwrap();
        assert_fixed(&r, 0.29, 0.12478, (0.04538, 0.53462), 0.02016);
    }

    // GrowthBook packages/stats/tests/frequentist/test_tests.py at 8f1db44,
    // TestTwoSidedTTest.test_two_sided_ttest_binom (line 103).
    #[test]
    fn test_two_sided_ttest_binom() {
        let (a, b) = (Sample::proportion(28, 14), Sample::proportion(30, 16));
        let r = welch(&a, &b, Difference::Relative, 0.05).unwrap();
        assert_fixed(&r, 0.06667, 0.2717, (-0.47767, 0.61101), 0.80707);
    }

    // GrowthBook packages/stats/tests/frequentist/test_tests.py at 8f1db44,
    // TestTwoSidedTTest.test_two_sided_ttest_missing_variance (line 123): GrowthBook
    // returns its default output with ZERO_NEGATIVE_VARIANCE_MESSAGE.
    #[test]
    fn test_two_sided_ttest_missing_variance() {
        let a = Sample::mean_of(2, 1396.87, 52377.9767);
        assert_eq!(
            welch(&a, &growthbook_b(), Difference::Relative, 0.05),
            Err(Insufficient::ZeroVariance)
        );
    }

    // Cross-check, not a published vector: the plan's Welch ν for Prop 14/28 → 16/30,
    // from the formulas above in a Python copy of gbstats.
    #[test]
    fn cross_check_binomial_dof() {
        let (a, b) = (Sample::proportion(28, 14), Sample::proportion(30, 16));
        let r = welch(&a, &b, Difference::Relative, 0.05).unwrap();
        assert!(near(r.dof, 55.70745), "{}", r.dof);
        // And the dof of the GrowthBook mean pair (same script).
        let r = welch(&growthbook_a(), &growthbook_b(), Difference::Relative, 0.05).unwrap();
        assert!(near(r.dof, 5841.74203), "{}", r.dof);
    }

    // Cross-check, not a published vector: the plan's absolute Welch test for
    // Prop 14/28 → 16/30, from a Python copy of gbstats.
    #[test]
    fn cross_check_binomial_absolute() {
        let (a, b) = (Sample::proportion(28, 14), Sample::proportion(30, 16));
        let r = welch(&a, &b, Difference::Absolute, 0.05).unwrap();
        assert_fixed(&r, 0.03333, 0.13124, (-0.22961, 0.29628), 0.80045);
    }

    #[test]
    fn a_wider_level_gives_a_wider_interval() {
        let (a, b) = (growthbook_a(), growthbook_b());
        let at = |alpha| welch(&a, &b, Difference::Relative, alpha).unwrap().interval;
        let (narrow, wide) = (at(0.2), at(0.01));
        assert!(wide.lower < narrow.lower && narrow.upper < wide.upper);
    }

    #[test]
    fn identical_arms_have_p_one() {
        let a = Sample::proportion(1000, 100);
        let r = welch(&a, &a, Difference::Relative, 0.05).unwrap();
        assert_eq!(r.p_value, 1.0);
        assert!(r.interval.lower < 0.0 && 0.0 < r.interval.upper);
    }

    #[test]
    fn millions_of_users_keep_an_exact_p_value() {
        // ν ≈ 2e9, where statrs' own t distribution drifts: the p-value must agree
        // with the normal test at this size.
        let (a, b) = (
            Sample::proportion(1_000_000_000, 100_000_000),
            Sample::proportion(1_000_000_000, 100_010_000),
        );
        let r = welch(&a, &b, Difference::Absolute, 0.05).unwrap();
        assert!(r.dof > 1.9e9);
        let z = r.moments.estimate / r.moments.std_error;
        let normal_p = 2.0 * (1.0 - crate::dist::normal_cdf(z.abs()));
        assert!((r.p_value - normal_p).abs() < 1e-9, "{r:?} vs {normal_p}");
    }

    #[test]
    fn an_invalid_level_is_refused() {
        for alpha in [0.0, 1.0, f64::NAN] {
            assert_eq!(
                welch(
                    &growthbook_a(),
                    &growthbook_b(),
                    Difference::Relative,
                    alpha
                ),
                Err(Insufficient::NonFinite)
            );
        }
    }
}
