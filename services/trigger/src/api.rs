//! The gRPC adapters of trigger: authenticate, validate, call the domain, answer.

use std::sync::Arc;

use herald_outbox::Outbox;
use herald_proto::trigger::v1::trigger_internal_service_server::TriggerInternalService;
use herald_proto::trigger::v1::trigger_service_server::TriggerService;
use herald_proto::trigger::v1::*;
use herald_runtime::{Caller, FieldViolation};
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::render::TemplateCache;
use crate::{fire, manage};

/// Most events in one HandleEvents call.
const MAX_EVENTS: usize = 1000;

fn workspace<T>(request: &Request<T>) -> Result<String, Status> {
    Caller::of(request)?
        .workspace()
        .map(str::to_owned)
        .ok_or_else(|| Status::permission_denied("campaign RPCs need a workspace API key"))
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, Error> {
    value.ok_or_else(|| Error::invalid(field, "is required"))
}

/// The public campaign API.
pub struct Campaigns {
    pub db: DatabaseConnection,
    pub templates: Arc<TemplateCache>,
}

#[tonic::async_trait]
impl TriggerService for Campaigns {
    async fn create_campaign(
        &self,
        request: Request<CreateCampaignRequest>,
    ) -> Result<Response<CreateCampaignResponse>, Status> {
        let workspace = workspace(&request)?;
        let campaign = required(request.into_inner().campaign, "campaign")?;
        let campaign =
            manage::create(&self.db, self.templates.parser(), &workspace, campaign).await?;
        Ok(Response::new(CreateCampaignResponse {
            campaign: Some(campaign),
        }))
    }

    async fn get_campaign(
        &self,
        request: Request<GetCampaignRequest>,
    ) -> Result<Response<GetCampaignResponse>, Status> {
        let workspace = workspace(&request)?;
        let campaign = manage::get(&self.db, &workspace, &request.into_inner().campaign_id).await?;
        Ok(Response::new(GetCampaignResponse {
            campaign: Some(campaign),
        }))
    }

    async fn list_campaigns(
        &self,
        request: Request<ListCampaignsRequest>,
    ) -> Result<Response<ListCampaignsResponse>, Status> {
        let workspace = workspace(&request)?;
        let r = request.into_inner();
        let (campaigns, next_page_token) =
            manage::list(&self.db, &workspace, r.page_size, &r.page_token, r.status).await?;
        Ok(Response::new(ListCampaignsResponse {
            campaigns,
            next_page_token,
        }))
    }

    async fn update_campaign(
        &self,
        request: Request<UpdateCampaignRequest>,
    ) -> Result<Response<UpdateCampaignResponse>, Status> {
        let workspace = workspace(&request)?;
        let r = request.into_inner();
        let campaign = required(r.campaign, "campaign")?;
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let campaign = manage::update(
            &self.db,
            self.templates.parser(),
            &workspace,
            campaign,
            &paths,
        )
        .await?;
        Ok(Response::new(UpdateCampaignResponse {
            campaign: Some(campaign),
        }))
    }

    async fn set_campaign_status(
        &self,
        request: Request<SetCampaignStatusRequest>,
    ) -> Result<Response<SetCampaignStatusResponse>, Status> {
        let workspace = workspace(&request)?;
        let r = request.into_inner();
        let campaign = manage::set_status(
            &self.db,
            self.templates.parser(),
            &workspace,
            &r.campaign_id,
            r.status,
        )
        .await?;
        Ok(Response::new(SetCampaignStatusResponse {
            campaign: Some(campaign),
        }))
    }

    async fn explain_decision(
        &self,
        _: Request<ExplainDecisionRequest>,
    ) -> Result<Response<ExplainDecisionResponse>, Status> {
        Err(herald_runtime::not_yet_implemented(
            "TriggerService.ExplainDecision",
        ))
    }
}

/// The internal API fed by segmentation's outbox relay.
pub struct Internal {
    pub db: DatabaseConnection,
    pub outbox: Outbox,
    pub templates: Arc<TemplateCache>,
}

fn check_len(out: &mut Vec<FieldViolation>, field: String, value: &str, max: usize) {
    let len = value.chars().count();
    if len == 0 {
        out.push(FieldViolation::new(field, "is required"));
    } else if len > max {
        out.push(FieldViolation::new(
            field,
            format!("must be at most {max} characters, got {len}"),
        ));
    }
}

fn check_events(request: &HandleEventsRequest) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    check_len(&mut out, "workspace_id".into(), &request.workspace_id, 128);
    if request.events.len() > MAX_EVENTS {
        out.push(FieldViolation::new(
            "events",
            format!("must hold at most {MAX_EVENTS} events"),
        ));
    }
    for (i, user_event) in request.events.iter().enumerate() {
        let Some(event) = &user_event.event else {
            out.push(FieldViolation::new(
                format!("events[{i}].event"),
                "is required",
            ));
            continue;
        };
        check_len(
            &mut out,
            format!("events[{i}].event.message_id"),
            &event.message_id,
            128,
        );
        check_len(
            &mut out,
            format!("events[{i}].event.user_id"),
            &event.user_id,
            256,
        );
        check_len(
            &mut out,
            format!("events[{i}].event.name"),
            &event.name,
            128,
        );
    }
    out
}

#[tonic::async_trait]
impl TriggerInternalService for Internal {
    async fn handle_events(
        &self,
        request: Request<HandleEventsRequest>,
    ) -> Result<Response<HandleEventsResponse>, Status> {
        let request = request.into_inner();
        let violations = check_events(&request);
        if !violations.is_empty() {
            return Err(Error::Invalid(violations).into());
        }
        let outcome = fire::handle_events(
            &self.db,
            &self.outbox,
            &self.templates,
            &request.workspace_id,
            &request.events,
        )
        .await?;
        Ok(Response::new(HandleEventsResponse {
            handled: outcome.handled,
            duplicates: outcome.duplicates,
        }))
    }

    async fn handle_segment_transitions(
        &self,
        _: Request<HandleSegmentTransitionsRequest>,
    ) -> Result<Response<HandleSegmentTransitionsResponse>, Status> {
        Err(herald_runtime::not_yet_implemented(
            "TriggerInternalService.HandleSegmentTransitions",
        ))
    }

    async fn forget_user(
        &self,
        _: Request<ForgetUserRequest>,
    ) -> Result<Response<ForgetUserResponse>, Status> {
        Err(herald_runtime::not_yet_implemented(
            "TriggerInternalService.ForgetUser",
        ))
    }
}
