//! Time-zone arithmetic for targeting, over instants in milliseconds since the Unix epoch:
//! - [`resolve`]: the user's zone from a list of candidate names, UTC as the last resort;
//! - [`LocalWindow`]: a daily local window (quiet hours) and when it is over;
//! - [`jitter_ms`]: a deterministic spread so a whole zone is not released at one instant;
//! - [`calendar_days_start_ms`]: where "the last N local calendar days" begin;
//! - [`LocalSchedule`]: a 5-field cron expression or a one-off local date-time.
//!
//! Local times are resolved the same way everywhere: a local time that does not exist
//! (skipped by a DST gap) means the first instant after the gap, and one that exists twice
//! (repeated by a DST fold) means the first of the two. Pure: no clock reads, no IO.
//! Instants outside jiff's range (years -9999..=9999) are clamped to it.

use std::fmt;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Span, Timestamp};
use sha2::{Digest, Sha256};

/// The first of `names` that is a known IANA zone, else UTC. Empty strings are skipped.
pub fn resolve(names: &[&str]) -> TimeZone {
    names
        .iter()
        .map(|name| name.trim())
        .filter(|name| !name.is_empty())
        .find_map(|name| jiff::tz::db().get(name).ok())
        .unwrap_or(TimeZone::UTC)
}

/// A daily local window `start`–`end` (half-open: `start` is inside, `end` is not). It
/// wraps midnight when `end` is before `start`; equal times make an empty window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalWindow {
    start: Time,
    end: Time,
}

impl LocalWindow {
    /// `None` when either time is not "HH:MM" (24h, two digits each).
    pub fn parse(start: &str, end: &str) -> Option<LocalWindow> {
        Some(LocalWindow {
            start: parse_hh_mm(start)?,
            end: parse_hh_mm(end)?,
        })
    }

    /// The local time the window opens.
    pub fn start(&self) -> Time {
        self.start
    }

    /// The local time the window closes.
    pub fn end(&self) -> Time {
        self.end
    }

    /// Whether the local wall-clock time `time` is inside the window.
    pub fn contains(&self, time: Time) -> bool {
        if self.start <= self.end {
            self.start <= time && time < self.end
        } else {
            time >= self.start || time < self.end
        }
    }

    /// If `now_ms` falls inside the window in `tz`, the instant the window ends: the next
    /// occurrence of the end local time after now. `None` when outside the window.
    ///
    /// Membership is decided on the local wall-clock time. An end time skipped by a DST
    /// gap ends the window at the first instant after the gap; one repeated by a fold ends
    /// it at the first occurrence (the second when now is already past the first). In the
    /// degenerate case where a gap skips over both the end and the start, the window does
    /// not end that day, and the release is the next day's end.
    pub fn release_ms(&self, now_ms: i64, tz: &TimeZone) -> Option<i64> {
        let now = timestamp(now_ms);
        let local = tz.to_datetime(now);
        if !self.contains(local.time()) {
            return None;
        }
        let mut date = local.date();
        // Today's end, or tomorrow's when the window wrapped past midnight; later days
        // only in the degenerate gap case above.
        for _ in 0..8 {
            let candidate = occurrences(date.to_datetime(self.end), tz)
                .into_iter()
                .flatten()
                .find(|at| *at > now && !self.contains(tz.to_datetime(*at).time()));
            if let Some(at) = candidate {
                return Some(at.as_millisecond());
            }
            date = date.tomorrow().ok()?;
        }
        // Unreachable with real zones (it needs gaps on eight days in a row).
        None
    }
}

/// "HH:MM" with two digits each, 00:00 to 23:59.
fn parse_hh_mm(text: &str) -> Option<Time> {
    let bytes = text.as_bytes();
    if bytes.len() != 5 || bytes[2] != b':' {
        return None;
    }
    let hour = two_digits(&bytes[0..2])?;
    let minute = two_digits(&bytes[3..5])?;
    Time::new(hour, minute, 0, 0).ok()
}

fn two_digits(bytes: &[u8]) -> Option<i8> {
    match bytes {
        [tens @ b'0'..=b'9', ones @ b'0'..=b'9'] => {
            Some(((tens - b'0') * 10 + (ones - b'0')) as i8)
        }
        _ => None,
    }
}

/// A deterministic spread in `[0, max_ms)` from a hash of `key` (e.g. the user id), so the
/// releases of a whole zone are not all at the same instant. 0 when `max_ms <= 0`.
pub fn jitter_ms(key: &str, max_ms: i64) -> i64 {
    if max_ms <= 0 {
        return 0;
    }
    // A stable hash (not std's randomly seeded one): the same on every replica and restart.
    let digest = Sha256::digest(key.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    // max_ms > 0, so both casts are lossless and the remainder fits in i64.
    (u64::from_be_bytes(head) % max_ms as u64) as i64
}

/// The instant the user's local calendar day started `days - 1` days before the day that
/// contains `now_ms` (`days = 1`: the start of today; 0 counts as 1). The start of a day is
/// its first instant, which is not 00:00 where a DST gap skips midnight.
pub fn calendar_days_start_ms(now_ms: i64, tz: &TimeZone, days: u32) -> i64 {
    let today = tz.to_datetime(timestamp(now_ms)).date();
    let back = i64::from(days.saturating_sub(1));
    let first = Span::new()
        .try_days(back)
        .and_then(|span| today.checked_sub(span))
        .unwrap_or(Date::MIN);
    first_instant(first.to_datetime(Time::midnight()), tz)
        .unwrap_or(Timestamp::MIN)
        .as_millisecond()
}

/// The instant until which the local date and the offset of `now_ms` in `tz` stay what
/// they are: the next local midnight or the next transition, whichever comes first
/// (`now_ms` itself when neither is in jiff's range). Before it, anything computed from
/// the local date of `now_ms` holds.
pub fn same_day_until_ms(now_ms: i64, tz: &TimeZone) -> i64 {
    let now = timestamp(now_ms);
    let midnight = tz
        .to_datetime(now)
        .date()
        .tomorrow()
        .ok()
        .and_then(|tomorrow| first_instant(tomorrow.to_datetime(Time::midnight()), tz));
    let transition = tz.following(now).next().map(|t| t.timestamp());
    [midnight, transition]
        .into_iter()
        .flatten()
        .min()
        .map_or(now_ms, |until| until.as_millisecond().max(now_ms))
}

/// A local schedule: when a campaign fires, in the user's zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalSchedule {
    /// A 5-field cron expression.
    Cron(Cron),
    /// One local date-time, to the minute.
    At(DateTime),
}

impl LocalSchedule {
    /// A 5-field cron expression (see [`Cron`]); the error says which field is wrong and why.
    pub fn cron(expr: &str) -> Result<LocalSchedule, String> {
        Cron::parse(expr).map(LocalSchedule::Cron)
    }

    /// One local date-time written "YYYY-MM-DDTHH:MM".
    pub fn at(local: &str) -> Result<LocalSchedule, String> {
        parse_local_datetime(local).map(LocalSchedule::At)
    }

    /// The first instant strictly after `after_ms` at which the schedule fires in `tz`;
    /// `None` when it never fires again (a past one-off, or a cron expression with no
    /// occurrence in the next [`SEARCH_YEARS`] years, such as February 30). A local time in
    /// a DST gap fires at the first instant after the gap; a local time that exists twice
    /// fires once, at the first.
    pub fn next_after_ms(&self, after_ms: i64, tz: &TimeZone) -> Option<i64> {
        let after = timestamp(after_ms);
        let next = match self {
            LocalSchedule::Cron(cron) => cron.next_after(after, tz),
            LocalSchedule::At(local) => first_instant(*local, tz).filter(|at| *at > after),
        };
        next.map(|at| at.as_millisecond())
    }
}

/// Prints the canonical text, which parses back to an equal schedule.
impl fmt::Display for LocalSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalSchedule::Cron(cron) => cron.fmt(f),
            LocalSchedule::At(local) => write!(f, "{}", local.strftime("%Y-%m-%dT%H:%M")),
        }
    }
}

/// "YYYY-MM-DDTHH:MM" exactly: no seconds, no offset, no zone.
fn parse_local_datetime(text: &str) -> Result<DateTime, String> {
    let expected = || format!("expected a local date-time YYYY-MM-DDTHH:MM, found {text:?}");
    let bytes = text.as_bytes();
    let shape = bytes.len() == 16
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b'T',
            13 => *b == b':',
            _ => b.is_ascii_digit(),
        });
    if !shape {
        return Err(expected());
    }
    // The shape check makes every slice below ASCII digits.
    let number = |range: std::ops::Range<usize>| text[range].parse::<i16>().map_err(|_| expected());
    DateTime::new(
        number(0..4)?,
        number(5..7)? as i8,
        number(8..10)? as i8,
        number(11..13)? as i8,
        number(14..16)? as i8,
        0,
        0,
    )
    .map_err(|_| format!("{text:?} is not a valid local date-time"))
}

/// How far ahead [`LocalSchedule::next_after_ms`] looks for a cron occurrence. Nine years
/// cover the longest wait of a satisfiable expression: February 29 skips 2100, so it can be
/// eight years from one to the next.
pub const SEARCH_YEARS: i64 = 9;

/// A 5-field cron expression: `minute hour day-of-month month day-of-week`.
///
/// Each field takes `*`, a value, a range `a-b`, a step `*/n`, `a-b/n` or `a/n` (from `a`
/// to the field's maximum), and comma-separated lists of those. Months and days of the
/// week also take three-letter English names (`jan`, `mon`, any case). Day of week is 0-7
/// with both 0 and 7 Sunday. The nicknames `@yearly` (`@annually`), `@monthly`, `@weekly`,
/// `@daily` (`@midnight`) and `@hourly` stand for their usual expressions.
///
/// Days follow the classic cron rule: when both day-of-month and day-of-week are
/// restricted, a day matching either fires; otherwise both must match. A field is
/// restricted when it does not allow every value (so `*/2` is restricted, `1-31` is not;
/// Vixie cron instead looks at whether the field text starts with `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    /// The canonical text: the nickname, or the fields joined by single spaces.
    text: String,
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    /// Bits 0 (Sunday) to 6 (Saturday); a 7 in the expression sets bit 0.
    days_of_week: u64,
    /// Both day fields are restricted, so a day matching either fires.
    either_day: bool,
}

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names for the values from `min` on.
    names: &'static [&'static str],
}

const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

impl FieldSpec {
    /// Every value of the field as a bit set (day of week: 0-6, since 7 is 0).
    fn all(&self) -> u64 {
        let max = if self.max == 7 { 6 } else { self.max };
        (self.min..=max).fold(0, |bits, value| bits | 1 << value)
    }

    fn parse(&self, field: &str) -> Result<u64, String> {
        let mut bits = 0u64;
        for element in field.split(',') {
            bits |= self
                .element(element)
                .map_err(|why| format!("{} field {field:?}: {why}", self.name))?;
        }
        Ok(bits)
    }

    fn element(&self, element: &str) -> Result<u64, String> {
        if element.is_empty() {
            return Err("empty list element".to_owned());
        }
        let (range, step) = match element.split_once('/') {
            Some((range, step)) => {
                let step = step
                    .parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0 && step.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| format!("step {step:?} is not a positive number"))?;
                (range, Some(step))
            }
            None => (element, None),
        };
        let (low, high) = if range == "*" {
            (self.min, self.max)
        } else if let Some((low, high)) = range.split_once('-') {
            let (low, high) = (self.value(low)?, self.value(high)?);
            if low > high {
                return Err(format!("range {range} runs backwards"));
            }
            (low, high)
        } else {
            let value = self.value(range)?;
            // "a/n" runs from a to the field's maximum.
            (value, if step.is_some() { self.max } else { value })
        };
        let step = step.unwrap_or(1) as usize;
        Ok((low..=high).step_by(step).fold(0, |bits, value| {
            // Day of week 7 is Sunday, the same bit as 0.
            let bit = if self.max == 7 { value % 7 } else { value };
            bits | 1 << bit
        }))
    }

    fn value(&self, text: &str) -> Result<u32, String> {
        let value = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            text.parse::<u32>().unwrap_or(u32::MAX)
        } else if let Some(index) = self
            .names
            .iter()
            .position(|name| name.eq_ignore_ascii_case(text))
        {
            self.min + index as u32
        } else {
            return Err(format!("{text:?} is not a number"));
        };
        if !(self.min..=self.max).contains(&value) {
            return Err(format!("{text} is out of range {}-{}", self.min, self.max));
        }
        Ok(value)
    }
}

impl Cron {
    /// Parses a 5-field expression or a nickname; the error names the first wrong field.
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let trimmed = expr.trim();
        let (text, fields) = if trimmed.starts_with('@') {
            let expanded = match trimmed.to_ascii_lowercase().as_str() {
                "@yearly" | "@annually" => "0 0 1 1 *",
                "@monthly" => "0 0 1 * *",
                "@weekly" => "0 0 * * 0",
                "@daily" | "@midnight" => "0 0 * * *",
                "@hourly" => "0 * * * *",
                _ => {
                    return Err(format!(
                        "unknown nickname {trimmed:?}, expected @yearly, @annually, @monthly, \
                         @weekly, @daily, @midnight or @hourly"
                    ));
                }
            };
            (
                trimmed.to_ascii_lowercase(),
                expanded.split(' ').collect::<Vec<_>>(),
            )
        } else {
            let fields = trimmed.split_whitespace().collect::<Vec<_>>();
            (fields.join(" "), fields)
        };
        let [minute, hour, day_of_month, month, day_of_week] = fields[..] else {
            return Err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            ));
        };
        let days_of_month = DAY_OF_MONTH.parse(day_of_month)?;
        let days_of_week = DAY_OF_WEEK.parse(day_of_week)?;
        Ok(Cron {
            minutes: MINUTE.parse(minute)?,
            hours: HOUR.parse(hour)?,
            months: MONTH.parse(month)?,
            either_day: days_of_month != DAY_OF_MONTH.all() && days_of_week != DAY_OF_WEEK.all(),
            days_of_month,
            days_of_week,
            text,
        })
    }

    /// Whether the schedule fires on the local date `date` (at some of its times).
    pub fn matches_date(&self, date: Date) -> bool {
        if !has(self.months, date.month()) {
            return false;
        }
        let by_month_day = has(self.days_of_month, date.day());
        let by_week_day = has(self.days_of_week, date.weekday().to_sunday_zero_offset());
        if self.either_day {
            by_month_day || by_week_day
        } else {
            by_month_day && by_week_day
        }
    }

    /// Whether the schedule fires at the local wall-clock time `local` (to the minute).
    pub fn matches(&self, local: DateTime) -> bool {
        self.matches_date(local.date())
            && has(self.hours, local.hour())
            && has(self.minutes, local.minute())
            && local.second() == 0
            && local.subsec_nanosecond() == 0
    }

    fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        // From the day before: a time skipped by a gap that spans midnight resolves to an
        // instant of the next local day.
        let start = tz.to_datetime(after).date();
        let mut date = start.yesterday().unwrap_or(start);
        let last = start
            .checked_add(Span::new().years(SEARCH_YEARS))
            .unwrap_or(Date::MAX);
        while date <= last {
            let next_date = date.tomorrow().ok()?;
            // Every time of `date` resolves to an instant before the next day's first one.
            let day_is_past = first_instant(next_date.to_datetime(Time::midnight()), tz)
                .is_some_and(|next_day| next_day <= after);
            if !day_is_past && self.matches_date(date) {
                // Wall times in order map to non-decreasing instants (a fold's times to
                // their first pass, a gap's to the instant after it), so the first one
                // after `after` is the earliest.
                for hour in bits_of(self.hours) {
                    for minute in bits_of(self.minutes) {
                        let local = date.to_datetime(Time::constant(hour, minute, 0, 0));
                        if let Some(at) = first_instant(local, tz).filter(|at| *at > after) {
                            return Some(at);
                        }
                    }
                }
            }
            date = next_date;
        }
        None
    }
}

/// Prints the canonical text, which parses back to an equal expression.
impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn has(bits: u64, value: i8) -> bool {
    (0..64).contains(&value) && bits & (1 << value) != 0
}

fn bits_of(bits: u64) -> impl Iterator<Item = i8> {
    (0..64i8).filter(move |value| bits & (1 << value) != 0)
}

/// Clamps `ms` into jiff's range.
fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// The instants at which the local time `local` occurs in `tz`, earliest first: one, or
/// two in a fold; in a gap, the first instant after it. `None` out of jiff's range.
fn occurrences(local: DateTime, tz: &TimeZone) -> [Option<Timestamp>; 2] {
    let ambiguous = tz.to_ambiguous_timestamp(local);
    match ambiguous.offset() {
        AmbiguousOffset::Fold { before, after } => [
            before.to_timestamp(local).ok(),
            after.to_timestamp(local).ok(),
        ],
        _ => [first_instant(local, tz), None],
    }
}

/// The first instant at which the local time `local` occurs in `tz`, or, when a gap skips
/// it, the first instant after the gap (where the clock shows the gap's end). jiff's own
/// "compatible" rule would instead shift by the gap's length: 02:30 → 03:30, not 03:00.
fn first_instant(local: DateTime, tz: &TimeZone) -> Option<Timestamp> {
    let ambiguous = tz.to_ambiguous_timestamp(local);
    match ambiguous.offset() {
        AmbiguousOffset::Gap { after, .. } => {
            // With the later offset the local time reads as an instant before the
            // transition, and the transition is the first one after that instant.
            let before_gap = after.to_timestamp(local).ok()?;
            tz.following(before_gap)
                .next()
                .map(|transition| transition.timestamp())
        }
        _ => ambiguous.earlier().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tz(name: &str) -> TimeZone {
        jiff::tz::db().get(name).unwrap()
    }

    /// Milliseconds of an RFC 3339 instant, e.g. "2026-03-08T12:00:00Z" or "…-05:00".
    fn ms(instant: &str) -> i64 {
        instant.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn window(start: &str, end: &str) -> LocalWindow {
        LocalWindow::parse(start, end).unwrap()
    }

    fn cron(expr: &str) -> LocalSchedule {
        LocalSchedule::cron(expr).unwrap()
    }

    /// The first `n` firings after `after`, as RFC 3339 instants in `zone`.
    fn firings(schedule: &LocalSchedule, after: &str, zone: &str, n: usize) -> Vec<String> {
        let zone = tz(zone);
        let mut at = ms(after);
        let mut out = Vec::new();
        for _ in 0..n {
            at = schedule.next_after_ms(at, &zone).unwrap();
            let zoned = Timestamp::from_millisecond(at)
                .unwrap()
                .to_zoned(zone.clone());
            out.push(zoned.strftime("%Y-%m-%dT%H:%M%:z").to_string());
        }
        out
    }

    #[test]
    fn resolve_takes_the_first_known_zone() {
        let zone = resolve(&["", "Not/AZone", "Europe/Paris", "Asia/Tokyo"]);
        assert_eq!(zone.iana_name(), Some("Europe/Paris"));
        assert_eq!(
            resolve(&["  ", "America/New_York"]).iana_name(),
            Some("America/New_York")
        );
    }

    #[test]
    fn resolve_falls_back_to_utc() {
        assert_eq!(resolve(&["", "Mars/Olympus_Mons", "+05:00"]), TimeZone::UTC);
        assert_eq!(resolve(&[]), TimeZone::UTC);
    }

    #[test]
    fn window_parse_accepts_only_hh_mm() {
        assert!(LocalWindow::parse("00:00", "23:59").is_some());
        for bad in [
            "8:00", "24:00", "12:60", "ab:cd", "12:00:00", "", "12-00", " 1:00", "+1:00",
        ] {
            assert_eq!(LocalWindow::parse(bad, "08:00"), None, "{bad:?}");
            assert_eq!(LocalWindow::parse("08:00", bad), None, "{bad:?}");
        }
    }

    #[test]
    fn window_within_a_day() {
        let office = window("09:00", "17:00");
        let utc = TimeZone::UTC;
        let five_pm = ms("2026-05-04T17:00:00Z");
        assert_eq!(
            office.release_ms(ms("2026-05-04T09:00:00Z"), &utc),
            Some(five_pm)
        );
        assert_eq!(
            office.release_ms(ms("2026-05-04T16:59:59.999Z"), &utc),
            Some(five_pm)
        );
        assert_eq!(
            office.release_ms(ms("2026-05-04T08:59:59.999Z"), &utc),
            None
        );
        assert_eq!(office.release_ms(five_pm, &utc), None);
        assert_eq!(office.release_ms(ms("2026-05-04T23:00:00Z"), &utc), None);
    }

    #[test]
    fn window_wrapping_midnight() {
        let quiet = window("22:00", "08:00");
        let paris = tz("Europe/Paris");
        // 23:00 and 07:00 local (UTC+2 in May) both release at 08:00 local on the 5th.
        let release = Some(ms("2026-05-05T08:00:00+02:00"));
        assert_eq!(
            quiet.release_ms(ms("2026-05-04T23:00:00+02:00"), &paris),
            release
        );
        assert_eq!(
            quiet.release_ms(ms("2026-05-05T00:00:00+02:00"), &paris),
            release
        );
        assert_eq!(
            quiet.release_ms(ms("2026-05-05T07:59:00+02:00"), &paris),
            release
        );
        assert_eq!(
            quiet.release_ms(ms("2026-05-04T22:00:00+02:00"), &paris),
            release
        );
        assert_eq!(
            quiet.release_ms(ms("2026-05-05T08:00:00+02:00"), &paris),
            None
        );
        assert_eq!(
            quiet.release_ms(ms("2026-05-04T21:59:00+02:00"), &paris),
            None
        );
        // The same instant is 21:00 in UTC: not quiet there.
        assert_eq!(
            quiet.release_ms(ms("2026-05-04T23:00:00+02:00"), &TimeZone::UTC),
            None
        );
    }

    #[test]
    fn equal_start_and_end_is_never_quiet() {
        let empty = window("10:00", "10:00");
        let ny = tz("America/New_York");
        for minute in (0..24 * 60).step_by(7) {
            let now = ms("2026-03-08T00:00:00-05:00") + minute * 60_000;
            assert_eq!(empty.release_ms(now, &ny), None);
        }
    }

    #[test]
    fn quiet_hours_across_spring_forward() {
        let quiet = window("22:00", "08:00");
        let ny = tz("America/New_York");
        // The night of 2026-03-07/08 is 22:00 EST to 08:00 EDT: one hour shorter.
        let release = Some(ms("2026-03-08T12:00:00Z"));
        assert_eq!(
            quiet.release_ms(ms("2026-03-07T23:00:00-05:00"), &ny),
            release
        );
        assert_eq!(
            quiet.release_ms(ms("2026-03-08T01:59:00-05:00"), &ny),
            release
        );
        assert_eq!(
            quiet.release_ms(ms("2026-03-08T03:00:00-04:00"), &ny),
            release
        );
        assert_eq!(
            quiet.release_ms(ms("2026-03-08T07:59:00-04:00"), &ny),
            release
        );
        assert_eq!(quiet.release_ms(ms("2026-03-08T08:00:00-04:00"), &ny), None);
    }

    #[test]
    fn quiet_hours_across_fall_back() {
        let quiet = window("22:00", "08:00");
        let ny = tz("America/New_York");
        // The night of 2026-10-31/11-01 is 22:00 EDT to 08:00 EST: one hour longer.
        let release = Some(ms("2026-11-01T13:00:00Z"));
        assert_eq!(
            quiet.release_ms(ms("2026-10-31T23:00:00-04:00"), &ny),
            release
        );
        assert_eq!(
            quiet.release_ms(ms("2026-11-01T01:30:00-04:00"), &ny),
            release
        );
        assert_eq!(
            quiet.release_ms(ms("2026-11-01T01:30:00-05:00"), &ny),
            release
        );
        assert_eq!(
            quiet.release_ms(ms("2026-11-01T07:59:00-05:00"), &ny),
            release
        );
        assert_eq!(quiet.release_ms(ms("2026-11-01T08:00:00-05:00"), &ny), None);
    }

    #[test]
    fn window_ending_in_a_gap_ends_after_the_gap() {
        let ny = tz("America/New_York");
        // 02:30 does not exist on 2026-03-08: the window ends at 03:00 EDT.
        let early = window("01:00", "02:30");
        assert_eq!(
            early.release_ms(ms("2026-03-08T01:45:00-05:00"), &ny),
            Some(ms("2026-03-08T03:00:00-04:00"))
        );
        // Start and end both skipped: quiet all that day, over at the next day's 02:30.
        let almost_always = window("02:45", "02:30");
        assert_eq!(
            almost_always.release_ms(ms("2026-03-08T01:00:00-05:00"), &ny),
            Some(ms("2026-03-09T02:30:00-04:00"))
        );
    }

    #[test]
    fn window_ending_in_a_fold_ends_at_the_next_occurrence() {
        let ny = tz("America/New_York");
        let night = window("00:00", "01:30");
        // 01:30 happens twice on 2026-11-01: first at 01:30 EDT ...
        assert_eq!(
            night.release_ms(ms("2026-11-01T01:10:00-04:00"), &ny),
            Some(ms("2026-11-01T01:30:00-04:00"))
        );
        // ... and when now is already past it (01:10 EST, the second pass), at 01:30 EST.
        assert_eq!(
            night.release_ms(ms("2026-11-01T01:10:00-05:00"), &ny),
            Some(ms("2026-11-01T01:30:00-05:00"))
        );
    }

    #[test]
    fn jitter_is_deterministic_and_in_range() {
        let hour = 3_600_000;
        assert_eq!(jitter_ms("user-1", hour), jitter_ms("user-1", hour));
        assert_eq!(jitter_ms("user-1", 0), 0);
        assert_eq!(jitter_ms("user-1", -5), 0);
        assert_eq!(jitter_ms("user-1", 1), 0);
        let spread: Vec<i64> = (0..1_000)
            .map(|i| jitter_ms(&format!("user-{i}"), hour))
            .collect();
        assert!(spread.iter().all(|j| (0..hour).contains(j)));
        // Spread over the range, not bunched: each quarter of the hour gets about 250.
        for quarter in 0..4 {
            let range = quarter * hour / 4..(quarter + 1) * hour / 4;
            let count = spread.iter().filter(|j| range.contains(j)).count();
            assert!(
                (180..=320).contains(&count),
                "quarter {quarter} got {count}"
            );
        }
    }

    #[test]
    fn calendar_days_start_counts_local_days() {
        let ny = tz("America/New_York");
        let now = ms("2026-03-10T12:00:00-04:00");
        assert_eq!(
            calendar_days_start_ms(now, &ny, 1),
            ms("2026-03-10T00:00:00-04:00")
        );
        assert_eq!(
            calendar_days_start_ms(now, &ny, 0),
            ms("2026-03-10T00:00:00-04:00")
        );
        // Three days back crosses the spring-forward day: that midnight was still EST.
        assert_eq!(
            calendar_days_start_ms(now, &ny, 3),
            ms("2026-03-08T00:00:00-05:00")
        );
        // The same instant is already the 11th in Tokyo.
        assert_eq!(
            calendar_days_start_ms(now, &tz("Asia/Tokyo"), 1),
            ms("2026-03-11T00:00:00+09:00")
        );
    }

    #[test]
    fn calendar_day_starts_at_one_where_midnight_is_skipped() {
        // Chile springs forward at midnight: 2026-09-06 runs from 01:00 -03.
        let santiago = tz("America/Santiago");
        let day_start = ms("2026-09-06T01:00:00-03:00");
        assert_eq!(
            calendar_days_start_ms(ms("2026-09-06T12:00:00-03:00"), &santiago, 1),
            day_start
        );
        assert_eq!(
            calendar_days_start_ms(ms("2026-09-07T12:00:00-03:00"), &santiago, 2),
            day_start
        );
        // The day before began at a plain midnight, -04.
        assert_eq!(
            calendar_days_start_ms(ms("2026-09-06T12:00:00-03:00"), &santiago, 2),
            ms("2026-09-05T00:00:00-04:00")
        );
    }

    #[test]
    fn the_same_day_lasts_until_midnight_or_a_transition() {
        let paris = tz("Europe/Paris");
        // Spring forward at 02:00 local (01:00 UTC) on 2026-03-29.
        assert_eq!(
            same_day_until_ms(ms("2026-03-29T00:30:00+01:00"), &paris),
            ms("2026-03-29T03:00:00+02:00")
        );
        assert_eq!(
            same_day_until_ms(ms("2026-03-29T12:00:00+02:00"), &paris),
            ms("2026-03-30T00:00:00+02:00")
        );
        assert_eq!(
            same_day_until_ms(ms("2026-03-29T23:59:00Z"), &TimeZone::UTC),
            ms("2026-03-30T00:00:00Z")
        );
        same_day_until_ms(i64::MAX, &paris);
        same_day_until_ms(i64::MIN, &paris);
    }

    #[test]
    fn calendar_days_start_does_not_panic_at_the_edges() {
        let ny = tz("America/New_York");
        calendar_days_start_ms(i64::MIN, &ny, u32::MAX);
        calendar_days_start_ms(i64::MAX, &ny, 1);
        calendar_days_start_ms(0, &ny, u32::MAX);
    }

    #[test]
    fn daily_schedule_in_a_gap_fires_after_the_gap() {
        let schedule = cron("30 2 * * *");
        assert_eq!(
            firings(
                &schedule,
                "2026-03-07T02:00:00-05:00",
                "America/New_York",
                3
            ),
            [
                "2026-03-07T02:30-05:00",
                "2026-03-08T03:00-04:00",
                "2026-03-09T02:30-04:00"
            ]
        );
    }

    #[test]
    fn daily_schedule_in_a_fold_fires_once() {
        let schedule = cron("30 1 * * *");
        assert_eq!(
            firings(
                &schedule,
                "2026-10-31T02:00:00-04:00",
                "America/New_York",
                3
            ),
            [
                "2026-11-01T01:30-04:00",
                "2026-11-02T01:30-05:00",
                "2026-11-03T01:30-05:00"
            ]
        );
        // From between the two 01:30s: the first already fired, the second does not.
        assert_eq!(
            firings(
                &schedule,
                "2026-11-01T01:45:00-04:00",
                "America/New_York",
                1
            ),
            ["2026-11-02T01:30-05:00"]
        );
    }

    #[test]
    fn every_quarter_hour_through_the_gap_and_the_fold() {
        let schedule = cron("*/15 * * * *");
        // 02:00-02:45 are skipped: they collapse into one firing at 03:00 EDT.
        assert_eq!(
            firings(
                &schedule,
                "2026-03-08T01:30:00-05:00",
                "America/New_York",
                4
            ),
            [
                "2026-03-08T01:45-05:00",
                "2026-03-08T03:00-04:00",
                "2026-03-08T03:15-04:00",
                "2026-03-08T03:30-04:00"
            ]
        );
        // The repeated hour fires only on its first pass.
        assert_eq!(
            firings(
                &schedule,
                "2026-11-01T01:30:00-04:00",
                "America/New_York",
                3
            ),
            [
                "2026-11-01T01:45-04:00",
                "2026-11-01T02:00-05:00",
                "2026-11-01T02:15-05:00"
            ]
        );
    }

    #[test]
    fn cron_steps_ranges_and_lists() {
        assert_eq!(
            firings(&cron("5-20/5 9 * * *"), "2026-05-04T09:07:00Z", "UTC", 4),
            [
                "2026-05-04T09:10+00:00",
                "2026-05-04T09:15+00:00",
                "2026-05-04T09:20+00:00",
                "2026-05-05T09:05+00:00"
            ]
        );
        assert_eq!(
            firings(&cron("0 9,17 * * *"), "2026-05-04T10:00:00Z", "UTC", 3),
            [
                "2026-05-04T17:00+00:00",
                "2026-05-05T09:00+00:00",
                "2026-05-05T17:00+00:00"
            ]
        );
        // "a/n" runs to the maximum: 50, then 50 the next hour.
        assert_eq!(
            firings(&cron("50/20 * * * *"), "2026-05-04T10:00:00Z", "UTC", 2),
            ["2026-05-04T10:50+00:00", "2026-05-04T11:50+00:00"]
        );
        // 2026-05-08 is a Friday: weekdays skip to Monday the 11th.
        assert_eq!(
            firings(&cron("0 9 * * 1-5"), "2026-05-08T10:00:00Z", "UTC", 2),
            ["2026-05-11T09:00+00:00", "2026-05-12T09:00+00:00"]
        );
        assert_eq!(
            firings(
                &cron("0 9 * jan,JUL mon-fri"),
                "2026-05-08T10:00:00Z",
                "UTC",
                1
            ),
            ["2026-07-01T09:00+00:00"]
        );
        // Every second month (1, 3, 5, ...) on the 31st: May, July, then skipping
        // September and November (30 days) to January.
        assert_eq!(
            firings(&cron("0 0 31 */2 *"), "2026-05-08T10:00:00Z", "UTC", 3),
            [
                "2026-05-31T00:00+00:00",
                "2026-07-31T00:00+00:00",
                "2027-01-31T00:00+00:00"
            ]
        );
    }

    #[test]
    fn cron_day_of_week_seven_is_sunday() {
        assert_eq!(
            cron("0 9 * * 7").next_after_ms(0, &TimeZone::UTC),
            cron("0 9 * * 0").next_after_ms(0, &TimeZone::UTC)
        );
        // 2026-05-10 is a Sunday.
        assert_eq!(
            firings(&cron("0 9 * * 5-7"), "2026-05-08T10:00:00Z", "UTC", 3),
            [
                "2026-05-09T09:00+00:00",
                "2026-05-10T09:00+00:00",
                "2026-05-15T09:00+00:00"
            ]
        );
        assert_eq!(
            firings(&cron("0 9 * * sun"), "2026-05-08T10:00:00Z", "UTC", 1),
            ["2026-05-10T09:00+00:00"]
        );
    }

    #[test]
    fn cron_day_of_month_or_day_of_week() {
        // Both restricted: the 13th or any Friday (2026-05-08, 15, 22 are Fridays).
        assert_eq!(
            firings(&cron("0 9 13 * 5"), "2026-05-08T10:00:00Z", "UTC", 3),
            [
                "2026-05-13T09:00+00:00",
                "2026-05-15T09:00+00:00",
                "2026-05-22T09:00+00:00"
            ]
        );
        // Only one restricted: just that one.
        assert_eq!(
            firings(&cron("0 9 13 * *"), "2026-05-08T10:00:00Z", "UTC", 2),
            ["2026-05-13T09:00+00:00", "2026-06-13T09:00+00:00"]
        );
        // A field listing every value is not a restriction: every Friday.
        assert_eq!(
            firings(&cron("0 9 1-31 * 5"), "2026-05-08T10:00:00Z", "UTC", 2),
            ["2026-05-15T09:00+00:00", "2026-05-22T09:00+00:00"]
        );
    }

    #[test]
    fn cron_that_never_fires_gives_none() {
        assert_eq!(cron("0 0 30 2 *").next_after_ms(0, &TimeZone::UTC), None);
        assert_eq!(
            cron("0 0 31 4,6,9,11 *").next_after_ms(0, &TimeZone::UTC),
            None
        );
    }

    #[test]
    fn cron_finds_february_29_across_2100() {
        assert_eq!(
            firings(&cron("0 0 29 2 *"), "2096-03-01T00:00:00Z", "UTC", 1),
            ["2104-02-29T00:00+00:00"]
        );
    }

    #[test]
    fn cron_nicknames() {
        assert_eq!(cron("@daily"), cron("@DAILY"));
        assert_eq!(
            cron("@weekly").next_after_ms(ms("2026-05-08T10:00:00Z"), &TimeZone::UTC),
            Some(ms("2026-05-10T00:00:00Z"))
        );
        assert_eq!(
            cron("@hourly").next_after_ms(ms("2026-05-08T10:00:00Z"), &TimeZone::UTC),
            Some(ms("2026-05-08T11:00:00Z"))
        );
    }

    #[test]
    fn cron_errors_say_what_is_wrong() {
        let error = |expr: &str| LocalSchedule::cron(expr).unwrap_err();
        assert!(
            error("* * * *").contains("expected 5 fields"),
            "{}",
            error("* * * *")
        );
        assert!(error("0 0 * * * *").contains("found 6"));
        assert!(error("").contains("found 0"));
        assert!(error("60 * * * *").contains("minute field \"60\": 60 is out of range 0-59"));
        assert!(error("0 24 * * *").contains("hour field"));
        assert!(error("0 0 0 * *").contains("day-of-month field \"0\": 0 is out of range 1-31"));
        assert!(error("0 0 * 13 *").contains("month field"));
        assert!(error("0 0 * * 8").contains("day-of-week field \"8\": 8 is out of range 0-7"));
        assert!(error("0 0 * * 5-2").contains("range 5-2 runs backwards"));
        assert!(error("*/0 * * * *").contains("step \"0\" is not a positive number"));
        assert!(error("*/x * * * *").contains("step \"x\""));
        assert!(error("1,,2 * * * *").contains("empty list element"));
        assert!(error("a * * * *").contains("\"a\" is not a number"));
        assert!(error("-1 * * * *").contains("is not a number"));
        assert!(error("0 0 * * funday").contains("day-of-week field"));
        assert!(error("@reboot").contains("unknown nickname"));
    }

    #[test]
    fn one_off_in_a_gap_fires_after_the_gap() {
        let ny = tz("America/New_York");
        let schedule = LocalSchedule::at("2026-03-08T02:30").unwrap();
        let fires = ms("2026-03-08T03:00:00-04:00");
        assert_eq!(
            schedule.next_after_ms(ms("2026-03-01T00:00:00Z"), &ny),
            Some(fires)
        );
        assert_eq!(schedule.next_after_ms(fires - 1, &ny), Some(fires));
        assert_eq!(schedule.next_after_ms(fires, &ny), None);
    }

    #[test]
    fn one_off_in_a_fold_fires_once() {
        let ny = tz("America/New_York");
        let schedule = LocalSchedule::at("2026-11-01T01:30").unwrap();
        let fires = ms("2026-11-01T01:30:00-04:00");
        assert_eq!(
            schedule.next_after_ms(ms("2026-11-01T00:00:00-04:00"), &ny),
            Some(fires)
        );
        assert_eq!(schedule.next_after_ms(fires, &ny), None);
        // Same local time elsewhere is a different instant.
        assert_eq!(
            schedule.next_after_ms(0, &tz("Europe/Paris")),
            Some(ms("2026-11-01T01:30:00+01:00"))
        );
    }

    #[test]
    fn one_off_parse_is_strict() {
        assert!(LocalSchedule::at("2026-03-08T02:30").is_ok());
        for bad in [
            "2026-02-30T10:00",
            "2026-03-08 02:30",
            "2026-03-08T2:30",
            "2026-03-08T02:30:00",
            "2026-03-08T24:00",
            "2026-03-08T02:30Z",
            "",
            "tomorrow",
        ] {
            assert!(LocalSchedule::at(bad).is_err(), "{bad:?}");
        }
        assert!(
            LocalSchedule::at("2026-02-30T10:00")
                .unwrap_err()
                .contains("not a valid")
        );
        assert!(
            LocalSchedule::at("noon")
                .unwrap_err()
                .contains("YYYY-MM-DDTHH:MM")
        );
    }

    #[test]
    fn schedules_print_canonical_text() {
        assert_eq!(cron("  0   9 *  *   1-5 ").to_string(), "0 9 * * 1-5");
        assert_eq!(cron("@Daily").to_string(), "@daily");
        assert_eq!(
            LocalSchedule::at("2026-03-08T02:30").unwrap().to_string(),
            "2026-03-08T02:30"
        );
    }

    const ZONES: &[&str] = &[
        "UTC",
        "America/New_York",
        "America/Santiago",
        "Europe/London",
        "Asia/Kolkata",
        // A 30-minute DST shift.
        "Australia/Lord_Howe",
        "Pacific/Chatham",
    ];

    const EXPRESSIONS: &[&str] = &[
        "* * * * *",
        "*/15 * * * *",
        "30 2 * * *",
        // Minutes in the hours where most zones skip or repeat one.
        "*/10 0-3 * * *",
        "0,30 1,2 * * *",
        "45 23 * * 6",
        "0 0 1 * *",
        "15 3 13 * 5",
        "0 12 29 2 *",
        "5-50/7 0-3 * * 0",
        "@weekly",
    ];

    /// A zone and an instant from 2000 to 2040, to the millisecond; half of the time
    /// within a day and a half of one of the zone's transitions, where days have odd
    /// lengths and local times are skipped or repeated.
    fn zone_and_instant() -> impl Strategy<Value = (TimeZone, i64)> {
        (
            proptest::sample::select(ZONES),
            946_684_800_000i64..2_208_988_800_000,
            any::<bool>(),
            -129_600_000i64..129_600_000,
        )
            .prop_map(|(zone, at, near_transition, delta)| {
                let zone = tz(zone);
                let transition = zone
                    .following(Timestamp::from_millisecond(at).unwrap())
                    .next()
                    .map(|t| t.timestamp().as_millisecond());
                match transition {
                    Some(transition) if near_transition => (zone, transition + delta),
                    _ => (zone, at),
                }
            })
    }

    /// Window ends on the quarter hour, so some fall in 30- and 60-minute gaps.
    fn window_times() -> impl Strategy<Value = (u32, u32)> {
        (0u32..24 * 4, 0u32..24 * 4).prop_map(|(a, b)| (a * 15, b * 15))
    }

    proptest! {
        #[test]
        fn next_after_is_strictly_increasing(
            expr in proptest::sample::select(EXPRESSIONS),
            (zone, after) in zone_and_instant(),
        ) {
            let schedule = cron(expr);
            let LocalSchedule::Cron(parsed) = &schedule else { unreachable!() };
            let mut at = after;
            let mut previous_local = None;
            for _ in 0..4 {
                let next = schedule.next_after_ms(at, &zone).unwrap();
                prop_assert!(next > at);
                let local = zone.to_datetime(Timestamp::from_millisecond(next).unwrap());
                // Either a matching wall time, or the first instant after a gap that
                // skipped one.
                let after_gap = zone
                    .preceding(Timestamp::from_millisecond(next + 1).unwrap())
                    .next()
                    .is_some_and(|t| t.timestamp().as_millisecond() == next);
                prop_assert!(parsed.matches(local) || after_gap, "{local} for {expr}");
                // Wall times only move forward: a repeated one does not fire again.
                prop_assert!(previous_local < Some(local), "{local} after {previous_local:?}");
                previous_local = Some(local);
                at = next;
            }
        }

        #[test]
        fn release_is_later_and_outside_the_window(
            (start, end) in window_times(),
            (zone, now) in zone_and_instant(),
        ) {
            let text = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
            let quiet = LocalWindow::parse(&text(start), &text(end)).unwrap();
            let inside = quiet.contains(zone.to_datetime(Timestamp::from_millisecond(now).unwrap()).time());
            match quiet.release_ms(now, &zone) {
                Some(release) => {
                    prop_assert!(inside);
                    prop_assert!(release > now);
                    prop_assert!(release - now <= 3 * 86_400_000, "{release} - {now}");
                    prop_assert_eq!(quiet.release_ms(release, &zone), None);
                }
                None => prop_assert!(!inside),
            }
        }

        #[test]
        fn cron_parse_never_panics(expr in "[0-9*/,@a-zA-Z -]{0,30}") {
            let _ = LocalSchedule::cron(&expr);
        }

        #[test]
        fn one_off_parse_never_panics(text in "[0-9T:-]{0,20}") {
            let _ = LocalSchedule::at(&text);
        }

        #[test]
        fn cron_text_round_trips(
            fields in proptest::collection::vec(
                proptest::sample::select(&["*", "*/5", "1-4", "2,3", "1-10/3", "5", "3/2"][..]),
                5,
            ),
        ) {
            let expr = fields.join("  ");
            if let Ok(schedule) = LocalSchedule::cron(&expr) {
                prop_assert_eq!(LocalSchedule::cron(&schedule.to_string()), Ok(schedule));
            }
        }

        #[test]
        fn instants_out_of_range_do_not_panic(at in any::<i64>()) {
            let zone = tz("America/New_York");
            let _ = cron("*/15 * * * *").next_after_ms(at, &zone);
            let _ = window("22:00", "08:00").release_ms(at, &zone);
            let _ = calendar_days_start_ms(at, &zone, 7);
        }
    }
}
