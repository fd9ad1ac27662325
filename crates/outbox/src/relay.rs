//! One relay per destination: sends items from memory on the healthy path, recovers them
//! from the table after a restart, an overflow or another replica's death, and parks
//! what cannot be sent.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backon::BackoffBuilder;
use herald_core::time::add;
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::{Item, Settings, Sink, SinkError};

/// What an item costs in memory beyond its payload and key (ids, times, allocation).
const ITEM_OVERHEAD: usize = 96;

fn size(item: &Item) -> usize {
    item.payload.len() + item.key.len() + ITEM_OVERHEAD
}

/// The in-memory side of one destination.
pub(crate) struct Queue {
    tx: mpsc::UnboundedSender<Queued>,
    /// Bytes of the items queued and not yet taken by the relay.
    bytes: AtomicUsize,
    capacity: usize,
    /// True while items may exist only in the table: after start, after the queue
    /// overflowed, or when a periodic recovery scan is due. While set, new items are
    /// not queued in memory (they would overtake older ones in the table).
    spilled: Mutex<bool>,
}

pub(crate) struct Queued {
    item: Item,
    /// When it was leased (milliseconds on the relay's clock).
    leased_at: i64,
}

impl Queue {
    /// A queue of at most `capacity` bytes, in recovery mode: the table may hold work
    /// from a previous run.
    pub(crate) fn new(capacity: usize) -> (Arc<Queue>, mpsc::UnboundedReceiver<Queued>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = Queue {
            tx,
            bytes: AtomicUsize::new(0),
            capacity: capacity.max(1),
            spilled: Mutex::new(true),
        };
        (Arc::new(queue), rx)
    }

    pub(crate) async fn publish(&self, item: Item) {
        let mut spilled = self.spilled.lock().await;
        if *spilled {
            return;
        }
        let size = size(&item);
        if self.bytes.load(Ordering::Acquire) + size > self.capacity {
            tracing::warn!(
                capacity_bytes = self.capacity,
                "outbox queue full, relaying from the table until it drains"
            );
            *spilled = true;
            return;
        }
        self.bytes.fetch_add(size, Ordering::AcqRel);
        let leased_at = item.created_ms;
        if self.tx.send(Queued { item, leased_at }).is_err() {
            // The relay stopped (shutdown): the item waits in the table.
            self.bytes.fetch_sub(size, Ordering::AcqRel);
        }
    }

    fn taken(&self, queued: &Queued) {
        self.bytes.fetch_sub(size(&queued.item), Ordering::AcqRel);
    }
}

/// Ids sent from the table are remembered for a while, so an item that is also queued in
/// memory (committed just as a recovery scan ran) is not sent a second time.
const RECENT_LIMIT: usize = 100_000;

pub(crate) struct Relay {
    destination: &'static str,
    store: Arc<Store>,
    sink: Arc<dyn Sink>,
    queue: Arc<Queue>,
    rx: mpsc::UnboundedReceiver<Queued>,
    settings: Settings,
    recent_from_table: HashSet<i64>,
}

enum Outcome {
    Sent,
    Stopped,
}

impl Relay {
    pub(crate) fn new(
        destination: &'static str,
        store: Arc<Store>,
        sink: Arc<dyn Sink>,
        queue: Arc<Queue>,
        rx: mpsc::UnboundedReceiver<Queued>,
        settings: Settings,
    ) -> Self {
        Relay {
            destination,
            store,
            sink,
            queue,
            rx,
            settings,
            recent_from_table: HashSet::new(),
        }
    }

    fn now_ms(&self) -> i64 {
        self.store.rows.now_ms()
    }

    fn lease_ms(&self) -> i64 {
        herald_core::time::ms(self.settings.lease)
    }

    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        let clock = self.store.rows.clock().clone();
        // Rows of replicas that died are picked up once their lease runs out, so the
        // table is scanned once a lease on the clock.
        let mut next_scan = add(clock.now(), self.settings.lease);
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let batch = self.take_from_memory();
            if !batch.is_empty() {
                if let Outcome::Stopped = self.send_from_memory(batch, &shutdown).await {
                    return;
                }
                continue;
            }
            if *self.queue.spilled.lock().await {
                if let Outcome::Stopped = self.recover_batch(&shutdown).await {
                    return;
                }
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                queued = self.rx.recv() => match queued {
                    Some(queued) => {
                        self.queue.taken(&queued);
                        let mut batch = vec![queued];
                        batch.extend(self.take_from_memory());
                        if let Outcome::Stopped = self.send_from_memory(batch, &shutdown).await {
                            return;
                        }
                    }
                    None => return,
                },
                _ = clock.sleep_until(next_scan) => {
                    next_scan = add(clock.now(), self.settings.lease);
                    self.report_parked().await;
                    *self.queue.spilled.lock().await = true;
                }
            }
        }
    }

    /// Logs how many items of this destination are parked, so an operator sees them.
    async fn report_parked(&self) {
        match self.store.count_parked(self.destination).await {
            Ok(0) => {}
            Ok(parked) => tracing::warn!(
                destination = self.destination,
                table = self.store.rows.table(),
                parked,
                "outbox items are parked; inspect with `herald outbox list`, resend with `herald outbox replay`"
            ),
            Err(error) => {
                tracing::debug!(destination = self.destination, %error, "cannot count parked outbox items")
            }
        }
    }

    fn take_from_memory(&mut self) -> Vec<Queued> {
        let mut batch = Vec::new();
        while batch.len() < self.settings.batch_size {
            match self.rx.try_recv() {
                Ok(queued) => {
                    self.queue.taken(&queued);
                    batch.push(queued);
                }
                Err(_) => break,
            }
        }
        batch
    }

    async fn send_from_memory(
        &mut self,
        batch: Vec<Queued>,
        shutdown: &CancellationToken,
    ) -> Outcome {
        let oldest = batch.iter().map(|q| q.leased_at).min();
        let mut items: Vec<Item> = batch
            .into_iter()
            .filter(|q| !self.recent_from_table.remove(&q.item.id))
            .map(|q| q.item)
            .collect();
        // Items that waited in memory longer than half a lease may have been taken over
        // by another replica; keep only those still ours.
        if oldest.is_some_and(|t| self.now_ms().saturating_sub(t) > self.lease_ms() / 2) {
            match self.renew(&items, shutdown).await {
                Some(held) => items.retain(|i| held.contains(&i.id)),
                None => return Outcome::Stopped,
            }
        }
        self.send(items, shutdown).await
    }

    /// Claims the next batch from the table and sends it; clears the spilled flag once
    /// the table has nothing left for this replica.
    async fn recover_batch(&mut self, shutdown: &CancellationToken) -> Outcome {
        let mut backoff = self.backoff();
        let items = loop {
            // Claim under the lock: an item committed before a publisher saw the flag set
            // is visible to this claim, so clearing the flag cannot strand it.
            let mut spilled = self.queue.spilled.lock().await;
            match self
                .store
                .claim(self.destination, self.settings.batch_size)
                .await
            {
                Ok(items) if items.is_empty() => {
                    *spilled = false;
                    return Outcome::Sent;
                }
                Ok(items) => break items,
                Err(error) => {
                    drop(spilled);
                    tracing::warn!(destination = self.destination, %error, "outbox claim failed");
                    if !sleep_or_stop(backoff.next(), shutdown).await {
                        return Outcome::Stopped;
                    }
                }
            }
        };
        tracing::debug!(
            destination = self.destination,
            count = items.len(),
            "relaying recovered outbox items"
        );
        if self.recent_from_table.len() > RECENT_LIMIT {
            self.recent_from_table.clear();
        }
        self.recent_from_table.extend(items.iter().map(|i| i.id));
        self.send(items, shutdown).await
    }

    /// Whether `item` has used up its retries.
    fn exhausted(&self, item: &Item, now_ms: i64) -> bool {
        let max_age = herald_core::time::ms(self.settings.max_age);
        item.attempts >= self.settings.max_attempts
            || now_ms.saturating_sub(item.created_ms) >= max_age
    }

    /// Sends `items` until the sink accepts them, then deletes them. A rejected batch is
    /// split so that only the offending item is parked; items whose retries run out are
    /// parked with the last error and the rest go on.
    async fn send(&mut self, mut items: Vec<Item>, shutdown: &CancellationToken) -> Outcome {
        let mut backoff = self.backoff();
        let mut last_renewal = self.now_ms();
        loop {
            if items.is_empty() {
                return Outcome::Sent;
            }
            if shutdown.is_cancelled() {
                return Outcome::Stopped;
            }
            for item in &mut items {
                item.attempts = item.attempts.saturating_add(1);
            }
            match self.sink.send(&items).await {
                Ok(()) => return self.delete(&items, shutdown).await,
                Err(SinkError::Rejected(reason)) if items.len() > 1 => {
                    tracing::warn!(destination = self.destination, %reason, "batch rejected, retrying items one by one");
                    for item in items {
                        if let Outcome::Stopped = Box::pin(self.send(vec![item], shutdown)).await {
                            return Outcome::Stopped;
                        }
                    }
                    return Outcome::Sent;
                }
                Err(SinkError::Rejected(reason)) => {
                    tracing::error!(destination = self.destination, id = items[0].id, %reason, "outbox item can never be accepted downstream, parked");
                    self.park(&items, &reason).await;
                    return Outcome::Sent;
                }
                Err(SinkError::Retryable(reason)) => {
                    let now = self.now_ms();
                    let (exhausted, rest): (Vec<Item>, Vec<Item>) =
                        items.into_iter().partition(|i| self.exhausted(i, now));
                    if !exhausted.is_empty() {
                        tracing::error!(
                            destination = self.destination,
                            count = exhausted.len(),
                            max_attempts = self.settings.max_attempts,
                            max_age_secs = self.settings.max_age.as_secs(),
                            %reason,
                            "outbox items ran out of retries, parked"
                        );
                        self.park(&exhausted, &reason).await;
                    }
                    items = rest;
                    if items.is_empty() {
                        return Outcome::Sent;
                    }
                    let delay = backoff.next();
                    tracing::warn!(
                        destination = self.destination,
                        count = items.len(),
                        retry_in_ms = delay.map(|d| d.as_millis() as u64),
                        %reason,
                        "outbox send failed, will retry"
                    );
                    if !sleep_or_stop(delay, shutdown).await {
                        return Outcome::Stopped;
                    }
                    if self.now_ms().saturating_sub(last_renewal) > self.lease_ms() / 3 {
                        let Some(held) = self.renew(&items, shutdown).await else {
                            return Outcome::Stopped;
                        };
                        last_renewal = self.now_ms();
                        // Another replica took over what is no longer ours; it sends them.
                        items.retain(|i| held.contains(&i.id));
                    }
                }
            }
        }
    }

    async fn park(&self, items: &[Item], reason: &str) {
        let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
        if let Err(error) = self.store.rows.park(&ids, reason).await {
            // Not parked: the rows' lease runs out and a recovery scan retries them.
            tracing::warn!(destination = self.destination, ?ids, %error, "could not park outbox items");
        }
    }

    async fn renew(&self, items: &[Item], shutdown: &CancellationToken) -> Option<HashSet<i64>> {
        let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
        let mut backoff = self.backoff();
        loop {
            match self.store.rows.renew(&ids).await {
                Ok(held) => return Some(held.into_iter().collect()),
                Err(error) => {
                    tracing::warn!(destination = self.destination, %error, "outbox lease renewal failed");
                    if !sleep_or_stop(backoff.next(), shutdown).await {
                        return None;
                    }
                }
            }
        }
    }

    async fn delete(&self, items: &[Item], shutdown: &CancellationToken) -> Outcome {
        let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
        let mut backoff = self.backoff();
        loop {
            match self.store.rows.complete(&ids).await {
                Ok(()) => return Outcome::Sent,
                Err(error) => {
                    // Not deleting only means a resend after recovery; receivers dedupe.
                    tracing::warn!(destination = self.destination, %error, "outbox delete failed");
                    if !sleep_or_stop(backoff.next(), shutdown).await {
                        return Outcome::Stopped;
                    }
                }
            }
        }
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> + use<> {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.settings.min_backoff)
            .with_max_delay(self.settings.max_backoff)
            .with_jitter()
            .without_max_times()
            .build()
    }
}

/// Sleeps `delay` (the backoff never runs out; `None` only as a fallback); false if
/// shutdown came first. Backoff is pacing, not domain time: it sleeps on tokio's timer.
async fn sleep_or_stop(delay: Option<Duration>, shutdown: &CancellationToken) -> bool {
    let delay = delay.unwrap_or(Duration::from_secs(1));
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}
