//! The physical limit batched ingest is measured against: the rows ingest stores for a
//! batch (the `ingest_records` shape, with the encoded event as the body) written into a
//! bare table of the same database by multi-row INSERTs of `--batch-size` rows, one
//! transaction each, from `--batch-concurrency` tasks. No Herald: no dedupe, no outbox, no
//! RPC. The same connection settings as the services (`herald_storage::connect`).

use anyhow::Context;
use prost::Message;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};

use crate::args::Settings;
use crate::fleet::Fleet;
use crate::load::{LoadResult, Window, closed_loop};

const TABLE: &str = "bench_raw_records";
const COLUMNS: usize = 8;

/// Rows per second the bare table took.
pub async fn measure(fleet: &Fleet, s: &Settings) -> anyhow::Result<LoadResult> {
    let url = match fleet.database_url() {
        Some(url) => url.to_owned(),
        None => format!("sqlite://{}?mode=rwc", fleet.dir().join("raw.db").display()),
    };
    let db = herald_storage::connect(&url)
        .await
        .context("connect for the raw-insert baseline")?;
    let blob = match db.get_database_backend() {
        DbBackend::Postgres => "BYTEA",
        _ => "BLOB",
    };
    db.execute_unprepared(&format!(
        "CREATE TABLE {TABLE} (workspace_id TEXT NOT NULL, message_id TEXT NOT NULL, \
         kind SMALLINT NOT NULL, user_id TEXT NOT NULL, name TEXT NOT NULL, \
         occurred_at BIGINT NOT NULL, received_at BIGINT NOT NULL, body {blob} NOT NULL, \
         PRIMARY KEY (workspace_id, message_id))"
    ))
    .await
    .context("create the raw-insert table")?;
    let size = s.batch_size as u64;
    let sql = insert_sql(db.get_database_backend(), s.batch_size);
    let result = {
        let db = db.clone();
        closed_loop(
            s.batch_concurrency,
            Window::new(s.warmup, s.duration),
            move |task, i| {
                let db: DatabaseConnection = db.clone();
                let values: Vec<Value> = (0..size)
                    .flat_map(|j| {
                        let id = format!("raw-{task}-{i}-{j}");
                        let event = crate::phases::page_view(id.clone(), i * size + j);
                        [
                            Value::from("bench"),
                            Value::from(id),
                            Value::from(1i16),
                            Value::from(event.user_id.clone()),
                            Value::from(event.name.clone()),
                            Value::from(0i64),
                            Value::from(0i64),
                            Value::from(event.encode_to_vec()),
                        ]
                    })
                    .collect();
                let statement =
                    Statement::from_sql_and_values(db.get_database_backend(), sql.clone(), values);
                async move {
                    db.execute_raw(statement)
                        .await
                        .map(|done| done.rows_affected())
                        .map_err(|e| tonic::Status::internal(e.to_string()))
                }
            },
        )
        .await
    };
    db.execute_unprepared(&format!("DROP TABLE {TABLE}"))
        .await
        .context("drop the raw-insert table")?;
    Ok(result)
}

/// `INSERT INTO … VALUES (…), (…)` with `rows` rows of placeholders.
fn insert_sql(backend: DbBackend, rows: usize) -> String {
    let mut n = 0;
    let tuples: Vec<String> = (0..rows)
        .map(|_| {
            let marks: Vec<String> = (0..COLUMNS)
                .map(|_| {
                    n += 1;
                    match backend {
                        DbBackend::Postgres => format!("${n}"),
                        _ => "?".to_owned(),
                    }
                })
                .collect();
            format!("({})", marks.join(", "))
        })
        .collect();
    format!("INSERT INTO {TABLE} VALUES {}", tuples.join(", "))
}
