//! Timers that come due: a delay elapsed, an inactivity window passed without the
//! expected event, or quiet hours ended for messages held back. Every gate is checked
//! again at that instant, with the user's current segments and traits asked of
//! segmentation (GetUserState; until it answers, the timer is retried). A timer is
//! handled once: its key and due
//! time are recorded in the handled ledger with the decision, so one that fires again
//! after a crash changes nothing.

use std::collections::BTreeSet;

use herald_campaigns::CompiledTrigger;
use herald_campaigns::decision::{self, Cause, CauseKind, EventView, Subject};
use herald_campaigns::timer::{TimerKind, TimerPayload};
use herald_proto::segmentation::v1::segmentation_internal_service_client::SegmentationInternalServiceClient;
use herald_proto::segmentation::v1::{GetUserStateRequest, ListSegmentUsersRequest};
use herald_runtime::Error;
use herald_timers::{Timer, TimerHandler};
use prost::Message;
use prost_types::Struct;
use sea_orm::TransactionTrait;

use crate::effects::Effects;
use crate::engine::Engine;
use crate::{ledgers, store};

/// Fires trigger's timers.
pub struct Due(pub Engine);

#[async_trait::async_trait]
impl TimerHandler for Due {
    async fn fire(&self, timer: &Timer) -> Result<(), String> {
        fire(&self.0, timer).await.map_err(|e| e.to_string())
    }
}

/// The user's state as segmentation has it now.
struct Current {
    traits: Option<Struct>,
    segment_ids: Vec<String>,
    time_zone: String,
    locale: String,
}

/// Asks segmentation for the user's current state. An error (segmentation unreachable,
/// or too old to know GetUserState) is retried by the timer runner with backoff: a
/// decision is not taken on state that could not be read.
async fn current(engine: &Engine, payload: &TimerPayload) -> Result<Current, Error> {
    let request = engine.segmentation.request(
        GetUserStateRequest {
            workspace_id: payload.workspace_id.clone(),
            user_id: payload.user_id.clone(),
        },
        None,
    );
    let r = SegmentationInternalServiceClient::new(engine.segmentation.channel())
        .get_user_state(request)
        .await
        .map_err(|status| {
            Error::Unavailable(Box::new(herald_runtime::error::Message(format!(
                "segmentation did not answer GetUserState: {:?}: {}",
                status.code(),
                status.message()
            ))))
        })?
        .into_inner();
    Ok(Current {
        traits: r.traits,
        segment_ids: r.segment_ids,
        time_zone: r.time_zone,
        locale: r.locale,
    })
}

async fn fire(engine: &Engine, timer: &Timer) -> Result<(), Error> {
    let payload = TimerPayload::decode(timer.payload.as_slice())
        .map_err(|e| Error::corrupt(format!("timer {:?}: {e}", timer.key)))?;
    if payload.kind() == TimerKind::Enroll {
        return enroll(engine, timer, &payload).await;
    }
    let workspace = payload.workspace_id.as_str();
    let targets = engine.cache.active(&engine.db, workspace).await?;
    let campaign = targets.index.campaign(&payload.campaign_id).cloned();
    let current = match campaign {
        Some(_) => Some(current(engine, &payload).await?),
        None => None,
    };
    let cause_id = format!("{}@{}", timer.key, timer.due_ms);
    let now_ms = engine.clock.now_ms();
    let event = payload.event.as_ref();
    let context_zone = event
        .and_then(|e| e.context.as_ref())
        .map_or("", |c| c.time_zone.as_str());
    let subject = Subject {
        user_id: &payload.user_id,
        traits: current.as_ref().and_then(|c| c.traits.as_ref()),
        segment_ids: current.as_ref().map_or(&[], |c| c.segment_ids.as_slice()),
        time_zone: [context_zone, payload.time_zone.as_str()]
            .into_iter()
            .chain(current.as_ref().map(|c| c.time_zone.as_str()))
            .find(|z| !z.is_empty())
            .unwrap_or(""),
        locale: [payload.locale.as_str()]
            .into_iter()
            .chain(current.as_ref().map(|c| c.locale.as_str()))
            .find(|l| !l.is_empty())
            .unwrap_or(""),
        event: event.map(|e| EventView {
            message_id: &e.message_id,
            name: &e.name,
            properties: e.properties.as_ref(),
            timestamp: e.timestamp.as_ref(),
        }),
    };
    let cause = Cause {
        kind: CauseKind::Timer,
        id: &cause_id,
    };

    let txn = engine.db.begin().await?;
    let fresh = store::mark_handled(&txn, workspace, &[&cause_id], now_ms).await?;
    if fresh.is_empty() {
        txn.commit().await?;
        return Ok(());
    }
    let users = BTreeSet::from([payload.user_id.as_str()]);
    let mut locked = ledgers::lock(&txn, workspace, &users, now_ms).await?;
    let ledger = locked.of(&payload.user_id)?;
    let due = decision::DueTimer {
        campaign: campaign.as_deref(),
        key: &timer.key,
        payload: &payload,
    };
    let decision = decision::on_timer(&due, &targets.workspace, &cause, &subject, ledger, now_ms);
    let mut effects = Effects::new(workspace);
    if let Some(d) = &decision {
        effects.add(
            &targets.index,
            &engine.clock,
            &payload.user_id,
            d,
            payload.event.as_ref(),
            now_ms,
        );
    }
    locked.save(&txn, now_ms).await?;
    let published = effects.write(&txn, &engine.outbox, &engine.timers).await?;
    txn.commit().await?;
    published.publish(&engine.outbox, &engine.timers).await;
    Ok(())
}

/// Members enrolled per page (one transaction each).
const ENROLL_PAGE: i32 = 100;

/// The cause id of enrolling `user` when `campaign` became ACTIVE at `activate_ms`, at
/// most 128 characters (the handled ledger's key).
fn enroll_cause(campaign: &str, activate_ms: i64, user: &str) -> String {
    let id = format!("enroll:{campaign}:{activate_ms}:{user}");
    if id.len() <= 128 {
        return id;
    }
    format!("enroll:{campaign}:{activate_ms}:{}", decision::digest(user))
}

/// Enrols one page of a segment's current members when a campaign became ACTIVE: as an
/// entry for a segment-entry campaign that asks for its existing members, or their first
/// occurrence for a local schedule. Then schedules the next page (the same timer key, due
/// at once) until there is none. Ends quietly when the campaign is no longer ACTIVE or
/// was activated again since (the newer activation has its own enrolment).
async fn enroll(engine: &Engine, timer: &Timer, payload: &TimerPayload) -> Result<(), Error> {
    let workspace = payload.workspace_id.as_str();
    let targets = engine.cache.active(&engine.db, workspace).await?;
    let Some(campaign) = targets.index.campaign(&payload.campaign_id).cloned() else {
        return Ok(());
    };
    let segments: Vec<&String> = match campaign.trigger() {
        CompiledTrigger::SegmentEntry {
            segment_id,
            existing: true,
        } => vec![segment_id],
        CompiledTrigger::Schedule { segments, .. } => segments.iter().collect(),
        _ => return Ok(()),
    };
    let Some(segment_id) = segments.get(payload.segment_index as usize).copied() else {
        return Ok(());
    };
    if campaign.activate_ms() != payload.started_ms {
        return Ok(());
    }
    let request = engine.segmentation.request(
        ListSegmentUsersRequest {
            workspace_id: workspace.to_owned(),
            segment_id: segment_id.clone(),
            page_size: ENROLL_PAGE,
            page_token: payload.page_token.clone(),
        },
        None,
    );
    let page = SegmentationInternalServiceClient::new(engine.segmentation.channel())
        .list_segment_users(request)
        .await
        .map_err(|status| {
            Error::Unavailable(Box::new(herald_runtime::error::Message(format!(
                "segmentation did not list the members of segment {segment_id:?}: {:?}: {}",
                status.code(),
                status.message()
            ))))
        })?
        .into_inner();
    let now_ms = engine.clock.now_ms();
    let causes: Vec<String> = page
        .users
        .iter()
        .map(|u| enroll_cause(campaign.id(), payload.started_ms, &u.user_id))
        .collect();
    let txn = engine.db.begin().await?;
    let ids: Vec<&str> = causes.iter().map(String::as_str).collect();
    let fresh = store::mark_handled(&txn, workspace, &ids, now_ms).await?;
    let users: BTreeSet<&str> = page
        .users
        .iter()
        .zip(&causes)
        .filter(|(_, cause)| fresh.contains(*cause))
        .map(|(u, _)| u.user_id.as_str())
        .collect();
    let mut locked = ledgers::lock(&txn, workspace, &users, now_ms).await?;
    let mut effects = Effects::new(workspace);
    for (user, cause_id) in page.users.iter().zip(&causes) {
        if !fresh.contains(cause_id) {
            continue;
        }
        let subject = Subject {
            user_id: &user.user_id,
            traits: user.traits.as_ref(),
            segment_ids: &user.segment_ids,
            time_zone: &user.time_zone,
            locale: &user.locale,
            event: None,
        };
        let cause = Cause {
            kind: CauseKind::Enrollment,
            id: cause_id,
        };
        let ledger = locked.of(&user.user_id)?;
        let d = decision::on_enrollment(
            &campaign,
            &targets.workspace,
            &cause,
            &subject,
            ledger,
            now_ms,
        );
        effects.add(
            &targets.index,
            &engine.clock,
            &user.user_id,
            &d,
            None,
            now_ms,
        );
    }
    locked.save(&txn, now_ms).await?;
    // The next page, else the next segment (a local schedule may name several).
    let next = if !page.next_page_token.is_empty() {
        Some(TimerPayload {
            page_token: page.next_page_token.clone(),
            ..payload.clone()
        })
    } else if (payload.segment_index as usize) + 1 < segments.len() {
        Some(TimerPayload {
            page_token: String::new(),
            segment_index: payload.segment_index + 1,
            ..payload.clone()
        })
    } else {
        None
    };
    if let Some(next) = &next {
        engine
            .timers
            .schedule(&txn, &timer.key, now_ms, next.encode_to_vec())
            .await?;
    }
    let published = effects.write(&txn, &engine.outbox, &engine.timers).await?;
    txn.commit().await?;
    published.publish(&engine.outbox, &engine.timers).await;
    if next.is_some() {
        engine.timers.notify();
    }
    Ok(())
}
