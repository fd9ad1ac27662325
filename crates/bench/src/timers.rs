//! Durable timers at scale, on their own scratch database: how fast timers are scheduled
//! (in transactions of 1,000, the way a service schedules them with its state) until
//! `--timers` are pending; how fast one runner then fires a backlog of due timers with all
//! the others still pending (due timers are found through the index on their due time,
//! so the pending ones must not slow firing down); and how late timers fire that another
//! replica scheduled (no in-process wake-up: the runner finds them by looking).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use herald_runtime::Clock;
use herald_storage::sea_orm::{DatabaseConnection, TransactionTrait};
use herald_storage::testing::ScratchPostgres;
use herald_timers::{Settings, Timer, TimerHandler, Timers};
use tokio_util::sync::CancellationToken;

use crate::args::Backend;
use crate::progress;

herald_storage::migrator!(
    Migrator,
    "bench_migrations",
    [herald_timers::migration("bench_timers")]
);

/// Timers scheduled per transaction.
const PER_TXN: usize = 1_000;

/// What the timers phase measured.
pub struct TimersResult {
    pub pending: u64,
    pub schedule_rate: f64,
    pub due: u64,
    pub fire_rate: f64,
    /// Milliseconds from a timer's due time to its handler call, for timers scheduled
    /// by "another replica" while the runner runs.
    pub lateness: Histogram<u64>,
}

struct Counter {
    fired: AtomicU64,
    lateness: std::sync::Mutex<Histogram<u64>>,
    clock: Clock,
}

#[async_trait::async_trait]
impl TimerHandler for Counter {
    async fn fire(&self, timer: &Timer) -> Result<(), String> {
        if timer.key.starts_with("late-") {
            let late = self.clock.now_ms().saturating_sub(timer.due_ms).max(0) as u64;
            if let Ok(mut h) = self.lateness.lock() {
                let _ = h.record(late);
            }
        }
        self.fired.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

async fn wait_for(counter: &Counter, fired: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while counter.fired.load(Ordering::Relaxed) < fired {
        anyhow::ensure!(
            Instant::now() < deadline,
            "timers not fired within 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Schedules `count` timers `{prefix}-{i}` due at `due(i)`, committed 1,000 at a time.
async fn schedule(
    db: &DatabaseConnection,
    timers: &Timers,
    prefix: &str,
    count: u64,
    due: impl Fn(u64) -> i64,
) -> anyhow::Result<()> {
    let mut next = 0u64;
    let done = Arc::new(AtomicU64::new(0));
    let _progress = (count > 100_000).then(|| progress::counted(done.clone(), count, "scheduled"));
    while next < count {
        let end = (next + PER_TXN as u64).min(count);
        let keys: Vec<String> = (next..end).map(|i| format!("{prefix}-{i}")).collect();
        let batch: Vec<(&str, i64, Vec<u8>)> = keys
            .iter()
            .zip(next..end)
            .map(|(k, i)| (k.as_str(), due(i), Vec::new()))
            .collect();
        let txn = db.begin().await?;
        timers.schedule_many(&txn, &batch).await?;
        txn.commit().await?;
        next = end;
        done.store(next, Ordering::Relaxed);
    }
    Ok(())
}

/// Schedules `pending` far-future timers, then `due` timers due now, and times both.
pub async fn run(
    backend: Backend,
    postgres_url: &str,
    pending: u64,
    due: u64,
) -> anyhow::Result<TimersResult> {
    let dir = tempfile::tempdir()?;
    let scratch = match backend {
        Backend::Postgres => {
            Some(ScratchPostgres::create(postgres_url, "herald_bench_timers").await?)
        }
        Backend::Sqlite => None,
    };
    let url = match &scratch {
        Some(pg) => pg.url(),
        None => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("timers.db").display()
        ),
    };
    let db = herald_storage::connect_and_migrate::<Migrator>(&url)
        .await
        .context("open the timers database")?;
    let clock = Clock::system();
    let timers = Timers::new(
        db.clone(),
        "bench_timers",
        "bench",
        clock.clone(),
        Settings::default(),
    );

    println!("[timers] scheduling {pending} timers due tomorrow, {PER_TXN} per transaction…");
    let started = Instant::now();
    let tomorrow = clock.now_ms() + 86_400_000;
    schedule(&db, &timers, "pending", pending, |i| tomorrow + i as i64).await?;
    let schedule_rate = pending as f64 / started.elapsed().as_secs_f64();
    println!("  {schedule_rate:.0} timers/s scheduled");

    println!("[timers] {due} timers due now, fired by one runner with {pending} pending…");
    let counter = Arc::new(Counter {
        fired: AtomicU64::new(0),
        lateness: std::sync::Mutex::new(Histogram::new(3)?),
        clock: clock.clone(),
    });
    let now = clock.now_ms();
    schedule(&db, &timers, "due", due, |_| now).await?;
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    timers.start(counter.clone(), shutdown.clone());
    wait_for(&counter, due).await?;
    let fire_rate = due as f64 / started.elapsed().as_secs_f64();

    // Scheduled elsewhere, 100 ms ahead, one every 20 ms: found by the runner's look.
    const LATE: u64 = 100;
    let other = Timers::new(
        db.clone(),
        "bench_timers",
        "other",
        clock.clone(),
        Settings::default(),
    );
    for i in 0..LATE {
        let due_at = clock.now_ms() + 100;
        schedule(&db, &other, &format!("late-{i}"), 1, |_| due_at).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_for(&counter, due + LATE).await?;
    shutdown.cancel();
    let lateness = counter
        .lateness
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| Histogram::new(3).expect("histogram"));
    println!(
        "  {fire_rate:.0} timers/s fired; timers scheduled by another replica fired p50 {} ms, p99 {} ms late",
        lateness.value_at_quantile(0.5),
        lateness.value_at_quantile(0.99)
    );
    let left = timers.pending().await?;
    anyhow::ensure!(
        left == pending,
        "{left} timers pending after firing, expected {pending}"
    );
    db.close().await.ok();
    Ok(TimersResult {
        pending,
        schedule_rate,
        due,
        fire_rate,
        lateness,
    })
}
