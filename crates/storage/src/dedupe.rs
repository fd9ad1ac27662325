//! The one dedupe primitive: insert the rows whose keys are new, and learn which they
//! were, in one statement.
//!
//! `INSERT … ON CONFLICT (primary key) DO NOTHING RETURNING (primary key)` on both
//! backends. The database probes the primary-key index once per row, so the cost stays
//! the same however many rows the table holds (a `SELECT … WHERE key IN (…)` pre-check
//! can degrade into a scan of the workspace's rows on PostgreSQL), and two transactions
//! racing on one new key need no retry: the second waits for the first and then skips
//! the row.

use std::collections::HashSet;
use std::hash::Hash;

use sea_orm::sea_query::{Iden, Query};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, IntoActiveModel, Iterable,
    PrimaryKeyToColumn, PrimaryKeyTrait, QueryTrait, Statement,
};

/// Bound parameters per statement, under SQLite's limit (32,766) and PostgreSQL's
/// (65,535).
const MAX_PARAMS: usize = 30_000;

type Key<A> =
    <<<A as ActiveModelTrait>::Entity as EntityTrait>::PrimaryKey as PrimaryKeyTrait>::ValueType;

/// How many rows of `A` go into one statement.
pub fn rows_per_statement<A: ActiveModelTrait>() -> usize {
    let columns = <A::Entity as EntityTrait>::Column::iter().count().max(1);
    (MAX_PARAMS / columns).max(1)
}

/// The statement [`insert_fresh`] runs for `rows` (at most [`rows_per_statement`]).
pub fn statement<A>(backend: DbBackend, rows: Vec<A>) -> Statement
where
    A: ActiveModelTrait,
{
    let mut insert = <A::Entity as EntityTrait>::insert_many(rows).on_conflict_do_nothing();
    let keys = <A::Entity as EntityTrait>::PrimaryKey::iter().map(PrimaryKeyToColumn::into_column);
    insert.query().returning(Query::returning().columns(keys));
    insert.build(backend)
}

/// Inserts the `rows` whose primary key is not stored yet and returns the keys of those
/// it inserted. The rows' keys must be distinct (dedupe a batch before calling).
pub async fn insert_fresh<A, C>(db: &C, rows: Vec<A>) -> Result<HashSet<Key<A>>, DbErr>
where
    A: ActiveModelTrait + Send,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
    Key<A>: Eq + Hash,
    C: ConnectionTrait,
{
    let backend = db.get_database_backend();
    let columns: Vec<String> = <A::Entity as EntityTrait>::PrimaryKey::iter()
        .map(|key| key.into_column().to_string())
        .collect();
    let mut fresh = HashSet::with_capacity(rows.len());
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(rows_per_statement::<A>()).collect();
        for row in db.query_all_raw(statement(backend, chunk)).await? {
            fresh.insert(row.try_get_many::<Key<A>>("", &columns)?);
        }
    }
    Ok(fresh)
}
