//! The gRPC adapters of analytics: the internal service that records interactions and
//! events, and the public statistics API.

use herald_proto::analytics::v1::analytics_internal_service_server::AnalyticsInternalService;
use herald_proto::analytics::v1::analytics_service_server::AnalyticsService;
use herald_proto::analytics::v1::*;
use herald_runtime::{Caller, not_yet_implemented};
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::stats::{self, Counts, Rates};
use crate::{store, validate};

/// Both gRPC services share the database.
pub struct Analytics {
    pub db: DatabaseConnection,
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

fn variant_stats(variant_id: String, control: bool, counts: &Counts, rates: Rates) -> VariantStats {
    VariantStats {
        variant_id,
        control,
        sent: counts.sent,
        delivered: counts.delivered,
        impressions: counts.impressions,
        clicks: counts.clicks,
        dismissals: counts.dismissals,
        conversions: counts.conversions,
        click_rate: rates.click_rate,
        dismissal_rate: rates.dismissal_rate,
        conversion_rate: rates.conversion_rate,
        uplift: rates.uplift,
        confidence: rates.confidence,
        assigned: counts.assigned,
    }
}

#[tonic::async_trait]
impl AnalyticsInternalService for Analytics {
    async fn record_interactions(
        &self,
        request: Request<RecordInteractionsRequest>,
    ) -> Result<Response<RecordInteractionsResponse>, Status> {
        let workspace_id = request.get_ref().workspace_id.clone();
        let now = herald_storage::now_ms();
        let interactions =
            validate::interactions(&workspace_id, request.get_ref().interactions.clone(), now)
                .map_err(Error::Invalid)?;
        check_workspace(&request, &workspace_id)?;
        let recorded = store::record_interactions(&self.db, &workspace_id, interactions).await?;
        Ok(Response::new(RecordInteractionsResponse {
            recorded: recorded.recorded,
            duplicates: recorded.duplicates,
        }))
    }

    async fn record_events(
        &self,
        request: Request<RecordEventsRequest>,
    ) -> Result<Response<RecordEventsResponse>, Status> {
        let now = herald_storage::now_ms();
        let times = validate::events(
            &request.get_ref().workspace_id,
            &request.get_ref().events,
            now,
        )
        .map_err(Error::Invalid)?;
        check_workspace(&request, &request.get_ref().workspace_id)?;
        let RecordEventsRequest {
            workspace_id,
            events,
        } = request.into_inner();
        let recorded = store::record_events(&self.db, &workspace_id, &events, &times).await?;
        // Conversions are attributed when statistics are read, in whichever order events
        // and interactions arrived; none are counted here.
        Ok(Response::new(RecordEventsResponse {
            recorded: recorded.recorded,
            duplicates: recorded.duplicates,
            conversions: 0,
        }))
    }

    async fn forget_user(
        &self,
        _: Request<ForgetUserRequest>,
    ) -> Result<Response<ForgetUserResponse>, Status> {
        Err(not_yet_implemented("AnalyticsInternalService.ForgetUser"))
    }
}

#[tonic::async_trait]
impl AnalyticsService for Analytics {
    async fn get_campaign_stats(
        &self,
        request: Request<GetCampaignStatsRequest>,
    ) -> Result<Response<GetCampaignStatsResponse>, Status> {
        let workspace = Caller::of(&request)?
            .workspace()
            .map(str::to_owned)
            .ok_or_else(|| Status::permission_denied("statistics need a workspace API key"))?;
        let (start, end) = validate::stats_range(request.get_ref(), herald_storage::now_ms())
            .map_err(Error::Invalid)?;
        let campaign_id = request.into_inner().campaign_id;
        let counts = store::campaign_counts(&self.db, &workspace, &campaign_id, start, end).await?;
        let control = counts.control.as_ref();
        let mut variants: Vec<VariantStats> = counts
            .variants
            .iter()
            .map(|(id, c)| variant_stats(id.clone(), false, c, stats::variant_rates(c, control)))
            .collect();
        if let Some(c) = control {
            variants.push(variant_stats(
                String::new(),
                true,
                c,
                stats::control_rates(c),
            ));
        }
        let total = variant_stats(
            String::new(),
            false,
            &counts.total,
            stats::variant_rates(&counts.total, control),
        );
        Ok(Response::new(GetCampaignStatsResponse {
            stats: Some(CampaignStats {
                campaign_id,
                variants,
                total: Some(total),
            }),
        }))
    }

    async fn get_time_series(
        &self,
        _: Request<GetTimeSeriesRequest>,
    ) -> Result<Response<GetTimeSeriesResponse>, Status> {
        Err(not_yet_implemented("AnalyticsService.GetTimeSeries"))
    }
}
