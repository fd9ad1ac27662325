//! Trigger's durable timers as data: their keys and what they carry. A delay, an
//! inactivity window and a quiet-hours release each wait on a timer; when it comes due
//! the service decides again, with every gate re-checked at that instant. The
//! enrolment of a segment's existing members is a timer too, one page at a time.

use herald_proto::common::v1::{Channel, Event};
use prost::Message;

/// What a timer waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum TimerKind {
    Unspecified = 0,
    /// A delay after an event (`DelayAfterEvent`).
    Delay = 1,
    /// An inactivity window (`Inactivity`).
    Inactivity = 2,
    /// The end of quiet hours, for channels held back.
    Release = 3,
    /// The next page of a segment's existing members to enrol.
    Enroll = 4,
    /// A user's next occurrence of a local schedule.
    Schedule = 5,
}

/// What a timer carries: enough to decide again when it comes due.
#[derive(Clone, PartialEq, Message)]
pub struct TimerPayload {
    #[prost(enumeration = "TimerKind", tag = "1")]
    pub kind: i32,
    #[prost(string, tag = "2")]
    pub workspace_id: String,
    #[prost(string, tag = "3")]
    pub campaign_id: String,
    #[prost(string, tag = "4")]
    pub user_id: String,
    /// The id of what started the timer (an event's message_id, a transition id, or a
    /// timer's own cause for a release).
    #[prost(string, tag = "5")]
    pub cause_id: String,
    /// The event that started it, for templates (`event.*`); unset without one.
    #[prost(message, optional, tag = "6")]
    pub event: Option<Event>,
    // Tags 7 and 8 held a snapshot of the user's traits and segments; a timer that
    // comes due asks segmentation for the current ones instead.
    #[prost(string, tag = "9")]
    pub time_zone: String,
    #[prost(string, tag = "10")]
    pub locale: String,
    /// For a release: the channels held back (`Channel` numbers).
    #[prost(int32, repeated, tag = "11")]
    pub channels: Vec<i32>,
    /// For a release: whether the decision already counted as an entry (something was
    /// sent at once), so the release does not check or count the entry again.
    #[prost(bool, tag = "12")]
    pub entered: bool,
    /// When the timer was started, in milliseconds.
    #[prost(int64, tag = "13")]
    pub started_ms: i64,
    /// For a release: the variant assigned when it was held back.
    #[prost(string, tag = "14")]
    pub variant_id: String,
    /// For an enrolment: where the next page of members starts (empty: the first).
    #[prost(string, tag = "15")]
    pub page_token: String,
    /// For an enrolment: which of the campaign's segments is being enrolled.
    #[prost(uint32, tag = "16")]
    pub segment_index: u32,
}

impl TimerPayload {
    /// The channels of a release.
    pub fn release_channels(&self) -> Vec<Channel> {
        self.channels
            .iter()
            .filter_map(|c| Channel::try_from(*c).ok())
            .collect()
    }
}

/// A timer's payload as stored: `payload`, with the cause's `event` (when the payload
/// has none) in its `event` field, without the event's context (the payload keeps the
/// time zone and locale the timer needs). Deciding copies no event for its timers
/// ([`crate::decision::TimerOp::Schedule`]): the caller passes its own here.
pub fn encode(payload: &TimerPayload, event: Option<&Event>) -> Vec<u8> {
    let mut bytes = payload.encode_to_vec();
    if payload.event.is_none()
        && let Some(event) = event
    {
        encode_event(6, event, &mut bytes);
    }
    bytes
}

/// `event` without its context as field `tag`: what encoding a copy of it with no
/// context would write, field by field, without the copy.
fn encode_event(tag: u32, event: &Event, buf: &mut Vec<u8>) {
    use prost::encoding::{WireType, encode_key, encode_varint, message, string};
    let strings = [
        (1, &event.message_id),
        (2, &event.user_id),
        (3, &event.name),
    ];
    let mut len = 0;
    for (tag, value) in strings {
        if !value.is_empty() {
            len += string::encoded_len(tag, value);
        }
    }
    if let Some(properties) = &event.properties {
        len += message::encoded_len(4, properties);
    }
    if let Some(timestamp) = &event.timestamp {
        len += message::encoded_len(5, timestamp);
    }
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
    for (tag, value) in strings {
        if !value.is_empty() {
            string::encode(tag, value, buf);
        }
    }
    if let Some(properties) = &event.properties {
        message::encode(4, properties, buf);
    }
    if let Some(timestamp) = &event.timestamp {
        message::encode(5, timestamp, buf);
    }
}

/// The longest timer key the timers table holds.
const MAX_KEY: usize = 512;

fn bounded(key: String, prefix_len: usize) -> String {
    if key.len() <= MAX_KEY {
        return key;
    }
    // Keep the (bounded) prefix that cancellation looks up by, hash the rest.
    let digest = crate::decision::digest(&key);
    let mut cut = prefix_len.min(MAX_KEY - 33);
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}#{digest}", &key[..cut])
}

/// `workspace/campaign/user/` followed by `rest`, bounded: one allocation of the exact
/// length (keys are built per timer a decision starts, so no formatting machinery).
fn user_key(workspace: &str, user: &str, campaign: &str, rest: &[&str]) -> String {
    let base_len = workspace.len() + campaign.len() + user.len() + 2;
    let mut key = String::with_capacity(base_len + rest.iter().map(|p| p.len()).sum::<usize>());
    // The separators written as characters: copying them is a store, not a call.
    key.push_str(workspace);
    key.push('/');
    key.push_str(campaign);
    key.push('/');
    key.push_str(user);
    rest.iter().for_each(|part| key.push_str(part));
    bounded(key, base_len)
}

/// The key of the delay timer started by event `message_id`: one per occurrence.
pub fn delay_key(workspace: &str, user: &str, campaign: &str, message_id: &str) -> String {
    user_key(workspace, user, campaign, &["/delay/", message_id])
}

/// The key of the user's inactivity timer for a campaign: one at a time, restarted by
/// scheduling it again.
pub fn inactivity_key(workspace: &str, user: &str, campaign: &str) -> String {
    user_key(workspace, user, campaign, &["/inactivity"])
}

/// The key of the enrolment of a campaign's existing segment members.
pub fn enroll_key(workspace: &str, campaign: &str) -> String {
    bounded([workspace, "/", campaign, "/enroll"].concat(), MAX_KEY)
}

/// The key of the user's next occurrence of a campaign's local schedule: one at a time.
pub fn schedule_key(workspace: &str, user: &str, campaign: &str) -> String {
    user_key(workspace, user, campaign, &["/schedule"])
}

/// The key of a quiet-hours release of the decision caused by `cause_id`.
pub fn release_key(workspace: &str, user: &str, campaign: &str, cause_id: &str) -> String {
    user_key(workspace, user, campaign, &["/release/", cause_id])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_per_occurrence_and_bounded() {
        assert_ne!(
            delay_key("ws", "u", "c", "m1"),
            delay_key("ws", "u", "c", "m2")
        );
        assert_eq!(inactivity_key("ws", "u", "c"), "ws/c/u/inactivity");
        assert_eq!(delay_key("ws", "u", "c", "m1"), "ws/c/u/delay/m1");
        assert_eq!(schedule_key("ws", "u", "c"), "ws/c/u/schedule");
        assert_eq!(release_key("ws", "u", "c", "e1"), "ws/c/u/release/e1");
        assert_eq!(enroll_key("ws", "c"), "ws/c/enroll");
        let long = "x".repeat(600);
        let key = delay_key("ws", &long, "c", "m1");
        assert!(key.len() <= MAX_KEY, "{}", key.len());
        assert_ne!(key, delay_key("ws", &long, "c", "m2"));
    }

    #[test]
    fn payloads_round_trip() {
        let payload = TimerPayload {
            kind: TimerKind::Release as i32,
            campaign_id: "cmp_1".into(),
            channels: vec![Channel::Push as i32],
            entered: true,
            ..Default::default()
        };
        let decoded = TimerPayload::decode(payload.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.kind(), TimerKind::Release);
        assert_eq!(decoded.release_channels(), [Channel::Push]);
        assert!(decoded.entered);
        assert_eq!(decoded.event, None);
        let mut event = Event {
            message_id: "m1".into(),
            user_id: "u1".into(),
            name: "opened".into(),
            properties: Some(prost_types::Struct {
                fields: [(
                    "plan".to_owned(),
                    prost_types::Value {
                        kind: Some(prost_types::value::Kind::StringValue("pro".into())),
                    },
                )]
                .into(),
            }),
            timestamp: Some(prost_types::Timestamp {
                seconds: 1_780_304_400,
                nanos: 5,
            }),
            context: Some(herald_proto::common::v1::EventContext {
                locale: "fr".into(),
                ..Default::default()
            }),
        };
        let decoded = TimerPayload::decode(encode(&payload, Some(&event)).as_slice()).unwrap();
        event.context = None;
        assert_eq!(decoded.event.as_ref(), Some(&event));
        assert_eq!(decoded.release_channels(), [Channel::Push]);
        // Fields left empty are left out, as prost leaves them out.
        let bare = Event {
            name: "opened".into(),
            ..Default::default()
        };
        let encoded = encode(&payload, Some(&bare));
        let mut with_copy = payload.clone();
        with_copy.event = Some(bare.clone());
        assert_eq!(encoded.len(), with_copy.encoded_len());
        let decoded = TimerPayload::decode(encoded.as_slice()).unwrap();
        assert_eq!(decoded, with_copy);
    }
}
