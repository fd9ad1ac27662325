//! Durable timers against a real database (SQLite by default, PostgreSQL with
//! `HERALD_TEST_DATABASE=postgres`), on a manual clock: a timer fires exactly when the
//! clock passes its due time, once, also across replicas and after a restart; replacing
//! and cancelling by key work; a failing handler is retried and then parked; claims walk
//! the due-time index; on the system clock a timer fires within a second.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use herald_core::{Clock, Timestamp};
use herald_storage::sea_orm::{DatabaseConnection, TransactionTrait};
use herald_storage::testing::TestDatabase;
use herald_testkit::wait_until;
use herald_timers::{Settings, Timer, TimerHandler, Timers};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

herald_storage::migrator!(
    Migrator,
    "test_migrations",
    [herald_timers::migration("test_timers")]
);

const TABLE: &str = "test_timers";

fn start_time() -> Timestamp {
    "2026-06-01T00:00:00Z".parse().unwrap()
}

/// Milliseconds `secs` after the start.
fn at(secs: f64) -> i64 {
    start_time().as_millisecond() + (secs * 1000.0) as i64
}

#[derive(Default)]
struct Recorder {
    fired: Mutex<Vec<Timer>>,
    /// Fail every call while set.
    failing: bool,
}

#[async_trait::async_trait]
impl TimerHandler for Recorder {
    async fn fire(&self, timer: &Timer) -> Result<(), String> {
        if self.failing {
            return Err("handler is down".into());
        }
        self.fired.lock().await.push(timer.clone());
        Ok(())
    }
}

impl Recorder {
    async fn keys(&self) -> Vec<String> {
        self.fired
            .lock()
            .await
            .iter()
            .map(|t| t.key.clone())
            .collect()
    }
}

async fn database() -> (TestDatabase, DatabaseConnection) {
    let test_db = TestDatabase::new().await;
    let db = herald_storage::connect_and_migrate::<Migrator>(&test_db.url("timers"))
        .await
        .unwrap();
    (test_db, db)
}

fn timers(db: &DatabaseConnection, owner: &str, clock: &Clock) -> Timers {
    Timers::new(db.clone(), TABLE, owner, clock.clone(), Settings::default())
}

async fn schedule(db: &DatabaseConnection, timers: &Timers, key: &str, due: i64, payload: &str) {
    let txn = db.begin().await.unwrap();
    timers
        .schedule(&txn, key, due, payload.as_bytes().to_vec())
        .await
        .unwrap();
    txn.commit().await.unwrap();
    timers.notify();
}

#[tokio::test]
async fn a_timer_fires_exactly_when_the_clock_passes_its_due_time() {
    let (_guard, db) = database().await;
    let clock = Clock::manual(start_time());
    let timers = timers(&db, "a", &clock);
    let handler = Recorder::default();
    schedule(&db, &timers, "k1", at(10.0), "hello").await;
    assert_eq!(timers.fire_due(&handler).await.unwrap(), 0);
    clock.advance(Duration::from_millis(9_999));
    assert_eq!(
        timers.fire_due(&handler).await.unwrap(),
        0,
        "not a millisecond early"
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(timers.fire_due(&handler).await.unwrap(), 1);
    let fired = handler.fired.lock().await.clone();
    assert_eq!(fired.len(), 1);
    assert_eq!(
        (
            fired[0].key.as_str(),
            fired[0].payload.as_slice(),
            fired[0].due_ms
        ),
        ("k1", &b"hello"[..], at(10.0))
    );
    assert_eq!(timers.fire_due(&handler).await.unwrap(), 0, "fired once");
    assert_eq!(timers.pending().await.unwrap(), 0);
}

#[tokio::test]
async fn the_runner_wakes_when_the_clock_moves() {
    let (_guard, db) = database().await;
    let clock = Clock::manual(start_time());
    let timers = timers(&db, "a", &clock);
    let handler = Arc::new(Recorder::default());
    let shutdown = CancellationToken::new();
    timers.start(handler.clone(), shutdown.clone());
    schedule(&db, &timers, "k1", at(60.0), "x").await;
    schedule(&db, &timers, "k0", at(-1.0), "overdue").await;
    wait_until("the overdue timer", || async {
        handler.keys().await == ["k0"]
    })
    .await;
    clock.advance(Duration::from_secs(60));
    wait_until("the timer due in a minute", || async {
        handler.keys().await == ["k0", "k1"]
    })
    .await;
    shutdown.cancel();
}

#[tokio::test]
async fn scheduling_a_key_again_replaces_it_and_cancel_removes_it() {
    let (_guard, db) = database().await;
    let clock = Clock::manual(start_time());
    let timers = timers(&db, "a", &clock);
    let handler = Recorder::default();
    schedule(&db, &timers, "k", at(10.0), "first").await;
    schedule(&db, &timers, "k", at(20.0), "second").await;
    schedule(&db, &timers, "gone", at(5.0), "x").await;
    let txn = db.begin().await.unwrap();
    assert!(timers.cancel(&txn, "gone").await.unwrap());
    assert!(!timers.cancel(&txn, "never").await.unwrap());
    txn.commit().await.unwrap();
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        timers.fire_due(&handler).await.unwrap(),
        0,
        "the replaced time is forgotten"
    );
    clock.advance(Duration::from_secs(10));
    assert_eq!(timers.fire_due(&handler).await.unwrap(), 1);
    assert_eq!(handler.fired.lock().await[0].payload, b"second");
    assert_eq!(timers.pending().await.unwrap(), 0);
}

#[tokio::test]
async fn a_timer_that_fell_due_while_nobody_ran_fires_at_the_next_start() {
    let (_guard, db) = database().await;
    let clock = Clock::manual(start_time());
    let first = timers(&db, "a", &clock);
    schedule(&db, &first, "k", at(30.0), "x").await;
    drop(first);
    // Down for an hour.
    clock.advance(Duration::from_secs(3600));
    let handler = Arc::new(Recorder::default());
    let shutdown = CancellationToken::new();
    timers(&db, "a", &clock).start(handler.clone(), shutdown.clone());
    wait_until("the missed timer", || async {
        handler.keys().await == ["k"]
    })
    .await;
    shutdown.cancel();
}

#[tokio::test]
async fn each_timer_fires_once_across_replicas() {
    let (_guard, db) = database().await;
    let clock = Clock::manual(start_time());
    let scheduler = timers(&db, "a", &clock);
    let txn = db.begin().await.unwrap();
    let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    let batch: Vec<(&str, i64, Vec<u8>)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), at(1.0 + (i % 10) as f64), Vec::new()))
        .collect();
    scheduler.schedule_many(&txn, &batch).await.unwrap();
    txn.commit().await.unwrap();
    let handler = Arc::new(Recorder::default());
    let shutdown = CancellationToken::new();
    for owner in ["a", "b", "c"] {
        timers(&db, owner, &clock).start(handler.clone(), shutdown.clone());
    }
    clock.advance(Duration::from_secs(11));
    wait_until("every timer", || async {
        handler.fired.lock().await.len() >= 300
    })
    .await;
    wait_until("the table to empty", || async {
        scheduler.pending().await.unwrap() == 0
    })
    .await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for key in handler.keys().await {
        *counts.entry(key).or_default() += 1;
    }
    assert_eq!(counts.len(), 300);
    assert!(counts.values().all(|n| *n == 1), "a timer fired twice");
    shutdown.cancel();
}

#[tokio::test]
async fn a_failing_handler_is_retried_with_backoff_then_parked() {
    let (_guard, db) = database().await;
    let clock = Clock::manual(start_time());
    let timers = Timers::new(
        db.clone(),
        TABLE,
        "a",
        clock.clone(),
        Settings {
            max_attempts: 3,
            ..Settings::default()
        },
    );
    let handler = Recorder {
        failing: true,
        ..Default::default()
    };
    schedule(&db, &timers, "k", at(0.0), "x").await;
    assert_eq!(timers.fire_due(&handler).await.unwrap(), 0);
    // Backed off: not retried until the backoff has passed on the clock.
    assert_eq!(timers.fire_due(&handler).await.unwrap(), 0);
    assert_eq!(timers.pending().await.unwrap(), 1);
    for _ in 0..2 {
        clock.advance(Duration::from_secs(600));
        timers.fire_due(&handler).await.unwrap();
    }
    assert_eq!(timers.parked().await.unwrap(), 1);
    assert_eq!(timers.pending().await.unwrap(), 0);
}

#[tokio::test]
async fn due_timers_are_claimed_through_the_due_index_even_before_statistics() {
    let (_guard, db) = database().await;
    let clock = Clock::manual(start_time());
    let timers = timers(&db, "a", &clock);
    // Many pending timers and a few due ones, and no ANALYZE: without statistics
    // PostgreSQL would rather scan and sort the whole table.
    let keys: Vec<String> = (0..20_000).map(|i| format!("k{i}")).collect();
    let batch: Vec<(&str, i64, Vec<u8>)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let due = if i % 1_000 == 0 {
                at(-1.0)
            } else {
                at(86_400.0)
            };
            (k.as_str(), due, Vec::new())
        })
        .collect();
    let txn = db.begin().await.unwrap();
    timers.schedule_many(&txn, &batch).await.unwrap();
    txn.commit().await.unwrap();

    let plan = timers.explain_claim().await.unwrap();
    assert!(plan.contains(&format!("{TABLE}_due")), "{plan}");
    for scan in ["Seq Scan", "Sort", "TEMP B-TREE"] {
        assert!(!plan.contains(scan), "{scan} in the claim's plan:\n{plan}");
    }
    let handler = Recorder::default();
    assert_eq!(timers.fire_due(&handler).await.unwrap(), 20);
}

/// Records when it was called, on its clock.
struct Stamp {
    clock: Clock,
    at: Mutex<Option<i64>>,
}

#[async_trait::async_trait]
impl TimerHandler for Stamp {
    async fn fire(&self, _: &Timer) -> Result<(), String> {
        *self.at.lock().await = Some(self.clock.now_ms());
        Ok(())
    }
}

/// On the system clock, a timer another replica scheduled (so nobody wakes this runner)
/// fires within a second of its due time: the runner looks again every `poll`.
#[tokio::test]
async fn a_timer_fires_within_a_second_in_real_time() {
    let (_guard, db) = database().await;
    let clock = Clock::system();
    let handler = Arc::new(Stamp {
        clock: clock.clone(),
        at: Mutex::new(None),
    });
    let shutdown = CancellationToken::new();
    timers(&db, "runner", &clock).start(handler.clone(), shutdown.clone());
    let other = timers(&db, "other", &clock);
    let due = clock.now_ms() + 200;
    let txn = db.begin().await.unwrap();
    other.schedule(&txn, "soon", due, Vec::new()).await.unwrap();
    txn.commit().await.unwrap();
    // Due, or committed if the commit took longer: the runner cannot see it before.
    let visible = due.max(clock.now_ms());
    wait_until("the timer", || async { handler.at.lock().await.is_some() }).await;
    let fired = handler.at.lock().await.unwrap();
    assert!(
        fired - visible < 1_000,
        "fired {} ms after it was due",
        fired - visible
    );
    shutdown.cancel();
}
