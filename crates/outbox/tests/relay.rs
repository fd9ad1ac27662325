//! The outbox against a real database (SQLite by default, PostgreSQL with
//! `HERALD_TEST_DATABASE=postgres`): nothing committed is lost when the downstream fails
//! or times out, a relay killed mid-batch resumes, and two replicas never send one item
//! at the same time.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use herald_outbox::{Item, NewItem, Outbox, Settings, Sink, SinkError};
use herald_storage::sea_orm::{DatabaseConnection, TransactionTrait};
use herald_storage::sea_orm_migration::prelude::*;
use herald_storage::testing::TestDatabase;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(herald_outbox::migration("test_outbox"))]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("test_migrations").into_iden()
    }
}

/// A downstream that records what it acknowledged, and can be told to fail, to hang past
/// its deadline, or to hang forever (a process about to be killed).
#[derive(Default)]
struct Downstream {
    received: Mutex<Vec<Item>>,
    in_flight: Mutex<HashSet<i64>>,
    overlaps: AtomicUsize,
    calls: AtomicUsize,
    fail_first: usize,
    time_out_calls: Vec<usize>,
    hang_forever: bool,
    work: Duration,
}

const DEADLINE: Duration = Duration::from_millis(100);

#[async_trait::async_trait]
impl Sink for Downstream {
    async fn send(&self, items: &[Item]) -> Result<(), SinkError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        {
            let mut in_flight = self.in_flight.lock().await;
            for item in items {
                if !in_flight.insert(item.id) {
                    self.overlaps.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        let result = async {
            if self.hang_forever {
                std::future::pending::<()>().await;
            }
            if call < self.fail_first {
                return Err(SinkError::Retryable("unavailable".into()));
            }
            let work = if self.time_out_calls.contains(&call) {
                DEADLINE * 3
            } else {
                self.work
            };
            // The deadline a real gRPC sink carries on every call.
            tokio::time::timeout(DEADLINE, tokio::time::sleep(work))
                .await
                .map_err(|_| SinkError::Retryable("deadline exceeded".into()))?;
            self.received.lock().await.extend(items.iter().cloned());
            Ok(())
        }
        .await;
        let mut in_flight = self.in_flight.lock().await;
        for item in items {
            in_flight.remove(&item.id);
        }
        result
    }
}

fn settings(lease: Duration) -> Settings {
    Settings {
        batch_size: 50,
        memory_capacity: 64,
        lease,
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    }
}

async fn database() -> (TestDatabase, DatabaseConnection) {
    let test_db = TestDatabase::new().await;
    let db = herald_storage::connect_and_migrate::<Migrator>(&test_db.url("outbox"))
        .await
        .unwrap();
    (test_db, db)
}

/// Commits `count` items spread over `users` keys, `per_txn` per transaction; returns the
/// payloads in commit order.
async fn commit_items(
    db: &DatabaseConnection,
    outbox: &Outbox,
    start: usize,
    count: usize,
    users: usize,
    per_txn: usize,
) {
    let mut n = start;
    while n < start + count {
        let txn = db.begin().await.unwrap();
        let items = (n..(n + per_txn).min(start + count))
            .map(|i| NewItem {
                destination: "down",
                key: format!("user-{}", i % users),
                payload: i.to_string().into_bytes(),
                traceparent: None,
            })
            .collect::<Vec<_>>();
        n += items.len();
        let staged = outbox.add(&txn, items).await.unwrap();
        txn.commit().await.unwrap();
        outbox.publish(staged).await;
    }
}

async fn wait_for(downstream: &Downstream, payloads: usize) -> Vec<Item> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let received = downstream.received.lock().await.clone();
        let distinct: HashSet<&Vec<u8>> = received.iter().map(|i| &i.payload).collect();
        if distinct.len() >= payloads {
            return received;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {payloads} items arrived",
            distinct.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_complete_and_ordered(received: &[Item], count: usize) {
    let payloads: HashSet<usize> = received
        .iter()
        .map(|i| {
            String::from_utf8(i.payload.clone())
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(
        payloads,
        (0..count).collect::<HashSet<_>>(),
        "every committed item arrives"
    );
    // Per key, first arrivals come in commit order.
    let mut seen = HashSet::new();
    let mut last: BTreeMap<String, usize> = BTreeMap::new();
    for item in received {
        let n: usize = String::from_utf8(item.payload.clone())
            .unwrap()
            .parse()
            .unwrap();
        if !seen.insert(n) {
            continue;
        }
        if let Some(prev) = last.insert(item.key.clone(), n) {
            assert!(prev < n, "{} arrived after {} for {}", n, prev, item.key);
        }
    }
}

#[tokio::test]
async fn a_failing_or_slow_downstream_loses_nothing() {
    let (_guard, db) = database().await;
    let downstream = Arc::new(Downstream {
        fail_first: 5,
        time_out_calls: vec![6, 7, 9],
        ..Default::default()
    });
    let shutdown = CancellationToken::new();
    let outbox = Outbox::builder(db.clone(), "test_outbox", "replica-a")
        .settings(settings(Duration::from_secs(5)))
        .destination("down", downstream.clone())
        .start(shutdown.clone());

    // More than the in-memory capacity, so the overflow path is exercised too.
    commit_items(&db, &outbox, 0, 400, 7, 9).await;
    let received = wait_for(&downstream, 400).await;
    assert_complete_and_ordered(&received, 400);
    assert!(
        downstream.calls.load(Ordering::SeqCst) > 8,
        "the failures really happened"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        outbox.pending("down").await.unwrap(),
        0,
        "acknowledged items are removed"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn a_relay_killed_mid_batch_resumes_after_restart() {
    let (_guard, db) = database().await;
    let first_life = CancellationToken::new();
    let stuck = Arc::new(Downstream {
        hang_forever: true,
        ..Default::default()
    });
    let outbox = Outbox::builder(db.clone(), "test_outbox", "replica-a")
        .settings(settings(Duration::from_secs(30)))
        .destination("down", stuck.clone())
        .start(first_life.clone());
    commit_items(&db, &outbox, 0, 120, 5, 10).await;
    // Wait until a batch is in flight, then kill the relay.
    while stuck.calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first_life.cancel();
    drop(outbox);
    assert_eq!(stuck.received.lock().await.len(), 0);

    // The same replica comes back (same name): it resumes at once, lease or not.
    let downstream = Arc::new(Downstream::default());
    let second_life = CancellationToken::new();
    let outbox = Outbox::builder(db.clone(), "test_outbox", "replica-a")
        .settings(settings(Duration::from_secs(30)))
        .destination("down", downstream.clone())
        .start(second_life.clone());
    let received = wait_for(&downstream, 120).await;
    assert_complete_and_ordered(&received, 120);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(outbox.pending("down").await.unwrap(), 0);
    second_life.cancel();
}

#[tokio::test]
async fn a_dead_replicas_items_are_taken_over_after_its_lease() {
    let (_guard, db) = database().await;
    let dead = CancellationToken::new();
    let stuck = Arc::new(Downstream {
        hang_forever: true,
        ..Default::default()
    });
    let outbox = Outbox::builder(db.clone(), "test_outbox", "replica-a")
        .settings(settings(Duration::from_millis(500)))
        .destination("down", stuck.clone())
        .start(dead.clone());
    commit_items(&db, &outbox, 0, 60, 3, 6).await;
    dead.cancel();

    let downstream = Arc::new(Downstream::default());
    let alive = CancellationToken::new();
    let _survivor = Outbox::builder(db.clone(), "test_outbox", "replica-b")
        .settings(settings(Duration::from_millis(500)))
        .destination("down", downstream.clone())
        .start(alive.clone());
    let received = wait_for(&downstream, 60).await;
    assert_complete_and_ordered(&received, 60);
    alive.cancel();
}

#[tokio::test]
async fn two_replicas_never_send_an_item_concurrently() {
    let (_guard, db) = database().await;
    let downstream = Arc::new(Downstream {
        work: Duration::from_millis(20),
        fail_first: 3,
        ..Default::default()
    });
    let shutdown = CancellationToken::new();
    // A short lease forces frequent recovery scans on both replicas while they work.
    let a = Outbox::builder(db.clone(), "test_outbox", "replica-a")
        .settings(settings(Duration::from_millis(400)))
        .destination("down", downstream.clone())
        .start(shutdown.clone());
    let b = Outbox::builder(db.clone(), "test_outbox", "replica-b")
        .settings(settings(Duration::from_millis(400)))
        .destination("down", downstream.clone())
        .start(shutdown.clone());
    tokio::join!(
        commit_items(&db, &a, 0, 150, 4, 5),
        commit_items(&db, &b, 150, 150, 4, 5)
    );
    let received = wait_for(&downstream, 300).await;
    let payloads: HashSet<&Vec<u8>> = received.iter().map(|i| &i.payload).collect();
    assert_eq!(payloads.len(), 300);
    assert_eq!(
        downstream.overlaps.load(Ordering::SeqCst),
        0,
        "an item was in flight twice at once"
    );
    shutdown.cancel();
}
