//! The dedupe primitive against a real database (SQLite by default, PostgreSQL with
//! `HERALD_TEST_DATABASE=postgres`): it reports exactly the new keys, also when calls
//! race, and on PostgreSQL its cost per key stays bounded however many rows of the
//! workspace the table already holds (the plan is pinned by reading its buffers).

use std::collections::HashSet;

use herald_storage::sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait,
};
use herald_storage::testing::{Backend, TestDatabase};
use herald_testkit::wait_until;

mod probe {
    use herald_storage::sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "dedupe_probe")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub message_id: String,
        pub seen_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

struct CreateProbe;

impl herald_storage::sea_orm_migration::MigrationName for CreateProbe {
    fn name(&self) -> &str {
        "m00000000_000000_dedupe_probe"
    }
}

#[herald_storage::sea_orm_migration::async_trait::async_trait]
impl herald_storage::sea_orm_migration::MigrationTrait for CreateProbe {
    async fn up(
        &self,
        manager: &herald_storage::sea_orm_migration::SchemaManager,
    ) -> Result<(), herald_storage::sea_orm_migration::DbErr> {
        use herald_storage::schema::{int64, primary_key, text};
        use herald_storage::sea_orm_migration::prelude::*;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("dedupe_probe"))
                    .col(text("workspace_id", 128))
                    .col(text("message_id", 128))
                    .col(int64("seen_at"))
                    .primary_key(&mut primary_key(&["workspace_id", "message_id"]))
                    .to_owned(),
            )
            .await
    }
}

herald_storage::migrator!(Migrator, "probe_migrations", [CreateProbe]);

async fn database() -> (TestDatabase, DatabaseConnection) {
    let test_db = TestDatabase::new().await;
    let db = herald_storage::connect_and_migrate::<Migrator>(&test_db.url("probe"))
        .await
        .unwrap();
    (test_db, db)
}

fn rows(workspace: &str, ids: impl IntoIterator<Item = String>) -> Vec<probe::ActiveModel> {
    ids.into_iter()
        .map(|message_id| {
            probe::ActiveModel::from(probe::Model {
                workspace_id: workspace.to_owned(),
                message_id,
                seen_at: 0,
            })
        })
        .collect()
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("m{i}")).collect()
}

fn keys(workspace: &str, range: std::ops::Range<usize>) -> HashSet<(String, String)> {
    ids(range)
        .into_iter()
        .map(|id| (workspace.to_owned(), id))
        .collect()
}

#[tokio::test]
async fn only_new_keys_are_inserted_and_reported() {
    let (_guard, db) = database().await;
    let fresh = herald_storage::insert_fresh(&db, rows("acme", ids(0..10)))
        .await
        .unwrap();
    assert_eq!(fresh, keys("acme", 0..10));
    let fresh = herald_storage::insert_fresh(&db, rows("acme", ids(5..15)))
        .await
        .unwrap();
    assert_eq!(fresh, keys("acme", 10..15));
    // Keys are per workspace.
    let fresh = herald_storage::insert_fresh(&db, rows("globex", ids(0..3)))
        .await
        .unwrap();
    assert_eq!(fresh, keys("globex", 0..3));
    // More rows than one statement takes.
    let many = 0..(herald_storage::dedupe::rows_per_statement::<probe::ActiveModel>() + 7);
    let fresh = herald_storage::insert_fresh(&db, rows("big", ids(many.clone())))
        .await
        .unwrap();
    assert_eq!(fresh.len(), many.len());
}

#[tokio::test]
async fn racing_transactions_each_get_a_disjoint_share() {
    let (_guard, db) = database().await;
    let attempts = (0..4).map(|_| {
        let db = db.clone();
        async move {
            let txn = db.begin().await.unwrap();
            let fresh = herald_storage::insert_fresh(&txn, rows("acme", ids(0..200)))
                .await
                .unwrap();
            txn.commit().await.unwrap();
            fresh
        }
    });
    let results = futures::future::join_all(attempts).await;
    let total: usize = results.iter().map(HashSet::len).sum();
    assert_eq!(total, 200, "every key is new for exactly one transaction");
    let union: HashSet<_> = results.into_iter().flatten().collect();
    assert_eq!(union, keys("acme", 0..200));
}

/// Shared buffers (hit and read) the statement touched, from `EXPLAIN (ANALYZE, BUFFERS)`.
async fn buffers(db: &DatabaseConnection, statement: Statement) -> i64 {
    let explain = Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {}", statement.sql),
        statement.values.map(|v| v.0).unwrap_or_default(),
    );
    let txn = db.begin().await.unwrap();
    let row = txn.query_one_raw(explain).await.unwrap().unwrap();
    // EXPLAIN ANALYZE runs the insert: roll it back.
    txn.rollback().await.unwrap();
    let plan: serde_json::Value = row.try_get_by_index(0).unwrap();
    let top = &plan[0]["Plan"];
    top["Shared Hit Blocks"].as_i64().unwrap() + top["Shared Read Blocks"].as_i64().unwrap()
}

#[tokio::test]
async fn on_postgresql_the_cost_per_key_does_not_grow_with_the_workspace() {
    let (test_db, db) = database().await;
    if test_db.backend() != Backend::Postgres {
        eprintln!("skipped: the plan is PostgreSQL's; run with HERALD_TEST_DATABASE=postgres");
        return;
    }
    // A workspace with a long history.
    db.execute_unprepared(
        "INSERT INTO dedupe_probe (workspace_id, message_id, seen_at) \
         SELECT 'acme', 'old-' || g, g FROM generate_series(1, 50000) AS g",
    )
    .await
    .unwrap();
    db.execute_unprepared("ANALYZE dedupe_probe").await.unwrap();
    let batch: Vec<String> = (0..100)
        .map(|i| {
            if i % 2 == 0 {
                format!("old-{}", i * 400 + 1)
            } else {
                format!("new-{i}")
            }
        })
        .collect();
    let touched = buffers(
        &db,
        herald_storage::dedupe::statement(DbBackend::Postgres, rows("acme", batch)),
    )
    .await;
    let per_key = touched as f64 / 100.0;
    println!(
        "{touched} buffers for 100 keys ({per_key:.1} per key) over 50,000 rows of the workspace"
    );
    // An index probe per key, and a heap and an index insert for the new ones: a handful
    // of pages, never a scan of the workspace's rows (which would read hundreds).
    assert!(per_key <= 12.0, "{per_key:.1} buffers per key");
    let one = buffers(
        &db,
        herald_storage::dedupe::statement(DbBackend::Postgres, rows("acme", vec!["old-7".into()])),
    )
    .await;
    assert!(one <= 12, "{one} buffers for one key");
}

const LEDGER: herald_storage::retention::Ledger = herald_storage::retention::Ledger {
    table: "dedupe_probe",
    time_column: "seen_at",
};

async fn count(db: &DatabaseConnection) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM dedupe_probe",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

#[tokio::test]
async fn ledger_entries_past_retention_are_purged_on_the_clock() {
    use std::time::Duration;
    let (_guard, db) = database().await;
    let clock = herald_core::Clock::manual("2026-06-01T00:00:00Z".parse().unwrap());
    let t0 = clock.now_ms();
    // More old entries than one delete takes, and some young ones.
    let mut entries = rows("acme", ids(0..12_000));
    for row in &mut entries {
        row.seen_at = herald_storage::sea_orm::Set(t0 - 1);
    }
    entries.extend(
        rows("acme", (0..10).map(|i| format!("young-{i}")))
            .into_iter()
            .map(|mut r| {
                r.seen_at = herald_storage::sea_orm::Set(t0 + 3_600_000);
                r
            }),
    );
    herald_storage::insert_fresh(&db, entries).await.unwrap();

    let shutdown = tokio_util::sync::CancellationToken::new();
    herald_storage::retention::spawn_cleanup_on(
        db.clone(),
        vec![LEDGER],
        Duration::from_secs(3600),
        clock.clone(),
        shutdown.clone(),
    );
    // Nothing is an hour old yet.
    assert_eq!(
        herald_storage::retention::purge(&db, LEDGER, t0 - 3_600_000)
            .await
            .unwrap(),
        0
    );
    // Two hours on, the hourly cleanup removes what is older than an hour, young or not.
    clock.advance(Duration::from_secs(2 * 3600));
    wait_until("the cleanup to leave the 10 young rows", || async {
        count(&db).await == 10
    })
    .await;
    shutdown.cancel();
}
