//! Backfill: after a segment is created or its rule changes, every known user is
//! evaluated for it, in user id order, a batch per transaction. Progress (users evaluated
//! of the total counted at the start, and the last user id) is committed with each batch,
//! so a restart resumes where it stopped, and transitions it causes are marked
//! `TRANSITION_CAUSE_BACKFILL`.
//!
//! Any replica may run a backfill. A batch writes its progress only if the segment is
//! still at the rule version and cursor the batch started from, so two replicas working
//! on one segment, or a rule changed mid-way, never commit a batch twice or mix rules: the
//! loser's transaction, evaluation included, rolls back.

use std::sync::Arc;
use std::time::Duration;

use herald_runtime::{CancellationToken, Error};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use tokio::sync::Notify;

use crate::segments::{BACKFILL_DONE, BACKFILL_PENDING, BACKFILL_RUNNING, segment};
use crate::store::{self, Segmenter, user};

/// Users evaluated per transaction.
pub const BATCH: u64 = 500;

/// How often to look for backfills other replicas left pending or unfinished.
const POLL: Duration = Duration::from_secs(5);

/// Runs backfills until `shutdown`: whenever `wake` is notified (a segment was created or
/// changed here), and every few seconds for work left by other replicas or a restart.
pub async fn run(s: Segmenter, wake: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        match next(&s).await {
            Ok(Some(target)) => {
                if let Err(e) = backfill(&s, &target, &shutdown).await {
                    tracing::warn!(
                        workspace = %target.workspace_id,
                        segment = %target.segment_id,
                        error = %e,
                        "segment backfill failed; retrying"
                    );
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not look for segment backfills"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// The unfinished backfill that started first.
async fn next(s: &Segmenter) -> Result<Option<segment::Model>, Error> {
    Ok(segment::Entity::find()
        .filter(segment::Column::BackfillState.ne(BACKFILL_DONE))
        .order_by_asc(segment::Column::BackfillStartedAt)
        .one(&s.db)
        .await?)
}

/// Runs the backfill of `target` to its end, or until its rule changes, it is deleted,
/// or `shutdown`.
async fn backfill(
    s: &Segmenter,
    target: &segment::Model,
    shutdown: &CancellationToken,
) -> Result<(), Error> {
    let (workspace, id, version) = (
        target.workspace_id.as_str(),
        target.segment_id.as_str(),
        target.rule_version,
    );
    let mut cursor = target.backfill_cursor.clone();
    if target.backfill_state == BACKFILL_PENDING {
        let total = user::Entity::find()
            .filter(user::Column::WorkspaceId.eq(workspace))
            .count(&s.db)
            .await?;
        let started = progress(target, &cursor)
            .col_expr(
                segment::Column::BackfillState,
                Expr::value(BACKFILL_RUNNING),
            )
            .col_expr(segment::Column::BackfillTotal, Expr::value(total as i64))
            .exec(&s.db)
            .await?;
        if started.rows_affected == 0 {
            return Ok(());
        }
        tracing::info!(
            workspace,
            segment = id,
            users = total,
            "segment backfill started"
        );
    }
    while !shutdown.is_cancelled() {
        let txn = s.db.begin().await?;
        store::write_first(&txn).await?;
        let engine = s.engines.of(&txn, workspace).await?;
        let batch = store::backfill_batch(s, &txn, &engine, workspace, id, &cursor, BATCH).await?;
        let now = s.clock.now_ms();
        let Some((last, evaluated, written)) = batch else {
            let finished = progress(target, &cursor)
                .col_expr(segment::Column::BackfillState, Expr::value(BACKFILL_DONE))
                .col_expr(segment::Column::BackfillFinishedAt, Expr::value(Some(now)))
                .exec(&txn)
                .await?;
            txn.commit().await?;
            if finished.rows_affected > 0 {
                tracing::info!(workspace, segment = id, version, "segment backfill done");
            }
            return Ok(());
        };
        let moved = progress(target, &cursor)
            .col_expr(segment::Column::BackfillCursor, Expr::value(last.clone()))
            .col_expr(
                segment::Column::BackfillDone,
                Expr::col(segment::Column::BackfillDone).add(Expr::val(evaluated as i64)),
            )
            .exec(&txn)
            .await?;
        if moved.rows_affected == 0 {
            // The rule changed, the segment is gone, or another replica took this batch.
            txn.rollback().await?;
            return Ok(());
        }
        txn.commit().await?;
        written.publish(s).await;
        cursor = last;
    }
    Ok(())
}

/// An update of `target`'s backfill columns that applies only while the segment is at
/// the rule version the backfill started with and at `cursor`.
fn progress(target: &segment::Model, cursor: &str) -> sea_orm::UpdateMany<segment::Entity> {
    segment::Entity::update_many()
        .filter(segment::Column::WorkspaceId.eq(target.workspace_id.as_str()))
        .filter(segment::Column::SegmentId.eq(target.segment_id.as_str()))
        .filter(segment::Column::RuleVersion.eq(target.rule_version))
        .filter(segment::Column::BackfillCursor.eq(cursor))
}
