//! How often a user did one thing (performed an event matching a filter set, or engaged
//! with a campaign's messages in one way): an all-time total with the first and last
//! occurrence, plus per-minute counts for as far back as the longest window any rule
//! counts this series in. A minute leaves the buckets once it is older than that window;
//! the total keeps it. That is the whole compaction: old history costs one number.
//!
//! A minute bucket `m` (its start, in milliseconds) counts in a window `w` at `now` while
//! `m + w > now`, so an event at 10:00:00 counts in a 7-day window until 10:00:00 seven
//! days later, exclusive, and an event at 10:00:30 until the same instant (one-minute
//! granularity, as the contract says).

use prost::Message;

/// One minute, in milliseconds.
pub const MINUTE_MS: i64 = 60_000;

/// The start of the minute holding `at_ms`.
pub fn minute_of(at_ms: i64) -> i64 {
    at_ms.div_euclid(MINUTE_MS) * MINUTE_MS
}

/// Occurrences of one thing for one user.
#[derive(Clone, PartialEq, Message)]
pub struct Series {
    /// Occurrences ever counted.
    #[prost(uint64, tag = "1")]
    pub total: u64,
    /// The earliest occurrence's time (ms since the epoch); meaningful when total > 0.
    #[prost(int64, tag = "2")]
    pub first_ms: i64,
    /// The latest occurrence's time (ms since the epoch); meaningful when total > 0.
    #[prost(int64, tag = "3")]
    pub last_ms: i64,
    /// Starts of the minutes with occurrences that are still inside the longest window,
    /// ascending and distinct.
    #[prost(int64, repeated, tag = "4")]
    pub minutes: Vec<i64>,
    /// The occurrences in each of `minutes`.
    #[prost(uint32, repeated, tag = "5")]
    pub counts: Vec<u32>,
}

impl Series {
    /// A series seeded with an all-time total and first/last occurrence, no buckets (the
    /// history kept before this series had windows).
    pub fn seeded(total: u64, first_ms: i64, last_ms: i64) -> Series {
        Series {
            total,
            first_ms,
            last_ms,
            ..Series::default()
        }
    }

    /// Counts one occurrence at `at_ms`; with `keep_ms`, the longest window counted in,
    /// also in its minute, and drops minutes that left that window at `now_ms`.
    pub fn record(&mut self, at_ms: i64, keep_ms: Option<i64>, now_ms: i64) {
        if self.total == 0 {
            self.first_ms = at_ms;
            self.last_ms = at_ms;
        } else {
            self.first_ms = self.first_ms.min(at_ms);
            self.last_ms = self.last_ms.max(at_ms);
        }
        self.total += 1;
        if let Some(keep) = keep_ms {
            let minute = minute_of(at_ms);
            if minute + keep > now_ms {
                match self.minutes.binary_search(&minute) {
                    Ok(i) => self.counts[i] = self.counts[i].saturating_add(1),
                    Err(i) => {
                        self.minutes.insert(i, minute);
                        self.counts.insert(i, 1);
                    }
                }
            }
        }
        self.compact(keep_ms, now_ms);
    }

    /// Drops the minutes that left the longest window (`keep_ms`; none keeps no minutes)
    /// at `now_ms`. Returns whether anything was dropped.
    pub fn compact(&mut self, keep_ms: Option<i64>, now_ms: i64) -> bool {
        let gone = match keep_ms {
            None => self.minutes.len(),
            Some(keep) => self.minutes.partition_point(|m| m + keep <= now_ms),
        };
        if gone > 0 {
            self.minutes.drain(..gone);
            self.counts.drain(..gone);
        }
        gone > 0
    }

    /// Occurrences in the window of `within_ms` before `now_ms`.
    pub fn within(&self, within_ms: i64, now_ms: i64) -> u64 {
        let start = self.minutes.partition_point(|m| m + within_ms <= now_ms);
        self.counts[start..].iter().map(|&c| u64::from(c)).sum()
    }

    /// The window's buckets as (instant it leaves the window, count), oldest first.
    pub fn leaving(&self, within_ms: i64, now_ms: i64) -> impl Iterator<Item = (i64, u64)> + '_ {
        let start = self.minutes.partition_point(|m| m + within_ms <= now_ms);
        self.minutes[start..]
            .iter()
            .zip(&self.counts[start..])
            .map(move |(m, c)| (m + within_ms, u64::from(*c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn minutes_leave_the_window_at_their_start_plus_the_window() {
        let mut s = Series::default();
        let t = 10 * DAY;
        s.record(t + 30_000, Some(7 * DAY), t + 30_000);
        s.record(t + 45_000, Some(7 * DAY), t + 45_000);
        s.record(t + 2 * MINUTE_MS, Some(7 * DAY), t + 2 * MINUTE_MS);
        assert_eq!(
            (s.total, s.first_ms, s.last_ms),
            (3, t + 30_000, t + 2 * MINUTE_MS)
        );
        assert_eq!(s.minutes, vec![t, t + 2 * MINUTE_MS]);
        assert_eq!(s.within(7 * DAY, t + 7 * DAY - 1), 3);
        assert_eq!(s.within(7 * DAY, t + 7 * DAY), 1);
        assert_eq!(s.within(7 * DAY, t + 7 * DAY + 2 * MINUTE_MS), 0);
        assert_eq!(
            s.leaving(7 * DAY, t).collect::<Vec<_>>(),
            vec![(t + 7 * DAY, 2), (t + 7 * DAY + 2 * MINUTE_MS, 1)]
        );
        assert!(s.compact(Some(7 * DAY), t + 7 * DAY));
        assert_eq!((s.minutes.len(), s.total), (1, 3));
    }

    #[test]
    fn without_a_window_only_the_total_is_kept() {
        let mut s = Series::default();
        s.record(5, None, 5);
        s.record(1, None, 6);
        assert_eq!((s.total, s.first_ms, s.last_ms), (2, 1, 5));
        assert!(s.minutes.is_empty());
        // An occurrence older than the window at arrival counts in the total only.
        s.record(0, Some(MINUTE_MS), 10 * MINUTE_MS);
        assert_eq!((s.total, s.minutes.len()), (3, 0));
    }
}
