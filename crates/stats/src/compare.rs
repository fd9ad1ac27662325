//! One variant against its baseline, every way at once: the absolute and the relative
//! difference, each by the fixed-horizon test, the sequential test and the Bayesian
//! posterior, with GrowthBook's default settings.

use crate::bayesian::{Bayesian, Prior, bayesian};
use crate::frequentist::{FixedHorizon, welch};
use crate::sequential::{DEFAULT_TUNING, Sequential, sequential};
use crate::{Difference, Insufficient, Sample};

/// How [`compare`] tests; [`Settings::default`] is GrowthBook's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// The significance level: intervals cover `1 − alpha`. GrowthBook: 0.05.
    pub alpha: f64,
    /// The sequential test's tuning `N*`. GrowthBook: 5000 ([`DEFAULT_TUNING`]).
    pub tuning: f64,
    /// A proper prior on the **relative** difference, carried over to the absolute one
    /// by [`Prior::relative_to_absolute`] (GrowthBook's default `prior_type =
    /// "relative"`); `None` is GrowthBook's default improper flat prior.
    pub prior: Option<Prior>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            alpha: 0.05,
            tuning: DEFAULT_TUNING,
            prior: None,
        }
    }
}

/// One difference tested three ways.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Effect {
    /// Welch's t-test: valid when read once, at a sample size fixed in advance.
    pub fixed: FixedHorizon,
    /// The confidence sequence: valid however often it is read.
    pub sequential: Sequential,
    /// The posterior: chance to win and credible interval.
    pub bayesian: Bayesian,
}

/// The variant against the baseline, in both differences; each is an [`Effect`] or the
/// reason there is none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// `mean_variant − mean_baseline`.
    pub absolute: Result<Effect, Insufficient>,
    /// `(mean_variant − mean_baseline) / |mean_baseline|`.
    pub relative: Result<Effect, Insufficient>,
}

/// `variant` against `baseline` by [`welch`], [`sequential`] and [`bayesian`], for the
/// absolute and the relative difference.
///
/// A difference is refused as a whole, with the first reason met, when any of the three
/// is. They share their [`moments`](crate::moments()), so that is when the moments are
/// refused, when the settings are invalid, or when one result overflows.
pub fn compare(baseline: &Sample, variant: &Sample, settings: &Settings) -> Comparison {
    let prior = |difference| match difference {
        Difference::Relative => settings.prior,
        Difference::Absolute => settings
            .prior
            .map(|p| p.relative_to_absolute(baseline.mean())),
    };
    let effect = |difference| -> Result<Effect, Insufficient> {
        Ok(Effect {
            fixed: welch(baseline, variant, difference, settings.alpha)?,
            sequential: sequential(
                baseline,
                variant,
                difference,
                settings.alpha,
                settings.tuning,
            )?,
            bayesian: bayesian(
                baseline,
                variant,
                difference,
                settings.alpha,
                prior(difference),
            )?,
        })
    };
    Comparison {
        absolute: effect(Difference::Absolute),
        relative: effect(Difference::Relative),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn compare_is_the_three_tests_with_growthbook_defaults() {
        let (a, b) = (
            Sample::proportion(3000, 1396),
            Sample::proportion(3461, 2422),
        );
        let c = compare(&a, &b, &Settings::default());
        for (d, effect) in [
            (Difference::Absolute, c.absolute),
            (Difference::Relative, c.relative),
        ] {
            let effect = effect.unwrap();
            assert_eq!(effect.fixed, welch(&a, &b, d, 0.05).unwrap());
            assert_eq!(
                effect.sequential,
                sequential(&a, &b, d, 0.05, 5000.0).unwrap()
            );
            assert_eq!(effect.bayesian, bayesian(&a, &b, d, 0.05, None).unwrap());
        }
    }

    #[test]
    fn the_prior_is_relative_and_scaled_for_the_absolute_difference() {
        let (a, b) = (
            Sample::mean_of(10, 100.0, 1002.25),
            Sample::mean_of(10, 105.0, 1111.5),
        );
        let prior = Prior {
            mean: 0.1,
            variance: 0.1,
        };
        let settings = Settings {
            prior: Some(prior),
            ..Settings::default()
        };
        let c = compare(&a, &b, &settings);
        let relative = bayesian(&a, &b, Difference::Relative, 0.05, Some(prior)).unwrap();
        assert_eq!(c.relative.unwrap().bayesian, relative);
        // Baseline mean 10: the prior becomes N(1, 10) on the absolute difference.
        let scaled = Prior {
            mean: 1.0,
            variance: 10.0,
        };
        let absolute = bayesian(&a, &b, Difference::Absolute, 0.05, Some(scaled)).unwrap();
        assert_eq!(c.absolute.unwrap().bayesian, absolute);
    }

    #[test]
    fn an_empty_campaign_has_reasons_not_numbers() {
        let none = Sample::proportion(0, 0);
        let c = compare(&none, &none, &Settings::default());
        assert_eq!(c.absolute, Err(Insufficient::NoUnits));
        assert_eq!(c.relative, Err(Insufficient::NoUnits));
        let (zero, some) = (Sample::proportion(500, 0), Sample::proportion(500, 20));
        let c = compare(&zero, &some, &Settings::default());
        assert_eq!(c.absolute, Err(Insufficient::ZeroVariance));
        assert_eq!(c.relative, Err(Insufficient::ZeroVariance));
    }

    /// Every number of an effect, for the finiteness property.
    fn numbers(e: &Effect) -> [f64; 17] {
        [
            e.fixed.moments.estimate,
            e.fixed.moments.std_error,
            e.fixed.dof,
            e.fixed.interval.lower,
            e.fixed.interval.upper,
            e.fixed.p_value,
            e.sequential.moments.estimate,
            e.sequential.moments.std_error,
            e.sequential.rho,
            e.sequential.interval.lower,
            e.sequential.interval.upper,
            e.sequential.p_value,
            e.bayesian.mean,
            e.bayesian.std_dev,
            e.bayesian.chance_to_win,
            e.bayesian.credible.lower,
            e.bayesian.credible.upper,
        ]
    }

    /// Counts from empty to u64::MAX, weighted towards the edges.
    fn count() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..4,
            0u64..10_000,
            any::<u64>(),
            (u64::MAX - 4)..=u64::MAX,
        ]
    }

    /// Reals including zeros, huge values, infinities and NaN.
    fn real() -> impl Strategy<Value = f64> {
        prop_oneof![
            6 => -1e6..1e6f64,
            1 => any::<f64>(),
            1 => Just(0.0),
            1 => Just(f64::MAX),
            1 => Just(f64::INFINITY),
            1 => Just(f64::NAN),
        ]
    }

    fn sample() -> impl Strategy<Value = Sample> {
        prop_oneof![
            1 => (count(), count()).prop_map(|(n, x)| Sample::proportion(n, x)),
            // Conversions at most the units, as the service sends them.
            2 => (count(), 0.0..=1.0f64)
                .prop_map(|(n, share)| Sample::proportion(n, (n as f64 * share) as u64)),
            1 => (count(), real(), real()).prop_map(|(n, s, ss)| Sample::mean_of(n, s, ss)),
            // Sums that a real sample could have: n values of mean m and spread sd.
            2 => (count(), real(), real()).prop_map(|(n, m, sd)| {
                let nf = n as f64;
                Sample::mean_of(n, nf * m, (nf - 1.0) * sd * sd + nf * m * m)
            }),
        ]
    }

    fn settings() -> impl Strategy<Value = Settings> {
        let prior = prop_oneof![
            3 => Just(None),
            1 => (-1.0..1.0f64, 1e-6..1.0f64)
                .prop_map(|(mean, variance)| Some(Prior { mean, variance })),
            1 => (real(), real()).prop_map(|(mean, variance)| Some(Prior { mean, variance })),
        ];
        (
            prop_oneof![4 => Just(0.05), 1 => 0.0..=1.0f64, 1 => any::<f64>()],
            prop_oneof![4 => Just(5000.0), 1 => 0.0..1e9f64, 1 => any::<f64>()],
            prior,
        )
            .prop_map(|(alpha, tuning, prior)| Settings {
                alpha,
                tuning,
                prior,
            })
    }

    proptest! {
        #[test]
        fn no_input_gives_a_non_finite_number_or_a_panic(
            baseline in sample(),
            variant in sample(),
            settings in settings(),
        ) {
            let c = compare(&baseline, &variant, &settings);
            for effect in [c.absolute, c.relative].into_iter().flatten() {
                for x in numbers(&effect) {
                    prop_assert!(x.is_finite(), "{effect:?}");
                }
                for p in [effect.fixed.p_value, effect.sequential.p_value, effect.bayesian.chance_to_win] {
                    prop_assert!((0.0..=1.0).contains(&p), "{effect:?}");
                }
                prop_assert!(effect.fixed.interval.lower <= effect.fixed.interval.upper);
                prop_assert!(effect.sequential.interval.lower <= effect.sequential.interval.upper);
                prop_assert!(effect.bayesian.credible.lower <= effect.bayesian.credible.upper);
                prop_assert!(effect.fixed.moments.std_error > 0.0 && effect.fixed.dof > 0.0);
            }
        }

        #[test]
        fn realistic_counts_always_compare(
            n_a in 2u64..10_000_000,
            n_b in 2u64..10_000_000,
            share_a in 0.0001..0.9999f64,
            share_b in 0.0001..0.9999f64,
        ) {
            // Both arms with some but not all users converted: never refused.
            let convert = |n: u64, share: f64| ((n as f64 * share) as u64).clamp(1, n - 1);
            let a = Sample::proportion(n_a, convert(n_a, share_a));
            let b = Sample::proportion(n_b, convert(n_b, share_b));
            let c = compare(&a, &b, &Settings::default());
            prop_assert!(c.absolute.is_ok() && c.relative.is_ok(), "{c:?}");
        }

        #[test]
        fn srm_is_a_probability_for_any_arms(
            users in prop::collection::vec(count(), 0..6),
            weights in prop::collection::vec(real(), 0..6),
            min_users in count(),
            threshold in real(),
        ) {
            let p = crate::srm_p_value(&users, &weights);
            prop_assert!((0.0..=1.0).contains(&p), "{p}");
            let verdict = crate::sample_ratio(&users, &weights, min_users, threshold);
            if let crate::SampleRatio::Ok { p_value } | crate::SampleRatio::Mismatch { p_value } = verdict {
                prop_assert_eq!(p_value, p);
            }
        }
    }
}
