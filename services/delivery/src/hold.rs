//! The user's own quiet hours (`Preferences.quiet_hours`) on push. A PUSH delivery
//! processed while the user's window is open is stored (PENDING, outcome ACCEPTED) with a
//! durable timer due when the window ends, instead of an outbox item for the provider
//! ([`store::deliver`]). The timer, keyed by the message id, stages the push then, in its
//! own transaction ([`store::release_held`]): at most once (the timer row is taken in that
//! transaction), nothing for a message no longer PENDING or gone (its user forgotten),
//! and, checked against the user's preferences as they are at that instant
//! ([`at_release`]), nothing for one expired or opted out of meanwhile, and held again
//! if the current quiet hours cover it (a push never arrives inside the current window).
//! The window arithmetic, DST included, is `herald_campaigns::zone`'s, as for the
//! campaign's quiet hours in trigger.

use herald_campaigns::zone::{self, LocalWindow};
use herald_outbox::Outbox;
use herald_proto::common::v1::Channel;
use herald_proto::delivery::v1::{DeliveryOutcome, Preferences, QuietHoursOverride};
use herald_runtime::Clock;
use herald_timers::{Timer, TimerHandler, Timers};
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::push::Providers;
use crate::store;

/// If a push processed at `now_ms` falls inside the user's `quiet` hours, the instant
/// they end (a window end skipped by a DST gap ends it at the first instant after the
/// gap); `None` when it may go at once: no quiet hours, an empty window (start equal to
/// end), or `now_ms` outside it. Times that do not parse count as no quiet hours
/// (UpdatePreferences refuses them).
pub fn release_ms(quiet: Option<&QuietHoursOverride>, now_ms: i64) -> Option<i64> {
    let quiet = quiet?;
    let window = LocalWindow::parse(&quiet.start_local_time, &quiet.end_local_time)?;
    window.release_ms(now_ms, &zone::resolve(&[&quiet.time_zone]))
}

/// What becomes of a held push when its timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtRelease {
    /// Stage it for the provider.
    Send,
    /// Hold it again, until this instant: the user's current quiet hours cover now.
    Hold(i64),
    /// Drop it (it stays PENDING), for this reason.
    Skip(&'static str),
}

/// What becomes of a held push of `category` expiring at `expire_ms`, released at
/// `now_ms` for a user whose preferences are now `preferences`: dropped if it expired
/// or the user opted out of push or of its category while it was held, held again if
/// their quiet hours now cover `now_ms`, else sent.
pub fn at_release(
    preferences: Option<&Preferences>,
    category: &str,
    expire_ms: Option<i64>,
    now_ms: i64,
) -> AtRelease {
    if expire_ms.is_some_and(|at| at <= now_ms) {
        return AtRelease::Skip("expired");
    }
    let Some(preferences) = preferences else {
        return AtRelease::Send;
    };
    match store::opted_out(preferences, Channel::Push as i32, category) {
        Some(DeliveryOutcome::ChannelOptedOut) => return AtRelease::Skip("push opted out"),
        Some(_) => return AtRelease::Skip("category opted out"),
        None => {}
    }
    match release_ms(preferences.quiet_hours.as_ref(), now_ms) {
        Some(release) => AtRelease::Hold(release),
        None => AtRelease::Send,
    }
}

/// What a hold's timer carries besides its key (the message id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    pub workspace_id: String,
    /// The W3C trace context of the Deliver call that held the push, so its dispatch
    /// joins that trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl Held {
    pub fn encode(&self) -> Vec<u8> {
        // A struct of strings always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(payload: &[u8]) -> Result<Held, String> {
        serde_json::from_slice(payload).map_err(|e| format!("undecodable hold: {e}"))
    }
}

/// How long a held push that fell due without a push provider waits before it is looked
/// at again.
const STRANDED_RECHECK_MS: i64 = 10 * 60 * 1000;

/// Fires the holds' timers: stages each held push for the provider.
pub struct Release {
    pub db: DatabaseConnection,
    pub outbox: Outbox,
    pub timers: Timers,
    pub clock: Clock,
    pub providers: Providers,
}

#[async_trait::async_trait]
impl TimerHandler for Release {
    async fn fire(&self, timer: &Timer) -> Result<(), String> {
        let held =
            Held::decode(&timer.payload).map_err(|e| format!("timer {:?}: {e}", timer.key))?;
        if !self.providers.push {
            // The provider was removed after the push was held. Like a push waiting in the
            // outbox, it waits for one to be configured again: looked at again later
            // (not failed, which would park it after the timer's attempts).
            tracing::warn!(message_id = %timer.key, "held push is due but no push_provider_url is configured; it waits for one");
            let later = self.clock.now_ms().saturating_add(STRANDED_RECHECK_MS);
            return self
                .timers
                .schedule(&self.db, &timer.key, later, timer.payload.clone())
                .await
                .map_err(|e| e.to_string());
        }
        let span = tracing::info_span!("release held push", message_id = %timer.key);
        store::release_held(
            &self.db,
            &self.outbox,
            &self.timers,
            &self.clock,
            &timer.key,
            &held,
        )
        .instrument(span)
        .await
        .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    fn quiet(start: &str, end: &str, zone: &str) -> QuietHoursOverride {
        QuietHoursOverride {
            start_local_time: start.into(),
            end_local_time: end.into(),
            time_zone: zone.into(),
        }
    }

    #[test]
    fn inside_the_window_holds_until_its_local_end() {
        let night = quiet("22:00", "08:00", "Europe/Paris");
        // 23:00 in Paris (UTC+1 in March before the switch) until 08:00 the next day.
        assert_eq!(
            release_ms(Some(&night), ms("2026-03-08T22:00:00Z")),
            Some(ms("2026-03-09T07:00:00Z"))
        );
        // After midnight, the same morning's end.
        assert_eq!(
            release_ms(Some(&night), ms("2026-03-09T06:59:00Z")),
            Some(ms("2026-03-09T07:00:00Z"))
        );
    }

    #[test]
    fn outside_the_window_or_without_one_goes_at_once() {
        let night = quiet("22:00", "08:00", "Europe/Paris");
        // 08:00 is the end, outside the half-open window; 21:59 is before it.
        assert_eq!(release_ms(Some(&night), ms("2026-03-09T07:00:00Z")), None);
        assert_eq!(release_ms(Some(&night), ms("2026-03-08T20:59:00Z")), None);
        assert_eq!(release_ms(None, ms("2026-03-08T22:00:00Z")), None);
        // Equal times are an empty window.
        let none = quiet("22:00", "22:00", "Europe/Paris");
        assert_eq!(release_ms(Some(&none), ms("2026-03-08T21:00:00Z")), None);
        // Unparsable times are no quiet hours.
        let bad = quiet("10pm", "08:00", "Europe/Paris");
        assert_eq!(release_ms(Some(&bad), ms("2026-03-08T22:00:00Z")), None);
    }

    #[test]
    fn the_zone_decides_the_window() {
        let night = quiet("22:00", "08:00", "America/New_York");
        // 23:00 UTC is 18:00 in New York (UTC-5): not quiet there.
        assert_eq!(release_ms(Some(&night), ms("2026-03-02T23:00:00Z")), None);
        // 04:00 UTC is 23:00 in New York: held until 08:00 EST.
        assert_eq!(
            release_ms(Some(&night), ms("2026-03-03T04:00:00Z")),
            Some(ms("2026-03-03T13:00:00Z"))
        );
    }

    #[test]
    fn an_end_in_a_dst_gap_releases_after_the_gap() {
        // 2026-03-29: Paris skips 02:00-03:00; a window ending at 02:30 ends at 03:00 CEST.
        let early = quiet("01:00", "02:30", "Europe/Paris");
        assert_eq!(
            release_ms(Some(&early), ms("2026-03-29T00:15:00Z")),
            Some(ms("2026-03-29T01:00:00Z"))
        );
    }

    #[test]
    fn a_release_follows_the_preferences_of_its_instant() {
        use herald_proto::delivery::v1::ChannelPreference;
        let eight = ms("2026-03-09T07:00:00Z");
        let mut now = Preferences::default();
        assert_eq!(at_release(None, "", None, eight), AtRelease::Send);
        assert_eq!(at_release(Some(&now), "news", None, eight), AtRelease::Send);
        // Expired while held.
        assert_eq!(
            at_release(None, "", Some(eight), eight),
            AtRelease::Skip("expired")
        );
        assert_eq!(
            at_release(None, "", Some(eight + 1), eight),
            AtRelease::Send
        );
        // Quiet hours moved to cover the release: held until their new end.
        now.quiet_hours = Some(quiet("22:00", "09:00", "Europe/Paris"));
        assert_eq!(
            at_release(Some(&now), "", None, eight),
            AtRelease::Hold(ms("2026-03-09T08:00:00Z"))
        );
        // Opted out of the category, or of push (another channel's opt-out is not).
        now.opted_out_categories = vec!["news".into()];
        assert_eq!(
            at_release(Some(&now), "news", None, eight),
            AtRelease::Skip("category opted out")
        );
        now.channels = vec![ChannelPreference {
            channel: Channel::Email as i32,
            enabled: false,
        }];
        assert_eq!(
            at_release(Some(&now), "", None, eight),
            AtRelease::Hold(ms("2026-03-09T08:00:00Z"))
        );
        now.channels.push(ChannelPreference {
            channel: Channel::Push as i32,
            enabled: false,
        });
        assert_eq!(
            at_release(Some(&now), "", None, eight),
            AtRelease::Skip("push opted out")
        );
    }

    #[test]
    fn the_payload_round_trips() {
        let held = Held {
            workspace_id: "acme".into(),
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        };
        assert_eq!(Held::decode(&held.encode()), Ok(held));
        assert!(Held::decode(b"not json").is_err());
    }
}
