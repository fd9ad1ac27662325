//! Time series buckets, summed from the hourly aggregates: hours, or calendar days and
//! weeks (from Monday) in a time zone. A zone whose offset from UTC is not a whole number
//! of hours cannot be summed from UTC hours, so it is refused.

use herald_core::time::from_ms;
use herald_proto::analytics::v1::BucketSize;
use jiff::tz::TimeZone;
use jiff::{ToSpan, Zoned};

/// Buckets a series may hold.
pub const MAX_BUCKETS: usize = 1_000;
const HOUR_MS: i64 = 3_600_000;

/// Why a range cannot be bucketed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// More than [`MAX_BUCKETS`].
    TooMany,
    /// The zone's offset is not whole hours at `at_ms`.
    PartialHourOffset { at_ms: i64 },
    /// Outside the times the calendar handles.
    OutOfRange,
}

fn ms_of(z: &Zoned) -> i64 {
    z.timestamp().as_millisecond()
}

/// The start of the bucket of `size` in `tz` holding `ms`.
fn floor(size: BucketSize, tz: &TimeZone, ms: i64) -> Option<i64> {
    let zoned = from_ms(ms).to_zoned(tz.clone());
    match size {
        BucketSize::Hour => Some(ms.div_euclid(HOUR_MS) * HOUR_MS),
        BucketSize::Week => {
            let day = zoned.start_of_day().ok()?;
            let back = i64::from(day.weekday().to_monday_zero_offset());
            day.checked_sub(back.days()).ok().map(|z| ms_of(&z))
        }
        _ => zoned.start_of_day().ok().map(|z| ms_of(&z)),
    }
}

/// The start of the bucket after the one starting at `start`.
fn next(size: BucketSize, tz: &TimeZone, start: i64) -> Option<i64> {
    let zoned = from_ms(start).to_zoned(tz.clone());
    let later = match size {
        BucketSize::Hour => return start.checked_add(HOUR_MS),
        BucketSize::Week => zoned.checked_add(1.week()).ok()?,
        _ => zoned.checked_add(1.day()).ok()?,
    };
    later.start_of_day().ok().map(|z| ms_of(&z))
}

/// The bucket starts covering `[start_ms, end_ms)`, rounded out to bucket boundaries,
/// and the end of the last bucket.
pub fn buckets(
    size: BucketSize,
    tz: &TimeZone,
    start_ms: i64,
    end_ms: i64,
) -> Result<(Vec<i64>, i64), Refused> {
    let mut starts = Vec::new();
    let mut at = floor(size, tz, start_ms).ok_or(Refused::OutOfRange)?;
    while at < end_ms {
        if starts.len() == MAX_BUCKETS {
            return Err(Refused::TooMany);
        }
        starts.push(at);
        at = next(size, tz, at).ok_or(Refused::OutOfRange)?;
    }
    if starts.is_empty() {
        starts.push(at);
        at = next(size, tz, at).ok_or(Refused::OutOfRange)?;
    }
    // Every bucket boundary must fall on a UTC hour, the aggregates' grain.
    for boundary in starts.iter().chain([&at]) {
        if boundary.rem_euclid(HOUR_MS) != 0 {
            return Err(Refused::PartialHourOffset { at_ms: *boundary });
        }
    }
    Ok((starts, at))
}

/// Sums `hours` (hour start, value; sorted) into the buckets starting at `starts` (the
/// last ending at `end`).
pub fn sum(starts: &[i64], end: i64, hours: &[(i64, u64)]) -> Vec<u64> {
    let mut values = vec![0; starts.len()];
    for (hour, value) in hours {
        if *hour >= end {
            continue;
        }
        if let Some(i) = starts.partition_point(|s| s <= hour).checked_sub(1) {
            values[i] += value;
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn days_follow_the_zone_and_its_clock_changes() {
        let tz = TimeZone::get("America/New_York").unwrap();
        // 2026-03-08 is 23 hours long in New York.
        let (starts, end) = buckets(
            BucketSize::Day,
            &tz,
            ms("2026-03-07T12:00:00Z"),
            ms("2026-03-09T06:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            starts,
            [
                ms("2026-03-07T05:00:00Z"),
                ms("2026-03-08T05:00:00Z"),
                ms("2026-03-09T04:00:00Z")
            ]
        );
        assert_eq!(end, ms("2026-03-10T04:00:00Z"));
        let hours = [
            (ms("2026-03-07T04:00:00Z"), 1),
            (ms("2026-03-07T05:00:00Z"), 2),
            (ms("2026-03-09T03:00:00Z"), 3),
            (ms("2026-03-09T04:00:00Z"), 4),
            (ms("2026-03-10T04:00:00Z"), 5),
        ];
        assert_eq!(sum(&starts, end, &hours), [2, 3, 4]);
    }

    #[test]
    fn weeks_start_on_monday() {
        let (starts, _) = buckets(
            BucketSize::Week,
            &TimeZone::UTC,
            ms("2026-06-03T10:00:00Z"),
            ms("2026-06-09T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            starts,
            [ms("2026-06-01T00:00:00Z"), ms("2026-06-08T00:00:00Z")]
        );
    }

    #[test]
    fn half_hour_zones_and_too_many_buckets_are_refused() {
        let kolkata = TimeZone::get("Asia/Kolkata").unwrap();
        let day = buckets(BucketSize::Day, &kolkata, 0, 86_400_000);
        assert!(matches!(day, Err(Refused::PartialHourOffset { .. })));
        // Hours are UTC hours in any zone.
        assert!(buckets(BucketSize::Hour, &kolkata, 0, 86_400_000).is_ok());
        let too_many = buckets(BucketSize::Hour, &TimeZone::UTC, 0, 1_001 * HOUR_MS);
        assert_eq!(too_many, Err(Refused::TooMany));
        assert_eq!(
            buckets(BucketSize::Hour, &TimeZone::UTC, 0, 1_000 * HOUR_MS)
                .unwrap()
                .0
                .len(),
            1_000
        );
    }
}
