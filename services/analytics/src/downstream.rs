//! The hop out of analytics, relayed through the outbox: each conversion, as a CONVERTED
//! interaction, to segmentation, for segment conditions such as `converted("cmp_x")`.
//! The item holds a `herald.analytics.v1.RecordInteractionsRequest` with one
//! interaction; segmentation's `ApplyInteractionsRequest` has the same field numbers.

use herald_outbox::GrpcSink;
use herald_proto::segmentation::v1::ApplyInteractionsRequest;
use herald_proto::segmentation::v1::segmentation_internal_service_client::SegmentationInternalServiceClient;
use herald_runtime::{Config, ServiceKind};

/// Outbox destination of segmentation.
pub const SEGMENTATION: &str = "segmentation";

/// Segmentation's ApplyInteractions, one call per run of a workspace, in order.
pub fn segmentation(
    config: &Config,
) -> Result<GrpcSink<ApplyInteractionsRequest>, tonic::transport::Error> {
    GrpcSink::to(
        config,
        SEGMENTATION,
        ServiceKind::Segmentation,
        |d, call| async move {
            SegmentationInternalServiceClient::new(d.channel())
                .apply_interactions(d.request(call, None))
                .await
                .map(drop)
        },
    )
}
