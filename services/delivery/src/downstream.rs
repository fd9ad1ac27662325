//! The hop out of delivery: interactions (sent, delivered, impression, click, dismissal)
//! to analytics, relayed through the outbox as batched internal RPCs.

use herald_outbox::GrpcSink;
use herald_proto::analytics::v1::RecordInteractionsRequest;
use herald_proto::analytics::v1::analytics_internal_service_client::AnalyticsInternalServiceClient;
use herald_runtime::{Config, ServiceKind};

/// Outbox destination of analytics.
pub const ANALYTICS: &str = "analytics";

/// Analytics' RecordInteractions, one call per run of a workspace, in order. Each item
/// holds a `RecordInteractionsRequest` with one interaction.
pub fn analytics(
    config: &Config,
) -> Result<GrpcSink<RecordInteractionsRequest>, tonic::transport::Error> {
    GrpcSink::to(
        config,
        ANALYTICS,
        ServiceKind::Analytics,
        |d, call| async move {
            AnalyticsInternalServiceClient::new(d.channel())
                .record_interactions(d.request(call, None))
                .await
                .map(drop)
        },
    )
}
