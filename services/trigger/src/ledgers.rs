//! Users' ledgers (`herald_campaigns::ledger::Ledger`), one row per user, locked for the
//! length of a decision: a second decision for the same user, on this replica or another,
//! waits for the first to commit and then sees what it reserved. That is what makes the
//! attention budget atomic.

use std::collections::{BTreeMap, BTreeSet};

use herald_campaigns::ledger::Ledger;
use herald_runtime::Error;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

pub mod user {
    //! One user's ledger.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "trigger_users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        pub updated_at: i64,
        pub ledger: Vec<u8>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The locked ledgers of some users of one workspace, as read.
pub struct Locked {
    workspace: String,
    read: BTreeMap<String, Vec<u8>>,
    pub ledgers: BTreeMap<String, Ledger>,
}

/// Locks and loads the ledgers of `users` of `workspace` within `txn` (rows are created
/// empty where missing, then locked in user order, so two replicas locking overlapping
/// users never deadlock).
pub async fn lock(
    txn: &DatabaseTransaction,
    workspace: &str,
    users: &BTreeSet<&str>,
    now_ms: i64,
) -> Result<Locked, Error> {
    let mut locked = Locked {
        workspace: workspace.to_owned(),
        read: BTreeMap::new(),
        ledgers: BTreeMap::new(),
    };
    if users.is_empty() {
        return Ok(locked);
    }
    let missing: Vec<user::ActiveModel> = users
        .iter()
        .map(|u| {
            user::ActiveModel::from(user::Model {
                workspace_id: workspace.to_owned(),
                user_id: (*u).to_owned(),
                updated_at: now_ms,
                ledger: Vec::new(),
            })
        })
        .collect();
    herald_storage::insert_fresh(txn, missing).await?;
    let ids: Vec<&str> = users.iter().copied().collect();
    for chunk in ids.chunks(500) {
        let rows = user::Entity::find()
            .filter(user::Column::WorkspaceId.eq(workspace))
            .filter(user::Column::UserId.is_in(chunk.iter().copied()))
            .order_by_asc(user::Column::UserId)
            .lock_exclusive()
            .all(txn)
            .await?;
        for row in rows {
            let ledger = Ledger::decode_from(&row.ledger).map_err(|e| {
                Error::corrupt(format!(
                    "ledger of user {:?} of {workspace:?}: {e}",
                    row.user_id
                ))
            })?;
            locked.ledgers.insert(row.user_id.clone(), ledger);
            locked.read.insert(row.user_id, row.ledger);
        }
    }
    Ok(locked)
}

impl Locked {
    /// The ledger of `user`, which must have been locked.
    pub fn of(&mut self, user: &str) -> Result<&mut Ledger, Error> {
        self.ledgers
            .get_mut(user)
            .ok_or_else(|| Error::internal(format!("the ledger of user {user:?} was not locked")))
    }

    /// Writes back the ledgers that changed (trimmed at `now_ms`).
    pub async fn save(mut self, txn: &DatabaseTransaction, now_ms: i64) -> Result<(), Error> {
        let mut changed = Vec::new();
        for (user_id, ledger) in &mut self.ledgers {
            ledger.trim(now_ms);
            let bytes = ledger.to_bytes();
            if self.read.get(user_id) != Some(&bytes) {
                changed.push(user::ActiveModel::from(user::Model {
                    workspace_id: self.workspace.clone(),
                    user_id: user_id.clone(),
                    updated_at: now_ms,
                    ledger: bytes,
                }));
            }
        }
        for chunk in changed.chunks(200) {
            user::Entity::insert_many(chunk.to_vec())
                .on_conflict(
                    OnConflict::columns([user::Column::WorkspaceId, user::Column::UserId])
                        .update_columns([user::Column::Ledger, user::Column::UpdatedAt])
                        .to_owned(),
                )
                .exec_without_returning(txn)
                .await?;
        }
        Ok(())
    }
}
