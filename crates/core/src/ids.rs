//! Identifiers Herald assigns: a prefix naming the kind (`cmp_`, `msg_`) and a UUIDv7,
//! whose leading bits are the creation time read from the [`Clock`], so ids sort by
//! creation and a manual clock gives ids of its own time. Ids made by one process in
//! the same millisecond sort in the order they were made (a shared counter), so "newest
//! first" holds even when the clock stands still.

use std::sync::Mutex;

use crate::Clock;

/// The last millisecond an id was made for, and how many were made in it: ids of one
/// millisecond carry this sequence in their first random bits, so they sort in order.
static SEQUENCE: Mutex<(u64, u16)> = Mutex::new((0, 0));

/// A new id `"{prefix}_{uuid v7 in hex}"`, e.g. `cmp_0193a1b2c3d47e8f9a0b1c2d3e4f5a6b`.
pub fn new_id(prefix: &str, clock: &Clock) -> String {
    let millis = u64::try_from(clock.now().as_millisecond()).unwrap_or(0);
    let sequence = {
        let mut last = SEQUENCE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        last.1 = if last.0 == millis {
            // 12 bits (UUIDv7's rand_a); past 4096 ids in one millisecond the order
            // among them is left to the random bits.
            last.1.saturating_add(1).min(0x0fff)
        } else {
            0
        };
        last.0 = millis;
        last.1
    };
    let mut random = *uuid::Uuid::new_v4().as_bytes();
    random[0] = (sequence >> 8) as u8;
    random[1] = sequence as u8;
    let mut bytes = [0u8; 10];
    bytes.copy_from_slice(&random[..10]);
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid();
    format!("{prefix}_{}", id.simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_sort_by_time() {
        let clock = Clock::manual("2026-01-01T00:00:00Z".parse().unwrap());
        let first = new_id("msg", &clock);
        clock.advance(std::time::Duration::from_millis(2));
        let second = new_id("msg", &clock);
        assert!(first.starts_with("msg_") && first.len() == 4 + 32);
        assert!(first < second);
        assert_ne!(new_id("msg", &clock), new_id("msg", &clock));
        // With the clock standing still, later ids still sort after earlier ones.
        let ids: Vec<String> = (0..100).map(|_| new_id("dec", &clock)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    }
}
