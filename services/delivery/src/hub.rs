//! In-process fan-out of newly delivered in-app messages to the open Subscribe streams of
//! their user. (Several replicas would share pushes through a broker; this is the
//! embedded, single-process form.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use herald_proto::delivery::v1::Message;
use tokio::sync::mpsc;

/// Live messages buffered per stream. A stream that falls this far behind is dropped
/// from the hub (its receiver ends) and the client catches up by replay on reconnect,
/// so one slow session never holds back a delivery.
const STREAM_BUFFER: usize = 256;

type Key = (String, String);

/// The open streams of each user, each with its registration id.
type Streams = HashMap<Key, Vec<(u64, mpsc::Sender<Message>)>>;

/// The open streams per (workspace, user).
#[derive(Default, Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    next_id: AtomicU64,
    streams: Mutex<Streams>,
}

/// One registered stream; unregisters itself when dropped.
pub struct Subscription {
    pub messages: mpsc::Receiver<Message>,
    hub: Hub,
    key: Key,
    id: u64,
}

impl Hub {
    /// Registers a stream for `user_id` of `workspace`.
    pub fn subscribe(&self, workspace: &str, user_id: &str) -> Subscription {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let key = (workspace.to_owned(), user_id.to_owned());
        self.lock().entry(key.clone()).or_default().push((id, tx));
        Subscription {
            messages: rx,
            hub: self.clone(),
            key,
            id,
        }
    }

    /// Hands `message` to every open stream of its user in `workspace`, without waiting:
    /// closed streams are removed, and so are streams whose buffer is full.
    pub fn publish(&self, workspace: &str, message: &Message) {
        let key = (workspace.to_owned(), message.user_id.clone());
        let mut streams = self.lock();
        let Some(senders) = streams.get_mut(&key) else {
            return;
        };
        senders.retain(|(id, tx)| match tx.try_send(message.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(stream = id, "subscriber fell behind, closing its stream");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        if senders.is_empty() {
            streams.remove(&key);
        }
    }

    /// How many streams are open for the user.
    #[cfg(test)]
    pub fn streams(&self, workspace: &str, user_id: &str) -> usize {
        self.lock()
            .get(&(workspace.to_owned(), user_id.to_owned()))
            .map_or(0, Vec::len)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Streams> {
        // The map stays consistent even if a holder panicked: every change is one call.
        self.inner
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut streams = self.hub.lock();
        if let Some(senders) = streams.get_mut(&self.key) {
            senders.retain(|(id, _)| *id != self.id);
            if senders.is_empty() {
                streams.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(user: &str, id: &str) -> Message {
        Message {
            id: id.into(),
            user_id: user.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn fans_out_per_user_and_unregisters_on_drop() {
        let hub = Hub::default();
        let mut a1 = hub.subscribe("ws", "a");
        let mut a2 = hub.subscribe("ws", "a");
        let mut b = hub.subscribe("ws", "b");
        let mut other_ws = hub.subscribe("other", "a");
        hub.publish("ws", &message("a", "m1"));
        assert_eq!(a1.messages.recv().await.unwrap().id, "m1");
        assert_eq!(a2.messages.recv().await.unwrap().id, "m1");
        assert!(b.messages.try_recv().is_err());
        assert!(other_ws.messages.try_recv().is_err());
        drop(a1);
        assert_eq!(hub.streams("ws", "a"), 1);
        drop(a2);
        assert_eq!(hub.streams("ws", "a"), 0);
    }

    #[tokio::test]
    async fn a_stream_that_falls_behind_is_closed() {
        let hub = Hub::default();
        let mut slow = hub.subscribe("ws", "a");
        for i in 0..=STREAM_BUFFER {
            hub.publish("ws", &message("a", &format!("m{i}")));
        }
        assert_eq!(hub.streams("ws", "a"), 0);
        let mut received = 0;
        while slow.messages.recv().await.is_some() {
            received += 1;
        }
        assert_eq!(received, STREAM_BUFFER);
    }
}
