//! One relay per destination: sends items from memory on the healthy path, recovers them
//! from the table after a restart, an overflow or another replica's death.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use backon::BackoffBuilder;
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::{Item, Settings, Sink, SinkError};

/// The in-memory side of one destination.
pub(crate) struct Queue {
    pub(crate) tx: mpsc::Sender<Queued>,
    /// True while items may exist only in the table: after start, after the queue
    /// overflowed, or when a periodic recovery scan is due. While set, new items are
    /// not queued in memory (they would overtake older ones in the table).
    pub(crate) spilled: Mutex<bool>,
}

pub(crate) struct Queued {
    item: Item,
    leased_at: Instant,
}

impl Queue {
    pub(crate) async fn publish(&self, item: Item) {
        let mut spilled = self.spilled.lock().await;
        if *spilled {
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(Queued {
            item,
            leased_at: Instant::now(),
        }) {
            tracing::warn!("outbox queue full, relaying from the table until it drains");
            *spilled = true;
        }
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
    rx: mpsc::Receiver<Queued>,
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
        rx: mpsc::Receiver<Queued>,
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

    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        // Rows of replicas that died are picked up once their lease runs out.
        let mut recovery = tokio::time::interval(self.settings.lease);
        recovery.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                        let mut batch = vec![queued];
                        batch.extend(self.take_from_memory());
                        if let Outcome::Stopped = self.send_from_memory(batch, &shutdown).await {
                            return;
                        }
                    }
                    None => return,
                },
                _ = recovery.tick() => *self.queue.spilled.lock().await = true,
            }
        }
    }

    fn take_from_memory(&mut self) -> Vec<Queued> {
        let mut batch = Vec::new();
        while batch.len() < self.settings.batch_size {
            match self.rx.try_recv() {
                Ok(queued) => batch.push(queued),
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
        if oldest.is_some_and(|t| t.elapsed() > self.settings.lease / 2) {
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

    /// Sends `items` until the sink accepts them, then deletes them. A rejected batch is
    /// split so that only the offending item is parked.
    async fn send(&mut self, items: Vec<Item>, shutdown: &CancellationToken) -> Outcome {
        if items.is_empty() {
            return Outcome::Sent;
        }
        let mut backoff = self.backoff();
        let mut last_renewal = Instant::now();
        loop {
            if shutdown.is_cancelled() {
                return Outcome::Stopped;
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
                    let id = items[0].id;
                    tracing::error!(destination = self.destination, id, %reason, "outbox item rejected downstream, parked as failed");
                    if let Err(error) = self.store.fail(id, &reason).await {
                        tracing::warn!(destination = self.destination, id, %error, "could not park failed outbox item");
                    }
                    return Outcome::Sent;
                }
                Err(SinkError::Retryable(reason)) => {
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
                    if last_renewal.elapsed() > self.settings.lease / 3 {
                        let Some(held) = self.renew(&items, shutdown).await else {
                            return Outcome::Stopped;
                        };
                        last_renewal = Instant::now();
                        if held.len() != items.len() {
                            // Another replica took some over; it will send them.
                            let items: Vec<Item> =
                                items.into_iter().filter(|i| held.contains(&i.id)).collect();
                            return Box::pin(self.send(items, shutdown)).await;
                        }
                    }
                }
            }
        }
    }

    async fn renew(&self, items: &[Item], shutdown: &CancellationToken) -> Option<HashSet<i64>> {
        let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
        let mut backoff = self.backoff();
        loop {
            match self.store.renew(&ids).await {
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
            match self.store.delete(&ids).await {
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
/// shutdown came first.
async fn sleep_or_stop(delay: Option<Duration>, shutdown: &CancellationToken) -> bool {
    let delay = delay.unwrap_or(Duration::from_secs(1));
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}
