//! The gRPC adapters of analytics: the internal service that records interactions and
//! events, and the public statistics API.

use herald_proto::analytics::v1::analytics_internal_service_server::AnalyticsInternalService;
use herald_proto::analytics::v1::analytics_service_server::AnalyticsService;
use herald_proto::analytics::v1::*;
use herald_runtime::{Caller, Clock, Error, not_yet_implemented, require_workspace};
use herald_stats::{self as stats, Counts, Rates};
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::{store, validate};

/// Both gRPC services share the database.
#[derive(Clone)]
pub struct Analytics {
    pub db: DatabaseConnection,
    pub clock: Clock,
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
        require_workspace(&request, &request.get_ref().workspace_id)?;
        let RecordInteractionsRequest {
            workspace_id,
            interactions,
        } = request.into_inner();
        let now = self.clock.now_ms();
        let interactions =
            validate::interactions(&workspace_id, interactions, now).map_err(Error::from)?;
        let recorded =
            store::record_interactions(&self.db, now, &workspace_id, interactions).await?;
        Ok(Response::new(RecordInteractionsResponse {
            recorded: recorded.recorded,
            duplicates: recorded.duplicates,
        }))
    }

    async fn record_events(
        &self,
        request: Request<RecordEventsRequest>,
    ) -> Result<Response<RecordEventsResponse>, Status> {
        require_workspace(&request, &request.get_ref().workspace_id)?;
        let RecordEventsRequest {
            workspace_id,
            events,
        } = request.into_inner();
        let now = self.clock.now_ms();
        let times = validate::events(&workspace_id, &events, now).map_err(Error::from)?;
        let recorded = store::record_events(&self.db, now, &workspace_id, &events, &times).await?;
        // Reserved (see the field's comment): conversions are attributed when statistics
        // are read, in whichever order events and interactions arrived.
        Ok(Response::new(RecordEventsResponse {
            recorded: recorded.recorded,
            duplicates: recorded.duplicates,
            conversions: 0,
        }))
    }

    async fn forget_user(
        &self,
        request: Request<ForgetUserRequest>,
    ) -> Result<Response<ForgetUserResponse>, Status> {
        require_workspace(&request, &request.get_ref().workspace_id)?;
        Err(not_yet_implemented("AnalyticsInternalService.ForgetUser"))
    }
}

#[tonic::async_trait]
impl AnalyticsService for Analytics {
    async fn get_campaign_stats(
        &self,
        request: Request<GetCampaignStatsRequest>,
    ) -> Result<Response<GetCampaignStatsResponse>, Status> {
        let workspace = Caller::of(&request)?.key_workspace()?.to_owned();
        let (start, end) =
            validate::stats_range(request.get_ref(), self.clock.now_ms()).map_err(Error::from)?;
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
