//! The gRPC adapters of analytics: the internal service that records interactions and
//! events, and the public statistics API.

use std::collections::HashMap;
use std::sync::Arc;

use herald_outbox::Outbox;
use herald_proto::analytics::v1::analytics_internal_service_server::AnalyticsInternalService;
use herald_proto::analytics::v1::analytics_service_server::AnalyticsService;
use herald_proto::analytics::v1::*;
use herald_runtime::{Caller, Clock, Error, not_yet_implemented, require_workspace};
use jiff::tz::TimeZone;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::store::Arms;
use crate::{report, series, store, validate};

/// Both gRPC services share the database.
#[derive(Clone)]
pub struct Analytics {
    pub db: DatabaseConnection,
    pub clock: Clock,
    /// Conversions to segmentation.
    pub outbox: Outbox,
    /// The configured workspaces' time zones; UTC for the others.
    pub zones: Arc<HashMap<String, TimeZone>>,
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
            store::record_interactions(&self.db, &self.outbox, now, &workspace_id, interactions)
                .await?;
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
        let recorded =
            store::record_events(&self.db, &self.outbox, now, &workspace_id, &events, &times)
                .await?;
        Ok(Response::new(RecordEventsResponse {
            recorded: recorded.recorded,
            duplicates: recorded.duplicates,
            conversions: recorded.conversions,
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
        let request = request.into_inner();
        let lifetime = request.start_time.is_none() && request.end_time.is_none();
        let goals = store::goals(&self.db, &workspace, &request.campaign_id).await?;
        let goal = report::goal_version(&goals, request.goal_version)?;
        // The range rounded out to whole hours.
        let hours = (!lifetime).then(|| (store::hour_of(start), round_up_to_hour(end)));
        let rows = store::aggregates(&self.db, &workspace, &request.campaign_id, hours).await?;
        Ok(Response::new(GetCampaignStatsResponse {
            stats: Some(report::campaign_stats(
                request.campaign_id,
                goal,
                lifetime,
                &rows,
            )),
        }))
    }

    async fn get_time_series(
        &self,
        request: Request<GetTimeSeriesRequest>,
    ) -> Result<Response<GetTimeSeriesResponse>, Status> {
        let workspace = Caller::of(&request)?.key_workspace()?.to_owned();
        let zone = self.zones.get(&workspace).cloned().unwrap_or(TimeZone::UTC);
        let valid =
            validate::series(request.get_ref(), self.clock.now_ms(), &zone).map_err(Error::from)?;
        let request = request.into_inner();
        let (starts, end) = series::buckets(valid.size, &valid.zone, valid.start, valid.end)
            .map_err(|refused| match refused {
                series::Refused::TooMany => Error::invalid(
                    "end_time",
                    format!("the range holds more than {} buckets", series::MAX_BUCKETS),
                ),
                series::Refused::PartialHourOffset { at_ms } => Error::invalid(
                    "time_zone",
                    format!(
                        "its offset from UTC is not a whole number of hours at {}, and the \
                         aggregates are kept per UTC hour",
                        herald_core::time::from_ms(at_ms)
                    ),
                ),
                series::Refused::OutOfRange => {
                    Error::invalid("start_time", "is outside the supported calendar")
                }
            })?;
        let goal_version = match valid.metric {
            Metric::Exposed | Metric::Conversions => {
                let goals = store::goals(&self.db, &workspace, &request.campaign_id).await?;
                report::goal_version(&goals, request.goal_version)?.map_or(0, |g| g.version)
            }
            _ => 0,
        };
        let arms = if request.control {
            Arms::Control
        } else if request.variant_id.is_empty() {
            Arms::Variants
        } else {
            Arms::Variant(request.variant_id.clone())
        };
        let first = starts.first().copied().unwrap_or(end);
        let hourly = store::hourly(
            &self.db,
            &workspace,
            &request.campaign_id,
            valid.metric,
            goal_version,
            &arms,
            (first, end),
        )
        .await?;
        let hours: Vec<(i64, u64)> = hourly
            .into_iter()
            .map(|(hour, total, users)| (hour, if request.unique_users { users } else { total }))
            .collect();
        let values = series::sum(&starts, end, &hours);
        Ok(Response::new(GetTimeSeriesResponse {
            points: starts
                .iter()
                .zip(values)
                .map(|(start, value)| TimeSeriesPoint {
                    start_time: Some(herald_core::time::proto_from_ms(*start)),
                    value,
                })
                .collect(),
        }))
    }
}

/// The first whole hour at or after `ms`.
fn round_up_to_hour(ms: i64) -> i64 {
    store::hour_of(ms.saturating_add(3_599_999))
}
