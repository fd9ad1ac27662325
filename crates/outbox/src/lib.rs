//! The transactional outbox and its relay: one piece that every hop between Herald
//! services goes through when it must not lose work.
//!
//! A service writes its state and the outgoing items in one transaction ([`Outbox::add`]),
//! commits, and hands the committed items to the relay in memory ([`Outbox::publish`]),
//! so a healthy hop costs one commit plus one RPC. The relay sends batches to the
//! destination's [`Sink`], deletes them once acknowledged, and retries failures with
//! exponential backoff and jitter, forever: delivery is at least once and receivers are
//! idempotent on the ids inside the payloads.
//!
//! The table is read only to recover: at start (work a crashed or stopped process left
//! behind), when the in-memory queue overflowed, and periodically for rows whose lease
//! expired because the replica that wrote them died. Each row is leased to one replica
//! at a time, so several replicas never send the same item concurrently. Items leave in
//! id order per destination, and a failed batch blocks the ones behind it, so the order
//! of one user's items is kept across the hop.

#![forbid(unsafe_code)]

mod migration;
mod relay;
mod sink;
mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

pub use migration::{OutboxMigration, migration};
pub use sink::{MAX_BATCH, merge_runs, relay_span};

/// One unit of work for a destination, as the sink receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Row id; increases with insertion order.
    pub id: i64,
    /// Ordering key (the user id): items with one key are sent in order.
    pub key: String,
    /// The encoded message.
    pub payload: Vec<u8>,
    /// W3C `traceparent` of the operation that produced the item, if traced.
    pub traceparent: Option<String>,
}

/// An item to add: where it goes, its ordering key, its payload.
#[derive(Debug, Clone)]
pub struct NewItem {
    pub destination: &'static str,
    pub key: String,
    pub payload: Vec<u8>,
    pub traceparent: Option<String>,
}

/// Why a batch was not accepted downstream.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying: unavailable, timed out, overloaded.
    #[error("retryable: {0}")]
    Retryable(String),
    /// The downstream rejects the content itself; retrying cannot help. The relay
    /// isolates the offending item and parks it as failed.
    #[error("rejected: {0}")]
    Rejected(String),
}

impl From<tonic::Status> for SinkError {
    /// Content errors are final; everything else (unavailable, deadline, overload, even
    /// auth misconfiguration that an operator will fix) is worth retrying.
    fn from(status: tonic::Status) -> Self {
        let reason = format!("{:?}: {}", status.code(), status.message());
        match status.code() {
            tonic::Code::InvalidArgument | tonic::Code::OutOfRange => SinkError::Rejected(reason),
            _ => SinkError::Retryable(reason),
        }
    }
}

/// The downstream end of a hop.
#[async_trait::async_trait]
pub trait Sink: Send + Sync + 'static {
    /// Sends `items` (in order) and returns once the downstream acknowledged all of them.
    async fn send(&self, items: &[Item]) -> Result<(), SinkError>;
}

/// Tuning of the relay.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Items per batch sent downstream.
    pub batch_size: usize,
    /// Items held in memory per destination before spilling to table-only mode.
    pub memory_capacity: usize,
    /// How long a replica owns the rows it is sending; must exceed the sink's deadline.
    pub lease: Duration,
    /// First retry delay.
    pub min_backoff: Duration,
    /// Largest retry delay.
    pub max_backoff: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            batch_size: 256,
            memory_capacity: 10_000,
            lease: Duration::from_secs(30),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// Items added in a transaction, to publish once it has committed.
#[derive(Debug, Default)]
#[must_use = "publish staged items after the commit, or they wait for recovery"]
pub struct Staged {
    items: Vec<(&'static str, Item)>,
}

impl Staged {
    /// Merges another staged set into this one (several `add` calls in one transaction).
    pub fn extend(&mut self, other: Staged) {
        self.items.extend(other.items);
    }
}

/// Handle to a service's outbox; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    store: Arc<store::Store>,
    queues: Arc<HashMap<&'static str, Arc<relay::Queue>>>,
}

/// Assembles an outbox and its relays.
pub struct Builder {
    db: DatabaseConnection,
    table: String,
    owner: String,
    settings: Settings,
    sinks: Vec<(&'static str, Arc<dyn Sink>)>,
}

impl Outbox {
    /// An outbox stored in `table` (created by [`migration`]), relayed by this replica
    /// under the name `owner` (stable across restarts where possible, e.g. the pod name).
    pub fn builder(
        db: DatabaseConnection,
        table: impl Into<String>,
        owner: impl Into<String>,
    ) -> Builder {
        Builder {
            db,
            table: table.into(),
            owner: owner.into(),
            settings: Settings::default(),
            sinks: Vec::new(),
        }
    }

    /// Inserts `items` within `txn`; nothing is sent until the transaction commits and
    /// the returned [`Staged`] is published.
    pub async fn add<C: ConnectionTrait>(
        &self,
        txn: &C,
        items: Vec<NewItem>,
    ) -> Result<Staged, DbErr> {
        for item in &items {
            if !self.queues.contains_key(item.destination) {
                return Err(DbErr::Custom(format!(
                    "no outbox destination named {}",
                    item.destination
                )));
            }
        }
        let ids = self.store.insert(txn, &items).await?;
        Ok(Staged {
            items: items
                .into_iter()
                .zip(ids)
                .map(|(n, id)| {
                    (
                        n.destination,
                        Item {
                            id,
                            key: n.key,
                            payload: n.payload,
                            traceparent: n.traceparent,
                        },
                    )
                })
                .collect(),
        })
    }

    /// Hands committed items to the relays. Call only after the commit succeeded.
    pub async fn publish(&self, staged: Staged) {
        for (destination, item) in staged.items {
            if let Some(queue) = self.queues.get(destination) {
                queue.publish(item).await;
            }
        }
    }

    /// Rows still waiting for `destination` (sent items are deleted); for tests and ops.
    pub async fn pending(&self, destination: &str) -> Result<u64, DbErr> {
        self.store.count(destination).await
    }

    /// Rows parked as failed for `destination` after the downstream rejected them.
    pub async fn failed(&self, destination: &str) -> Result<u64, DbErr> {
        self.store.count_failed(destination).await
    }
}

impl Builder {
    /// Overrides the relay tuning.
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Adds a destination and the sink its items go to.
    pub fn destination(mut self, name: &'static str, sink: Arc<dyn Sink>) -> Self {
        self.sinks.push((name, sink));
        self
    }

    /// Starts one relay task per destination; they stop when `shutdown` is cancelled,
    /// leaving unsent items in the table for the next start.
    pub fn start(self, shutdown: CancellationToken) -> Outbox {
        let store = Arc::new(store::Store::new(
            self.db,
            self.table,
            self.owner,
            self.settings.lease,
        ));
        let mut queues = HashMap::new();
        for (name, sink) in self.sinks {
            let (tx, rx) = mpsc::channel(self.settings.memory_capacity.max(1));
            // Start in recovery mode: the table may hold work from a previous run.
            let queue = Arc::new(relay::Queue {
                tx,
                spilled: Mutex::new(true),
            });
            queues.insert(name, queue.clone());
            let relay =
                relay::Relay::new(name, store.clone(), sink, queue, rx, self.settings.clone());
            tokio::spawn(relay.run(shutdown.clone()));
        }
        Outbox {
            store,
            queues: Arc::new(queues),
        }
    }
}
