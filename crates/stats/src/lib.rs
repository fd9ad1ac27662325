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
