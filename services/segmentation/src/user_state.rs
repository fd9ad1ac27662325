//! Users' current state as trigger reads it: one user's when a timer comes due
//! (`SegmentationInternalService.GetUserState`), and a segment's members' page by page
//! when a segment-entry campaign enrols existing members (`ListSegmentUsers`). A state is
//! the user's segments, merged traits, time zone and locale, read in one snapshot.
//!
//! Segmentation keeps no event context, so the last-known time zone is the one a segment
//! transition falls back to (the `time_zone` trait, [`traits::time_zone`]) and the locale
//! is the `locale` trait.

use std::collections::HashMap;

use herald_core::time::proto_from_ms;
use herald_core::{Len, Violations, limits};
use herald_proto::segmentation::v1::{GetUserStateResponse, ListSegmentUsersResponse, SegmentUser};
use herald_runtime::Error;
use sea_orm::{
    AccessMode, ColumnTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait,
    IsolationLevel, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use crate::segments::member;
use crate::store::user;
use crate::{segments, traits};

/// ListSegmentUsers' page size when the request names none.
const DEFAULT_PAGE: usize = 100;
/// ListSegmentUsers' largest page: a page's users are loaded with one `IN` list.
const MAX_PAGE: usize = 500;

/// Checks a GetUserState request's keys.
pub fn validate(workspace_id: &str, user_id: &str) -> Result<(), Error> {
    let mut out = Violations::new();
    out.text(
        "workspace_id",
        workspace_id,
        Len::required(limits::WORKSPACE_ID),
    );
    out.text("user_id", user_id, Len::required(limits::USER_ID));
    Ok(out.finish()?)
}

/// The state of `user_id` of `workspace`; empty for a user segmentation does not know.
pub async fn get(
    db: &DatabaseConnection,
    workspace: &str,
    user_id: &str,
) -> Result<GetUserStateResponse, Error> {
    let txn = snapshot(db).await?;
    let Some(row) = user::Entity::find_by_id((workspace.to_owned(), user_id.to_owned()))
        .one(&txn)
        .await?
    else {
        txn.rollback().await?;
        return Ok(GetUserStateResponse::default());
    };
    let segment_ids = segments::segments_of_user(&txn, workspace, user_id).await?;
    txn.rollback().await?;
    state(user_id, &row.traits, segment_ids)
}

/// A read-only transaction over one snapshot. A user row and their membership rows are
/// written in one transaction; read them in one snapshot so the traits and segments
/// answer for the same instant. A SQLite transaction reads one snapshot already (and
/// warns on an isolation level).
async fn snapshot(db: &DatabaseConnection) -> Result<DatabaseTransaction, Error> {
    Ok(match db.get_database_backend() {
        DbBackend::Postgres => {
            db.begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await?
        }
        _ => db.begin().await?,
    })
}

/// The state of user `user_id` from their stored traits (empty bytes for none) and the
/// sorted ids of their segments.
fn state(
    user_id: &str,
    stored_traits: &[u8],
    segment_ids: Vec<String>,
) -> Result<GetUserStateResponse, Error> {
    let traits = traits::decode(stored_traits)
        .map_err(|e| Error::corrupt(format!("traits of user {user_id:?}: {e}")))?;
    Ok(GetUserStateResponse {
        segment_ids,
        time_zone: traits::time_zone(&traits).unwrap_or_default().to_owned(),
        locale: traits::text(&traits, "locale")
            .unwrap_or_default()
            .to_owned(),
        traits: traits::present(&traits),
    })
}

/// A checked ListSegmentUsers request: how many users its page holds and the user id it
/// starts after.
#[derive(Debug, PartialEq, Eq)]
pub struct Page {
    pub limit: usize,
    pub after: Option<String>,
}

/// Checks a ListSegmentUsers request's keys and page size, and reads its page token.
pub fn validate_list(
    workspace_id: &str,
    segment_id: &str,
    page_size: i32,
    page_token: &str,
) -> Result<Page, Error> {
    let mut out = Violations::new();
    out.text(
        "workspace_id",
        workspace_id,
        Len::required(limits::WORKSPACE_ID),
    );
    out.text(
        "segment_id",
        segment_id,
        Len::required(herald_rules::limits::MAX_SEGMENT_ID),
    );
    let limit = match page_size {
        ..0 => {
            out.push("page_size", "must not be negative");
            0
        }
        0 => DEFAULT_PAGE,
        n => (n as usize).min(MAX_PAGE),
    };
    let after = if page_token.is_empty() {
        None
    } else {
        match decode_token(page_token, workspace_id, segment_id) {
            Ok(after) => Some(after),
            Err(description) => {
                out.push("page_token", description);
                None
            }
        }
    };
    out.finish()?;
    Ok(Page { limit, after })
}

/// The page token of ListSegmentUsers: the position after user `after` among the members
/// of `segment` of `workspace`. The ids are length-prefixed, so no id can pass for another.
fn encode_token(workspace: &str, segment: &str, after: &str) -> String {
    hex::encode(format!(
        "su1:{}:{workspace}{}:{segment}{after}",
        workspace.len(),
        segment.len()
    ))
}

/// The user id a page token starts after, or what is wrong with the token.
fn decode_token(token: &str, workspace: &str, segment: &str) -> Result<String, &'static str> {
    const BAD: &str = "is not a token returned by ListSegmentUsers";
    let raw = hex::decode(token).map_err(|_| BAD)?;
    let raw = String::from_utf8(raw).map_err(|_| BAD)?;
    let rest = raw.strip_prefix("su1:").ok_or(BAD)?;
    let (token_workspace, rest) = length_prefixed(rest).ok_or(BAD)?;
    let (token_segment, after) = length_prefixed(rest).ok_or(BAD)?;
    if token_workspace != workspace || token_segment != segment {
        return Err("was issued for a different workspace_id or segment_id");
    }
    Ok(after.to_owned())
}

/// `"{n}:{text of n bytes}{rest}"` split into the text and the rest.
fn length_prefixed(s: &str) -> Option<(&str, &str)> {
    let (n, rest) = s.split_once(':')?;
    let n: usize = n.parse().ok()?;
    Some((rest.get(..n)?, rest.get(n..)?))
}

/// One page of the current members of `segment` of `workspace`, by user id, each with
/// their state, and the next page's token; an unknown segment has no members. Three
/// queries in one snapshot, whatever the page size: the page of memberships, then the
/// page's users' traits and all their memberships.
pub async fn list(
    db: &DatabaseConnection,
    workspace: &str,
    segment: &str,
    page: Page,
) -> Result<ListSegmentUsersResponse, Error> {
    let txn = snapshot(db).await?;
    let mut members = segments::members(
        &txn,
        workspace,
        segment,
        page.after.as_deref(),
        page.limit as u64 + 1,
    )
    .await?;
    let mut next_page_token = String::new();
    if members.len() > page.limit {
        members.truncate(page.limit);
        if let Some(last) = members.last() {
            next_page_token = encode_token(workspace, segment, &last.user_id);
        }
    }
    if members.is_empty() {
        txn.rollback().await?;
        return Ok(ListSegmentUsersResponse::default());
    }
    let ids: Vec<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
    let mut stored_traits: HashMap<String, Vec<u8>> = user::Entity::find()
        .select_only()
        .column(user::Column::UserId)
        .column(user::Column::Traits)
        .filter(user::Column::WorkspaceId.eq(workspace))
        .filter(user::Column::UserId.is_in(ids.iter().copied()))
        .into_tuple::<(String, Vec<u8>)>()
        .all(&txn)
        .await?
        .into_iter()
        .collect();
    // Ordered by user, then segment: each user's segment ids arrive sorted.
    let mut segment_ids: HashMap<String, Vec<String>> = HashMap::new();
    for (user_id, segment_id) in member::Entity::find()
        .select_only()
        .column(member::Column::UserId)
        .column(member::Column::SegmentId)
        .filter(member::Column::WorkspaceId.eq(workspace))
        .filter(member::Column::UserId.is_in(ids))
        .order_by_asc(member::Column::UserId)
        .order_by_asc(member::Column::SegmentId)
        .into_tuple::<(String, String)>()
        .all(&txn)
        .await?
    {
        segment_ids.entry(user_id).or_default().push(segment_id);
    }
    txn.rollback().await?;
    let users = members
        .into_iter()
        .map(|m| {
            // A member always has a user row; no row reads as no traits.
            let traits = stored_traits.remove(&m.user_id).unwrap_or_default();
            let segments = segment_ids.remove(&m.user_id).unwrap_or_default();
            let GetUserStateResponse {
                segment_ids,
                traits,
                time_zone,
                locale,
            } = state(&m.user_id, &traits, segments)?;
            Ok(SegmentUser {
                user_id: m.user_id,
                segment_ids,
                traits,
                time_zone,
                locale,
                enter_time: Some(proto_from_ms(m.entered_at)),
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(ListSegmentUsersResponse {
        users,
        next_page_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(result: Result<(), Error>) -> Vec<String> {
        match result {
            Err(Error::InvalidArgument(v)) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("expected violations, got {other:?}"),
        }
    }

    #[test]
    fn keys_are_required_and_bounded() {
        assert!(validate("acme", "u1").is_ok());
        assert_eq!(fields(validate("", "")), ["workspace_id", "user_id"]);
        assert_eq!(
            fields(validate(&"w".repeat(129), &"u".repeat(257))),
            ["workspace_id", "user_id"]
        );
        assert!(validate(&"w".repeat(128), &"u".repeat(256)).is_ok());
    }

    fn list_fields(result: Result<Page, Error>) -> Vec<String> {
        fields(result.map(|_| ()))
    }

    #[test]
    fn list_page_sizes_default_clamp_and_refuse_negatives() {
        let limit = |size| validate_list("acme", "seg_a", size, "").unwrap().limit;
        assert_eq!(limit(0), 100);
        assert_eq!(limit(7), 7);
        assert_eq!(limit(500), 500);
        assert_eq!(limit(501), 500);
        assert_eq!(limit(i32::MAX), 500);
        assert_eq!(
            list_fields(validate_list("acme", "seg_a", -1, "")),
            ["page_size"]
        );
    }

    #[test]
    fn list_keys_are_required_and_bounded() {
        assert_eq!(
            list_fields(validate_list("", "", -1, "zz")),
            ["workspace_id", "segment_id", "page_size", "page_token"]
        );
        assert_eq!(
            list_fields(validate_list(&"w".repeat(129), &"s".repeat(129), 0, "")),
            ["workspace_id", "segment_id"]
        );
        assert!(validate_list(&"w".repeat(128), &"s".repeat(128), 0, "").is_ok());
    }

    #[test]
    fn list_tokens_round_trip_and_are_bound_to_their_segment() {
        let token = encode_token("acme", "seg:a", "user:1");
        assert_eq!(
            validate_list("acme", "seg:a", 0, &token)
                .unwrap()
                .after
                .as_deref(),
            Some("user:1")
        );
        // Ids with separators in them cannot pass for one another.
        let shifted = encode_token("acme", "seg", ":auser:1");
        assert_eq!(
            list_fields(validate_list("acme", "seg:a", 0, &shifted)),
            ["page_token"]
        );
        assert_eq!(
            list_fields(validate_list("other", "seg:a", 0, &token)),
            ["page_token"]
        );
        for bad in [
            "zz",
            "00",
            &hex::encode("su1:9:acme"),
            &hex::encode("m1:seg:a:u"),
        ] {
            assert_eq!(
                list_fields(validate_list("acme", "seg:a", 0, bad)),
                ["page_token"],
                "{bad}"
            );
        }
    }
}
