//! The campaign lifecycle: create, read, list, update and status changes, per workspace.

use herald_campaigns::timer::{self, TimerKind, TimerPayload};
use herald_campaigns::validate;
use herald_core::time::{ms_of_proto, proto_from_ms};
use herald_proto::trigger::v1::{
    Campaign, CampaignStatus, time_trigger, trigger::Kind as TriggerKind,
};
use herald_runtime::{Clock, Error, FieldViolation};
use herald_timers::Timers;
use prost::Message;
use sea_orm::DatabaseConnection;

use crate::store::{self, Cursor};

/// Default and largest page of ListCampaigns.
const DEFAULT_PAGE: i32 = 50;
const MAX_PAGE: i32 = 1000;

fn status_of(campaign: &Campaign) -> CampaignStatus {
    CampaignStatus::try_from(campaign.status).unwrap_or(CampaignStatus::Unspecified)
}

/// INVALID_ARGUMENT when `campaign` breaks the contract; FAILED_PRECONDITION when it is
/// valid but is (to be) ACTIVE and cannot be (incomplete, or relying on a setting this
/// version does not enforce).
fn check(parser: &liquid::Parser, campaign: &Campaign) -> Result<(), Error> {
    let violations = validate::campaign(parser, campaign);
    if !violations.is_empty() {
        return Err(Error::InvalidArgument(violations));
    }
    if status_of(campaign) == CampaignStatus::Active {
        let violations = validate::completeness(campaign);
        if !violations.is_empty() {
            return Err(Error::FailedPrecondition {
                message: "the campaign cannot be active".into(),
                violations,
            });
        }
    }
    Ok(())
}

/// The enrolment of the segment's existing members, when `campaign` becomes ACTIVE at
/// `activate_ms` and is a segment-entry campaign that asks for them or a local schedule
/// (whose members each get their first occurrence).
fn enrollment<'a>(
    timers: &'a Timers,
    workspace: &str,
    campaign: &Campaign,
    activate_ms: i64,
) -> Option<store::WithTimer<'a>> {
    let existing = match campaign.trigger.as_ref().and_then(|t| t.kind.as_ref()) {
        Some(TriggerKind::SegmentEntry(s)) => s.include_existing_members,
        Some(TriggerKind::Time(t)) => matches!(t.kind, Some(time_trigger::Kind::Schedule(_))),
        _ => false,
    };
    if !existing || campaign.status != CampaignStatus::Active as i32 {
        return None;
    }
    let payload = TimerPayload {
        kind: TimerKind::Enroll as i32,
        workspace_id: workspace.to_owned(),
        campaign_id: campaign.id.clone(),
        started_ms: activate_ms,
        ..Default::default()
    };
    Some(store::WithTimer {
        timers,
        key: timer::enroll_key(workspace, &campaign.id),
        due_ms: activate_ms,
        payload: payload.encode_to_vec(),
    })
}

/// An update time after `previous`, so that every write is a new version.
fn next_update_ms(clock: &Clock, previous: i64) -> i64 {
    clock.now_ms().max(previous + 1)
}

/// Creates `campaign` in `workspace` with a new id; returns it as stored.
pub async fn create(
    db: &DatabaseConnection,
    timers: &Timers,
    parser: &liquid::Parser,
    clock: &Clock,
    workspace: &str,
    mut campaign: Campaign,
) -> Result<Campaign, Error> {
    campaign.status = match CampaignStatus::try_from(campaign.status) {
        Ok(CampaignStatus::Unspecified | CampaignStatus::Draft) => CampaignStatus::Draft as i32,
        Ok(CampaignStatus::Active) => CampaignStatus::Active as i32,
        _ => {
            return Err(Error::invalid(
                "campaign.status",
                "must be unset, DRAFT or ACTIVE on create",
            ));
        }
    };
    campaign.id = herald_core::ids::new_id("cmp", clock);
    validate::assign_variant_ids(&mut campaign);
    check(parser, &campaign)?;
    let now = proto_from_ms(clock.now_ms());
    campaign.create_time = Some(now);
    campaign.update_time = Some(now);
    campaign.activate_time = (campaign.status == CampaignStatus::Active as i32).then_some(now);
    let enroll = enrollment(timers, workspace, &campaign, clock.now_ms());
    store::insert(db, workspace, &campaign, enroll.as_ref()).await?;
    Ok(campaign)
}

/// The campaign `id` of `workspace`.
pub async fn get(db: &DatabaseConnection, workspace: &str, id: &str) -> Result<Campaign, Error> {
    if id.is_empty() {
        return Err(Error::invalid("campaign_id", "is required"));
    }
    Ok(store::get(db, workspace, id).await?.campaign)
}

fn encode_token(status: Option<CampaignStatus>, cursor: &Cursor) -> String {
    let raw = format!(
        "1:{}:{}:{}",
        status.map_or(0, |s| s as i32),
        cursor.create_ms,
        cursor.id
    );
    hex::encode(raw)
}

fn decode_token(token: &str, status: Option<CampaignStatus>) -> Result<Cursor, Error> {
    let bad = || Error::invalid("page_token", "is not a token returned by ListCampaigns");
    let raw = String::from_utf8(hex::decode(token).map_err(|_| bad())?).map_err(|_| bad())?;
    let mut parts = raw.splitn(4, ':');
    let (Some("1"), Some(token_status), Some(create_ms), Some(id)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if token_status != status.map_or(0, |s| s as i32).to_string() {
        return Err(Error::invalid(
            "page_token",
            "was issued for a different status filter",
        ));
    }
    Ok(Cursor {
        create_ms: create_ms.parse().map_err(|_| bad())?,
        id: id.to_owned(),
    })
}

/// One page of `workspace`'s campaigns, newest first, and the next page's token.
pub async fn list(
    db: &DatabaseConnection,
    workspace: &str,
    page_size: i32,
    page_token: &str,
    status: Option<i32>,
) -> Result<(Vec<Campaign>, String), Error> {
    if page_size < 0 {
        return Err(Error::invalid("page_size", "must not be negative"));
    }
    let limit = if page_size == 0 {
        DEFAULT_PAGE
    } else {
        page_size.min(MAX_PAGE)
    } as usize;
    let status = match status.map(CampaignStatus::try_from) {
        None | Some(Ok(CampaignStatus::Unspecified)) => None,
        Some(Ok(status)) => Some(status),
        Some(Err(_)) => return Err(Error::invalid("status", "is not a known campaign status")),
    };
    let cursor = if page_token.is_empty() {
        None
    } else {
        Some(decode_token(page_token, status)?)
    };
    let mut campaigns =
        store::list(db, workspace, status, cursor.as_ref(), limit as u64 + 1).await?;
    let mut next = String::new();
    if campaigns.len() > limit {
        campaigns.truncate(limit);
        if let Some(last) = campaigns.last() {
            let create_ms = last
                .create_time
                .as_ref()
                .map(ms_of_proto)
                .unwrap_or_default();
            next = encode_token(
                status,
                &Cursor {
                    create_ms,
                    id: last.id.clone(),
                },
            );
        }
    }
    Ok((campaigns, next))
}

/// Replaces the fields of the stored campaign named by `paths` with those of `update`.
pub async fn update(
    db: &DatabaseConnection,
    timers: &Timers,
    parser: &liquid::Parser,
    clock: &Clock,
    workspace: &str,
    update: Campaign,
    paths: &[String],
) -> Result<Campaign, Error> {
    if update.id.is_empty() {
        return Err(Error::invalid("campaign.id", "is required"));
    }
    if paths.is_empty() {
        return Err(Error::invalid(
            "update_mask",
            "must name at least one field to update",
        ));
    }
    let stored = store::get(db, workspace, &update.id).await?;
    let mut campaign = stored.campaign;
    let (trigger_before, audience_before) = (campaign.trigger.clone(), campaign.audience.clone());
    if status_of(&campaign) == CampaignStatus::Archived {
        return Err(Error::failed_precondition(
            "an archived campaign cannot be updated",
        ));
    }
    let mut violations = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let field = format!("update_mask.paths[{i}]");
        match path.as_str() {
            "name" => campaign.name.clone_from(&update.name),
            "description" => campaign.description.clone_from(&update.description),
            "trigger" => campaign.trigger.clone_from(&update.trigger),
            "audience" => campaign.audience.clone_from(&update.audience),
            "variants" => campaign.variants.clone_from(&update.variants),
            "control_weight" => campaign.control_weight = update.control_weight,
            "frequency_cap" => campaign.frequency_cap = update.frequency_cap,
            "priority" => campaign.priority = update.priority,
            "quiet_hours" => campaign.quiet_hours.clone_from(&update.quiet_hours),
            "schedule" => campaign.schedule = update.schedule,
            "conversion_goal" => campaign.conversion_goal.clone_from(&update.conversion_goal),
            "category" => campaign.category.clone_from(&update.category),
            "message_ttl" => campaign.message_ttl = update.message_ttl,
            "entry" => campaign.entry = update.entry,
            "exempt_from_cap_rules" => {
                campaign.exempt_from_cap_rules = update.exempt_from_cap_rules
            }
            "critical" => campaign.critical = update.critical,
            // Frozen at launch: the statistics of exposures already recorded were read
            // with it.
            "sequential_tuning"
                if campaign.activate_time.is_some()
                    && update.sequential_tuning != campaign.sequential_tuning =>
            {
                return Err(Error::failed_precondition(
                    "sequential_tuning is frozen once the campaign has been ACTIVE",
                ));
            }
            "sequential_tuning" => campaign.sequential_tuning = update.sequential_tuning,
            "status" => violations.push(FieldViolation::new(
                field,
                "status changes through SetCampaignStatus",
            )),
            "id" | "create_time" | "update_time" | "activate_time" => {
                violations.push(FieldViolation::new(field, format!("{path} is output only")))
            }
            _ => violations.push(FieldViolation::new(
                field,
                format!("unknown campaign field {path:?}"),
            )),
        }
    }
    if !violations.is_empty() {
        return Err(Error::InvalidArgument(violations));
    }
    validate::assign_variant_ids(&mut campaign);
    check(parser, &campaign)?;
    let now = next_update_ms(clock, stored.update_time_ms);
    // A new trigger (or a local schedule's new segments) re-arms an ACTIVE campaign as
    // if it became ACTIVE now: segment entries count from now, and the members are
    // enrolled again when the trigger asks for them (a segment-entry trigger's existing
    // members, a local schedule's members at its new times).
    let is_schedule = matches!(
        campaign.trigger.as_ref().and_then(|t| t.kind.as_ref()),
        Some(TriggerKind::Time(t)) if matches!(t.kind, Some(time_trigger::Kind::Schedule(_)))
    );
    let rearmed = status_of(&campaign) == CampaignStatus::Active
        && (campaign.trigger != trigger_before
            || (is_schedule && campaign.audience != audience_before));
    write(
        db,
        timers,
        workspace,
        &mut campaign,
        stored.update_time_ms,
        now,
        rearmed,
    )
    .await?;
    Ok(campaign)
}

/// Writes `campaign` over its version `previous_ms`, at `now_ms`. When `armed` (it
/// becomes ACTIVE, or an ACTIVE campaign's trigger changed), as if it became ACTIVE at
/// `now_ms`: segment entries count from then, and the members are enrolled in the same
/// transaction where the trigger asks for them.
async fn write(
    db: &DatabaseConnection,
    timers: &Timers,
    workspace: &str,
    campaign: &mut Campaign,
    previous_ms: i64,
    now_ms: i64,
    armed: bool,
) -> Result<(), Error> {
    campaign.update_time = Some(proto_from_ms(now_ms));
    let mut enroll = None;
    if armed {
        campaign.activate_time = Some(proto_from_ms(now_ms));
        enroll = enrollment(timers, workspace, campaign, now_ms);
    }
    store::replace(db, workspace, campaign, previous_ms, enroll.as_ref()).await
}

/// Moves campaign `id` to `status`, if the lifecycle allows it.
pub async fn set_status(
    db: &DatabaseConnection,
    timers: &Timers,
    parser: &liquid::Parser,
    clock: &Clock,
    workspace: &str,
    id: &str,
    status: i32,
) -> Result<Campaign, Error> {
    use CampaignStatus::*;
    if id.is_empty() {
        return Err(Error::invalid("campaign_id", "is required"));
    }
    let target = match CampaignStatus::try_from(status) {
        Ok(Unspecified) | Err(_) => {
            return Err(Error::invalid(
                "status",
                "must be DRAFT, ACTIVE, PAUSED or ARCHIVED",
            ));
        }
        Ok(target) => target,
    };
    let stored = store::get(db, workspace, id).await?;
    let mut campaign = stored.campaign;
    let current = status_of(&campaign);
    if current == target {
        return Ok(campaign);
    }
    let allowed = matches!(
        (current, target),
        (Draft, Active) | (Active, Paused) | (Paused, Active) | (Draft | Active | Paused, Archived)
    );
    if !allowed {
        return Err(Error::failed_precondition(format!(
            "a {} campaign cannot become {}",
            name(current),
            name(target)
        )));
    }
    if target == Active {
        let mut violations = validate::campaign(parser, &campaign);
        violations.extend(validate::completeness(&campaign));
        if !violations.is_empty() {
            return Err(Error::FailedPrecondition {
                message: "the campaign cannot become active".into(),
                violations,
            });
        }
    }
    campaign.status = target as i32;
    let now = next_update_ms(clock, stored.update_time_ms);
    write(
        db,
        timers,
        workspace,
        &mut campaign,
        stored.update_time_ms,
        now,
        target == Active,
    )
    .await?;
    Ok(campaign)
}

fn name(status: CampaignStatus) -> &'static str {
    status.as_str_name().trim_start_matches("CAMPAIGN_STATUS_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_bind_the_filter() {
        let cursor = Cursor {
            create_ms: 1_714_557_600_123,
            id: "cmp_abc".into(),
        };
        let token = encode_token(Some(CampaignStatus::Active), &cursor);
        assert_eq!(
            decode_token(&token, Some(CampaignStatus::Active)).expect("decodes"),
            cursor
        );
        assert!(decode_token(&token, None).is_err());
        assert!(decode_token("zz", None).is_err());
        assert!(decode_token(&hex::encode("2:0:1:x"), None).is_err());
    }
}
