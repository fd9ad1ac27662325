//! The arithmetic of campaign statistics, free of storage and gRPC. The analytics
//! service reads counts from storage and asks this crate what they mean.
//!
//! The experiment statistics are GrowthBook's engine (`gbstats` and the back end's
//! `checkSrm`, `growthbook/growthbook` at `8f1db44`), pinned to its published test
//! vectors:
//! - [`sample`]: an arm's data as `n`, sum and sum of squares ([`Sample`]), for a
//!   proportion (conversions) or a mean (a per-user value), with gbstats' variances;
//! - [`moments`](mod@moments): the absolute or relative ([`Difference`]) effect and
//!   its standard error by the delta method, or why there is none ([`Insufficient`]);
//! - [`frequentist`]: Welch's two-sided t-test at a fixed horizon ([`welch`]):
//!   Welch–Satterthwaite degrees of freedom, confidence interval and p-value;
//! - [`sequential`](mod@sequential): GrowthBook's two-sided asymptotic confidence
//!   sequence ([`sequential()`]), valid at every look, with `ρ` from `α` and the tuning
//!   `N*` ([`sequential_rho`], default 5000) and its always-valid p-value;
//! - [`bayesian`](mod@bayesian): the normal posterior of the effect ([`bayesian()`])
//!   under GrowthBook's improper flat prior or a proper normal [`Prior`]: chance to
//!   beat control and credible interval;
//! - [`srm`]: the sample ratio mismatch χ² test with GrowthBook's TypeScript semantics
//!   ([`srm_p_value`]) and its verdict ([`sample_ratio`]);
//! - [`compare`](mod@compare): one variant against its baseline, absolute and relative,
//!   by all three tests at GrowthBook's default [`Settings`] ([`compare()`]).
//!
//! No public function returns NaN or an infinity: a result that is not finite is
//! [`Insufficient::NonFinite`].
//!
//! The older figures are still here until the analytics service moves off them:
//! rates, uplift against control and its significance as a two-sided two-proportion
//! z-test ([`confidence`]), and the attribution of a goal event to an exposure
//! ([`conversion_time`]).

#![forbid(unsafe_code)]

pub mod bayesian;
pub mod compare;
mod dist;
pub mod frequentist;
pub mod moments;
pub mod sample;
pub mod sequential;
pub mod srm;
#[cfg(test)]
mod vectors;

pub use bayesian::{Bayesian, Prior, bayesian};
pub use compare::{Comparison, Effect, Settings, compare};
pub use frequentist::{FixedHorizon, welch};
pub use moments::{Difference, Insufficient, Interval, Moments, moments};
pub use sample::Sample;
pub use sequential::{DEFAULT_TUNING, Sequential, sequential, sequential_rho};
pub use srm::{
    DEFAULT_SRM_MIN_USERS, DEFAULT_SRM_THRESHOLD, SampleRatio, sample_ratio, srm_p_value,
};

use statrs::distribution::{ContinuousCDF, Normal};

/// The counts of one variant, of control, or of all variants combined.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    pub delivered: u64,
    pub impressions: u64,
    pub clicks: u64,
    pub dismissals: u64,
    pub conversions: u64,
    pub assigned: u64,
}

/// The derived figures of one [`Counts`].
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Rates {
    pub click_rate: f64,
    pub dismissal_rate: f64,
    pub conversion_rate: f64,
    pub uplift: f64,
    pub confidence: f64,
}

/// `numerator / denominator`, or 0 when the denominator is 0.
pub fn rate(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// The relative uplift of `rate` over `control_rate`; 0 when control's rate is 0.
pub fn uplift(rate: f64, control_rate: f64) -> f64 {
    if control_rate > 0.0 {
        (rate - control_rate) / control_rate
    } else {
        0.0
    }
}

/// 1 − p-value of a two-sided two-proportion z-test of `x1` successes out of `n1`
/// against `x2` out of `n2`, in [0, 1]; 0 when not computable (a zero denominator, or a
/// pooled rate of 0 or 1).
pub fn confidence(x1: u64, n1: u64, x2: u64, n2: u64) -> f64 {
    if n1 == 0 || n2 == 0 || x1 > n1 || x2 > n2 {
        return 0.0;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let pooled = (x1 + x2) as f64 / (n1f + n2f);
    if pooled <= 0.0 || pooled >= 1.0 {
        return 0.0;
    }
    let se = (pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    let z = (x1 as f64 / n1f - x2 as f64 / n2f) / se;
    let standard = Normal::standard();
    let p_value = 2.0 * (1.0 - standard.cdf(z.abs()));
    (1.0 - p_value).clamp(0.0, 1.0)
}

/// The rates of a variant (or of the combined total), compared with `control` when there
/// is a control group: conversions out of delivered against control's out of assigned.
pub fn variant_rates(counts: &Counts, control: Option<&Counts>) -> Rates {
    let conversion_rate = rate(counts.conversions, counts.delivered);
    let (uplift, confidence) = match control {
        Some(c) => (
            uplift(conversion_rate, rate(c.conversions, c.assigned)),
            confidence(
                counts.conversions,
                counts.delivered,
                c.conversions,
                c.assigned,
            ),
        ),
        None => (0.0, 0.0),
    };
    Rates {
        click_rate: rate(counts.clicks, counts.impressions),
        dismissal_rate: rate(counts.dismissals, counts.impressions),
        conversion_rate,
        uplift,
        confidence,
    }
}

/// The rates of the control group: conversions out of assigned, nothing to compare.
pub fn control_rates(counts: &Counts) -> Rates {
    Rates {
        conversion_rate: rate(counts.conversions, counts.assigned),
        ..Rates::default()
    }
}

/// When an exposure at `exposed_at` (ms) converted: the first of `goal_times` (sorted
/// ascending, ms) at or after the exposure and at most `window_ms` after it.
pub fn conversion_time(exposed_at: i64, window_ms: i64, goal_times: &[i64]) -> Option<i64> {
    let first = goal_times.partition_point(|t| *t < exposed_at);
    goal_times
        .get(first)
        .copied()
        .filter(|t| *t - exposed_at <= window_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-4
    }

    #[test]
    fn rates_are_zero_without_a_denominator() {
        assert_eq!(rate(3, 0), 0.0);
        assert_eq!(rate(1, 4), 0.25);
        let r = variant_rates(
            &Counts {
                clicks: 2,
                ..Counts::default()
            },
            None,
        );
        assert_eq!(r, Rates::default());
    }

    #[test]
    fn variant_rates_follow_the_contract() {
        let counts = Counts {
            delivered: 200,
            impressions: 100,
            clicks: 25,
            dismissals: 10,
            conversions: 30,
            ..Counts::default()
        };
        let control = Counts {
            assigned: 100,
            conversions: 10,
            ..Counts::default()
        };
        let r = variant_rates(&counts, Some(&control));
        assert_eq!(r.click_rate, 0.25);
        assert_eq!(r.dismissal_rate, 0.1);
        assert_eq!(r.conversion_rate, 0.15);
        // (0.15 - 0.10) / 0.10
        assert!(close(r.uplift, 0.5), "{}", r.uplift);
        assert!(r.confidence > 0.0 && r.confidence < 1.0);
        let c = control_rates(&control);
        assert_eq!((c.conversion_rate, c.uplift, c.confidence), (0.1, 0.0, 0.0));
    }

    #[test]
    fn uplift_is_zero_without_control_conversions() {
        assert_eq!(uplift(0.2, 0.0), 0.0);
        assert!(close(uplift(0.05, 0.1), -0.5));
    }

    #[test]
    fn z_test_matches_a_worked_example() {
        // 200/1000 vs 150/1000: pooled 0.175, se = sqrt(.175*.825*.002) = 0.016993,
        // z = 0.05 / 0.016993 = 2.9424, two-sided p = 0.003257.
        assert!(close(confidence(200, 1000, 150, 1000), 1.0 - 0.003257));
        // Identical rates: p = 1, no confidence at all.
        assert!(close(confidence(10, 100, 20, 200), 0.0));
        // Symmetric in direction.
        assert!(close(
            confidence(150, 1000, 200, 1000),
            confidence(200, 1000, 150, 1000)
        ));
    }

    #[test]
    fn z_test_is_not_computable_at_the_edges() {
        assert_eq!(confidence(0, 100, 0, 100), 0.0);
        assert_eq!(confidence(100, 100, 50, 50), 0.0);
        assert_eq!(confidence(5, 0, 5, 10), 0.0);
        assert_eq!(confidence(5, 10, 5, 0), 0.0);
    }

    #[test]
    fn a_goal_converts_within_the_window_only() {
        let times = [50, 100, 250, 900];
        assert_eq!(conversion_time(100, 200, &times), Some(100));
        assert_eq!(conversion_time(101, 200, &times), Some(250));
        assert_eq!(conversion_time(300, 500, &times), None);
        assert_eq!(conversion_time(300, 600, &times), Some(900));
        assert_eq!(conversion_time(1000, 10_000, &times), None);
        assert_eq!(conversion_time(0, 10, &[]), None);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn confidence_is_a_probability_and_symmetric(
                n1 in 0u64..10_000, n2 in 0u64..10_000, a in 0.0f64..=1.0, b in 0.0f64..=1.0
            ) {
                let (x1, x2) = ((n1 as f64 * a) as u64, (n2 as f64 * b) as u64);
                let c = confidence(x1, n1, x2, n2);
                prop_assert!((0.0..=1.0).contains(&c));
                prop_assert!((c - confidence(x2, n2, x1, n1)).abs() < 1e-12);
            }

            #[test]
            fn a_conversion_is_never_before_the_exposure_nor_past_the_window(
                mut times in prop::collection::vec(0i64..1_000, 0..20),
                exposed in 0i64..1_000,
                window in 0i64..500,
            ) {
                times.sort_unstable();
                if let Some(at) = conversion_time(exposed, window, &times) {
                    prop_assert!(at >= exposed && at - exposed <= window);
                    prop_assert!(times.contains(&at));
                }
            }
        }
    }
}
