//! The effect of a variant against its baseline as a point estimate and a standard
//! error (its first two moments), the input of every test in this crate; and why
//! there may be no such effect.
//!
//! GrowthBook `EffectMoments` (`packages/stats/gbstats/models/tests.py:138-210`) with
//! `frequentist_diff`, `frequentist_variance` and `variance_of_ratios` (covariance 0)
//! from `packages/stats/gbstats/utils.py:22-66`, at `8f1db44`.

use std::fmt;

use crate::Sample;

/// Which difference between the arms' means is estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Difference {
    /// `mean_b − mean_a`.
    Absolute,
    /// `(mean_b − mean_a) / |mean_a|`, the uplift.
    Relative,
}

/// Why a comparison has no result. Every public function of this crate returns one of
/// these instead of a NaN, an infinity, or GrowthBook's uninformative default output
/// (`p = 1`, `ci = (0, 0)`, `chanceToWin = 0.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Insufficient {
    /// An arm has no units at all. GrowthBook reports this as zero variance; it is
    /// told apart here because "nobody yet" is the common case.
    NoUnits,
    /// An arm's variance, or the variance of the difference, is 0 or negative
    /// (GrowthBook `ZERO_NEGATIVE_VARIANCE`): for a proportion, every unit or none
    /// converted.
    ZeroVariance,
    /// The baseline's mean is 0 (GrowthBook `ZERO_NEGATIVE_BASELINE_VARIATION`),
    /// refused for the absolute difference too, as GrowthBook does.
    ZeroBaseline,
    /// A result would be NaN or infinite: the inputs are out of range (a non-finite
    /// sum, an `alpha` outside `(0, 1)`, a tuning or prior variance that is not positive
    /// and finite) or the arithmetic overflowed.
    NonFinite,
}

impl fmt::Display for Insufficient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Insufficient::NoUnits => "an arm has no units",
            Insufficient::ZeroVariance => "zero or negative variance",
            Insufficient::ZeroBaseline => "the baseline mean is zero",
            Insufficient::NonFinite => "the result is not finite",
        })
    }
}

impl std::error::Error for Insufficient {}

/// A two-sided interval `[lower, upper]` around an estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub lower: f64,
    pub upper: f64,
}

impl Interval {
    /// `center ± halfwidth`.
    pub(crate) fn around(center: f64, halfwidth: f64) -> Interval {
        Interval {
            lower: center - halfwidth,
            upper: center + halfwidth,
        }
    }
}

/// The estimated difference and its standard error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    /// `Δ`, the point estimate of the difference.
    pub estimate: f64,
    /// `√Var(Δ)`, always positive.
    pub std_error: f64,
}

/// The difference of `treatment` over `control` and its standard error.
///
/// With `m` the means, `v` the unit variances and `n` the unit counts
/// (a = control, b = treatment):
/// - absolute: `Δ = m_b − m_a`, `Var = v_b/n_b + v_a/n_a`;
/// - relative, by the delta method with no covariance between the arms:
///   `Δ = (m_b − m_a)/|m_a|`, `Var = (v_b/n_b)/m_a² + (v_a/n_a)·m_b²/m_a⁴`, computed as
///   `(v_b/n_b + (v_a/n_a)·(m_b/m_a)²)/m_a²` so that `m_a⁴` cannot overflow;
/// - `se = √Var`.
///
/// Refused, in this order: [`NoUnits`](Insufficient::NoUnits) when an arm is empty;
/// [`NonFinite`](Insufficient::NonFinite) when a mean or variance is not finite;
/// [`ZeroVariance`](Insufficient::ZeroVariance) when `v_a ≤ 0` or `v_b ≤ 0`;
/// [`ZeroBaseline`](Insufficient::ZeroBaseline) when `m_a = 0`;
/// [`ZeroVariance`](Insufficient::ZeroVariance) when `Var ≤ 0` (an underflow).
///
/// GrowthBook tests `Var ≤ 0` before `m_a = 0`, and its relative variance is 0 when
/// `m_a = 0`, so it names a relative difference against a zero baseline "zero
/// variance"; here it is "zero baseline". Both refuse the same inputs.
pub fn moments(
    control: &Sample,
    treatment: &Sample,
    difference: Difference,
) -> Result<Moments, Insufficient> {
    if control.n() == 0 || treatment.n() == 0 {
        return Err(Insufficient::NoUnits);
    }
    let (mean_a, mean_b) = (control.mean(), treatment.mean());
    let (var_a, var_b) = (control.variance(), treatment.variance());
    finite(&[mean_a, mean_b, var_a, var_b])?;
    if var_a <= 0.0 || var_b <= 0.0 {
        return Err(Insufficient::ZeroVariance);
    }
    if mean_a == 0.0 {
        return Err(Insufficient::ZeroBaseline);
    }
    // The variances of the two arms' means.
    let (spread_a, spread_b) = (var_a / control.n() as f64, var_b / treatment.n() as f64);
    let (estimate, variance) = match difference {
        Difference::Absolute => (mean_b - mean_a, spread_b + spread_a),
        Difference::Relative => {
            let ratio = mean_b / mean_a;
            (
                (mean_b - mean_a) / mean_a.abs(),
                (spread_b + spread_a * ratio * ratio) / (mean_a * mean_a),
            )
        }
    };
    finite(&[estimate, variance])?;
    if variance <= 0.0 {
        return Err(Insufficient::ZeroVariance);
    }
    let std_error = variance.sqrt();
    finite(&[std_error])?;
    Ok(Moments {
        estimate,
        std_error,
    })
}

/// `Ok` when every value is finite, else [`Insufficient::NonFinite`]: the check every
/// public result goes through before it is returned.
pub(crate) fn finite(values: &[f64]) -> Result<(), Insufficient> {
    if values.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(Insufficient::NonFinite)
    }
}

/// `Ok` for a significance level in `(0, 1)`, else [`Insufficient::NonFinite`]: at
/// `α = 0` every interval is infinite, and outside `(0, 1)` none exists.
pub(crate) fn check_alpha(alpha: f64) -> Result<(), Insufficient> {
    if alpha > 0.0 && alpha < 1.0 {
        Ok(())
    } else {
        Err(Insufficient::NonFinite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::near;

    // GrowthBook packages/stats/tests/frequentist/test_tests.py at 8f1db44,
    // TestTwoSidedTTest.test_two_sided_ttest_binom (line 103): the uplift of
    // Prop 14/28 → 16/30 is normal(0.06667, 0.2717).
    #[test]
    fn relative_moments_match_growthbook() {
        let m = moments(
            &Sample::proportion(28, 14),
            &Sample::proportion(30, 16),
            Difference::Relative,
        )
        .unwrap();
        assert!(near(m.estimate, 0.06667), "{m:?}");
        assert!(near(m.std_error, 0.2717), "{m:?}");
    }

    // GrowthBook packages/stats/tests/frequentist/test_tests.py at 8f1db44,
    // TestTwoSidedTTest.test_two_sided_ttest_absolute (line 85): normal(0.29, 0.12478).
    #[test]
    fn absolute_moments_match_growthbook() {
        let m = moments(
            &Sample::mean_of(3407, 1396.87, 52377.9767),
            &Sample::mean_of(3461, 2422.7, 134698.29),
            Difference::Absolute,
        )
        .unwrap();
        assert!(near(m.estimate, 0.29), "{m:?}");
        assert!(near(m.std_error, 0.12478), "{m:?}");
    }

    #[test]
    fn an_empty_arm_has_no_units() {
        let some = Sample::proportion(100, 10);
        for d in [Difference::Absolute, Difference::Relative] {
            let none = Sample::proportion(0, 0);
            assert_eq!(moments(&none, &some, d), Err(Insufficient::NoUnits));
            assert_eq!(moments(&some, &none, d), Err(Insufficient::NoUnits));
            let none = Sample::mean_of(0, 0.0, 0.0);
            assert_eq!(moments(&none, &none, d), Err(Insufficient::NoUnits));
        }
    }

    #[test]
    fn no_conversions_or_all_conversions_have_zero_variance() {
        let some = Sample::proportion(100, 10);
        for d in [Difference::Absolute, Difference::Relative] {
            let zero = Sample::proportion(100, 0);
            assert_eq!(moments(&zero, &some, d), Err(Insufficient::ZeroVariance));
            assert_eq!(moments(&some, &zero, d), Err(Insufficient::ZeroVariance));
            let all = Sample::proportion(100, 100);
            assert_eq!(moments(&some, &all, d), Err(Insufficient::ZeroVariance));
            let single = Sample::mean_of(1, 5.0, 25.0);
            assert_eq!(moments(&single, &some, d), Err(Insufficient::ZeroVariance));
        }
    }

    #[test]
    fn a_zero_baseline_mean_is_refused_for_both_differences() {
        // Values −1 and 1: mean 0, variance 2.
        let baseline = Sample::mean_of(2, 0.0, 2.0);
        let variant = Sample::mean_of(3, 3.0, 5.0);
        for d in [Difference::Absolute, Difference::Relative] {
            assert_eq!(
                moments(&baseline, &variant, d),
                Err(Insufficient::ZeroBaseline)
            );
        }
    }

    #[test]
    fn a_negative_baseline_divides_by_its_magnitude() {
        // Baseline values −2, −4 (mean −3), variant 0, −2 (mean −1): up by 2/3.
        let m = moments(
            &Sample::mean_of(2, -6.0, 20.0),
            &Sample::mean_of(2, -2.0, 4.0),
            Difference::Relative,
        )
        .unwrap();
        assert!((m.estimate - 2.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn overflowing_inputs_are_not_finite() {
        let huge = Sample::mean_of(2, f64::MAX, f64::INFINITY);
        let fine = Sample::mean_of(3, 3.0, 5.0);
        assert_eq!(
            moments(&fine, &huge, Difference::Absolute),
            Err(Insufficient::NonFinite)
        );
        let nan = Sample::mean_of(3, f64::NAN, 5.0);
        assert_eq!(
            moments(&nan, &fine, Difference::Relative),
            Err(Insufficient::NonFinite)
        );
        // A tiny baseline mean: the relative variance overflows.
        let tiny = Sample::mean_of(2, 1e-300, 1.0);
        assert_eq!(
            moments(&tiny, &fine, Difference::Relative),
            Err(Insufficient::NonFinite)
        );
    }

    #[test]
    fn alpha_must_lie_strictly_between_zero_and_one() {
        assert_eq!(check_alpha(0.05), Ok(()));
        for alpha in [0.0, 1.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
            assert_eq!(check_alpha(alpha), Err(Insufficient::NonFinite));
        }
    }
}
