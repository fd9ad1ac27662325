//! What the tests pinned to GrowthBook's published vectors share.

use std::fmt::Debug;

/// GrowthBook prints its vectors to 5 decimals (`DECIMALS = 5`).
pub fn near(got: f64, want: f64) -> bool {
    (got - want).abs() <= 5e-6
}

/// Asserts that a result's centre, spread, interval bounds and probability (in that
/// order) are each [`near`] the vector's.
#[track_caller]
pub fn assert_vector(got: [f64; 5], want: [f64; 5], result: &dyn Debug) {
    let ok = got.iter().zip(want).all(|(g, w)| near(*g, w));
    assert!(ok, "{result:?}: got {got:?}, want {want:?}");
}
