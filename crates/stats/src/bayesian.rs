//! GrowthBook's Bayesian effect test: a normal posterior of the difference, its chance
//! to beat the baseline and its credible interval.
//!
//! GrowthBook `EffectBayesianABTest.compute_result` and `chance_to_win`
//! (`packages/stats/gbstats/bayesian/tests.py:80-85, 139-196`) and
//! `gaussian_credible_interval` (`packages/stats/gbstats/utils.py:87-91`) at `8f1db44`.
//! GrowthBook's risk (`get_risk`) and inverse metrics are not implemented.

use crate::dist::{normal_cdf, normal_upper_quantile};
use crate::moments::{check_alpha, finite, moments};
use crate::{Difference, Insufficient, Interval, Sample};

/// A proper normal prior `N(mean, variance)` on the difference. Without one
/// (`None`) the prior is GrowthBook's default, improper and flat
/// (`prior_proper = False`, `gbstats/models/settings.py:76`). GrowthBook's default
/// proper prior, when a metric turns it on, is `N(0, 0.1²)` on the relative scale
/// (`prior_mean = 0`, `prior_stddev = 0.1`, `:77-78`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prior {
    pub mean: f64,
    pub variance: f64,
}

impl Prior {
    /// A prior given on the relative scale carried over to the absolute one for a
    /// baseline mean `m_a`: `N(μ₀·|m_a|, σ₀²·m_a²)` (GrowthBook `prior_type =
    /// "relative"` with an absolute difference, `bayesian/tests.py:150-157`).
    pub fn relative_to_absolute(self, baseline_mean: f64) -> Prior {
        Prior {
            mean: self.mean * baseline_mean.abs(),
            variance: self.variance * baseline_mean * baseline_mean,
        }
    }
}

/// The result of [`bayesian`]: the posterior `N(mean, std_dev²)` of the difference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bayesian {
    pub mean: f64,
    pub std_dev: f64,
    /// `P(difference > 0)`, the chance that the treatment beats the control.
    pub chance_to_win: f64,
    /// The central `1 − α` credible interval.
    pub credible: Interval,
}

/// The posterior of the difference of `treatment` over `control`, with `Δ` and `se`
/// from [`moments`] as a normal likelihood:
/// - no prior (improper, flat): `μ = Δ`, `σ = se`;
/// - a proper prior `N(μ₀, σ₀²)` on the same scale as `difference`:
///   `prec = 1/se² + 1/σ₀²`, `μ = (Δ/se² + μ₀/σ₀²)/prec`, `σ = √(1/prec)`;
/// - `chance_to_win = P(X > 0) = Φ(μ/σ)`;
/// - `credible = μ ± Φ⁻¹(1 − α/2)·σ`.
///
/// Refused as [`moments`] refuses (GrowthBook then returns `chanceToWin = 0.5`,
/// `expected = 0`), and with [`Insufficient::NonFinite`] for an `alpha` outside
/// `(0, 1)`, a prior whose variance is not positive and finite or whose mean is not
/// finite, or any result that is not finite.
pub fn bayesian(
    control: &Sample,
    treatment: &Sample,
    difference: Difference,
    alpha: f64,
    prior: Option<Prior>,
) -> Result<Bayesian, Insufficient> {
    check_alpha(alpha)?;
    if let Some(p) = prior
        && !(p.mean.is_finite() && p.variance > 0.0 && p.variance.is_finite())
    {
        return Err(Insufficient::NonFinite);
    }
    let moments = moments(control, treatment, difference)?;
    let data_variance = moments.std_error * moments.std_error;
    let (mean, std_dev) = match prior {
        None => (moments.estimate, moments.std_error),
        Some(p) => {
            let precision = 1.0 / data_variance + 1.0 / p.variance;
            (
                (moments.estimate / data_variance + p.mean / p.variance) / precision,
                (1.0 / precision).sqrt(),
            )
        }
    };
    finite(&[mean, std_dev])?;
    if std_dev <= 0.0 {
        return Err(Insufficient::NonFinite);
    }
    let chance_to_win = normal_cdf(mean / std_dev);
    let credible = Interval::around(mean, normal_upper_quantile(alpha / 2.0) * std_dev);
    finite(&[chance_to_win, credible.lower, credible.upper])?;
    Ok(Bayesian {
        mean,
        std_dev,
        chance_to_win,
        credible,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::assert_vector;

    #[track_caller]
    fn assert_posterior(r: &Bayesian, mean: f64, sd: f64, ci: (f64, f64), chance: f64) {
        let got = [
            r.mean,
            r.std_dev,
            r.credible.lower,
            r.credible.upper,
            r.chance_to_win,
        ];
        assert_vector(got, [mean, sd, ci.0, ci.1, chance], r);
    }

    fn growthbook_a() -> Sample {
        Sample::mean_of(10, 100.0, 1002.25)
    }

    fn growthbook_b() -> Sample {
        Sample::mean_of(10, 105.0, 1111.5)
    }

    // GrowthBook packages/stats/tests/bayesian/test_tests.py at 8f1db44,
    // TestBinom.test_bayesian_binomial_ab_test (line 44).
    #[test]
    fn test_bayesian_binomial_ab_test() {
        let (a, b) = (Sample::proportion(100, 49), Sample::proportion(100, 51));
        let r = bayesian(&a, &b, Difference::Relative, 0.05, None).unwrap();
        assert_posterior(&r, 0.04082, 0.14725, (-0.24779, 0.32943), 0.60918);
    }

    // GrowthBook packages/stats/tests/bayesian/test_tests.py at 8f1db44,
    // TestBinom.test_missing_data (line 62): GrowthBook answers chanceToWin 0.5,
    // expected 0.
    #[test]
    fn test_missing_data_binomial() {
        let none = Sample::proportion(0, 0);
        let r = bayesian(&none, &none, Difference::Relative, 0.05, None);
        assert_eq!(r, Err(Insufficient::NoUnits));
    }

    // GrowthBook packages/stats/tests/bayesian/test_tests.py at 8f1db44,
    // TestNorm.test_bayesian_gaussian_ab_test (line 75).
    #[test]
    fn test_bayesian_gaussian_ab_test() {
        let r = bayesian(
            &growthbook_a(),
            &growthbook_b(),
            Difference::Relative,
            0.05,
            None,
        )
        .unwrap();
        assert_posterior(&r, 0.05, 0.03572, (-0.02, 0.12), 0.91923);
    }

    // GrowthBook packages/stats/tests/bayesian/test_tests.py at 8f1db44,
    // TestNorm.test_bayesian_gaussian_ab_test_informative (line 92): a proper prior
    // N(0.1, 0.1).
    #[test]
    fn test_bayesian_gaussian_ab_test_informative() {
        let prior = Prior {
            mean: 0.1,
            variance: 0.1,
        };
        let r = bayesian(
            &growthbook_a(),
            &growthbook_b(),
            Difference::Relative,
            0.05,
            Some(prior),
        )
        .unwrap();
        assert_posterior(&r, 0.05063, 0.03549, (-0.01893, 0.12019), 0.92315);
    }

    // GrowthBook packages/stats/tests/bayesian/test_tests.py at 8f1db44,
    // TestNorm.test_missing_data (line 114).
    #[test]
    fn test_missing_data_gaussian() {
        let none = Sample::mean_of(0, 0.0, 0.0);
        let r = bayesian(&none, &none, Difference::Relative, 0.05, None);
        assert_eq!(r, Err(Insufficient::NoUnits));
    }

    #[test]
    fn a_prior_pulls_the_posterior_towards_it() {
        let (a, b) = (growthbook_a(), growthbook_b());
        let flat = bayesian(&a, &b, Difference::Relative, 0.05, None).unwrap();
        let sceptical = Prior {
            mean: 0.0,
            variance: 0.0001,
        };
        let pulled = bayesian(&a, &b, Difference::Relative, 0.05, Some(sceptical)).unwrap();
        assert!(0.0 < pulled.mean && pulled.mean < flat.mean);
        assert!(pulled.std_dev < flat.std_dev);
        assert!(pulled.chance_to_win < flat.chance_to_win);
    }

    #[test]
    fn a_relative_prior_scales_to_the_baseline() {
        let prior = Prior {
            mean: 0.1,
            variance: 0.01,
        };
        assert_eq!(
            prior.relative_to_absolute(-20.0),
            Prior {
                mean: 2.0,
                variance: 4.0
            }
        );
    }

    #[test]
    fn an_invalid_prior_is_refused() {
        let (a, b) = (growthbook_a(), growthbook_b());
        for (mean, variance) in [
            (0.0, 0.0),
            (0.0, -1.0),
            (0.0, f64::INFINITY),
            (f64::NAN, 1.0),
        ] {
            let prior = Some(Prior { mean, variance });
            assert_eq!(
                bayesian(&a, &b, Difference::Relative, 0.05, prior),
                Err(Insufficient::NonFinite)
            );
        }
    }
}
