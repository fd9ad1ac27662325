//! The hop out of trigger: rendered deliveries to delivery, relayed through the outbox
//! as batched internal RPCs.

use herald_outbox::GrpcSink;
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
