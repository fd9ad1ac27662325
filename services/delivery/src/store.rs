//! Durable messages, the idempotency ledger and preferences, each state change committed
//! together with the outbox items that report it to analytics (and, for the engagement
//! segments can name, to segmentation).

use std::collections::{HashMap, HashSet};

use herald_core::time::{ms_of_proto, proto_from_ms};
use herald_outbox::{NewItem, Outbox};
use herald_proto::analytics::v1::{Interaction, InteractionKind, RecordInteractionsRequest};
use herald_proto::common::v1::{Channel, MessageContent, MessageState, message_content};
use herald_proto::delivery::v1::{Delivery, DeliveryOutcome, DeliveryResult, Message, Preferences};
use herald_runtime::{Clock, Error};
use herald_timers::Timers;
use prost::Message as _;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};

use crate::downstream::{ANALYTICS, SEGMENTATION, segmentation_wants};
use crate::hold;
use crate::push::{self, Providers};

pub mod message {
    //! One message delivered to one user on one channel.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "delivery_messages")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub workspace_id: String,
        pub user_id: String,
        pub idempotency_key: String,
        pub campaign_id: String,
        pub variant_id: String,
        /// `herald.common.v1.Channel`.
        pub channel: i16,
        /// The protobuf-encoded `MessageContent`.
        pub content: Vec<u8>,
        /// The resolved channel address (email, phone, push token); empty for in-app.
        pub address: String,
        /// `herald.common.v1.MessageState`.
        pub state: i16,
        pub priority: i32,
        pub category: String,
        pub create_time: i64,
        pub update_time: i64,
        pub expire_time: Option<i64>,
        pub display_time: Option<i64>,
        pub click_time: Option<i64>,
        pub dismiss_time: Option<i64>,
        pub read_time: Option<i64>,
        pub archive_time: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod result {
    //! The idempotency ledger: what became of each delivery key.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "delivery_results")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub idempotency_key: String,
        /// Empty unless the outcome is ACCEPTED.
        pub message_id: String,
        /// `herald.delivery.v1.DeliveryOutcome`.
        pub outcome: i16,
        pub create_time: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod preference {
    //! One user's notification preferences.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "delivery_preferences")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        /// The protobuf-encoded `Preferences`.
        pub body: Vec<u8>,
        pub update_time: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

const IN_APP: i16 = Channel::InApp as i16;
const PUSH: i16 = Channel::Push as i16;
const PENDING: i16 = MessageState::Pending as i16;
const DELIVERED: i16 = MessageState::Delivered as i16;

impl message::Model {
    /// The message as the public API shows it.
    pub fn to_proto(&self) -> Result<Message, Error> {
        let content = MessageContent::decode(self.content.as_slice())
            .map_err(|e| Error::corrupt(format!("content of message {}: {e}", self.id)))?;
        Ok(Message {
            id: self.id.clone(),
            campaign_id: self.campaign_id.clone(),
            variant_id: self.variant_id.clone(),
            user_id: self.user_id.clone(),
            channel: i32::from(self.channel),
            content: Some(content),
            state: i32::from(self.state),
            priority: self.priority,
            create_time: Some(proto_from_ms(self.create_time)),
            update_time: Some(proto_from_ms(self.update_time)),
            expire_time: self.expire_time.map(proto_from_ms),
            display_time: self.display_time.map(proto_from_ms),
            click_time: self.click_time.map(proto_from_ms),
            dismiss_time: self.dismiss_time.map(proto_from_ms),
            read_time: self.read_time.map(proto_from_ms),
            archive_time: self.archive_time.map(proto_from_ms),
            category: self.category.clone(),
        })
    }

    /// An interaction of `kind` with this message, its id the message's id and `suffix`.
    fn interaction(
        &self,
        kind: InteractionKind,
        suffix: &str,
        action_id: &str,
        time: i64,
    ) -> Interaction {
        Interaction {
            id: format!("{}:{suffix}", self.id),
            campaign_id: self.campaign_id.clone(),
            variant_id: self.variant_id.clone(),
            user_id: self.user_id.clone(),
            kind: kind as i32,
            message_id: self.id.clone(),
            action_id: action_id.to_owned(),
            time: Some(proto_from_ms(time)),
            delivery_idempotency_key: self.idempotency_key.clone(),
            ..Default::default()
        }
    }

    /// Stages an interaction of `kind` with this message in `items` (see [`Self::stage`]).
    fn stage_interaction(
        &self,
        items: &mut Vec<NewItem>,
        kind: InteractionKind,
        suffix: &str,
        action_id: &str,
        time: i64,
    ) {
        self.stage(items, self.interaction(kind, suffix, action_id, time));
    }

    /// Stages the SENT interaction of this message, carrying the campaign's conversion
    /// goal from `delivery`: the only interaction that does, as analytics attributes
    /// conversions from the exposure. The goal is not stored with the message; SENT is
    /// staged in the transaction that stores it.
    fn stage_sent(&self, items: &mut Vec<NewItem>, delivery: &Delivery, time: i64) {
        let mut sent = self.interaction(InteractionKind::Sent, "sent", "", time);
        if !delivery.goal_event_name.is_empty() {
            sent.goal_event_name = delivery.goal_event_name.clone();
            sent.attribution_window = delivery.attribution_window;
        }
        self.stage(items, sent);
    }

    /// Stages `interaction` with this message in `items`: an outbox item for analytics
    /// and, when segmentation wants the kind ([`segmentation_wants`]: not SENT), one with
    /// the same payload for segmentation. The caller adds `items` in its transaction, so
    /// both are one insert with the state change they report.
    fn stage(&self, items: &mut Vec<NewItem>, interaction: Interaction) {
        let kind = interaction.kind();
        let request = RecordInteractionsRequest {
            workspace_id: self.workspace_id.clone(),
            interactions: vec![interaction],
        };
        let analytics = NewItem {
            destination: ANALYTICS,
            // Per-user order across the hop.
            key: self.user_id.clone(),
            payload: request.encode_to_vec(),
            traceparent: herald_runtime::telemetry::current_traceparent(),
        };
        if segmentation_wants(kind) {
            // The same bytes: segmentation's ApplyInteractionsRequest shares the fields.
            items.push(NewItem {
                destination: SEGMENTATION,
                ..analytics.clone()
            });
        }
        items.push(analytics);
    }
}

/// What a Deliver call did.
#[derive(Debug, Default)]
pub struct Delivered {
    /// One result per delivery, in request order.
    pub results: Vec<DeliveryResult>,
    /// The new in-app messages, to push to open streams.
    pub live: Vec<Message>,
}

/// Stores `deliveries` (already validated) of `workspace`: new keys become messages
/// (or a recorded refusal), repeated keys return their original result, and each new
/// PUSH message is staged for the push provider, or, inside its user's quiet hours, held
/// by a timer on `timers` due when they end ([`hold`]). One transaction; returns once
/// committed.
pub async fn deliver(
    db: &DatabaseConnection,
    outbox: &Outbox,
    timers: &Timers,
    clock: &Clock,
    providers: Providers,
    workspace: &str,
    deliveries: &[Delivery],
) -> Result<Delivered, Error> {
    let now = clock.now_ms();
    let txn = db.begin().await?;
    let users: HashSet<&str> = deliveries.iter().map(|d| d.user_id.as_str()).collect();
    let preferences = preferences_of(&txn, workspace, users.into_iter().collect()).await?;

    // Decide every first occurrence of a key, then let the ledger say which are new.
    let mut first = HashSet::new();
    let mut decided = Vec::new();
    let mut ledger = Vec::new();
    for delivery in deliveries {
        if !first.insert(delivery.idempotency_key.as_str()) {
            continue;
        }
        let outcome = decide(
            delivery,
            preferences.get(delivery.user_id.as_str()),
            providers,
            now,
        );
        let model = (outcome == DeliveryOutcome::Accepted)
            .then(|| new_message(workspace, delivery, clock, now));
        ledger.push(result::ActiveModel::from(result::Model {
            workspace_id: workspace.to_owned(),
            idempotency_key: delivery.idempotency_key.clone(),
            message_id: model.as_ref().map(|m| m.id.clone()).unwrap_or_default(),
            outcome: outcome as i16,
            create_time: now,
        }));
        decided.push((delivery, outcome, model));
    }
    let fresh = herald_storage::insert_fresh(&txn, ledger).await?;
    let mut results: HashMap<&str, DeliveryResult> = HashMap::new();
    let mut messages = Vec::new();
    let mut items = Vec::new();
    let mut delivered = Delivered::default();
    let mut repeated = Vec::new();
    let mut holds: Vec<(String, i64)> = Vec::new();
    for (delivery, outcome, model) in decided {
        let key = delivery.idempotency_key.as_str();
        if !fresh.contains(&(workspace.to_owned(), key.to_owned())) {
            repeated.push(key);
            continue;
        }
        let message_id = model.as_ref().map(|m| m.id.clone()).unwrap_or_default();
        if let Some(model) = model {
            model.stage_sent(&mut items, delivery, now);
            match model.channel {
                IN_APP => delivered.live.push(model.to_proto()?),
                PUSH => {
                    // A critical campaign's push is not held by the user's quiet hours.
                    let quiet = preferences
                        .get(model.user_id.as_str())
                        .and_then(|p| p.quiet_hours.as_ref())
                        .filter(|_| !delivery.critical);
                    match hold::release_ms(quiet, now) {
                        // Inside the user's quiet hours: a timer stages it when they end.
                        Some(release) => holds.push((model.id.clone(), release)),
                        // Committed with the message; the push relay sends it to the
                        // provider.
                        None => items.push(push::item(&model)?),
                    }
                }
                // Email, SMS and webhook stay PENDING: their provider adapters come in a
                // later issue.
                _ => {}
            }
            messages.push(message::ActiveModel::from(model));
        }
        results.insert(
            key,
            DeliveryResult {
                idempotency_key: key.to_owned(),
                message_id,
                duplicate: false,
                outcome: outcome as i32,
            },
        );
    }
    // Keys handled before (by an earlier call) answer with their original result.
    if !repeated.is_empty() {
        let earlier = result::Entity::find()
            .filter(result::Column::WorkspaceId.eq(workspace))
            .filter(result::Column::IdempotencyKey.is_in(repeated.iter().copied()))
            .all(&txn)
            .await?;
        for row in earlier {
            let key = repeated
                .iter()
                .find(|k| **k == row.idempotency_key)
                .copied()
                .unwrap_or_default();
            results.insert(
                key,
                DeliveryResult {
                    idempotency_key: row.idempotency_key,
                    message_id: row.message_id,
                    duplicate: true,
                    outcome: i32::from(row.outcome),
                },
            );
        }
    }
    // One result per delivery, in request order; a key repeated within the call is a
    // duplicate of its first occurrence.
    let mut answered = HashSet::new();
    for delivery in deliveries {
        let key = delivery.idempotency_key.as_str();
        let mut result = results
            .get(key)
            .cloned()
            .ok_or_else(|| Error::internal(format!("no ledger entry for delivery key {key:?}")))?;
        if !answered.insert(key) {
            result.duplicate = true;
        }
        delivered.results.push(result);
    }
    for chunk in messages.chunks(100) {
        message::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    if !holds.is_empty() {
        let payload = hold::Held {
            workspace_id: workspace.to_owned(),
            traceparent: herald_runtime::telemetry::current_traceparent(),
        }
        .encode();
        let timers_of: Vec<(&str, i64, Vec<u8>)> = holds
            .iter()
            .map(|(id, release)| (id.as_str(), *release, payload.clone()))
            .collect();
        timers.schedule_many(&txn, &timers_of).await?;
    }
    let staged = if items.is_empty() {
        None
    } else {
        Some(outbox.add(&txn, items).await?)
    };
    txn.commit().await?;
    if let Some(staged) = staged {
        outbox.publish(staged).await;
    }
    if !holds.is_empty() {
        timers.notify();
    }
    Ok(delivered)
}

/// Releases the push `message_id` held by its user's quiet hours, when its timer fires:
/// stages it for the provider, in one transaction that also deletes the timer, so a
/// timer fired twice (a crash before the runner's delete, a lease that ran out) stages it
/// once. Does nothing for a message gone (its user forgotten) or no longer PENDING; for
/// the rest, does what the user's preferences as they are now say ([`hold::at_release`]):
/// nothing once expired or opted out of, hold it again inside the current quiet hours.
pub async fn release_held(
    db: &DatabaseConnection,
    outbox: &Outbox,
    timers: &Timers,
    clock: &Clock,
    message_id: &str,
    held: &hold::Held,
) -> Result<(), Error> {
    let now = clock.now_ms();
    let txn = db.begin().await?;
    // The timer row first: a write, so SQLite's write lock is taken before any read, and
    // on PostgreSQL a second firing waits here, then finds no row and stops.
    if !timers.cancel(&txn, message_id).await? {
        txn.rollback().await?;
        return Ok(());
    }
    let model = message::Entity::find_by_id(message_id)
        .filter(message::Column::WorkspaceId.eq(held.workspace_id.as_str()))
        .one(&txn)
        .await?;
    let Some(model) = model.filter(|m| m.channel == PUSH && m.state == PENDING) else {
        tracing::debug!(message_id, "held push gone or no longer pending, not sent");
        txn.commit().await?;
        return Ok(());
    };
    let preferences = preferences_of(&txn, &model.workspace_id, vec![model.user_id.as_str()])
        .await?
        .remove(&model.user_id);
    match hold::at_release(
        preferences.as_ref(),
        &model.category,
        model.expire_time,
        now,
    ) {
        hold::AtRelease::Send => {}
        hold::AtRelease::Hold(release) => {
            // A new row (a new id), not the one the runner claimed: its delete leaves it.
            timers
                .schedule(&txn, message_id, release, held.encode())
                .await?;
            txn.commit().await?;
            timers.notify();
            return Ok(());
        }
        hold::AtRelease::Skip(reason) => {
            tracing::debug!(message_id, reason, "held push not sent");
            txn.commit().await?;
            return Ok(());
        }
    }
    let mut item = push::item(&model)?;
    item.traceparent = held.traceparent.clone();
    let staged = outbox.add(&txn, vec![item]).await?;
    txn.commit().await?;
    outbox.publish(staged).await;
    Ok(())
}

/// Whether `delivery` may go out, given the user's preferences and the providers this
/// deployment has.
fn decide(
    delivery: &Delivery,
    preferences: Option<&Preferences>,
    providers: Providers,
    now: i64,
) -> DeliveryOutcome {
    if delivery
        .expire_time
        .as_ref()
        .is_some_and(|t| ms_of_proto(t) <= now)
    {
        return DeliveryOutcome::Expired;
    }
    // The user's own quiet hours delay a push (see `hold`), they do not refuse it. The
    // campaign's quiet hours are trigger's.
    if let Some(refused) =
        preferences.and_then(|p| opted_out(p, delivery.channel, &delivery.category))
    {
        return refused;
    }
    let needs_address = matches!(
        Channel::try_from(delivery.channel),
        Ok(Channel::Push | Channel::Email | Channel::Sms)
    );
    if needs_address && delivery.address.is_empty() {
        return DeliveryOutcome::NoAddress;
    }
    // Stored, a push nothing will ever send would wait for ever; say so instead.
    if delivery.channel == Channel::Push as i32 && !providers.push {
        return DeliveryOutcome::NoProvider;
    }
    DeliveryOutcome::Accepted
}

/// CHANNEL_OPTED_OUT or CATEGORY_OPTED_OUT when `preferences` refuse a message on
/// `channel` (`herald.common.v1.Channel`) of `category` (empty: uncategorised).
pub fn opted_out(
    preferences: &Preferences,
    channel: i32,
    category: &str,
) -> Option<DeliveryOutcome> {
    if preferences
        .channels
        .iter()
        .any(|c| c.channel == channel && !c.enabled)
    {
        return Some(DeliveryOutcome::ChannelOptedOut);
    }
    if !category.is_empty()
        && preferences
            .opted_out_categories
            .iter()
            .any(|c| c == category)
    {
        return Some(DeliveryOutcome::CategoryOptedOut);
    }
    None
}

fn new_message(workspace: &str, delivery: &Delivery, clock: &Clock, now: i64) -> message::Model {
    message::Model {
        id: herald_core::ids::new_id("msg", clock),
        workspace_id: workspace.to_owned(),
        user_id: delivery.user_id.clone(),
        idempotency_key: delivery.idempotency_key.clone(),
        campaign_id: delivery.campaign_id.clone(),
        variant_id: delivery.variant_id.clone(),
        channel: delivery.channel as i16,
        content: delivery
            .content
            .as_ref()
            .map(|c| c.encode_to_vec())
            .unwrap_or_default(),
        address: delivery.address.clone(),
        state: PENDING,
        priority: delivery.priority,
        category: delivery.category.clone(),
        create_time: now,
        update_time: now,
        expire_time: delivery.expire_time.as_ref().map(ms_of_proto),
        display_time: None,
        click_time: None,
        dismiss_time: None,
        read_time: None,
        archive_time: None,
    }
}

/// Filters one user's unexpired in-app messages.
fn inbox_of(workspace: &str, user_id: &str, now: i64) -> Condition {
    Condition::all()
        .add(message::Column::WorkspaceId.eq(workspace))
        .add(message::Column::UserId.eq(user_id))
        .add(message::Column::Channel.eq(IN_APP))
        .add(
            Condition::any()
                .add(message::Column::ExpireTime.is_null())
                .add(message::Column::ExpireTime.gt(now)),
        )
}

/// Where a replay page ends: (priority, create_time, id) of its last message.
pub type ReplayCursor = (i32, i64, String);

/// The next `limit` messages to replay on Subscribe after `after`: unexpired in-app
/// messages still PENDING or DELIVERED, highest priority first, then oldest first.
pub async fn replay(
    db: &DatabaseConnection,
    workspace: &str,
    user_id: &str,
    now: i64,
    after: Option<&ReplayCursor>,
    limit: u64,
) -> Result<Vec<message::Model>, Error> {
    let mut filter =
        inbox_of(workspace, user_id, now).add(message::Column::State.is_in([PENDING, DELIVERED]));
    if let Some((priority, create_time, id)) = after {
        use message::Column as C;
        filter = filter.add(
            Condition::any().add(C::Priority.lt(*priority)).add(
                Condition::all().add(C::Priority.eq(*priority)).add(
                    Condition::any().add(C::CreateTime.gt(*create_time)).add(
                        Condition::all()
                            .add(C::CreateTime.eq(*create_time))
                            .add(C::Id.gt(id.as_str())),
                    ),
                ),
            ),
        );
    }
    Ok(message::Entity::find()
        .filter(filter)
        .order_by_desc(message::Column::Priority)
        .order_by_asc(message::Column::CreateTime)
        .order_by_asc(message::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// Moves `message_ids` from PENDING to DELIVERED and records a DELIVERED interaction for
/// each, all in one transaction; returns the ids it moved (not those no longer PENDING:
/// another session marked them, or the user already acted on them).
pub async fn mark_delivered(
    db: &DatabaseConnection,
    outbox: &Outbox,
    clock: &Clock,
    workspace: &str,
    message_ids: &[&str],
) -> Result<HashSet<String>, Error> {
    if message_ids.is_empty() {
        return Ok(HashSet::new());
    }
    let now = clock.now_ms();
    let txn = db.begin().await?;
    let moved = message::Entity::update_many()
        .col_expr(message::Column::State, Expr::value(DELIVERED))
        .col_expr(message::Column::UpdateTime, Expr::value(now))
        .filter(message::Column::Id.is_in(message_ids.iter().copied()))
        .filter(message::Column::WorkspaceId.eq(workspace))
        .filter(message::Column::State.eq(PENDING))
        .exec_with_returning(&txn)
        .await?;
    if moved.is_empty() {
        txn.rollback().await?;
        return Ok(HashSet::new());
    }
    // Analytics' and segmentation's items of every moved message, in one insert.
    let mut items = Vec::with_capacity(2 * moved.len());
    for model in &moved {
        model.stage_interaction(&mut items, InteractionKind::Delivered, "delivered", "", now);
    }
    let staged = outbox.add(&txn, items).await?;
    txn.commit().await?;
    outbox.publish(staged).await;
    Ok(moved.into_iter().map(|m| m.id).collect())
}

/// Where an inbox page ends: (create_time, id) of its last message.
pub type InboxCursor = (i64, String);

/// Up to `limit` of the user's unexpired in-app messages after `after`, newest first.
pub async fn inbox(
    db: &DatabaseConnection,
    workspace: &str,
    user_id: &str,
    now: i64,
    include_archived: bool,
    after: Option<&InboxCursor>,
    limit: u64,
) -> Result<Vec<message::Model>, Error> {
    let mut filter = inbox_of(workspace, user_id, now);
    if !include_archived {
        filter = filter.add(message::Column::ArchiveTime.is_null());
    }
    if let Some((create_time, id)) = after {
        use message::Column as C;
        filter = filter.add(
            Condition::any().add(C::CreateTime.lt(*create_time)).add(
                Condition::all()
                    .add(C::CreateTime.eq(*create_time))
                    .add(C::Id.lt(id.as_str())),
            ),
        );
    }
    Ok(message::Entity::find()
        .filter(filter)
        .order_by_desc(message::Column::CreateTime)
        .order_by_desc(message::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// The user's unread, unarchived, unexpired in-app messages.
pub async fn unread_count(
    db: &DatabaseConnection,
    workspace: &str,
    user_id: &str,
    now: i64,
) -> Result<u32, Error> {
    Ok(unread(db, workspace, user_id, now).await?.count)
}

/// The user's unread in-app messages at one time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unread {
    pub count: u32,
    /// When the first of them expires (the count drops then), if any expires.
    pub next_expiry: Option<i64>,
}

/// The user's unexpired in-app messages not yet read or archived at `now`: how many, and
/// when the first of them expires; one indexed aggregate.
pub async fn unread(
    db: &DatabaseConnection,
    workspace: &str,
    user_id: &str,
    now: i64,
) -> Result<Unread, Error> {
    let (count, next_expiry): (i64, Option<i64>) = message::Entity::find()
        .select_only()
        .column_as(message::Column::Id.count(), "count")
        .column_as(message::Column::ExpireTime.min(), "next_expiry")
        .filter(
            inbox_of(workspace, user_id, now)
                .add(message::Column::ReadTime.is_null())
                .add(message::Column::ArchiveTime.is_null()),
        )
        .into_tuple()
        .one(db)
        .await?
        .unwrap_or((0, None));
    Ok(Unread {
        count: u32::try_from(count).unwrap_or(u32::MAX),
        next_expiry,
    })
}

/// Applies what the user reported about `message_id` (DISPLAYED, CLICKED, DISMISSED,
/// READ or ARCHIVED; checked by the caller). The state only moves forward; each first
/// time of a kind sets its timestamp and, for impressions, clicks and dismissals,
/// records the interaction in the same transaction. Repeats change nothing.
#[allow(clippy::too_many_arguments)]
pub async fn update_state(
    db: &DatabaseConnection,
    outbox: &Outbox,
    clock: &Clock,
    workspace: &str,
    user_id: &str,
    message_id: &str,
    state: MessageState,
    action_id: &str,
) -> Result<message::Model, Error> {
    let txn = db.begin().await?;
    // Row lock on PostgreSQL (ignored by SQLite, whose writers are serialised anyway),
    // so two concurrent first reports record one interaction.
    let model = message::Entity::find_by_id(message_id)
        .filter(message::Column::WorkspaceId.eq(workspace))
        .filter(message::Column::UserId.eq(user_id))
        .filter(message::Column::Channel.eq(IN_APP))
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or_else(|| Error::NotFound(format!("message {message_id} not found")))?;
    if state == MessageState::Clicked && !action_id.is_empty() {
        let content = model.to_proto()?.content;
        let known = match content.and_then(|c| c.body) {
            Some(message_content::Body::InApp(in_app)) => {
                in_app.actions.iter().any(|a| a.id == action_id)
            }
            _ => false,
        };
        if !known {
            return Err(Error::invalid(
                "action_id",
                format!("{action_id:?} is not an action of the message"),
            ));
        }
    }

    let now = clock.now_ms();
    let mut next = model.clone();
    let mut items = Vec::new();
    let first = |slot: &mut Option<i64>| slot.is_none().then(|| *slot = Some(now)).is_some();
    match state {
        MessageState::Displayed => {
            if first(&mut next.display_time) {
                model.stage_interaction(
                    &mut items,
                    InteractionKind::Impression,
                    "impression",
                    "",
                    now,
                );
            }
        }
        MessageState::Clicked => {
            if first(&mut next.click_time) {
                model.stage_interaction(
                    &mut items,
                    InteractionKind::Click,
                    "click",
                    action_id,
                    now,
                );
            }
            first(&mut next.read_time);
        }
        MessageState::Dismissed => {
            if first(&mut next.dismiss_time) {
                model.stage_interaction(
                    &mut items,
                    InteractionKind::Dismissal,
                    "dismissal",
                    "",
                    now,
                );
            }
        }
        MessageState::Read => {
            first(&mut next.read_time);
        }
        MessageState::Archived => {
            first(&mut next.archive_time);
        }
        _ => {
            return Err(Error::invalid(
                "state",
                "must be DISPLAYED, CLICKED, DISMISSED, READ or ARCHIVED",
            ));
        }
    }
    if (state as i16) > next.state {
        next.state = state as i16;
        next.update_time = now;
    }
    if next == model {
        txn.rollback().await?;
        return Ok(model);
    }
    use message::Column as C;
    message::Entity::update_many()
        .col_expr(C::State, Expr::value(next.state))
        .col_expr(C::UpdateTime, Expr::value(next.update_time))
        .col_expr(C::DisplayTime, Expr::value(next.display_time))
        .col_expr(C::ClickTime, Expr::value(next.click_time))
        .col_expr(C::DismissTime, Expr::value(next.dismiss_time))
        .col_expr(C::ReadTime, Expr::value(next.read_time))
        .col_expr(C::ArchiveTime, Expr::value(next.archive_time))
        .filter(C::Id.eq(next.id.as_str()))
        .exec(&txn)
        .await?;
    let staged = outbox.add(&txn, items).await?;
    txn.commit().await?;
    outbox.publish(staged).await;
    Ok(next)
}

/// The stored preferences of `user_ids`, by user.
async fn preferences_of<C: ConnectionTrait>(
    db: &C,
    workspace: &str,
    user_ids: Vec<&str>,
) -> Result<HashMap<String, Preferences>, Error> {
    let rows = preference::Entity::find()
        .filter(preference::Column::WorkspaceId.eq(workspace))
        .filter(preference::Column::UserId.is_in(user_ids))
        .all(db)
        .await?;
    rows.into_iter()
        .map(|row| {
            let preferences = Preferences::decode(row.body.as_slice())
                .map_err(|e| Error::corrupt(format!("preferences of {}: {e}", row.user_id)))?;
            Ok((row.user_id, preferences))
        })
        .collect()
}

/// The user's stored preferences, if any were ever set.
pub async fn preferences(
    db: &DatabaseConnection,
    workspace: &str,
    user_id: &str,
) -> Result<Option<Preferences>, Error> {
    Ok(preferences_of(db, workspace, vec![user_id])
        .await?
        .remove(user_id))
}

/// Reads the user's preferences, applies `change` and stores the result, in one
/// transaction; returns what was stored.
pub async fn update_preferences(
    db: &DatabaseConnection,
    clock: &Clock,
    workspace: &str,
    user_id: &str,
    change: impl FnOnce(&mut Preferences),
) -> Result<Preferences, Error> {
    let txn = db.begin().await?;
    let current = preference::Entity::find_by_id((workspace.to_owned(), user_id.to_owned()))
        .lock_exclusive()
        .one(&txn)
        .await?;
    let mut preferences = match current {
        Some(row) => Preferences::decode(row.body.as_slice())
            .map_err(|e| Error::corrupt(format!("preferences of {user_id}: {e}")))?,
        None => Preferences::default(),
    };
    change(&mut preferences);
    let now = clock.now_ms();
    preferences.update_time = Some(proto_from_ms(now));
    let row = preference::ActiveModel::from(preference::Model {
        workspace_id: workspace.to_owned(),
        user_id: user_id.to_owned(),
        body: preferences.encode_to_vec(),
        update_time: now,
    });
    preference::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([preference::Column::WorkspaceId, preference::Column::UserId])
                .update_columns([preference::Column::Body, preference::Column::UpdateTime])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(preferences)
}
