//! The segment lifecycle behind the public API, per workspace: create, read, list, update
//! and delete segments, and read memberships. Requests are checked here (field
//! violations), rules are checked and normalised by `herald-rules`, and rows are written
//! through [`segments`].

use std::collections::HashMap;

use herald_core::ids::new_id;
use herald_core::time::proto_from_ms;
use herald_core::{FieldViolation, Len, Violations, limits};
use herald_proto::segmentation::v1::{
    GetUserSegmentsResponse, Rule, Segment, SegmentBackfill, SegmentMember,
};
use herald_proto::trigger::v1::ListSegmentReferencesRequest;
use herald_proto::trigger::v1::trigger_internal_service_client::TriggerInternalServiceClient;
use herald_runtime::error::Message;
use herald_runtime::{Clock, Deadline, Downstream, Error};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, TransactionTrait};

use crate::segments::{self, BACKFILL_PENDING, Cursor, segment};
use crate::{store, traits};

/// Default and largest page of the list RPCs.
const DEFAULT_PAGE: i32 = 50;
const MAX_PAGE: i32 = 1000;
/// Longest segment name, in characters.
const MAX_NAME: usize = 128;
/// Longest segment description, in characters.
const MAX_DESCRIPTION: usize = 1024;

const RULE: &str = "segment.rule";
const RULE_TEXT: &str = "segment.rule_text";

/// Where a request holds its rule: in its `segment` (Create/UpdateSegment), or at its top
/// level (PreviewSegment). Violations name the field where it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RuleIn {
    Segment,
    Request,
}

impl RuleIn {
    /// The text field's name.
    fn rule_text(self) -> &'static str {
        match self {
            RuleIn::Segment => RULE_TEXT,
            RuleIn::Request => "rule_text",
        }
    }

    /// A violation inside the tree (`rule…`), named from the request's root.
    fn tree(self, violation: FieldViolation) -> FieldViolation {
        match self {
            RuleIn::Segment => violation.nested("segment"),
            RuleIn::Request => violation,
        }
    }
}

/// A rule from a request, checked and in normal form.
pub(crate) struct Written {
    pub(crate) rule: Rule,
    /// Where it was written.
    place: RuleIn,
    /// Whether it was written as text (else as a tree).
    text: bool,
}

/// The rule written as `text`, or its first error with line and column.
pub(crate) fn from_text(text: &str, place: RuleIn) -> Result<Written, Vec<FieldViolation>> {
    match herald_rules::parse(text) {
        Ok(rule) => Ok(Written {
            rule: herald_rules::normalize(&rule),
            place,
            text: true,
        }),
        Err(error) => Err(vec![FieldViolation::new(
            place.rule_text(),
            error.to_string(),
        )]),
    }
}

/// The rule written as a tree, or every violation of the contract in it.
pub(crate) fn from_tree(rule: &Rule, place: RuleIn) -> Result<Written, Vec<FieldViolation>> {
    match herald_rules::check(rule) {
        Ok(()) => Ok(Written {
            rule: herald_rules::normalize(rule),
            place,
            text: false,
        }),
        Err(violations) => Err(violations.into_iter().map(|v| place.tree(v)).collect()),
    }
}

/// Adds the violations of `written` to `out`; the rule when there are none.
fn collect(written: Result<Written, Vec<FieldViolation>>, out: &mut Violations) -> Option<Written> {
    written.map_err(|v| out.extend(v)).ok()
}

/// The rule that passed the checks once `out` is empty.
fn checked(written: Option<Written>, out: Violations) -> Result<Written, Error> {
    out.finish()?;
    written.ok_or_else(|| Error::internal("a refused rule left no violation"))
}

/// Checks the `in_segment` references of `written`, the rule of segment `id`, against
/// the stored segments of `workspace`: each must exist and none may lead back to `id`.
/// Run it under the workspace's write lock ([`segments::bump_version`]) when saving.
pub(crate) async fn check_references<C: ConnectionTrait>(
    db: &C,
    workspace: &str,
    id: &str,
    written: &Written,
) -> Result<(), Error> {
    if herald_rules::segment_references(&written.rule).is_empty() {
        return Ok(());
    }
    let stored = segments::active_segments(db, workspace).await?;
    let mut rules = HashMap::with_capacity(stored.len());
    for s in stored.iter().filter(|s| s.segment_id != id) {
        rules.insert(s.segment_id.as_str(), segments::rule(s)?);
    }
    herald_rules::check_references(id, &written.rule, |other| rules.get(other)).map_err(
        |violations| {
            Error::InvalidArgument(
                violations
                    .into_iter()
                    .map(|v| {
                        if written.text {
                            // Text has no tree paths: the description names the reference.
                            FieldViolation::new(written.place.rule_text(), v.description)
                        } else {
                            // A tree's violations keep their path inside the tree.
                            written.place.tree(v)
                        }
                    })
                    .collect(),
            )
        },
    )
}

/// `segment` as the contract returns it.
fn to_proto(segment: &segment::Model, member_count: u64) -> Result<Segment, Error> {
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(Segment {
        id: segment.segment_id.clone(),
        name: segment.name.clone(),
        description: segment.description.clone(),
        rule: Some(segments::rule(segment)?),
        rule_text: segment.rule_text.clone(),
        create_time: Some(proto_from_ms(segment.created_at)),
        update_time: Some(proto_from_ms(segment.updated_at)),
        member_count,
        backfill: Some(SegmentBackfill {
            state: i32::from(segment.backfill_state),
            users_evaluated: count(segment.backfill_done),
            users_total: count(segment.backfill_total),
            start_time: Some(proto_from_ms(segment.backfill_started_at)),
            finish_time: segment.backfill_finished_at.map(proto_from_ms),
        }),
    })
}

/// Resets the backfill of `segment` for a rule written at `now`.
fn restart_backfill(segment: &mut segment::Model, now: i64) {
    segment.backfill_state = BACKFILL_PENDING;
    segment.backfill_total = 0;
    segment.backfill_done = 0;
    segment.backfill_cursor = String::new();
    segment.backfill_started_at = now;
    segment.backfill_finished_at = None;
}

/// Creates `segment` in `workspace` with a new id; returns it as stored. Its backfill is
/// pending: wake the backfill after this returns.
pub async fn create(
    db: &DatabaseConnection,
    clock: &Clock,
    workspace: &str,
    segment: Segment,
) -> Result<Segment, Error> {
    let mut out = Violations::new();
    out.text("segment.name", &segment.name, Len::required(MAX_NAME));
    out.text(
        "segment.description",
        &segment.description,
        Len::optional(MAX_DESCRIPTION),
    );
    let written = match (&segment.rule, segment.rule_text.is_empty()) {
        (Some(_), false) => {
            out.push(
                RULE_TEXT,
                "must be empty when segment.rule is set: set exactly one of rule and rule_text",
            );
            None
        }
        (Some(rule), true) => collect(from_tree(rule, RuleIn::Segment), &mut out),
        (None, false) => collect(from_text(&segment.rule_text, RuleIn::Segment), &mut out),
        (None, true) => {
            out.push(RULE, "is required: set exactly one of rule and rule_text");
            None
        }
    };
    let written = checked(written, out)?;
    let now = clock.now_ms();
    let stored = segment::Model {
        workspace_id: workspace.to_owned(),
        segment_id: new_id("seg", clock),
        name: segment.name,
        description: segment.description,
        rule: prost::Message::encode_to_vec(&written.rule),
        rule_text: herald_rules::format(&written.rule),
        created_at: now,
        updated_at: now,
        rule_version: 1,
        backfill_state: BACKFILL_PENDING,
        backfill_total: 0,
        backfill_done: 0,
        backfill_cursor: String::new(),
        backfill_started_at: now,
        backfill_finished_at: None,
    };
    let txn = db.begin().await?;
    segments::bump_version(&txn, workspace).await?;
    check_references(&txn, workspace, &stored.segment_id, &written).await?;
    segments::insert(&txn, &stored).await?;
    txn.commit().await?;
    to_proto(&stored, 0)
}

fn check_segment_id(id: &str) -> Result<(), Error> {
    let mut out = Violations::new();
    out.text(
        "segment_id",
        id,
        Len::required(herald_rules::limits::MAX_SEGMENT_ID),
    );
    Ok(out.finish()?)
}

/// The segment `id` of `workspace`, with its member count.
pub async fn get(db: &DatabaseConnection, workspace: &str, id: &str) -> Result<Segment, Error> {
    check_segment_id(id)?;
    let stored = segments::get(db, workspace, id).await?;
    let members = segments::member_count(db, workspace, id).await?;
    to_proto(&stored, members)
}

/// The number of items a page of `page_size` holds.
fn page_limit(page_size: i32) -> Result<usize, Error> {
    match page_size {
        ..0 => Err(Error::invalid("page_size", "must not be negative")),
        0 => Ok(DEFAULT_PAGE as usize),
        n => Ok(n.min(MAX_PAGE) as usize),
    }
}

/// A page token of ListSegments: the position after `cursor`.
fn encode_list_token(cursor: &Cursor) -> String {
    hex::encode(format!("s1:{}:{}", cursor.created_at, cursor.segment_id))
}

fn decode_list_token(token: &str) -> Result<Cursor, Error> {
    let bad = || Error::invalid("page_token", "is not a token returned by ListSegments");
    let raw = String::from_utf8(hex::decode(token).map_err(|_| bad())?).map_err(|_| bad())?;
    let mut parts = raw.splitn(3, ':');
    let (Some("s1"), Some(created_at), Some(segment_id)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    Ok(Cursor {
        created_at: created_at.parse().map_err(|_| bad())?,
        segment_id: segment_id.to_owned(),
    })
}

/// One page of `workspace`'s segments, newest first, and the next page's token.
pub async fn list(
    db: &DatabaseConnection,
    workspace: &str,
    page_size: i32,
    page_token: &str,
) -> Result<(Vec<Segment>, String), Error> {
    let limit = page_limit(page_size)?;
    let cursor = if page_token.is_empty() {
        None
    } else {
        Some(decode_list_token(page_token)?)
    };
    let mut rows = segments::list(db, workspace, cursor.as_ref(), limit as u64 + 1).await?;
    let mut next = String::new();
    if rows.len() > limit {
        rows.truncate(limit);
        if let Some(last) = rows.last() {
            next = encode_list_token(&Cursor {
                created_at: last.created_at,
                segment_id: last.segment_id.clone(),
            });
        }
    }
    let ids: Vec<&str> = rows.iter().map(|s| s.segment_id.as_str()).collect();
    let counts = segments::member_counts(db, workspace, &ids).await?;
    let segments = rows
        .iter()
        .map(|s| to_proto(s, counts.get(&s.segment_id).copied().unwrap_or(0)))
        .collect::<Result<_, _>>()?;
    Ok((segments, next))
}

/// An update time after `previous`, so that every write is a new version.
fn next_update_ms(clock: &Clock, previous: i64) -> i64 {
    clock.now_ms().max(previous + 1)
}

/// What UpdateSegment did.
#[derive(Debug)]
pub struct Updated {
    pub segment: Segment,
    /// Whether the rule changed, so its backfill is pending again.
    pub rule_changed: bool,
}

/// Replaces the fields of the stored segment named by `paths` with those of `update`.
/// A changed rule moves the rule version and restarts the backfill: wake the backfill
/// after this returns with `rule_changed`.
pub async fn update(
    db: &DatabaseConnection,
    clock: &Clock,
    workspace: &str,
    update: Segment,
    paths: &[String],
) -> Result<Updated, Error> {
    let mut out = Violations::new();
    if update.id.is_empty() {
        out.push("segment.id", "is required");
    }
    if paths.is_empty() {
        out.push("update_mask", "must name at least one field to update");
    }
    let (mut name, mut description, mut written) = (None, None, None);
    let mut rule_path: Option<&str> = None;
    for (i, path) in paths.iter().enumerate() {
        let field = format!("update_mask.paths[{i}]");
        match path.as_str() {
            "name" => {
                out.text("segment.name", &update.name, Len::required(MAX_NAME));
                name = Some(&update.name);
            }
            "description" => {
                out.text(
                    "segment.description",
                    &update.description,
                    Len::optional(MAX_DESCRIPTION),
                );
                description = Some(&update.description);
            }
            "rule" | "rule_text" if rule_path.is_some_and(|p| p != path.as_str()) => out.push(
                field,
                "rule and rule_text are mutually exclusive: name one of them",
            ),
            "rule" | "rule_text" if rule_path.is_some() => {}
            "rule" => {
                rule_path = Some("rule");
                written = match &update.rule {
                    Some(rule) => collect(from_tree(rule, RuleIn::Segment), &mut out),
                    None => {
                        out.push(RULE, "is required when update_mask names rule");
                        None
                    }
                };
            }
            "rule_text" => {
                rule_path = Some("rule_text");
                written = if update.rule_text.is_empty() {
                    out.push(RULE_TEXT, "is required when update_mask names rule_text");
                    None
                } else {
                    collect(from_text(&update.rule_text, RuleIn::Segment), &mut out)
                };
            }
            "id" | "create_time" | "update_time" | "member_count" | "backfill" => {
                out.push(field, format!("{path} is output only"))
            }
            _ if path.starts_with("backfill.") => out.push(field, format!("{path} is output only")),
            _ => out.push(field, format!("unknown segment field {path:?}")),
        }
    }
    let written = match rule_path {
        Some(_) => Some(checked(written, out)?),
        None => {
            out.finish()?;
            None
        }
    };

    let stored = segments::get(db, workspace, &update.id).await?;
    let mut next = stored.clone();
    if let Some(name) = name {
        next.name.clone_from(name);
    }
    if let Some(description) = description {
        next.description.clone_from(description);
    }
    next.updated_at = next_update_ms(clock, stored.updated_at);
    let changed_rule = match written {
        Some(written) if written.rule != segments::rule(&stored)? => Some(written),
        _ => None,
    };
    let Some(written) = changed_rule else {
        segments::update(db, &next, stored.updated_at, false).await?;
        let members = segments::member_count(db, workspace, &next.segment_id).await?;
        return Ok(Updated {
            segment: to_proto(&next, members)?,
            rule_changed: false,
        });
    };
    next.rule = prost::Message::encode_to_vec(&written.rule);
    next.rule_text = herald_rules::format(&written.rule);
    next.rule_version = stored.rule_version + 1;
    let now = next.updated_at;
    restart_backfill(&mut next, now);
    let txn = db.begin().await?;
    segments::bump_version(&txn, workspace).await?;
    check_references(&txn, workspace, &next.segment_id, &written).await?;
    segments::update(&txn, &next, stored.updated_at, true).await?;
    txn.commit().await?;
    let members = segments::member_count(db, workspace, &next.segment_id).await?;
    Ok(Updated {
        segment: to_proto(&next, members)?,
        rule_changed: true,
    })
}

/// FAILED_PRECONDITION when another segment of `all` refers to segment `id`.
fn refuse_if_referenced(all: &[segment::Model], id: &str) -> Result<(), Error> {
    let mut users = Vec::new();
    for s in all.iter().filter(|s| s.segment_id != id) {
        if herald_rules::segment_references(&segments::rule(s)?).contains(&id) {
            users.push(s.segment_id.as_str());
        }
    }
    if users.is_empty() {
        return Ok(());
    }
    Err(Error::failed_precondition(format!(
        "segment {id:?} is used by segments {}; remove it from their rules first",
        users.join(", ")
    )))
}

/// The campaigns of `workspace` that reference segment `id`, as trigger lists them.
/// UNAVAILABLE when trigger cannot answer: a segment is deleted only once trigger said
/// that no campaign uses it.
async fn campaigns_using(
    trigger: &Downstream,
    deadline: Option<Deadline>,
    workspace: &str,
    id: &str,
) -> Result<Vec<String>, Error> {
    let request = trigger.request(
        ListSegmentReferencesRequest {
            workspace_id: workspace.to_owned(),
            segment_id: id.to_owned(),
        },
        deadline,
    );
    match TriggerInternalServiceClient::new(trigger.channel())
        .list_segment_references(request)
        .await
    {
        Ok(response) => Ok(response.into_inner().campaign_ids),
        Err(status) => Err(Error::Unavailable(Box::new(Message(format!(
            "trigger did not list the campaigns using segment {id:?}: {:?}: {}",
            status.code(),
            status.message()
        ))))),
    }
}

/// Deletes segment `id` of `workspace` and its memberships, unless another segment or a
/// campaign (asked of trigger, within `deadline`) still uses it.
pub async fn delete(
    db: &DatabaseConnection,
    trigger: &Downstream,
    deadline: Option<Deadline>,
    workspace: &str,
    id: &str,
) -> Result<(), Error> {
    check_segment_id(id)?;
    let not_found = || Error::NotFound(format!("segment {id:?} not found"));
    let all = segments::active_segments(db, workspace).await?;
    if !all.iter().any(|s| s.segment_id == id) {
        return Err(not_found());
    }
    refuse_if_referenced(&all, id)?;
    let campaigns = campaigns_using(trigger, deadline, workspace, id).await?;
    if !campaigns.is_empty() {
        return Err(Error::failed_precondition(format!(
            "segment {id:?} is used by campaigns {}; remove it from their audience and trigger first",
            campaigns.join(", ")
        )));
    }
    let txn = db.begin().await?;
    segments::bump_version(&txn, workspace).await?;
    // Again under the lock: a segment referring to this one may have been saved since.
    refuse_if_referenced(&segments::active_segments(&txn, workspace).await?, id)?;
    if !segments::delete(&txn, workspace, id).await? {
        return Err(not_found());
    }
    txn.commit().await?;
    Ok(())
}

/// A page token of ListSegmentMembers: the position after user `after` in segment `id`.
fn encode_members_token(id: &str, after: &str) -> String {
    hex::encode(format!("m1:{id}:{after}"))
}

fn decode_members_token(token: &str, id: &str) -> Result<String, Error> {
    let bad = || {
        Error::invalid(
            "page_token",
            "is not a token returned by ListSegmentMembers",
        )
    };
    let raw = String::from_utf8(hex::decode(token).map_err(|_| bad())?).map_err(|_| bad())?;
    match raw.strip_prefix(&format!("m1:{id}:")) {
        Some(after) => Ok(after.to_owned()),
        None if raw.starts_with("m1:") => Err(Error::invalid(
            "page_token",
            "was issued for a different segment_id",
        )),
        None => Err(bad()),
    }
}

/// One page of the members of segment `id`, by user id, and the next page's token.
pub async fn members(
    db: &DatabaseConnection,
    workspace: &str,
    id: &str,
    page_size: i32,
    page_token: &str,
) -> Result<(Vec<SegmentMember>, String), Error> {
    check_segment_id(id)?;
    let limit = page_limit(page_size)?;
    let after = if page_token.is_empty() {
        None
    } else {
        Some(decode_members_token(page_token, id)?)
    };
    segments::get(db, workspace, id).await?;
    let mut rows = segments::members(db, workspace, id, after.as_deref(), limit as u64 + 1).await?;
    let mut next = String::new();
    if rows.len() > limit {
        rows.truncate(limit);
        if let Some(last) = rows.last() {
            next = encode_members_token(id, &last.user_id);
        }
    }
    let members = rows
        .into_iter()
        .map(|m| SegmentMember {
            user_id: m.user_id,
            enter_time: Some(proto_from_ms(m.entered_at)),
        })
        .collect();
    Ok((members, next))
}

/// The segments user `user_id` of `workspace` is in and their traits; NOT_FOUND for a
/// user segmentation never heard of.
pub async fn user_segments(
    db: &DatabaseConnection,
    workspace: &str,
    user_id: &str,
) -> Result<GetUserSegmentsResponse, Error> {
    let mut out = Violations::new();
    out.text("user_id", user_id, Len::required(limits::USER_ID));
    out.finish()?;
    let user = store::user::Entity::find_by_id((workspace.to_owned(), user_id.to_owned()))
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("user {user_id:?} not found")))?;
    let traits = traits::decode(&user.traits)
        .map_err(|e| Error::corrupt(format!("traits of user {user_id:?}: {e}")))?;
    Ok(GetUserSegmentsResponse {
        segment_ids: segments::segments_of_user(db, workspace, user_id).await?,
        traits: traits::present(&traits),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_tokens_round_trip() {
        let cursor = Cursor {
            created_at: 1_764_720_000_123,
            segment_id: "seg_abc".into(),
        };
        assert_eq!(
            decode_list_token(&encode_list_token(&cursor)).expect("decodes"),
            cursor
        );
        assert!(decode_list_token("zz").is_err());
        assert!(decode_list_token(&hex::encode("s2:1:x")).is_err());
        assert!(decode_list_token(&encode_members_token("seg_a", "u1")).is_err());
    }

    #[test]
    fn member_tokens_are_bound_to_their_segment() {
        let token = encode_members_token("seg_a", "user:1");
        assert_eq!(decode_members_token(&token, "seg_a").unwrap(), "user:1");
        let Err(Error::InvalidArgument(v)) = decode_members_token(&token, "seg_b") else {
            panic!("a token of another segment is refused")
        };
        assert!(v[0].description.contains("different segment_id"));
        assert!(
            decode_members_token(
                &encode_list_token(&Cursor {
                    created_at: 1,
                    segment_id: "seg_a".into()
                }),
                "seg_a"
            )
            .is_err()
        );
    }

    #[test]
    fn page_sizes_default_clamp_and_refuse_negatives() {
        assert_eq!(page_limit(0).unwrap(), 50);
        assert_eq!(page_limit(7).unwrap(), 7);
        assert_eq!(page_limit(5000).unwrap(), 1000);
        assert!(page_limit(-1).is_err());
    }

    #[test]
    fn text_errors_carry_line_and_column() {
        let Err(v) = from_text("plan == ", RuleIn::Segment) else {
            panic!("refused")
        };
        assert_eq!(v[0].field, "segment.rule_text");
        assert_eq!(
            v[0].description,
            "expected a value after `==` (line 1, column 9)"
        );
    }

    #[test]
    fn tree_errors_are_nested_under_the_segment() {
        let Err(v) = from_tree(&Rule::default(), RuleIn::Segment) else {
            panic!("an empty node is refused")
        };
        assert!(
            v.iter().all(|v| v.field.starts_with("segment.rule")),
            "{v:?}"
        );
    }
}
