//! Durable timers: the second shared mechanism on leased rows, beside the outbox.
//!
//! A service schedules a timer inside its own transaction ([`Timers::schedule`]: a key,
//! a due time and a payload), so the timer exists exactly when the state that asked for
//! it was committed. Scheduling a key again replaces the timer; [`Timers::cancel`]
//! removes it. A runner per replica finds due timers through the index on their due time
//! (never a scan), claims them with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL) and
//! hands each to the service's [`TimerHandler`]; a timer the handler accepted is deleted.
//!
//! - A due timer fires once, across replicas: one replica claims it at a time, and only
//!   the version that was claimed is deleted, so a timer replaced while it fires fires
//!   again at its new time. Should a replica die between the handler's success and the
//!   delete, the timer fires again after the lease; handlers are idempotent, as every
//!   receiver in Herald is.
//! - It fires when the clock passes its due time: the runner sleeps until the earliest
//!   due timer it knows of, wakes at once for timers scheduled in-process, and looks for
//!   timers scheduled by other replicas every half second. With a manual clock it fires
//!   exactly when the test moves the clock past the due time.
//! - Timers that fell due while every replica was down fire at the next start.
//! - A handler that fails is retried with exponential backoff (the timer's due time moves
//!   forward); after the configured number of attempts the timer is parked with its last
//!   error, like an outbox item.

#![forbid(unsafe_code)]

mod migration;
mod runner;
mod store;

use std::sync::Arc;
use std::time::Duration;

use herald_core::Clock;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use migration::{TimersMigration, migration};

/// A timer that came due, as the handler receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    /// The key it was scheduled under.
    pub key: String,
    /// When it was due (milliseconds since the epoch).
    pub due_ms: i64,
    /// What the scheduler stored with it.
    pub payload: Vec<u8>,
    /// Attempts so far, this one included.
    pub attempts: u32,
}

/// What a service does when one of its timers comes due.
#[async_trait::async_trait]
pub trait TimerHandler: Send + Sync + 'static {
    /// Acts on `timer`. An error retries it later with backoff; the handler must be
    /// idempotent, as a timer may fire again after a crash.
    async fn fire(&self, timer: &Timer) -> Result<(), String>;
}

/// Tuning of the runner.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a replica owns the timers it is firing.
    pub lease: Duration,
    /// Timers claimed per round.
    pub batch_size: usize,
    /// How often to look for timers other replicas scheduled.
    pub poll: Duration,
    /// First retry delay after a handler failed.
    pub min_backoff: Duration,
    /// Largest retry delay.
    pub max_backoff: Duration,
    /// Attempts after which a failing timer is parked.
    pub max_attempts: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lease: Duration::from_secs(30),
            batch_size: 256,
            poll: Duration::from_millis(500),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            max_attempts: 100,
        }
    }
}

/// A service's timers; cheap to clone.
#[derive(Clone)]
pub struct Timers {
    store: Arc<store::Store>,
    wake: Arc<Notify>,
    settings: Settings,
}

impl Timers {
    /// The timers in `table` (created by [`migration`]), fired by this replica under the
    /// name `owner` on `clock`. Nothing fires until [`Timers::start`].
    pub fn new(
        db: DatabaseConnection,
        table: impl Into<String>,
        owner: impl Into<String>,
        clock: Clock,
        settings: Settings,
    ) -> Timers {
        Timers {
            store: Arc::new(store::Store::new(
                db,
                table.into(),
                owner.into(),
                settings.lease,
                clock,
            )),
            wake: Arc::new(Notify::new()),
            settings,
        }
    }

    /// Starts the runner, which hands due timers to `handler` until `shutdown`.
    pub fn start(&self, handler: Arc<dyn TimerHandler>, shutdown: CancellationToken) {
        let runner = runner::Runner {
            store: self.store.clone(),
            wake: self.wake.clone(),
            settings: self.settings.clone(),
            handler,
        };
        tokio::spawn(runner.run(shutdown));
    }

    /// Schedules `key` to fire at `due_ms` with `payload`, within `txn`; a timer already
    /// scheduled under `key` is replaced (its old time and payload are forgotten, and it
    /// fires once, at the new time). Call [`Timers::notify`] after the commit.
    pub async fn schedule<C: ConnectionTrait>(
        &self,
        txn: &C,
        key: &str,
        due_ms: i64,
        payload: Vec<u8>,
    ) -> Result<(), DbErr> {
        self.store.schedule(txn, &[(key, due_ms, payload)]).await
    }

    /// [`Timers::schedule`] for many timers in one statement per chunk.
    pub async fn schedule_many<C: ConnectionTrait>(
        &self,
        txn: &C,
        timers: &[(&str, i64, Vec<u8>)],
    ) -> Result<(), DbErr> {
        self.store.schedule(txn, timers).await
    }

    /// Cancels the timer `key`, within `txn`; true when there was one.
    pub async fn cancel<C: ConnectionTrait>(&self, txn: &C, key: &str) -> Result<bool, DbErr> {
        self.store.cancel(txn, key).await
    }

    /// Tells this replica's runner that timers were committed, so one due sooner than it
    /// expected is not waited for.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Fires every timer due now and waits for the handler, returning how many fired;
    /// what the runner does each time it wakes. For tools and tests.
    pub async fn fire_due(&self, handler: &dyn TimerHandler) -> Result<usize, DbErr> {
        runner::fire_due(&self.store, &self.settings, handler).await
    }

    /// The plan the database chooses for claiming a batch of due timers, one line per node
    /// (it walks the due-time index; see [`herald_leases::LeasedTable::explain_claim`]).
    pub async fn explain_claim(&self) -> Result<String, DbErr> {
        self.store.explain_claim(self.settings.batch_size).await
    }

    /// Timers scheduled and not yet fired (parked ones excluded).
    pub async fn pending(&self) -> Result<u64, DbErr> {
        self.store.rows.count(None).await
    }

    /// Timers parked after their handler kept failing.
    pub async fn parked(&self) -> Result<u64, DbErr> {
        self.store.rows.count_parked(None).await
    }
}
