//! One arm's data as sufficient statistics: the number of units `n`, the sum of their
//! values and the sum of their squared values. This is GrowthBook's
//! `SampleMeanStatistic` and `ProportionStatistic`
//! (`packages/stats/gbstats/models/statistics.py:44-100` at `8f1db44`).

/// What the values of a [`Sample`] are, which decides its variance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Each unit is 0 or 1 (converted or not): the variance is Bernoulli's.
    Proportion,
    /// Each unit carries any real value: the variance is the sample variance.
    Mean,
}

/// One arm's data: `n` units whose values sum to `sum` and whose squares sum to
/// `sum_squares`.
///
/// Build it with [`Sample::proportion`] (conversions out of exposed users) or
/// [`Sample::mean_of`] (a per-user value such as revenue). The two differ only in
/// [`Sample::variance`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    n: u64,
    sum: f64,
    sum_squares: f64,
    kind: Kind,
}

impl Sample {
    /// `successes` out of `n` units, each 0 or 1, so `sum_squares = sum = successes`
    /// (gbstats `ProportionStatistic`).
    pub fn proportion(n: u64, successes: u64) -> Sample {
        let sum = successes as f64;
        Sample {
            n,
            sum,
            sum_squares: sum,
            kind: Kind::Proportion,
        }
    }

    /// `n` units of any real value, given by their sum and sum of squares
    /// (gbstats `SampleMeanStatistic`).
    pub fn mean_of(n: u64, sum: f64, sum_squares: f64) -> Sample {
        Sample {
            n,
            sum,
            sum_squares,
            kind: Kind::Mean,
        }
    }

    /// The number of units.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// The sum of the units' values.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// The sum of the units' squared values.
    pub fn sum_squares(&self) -> f64 {
        self.sum_squares
    }

    /// `sum / n`, or 0 when `n = 0` (gbstats `mean`).
    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum / self.n as f64
        }
    }

    /// The variance of one unit's value, as gbstats computes it:
    /// - proportion: `mean·(1 − mean)`;
    /// - mean: `(sum_squares − sum²/n) / (n − 1)`, or 0 when `n ≤ 1`; `sum²/n` is
    ///   computed as `sum·(sum/n)` so that it does not overflow.
    ///
    /// Nothing clamps it: a sample whose variance is 0 or negative (no spread, fewer
    /// than two units, more successes than units, or rounding in `sum_squares`) is one
    /// the comparisons refuse with [`ZeroVariance`](crate::Insufficient::ZeroVariance),
    /// as gbstats' `_has_zero_variance` does.
    pub fn variance(&self) -> f64 {
        match self.kind {
            Kind::Proportion => {
                let mean = self.mean();
                mean * (1.0 - mean)
            }
            Kind::Mean if self.n <= 1 => 0.0,
            Kind::Mean => {
                let n = self.n as f64;
                (self.sum_squares - self.sum * (self.sum / n)) / (n - 1.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proportion_has_bernoulli_variance() {
        let s = Sample::proportion(28, 14);
        assert_eq!((s.n(), s.sum(), s.sum_squares()), (28, 14.0, 14.0));
        assert_eq!(s.mean(), 0.5);
        assert_eq!(s.variance(), 0.25);
    }

    #[test]
    fn a_mean_has_the_sample_variance() {
        // Values 1, 2, 3, 4: mean 2.5, sample variance 5/3.
        let s = Sample::mean_of(4, 10.0, 30.0);
        assert_eq!(s.mean(), 2.5);
        assert!((s.variance() - 5.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn an_empty_or_single_sample_has_no_variance() {
        assert_eq!(Sample::proportion(0, 0).mean(), 0.0);
        assert_eq!(Sample::proportion(0, 0).variance(), 0.0);
        assert_eq!(Sample::mean_of(0, 0.0, 0.0).mean(), 0.0);
        assert_eq!(Sample::mean_of(1, 7.0, 49.0).variance(), 0.0);
        assert_eq!(Sample::proportion(1, 1).variance(), 0.0);
    }

    #[test]
    fn more_successes_than_units_give_a_negative_variance() {
        assert!(Sample::proportion(10, 20).variance() < 0.0);
    }
}
