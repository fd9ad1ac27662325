//! The start of a cap rule's calendar-day window ([`zone::calendar_days_start_ms`]),
//! remembered per thread for a few zones while it holds.
//!
//! Every cause of a user counts the messages of each calendar-day cap rule, and finding
//! where the window starts resolves the user's zone by name and converts between instants
//! and local dates, once per cause and rule. The answer changes only at the user's next
//! local midnight, and the users of a workspace live in a handful of zones: so the answer
//! is kept with the instants it holds for (until that midnight or the zone's next offset
//! change, whichever comes first) and computed again only outside them.

use std::cell::RefCell;

use crate::zone;

/// Answers kept per thread; the oldest is replaced.
const KEPT: usize = 8;

/// One answer, for the zones named and the days counted, and where it holds.
struct Kept {
    user_zone: Box<str>,
    default_zone: Box<str>,
    days: u32,
    /// The answer holds for the instants in `from_ms..until_ms`: the same local date, no
    /// transition in between ([`zone::same_day_until_ms`]).
    from_ms: i64,
    until_ms: i64,
    start_ms: i64,
}

#[derive(Default)]
struct Memo {
    kept: Vec<Kept>,
    /// Where the next answer goes once `KEPT` are kept.
    next: usize,
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::default();
}

/// [`zone::calendar_days_start_ms`] in the first known zone of `user_zone` and
/// `default_zone` ([`zone::resolve`]): the same answer, computed once per thread, zones
/// and local day.
pub fn calendar_days_start_ms(now_ms: i64, user_zone: &str, default_zone: &str, days: u32) -> i64 {
    MEMO.with_borrow_mut(|memo| {
        let known = memo.kept.iter().find(|k| {
            (k.from_ms..k.until_ms).contains(&now_ms)
                && k.days == days
                && *k.user_zone == *user_zone
                && *k.default_zone == *default_zone
        });
        if let Some(known) = known {
            return known.start_ms;
        }
        let tz = zone::resolve(&[user_zone, default_zone]);
        let start_ms = zone::calendar_days_start_ms(now_ms, &tz, days);
        let kept = Kept {
            user_zone: user_zone.into(),
            default_zone: default_zone.into(),
            days,
            from_ms: now_ms,
            until_ms: zone::same_day_until_ms(now_ms, &tz),
            start_ms,
        };
        if memo.kept.len() < KEPT {
            memo.kept.push(kept);
        } else {
            let at = memo.next;
            memo.kept[at] = kept;
            memo.next = (at + 1) % KEPT;
        }
        start_ms
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_start_is_the_start_computed_afresh() {
        let zones = [
            ("America/New_York", ""),
            ("", "Europe/Paris"),
            ("Not/AZone", "Asia/Tokyo"),
            // Chile springs forward at midnight; Paraguay fell back from midnight to 23:00.
            ("America/Santiago", "UTC"),
            ("America/Asuncion", "UTC"),
            ("Australia/Lord_Howe", ""),
            ("", ""),
        ];
        // Through the spring and autumn transitions of 2024 and 2026, every 17 minutes, in
        // order and then back in bigger steps, one zone after the other (so the answers
        // kept are found again), then all of them in turns (more than are kept).
        let starts = [1_709_251_200_000_i64, 1_725_148_800_000, 1_790_812_800_000];
        let mut instants: Vec<i64> = Vec::new();
        for start in starts {
            instants.extend((0..24 * 45 * 60 / 17).map(|i| start + i64::from(i) * 17 * 60_000));
            let back: Vec<i64> = instants.iter().rev().step_by(7).copied().collect();
            instants.extend(back);
        }
        let check = |now: i64, user: &str, default: &str, days: u32| {
            let tz = zone::resolve(&[user, default]);
            assert_eq!(
                calendar_days_start_ms(now, user, default, days),
                zone::calendar_days_start_ms(now, &tz, days),
                "{user:?} {default:?} {days} at {now}"
            );
        };
        for (user, default) in zones {
            for &now in &instants {
                for days in [1, 7] {
                    check(now, user, default, days);
                }
            }
        }
        for &now in instants.iter().step_by(5) {
            for (user, default) in zones {
                for days in [1, 2] {
                    check(now, user, default, days);
                }
            }
        }
    }
}
