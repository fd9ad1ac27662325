//! The runner of one replica: sleeps until the next due timer (or a wake-up), claims what
//! is due, hands it to the handler, and completes, retries or parks each timer.

use std::sync::Arc;
use std::time::Duration;

use herald_core::time::{add, from_ms, ms};
use sea_orm::DbErr;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::{Settings, TimerHandler};

pub(crate) struct Runner {
    pub(crate) store: Arc<Store>,
    pub(crate) wake: Arc<Notify>,
    pub(crate) settings: Settings,
    pub(crate) handler: Arc<dyn TimerHandler>,
}

impl Runner {
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let clock = self.store.rows.clock().clone();
        let mut failures = 0u32;
        loop {
            let next = match fire_due(&self.store, &self.settings, self.handler.as_ref()).await {
                Ok(_) => {
                    failures = 0;
                    self.store.next_due().await
                }
                Err(error) => Err(error),
            };
            // Sleep until the next timer is due, but look again within `poll` for timers
            // other replicas scheduled, and sooner after a database error.
            let poll_at = add(clock.now(), self.settings.poll);
            let until = match next {
                Ok(Some(due)) => from_ms(due).min(poll_at),
                Ok(None) => poll_at,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(table = self.store.rows.table(), %error, "timer runner failed, will retry");
                    add(clock.now(), backoff(&self.settings, failures))
                }
            };
            // Biased: once shut down, a timer that falls due in the same instant is left
            // to the next start (or another replica) rather than fired on the way out.
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = clock.sleep_until(until) => {}
                _ = self.wake.notified() => {}
            }
        }
    }
}

/// `min_backoff` doubled per attempt after the first, at most `max_backoff`.
fn backoff(settings: &Settings, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(30));
    settings
        .min_backoff
        .saturating_mul(factor)
        .min(settings.max_backoff)
}

/// Claims and fires every timer due now; returns how many fired.
pub(crate) async fn fire_due(
    store: &Store,
    settings: &Settings,
    handler: &dyn TimerHandler,
) -> Result<usize, DbErr> {
    let mut fired = 0;
    loop {
        let claimed = store.claim(settings.batch_size).await?;
        if claimed.is_empty() {
            return Ok(fired);
        }
        let mut done = Vec::with_capacity(claimed.len());
        for timer in &claimed {
            match handler.fire(&timer.timer).await {
                Ok(()) => done.push((timer.id, timer.generation)),
                Err(error) if timer.timer.attempts >= settings.max_attempts => {
                    tracing::error!(key = %timer.timer.key, attempts = timer.timer.attempts, %error, "timer handler keeps failing, timer parked");
                    store.park(timer, &error).await?;
                }
                Err(error) => {
                    let delay = backoff(settings, timer.timer.attempts);
                    tracing::warn!(key = %timer.timer.key, attempts = timer.timer.attempts, retry_in_ms = delay.as_millis() as u64, %error, "timer handler failed, will retry");
                    let at = store.rows.now_ms().saturating_add(ms(delay));
                    store.retry(timer, at, &error).await?;
                }
            }
        }
        fired += done.len();
        store.complete(&done).await?;
    }
}
