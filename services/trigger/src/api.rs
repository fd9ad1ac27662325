//! The gRPC adapters of trigger: authenticate, validate, call the domain, answer.

use std::sync::Arc;

use herald_core::{Len, Violations, limits};
use herald_proto::trigger::v1::trigger_internal_service_server::TriggerInternalService;
use herald_proto::trigger::v1::trigger_service_server::TriggerService;
use herald_proto::trigger::v1::*;
use herald_runtime::{Caller, Clock, Error, not_yet_implemented, require_workspace};
use herald_timers::Timers;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::cache::CampaignCache;
use crate::engine::Engine;
use crate::{decisions, fire, manage, store, transitions};

fn workspace<T>(request: &Request<T>) -> Result<String, Error> {
    Ok(Caller::of(request)?.key_workspace()?.to_owned())
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, Error> {
    value.ok_or_else(|| Error::invalid(field, "is required"))
}

/// The public campaign API.
pub struct Campaigns {
    pub db: DatabaseConnection,
    pub cache: Arc<CampaignCache>,
    pub clock: Clock,
    /// For the enrolment of existing segment members when a campaign becomes ACTIVE.
    pub timers: Timers,
}

#[tonic::async_trait]
impl TriggerService for Campaigns {
    async fn create_campaign(
        &self,
        request: Request<CreateCampaignRequest>,
    ) -> Result<Response<CreateCampaignResponse>, Status> {
        let workspace = workspace(&request)?;
        let campaign = required(request.into_inner().campaign, "campaign")?;
        let campaign = manage::create(
            &self.db,
            &self.timers,
            self.cache.parser(),
            &self.clock,
            &workspace,
            campaign,
        )
        .await?;
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
            &self.timers,
            self.cache.parser(),
            &self.clock,
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
            &self.timers,
            self.cache.parser(),
            &self.clock,
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
        request: Request<ExplainDecisionRequest>,
    ) -> Result<Response<ExplainDecisionResponse>, Status> {
        let workspace = workspace(&request)?;
        let r = request.into_inner();
        let (decisions, next_page_token) = decisions::explain(
            &self.db,
            &workspace,
            &r.campaign_id,
            &r.user_id,
            r.page_size,
            &r.page_token,
        )
        .await?;
        Ok(Response::new(ExplainDecisionResponse {
            decisions,
            next_page_token,
        }))
    }

    async fn create_cap_rule(
        &self,
        request: Request<CreateCapRuleRequest>,
    ) -> Result<Response<CreateCapRuleResponse>, Status> {
        let workspace = workspace(&request)?;
        let rule = required(request.into_inner().cap_rule, "cap_rule")?;
        let rule = crate::admin::create_rule(&self.db, &self.clock, &workspace, rule).await?;
        Ok(Response::new(CreateCapRuleResponse {
            cap_rule: Some(rule),
        }))
    }

    async fn list_cap_rules(
        &self,
        request: Request<ListCapRulesRequest>,
    ) -> Result<Response<ListCapRulesResponse>, Status> {
        let workspace = workspace(&request)?;
        let cap_rules = crate::admin::list_rules(&self.db, &workspace).await?;
        Ok(Response::new(ListCapRulesResponse { cap_rules }))
    }

    async fn update_cap_rule(
        &self,
        request: Request<UpdateCapRuleRequest>,
    ) -> Result<Response<UpdateCapRuleResponse>, Status> {
        let workspace = workspace(&request)?;
        let r = request.into_inner();
        let rule = required(r.cap_rule, "cap_rule")?;
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let rule =
            crate::admin::update_rule(&self.db, &self.clock, &workspace, rule, &paths).await?;
        Ok(Response::new(UpdateCapRuleResponse {
            cap_rule: Some(rule),
        }))
    }

    async fn delete_cap_rule(
        &self,
        request: Request<DeleteCapRuleRequest>,
    ) -> Result<Response<DeleteCapRuleResponse>, Status> {
        let workspace = workspace(&request)?;
        let id = request.into_inner().cap_rule_id;
        crate::admin::delete_rule(&self.db, &workspace, &id).await?;
        Ok(Response::new(DeleteCapRuleResponse {}))
    }

    async fn get_trigger_settings(
        &self,
        request: Request<GetTriggerSettingsRequest>,
    ) -> Result<Response<GetTriggerSettingsResponse>, Status> {
        let workspace = workspace(&request)?;
        let settings = crate::admin::get_settings(&self.db, &workspace).await?;
        Ok(Response::new(GetTriggerSettingsResponse {
            settings: Some(settings),
        }))
    }

    async fn update_trigger_settings(
        &self,
        request: Request<UpdateTriggerSettingsRequest>,
    ) -> Result<Response<UpdateTriggerSettingsResponse>, Status> {
        let workspace = workspace(&request)?;
        let r = request.into_inner();
        // Unset settings are all fields at their defaults: with a mask, that clears them.
        let update = r.settings.unwrap_or_default();
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let settings =
            crate::admin::update_settings(&self.db, &self.clock, &workspace, update, &paths)
                .await?;
        Ok(Response::new(UpdateTriggerSettingsResponse {
            settings: Some(settings),
        }))
    }
}

/// The internal API fed by segmentation's outbox relay, and asked by segmentation which
/// campaigns use a segment.
pub struct Internal {
    pub engine: Engine,
}

fn check_events(request: &HandleEventsRequest) -> Result<(), Error> {
    let mut out = Violations::new();
    out.text(
        "workspace_id",
        &request.workspace_id,
        Len::required(limits::WORKSPACE_ID),
    );
    if request.events.len() > limits::MAX_BATCH {
        out.push(
            "events",
            format!("must hold at most {} events", limits::MAX_BATCH),
        );
    }
    for (i, user_event) in request.events.iter().enumerate() {
        let Some(event) = &user_event.event else {
            out.push(format!("events[{i}].event"), "is required");
            continue;
        };
        out.event_keys(
            &format!("events[{i}].event"),
            &event.message_id,
            &event.user_id,
            &event.name,
        );
    }
    Ok(out.finish()?)
}

/// The longest segment id: the limit campaigns store segment ids under.
const SEGMENT_ID: usize = herald_campaigns::validate::MAX_SEGMENT_ID;
/// The longest segment transition id.
const TRANSITION_ID: usize = 128;

fn check_transitions(request: &HandleSegmentTransitionsRequest) -> Result<(), Error> {
    let mut out = Violations::new();
    out.batch(
        &request.workspace_id,
        "transitions",
        request.transitions.len(),
    );
    for (i, transition) in request.transitions.iter().enumerate() {
        let field = format!("transitions[{i}]");
        out.text(
            format!("{field}.id"),
            &transition.id,
            Len::required(TRANSITION_ID),
        );
        out.text(
            format!("{field}.segment_id"),
            &transition.segment_id,
            Len::required(SEGMENT_ID),
        );
        out.text(
            format!("{field}.user_id"),
            &transition.user_id,
            Len::required(limits::USER_ID),
        );
        if !matches!(
            TransitionKind::try_from(transition.kind),
            Ok(TransitionKind::Entered | TransitionKind::Exited)
        ) {
            out.push(format!("{field}.kind"), "must be ENTERED or EXITED");
        }
    }
    Ok(out.finish()?)
}

fn check_segment_reference(request: &ListSegmentReferencesRequest) -> Result<(), Error> {
    let mut out = Violations::new();
    out.text(
        "workspace_id",
        &request.workspace_id,
        Len::required(limits::WORKSPACE_ID),
    );
    out.text("segment_id", &request.segment_id, Len::required(SEGMENT_ID));
    Ok(out.finish()?)
}

fn check_workspace_id(workspace_id: &str) -> Result<(), Error> {
    let mut out = Violations::new();
    out.text(
        "workspace_id",
        workspace_id,
        Len::required(limits::WORKSPACE_ID),
    );
    Ok(out.finish()?)
}

#[tonic::async_trait]
impl TriggerInternalService for Internal {
    async fn handle_events(
        &self,
        request: Request<HandleEventsRequest>,
    ) -> Result<Response<HandleEventsResponse>, Status> {
        require_workspace(&request, &request.get_ref().workspace_id)?;
        let request = request.into_inner();
        check_events(&request)?;
        let outcome =
            fire::handle_events(&self.engine, &request.workspace_id, &request.events).await?;
        Ok(Response::new(HandleEventsResponse {
            handled: outcome.handled,
            duplicates: outcome.duplicates,
        }))
    }

    async fn handle_segment_transitions(
        &self,
        request: Request<HandleSegmentTransitionsRequest>,
    ) -> Result<Response<HandleSegmentTransitionsResponse>, Status> {
        require_workspace(&request, &request.get_ref().workspace_id)?;
        let request = request.into_inner();
        check_transitions(&request)?;
        let outcome = transitions::handle_transitions(
            &self.engine,
            &request.workspace_id,
            &request.transitions,
        )
        .await?;
        Ok(Response::new(HandleSegmentTransitionsResponse {
            handled: outcome.handled,
            duplicates: outcome.duplicates,
        }))
    }

    async fn forget_user(
        &self,
        request: Request<ForgetUserRequest>,
    ) -> Result<Response<ForgetUserResponse>, Status> {
        require_workspace(&request, &request.get_ref().workspace_id)?;
        Err(not_yet_implemented("TriggerInternalService.ForgetUser"))
    }

    async fn list_segment_references(
        &self,
        request: Request<ListSegmentReferencesRequest>,
    ) -> Result<Response<ListSegmentReferencesResponse>, Status> {
        require_workspace(&request, &request.get_ref().workspace_id)?;
        let request = request.into_inner();
        check_segment_reference(&request)?;
        let campaign_ids =
            store::segment_references(&self.engine.db, &request.workspace_id, &request.segment_id)
                .await?;
        Ok(Response::new(ListSegmentReferencesResponse {
            campaign_ids,
        }))
    }

    async fn get_display_settings(
        &self,
        request: Request<GetDisplaySettingsRequest>,
    ) -> Result<Response<GetDisplaySettingsResponse>, Status> {
        require_workspace(&request, &request.get_ref().workspace_id)?;
        let request = request.into_inner();
        check_workspace_id(&request.workspace_id)?;
        let settings = crate::admin::get_settings(&self.engine.db, &request.workspace_id).await?;
        Ok(Response::new(GetDisplaySettingsResponse {
            min_in_app_interval: settings.min_in_app_interval,
        }))
    }
}
