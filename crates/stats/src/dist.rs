//! The few distribution functions the tests need, on top of `statrs` 0.18, made safe
//! for every degree of freedom.
//!
//! `statrs`'s Student's t is accurate for moderate degrees of freedom but not for huge
//! ones, which Welch's test reaches with millions of users (ν ≈ n_a + n_b − 2):
//! measured against mpmath, `StudentsT::sf(2)` is off by 1e-6 (relative) at ν = 1e9
//! and returns 0.5 at ν = 1e20; `StudentsT::inverse_cdf` (AS 64 through
//! `inv_beta_reg`) is off by 7e-6 at ν = 1e5 and had not returned after minutes at ν = 1e8. So:
//! - the upper-tail probability uses `statrs` below [`LARGE_DOF`] and a normal
//!   approximation above it;
//! - the quantile is never `inverse_cdf`: below [`LARGE_DOF`] it is a bracketed Newton
//!   solve of `sf(x) = q` (bounded, so it always returns), above it the Cornish–Fisher
//!   expansion.

use statrs::distribution::{Continuous, ContinuousCDF, Normal, StudentsT};

/// The degrees of freedom from which Student's t is computed by expansions around the
/// normal instead of by `statrs`. Measured against mpmath at 1e5, over `0 ≤ x ≤ 6`,
/// the upper tail of `statrs` is within 3.6e-11 of the exact one and the
/// approximation of [`t_sf`] within 8.7e-12; `statrs` drifts above, the
/// approximation below.
const LARGE_DOF: f64 = 1e5;

/// The most Newton (or bisection) steps of the quantile solve. It converges in under
/// ten; the bound only guarantees that it returns.
const MAX_STEPS: usize = 200;

/// `P(Z ≤ x)` for a standard normal `Z`.
pub(crate) fn normal_cdf(x: f64) -> f64 {
    Normal::standard().cdf(x)
}

/// The `z` with `P(Z > z) = q` for a standard normal `Z`, for `q` in `(0, 1)`;
/// NaN otherwise. Computed from the lower tail (`−Φ⁻¹(q)`) so a small `q` keeps its
/// precision.
pub(crate) fn normal_upper_quantile(q: f64) -> f64 {
    if q > 0.0 && q < 1.0 {
        -Normal::standard().inverse_cdf(q)
    } else {
        f64::NAN
    }
}

/// `P(T > x)` for Student's `T` with `dof` degrees of freedom; NaN when `dof` is not
/// positive or `x` is NaN.
///
/// From [`LARGE_DOF`] on: `P(Z > z)` with `z = x·(1 − 1/(4ν)) / √(1 + x²/(2ν))`, whose
/// error falls as `1/ν²`: measured against mpmath at ν = 1e5 it is at most 8.7e-12
/// (absolute, at x ≈ 2.2), and 2e-7 relative to the tail at x = 6.
pub(crate) fn t_sf(x: f64, dof: f64) -> f64 {
    if x.is_nan() || dof.is_nan() || dof <= 0.0 {
        return f64::NAN;
    }
    if dof >= LARGE_DOF {
        if x.is_infinite() {
            return if x > 0.0 { 0.0 } else { 1.0 };
        }
        // hypot keeps x²/(2ν) from overflowing for a huge x.
        let z = x * (1.0 - 0.25 / dof) / 1f64.hypot(x / (2.0 * dof).sqrt());
        return Normal::standard().sf(z);
    }
    match StudentsT::new(0.0, 1.0, dof) {
        Ok(t) => t.sf(x),
        Err(_) => f64::NAN,
    }
}

/// The `x` with `P(T > x) = q` for Student's `T` with `dof` degrees of freedom, for `q`
/// in `(0, ½)`; NaN (or ∞ when the answer is past `f64::MAX`) otherwise.
pub(crate) fn t_upper_quantile(q: f64, dof: f64) -> f64 {
    if !(q > 0.0 && q < 0.5) || dof.is_nan() || dof <= 0.0 {
        return f64::NAN;
    }
    let z = normal_upper_quantile(q);
    let guess = cornish_fisher(z, dof);
    if dof >= LARGE_DOF {
        return guess;
    }
    let Ok(t) = StudentsT::new(0.0, 1.0, dof) else {
        return f64::NAN;
    };
    // Invariant: sf(lo) > q ≥ sf(hi). sf is decreasing and convex on x > 0, so Newton
    // from the left climbs monotonically to the root; a step that leaves the bracket
    // is replaced by bisection (or by doubling while there is no upper bound yet).
    let (mut lo, mut hi) = (0.0_f64, f64::INFINITY);
    let mut x = if guess > 0.0 && guess.is_finite() {
        guess
    } else {
        z.max(1.0)
    };
    for _ in 0..MAX_STEPS {
        let excess = t.sf(x) - q;
        if excess == 0.0 {
            return x;
        }
        if excess > 0.0 {
            lo = x;
        } else {
            hi = x;
        }
        let mut next = x + excess / t.pdf(x);
        if !(next > lo && next < hi) {
            next = if hi.is_finite() {
                lo + (hi - lo) / 2.0
            } else {
                2.0 * x.max(1.0)
            };
        }
        if (next - x).abs() <= 4.0 * f64::EPSILON * x || !next.is_finite() {
            return next;
        }
        x = next;
    }
    x
}

/// The Cornish–Fisher expansion of Student's t quantile in powers of `1/ν` around the
/// normal quantile `z` (Abramowitz & Stegun 26.7.5), to the `1/ν⁴` term. For
/// α = 0.05 (z = 1.96) it is within 4e-16 (relative) of the exact quantile from
/// ν = 1000 on, measured against mpmath.
fn cornish_fisher(z: f64, dof: f64) -> f64 {
    let z2 = z * z;
    let g1 = z * (z2 + 1.0) / 4.0;
    let g2 = z * ((5.0 * z2 + 16.0) * z2 + 3.0) / 96.0;
    let g3 = z * (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) / 384.0;
    let g4 = z * ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) / 92160.0;
    z + (g1 + (g2 + (g3 + g4 / dof) / dof) / dof) / dof
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, relative: f64) -> bool {
        (got - want).abs() <= relative * want.abs()
    }

    // Cross-checks, not published vectors: exact values from mpmath 1.3.0 at 40 digits
    // (`betainc(ν/2, ½, 0, ν/(ν+x²), regularized=True)/2` and its root).

    #[test]
    fn the_t_quantile_is_exact_for_every_dof() {
        let cases = [
            (2.0, 4.302652729749464),
            (55.707_45, 2.0034728964660014),
            (5_841.742_03, 1.9603701569546268),
            (1e4, 1.9602012398906263),
            (1e5, 1.9599877075346097),
            (1e6, 1.959966356814107),
            (1e7, 1.9599642217672055),
            (1e8, 1.9599640082627667),
        ];
        for (dof, want) in cases {
            let got = t_upper_quantile(0.025, dof);
            assert!(close(got, want, 1e-10), "dof {dof}: {got} vs {want}");
        }
    }

    #[test]
    fn the_t_tail_is_exact_for_every_dof() {
        let cases = [
            (2.0, 2.0, 0.09175170953613698),
            (55.707_45, 5.0, 3.024_083_944_770_769_4e-6),
            (1e5, 2.0, 0.022751481728753232),
            (1e6, 5.0, 2.866998935445371e-7),
            (1e9, 2.0, 0.022750132083156623),
            (1e12, 2.0, 0.022750131948314184),
            (1e20, 5.0, 2.866515718791939e-7),
        ];
        for (dof, x, want) in cases {
            let got = t_sf(x, dof);
            assert!(close(got, want, 1e-9), "dof {dof}, x {x}: {got} vs {want}");
        }
    }

    #[test]
    fn the_t_tail_is_continuous_across_the_switch() {
        // Just below LARGE_DOF statrs answers, just above the normal approximation:
        // both within the 3.6e-11 measured at LARGE_DOF.
        let cases = [
            (99_000.0, 1.0, 0.15865647600273725),
            (99_000.0, 2.0, 0.022751495362965855),
            (99_000.0, 5.0, 2.871399712420957e-7),
            (101_000.0, 1.0, 0.15865645180336588),
            (101_000.0, 2.0, 0.022751468364526285),
            (101_000.0, 5.0, 2.8713029346553006e-7),
        ];
        for (dof, x, want) in cases {
            let got = t_sf(x, dof);
            assert!(
                (got - want).abs() < 4e-11,
                "dof {dof}, x {x}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn the_t_quantile_survives_extreme_tails() {
        // Cauchy (ν = 1): P(T > x) = ½ − atan(x)/π, so x = tan(π(½ − q)) = 1/tan(πq).
        let q = 1e-12;
        let want = 1.0 / (std::f64::consts::PI * q).tan();
        assert!(close(t_upper_quantile(q, 1.0), want, 1e-9));
        assert!(t_upper_quantile(1e-300, 1.0).is_finite());
        assert!(t_upper_quantile(0.0, 10.0).is_nan());
        assert!(t_upper_quantile(0.5, 10.0).is_nan());
        assert!(t_upper_quantile(0.025, 0.0).is_nan());
        assert!(t_sf(f64::INFINITY, 1e9) == 0.0);
        assert!(t_sf(1e300, 1e9) == 0.0);
    }
}
