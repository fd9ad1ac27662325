//! Identifiers Herald assigns: a prefix naming the kind (`cmp_`, `msg_`) and a UUIDv7,
//! whose leading bits are the creation time read from the [`Clock`], so ids sort by
//! creation and a manual clock gives ids of its own time.

use crate::Clock;

/// A new id `"{prefix}_{uuid v7 in hex}"`, e.g. `cmp_0193a1b2c3d47e8f9a0b1c2d3e4f5a6b`.
pub fn new_id(prefix: &str, clock: &Clock) -> String {
    let now = clock.now();
    let seconds = u64::try_from(now.as_second()).unwrap_or(0);
    let nanos = u32::try_from(now.subsec_nanosecond()).unwrap_or(0);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, seconds, nanos);
    format!("{prefix}_{}", uuid::Uuid::new_v7(ts).simple())
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
    }
}
