//! PreviewSegment: a rule evaluated against every known user's current state without
//! saving anything, within a time budget.

use std::time::{Duration, Instant};

use herald_proto::segmentation::v1::Rule;
use herald_rules::engine::{Profile, UserView};
use herald_rules::eval::Instants;
use herald_runtime::Error;
use prost::Message;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::manage::{self, RuleIn};
use crate::store::user;
use crate::traits;

/// Users read per query.
const PAGE: u64 = 1000;

/// The longest a preview may take; a workspace too large to evaluate in it is answered
/// DEADLINE_EXCEEDED rather than with a partial count.
pub const BUDGET: Duration = Duration::from_secs(10);

/// How many users of `workspace` match `rule` at `now_ms`, and up to `sample` of them;
/// `None` when evaluating every user takes longer than `budget`.
pub async fn preview(
    db: &DatabaseConnection,
    workspace: &str,
    rule: &Rule,
    sample: usize,
    now_ms: i64,
    budget: Duration,
) -> Result<Option<(u64, Vec<String>)>, Error> {
    let compiled = herald_rules::eval::compile(rule)
        .map_err(|e| Error::invalid("rule", format!("cannot be evaluated: {e}")))?;
    let started = Instant::now();
    let mut after = String::new();
    let (mut count, mut ids) = (0u64, Vec::new());
    loop {
        let rows: Vec<(String, Vec<u8>, Option<Vec<u8>>)> = user::Entity::find()
            .select_only()
            .column(user::Column::UserId)
            .column(user::Column::Traits)
            .column(user::Column::Profile)
            .filter(user::Column::WorkspaceId.eq(workspace))
            .filter(user::Column::UserId.gt(after.as_str()))
            .order_by_asc(user::Column::UserId)
            .limit(PAGE)
            .into_tuple()
            .all(db)
            .await?;
        let Some((last, ..)) = rows.last() else {
            return Ok(Some((count, ids)));
        };
        after = last.clone();
        for (id, traits, profile) in rows {
            let corrupt = |e: prost::DecodeError| Error::corrupt(format!("user {id:?}: {e}"));
            let traits = traits::decode(&traits).map_err(corrupt)?;
            let profile = match profile {
                Some(bytes) => Profile::decode(bytes.as_slice()).map_err(corrupt)?,
                None => Profile::default(),
            };
            let view = UserView {
                traits: Some(&traits),
                profile: &profile,
                instants: &Instants::default(),
            };
            if herald_rules::eval::eval(&compiled, &view, now_ms).member {
                count += 1;
                if ids.len() < sample {
                    ids.push(id);
                }
            }
        }
        if started.elapsed() > budget {
            return Ok(None);
        }
    }
}

/// The rule of a PreviewSegment request: exactly one of `rule` and `rule_text`, checked
/// as a segment's is (`manage`), with references to existing segments of `workspace`
/// only.
pub async fn rule_of(
    db: &DatabaseConnection,
    workspace: &str,
    rule: Option<Rule>,
    rule_text: &str,
) -> Result<Rule, Error> {
    let written = match (rule, rule_text.is_empty()) {
        (Some(_), false) | (None, true) => {
            return Err(Error::invalid(
                "rule_text",
                "set exactly one of rule and rule_text",
            ));
        }
        (None, false) => manage::from_text(rule_text, RuleIn::Request),
        (Some(rule), true) => manage::from_tree(&rule, RuleIn::Request),
    }
    .map_err(Error::InvalidArgument)?;
    // A preview is no segment yet: an id nobody can refer to.
    manage::check_references(db, workspace, "", &written).await?;
    Ok(written.rule)
}
