//! One Subscribe stream: replay of the user's undisplayed in-app messages, then live
//! messages from the hub, heartbeats when idle, and a bounded end on shutdown or token
//! expiry.

use std::collections::HashSet;
use std::time::Duration;

use herald_core::Timestamp;
use herald_core::time::proto_from_ms;
use herald_outbox::Outbox;
use herald_proto::common::v1::MessageState;
use herald_proto::delivery::v1::subscribe_response::Kind;
use herald_proto::delivery::v1::{Heartbeat, Message, SubscribeResponse};
use herald_runtime::{CancellationToken, Clock};
use sea_orm::DatabaseConnection;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::hub::{Hub, Subscription};
use crate::store::{self, ReplayCursor};

/// An idle stream recounts its user's unread messages at least this often, even when
/// nothing in this process changed them (a change made through another replica).
pub const RECOUNT_AFTER: Duration = Duration::from_secs(300);

/// Messages read from the database per replay query.
const REPLAY_PAGE: u64 = 100;

/// Items buffered between the stream task and the gRPC response body.
const OUT_BUFFER: usize = 16;

/// The stream handed to tonic.
pub type Stream = futures::stream::Map<ReceiverStream<Box<Item>>, fn(Box<Item>) -> Item>;

/// One item of the stream. The buffer between the stream task and tonic holds them boxed,
/// so an idle stream's buffer is a few pointers rather than a few full responses.
type Item = Result<SubscribeResponse, Status>;

type Out = mpsc::Sender<Box<Item>>;

fn unbox(item: Box<Item>) -> Item {
    *item
}

/// The unread count a stream's heartbeats carry, recounted only when it may have changed:
/// the user's inbox version moved (a message delivered, read or archived through this
/// process), the first counted message expired, or [`RECOUNT_AFTER`] passed. An idle
/// stream's heartbeats cost no query.
#[derive(Default)]
struct UnreadCount {
    count: u32,
    /// Of the last count: the inbox version before it, when it was made (none yet), and
    /// when its first message expires.
    version: u64,
    at: Option<Instant>,
    next_expiry: Option<i64>,
}

impl UnreadCount {
    fn stale(&self, version: u64, now_ms: i64) -> bool {
        let Some(at) = self.at else { return true };
        version != self.version
            || self.next_expiry.is_some_and(|t| t <= now_ms)
            || at.elapsed() >= RECOUNT_AFTER
    }

    fn counted(&mut self, unread: store::Unread, version: u64) {
        self.count = unread.count;
        self.next_expiry = unread.next_expiry;
        self.version = version;
        self.at = Some(Instant::now());
    }
}

/// Everything one stream needs.
pub struct Session {
    pub db: DatabaseConnection,
    pub outbox: Outbox,
    pub clock: Clock,
    pub workspace: String,
    pub user_id: String,
    pub session_id: String,
    /// When the user token expires (on the clock); the stream closes with
    /// UNAUTHENTICATED then.
    pub expires_at: Timestamp,
    /// The server's shutdown: the stream ends so that the drain stays bounded.
    pub shutdown: CancellationToken,
    /// A heartbeat goes out after this long without any write (`heartbeat_secs`).
    pub heartbeat_after: Duration,
    /// Where the workspace's display settings, the first item, come from.
    pub display: std::sync::Arc<crate::display::DisplaySource>,
}

/// Why a stream ended.
enum End {
    /// The client went away; nothing to tell it.
    Gone,
    /// End with this status.
    Status(Status),
}

impl Session {
    /// Registers with `hub` before anything is read, so no message delivered from now on
    /// can fall between the replay and the live feed, then streams in a task. Refused
    /// with RESOURCE_EXHAUSTED when a cap on open streams is reached.
    pub fn open(self, hub: &Hub) -> Result<Stream, Status> {
        let subscription = hub
            .subscribe(&self.workspace, &self.user_id)
            .map_err(|cap| Status::resource_exhausted(cap.to_string()))?;
        let (out, rx) = mpsc::channel(OUT_BUFFER);
        tokio::spawn(self.run(subscription, out));
        Ok(futures::StreamExt::map(
            ReceiverStream::new(rx),
            unbox as fn(Box<Item>) -> Item,
        ))
    }

    async fn run(self, subscription: Subscription, out: Out) {
        tracing::debug!(user_id = %self.user_id, session_id = %self.session_id, "subscribe stream opened");
        let expired = self.clock.sleep_until(self.expires_at);
        let end = tokio::select! {
            end = self.stream(subscription, &out) => end,
            _ = self.shutdown.cancelled() => End::Status(Status::unavailable("the server is shutting down, reconnect")),
            _ = expired => End::Status(Status::unauthenticated("user token expired, reconnect with a fresh token")),
            _ = out.closed() => End::Gone,
        };
        if let End::Status(status) = end {
            tracing::debug!(user_id = %self.user_id, code = ?status.code(), "subscribe stream closed");
            // Bounded: a client that stopped reading must not hold up the drain.
            let _ =
                tokio::time::timeout(Duration::from_secs(1), out.send(Box::new(Err(status)))).await;
        }
    }

    async fn stream(&self, mut subscription: Subscription, out: &Out) -> End {
        let mut replayed = HashSet::new();
        let mut last_write = Instant::now();
        let mut unread = UnreadCount::default();

        if let Some(settings) = self.display.of(&self.workspace).await {
            let item = SubscribeResponse {
                kind: Some(Kind::DisplaySettings(settings)),
            };
            if out.send(Box::new(Ok(item))).await.is_err() {
                return End::Gone;
            }
            last_write = Instant::now();
        }
        let now = self.clock.now_ms();
        let mut after: Option<ReplayCursor> = None;
        loop {
            let page = match Box::pin(store::replay(
                &self.db,
                &self.workspace,
                &self.user_id,
                now,
                after.as_ref(),
                REPLAY_PAGE,
            ))
            .await
            {
                Ok(page) => page,
                Err(e) => return End::Status(e.into()),
            };
            let mut messages = Vec::with_capacity(page.len());
            for model in &page {
                match model.to_proto() {
                    Ok(message) => messages.push(message),
                    Err(e) => return End::Status(e.into()),
                }
            }
            // The page's PENDING messages become DELIVERED in one transaction before any
            // is written: a DELIVERED message is still replayed, so a write that does not
            // reach the client is retried on its next connect.
            let pending: Vec<&str> = messages
                .iter()
                .filter(|m| m.state == MessageState::Pending as i32)
                .map(|m| m.id.as_str())
                .collect();
            let marked = self.mark_delivered(&pending).await;
            for mut message in messages {
                if marked && message.state == MessageState::Pending as i32 {
                    message.state = MessageState::Delivered as i32;
                }
                // Kept only for the replay: a live message it raced with is skipped.
                replayed.insert(message.id.clone());
                if !self.write(message, out, &mut last_write).await {
                    return End::Gone;
                }
            }
            match page.last() {
                Some(last) if page.len() as u64 == REPLAY_PAGE => {
                    after = Some((last.priority, last.create_time, last.id.clone()))
                }
                _ => break,
            }
        }
        // A heartbeat at once: the client learns that the stream is open, that the
        // replay is over, and the unread count.
        if !self
            .heartbeat(&subscription, &mut unread, out, &mut last_write)
            .await
        {
            return End::Gone;
        }

        loop {
            tokio::select! {
                live = subscription.messages.recv() => match live {
                    // Already sent by the replay, which may have raced with this delivery.
                    Some(message) if replayed.contains(&message.id) => {}
                    Some(message) => {
                        // Written first and marked DELIVERED after, so the mark's commit is
                        // not on the way to the screen; the mark runs in a task of its own,
                        // so a client that goes away right after the write does not cancel
                        // it. Both states are replayed, so a mark that fails or never
                        // happens (a crash) only means the message is sent again on the
                        // next connect, as a write that did not arrive is.
                        let mut message = std::sync::Arc::unwrap_or_clone(message);
                        let pending = message.state == MessageState::Pending as i32;
                        if pending {
                            message.state = MessageState::Delivered as i32;
                        }
                        let id = message.id.clone();
                        if !self.write(message, out, &mut last_write).await {
                            return End::Gone;
                        }
                        if pending {
                            self.mark_delivered_detached(id);
                        }
                    }
                    None => return End::Status(Status::unavailable("the stream fell behind, reconnect to resume")),
                },
                _ = tokio::time::sleep_until(last_write + self.heartbeat_after) => {
                    if !self.heartbeat(&subscription, &mut unread, out, &mut last_write).await {
                        return End::Gone;
                    }
                }
            }
        }
    }

    /// Writes a heartbeat with the unread count (counted again only when it may have
    /// changed); false when the client is gone.
    async fn heartbeat(
        &self,
        subscription: &Subscription,
        unread: &mut UnreadCount,
        out: &Out,
        last_write: &mut Instant,
    ) -> bool {
        let now = self.clock.now_ms();
        let version = subscription.inbox_version();
        if unread.stale(version, now) {
            match Box::pin(store::unread(&self.db, &self.workspace, &self.user_id, now)).await {
                Ok(counted) => unread.counted(counted, version),
                // Keep the stream alive with the last known count.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot count unread messages for a heartbeat")
                }
            }
        }
        let heartbeat = Heartbeat {
            server_time: Some(proto_from_ms(now)),
            unread_count: unread.count,
        };
        let item = SubscribeResponse {
            kind: Some(Kind::Heartbeat(heartbeat)),
        };
        if out.send(Box::new(Ok(item))).await.is_err() {
            return false;
        }
        *last_write = Instant::now();
        true
    }

    /// Moves those of `ids` still PENDING to DELIVERED (recording the DELIVERED
    /// interactions) in one transaction; false when that failed, which is logged, and the
    /// messages go out as they are.
    async fn mark_delivered(&self, ids: &[&str]) -> bool {
        Box::pin(mark(
            &self.db,
            &self.outbox,
            &self.clock,
            &self.workspace,
            ids,
        ))
        .await
    }

    /// [`Session::mark_delivered`] of one message in a task of its own.
    fn mark_delivered_detached(&self, id: String) {
        let (db, outbox, clock, workspace) = (
            self.db.clone(),
            self.outbox.clone(),
            self.clock.clone(),
            self.workspace.clone(),
        );
        tokio::spawn(async move {
            mark(&db, &outbox, &clock, &workspace, &[id.as_str()]).await;
        });
    }

    /// Writes `message` to the stream. False when the client is gone.
    async fn write(&self, message: Message, out: &Out, last_write: &mut Instant) -> bool {
        *last_write = Instant::now();
        out.send(Box::new(Ok(SubscribeResponse {
            kind: Some(Kind::Message(message)),
        })))
        .await
        .is_ok()
    }
}

/// `store::mark_delivered`, a failure logged: false then.
async fn mark(
    db: &DatabaseConnection,
    outbox: &Outbox,
    clock: &Clock,
    workspace: &str,
    ids: &[&str],
) -> bool {
    match store::mark_delivered(db, outbox, clock, workspace, ids).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(messages = ids.len(), error = %e, "cannot mark messages delivered");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unread_count_is_recounted_only_when_it_may_have_changed() {
        let mut unread = UnreadCount::default();
        assert!(unread.stale(0, 1_000), "never counted");
        let counted = store::Unread {
            count: 2,
            next_expiry: Some(5_000),
        };
        unread.counted(counted, 7);
        assert!(!unread.stale(7, 1_000), "nothing changed: no query");
        assert!(unread.stale(8, 1_000), "the inbox changed");
        assert!(unread.stale(7, 5_000), "a counted message expired");
        unread.counted(
            store::Unread {
                count: 0,
                next_expiry: None,
            },
            7,
        );
        assert!(!unread.stale(7, i64::MAX), "nothing to expire");
    }
}
