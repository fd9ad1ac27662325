//! The gRPC adapters of segmentation: the internal service (authenticate, validate,
//! apply, answer) and the public segment API, which comes in a later version.

use herald_outbox::Outbox;
use herald_proto::segmentation::v1::segmentation_internal_service_server::SegmentationInternalService;
use herald_proto::segmentation::v1::segmentation_service_server::SegmentationService;
use herald_proto::segmentation::v1::*;
use herald_runtime::{Caller, not_yet_implemented};
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::{store, validate};

/// The internal service: events and identities relayed by ingest.
pub struct Internal {
    pub db: DatabaseConnection,
    pub outbox: Outbox,
}

/// Internal callers name the workspace in the request; a workspace-scoped key may only
/// name its own.
fn check_workspace<T>(request: &Request<T>, workspace_id: &str) -> Result<(), Status> {
    match Caller::of(request)?.workspace() {
        Some(own) if own != workspace_id => Err(Status::permission_denied(
            "this API key cannot act on another workspace",
        )),
        _ => Ok(()),
    }
}

#[tonic::async_trait]
impl SegmentationInternalService for Internal {
    async fn apply_events(
        &self,
        request: Request<ApplyEventsRequest>,
    ) -> Result<Response<ApplyEventsResponse>, Status> {
        let violations =
            validate::events(&request.get_ref().workspace_id, &request.get_ref().events);
        if !violations.is_empty() {
            return Err(Error::Invalid(violations).into());
        }
        check_workspace(&request, &request.get_ref().workspace_id)?;
        let ApplyEventsRequest {
            workspace_id,
            events,
        } = request.into_inner();
        let applied = store::apply_events(&self.db, &self.outbox, &workspace_id, &events).await?;
        Ok(Response::new(ApplyEventsResponse {
            applied: applied.applied,
            duplicates: applied.duplicates,
        }))
    }

    async fn apply_identities(
        &self,
        request: Request<ApplyIdentitiesRequest>,
    ) -> Result<Response<ApplyIdentitiesResponse>, Status> {
        let violations = validate::identities(
            &request.get_ref().workspace_id,
            &request.get_ref().identities,
        );
        if !violations.is_empty() {
            return Err(Error::Invalid(violations).into());
        }
        check_workspace(&request, &request.get_ref().workspace_id)?;
        let ApplyIdentitiesRequest {
            workspace_id,
            identities,
        } = request.into_inner();
        let applied = store::apply_identities(&self.db, &workspace_id, &identities).await?;
        Ok(Response::new(ApplyIdentitiesResponse {
            applied: applied.applied,
            duplicates: applied.duplicates,
        }))
    }

    async fn forget_user(
        &self,
        _: Request<ForgetUserRequest>,
    ) -> Result<Response<ForgetUserResponse>, Status> {
        Err(not_yet_implemented(
            "SegmentationInternalService.ForgetUser",
        ))
    }
}

/// The public segment API; segments come in a later version.
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

    async fn parse_rule(
        &self,
        _: Request<ParseRuleRequest>,
    ) -> Result<Response<ParseRuleResponse>, Status> {
        Err(not_yet_implemented("SegmentationService.ParseRule"))
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
