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

/// Where a stream takes its live messages.
type Live = mpsc::Sender<Arc<Message>>;

/// The most streams open at once: per user, per workspace and in this process. A
/// Subscribe beyond one is refused with RESOURCE_EXHAUSTED, so one user's runaway client
/// or one workspace cannot take every stream the process can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub per_user: usize,
    pub per_workspace: usize,
    pub per_process: usize,
}

/// Which cap a refused subscription hit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapReached {
    #[error("this user already has {0} open stream(s) (max_streams_per_user); close one first")]
    User(usize),
    #[error("this workspace already has {0} open stream(s) (max_streams_per_workspace)")]
    Workspace(usize),
    #[error("this server already holds {0} open stream(s) (max_streams); retry on another replica")]
    Process(usize),
}

/// The open streams per (workspace, user), and their counts.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    caps: Caps,
    next_id: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Each user's streams that still take live messages, with their registration ids.
    streams: HashMap<Key, Vec<(u64, Live)>>,
    /// Open subscriptions (counted until dropped, even once cut off from live messages).
    per_user: HashMap<Key, usize>,
    /// Each subscribed user's inbox version: bumped whenever this process changes what
    /// the user's unread count could be, so a stream recounts only then.
    inbox_versions: HashMap<Key, Arc<AtomicU64>>,
    per_workspace: HashMap<String, usize>,
    total: usize,
}

/// One registered stream; unregisters itself when dropped.
pub struct Subscription {
    /// Shared by every stream of the user: a channel's buffer holds pointers, not messages.
    pub messages: mpsc::Receiver<Arc<Message>>,
    /// The user's inbox version (see [`Hub::inbox_changed`]).
    inbox_version: Arc<AtomicU64>,
    hub: Hub,
    key: Key,
    id: u64,
}

impl Hub {
    pub fn new(caps: Caps) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                caps,
                next_id: AtomicU64::new(0),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Registers a stream for `user_id` of `workspace`, unless a cap is reached.
    pub fn subscribe(&self, workspace: &str, user_id: &str) -> Result<Subscription, CapReached> {
        let caps = self.inner.caps;
        let key = (workspace.to_owned(), user_id.to_owned());
        let mut state = self.lock();
        if state.total >= caps.per_process {
            return Err(CapReached::Process(state.total));
        }
        let in_workspace = state.per_workspace.get(workspace).copied().unwrap_or(0);
        if in_workspace >= caps.per_workspace {
            return Err(CapReached::Workspace(in_workspace));
        }
        let of_user = state.per_user.get(&key).copied().unwrap_or(0);
        if of_user >= caps.per_user {
            return Err(CapReached::User(of_user));
        }
        state.total += 1;
        *state.per_workspace.entry(workspace.to_owned()).or_default() += 1;
        *state.per_user.entry(key.clone()).or_default() += 1;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        state.streams.entry(key.clone()).or_default().push((id, tx));
        let inbox_version = state.inbox_versions.entry(key.clone()).or_default().clone();
        Ok(Subscription {
            messages: rx,
            inbox_version,
            hub: self.clone(),
            key,
            id,
        })
    }

    /// Hands `message` to every open stream of its user in `workspace`, without waiting:
    /// closed streams are removed, and so are streams whose buffer is full.
    pub fn publish(&self, workspace: &str, message: &Message) {
        let key = (workspace.to_owned(), message.user_id.clone());
        let mut state = self.lock();
        if let Some(version) = state.inbox_versions.get(&key) {
            version.fetch_add(1, Ordering::Release);
        }
        let Some(senders) = state.streams.get_mut(&key) else {
            return;
        };
        let message = Arc::new(message.clone());
        senders.retain(|(id, tx)| match tx.try_send(message.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(stream = id, "subscriber fell behind, closing its stream");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        if senders.is_empty() {
            state.streams.remove(&key);
        }
    }

    /// Notes a committed change of the user's inbox other than a new message (a message
    /// read or archived): the user's streams recount the unread messages at their next
    /// heartbeat. New messages are noted by [`Hub::publish`].
    pub fn inbox_changed(&self, workspace: &str, user_id: &str) {
        let key = (workspace.to_owned(), user_id.to_owned());
        if let Some(version) = self.lock().inbox_versions.get(&key) {
            version.fetch_add(1, Ordering::Release);
        }
    }

    /// How many streams are open for the user.
    #[cfg(test)]
    pub fn streams(&self, workspace: &str, user_id: &str) -> usize {
        self.lock()
            .streams
            .get(&(workspace.to_owned(), user_id.to_owned()))
            .map_or(0, Vec::len)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every change is one call.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Decrements `map[key]`, removing it at zero.
fn release<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl Subscription {
    /// The user's inbox version now: a different value later means the inbox changed.
    pub fn inbox_version(&self) -> u64 {
        self.inbox_version.load(Ordering::Acquire)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        if let Some(senders) = state.streams.get_mut(&self.key) {
            senders.retain(|(id, _)| *id != self.id);
            if senders.is_empty() {
                state.streams.remove(&self.key);
            }
        }
        state.total -= 1;
        release(&mut state.per_user, &self.key);
        if !state.per_user.contains_key(&self.key) {
            state.inbox_versions.remove(&self.key);
        }
        release(&mut state.per_workspace, &self.key.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOMY: Caps = Caps {
        per_user: 100,
        per_workspace: 1000,
        per_process: 1000,
    };

    fn message(user: &str, id: &str) -> Message {
        Message {
            id: id.into(),
            user_id: user.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn fans_out_per_user_and_unregisters_on_drop() {
        let hub = Hub::new(ROOMY);
        let mut a1 = hub.subscribe("ws", "a").unwrap();
        let mut a2 = hub.subscribe("ws", "a").unwrap();
        let mut b = hub.subscribe("ws", "b").unwrap();
        let mut other_ws = hub.subscribe("other", "a").unwrap();
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

    #[test]
    fn the_inbox_version_moves_on_every_change_of_the_users_inbox_only() {
        let hub = Hub::new(ROOMY);
        let a1 = hub.subscribe("ws", "a").unwrap();
        let a2 = hub.subscribe("ws", "a").unwrap();
        let b = hub.subscribe("ws", "b").unwrap();
        let (a, other) = (a1.inbox_version(), b.inbox_version());
        hub.publish("ws", &message("a", "m1"));
        assert_ne!(a1.inbox_version(), a);
        assert_eq!(
            a1.inbox_version(),
            a2.inbox_version(),
            "shared by the user's streams"
        );
        let a = a1.inbox_version();
        hub.inbox_changed("ws", "a");
        assert_ne!(a1.inbox_version(), a);
        hub.inbox_changed("other", "b");
        hub.inbox_changed("ws", "nobody");
        assert_eq!(b.inbox_version(), other);
        drop((a1, a2));
        assert!(
            !hub.lock()
                .inbox_versions
                .contains_key(&("ws".into(), "a".into()))
        );
    }

    #[tokio::test]
    async fn a_stream_that_falls_behind_is_closed() {
        let hub = Hub::new(ROOMY);
        let mut slow = hub.subscribe("ws", "a").unwrap();
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

    #[test]
    fn each_cap_refuses_one_more_stream_until_one_closes() {
        let hub = Hub::new(Caps {
            per_user: 2,
            per_workspace: 3,
            per_process: 4,
        });
        let a1 = hub.subscribe("ws", "a").unwrap();
        let _a2 = hub.subscribe("ws", "a").unwrap();
        assert_eq!(hub.subscribe("ws", "a").err(), Some(CapReached::User(2)));
        let _b = hub.subscribe("ws", "b").unwrap();
        assert_eq!(
            hub.subscribe("ws", "c").err(),
            Some(CapReached::Workspace(3))
        );
        let _other = hub.subscribe("other", "a").unwrap();
        assert_eq!(
            hub.subscribe("third", "a").err(),
            Some(CapReached::Process(4))
        );
        drop(a1);
        let _a3 = hub.subscribe("ws", "a").unwrap();
    }

    #[tokio::test]
    async fn a_stream_cut_off_for_falling_behind_counts_until_it_ends() {
        let hub = Hub::new(Caps {
            per_user: 1,
            ..ROOMY
        });
        let slow = hub.subscribe("ws", "a").unwrap();
        for i in 0..=STREAM_BUFFER {
            hub.publish("ws", &message("a", &format!("m{i}")));
        }
        assert_eq!(hub.streams("ws", "a"), 0);
        assert!(hub.subscribe("ws", "a").is_err());
        drop(slow);
        assert!(hub.subscribe("ws", "a").is_ok());
    }
}
