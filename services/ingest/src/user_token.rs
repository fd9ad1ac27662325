//! What an end user may do with their own token (a browser or an app calling `Track`, and
//! `Identify` where the workspace allows it): record only for the token's user, records of
//! at most `user_token_max_event_bytes`, and at most `user_token_events_per_minute` calls
//! per user with bursts of `user_token_event_burst`.
//!
//! The rate is counted per (workspace, token user) in this process's memory: each replica
//! counts on its own, so behind a load balancer spreading one user's calls over N replicas
//! that user may get up to N times the rate, and a restart forgets the counts. Time comes
//! from Herald's [`Clock`], so a test's manual clock refills the buckets.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use herald_runtime::{Clock, Config, Error};

/// How often, on the clock, the limiter forgets users whose bucket is full again.
const CLEANUP_EVERY: Duration = Duration::from_secs(60);

/// A rate-limited end user: their workspace and user id.
type UserKey = (String, String);

type Limiter =
    RateLimiter<UserKey, HashMapStateStore<UserKey>, GovernorClock, NoOpMiddleware<Nanos>>;

/// The limits of calls made with end-user tokens.
pub struct UserCalls {
    max_record_bytes: usize,
    per_minute: u32,
    burst: u32,
    /// Workspaces whose tokens may call Identify.
    identify: HashSet<String>,
    limiter: Limiter,
    clock: Clock,
    /// When (milliseconds on the clock) the limiter is next pruned.
    next_cleanup_ms: AtomicI64,
}

impl UserCalls {
    /// The limits `config` sets, counted on `clock`.
    pub fn new(config: &Config, clock: Clock) -> anyhow::Result<UserCalls> {
        let nonzero = |value: u32, key: &str| {
            NonZeroU32::new(value)
                .ok_or_else(|| anyhow::anyhow!("invalid {key}: must be greater than 0"))
        };
        let per_minute = nonzero(
            config.user_token_events_per_minute,
            "user_token_events_per_minute",
        )?;
        let burst = nonzero(config.user_token_event_burst, "user_token_event_burst")?;
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        let limiter = RateLimiter::new(
            quota,
            HashMapStateStore::default(),
            GovernorClock(clock.clone()),
        );
        Ok(UserCalls {
            max_record_bytes: config.user_token_max_event_bytes,
            per_minute: per_minute.get(),
            burst: burst.get(),
            identify: config
                .workspaces
                .iter()
                .filter(|w| w.allow_user_identify)
                .map(|w| w.id.clone())
                .collect(),
            limiter,
            next_cleanup_ms: AtomicI64::new(cleanup_after(clock.now_ms())),
            clock,
        })
    }

    /// Refuses Identify with a token of `workspace` unless the workspace allows it.
    pub fn may_identify(&self, workspace: &str) -> Result<(), Error> {
        if self.identify.contains(workspace) {
            return Ok(());
        }
        Err(Error::PermissionDenied(format!(
            "workspace {workspace:?} does not let end-user tokens call Identify \
             (workspaces[].allow_user_identify is false); send it with a server API key"
        )))
    }

    /// Counts one call of `user` in `workspace`, or refuses it with RESOURCE_EXHAUSTED
    /// when the user's bucket is empty. Every Track and Identify call made with a user
    /// token counts, whatever its answer.
    pub fn admit(&self, workspace: &str, user: &str) -> Result<(), Error> {
        self.prune_now_and_then();
        let key = (workspace.to_owned(), user.to_owned());
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            Error::ResourceExhausted(format!(
                "user {user:?} is past the limit of {} calls per minute (bursts of {}) made \
                 with a user token (user_token_events_per_minute, user_token_event_burst); \
                 retry in {} ms",
                self.per_minute,
                self.burst,
                wait.as_millis().max(1)
            ))
        })
    }

    /// Checks a record (`field`: `event` or `identity`, `encoded_len` bytes as sent, for
    /// `user_id`) sent with the token of `token_user`: at most the configured size, and
    /// for the token's own user. An empty `user_id` becomes the token's user.
    pub fn own(
        &self,
        field: &str,
        encoded_len: usize,
        user_id: &mut String,
        token_user: &str,
    ) -> Result<(), Error> {
        if encoded_len > self.max_record_bytes {
            return Err(Error::invalid(
                field,
                format!(
                    "must be at most {} bytes encoded when sent with a user token \
                     (user_token_max_event_bytes), got {encoded_len}",
                    self.max_record_bytes
                ),
            ));
        }
        if user_id.is_empty() {
            token_user.clone_into(user_id);
        } else if user_id != token_user {
            return Err(Error::PermissionDenied(format!(
                "this user token is for user {token_user:?}; it cannot record for user \
                 {user_id:?} ({field}.user_id)"
            )));
        }
        Ok(())
    }

    /// Forgets, once per [`CLEANUP_EVERY`] on the clock, the users whose bucket is full
    /// again (they are no different from a user never seen), so memory follows the users
    /// active in the last minute or so, not every user ever seen.
    fn prune_now_and_then(&self) {
        let now = self.clock.now_ms();
        let due = self.next_cleanup_ms.load(Ordering::Relaxed);
        if now >= due
            && self
                .next_cleanup_ms
                .compare_exchange(
                    due,
                    cleanup_after(now),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
    }

    /// Users the limiter currently remembers.
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.limiter.len()
    }
}

fn cleanup_after(now_ms: i64) -> i64 {
    now_ms.saturating_add(CLEANUP_EVERY.as_millis() as i64)
}

/// Herald's clock as governor's time source, in nanoseconds since the Unix epoch (until
/// the year 2554). A wall clock stepped back leaves the buckets as they are until it has
/// caught up again.
#[derive(Debug, Clone)]
struct GovernorClock(Clock);

impl governor::clock::Clock for GovernorClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        let nanos = self.0.now().as_nanosecond();
        Nanos::from(u64::try_from(nanos.max(0)).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use herald_runtime::ServiceKind;

    use super::*;

    fn calls(per_minute: u32, burst: u32) -> (UserCalls, Clock) {
        let clock = Clock::manual("2026-06-01T12:00:00Z".parse().unwrap());
        let mut config = Config::defaults(ServiceKind::Ingest);
        config.user_token_events_per_minute = per_minute;
        config.user_token_event_burst = burst;
        (UserCalls::new(&config, clock.clone()).unwrap(), clock)
    }

    #[test]
    fn a_burst_then_the_rate_per_user_on_the_clock() {
        let (calls, clock) = calls(60, 3);
        for _ in 0..3 {
            calls.admit("acme", "u1").unwrap();
        }
        let refused = calls.admit("acme", "u1").unwrap_err();
        assert!(
            matches!(&refused, Error::ResourceExhausted(m) if m.contains("60 calls per minute") && m.contains("retry in 1000 ms")),
            "{refused:?}"
        );
        // Other users, and the same user id in another workspace, have buckets of their own.
        calls.admit("acme", "u2").unwrap();
        calls.admit("globex", "u1").unwrap();
        // One call per second refills.
        clock.advance(Duration::from_millis(999));
        assert!(calls.admit("acme", "u1").is_err());
        clock.advance(Duration::from_millis(1));
        calls.admit("acme", "u1").unwrap();
        assert!(calls.admit("acme", "u1").is_err());
    }

    #[test]
    fn the_limiter_forgets_users_whose_bucket_is_full_again() {
        let (calls, clock) = calls(60, 3);
        for user in 0..100 {
            calls.admit("acme", &format!("u{user}")).unwrap();
        }
        assert_eq!(calls.remembered(), 100);
        // Their buckets are full again after a second; the prune waits for its minute.
        clock.advance(Duration::from_secs(30));
        calls.admit("acme", "late").unwrap();
        assert_eq!(calls.remembered(), 101);
        clock.advance(Duration::from_secs(30));
        calls.admit("acme", "last").unwrap();
        assert_eq!(calls.remembered(), 1, "only the user of this very call");
        // A forgotten user starts again with a full burst.
        for _ in 0..3 {
            calls.admit("acme", "u0").unwrap();
        }
        assert!(calls.admit("acme", "u0").is_err());
    }

    #[test]
    fn records_are_held_to_the_token_user_and_the_size() {
        let (calls, _) = calls(60, 3);
        let mut user_id = String::new();
        calls.own("event", 100, &mut user_id, "alice").unwrap();
        assert_eq!(user_id, "alice");
        calls.own("event", 100, &mut user_id, "alice").unwrap();
        let mut bob = "bob".to_owned();
        let refused = calls.own("identity", 100, &mut bob, "alice").unwrap_err();
        assert!(
            matches!(&refused, Error::PermissionDenied(m) if m.contains("\"alice\"") && m.contains("\"bob\"")),
            "{refused:?}"
        );
        assert_eq!(bob, "bob");
        let too_big = calls
            .own("event", 8193, &mut String::new(), "alice")
            .unwrap_err();
        let Error::InvalidArgument(violations) = too_big else {
            panic!("{too_big:?}")
        };
        assert_eq!(violations[0].field, "event");
        assert!(violations[0].description.contains("8192"), "{violations:?}");
        calls
            .own("event", 8192, &mut String::new(), "alice")
            .unwrap();
    }
}
