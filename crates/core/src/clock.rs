//! The clock: the only place in Herald that reads the wall clock.
//!
//! Every service, store, relay, auth check and timer asks a [`Clock`] it was given. In
//! production that is [`Clock::system`]; tests use [`Clock::manual`] and move it with
//! [`Clock::advance`], and whatever waits on the clock ([`Clock::sleep_until`],
//! [`Clock::changes`]) wakes exactly when the manual time passes its instant, without a
//! real sleep.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

/// A source of the current time; cheap to clone (clones of a manual clock share its time).
#[derive(Clone)]
pub struct Clock {
    manual: Option<Arc<watch::Sender<Timestamp>>>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.manual {
            None => f.write_str("Clock::system"),
            Some(time) => write!(f, "Clock::manual({})", *time.borrow()),
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

/// The longest real sleep taken at once by [`Clock::sleep_until`] on the system clock, so
/// that a wall clock stepped forward (NTP) is noticed within it.
const MAX_REAL_SLEEP: Duration = Duration::from_secs(60);

impl Clock {
    /// The operating system's wall clock.
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that stands at `start` until [`Clock::advance`] moves it.
    pub fn manual(start: Timestamp) -> Clock {
        Clock {
            manual: Some(Arc::new(watch::Sender::new(start))),
        }
    }

    /// Whether this is a manual clock.
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// The current time.
    #[allow(clippy::disallowed_methods)] // the one read of the wall clock
    pub fn now(&self) -> Timestamp {
        match &self.manual {
            None => Timestamp::now(),
            Some(time) => *time.borrow(),
        }
    }

    /// The current time in milliseconds since the Unix epoch, as Herald stores instants.
    pub fn now_ms(&self) -> i64 {
        self.now().as_millisecond()
    }

    /// Moves a manual clock forward by `by`, waking everything waiting for a time it
    /// passes.
    ///
    /// # Panics
    /// On the system clock, which only the world moves.
    pub fn advance(&self, by: Duration) {
        let Some(time) = &self.manual else {
            panic!("only a manual clock can be advanced");
        };
        time.send_modify(|t| *t = crate::time::add(*t, by));
    }

    /// Moves a manual clock to `to` if that is later than its time (it never goes back).
    ///
    /// # Panics
    /// On the system clock.
    pub fn advance_to(&self, to: Timestamp) {
        let Some(time) = &self.manual else {
            panic!("only a manual clock can be advanced");
        };
        time.send_if_modified(|t| {
            let later = to > *t;
            if later {
                *t = to;
            }
            later
        });
    }

    /// Resolves once the clock reads `at` or later.
    pub async fn sleep_until(&self, at: Timestamp) {
        match &self.manual {
            Some(time) => {
                let mut changes = time.subscribe();
                // The sender lives as long as `self`, so this only ends when `at` is reached.
                let _ = changes.wait_for(|now| *now >= at).await;
            }
            None => loop {
                let left = self.now().duration_until(at);
                if left <= SignedDuration::ZERO {
                    return;
                }
                let left = left.unsigned_abs().min(MAX_REAL_SLEEP);
                tokio::time::sleep(left).await;
            },
        }
    }

    /// Resolves once `by` has passed on this clock.
    pub async fn sleep(&self, by: Duration) {
        self.sleep_until(crate::time::add(self.now(), by)).await;
    }

    /// A subscription to the jumps of a manual clock: for loops that sleep on tokio timers
    /// but must recheck at once when a test moves the time. Never fires on the system
    /// clock.
    pub fn changes(&self) -> Changes {
        Changes {
            receiver: self.manual.as_ref().map(|time| time.subscribe()),
        }
    }
}

/// See [`Clock::changes`].
pub struct Changes {
    receiver: Option<watch::Receiver<Timestamp>>,
}

impl Changes {
    /// Resolves when the manual clock moved since the last call; never on the system clock.
    pub async fn changed(&mut self) {
        match &mut self.receiver {
            Some(receiver) => {
                if receiver.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_manual_clock_stands_still_until_advanced() {
        let clock = Clock::manual(at("2026-01-01T00:00:00Z"));
        assert_eq!(clock.now(), at("2026-01-01T00:00:00Z"));
        clock.clone().advance(Duration::from_secs(90));
        assert_eq!(clock.now(), at("2026-01-01T00:01:30Z"));
        clock.advance_to(at("2025-01-01T00:00:00Z"));
        assert_eq!(clock.now(), at("2026-01-01T00:01:30Z"), "never goes back");
        assert_eq!(clock.now_ms(), 1_767_225_690_000);
    }

    #[tokio::test]
    async fn sleepers_wake_exactly_when_the_manual_time_passes() {
        let clock = Clock::manual(at("2026-01-01T00:00:00Z"));
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(at("2026-01-01T00:00:10Z")).await }
        });
        clock.advance(Duration::from_millis(9_999));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_millis(1));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woke when the time came")
            .unwrap();
    }

    #[tokio::test]
    async fn changes_fire_on_manual_jumps_only() {
        let clock = Clock::manual(at("2026-01-01T00:00:00Z"));
        let mut changes = clock.changes();
        clock.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), changes.changed())
            .await
            .expect("a jump is seen");
        let mut system = Clock::system().changes();
        let quiet = tokio::time::timeout(Duration::from_millis(10), system.changed()).await;
        assert!(quiet.is_err());
    }

    #[test]
    #[should_panic(expected = "only a manual clock")]
    fn the_system_clock_cannot_be_advanced() {
        Clock::system().advance(Duration::from_secs(1));
    }
}
