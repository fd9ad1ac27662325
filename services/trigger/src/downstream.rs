//! The hops out of trigger, relayed through the outbox as batched internal RPCs:
//! rendered deliveries to delivery, and exposure records (a variant's EXPOSED, control's
//! ASSIGNED_CONTROL) to analytics.

use herald_outbox::GrpcSink;
use herald_proto::analytics::v1::RecordInteractionsRequest;
use herald_proto::analytics::v1::analytics_internal_service_client::AnalyticsInternalServiceClient;
use herald_proto::delivery::v1::DeliverRequest;
use herald_proto::delivery::v1::delivery_internal_service_client::DeliveryInternalServiceClient;
use herald_runtime::{Config, ServiceKind};

/// Outbox destination of delivery.
pub const DELIVERY: &str = "delivery";

/// Delivery's Deliver, one call per run of a workspace, in order.
pub fn delivery(config: &Config) -> Result<GrpcSink<DeliverRequest>, tonic::transport::Error> {
    GrpcSink::to(
        config,
        DELIVERY,
        ServiceKind::Delivery,
        |d, call| async move {
            DeliveryInternalServiceClient::new(d.channel())
                .deliver(d.request(call, None))
                .await
                .map(drop)
        },
    )
}

/// Outbox destination of analytics: exposure records.
pub const ANALYTICS: &str = "analytics";

/// Analytics' RecordInteractions, one call per run of a workspace, in order; each item
/// holds a `RecordInteractionsRequest` with one EXPOSED or ASSIGNED_CONTROL interaction.
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
