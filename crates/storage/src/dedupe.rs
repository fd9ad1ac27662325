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

use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, Iterable,
    PrimaryKeyTrait, TryInsertResult,
};

/// Bound parameters per statement, under SQLite's limit (32,766) and PostgreSQL's
/// (65,535).
const MAX_PARAMS: usize = 30_000;

type Key<A> =
    <<<A as ActiveModelTrait>::Entity as EntityTrait>::PrimaryKey as PrimaryKeyTrait>::ValueType;

/// Inserts the `rows` whose primary key is not stored yet and returns the keys of those
/// it inserted. The rows' keys must be distinct (dedupe a batch before calling).
pub async fn insert_fresh<A, C>(db: &C, rows: Vec<A>) -> Result<HashSet<Key<A>>, DbErr>
where
    A: ActiveModelTrait + Send,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
    Key<A>: Eq + Hash,
    C: ConnectionTrait,
{
    let columns = <A::Entity as EntityTrait>::Column::iter().count().max(1);
    let per_statement = (MAX_PARAMS / columns).max(1);
    let mut fresh = HashSet::with_capacity(rows.len());
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(per_statement).collect();
        let inserted = <A::Entity as EntityTrait>::insert_many(chunk)
            .on_conflict_do_nothing()
            .exec_with_returning_keys(db)
            .await?;
        if let TryInsertResult::Inserted(keys) = inserted {
            fresh.extend(keys);
        }
    }
    Ok(fresh)
}
