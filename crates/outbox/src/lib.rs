//! The transactional outbox and its relay: one piece that every hop between Herald
//! services goes through when it must not lose work.
//!
//! A service writes its state and the outgoing items in one transaction ([`Outbox::add`]),
//! commits, and hands the committed items to the relay in memory ([`Outbox::publish`]),
//! so a healthy hop costs one commit plus one RPC. The relay sends batches to the
//! destination's [`Sink`] (usually a [`GrpcSink`]), deletes them once acknowledged, and
//! retries failures with exponential backoff and jitter. Delivery is at least once and
//! receivers are idempotent on the ids inside the payloads.
//!
//! Retries are bounded ([`Settings::max_attempts`], [`Settings::max_age`]): an item that
//! keeps failing is *parked* with its last error, and so, at once, is an item the
//! receiver can never accept (undecodable, refused as invalid, or failing INTERNAL on
//! corrupt data); the items behind it go on. Parked items are listed and replayed with
//! `herald outbox list|replay` ([`admin`]), and every recovery scan logs how many there
//! are.
//!
//! The table is read only to recover: at start (work a crashed or stopped process left
//! behind), when the in-memory queue (bounded in bytes) overflowed, and periodically for
//! rows whose lease expired because the replica that wrote them died. Rows are leased to
//! one replica at a time ([`herald_leases`]), so several replicas never send the same
//! item concurrently. Items leave in id order per destination, and a failing batch
//! blocks the ones behind it while it is retried, so one replica keeps the order of one
//! user's items across the hop. Items of one user written by *different* replicas of the
//! sender may arrive in either order; receivers are written so that the result does not
//! depend on it (segmentation merges traits last-writer-wins by the identity's time).

#![forbid(unsafe_code)]

pub mod admin;
mod migration;
mod relay;
mod sink;
mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use herald_core::Clock;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use tokio_util::sync::CancellationToken;

pub use migration::{OutboxMigration, migration};
pub use sink::{Call, CallLimits, GrpcSink, relay_span};

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
    /// When the item was committed (milliseconds), for the age bound of retries.
    pub created_ms: i64,
    /// Attempts made so far.
    pub attempts: u32,
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
    /// Worth retrying: unavailable, timed out, overloaded, a conflict.
    #[error("retryable: {0}")]
    Retryable(String),
    /// The downstream can never accept the content; retrying cannot help. The relay
    /// isolates the offending item and parks it.
    #[error("rejected: {0}")]
    Rejected(String),
}

impl From<tonic::Status> for SinkError {
    /// Content the receiver refuses (INVALID_ARGUMENT, OUT_OF_RANGE), cannot process
    /// (INTERNAL, DATA_LOSS: corrupt data) or does not implement (UNIMPLEMENTED) is
    /// final; everything else (unavailable, deadline, overload, aborted, even auth
    /// misconfiguration that an operator will fix) is worth retrying, within the bounds.
    fn from(status: tonic::Status) -> Self {
        use tonic::Code;
        let reason = format!("{:?}: {}", status.code(), status.message());
        match status.code() {
            Code::InvalidArgument
            | Code::OutOfRange
            | Code::Internal
            | Code::DataLoss
            | Code::Unimplemented => SinkError::Rejected(reason),
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

#[async_trait::async_trait]
impl<S: Sink + ?Sized> Sink for Arc<S> {
    async fn send(&self, items: &[Item]) -> Result<(), SinkError> {
        self.as_ref().send(items).await
    }
}

/// Tuning of the relay.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Items per batch sent downstream.
    pub batch_size: usize,
    /// Bytes of payload held in memory per destination before the relay reads new work
    /// from the table instead.
    pub memory_bytes: usize,
    /// How long a replica owns the rows it is sending; must exceed the sink's deadline.
    pub lease: Duration,
    /// First retry delay.
    pub min_backoff: Duration,
    /// Largest retry delay.
    pub max_backoff: Duration,
    /// Attempts after which a failing item is parked.
    pub max_attempts: u32,
    /// Age after which a failing item is parked.
    pub max_age: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            batch_size: 256,
            memory_bytes: 64 * 1024 * 1024,
            lease: Duration::from_secs(30),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(10),
            max_attempts: 10_000,
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

impl Settings {
    /// The defaults, with the retry bounds of `config`.
    pub fn from_config(config: &herald_runtime::Config) -> Settings {
        Settings {
            max_attempts: config.outbox_max_attempts,
            max_age: Duration::from_secs(config.outbox_max_age_secs),
            ..Settings::default()
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
    clock: Clock,
    settings: Settings,
    sinks: Vec<(&'static str, Arc<dyn Sink>)>,
}

impl Outbox {
    /// An outbox stored in `table` (created by [`migration`]), relayed by this replica
    /// under the name `owner` (stable across restarts where possible, e.g. the pod name),
    /// timing leases and retry ages on `clock`.
    pub fn builder(
        db: DatabaseConnection,
        table: impl Into<String>,
        owner: impl Into<String>,
        clock: Clock,
    ) -> Builder {
        Builder {
            db,
            table: table.into(),
            owner: owner.into(),
            clock,
            settings: Settings::default(),
            sinks: Vec::new(),
        }
    }

    /// The outbox of the service `launch` starts: `table` of `db`, relayed under the
    /// instance id and with the retry bounds of its config, on its clock.
    pub fn for_service(
        launch: &herald_runtime::Launch,
        db: &DatabaseConnection,
        table: impl Into<String>,
    ) -> Builder {
        Outbox::builder(
            db.clone(),
            table,
            launch.config.instance_id(),
            launch.clock.clone(),
        )
        .settings(Settings::from_config(&launch.config))
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
        let (ids, created_ms) = self.store.insert(txn, &items).await?;
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
                            created_ms,
                            attempts: 0,
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

    /// Rows parked for `destination`.
    pub async fn parked(&self, destination: &str) -> Result<u64, DbErr> {
        self.store.count_parked(destination).await
    }
}

impl Builder {
    /// Overrides the relay tuning.
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Adds a destination and the sink its items go to.
    pub fn destination(mut self, name: &'static str, sink: impl Sink) -> Self {
        self.sinks.push((name, Arc::new(sink)));
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
            self.clock,
        ));
        let mut queues = HashMap::new();
        for (name, sink) in self.sinks {
            let (queue, rx) = relay::Queue::new(self.settings.memory_bytes);
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
