//! Instants and durations between their three forms: `jiff::Timestamp` in the domain,
//! milliseconds since the Unix epoch in storage (the same on SQLite and PostgreSQL), and
//! `google.protobuf.Timestamp` / `Duration` on the wire. Conversions saturate instead of
//! overflowing, so no input can make them panic.

use jiff::Timestamp;

/// `t` plus `d`, saturating at the end of time.
pub fn add(t: Timestamp, d: std::time::Duration) -> Timestamp {
    let d = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    t.saturating_add(d).unwrap_or(Timestamp::MAX)
}

/// The whole milliseconds in `d`, saturating at `i64::MAX`.
pub fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The instant `ms` milliseconds after the Unix epoch, clamped to jiff's range.
pub fn from_ms(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// A protobuf timestamp of `ms` milliseconds since the epoch.
pub fn proto_from_ms(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A protobuf timestamp of `t`. Nanos are never negative (protobuf's rule): an instant
/// before 1970 with a fraction is the earlier second plus a positive fraction, where jiff
/// counts the fraction below zero.
pub fn proto(t: Timestamp) -> prost_types::Timestamp {
    let nanos = t.as_nanosecond();
    prost_types::Timestamp {
        seconds: nanos.div_euclid(1_000_000_000) as i64,
        nanos: nanos.rem_euclid(1_000_000_000) as i32,
    }
}

/// Milliseconds since the epoch of a protobuf timestamp, saturating at the ends of `i64`.
pub fn ms_of_proto(t: &prost_types::Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(t.nanos) / 1_000_000)
}

/// Milliseconds since the epoch of a protobuf timestamp that is a valid instant after
/// 1970-01-01 (nanos in range); `None` otherwise.
pub fn checked_ms_of_proto(t: &prost_types::Timestamp) -> Option<i64> {
    if t.seconds < 0 || !(0..=999_999_999).contains(&t.nanos) {
        return None;
    }
    t.seconds
        .checked_mul(1000)
        .map(|ms| ms + i64::from(t.nanos) / 1_000_000)
}

/// Milliseconds of a protobuf duration, saturating at the ends of `i64`.
pub fn duration_ms(d: &prost_types::Duration) -> i64 {
    d.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(d.nanos) / 1_000_000)
}

/// Seconds of a protobuf duration, with fractions.
pub fn duration_secs(d: &prost_types::Duration) -> f64 {
    d.seconds as f64 + f64::from(d.nanos) / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn instants_before_1970_have_positive_nanos() {
        let p = proto(from_ms(-1));
        assert_eq!((p.seconds, p.nanos), (-1, 999_000_000));
    }

    #[test]
    fn extremes_saturate() {
        assert_eq!(from_ms(i64::MAX), Timestamp::MAX);
        assert_eq!(from_ms(i64::MIN), Timestamp::MIN);
        let huge = prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 999_999_999,
        };
        assert_eq!(ms_of_proto(&huge), i64::MAX);
        assert_eq!(checked_ms_of_proto(&huge), None);
        let negative = prost_types::Timestamp {
            seconds: -1,
            nanos: 0,
        };
        assert_eq!(checked_ms_of_proto(&negative), None);
    }

    proptest! {
        #[test]
        fn milliseconds_round_trip_through_protobuf(ms in any::<i64>()) {
            prop_assert_eq!(ms_of_proto(&proto_from_ms(ms)), ms);
        }

        #[test]
        fn timestamps_round_trip_through_protobuf(ms in -62_000_000_000_000i64..250_000_000_000_000) {
            let t = from_ms(ms);
            prop_assert!((0..1_000_000_000).contains(&proto(t).nanos));
            prop_assert_eq!(proto(t), proto_from_ms(ms));
            prop_assert_eq!(ms_of_proto(&proto(t)), ms);
            prop_assert_eq!(t.as_millisecond(), ms);
        }
    }
}
