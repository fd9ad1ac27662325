//! The gRPC adapters of segmentation: the internal service (authenticate, validate,
//! apply, answer) and the public segment API, which comes in a later version.

use herald_outbox::Outbox;
use herald_proto::segmentation::v1::segmentation_internal_service_server::SegmentationInternalService;
use herald_proto::segmentation::v1::segmentation_service_server::SegmentationService;
use herald_proto::segmentation::v1::*;
use herald_runtime::{Clock, Error, not_yet_implemented, require_workspace};
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::{store, validate};

/// The internal service: events and identities relayed by ingest.
pub struct Internal {
    pub db: DatabaseConnection,
    pub outbox: Outbox,
    pub clock: Clock,
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
        let applied =
            store::apply_events(&self.db, &self.outbox, &self.clock, &workspace_id, &events)
                .await?;
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
        let applied =
            store::apply_identities(&self.db, &self.clock, &workspace_id, &identities).await?;
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
}

/// The public segment API: ParseRule; segments themselves come in a later version.
pub struct Segments;

#[tonic::async_trait]
impl SegmentationService for Segments {
    async fn create_segment(
        &self,
        _: Request<CreateSegmentRequest>,
    ) -> Result<Response<CreateSegmentResponse>, Status> {
        Err(not_yet_implemented("SegmentationService.CreateSegment"))
    }

    async fn get_segment(
        &self,
        _: Request<GetSegmentRequest>,
    ) -> Result<Response<GetSegmentResponse>, Status> {
        Err(not_yet_implemented("SegmentationService.GetSegment"))
    }

    async fn list_segments(
        &self,
        _: Request<ListSegmentsRequest>,
    ) -> Result<Response<ListSegmentsResponse>, Status> {
        Err(not_yet_implemented("SegmentationService.ListSegments"))
    }

    async fn update_segment(
        &self,
        _: Request<UpdateSegmentRequest>,
    ) -> Result<Response<UpdateSegmentResponse>, Status> {
        Err(not_yet_implemented("SegmentationService.UpdateSegment"))
    }

    async fn delete_segment(
        &self,
        _: Request<DeleteSegmentRequest>,
    ) -> Result<Response<DeleteSegmentResponse>, Status> {
        Err(not_yet_implemented("SegmentationService.DeleteSegment"))
    }

    async fn preview_segment(
        &self,
        _: Request<PreviewSegmentRequest>,
    ) -> Result<Response<PreviewSegmentResponse>, Status> {
        Err(not_yet_implemented("SegmentationService.PreviewSegment"))
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
        _: Request<ListSegmentMembersRequest>,
    ) -> Result<Response<ListSegmentMembersResponse>, Status> {
        Err(not_yet_implemented(
            "SegmentationService.ListSegmentMembers",
        ))
    }

    async fn get_user_segments(
        &self,
        _: Request<GetUserSegmentsRequest>,
    ) -> Result<Response<GetUserSegmentsResponse>, Status> {
        Err(not_yet_implemented("SegmentationService.GetUserSegments"))
    }
}
