//! The outbox against a real database (SQLite by default, PostgreSQL with
//! `HERALD_TEST_DATABASE=postgres`): nothing committed is lost when the downstream fails
//! or times out, a relay killed mid-batch resumes, a dead replica's items are taken over
//! once its lease has passed on the clock, two replicas never send one item at the same
//! time, an item that can never be accepted is parked at once without holding up the
//! rest, and retries are bounded.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use herald_core::Clock;
use herald_outbox::{Item, NewItem, Outbox, Settings, Sink, SinkError};
use herald_storage::sea_orm::{DatabaseConnection, TransactionTrait};
use herald_storage::testing::TestDatabase;
use herald_testkit::wait_until;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

herald_storage::migrator!(
    Migrator,
    "test_migrations",
    [herald_outbox::migration("test_outbox")]
);

const TABLE: &str = "test_outbox";

/// A downstream that records what it acknowledged, and can be told to fail, to hang past
/// its deadline, to hang forever (a process about to be killed), or to refuse poison.
#[derive(Default)]
struct Downstream {
    received: Mutex<Vec<Item>>,
    in_flight: Mutex<HashSet<i64>>,
    overlaps: AtomicUsize,
    calls: AtomicUsize,
    /// How many calls carried each item, by id.
    attempts: Mutex<HashMap<i64, usize>>,
    fail_first: usize,
    fail_always: bool,
    time_out_calls: Vec<usize>,
    hang_forever: bool,
    work: Duration,
    /// Payloads containing "poison" are refused for good while this is set.
    refuse_poison: AtomicBool,
}

const DEADLINE: Duration = Duration::from_millis(100);

#[async_trait::async_trait]
impl Sink for Downstream {
    async fn send(&self, items: &[Item]) -> Result<(), SinkError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        {
            let mut attempts = self.attempts.lock().await;
            for item in items {
                *attempts.entry(item.id).or_default() += 1;
            }
        }
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
            if self.fail_always || call < self.fail_first {
                return Err(SinkError::Retryable("unavailable".into()));
            }
            if self.refuse_poison.load(Ordering::SeqCst)
                && items.iter().any(|i| i.payload.starts_with(b"poison"))
            {
                return Err(SinkError::from(tonic::Status::internal("corrupt row")));
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
        // A few items' worth, so the overflow path (relaying from the table) runs too.
        memory_bytes: 2_000,
        lease,
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..Settings::default()
    }
}

async fn database() -> (TestDatabase, DatabaseConnection) {
    let test_db = TestDatabase::new().await;
    let db = herald_storage::connect_and_migrate::<Migrator>(&test_db.url("outbox"))
        .await
        .unwrap();
    (test_db, db)
}

fn start(
    db: &DatabaseConnection,
    owner: &str,
    clock: &Clock,
    settings: Settings,
    sink: Arc<Downstream>,
    shutdown: &CancellationToken,
) -> Outbox {
    Outbox::builder(db.clone(), TABLE, owner, clock.clone())
        .settings(settings)
        .destination("down", sink)
        .start(shutdown.clone())
}

/// Commits the payloads `payloads` over `users` keys, `per_txn` per transaction.
async fn commit(
    db: &DatabaseConnection,
    outbox: &Outbox,
    payloads: &[String],
    users: usize,
    per_txn: usize,
) {
    for (t, chunk) in payloads.chunks(per_txn).enumerate() {
        let txn = db.begin().await.unwrap();
        let items = chunk
            .iter()
            .enumerate()
            .map(|(i, p)| NewItem {
                destination: "down",
                key: format!("user-{}", (t * per_txn + i) % users),
                payload: p.clone().into_bytes(),
                traceparent: None,
            })
            .collect();
        let staged = outbox.add(&txn, items).await.unwrap();
        txn.commit().await.unwrap();
        outbox.publish(staged).await;
    }
}

fn numbers(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| n.to_string()).collect()
}

async fn wait_for(downstream: &Downstream, payloads: usize) -> Vec<Item> {
    wait_until(&format!("{payloads} distinct items downstream"), || async {
        let received = downstream.received.lock().await;
        received
            .iter()
            .map(|i| &i.payload)
            .collect::<HashSet<_>>()
            .len()
            >= payloads
    })
    .await;
    downstream.received.lock().await.clone()
}

async fn wait_until_empty(outbox: &Outbox) {
    wait_until("the outbox to be empty", || async {
        outbox.pending("down").await.unwrap() == 0
    })
    .await;
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
            assert!(prev < n, "{n} arrived after {prev} for {}", item.key);
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
    let outbox = start(
        &db,
        "replica-a",
        &Clock::system(),
        settings(Duration::from_secs(5)),
        downstream.clone(),
        &shutdown,
    );
    // Far more than the in-memory budget, so the overflow path is exercised too.
    commit(&db, &outbox, &numbers(0..400), 7, 9).await;
    let received = wait_for(&downstream, 400).await;
    assert_complete_and_ordered(&received, 400);
    assert!(
        downstream.calls.load(Ordering::SeqCst) > 8,
        "the failures really happened"
    );
    wait_until_empty(&outbox).await;
    assert_eq!(outbox.parked("down").await.unwrap(), 0);
    shutdown.cancel();
}

#[tokio::test]
async fn a_relay_killed_mid_batch_resumes_after_restart() {
    let (_guard, db) = database().await;
    let clock = Clock::system();
    let first_life = CancellationToken::new();
    let stuck = Arc::new(Downstream {
        hang_forever: true,
        ..Default::default()
    });
    let outbox = start(
        &db,
        "replica-a",
        &clock,
        settings(Duration::from_secs(30)),
        stuck.clone(),
        &first_life,
    );
    commit(&db, &outbox, &numbers(0..120), 5, 10).await;
    // Wait until a batch is in flight, then kill the relay.
    wait_until("a batch in flight", || async {
        stuck.calls.load(Ordering::SeqCst) > 0
    })
    .await;
    first_life.cancel();
    drop(outbox);
    assert_eq!(stuck.received.lock().await.len(), 0);

    // The same replica comes back (same name): it resumes at once, lease or not.
    let downstream = Arc::new(Downstream::default());
    let second_life = CancellationToken::new();
    let outbox = start(
        &db,
        "replica-a",
        &clock,
        settings(Duration::from_secs(30)),
        downstream.clone(),
        &second_life,
    );
    let received = wait_for(&downstream, 120).await;
    assert_complete_and_ordered(&received, 120);
    wait_until_empty(&outbox).await;
    second_life.cancel();
}

#[tokio::test]
async fn a_dead_replicas_items_are_taken_over_once_its_lease_has_passed() {
    let (_guard, db) = database().await;
    let clock = Clock::manual("2026-06-01T00:00:00Z".parse().unwrap());
    let lease = Duration::from_secs(30);
    let dead = CancellationToken::new();
    let stuck = Arc::new(Downstream {
        hang_forever: true,
        ..Default::default()
    });
    let outbox = start(
        &db,
        "replica-a",
        &clock,
        settings(lease),
        stuck.clone(),
        &dead,
    );
    commit(&db, &outbox, &numbers(0..60), 3, 6).await;
    dead.cancel();

    let downstream = Arc::new(Downstream::default());
    let alive = CancellationToken::new();
    let survivor = start(
        &db,
        "replica-b",
        &clock,
        settings(lease),
        downstream.clone(),
        &alive,
    );
    // Replica A's lease still holds: B leaves its rows alone, however long it looks.
    assert_eq!(survivor.pending("down").await.unwrap(), 60);
    assert!(downstream.received.lock().await.is_empty());
    // Once the lease has passed on the clock, B's next scan takes them over.
    clock.advance(lease + Duration::from_millis(1));
    let received = wait_for(&downstream, 60).await;
    assert_complete_and_ordered(&received, 60);
    alive.cancel();
}

#[tokio::test]
async fn two_replicas_never_send_an_item_concurrently() {
    let (_guard, db) = database().await;
    let clock = Clock::system();
    let downstream = Arc::new(Downstream {
        work: Duration::from_millis(20),
        fail_first: 3,
        ..Default::default()
    });
    let shutdown = CancellationToken::new();
    // A short lease forces frequent recovery scans on both replicas while they work.
    let a = start(
        &db,
        "replica-a",
        &clock,
        settings(Duration::from_millis(400)),
        downstream.clone(),
        &shutdown,
    );
    let b = start(
        &db,
        "replica-b",
        &clock,
        settings(Duration::from_millis(400)),
        downstream.clone(),
        &shutdown,
    );
    let (first, second) = (numbers(0..150), numbers(150..300));
    tokio::join!(
        commit(&db, &a, &first, 4, 5),
        commit(&db, &b, &second, 4, 5)
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

#[tokio::test]
async fn an_item_that_can_never_be_accepted_is_parked_at_once_and_replayed_on_demand() {
    let (_guard, db) = database().await;
    let clock = Clock::manual("2026-06-01T00:00:00Z".parse().unwrap());
    let downstream = Arc::new(Downstream::default());
    downstream.refuse_poison.store(true, Ordering::SeqCst);
    let shutdown = CancellationToken::new();
    let outbox = start(
        &db,
        "replica-a",
        &clock,
        settings(Duration::from_secs(30)),
        downstream.clone(),
        &shutdown,
    );
    let mut payloads = numbers(0..40);
    payloads[10] = "poison".into();
    commit(&db, &outbox, &payloads, 1, 5).await;
    // Everything behind the poison arrives; the poison is parked, not retried forever.
    let received = wait_for(&downstream, 39).await;
    assert!(received.iter().all(|i| i.payload != b"poison"));
    wait_until("the poison to be parked", || async {
        outbox.parked("down").await.unwrap() == 1 && outbox.pending("down").await.unwrap() == 0
    })
    .await;
    let parked = herald_outbox::admin::list_parked(&db, TABLE, 10, clock.clone())
        .await
        .unwrap();
    assert_eq!(parked.len(), 1);
    assert!(parked[0].last_error.contains("Internal"), "{:?}", parked[0]);

    // The receiver is fixed; an operator replays the item and it goes through.
    downstream.refuse_poison.store(false, Ordering::SeqCst);
    let replayed = herald_outbox::admin::replay(&db, TABLE, None, clock.clone())
        .await
        .unwrap();
    assert_eq!(replayed, 1);
    // The relay takes replayed items at its next scan, once a lease.
    clock.advance(Duration::from_secs(30));
    let received = wait_for(&downstream, 40).await;
    assert!(received.iter().any(|i| i.payload == b"poison"));
    wait_until_empty(&outbox).await;
    assert_eq!(outbox.parked("down").await.unwrap(), 0);
    shutdown.cancel();
}

#[tokio::test]
async fn retries_are_bounded_by_attempts() {
    let (_guard, db) = database().await;
    let downstream = Arc::new(Downstream {
        fail_always: true,
        ..Default::default()
    });
    let shutdown = CancellationToken::new();
    let outbox = start(
        &db,
        "replica-a",
        &Clock::system(),
        Settings {
            max_attempts: 3,
            ..settings(Duration::from_secs(30))
        },
        downstream.clone(),
        &shutdown,
    );
    commit(&db, &outbox, &numbers(0..5), 2, 5).await;
    wait_until("the items to run out of attempts", || async {
        outbox.parked("down").await.unwrap() == 5
    })
    .await;
    assert_eq!(outbox.pending("down").await.unwrap(), 0);
    // However the relay split them into calls, each item was tried three times.
    let attempts = downstream.attempts.lock().await.clone();
    assert_eq!(attempts.len(), 5, "{attempts:?}");
    assert!(
        attempts.values().all(|n| *n == 3),
        "three attempts each, then parked: {attempts:?}"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn retries_are_bounded_by_age_on_the_clock() {
    let (_guard, db) = database().await;
    let clock = Clock::manual("2026-06-01T00:00:00Z".parse().unwrap());
    let downstream = Arc::new(Downstream {
        fail_always: true,
        ..Default::default()
    });
    let shutdown = CancellationToken::new();
    let outbox = start(
        &db,
        "replica-a",
        &clock,
        Settings {
            max_age: Duration::from_secs(3600),
            ..settings(Duration::from_secs(30))
        },
        downstream.clone(),
        &shutdown,
    );
    commit(&db, &outbox, &numbers(0..3), 1, 3).await;
    wait_until("a few retries", || async {
        downstream.calls.load(Ordering::SeqCst) >= 3
    })
    .await;
    assert_eq!(
        outbox.parked("down").await.unwrap(),
        0,
        "young items keep being retried"
    );
    clock.advance(Duration::from_secs(3600));
    wait_until("the items to age out", || async {
        outbox.parked("down").await.unwrap() == 3
    })
    .await;
    shutdown.cancel();
}
