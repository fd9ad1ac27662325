//! The gRPC adapters of segmentation: the internal service (authenticate, validate,
//! apply, answer) and the public segment API (the caller's workspace, then `manage`).

use std::sync::Arc;

use herald_proto::segmentation::v1::segmentation_internal_service_server::SegmentationInternalService;
use herald_proto::segmentation::v1::segmentation_service_server::SegmentationService;
use herald_proto::segmentation::v1::*;
use herald_runtime::{
    Caller, Clock, Deadline, Downstream, Error, not_yet_implemented, require_workspace,
};
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;
use tonic::{Request, Response, Status};

use crate::store::Segmenter;
use crate::{manage, preview, store, user_state, validate};

/// The internal service: events and identities relayed by ingest, interactions relayed
/// by delivery.
pub struct Internal {
    pub segmenter: Segmenter,
}

#[tonic::async_trait]
impl SegmentationInternalService for Internal {
    async fn apply_events(
        &self,
        request: Request<ApplyEventsRequest>,
    ) -> Result<Response<ApplyEventsResponse>, Status> {
        require_workspace(&request, &request.get_ref().workspace_id)?;
        let ApplyEventsRequest {
            workspace_id,
            events,
        } = request.into_inner();
        validate::events(&workspace_id, &events)?;
        let applied = store::apply_events(&self.segmenter, &workspace_id, &events).await?;
        Ok(Response::new(ApplyEventsResponse {
            applied: applied.applied,
            duplicates: applied.duplicates,
        }))
    }

    async fn apply_identities(
        &self,
        request: Request<ApplyIdentitiesRequest>,
    ) -> Result<Response<ApplyIdentitiesResponse>, Status> {
        require_workspace(&request, &request.get_ref().workspace_id)?;
        let ApplyIdentitiesRequest {
            workspace_id,
            identities,
        } = request.into_inner();
        validate::identities(&workspace_id, &identities)?;
        let applied = store::apply_identities(&self.segmenter, &workspace_id, &identities).await?;
        Ok(Response::new(ApplyIdentitiesResponse {
            applied: applied.applied,
            duplicates: applied.duplicates,
        }))
    }

    async fn forget_user(
        &self,
        request: Request<ForgetUserRequest>,
    ) -> Result<Response<ForgetUserResponse>, Status> {
        require_workspace(&request, &request.get_ref().workspace_id)?;
        Err(not_yet_implemented(
            "SegmentationInternalService.ForgetUser",
        ))
    }

    async fn get_user_state(
        &self,
        request: Request<GetUserStateRequest>,
    ) -> Result<Response<GetUserStateResponse>, Status> {
        require_workspace(&request, &request.get_ref().workspace_id)?;
        let GetUserStateRequest {
            workspace_id,
            user_id,
        } = request.into_inner();
        user_state::validate(&workspace_id, &user_id)?;
        let state = user_state::get(&self.segmenter.db, &workspace_id, &user_id).await?;
        Ok(Response::new(state))
    }

    async fn list_segment_users(
        &self,
        request: Request<ListSegmentUsersRequest>,
    ) -> Result<Response<ListSegmentUsersResponse>, Status> {
        require_workspace(&request, &request.get_ref().workspace_id)?;
        let ListSegmentUsersRequest {
            workspace_id,
            segment_id,
            page_size,
            page_token,
        } = request.into_inner();
        let page = user_state::validate_list(&workspace_id, &segment_id, page_size, &page_token)?;
        let users = user_state::list(&self.segmenter.db, &workspace_id, &segment_id, page).await?;
        Ok(Response::new(users))
    }

    async fn apply_interactions(
        &self,
        request: Request<ApplyInteractionsRequest>,
    ) -> Result<Response<ApplyInteractionsResponse>, Status> {
        require_workspace(&request, &request.get_ref().workspace_id)?;
        let ApplyInteractionsRequest {
            workspace_id,
            interactions,
        } = request.into_inner();
        validate::interactions(&workspace_id, &interactions)?;
        let applied =
            store::apply_interactions(&self.segmenter, &workspace_id, &interactions).await?;
        Ok(Response::new(ApplyInteractionsResponse {
            applied: applied.applied,
            duplicates: applied.duplicates,
        }))
    }
}

/// The public segment API: segments, their members, and ParseRule.
pub struct Segments {
    pub db: DatabaseConnection,
    pub clock: Clock,
    /// Woken when a segment's backfill becomes pending (a create or a rule change).
    pub backfill: Arc<Notify>,
    /// Trigger's internal API, asked which campaigns use a segment before deleting it.
    pub trigger: Downstream,
}

fn workspace<T>(request: &Request<T>) -> Result<String, Error> {
    Ok(Caller::of(request)?.key_workspace()?.to_owned())
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, Error> {
    value.ok_or_else(|| Error::invalid(field, "is required"))
}

#[tonic::async_trait]
impl SegmentationService for Segments {
    async fn create_segment(
        &self,
        request: Request<CreateSegmentRequest>,
    ) -> Result<Response<CreateSegmentResponse>, Status> {
        let workspace = workspace(&request)?;
        let segment = required(request.into_inner().segment, "segment")?;
        let segment = manage::create(&self.db, &self.clock, &workspace, segment).await?;
        self.backfill.notify_one();
        Ok(Response::new(CreateSegmentResponse {
            segment: Some(segment),
        }))
    }

    async fn get_segment(
        &self,
        request: Request<GetSegmentRequest>,
    ) -> Result<Response<GetSegmentResponse>, Status> {
        let workspace = workspace(&request)?;
        let segment = manage::get(&self.db, &workspace, &request.into_inner().segment_id).await?;
        Ok(Response::new(GetSegmentResponse {
            segment: Some(segment),
        }))
    }

    async fn list_segments(
        &self,
        request: Request<ListSegmentsRequest>,
    ) -> Result<Response<ListSegmentsResponse>, Status> {
        let workspace = workspace(&request)?;
        let r = request.into_inner();
        let (segments, next_page_token) =
            manage::list(&self.db, &workspace, r.page_size, &r.page_token).await?;
        Ok(Response::new(ListSegmentsResponse {
            segments,
            next_page_token,
        }))
    }

    async fn update_segment(
        &self,
        request: Request<UpdateSegmentRequest>,
    ) -> Result<Response<UpdateSegmentResponse>, Status> {
        let workspace = workspace(&request)?;
        let r = request.into_inner();
        let segment = required(r.segment, "segment")?;
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let updated = manage::update(&self.db, &self.clock, &workspace, segment, &paths).await?;
        if updated.rule_changed {
            self.backfill.notify_one();
        }
        Ok(Response::new(UpdateSegmentResponse {
            segment: Some(updated.segment),
        }))
    }

    async fn delete_segment(
        &self,
        request: Request<DeleteSegmentRequest>,
    ) -> Result<Response<DeleteSegmentResponse>, Status> {
        let workspace = workspace(&request)?;
        let deadline = Deadline::of(&request);
        let id = request.into_inner().segment_id;
        manage::delete(&self.db, &self.trigger, deadline, &workspace, &id).await?;
        Ok(Response::new(DeleteSegmentResponse {}))
    }

    /// Every known user evaluated at now against the rule, within a time budget.
    async fn preview_segment(
        &self,
        request: Request<PreviewSegmentRequest>,
    ) -> Result<Response<PreviewSegmentResponse>, Status> {
        let workspace = workspace(&request)?;
        let PreviewSegmentRequest {
            rule,
            rule_text,
            sample_size,
        } = request.into_inner();
        if sample_size > 100 {
            return Err(Error::invalid("sample_size", "must be at most 100").into());
        }
        let sample = if sample_size == 0 {
            10
        } else {
            sample_size as usize
        };
        let rule = preview::rule_of(&self.db, &workspace, rule, &rule_text).await?;
        let now = self.clock.now_ms();
        let Some((count, sample_user_ids)) =
            preview::preview(&self.db, &workspace, &rule, sample, now, preview::BUDGET).await?
        else {
            return Err(Status::deadline_exceeded(format!(
                "evaluating every user took longer than {} s; the workspace is too large to \
                 preview",
                preview::BUDGET.as_secs()
            )));
        };
        Ok(Response::new(PreviewSegmentResponse {
            count,
            sample_user_ids,
            evaluate_time: Some(herald_core::time::proto_from_ms(now)),
            rule: Some(rule),
        }))
    }

    /// The rule's tree and canonical text, or its first error with the position, in an
    /// OK response; only text over the size limit is INVALID_ARGUMENT.
    async fn parse_rule(
        &self,
        request: Request<ParseRuleRequest>,
    ) -> Result<Response<ParseRuleResponse>, Status> {
        let text = request.into_inner().rule_text;
        if text.len() > herald_rules::limits::MAX_TEXT_BYTES {
            return Err(Error::invalid(
                "rule_text",
                format!(
                    "is {} bytes; at most {} (16 KiB) are allowed",
                    text.len(),
                    herald_rules::limits::MAX_TEXT_BYTES
                ),
            )
            .into());
        }
        let response = match herald_rules::parse(&text) {
            Ok(rule) => ParseRuleResponse {
                canonical_text: herald_rules::format(&rule),
                outcome: Some(parse_rule_response::Outcome::Rule(rule)),
            },
            Err(error) => ParseRuleResponse {
                canonical_text: String::new(),
                outcome: Some(parse_rule_response::Outcome::Error(error.into())),
            },
        };
        Ok(Response::new(response))
    }

    async fn list_segment_members(
        &self,
        request: Request<ListSegmentMembersRequest>,
    ) -> Result<Response<ListSegmentMembersResponse>, Status> {
        let workspace = workspace(&request)?;
        let r = request.into_inner();
        let (members, next_page_token) = manage::members(
            &self.db,
            &workspace,
            &r.segment_id,
            r.page_size,
            &r.page_token,
        )
        .await?;
        Ok(Response::new(ListSegmentMembersResponse {
            members,
            next_page_token,
        }))
    }

    async fn get_user_segments(
        &self,
        request: Request<GetUserSegmentsRequest>,
    ) -> Result<Response<GetUserSegmentsResponse>, Status> {
        let workspace = workspace(&request)?;
        let user_id = request.into_inner().user_id;
        Ok(Response::new(
            manage::user_segments(&self.db, &workspace, &user_id).await?,
        ))
    }
}
