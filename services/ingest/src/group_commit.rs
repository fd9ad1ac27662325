//! Group commit: concurrent unary `Track` and `Identify` calls share one transaction.
//!
//! A call queues its record and waits. A writer takes the first queued record and,
//! without waiting any longer, everything else queued by then (at most `MAX_RECORDS`
//! records or `MAX_BYTES` encoded bytes), stores them in one transaction, and answers each
//! caller only after that commit, or with the commit's error: a failed group fails every
//! caller in it, and nothing is acknowledged that is not committed. Under light load a
//! group is one record and costs what a transaction of its own did; under heavy load the
//! records that arrive while one group commits form the next, so commits per second stay
//! bounded by the database while records per commit grow with the load.

use std::sync::Arc;

use herald_outbox::Outbox;
use herald_runtime::error::Message;
use herald_runtime::{Clock, Error};
use sea_orm::DatabaseConnection;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::store::{self, Entry};

/// Records in one group at most.
const MAX_RECORDS: usize = 512;
/// Encoded bytes of the records in one group at most (one record may exceed it alone).
const MAX_BYTES: usize = 4 << 20;

/// The queue of records waiting for a group commit, and its writers.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<Waiting>,
}

/// A record and the caller waiting for its commit.
struct Waiting {
    entry: Entry,
    answer: oneshot::Sender<Result<bool, Error>>,
}

/// What a writer needs to commit a group.
#[derive(Clone)]
struct Store {
    db: DatabaseConnection,
    outbox: Outbox,
    clock: Clock,
}

impl GroupCommit {
    /// Starts `writers` writers, each committing one group at a time. They stop when every
    /// handle is dropped, after answering what was queued.
    pub fn start(db: DatabaseConnection, outbox: Outbox, clock: Clock, writers: usize) -> Self {
        let (queue, receiver) = mpsc::channel(MAX_RECORDS * writers.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        let store = Store { db, outbox, clock };
        for _ in 0..writers.max(1) {
            tokio::spawn(write(receiver.clone(), store.clone()));
        }
        GroupCommit { queue }
    }

    /// Stores `entry` in the next group; true when it was a duplicate. Returns once the
    /// group is committed.
    pub async fn record(&self, entry: Entry) -> Result<bool, Error> {
        let answered = self.enqueue(entry).await?;
        answered.await.map_err(|_| stopped())?
    }

    /// Queues `entry`; the receiver gets the answer once its group is committed.
    async fn enqueue(&self, entry: Entry) -> Result<oneshot::Receiver<Result<bool, Error>>, Error> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Waiting { entry, answer })
            .await
            .map_err(|_| stopped())?;
        Ok(answered)
    }
}

fn stopped() -> Error {
    Error::Unavailable(Box::new(Message(
        "ingest's writers have stopped; retry".into(),
    )))
}

/// One writer: takes a group off the queue, commits it, answers its callers.
async fn write(receiver: Arc<Mutex<mpsc::Receiver<Waiting>>>, store: Store) {
    loop {
        let group = {
            // One writer at a time gathers; the others are committing meanwhile.
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            let mut bytes = first.entry.incoming.encoded_len();
            let mut group = vec![first];
            while group.len() < MAX_RECORDS && bytes < MAX_BYTES {
                match receiver.try_recv() {
                    Ok(next) => {
                        bytes += next.entry.incoming.encoded_len();
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            group
        };
        commit(&store, group).await;
    }
}

async fn commit(store: &Store, group: Vec<Waiting>) {
    let (entries, answers): (Vec<Entry>, Vec<_>) =
        group.into_iter().map(|w| (w.entry, w.answer)).unzip();
    match store::record(&store.db, &store.outbox, &store.clock, &entries).await {
        Ok(outcome) => {
            for (answer, duplicate) in answers.into_iter().zip(outcome.duplicate) {
                // A caller that has gone away (deadline, cancel) is not waiting any more;
                // its record is committed all the same, and a retry is a duplicate.
                let _ = answer.send(Ok(duplicate));
            }
        }
        Err(error) => {
            tracing::warn!(records = answers.len(), error = %herald_runtime::error::chain(&error), "group commit failed");
            for answer in answers {
                let _ = answer.send(Err(copy(&error)));
            }
        }
    }
}

/// The same failure for another caller of the group: same code, same description.
fn copy(error: &Error) -> Error {
    let cause = || Box::new(Message(herald_runtime::error::chain(error)));
    match error {
        Error::Unavailable(_) => Error::Unavailable(cause()),
        Error::Aborted(message) => Error::Aborted(message.clone()),
        _ => Error::Internal(cause()),
    }
}

#[cfg(test)]
impl GroupCommit {
    /// Records queued for a writer, not yet in a group.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }
}

#[cfg(test)]
mod tests {
    use herald_proto::common::v1::Event;
    use herald_runtime::CancellationToken;
    use herald_runtime::ServiceKind;
    use herald_testkit::{Credentials, TestDatabase, wait_until};
    use sea_orm::{ConnectionTrait, DbBackend, TransactionTrait};

    use super::*;
    use crate::downstream::{self, ANALYTICS, SEGMENTATION};
    use crate::migration::{Migrator, OUTBOX_TABLE};
    use crate::store::Incoming;

    fn entry(id: &str, user: &str) -> Entry {
        Entry {
            workspace: "acme".into(),
            incoming: Incoming::Event(Event {
                message_id: id.into(),
                user_id: user.into(),
                name: "signed_up".into(),
                ..Default::default()
            }),
            traceparent: None,
        }
    }

    /// Makes any insert of a record of the user `poison` fail.
    async fn poison(db: &DatabaseConnection) {
        let statements: &[&str] = match db.get_database_backend() {
            DbBackend::Postgres => &[
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN IF NEW.user_id = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; \
                 RETURN NEW; END $$",
                "CREATE TRIGGER poison BEFORE INSERT ON ingest_records \
                 FOR EACH ROW EXECUTE FUNCTION poison()",
            ],
            _ => &["CREATE TRIGGER poison BEFORE INSERT ON ingest_records \
                    WHEN NEW.user_id = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"],
        };
        for statement in statements {
            db.execute_unprepared(statement).await.unwrap();
        }
    }

    async fn stored(db: &DatabaseConnection) -> Vec<String> {
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT message_id FROM ingest_records ORDER BY message_id",
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.try_get("", "message_id").unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_failed_group_fails_every_caller_in_it_and_stores_none_of_it() {
        let test_db = TestDatabase::new().await;
        let url = test_db.url("ingest");
        let db = herald_storage::connect_and_migrate::<Migrator>(&url)
            .await
            .unwrap();
        let mut config = herald_testkit::config(ServiceKind::Ingest, &test_db, &Credentials::new());
        config.segmentation_url = "http://127.0.0.1:1".into();
        config.analytics_url = "http://127.0.0.1:1".into();
        let shutdown = CancellationToken::new();
        let clock = Clock::manual("2026-06-01T12:00:00Z".parse().unwrap());
        let outbox = Outbox::builder(db.clone(), OUTBOX_TABLE, "test", clock.clone())
            .destination(SEGMENTATION, downstream::segmentation(&config).unwrap())
            .destination(ANALYTICS, downstream::analytics(&config).unwrap())
            .start(shutdown.clone());
        let other = herald_storage::connect(&url).await.unwrap();
        poison(&other).await;
        let group = GroupCommit::start(db.clone(), outbox, clock, 1);

        // Another transaction holds the table, so the one writer's first group waits on it
        // while the next records queue up behind it.
        let holder = other.begin().await.unwrap();
        match holder.get_database_backend() {
            DbBackend::Postgres => holder
                .execute_unprepared("LOCK TABLE ingest_records IN SHARE MODE")
                .await
                .unwrap(),
            _ => holder
                .execute_unprepared(
                    "INSERT INTO ingest_records \
                     (workspace_id, message_id, kind, user_id, name, occurred_at, received_at, body) \
                     VALUES ('acme', 'held', 1, 'u', 'x', 0, 0, x'')",
                )
                .await
                .unwrap(),
        };
        let first = group.enqueue(entry("m0", "u0")).await.unwrap();
        wait_until("the writer to take m0", || {
            std::future::ready(group.queued() == 0)
        })
        .await;
        let mut rest = Vec::new();
        for (id, user) in [("m1", "u1"), ("m2", "poison"), ("m3", "u3")] {
            rest.push(group.enqueue(entry(id, user)).await.unwrap());
        }
        assert_eq!(group.queued(), 3, "the writer is held by m0's group");
        holder.rollback().await.unwrap();

        assert!(!first.await.unwrap().unwrap(), "m0 is committed alone");
        for answered in rest {
            let error = answered
                .await
                .unwrap()
                .expect_err("the poisoned group fails");
            assert_eq!(error.code(), tonic::Code::Internal, "{error:?}");
        }
        assert_eq!(stored(&db).await, ["m0"]);
        // The writer goes on with the next group.
        assert!(!group.record(entry("m4", "u4")).await.unwrap());
        assert_eq!(stored(&db).await, ["m0", "m4"]);
        shutdown.cancel();
    }
}
