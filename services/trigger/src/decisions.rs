//! Recorded decisions, for ExplainDecision: every decision taken when a campaign's trigger
//! matched for a user, with each gate's verdict, kept for `decision_retention_secs`.

use herald_core::{Len, Violations};
use herald_proto::trigger::v1::Decision;
use herald_runtime::Error;
use prost::Message;
use sea_orm::sea_query::Condition;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

pub mod decision {
    //! One recorded decision.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "trigger_decisions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub campaign_id: String,
        pub user_id: String,
        pub decide_ms: i64,
        /// The protobuf-encoded `Decision`.
        pub body: Vec<u8>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The decisions table and the column retention counts from.
pub const RETENTION: herald_storage::retention::Ledger = herald_storage::retention::Ledger {
    table: "trigger_decisions",
    time_column: "decide_ms",
};

const DEFAULT_PAGE: u64 = 20;
const MAX_PAGE: u64 = 100;

/// Inserts `decisions` of `workspace` (each with its id, campaign, user and time set).
pub async fn insert<C: ConnectionTrait>(
    db: &C,
    workspace: &str,
    decisions: &[Decision],
) -> Result<(), Error> {
    let rows: Vec<decision::ActiveModel> = decisions
        .iter()
        .map(|d| {
            decision::ActiveModel::from(decision::Model {
                workspace_id: workspace.to_owned(),
                id: d.id.clone(),
                campaign_id: d.campaign_id.clone(),
                user_id: d.user_id.clone(),
                decide_ms: d
                    .decide_time
                    .as_ref()
                    .map(herald_core::time::ms_of_proto)
                    .unwrap_or_default(),
                body: d.encode_to_vec(),
            })
        })
        .collect();
    for chunk in rows.chunks(200) {
        decision::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

fn encode_token(decide_ms: i64, id: &str) -> String {
    hex::encode(format!("1:{decide_ms}:{id}"))
}

fn decode_token(token: &str) -> Result<(i64, String), Error> {
    let bad = || Error::invalid("page_token", "is not a token returned by ExplainDecision");
    let raw = String::from_utf8(hex::decode(token).map_err(|_| bad())?).map_err(|_| bad())?;
    let mut parts = raw.splitn(3, ':');
    let (Some("1"), Some(ms), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    Ok((ms.parse().map_err(|_| bad())?, id.to_owned()))
}

/// One page of the decisions for `user_id` and `campaign_id`, newest first, and the next
/// page's token. The campaign must exist (NOT_FOUND otherwise).
pub async fn explain(
    db: &DatabaseConnection,
    workspace: &str,
    campaign_id: &str,
    user_id: &str,
    page_size: i32,
    page_token: &str,
) -> Result<(Vec<Decision>, String), Error> {
    let mut out = Violations::new();
    out.text("campaign_id", campaign_id, Len::required(64));
    out.text(
        "user_id",
        user_id,
        Len::required(herald_core::limits::USER_ID),
    );
    if page_size < 0 {
        out.push("page_size", "must not be negative");
    }
    out.finish().map_err(Error::InvalidArgument)?;
    crate::store::get(db, workspace, campaign_id).await?;
    let limit = match page_size {
        0 => DEFAULT_PAGE,
        n => (n as u64).min(MAX_PAGE),
    };
    let mut query = decision::Entity::find()
        .filter(decision::Column::WorkspaceId.eq(workspace))
        .filter(decision::Column::CampaignId.eq(campaign_id))
        .filter(decision::Column::UserId.eq(user_id));
    if !page_token.is_empty() {
        let (ms, id) = decode_token(page_token)?;
        query = query.filter(
            Condition::any().add(decision::Column::DecideMs.lt(ms)).add(
                Condition::all()
                    .add(decision::Column::DecideMs.eq(ms))
                    .add(decision::Column::Id.lt(id)),
            ),
        );
    }
    let rows = query
        .order_by_desc(decision::Column::DecideMs)
        .order_by_desc(decision::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    let more = rows.len() as u64 > limit;
    let mut decisions = Vec::new();
    let mut next = String::new();
    for row in rows.into_iter().take(limit as usize) {
        if more {
            next = encode_token(row.decide_ms, &row.id);
        }
        decisions.push(
            Decision::decode(row.body.as_slice()).map_err(|e| {
                Error::corrupt(format!("decision {:?} of {workspace:?}: {e}", row.id))
            })?,
        );
    }
    Ok((decisions, next))
}
