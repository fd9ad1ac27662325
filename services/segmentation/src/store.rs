//! Per-user state: merged traits and the evaluation profile (series and memberships,
//! `herald_rules::engine::Profile`), deduplicated on the items' ids and committed
//! together with what follows from them: membership rows, the user's timer, and the
//! outbox items that carry events and segment transitions to trigger.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use herald_core::time::ms_of_proto;
use herald_outbox::{NewItem, Outbox, Staged};
use herald_proto::analytics::v1::{Interaction, InteractionKind};
use herald_proto::common::v1::{Event, Identity};
use herald_proto::segmentation::v1::EngagementKind;
use herald_proto::trigger::v1::{
    HandleEventsRequest, HandleSegmentTransitionsRequest, SegmentTransition, TransitionCause,
    TransitionKind, UserEvent,
};
use herald_rules::engine::{Change, Dirty, Engine, Profile};
use herald_rules::series::Series;
use herald_runtime::{Clock, Error};
use herald_timers::Timers;
use prost::Message;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use crate::downstream::{TRANSITIONS, TRIGGER};
use crate::engines::Engines;
use crate::segments::member;
use crate::traits::{self, Version, Versions};

pub mod processed {
    //! One applied event or identity update, by its message_id.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "segmentation_processed")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub message_id: String,
        /// 1 = event, 2 = identity.
        pub kind: i16,
        pub user_id: String,
        pub processed_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod user {
    //! A known user and their merged traits.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "segmentation_users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        /// The merged traits, an encoded `google.protobuf.Struct`; empty for none.
        pub traits: Vec<u8>,
        pub created_at: i64,
        pub updated_at: i64,
        /// When each trait was last written (`traits::Versions`); null for none yet.
        pub trait_versions: Option<Vec<u8>>,
        /// The evaluation profile (`herald_rules::engine::Profile`); null for a user
        /// stored before segments were evaluated (seeded from `segmentation_event_counts`).
        pub profile: Option<Vec<u8>>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod event_count {
    //! How often a user performed one event, and when first and last: what segmentation
    //! kept before profiles. Read once per user, to seed a profile that is still null;
    //! no longer written.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "segmentation_event_counts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub event_name: String,
        pub count: i64,
        pub first_at: i64,
        pub last_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Rows per INSERT, to stay under SQLite's bound-parameter limit.
const CHUNK: usize = 500;

const KIND_EVENT: i16 = 1;
const KIND_IDENTITY: i16 = 2;
const KIND_INTERACTION: i16 = 3;

/// The ledger of applied message ids, and the column retention counts from.
pub const PROCESSED: herald_storage::retention::Ledger = herald_storage::retention::Ledger {
    table: "segmentation_processed",
    time_column: "processed_at",
};

/// What a call did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub applied: u32,
    pub duplicates: u32,
}

/// The items of one call applied for the first time (in request order), their users
/// (created where new, locked), and the call's tally.
struct FirstSeen<'a, T> {
    applied: Applied,
    items: Vec<&'a T>,
    users: BTreeMap<String, UserState>,
}

/// Records the message ids of `items` (the first of each id) as processed, and returns
/// the items seen for the first time with their users.
async fn first_seen<'a, T>(
    txn: &DatabaseTransaction,
    workspace: &str,
    items: &'a [T],
    key: impl Fn(&T) -> (&str, &str),
    kind: i16,
    now: i64,
) -> Result<FirstSeen<'a, T>, Error> {
    let mut unique = HashSet::new();
    let candidates: Vec<&T> = items.iter().filter(|i| unique.insert(key(i).0)).collect();
    let rows = candidates
        .iter()
        .map(|i| {
            let (message_id, user_id) = key(i);
            processed::ActiveModel::from(processed::Model {
                workspace_id: workspace.to_owned(),
                message_id: message_id.to_owned(),
                kind,
                user_id: user_id.to_owned(),
                processed_at: now,
            })
        })
        .collect();
    let fresh_ids = herald_storage::insert_fresh(txn, rows).await?;
    let fresh: Vec<&T> = candidates
        .into_iter()
        .filter(|i| fresh_ids.contains(&(workspace.to_owned(), key(i).0.to_owned())))
        .collect();
    let ids: BTreeSet<&str> = fresh.iter().map(|i| key(i).1).collect();
    let users = if ids.is_empty() {
        BTreeMap::new()
    } else {
        users(txn, workspace, &ids, now).await?
    };
    Ok(FirstSeen {
        applied: Applied {
            applied: fresh.len() as u32,
            duplicates: (items.len() - fresh.len()) as u32,
        },
        items: fresh,
        users,
    })
}

/// An event's message id and user.
fn event_key(e: &Event) -> (&str, &str) {
    (&e.message_id, &e.user_id)
}

/// An identity's message id and user.
fn identity_key(i: &Identity) -> (&str, &str) {
    (&i.message_id, &i.user_id)
}

/// What segmentation needs to apply items: storage, the outbox to trigger, the clock,
/// the compiled segments of each workspace and the users' timers.
#[derive(Clone)]
pub struct Segmenter {
    pub db: DatabaseConnection,
    pub outbox: Outbox,
    pub clock: Clock,
    pub engines: Arc<Engines>,
    pub timers: Timers,
}

/// A call's transaction once its ledger is written: the items applied for the first time
/// (in request order), their users (locked, seeded), the workspace's segments, and the
/// effects collected as users are evaluated.
struct Apply<'a, 'w, T> {
    txn: DatabaseTransaction,
    applied: Applied,
    items: Vec<&'a T>,
    users: BTreeMap<String, UserState>,
    engine: Arc<Engine>,
    effects: Effects<'w>,
    now: i64,
}

impl<'a, 'w, T> Apply<'a, 'w, T> {
    /// Records `items` in the ledger; `Err` with the tally when none is new (nothing to
    /// write, the transaction rolled back).
    async fn begin(
        s: &Segmenter,
        workspace: &'w str,
        items: &'a [T],
        key: impl Fn(&T) -> (&str, &str),
        kind: i16,
    ) -> Result<Result<Self, Applied>, Error> {
        let now = s.clock.now_ms();
        let txn = s.db.begin().await?;
        let FirstSeen {
            applied,
            items,
            mut users,
        } = first_seen(&txn, workspace, items, key, kind, now).await?;
        if items.is_empty() {
            txn.rollback().await?;
            return Ok(Err(applied));
        }
        let engine = s.engines.of(&txn, workspace).await?;
        seed_profiles(&txn, workspace, &mut users).await?;
        Ok(Ok(Apply {
            txn,
            applied,
            items,
            users,
            engine,
            effects: Effects::new(workspace, now),
            now,
        }))
    }

    /// Writes what the evaluation changed and commits; the call's tally.
    async fn commit(self, s: &Segmenter) -> Result<Applied, Error> {
        let written = self.effects.write(&self.txn, s, &self.users).await?;
        written.commit(self.txn, s).await?;
        Ok(self.applied)
    }
}

/// Applies `events` of `workspace`: each new event is counted in its user's profile, the
/// segments that read it are evaluated again, and the event (with the user's segments
/// after it) and any membership changes go to trigger through the outbox, all in one
/// transaction; returns once committed.
pub async fn apply_events(
    s: &Segmenter,
    workspace: &str,
    events: &[Event],
) -> Result<Applied, Error> {
    let mut a = match Apply::begin(s, workspace, events, event_key, KIND_EVENT).await? {
        Ok(a) => a,
        Err(applied) => return Ok(applied),
    };
    let now = a.now;
    for event in &a.items {
        let Some(user) = a.users.get_mut(&event.user_id) else {
            continue;
        };
        let at = event.timestamp.as_ref().map(ms_of_proto).unwrap_or(now);
        let mut dirty = user.dirty(&a.engine);
        a.engine.record_event(
            &mut user.profile,
            &mut dirty,
            &event.name,
            event.properties.as_ref(),
            at,
            now,
        );
        let changes = user.evaluate(&a.engine, dirty, now);
        let zone = event
            .context
            .as_ref()
            .map(|c| c.time_zone.as_str())
            .filter(|z| !z.is_empty());
        a.effects.transitions(
            &s.clock,
            &event.user_id,
            user,
            changes,
            TransitionCause::Event,
            &event.message_id,
            zone,
        );
        a.effects.event(&event.user_id, user, event);
    }
    a.commit(s).await
}

/// Merges `identities` of `workspace` into their users' traits in one transaction, last
/// writer wins per trait by the identity's timestamp, and evaluates again the segments
/// that read a changed trait.
pub async fn apply_identities(
    s: &Segmenter,
    workspace: &str,
    identities: &[Identity],
) -> Result<Applied, Error> {
    let mut a = match Apply::begin(s, workspace, identities, identity_key, KIND_IDENTITY).await? {
        Ok(a) => a,
        Err(applied) => return Ok(applied),
    };
    let now = a.now;
    for identity in &a.items {
        let Some(user) = a.users.get_mut(&identity.user_id) else {
            continue;
        };
        let mut dirty = user.dirty(&a.engine);
        if let Some(update) = &identity.traits {
            let version = Version {
                at_ms: identity.timestamp.as_ref().map(ms_of_proto).unwrap_or(now),
                message_id: identity.message_id.clone(),
            };
            if traits::merge(&mut user.traits, &mut user.versions, update, &version) {
                user.changed = true;
                a.engine
                    .traits_changed(&mut dirty, update.fields.keys().map(String::as_str));
            }
        }
        if dirty.is_empty() {
            continue;
        }
        let changes = user.evaluate(&a.engine, dirty, now);
        a.effects.transitions(
            &s.clock,
            &identity.user_id,
            user,
            changes,
            TransitionCause::Identity,
            &identity.message_id,
            None,
        );
    }
    a.commit(s).await
}

/// The engagement an interaction kind counts as, if any.
fn engagement(kind: i32) -> Option<EngagementKind> {
    match InteractionKind::try_from(kind).ok()? {
        InteractionKind::Delivered => Some(EngagementKind::Received),
        InteractionKind::Impression => Some(EngagementKind::Displayed),
        InteractionKind::Click => Some(EngagementKind::Clicked),
        InteractionKind::Dismissal => Some(EngagementKind::Dismissed),
        InteractionKind::Converted => Some(EngagementKind::Converted),
        _ => None,
    }
}

/// An interaction's id and user.
fn interaction_key(i: &Interaction) -> (&str, &str) {
    (&i.id, &i.user_id)
}

/// Counts `interactions` of `workspace` (delivered, displayed, clicked, dismissed) in
/// their users' engagement series and evaluates again the segments that read them.
pub async fn apply_interactions(
    s: &Segmenter,
    workspace: &str,
    interactions: &[Interaction],
) -> Result<Applied, Error> {
    let begun = Apply::begin(
        s,
        workspace,
        interactions,
        interaction_key,
        KIND_INTERACTION,
    );
    let mut a = match begun.await? {
        Ok(a) => a,
        Err(applied) => return Ok(applied),
    };
    let now = a.now;
    for interaction in &a.items {
        let (Some(user), Some(kind)) = (
            a.users.get_mut(&interaction.user_id),
            engagement(interaction.kind),
        ) else {
            continue;
        };
        let at = interaction.time.as_ref().map(ms_of_proto).unwrap_or(now);
        let mut dirty = user.dirty(&a.engine);
        a.engine.record_interaction(
            &mut user.profile,
            &mut dirty,
            kind,
            &interaction.campaign_id,
            at,
            now,
        );
        let changes = user.evaluate(&a.engine, dirty, now);
        a.effects.transitions(
            &s.clock,
            &interaction.user_id,
            user,
            changes,
            TransitionCause::Interaction,
            &interaction.id,
            None,
        );
    }
    a.commit(s).await
}

/// Evaluates `user_id` of `workspace` at the instant its timer fired: the segments whose
/// answer was due to change, and those that refer to them. A user who is gone is
/// nothing to do.
pub async fn time_passed(s: &Segmenter, workspace: &str, user_id: &str) -> Result<(), Error> {
    let now = s.clock.now_ms();
    let txn = s.db.begin().await?;
    write_first(&txn).await?;
    let mut users = load_users(&txn, workspace, &BTreeSet::from([user_id]), None).await?;
    let Some(user) = users.get_mut(user_id) else {
        txn.rollback().await?;
        return Ok(());
    };
    let engine = s.engines.of(&txn, workspace).await?;
    let mut dirty = user.dirty(&engine);
    engine.time_passed(&mut user.profile, &mut dirty, now);
    let changes = user.evaluate(&engine, dirty, now);
    let mut effects = Effects::new(workspace, now);
    effects.transitions(
        &s.clock,
        user_id,
        user,
        changes,
        TransitionCause::Time,
        "",
        None,
    );
    effects.write(&txn, s, &users).await?.commit(txn, s).await?;
    Ok(())
}

/// Evaluates `segment_id` (and the segments referring to it) for up to `limit` users of
/// `workspace` after `cursor` in user id order, within `txn`, marking the transitions as
/// caused by the backfill. Returns the last user evaluated, how many were, and what to
/// publish once the caller has committed; `None` when no user is left.
pub async fn backfill_batch(
    s: &Segmenter,
    txn: &DatabaseTransaction,
    engine: &Engine,
    workspace: &str,
    segment_id: &str,
    cursor: &str,
    limit: u64,
) -> Result<Option<(String, u64, Written)>, Error> {
    let now = s.clock.now_ms();
    let mut users = load_users(txn, workspace, &BTreeSet::new(), Some((cursor, limit))).await?;
    let Some(last) = users.keys().next_back().cloned() else {
        return Ok(None);
    };
    seed_profiles(txn, workspace, &mut users).await?;
    let mut effects = Effects::new(workspace, now);
    let ids: Vec<String> = users.keys().cloned().collect();
    for id in &ids {
        let Some(user) = users.get_mut(id) else {
            continue;
        };
        let dirty = if user.fresh {
            engine.everything()
        } else {
            engine.segment(segment_id)
        };
        let (fresh, before) = (user.fresh, user.profile.segments.clone());
        let changes = user.evaluate(engine, dirty, now);
        if !fresh && user.profile.segments == before {
            // Neither a membership nor a next change moved: nothing to write.
            user.changed = false;
            continue;
        }
        effects.transitions(
            &s.clock,
            id,
            user,
            changes,
            TransitionCause::Backfill,
            "",
            None,
        );
    }
    let written = effects.write(txn, s, &users).await?;
    Ok(Some((last, ids.len() as u64, written)))
}

/// One user's state during a transaction.
pub struct UserState {
    pub traits: prost_types::Struct,
    versions: Versions,
    pub profile: Profile,
    created_at: i64,
    /// The user's next change by time when loaded, to know whether the timer moves.
    next_before: Option<i64>,
    /// Whether the user has no evaluated profile yet (new, or stored before profiles):
    /// every segment is evaluated for them, not only the ones an arrival touches.
    fresh: bool,
    /// Whether the profile was null in storage, so the old counters seed it.
    unseeded: bool,
    changed: bool,
}

impl UserState {
    /// The segments to evaluate for this user before anything is marked: all of them
    /// for a user never evaluated.
    fn dirty(&self, engine: &Engine) -> Dirty {
        if self.fresh {
            engine.everything()
        } else {
            engine.dirty()
        }
    }

    /// Evaluates the `dirty` segments for this user at `now` (see
    /// [`Engine::evaluate`]); the profile is written with the call.
    fn evaluate(&mut self, engine: &Engine, dirty: Dirty, now: i64) -> Vec<Change> {
        let changes = engine.evaluate(&mut self.profile, Some(&self.traits), dirty, now);
        self.changed = true;
        self.fresh = false;
        changes
    }

    fn time_zone(&self) -> Option<&str> {
        traits::time_zone(&self.traits)
    }
}

/// The users `ids` of `workspace`, created (without traits) where they are new, and
/// locked for update (on PostgreSQL; SQLite serialises writers) in user id order, so
/// that concurrent calls cannot deadlock.
async fn users(
    txn: &DatabaseTransaction,
    workspace: &str,
    ids: &BTreeSet<&str>,
    now: i64,
) -> Result<BTreeMap<String, UserState>, Error> {
    let new = ids.iter().map(|id| {
        user::ActiveModel::from(user::Model {
            workspace_id: workspace.to_owned(),
            user_id: (*id).to_owned(),
            traits: Vec::new(),
            created_at: now,
            updated_at: now,
            trait_versions: None,
            profile: None,
        })
    });
    let created = herald_storage::insert_fresh(txn, new.collect()).await?;
    let mut users = load_users(txn, workspace, ids, None).await?;
    for (_, id) in &created {
        if let Some(user) = users.get_mut(id) {
            // Nothing stored to seed from.
            user.unseeded = false;
        }
    }
    Ok(users)
}

/// On SQLite, takes the database's write lock at the start of `txn` (a write that changes
/// nothing), as a transaction that reads first and writes later fails at once with
/// SQLITE_BUSY when another connection wrote in between (several replicas on one file),
/// instead of waiting its turn. PostgreSQL locks the rows it reads for update instead.
pub(crate) async fn write_first(txn: &DatabaseTransaction) -> Result<(), Error> {
    if txn.get_database_backend() == sea_orm::DbBackend::Sqlite {
        txn.execute_unprepared("UPDATE segmentation_users SET updated_at = updated_at WHERE 0")
            .await?;
    }
    Ok(())
}

/// Locks and loads users of `workspace`: the ones in `ids`, or with `page` the first
/// `limit` after a user id.
async fn load_users(
    txn: &DatabaseTransaction,
    workspace: &str,
    ids: &BTreeSet<&str>,
    page: Option<(&str, u64)>,
) -> Result<BTreeMap<String, UserState>, Error> {
    let mut query = user::Entity::find()
        .filter(user::Column::WorkspaceId.eq(workspace))
        .order_by_asc(user::Column::UserId)
        .lock_exclusive();
    query = match page {
        Some((after, limit)) => query.filter(user::Column::UserId.gt(after)).limit(limit),
        None => query.filter(user::Column::UserId.is_in(ids.iter().copied())),
    };
    let mut users = BTreeMap::new();
    for row in query.all(txn).await? {
        let corrupt = |what: &str, e: prost::DecodeError| {
            Error::corrupt(format!("{what} of user {:?}: {e}", row.user_id))
        };
        let profile = match &row.profile {
            Some(bytes) => Profile::decode(bytes.as_slice()).map_err(|e| corrupt("profile", e))?,
            None => Profile::default(),
        };
        let state = UserState {
            traits: traits::decode(&row.traits).map_err(|e| corrupt("traits", e))?,
            versions: traits::decode_versions(row.trait_versions.as_deref())
                .map_err(|e| corrupt("trait versions", e))?,
            next_before: profile.next_change_ms(),
            profile,
            created_at: row.created_at,
            fresh: row.profile.is_none(),
            unseeded: row.profile.is_none(),
            changed: false,
        };
        users.insert(row.user_id, state);
    }
    Ok(users)
}

/// Seeds the profiles still null in storage with the event counters kept before
/// profiles: all-time totals with first and last occurrence, no minute buckets.
async fn seed_profiles(
    txn: &DatabaseTransaction,
    workspace: &str,
    users: &mut BTreeMap<String, UserState>,
) -> Result<(), Error> {
    let ids: Vec<&str> = users
        .iter()
        .filter(|(_, u)| u.unseeded)
        .map(|(id, _)| id.as_str())
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let rows = event_count::Entity::find()
        .filter(event_count::Column::WorkspaceId.eq(workspace))
        .filter(event_count::Column::UserId.is_in(ids))
        .all(txn)
        .await?;
    for row in rows {
        if let Some(user) = users.get_mut(&row.user_id) {
            user.profile.series.insert(
                herald_rules::eval::event_key(&row.event_name),
                Series::seeded(row.count.max(0) as u64, row.first_at, row.last_at),
            );
        }
    }
    for user in users.values_mut() {
        user.unseeded = false;
    }
    Ok(())
}

/// What a call writes besides the ledger, collected while its users are evaluated.
struct Effects<'w> {
    workspace: &'w str,
    now: i64,
    items: Vec<NewItem>,
    entered: Vec<member::Model>,
    exited: Vec<(String, String)>,
    traceparent: Option<String>,
}

impl<'w> Effects<'w> {
    fn new(workspace: &'w str, now: i64) -> Self {
        Effects {
            workspace,
            now,
            items: Vec::new(),
            entered: Vec::new(),
            exited: Vec::new(),
            traceparent: herald_runtime::telemetry::current_traceparent(),
        }
    }

    /// Records the membership `changes` of one user as rows and transitions for trigger.
    #[allow(clippy::too_many_arguments)]
    fn transitions(
        &mut self,
        clock: &Clock,
        user_id: &str,
        user: &UserState,
        changes: Vec<Change>,
        cause: TransitionCause,
        cause_message_id: &str,
        zone: Option<&str>,
    ) {
        if changes.is_empty() {
            return;
        }
        let segment_ids = user.profile.member_ids();
        let traits = traits::present(&user.traits);
        let time_zone = zone.or(user.time_zone()).unwrap_or_default().to_owned();
        let mut transitions = Vec::with_capacity(changes.len());
        for change in changes {
            if change.entered {
                self.entered.push(member::Model {
                    workspace_id: self.workspace.to_owned(),
                    segment_id: change.segment_id.clone(),
                    user_id: user_id.to_owned(),
                    entered_at: self.now,
                });
            } else {
                self.exited
                    .push((change.segment_id.clone(), user_id.to_owned()));
            }
            transitions.push(SegmentTransition {
                id: herald_core::ids::new_id("str", clock),
                segment_id: change.segment_id,
                user_id: user_id.to_owned(),
                kind: if change.entered {
                    TransitionKind::Entered
                } else {
                    TransitionKind::Exited
                } as i32,
                transition_time: Some(herald_core::time::proto_from_ms(self.now)),
                traits: traits.clone(),
                segment_ids: segment_ids.clone(),
                cause_message_id: cause_message_id.to_owned(),
                time_zone: time_zone.clone(),
                cause: cause as i32,
            });
        }
        let request = HandleSegmentTransitionsRequest {
            workspace_id: self.workspace.to_owned(),
            transitions,
        };
        self.items.push(NewItem {
            destination: TRANSITIONS,
            key: user_id.to_owned(),
            payload: request.encode_to_vec(),
            traceparent: self.traceparent.clone(),
        });
    }

    /// Forwards an event to trigger with its user's traits and segments after it.
    fn event(&mut self, user_id: &str, user: &UserState, event: &Event) {
        let request = HandleEventsRequest {
            workspace_id: self.workspace.to_owned(),
            events: vec![UserEvent {
                event: Some(event.clone()),
                traits: traits::present(&user.traits),
                segment_ids: user.profile.member_ids(),
            }],
        };
        self.items.push(NewItem {
            destination: TRIGGER,
            key: user_id.to_owned(),
            payload: request.encode_to_vec(),
            traceparent: self.traceparent.clone(),
        });
    }

    /// Writes the changed users, their membership rows and timers, and the outbox items,
    /// within `txn`.
    async fn write(
        self,
        txn: &DatabaseTransaction,
        s: &Segmenter,
        users: &BTreeMap<String, UserState>,
    ) -> Result<Written, Error> {
        let rows: Vec<user::ActiveModel> = users
            .iter()
            .filter(|(_, u)| u.changed)
            .map(|(id, u)| {
                user::ActiveModel::from(user::Model {
                    workspace_id: self.workspace.to_owned(),
                    user_id: id.clone(),
                    traits: traits::encode(&u.traits),
                    created_at: u.created_at,
                    updated_at: self.now,
                    trait_versions: Some(u.versions.encode_to_vec()),
                    profile: Some(u.profile.encode_to_vec()),
                })
            })
            .collect();
        for chunk in rows.chunks(CHUNK / 8) {
            user::Entity::insert_many(chunk.to_vec())
                .on_conflict(
                    OnConflict::columns([user::Column::WorkspaceId, user::Column::UserId])
                        .update_columns([
                            user::Column::Traits,
                            user::Column::TraitVersions,
                            user::Column::Profile,
                            user::Column::UpdatedAt,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(txn)
                .await?;
        }
        for (segment_id, user_id) in &self.exited {
            member::Entity::delete_many()
                .filter(member::Column::WorkspaceId.eq(self.workspace))
                .filter(member::Column::SegmentId.eq(segment_id.as_str()))
                .filter(member::Column::UserId.eq(user_id.as_str()))
                .exec(txn)
                .await?;
        }
        let entered: Vec<member::ActiveModel> = self.entered.into_iter().map(Into::into).collect();
        for chunk in entered.chunks(CHUNK / 4) {
            member::Entity::insert_many(chunk.to_vec())
                .on_conflict(
                    OnConflict::columns([
                        member::Column::WorkspaceId,
                        member::Column::SegmentId,
                        member::Column::UserId,
                    ])
                    .update_column(member::Column::EnteredAt)
                    .to_owned(),
                )
                .exec_without_returning(txn)
                .await?;
        }
        let mut schedule = Vec::new();
        let mut timers_moved = false;
        for (id, user) in users.iter().filter(|(_, u)| u.changed) {
            let after = user.profile.next_change_ms();
            if after == user.next_before {
                continue;
            }
            let key = timer_key(self.workspace, id);
            match after {
                Some(due) => schedule.push((key, due, self.workspace.as_bytes().to_vec())),
                None => {
                    s.timers.cancel(txn, &key).await?;
                }
            }
            timers_moved = true;
        }
        if !schedule.is_empty() {
            let timers: Vec<(&str, i64, Vec<u8>)> = schedule
                .iter()
                .map(|(k, due, p)| (k.as_str(), *due, p.clone()))
                .collect();
            s.timers.schedule_many(txn, &timers).await?;
        }
        let staged = s.outbox.add(txn, self.items).await?;
        Ok(Written {
            staged,
            timers_moved,
        })
    }
}

/// What a call wrote, to publish once committed.
pub struct Written {
    staged: Staged,
    timers_moved: bool,
}

impl Written {
    async fn commit(self, txn: DatabaseTransaction, s: &Segmenter) -> Result<(), Error> {
        txn.commit().await?;
        self.publish(s).await;
        Ok(())
    }

    /// Hands the outbox items to the relay and wakes the timer runner; call after the
    /// commit.
    pub async fn publish(self, s: &Segmenter) {
        if self.timers_moved {
            s.timers.notify();
        }
        s.outbox.publish(self.staged).await;
    }
}

/// The key of a user's timer: one per user, at the earliest instant any of their
/// memberships can change by time.
pub fn timer_key(workspace: &str, user_id: &str) -> String {
    format!("{workspace}/{user_id}")
}

/// The user of a timer key scheduled for `workspace` (its payload).
pub fn timer_user<'k>(workspace: &str, key: &'k str) -> Option<&'k str> {
    key.strip_prefix(workspace)?.strip_prefix('/')
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use herald_outbox::{Item, Sink, SinkError};
    use herald_storage::testing::TestDatabase;
    use prost_types::Timestamp;

    use super::*;

    struct Nowhere;

    #[async_trait::async_trait]
    impl Sink for Nowhere {
        async fn send(&self, _: &[Item]) -> Result<(), SinkError> {
            Err(SinkError::Retryable("nowhere".into()))
        }
    }

    fn event(id: &str, name: &str, seconds: i64) -> Event {
        Event {
            message_id: id.into(),
            user_id: "u1".into(),
            name: name.into(),
            timestamp: Some(Timestamp { seconds, nanos: 0 }),
            ..Default::default()
        }
    }

    async fn segmenter(test_db: &TestDatabase) -> (Segmenter, herald_runtime::CancellationToken) {
        let db = herald_storage::connect_and_migrate::<crate::migration::Migrator>(
            &test_db.url("segmentation"),
        )
        .await
        .unwrap();
        let shutdown = herald_runtime::CancellationToken::new();
        let clock = Clock::manual("2026-06-01T00:00:00Z".parse().unwrap());
        let outbox = Outbox::builder(
            db.clone(),
            crate::migration::OUTBOX_TABLE,
            "test",
            clock.clone(),
        )
        .destination(TRIGGER, Arc::new(Nowhere))
        .destination(TRANSITIONS, Arc::new(Nowhere))
        .start(shutdown.clone());
        let timers = Timers::new(
            db.clone(),
            crate::migration::TIMERS_TABLE,
            "test",
            clock.clone(),
            herald_timers::Settings::default(),
        );
        let s = Segmenter {
            db,
            outbox,
            clock,
            engines: Arc::new(Engines::default()),
            timers,
        };
        (s, shutdown)
    }

    async fn profile(s: &Segmenter, user_id: &str) -> Profile {
        let row = user::Entity::find_by_id(("acme".to_owned(), user_id.to_owned()))
            .one(&s.db)
            .await
            .unwrap()
            .unwrap();
        Profile::decode(row.profile.unwrap().as_slice()).unwrap()
    }

    #[tokio::test]
    async fn events_fold_into_the_profile_once_each() {
        let test_db = TestDatabase::new().await;
        let (s, shutdown) = segmenter(&test_db).await;
        let calls = [
            (
                vec![
                    event("m1", "opened", 100),
                    event("m2", "opened", 50),
                    event("m3", "paid", 70),
                ],
                (3, 0),
            ),
            (
                vec![
                    event("m1", "opened", 100),
                    event("m4", "opened", 300),
                    event("m4", "opened", 300),
                ],
                (1, 2),
            ),
        ];
        for (events, (applied, duplicates)) in calls {
            let result = apply_events(&s, "acme", &events).await.unwrap();
            assert_eq!(
                result,
                Applied {
                    applied,
                    duplicates
                }
            );
        }
        let series = profile(&s, "u1").await.series;
        let opened = &series[&herald_rules::eval::event_key("opened")];
        assert_eq!(
            (opened.total, opened.first_ms, opened.last_ms),
            (3, 50_000, 300_000)
        );
        assert_eq!(series[&herald_rules::eval::event_key("paid")].total, 1);
        assert_eq!(s.outbox.pending(TRIGGER).await.unwrap(), 4);
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_user_stored_before_profiles_keeps_their_counts() {
        let test_db = TestDatabase::new().await;
        let (s, shutdown) = segmenter(&test_db).await;
        // A user and counters as the previous version stored them: no profile.
        user::Entity::insert(user::ActiveModel::from(user::Model {
            workspace_id: "acme".into(),
            user_id: "u1".into(),
            traits: Vec::new(),
            created_at: 1,
            updated_at: 1,
            trait_versions: None,
            profile: None,
        }))
        .exec_without_returning(&s.db)
        .await
        .unwrap();
        event_count::Entity::insert(event_count::ActiveModel::from(event_count::Model {
            workspace_id: "acme".into(),
            user_id: "u1".into(),
            event_name: "opened".into(),
            count: 7,
            first_at: 10_000,
            last_at: 20_000,
        }))
        .exec_without_returning(&s.db)
        .await
        .unwrap();
        apply_events(&s, "acme", &[event("m1", "opened", 100)])
            .await
            .unwrap();
        let series = profile(&s, "u1").await.series;
        let opened = &series[&herald_rules::eval::event_key("opened")];
        assert_eq!(
            (opened.total, opened.first_ms, opened.last_ms),
            (8, 10_000, 100_000)
        );
        shutdown.cancel();
    }
}
