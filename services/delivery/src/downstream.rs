//! The hops out of delivery, relayed through the outbox as batched internal RPCs:
//! interactions (sent, delivered, impression, click, dismissal) to analytics, and the
//! engagement among them (delivered, impression, click, dismissal) to segmentation, for
//! segment conditions such as `clicked("cmp_x", within: 7d)`.
//!
//! Both hops carry the same payload: a `herald.analytics.v1.RecordInteractionsRequest`
//! holding one interaction. Segmentation's `ApplyInteractionsRequest` has the same field
//! numbers, so those bytes are one of its requests too.

use herald_outbox::GrpcSink;
use herald_proto::analytics::v1::analytics_internal_service_client::AnalyticsInternalServiceClient;
use herald_proto::analytics::v1::{InteractionKind, RecordInteractionsRequest};
use herald_proto::segmentation::v1::ApplyInteractionsRequest;
use herald_proto::segmentation::v1::segmentation_internal_service_client::SegmentationInternalServiceClient;
use herald_runtime::{Config, ServiceKind};

/// Outbox destination of analytics.
pub const ANALYTICS: &str = "analytics";

/// Outbox destination of segmentation.
pub const SEGMENTATION: &str = "segmentation";

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

/// Segmentation's ApplyInteractions, one call per run of a workspace, in order. Items
/// hold the same bytes as analytics' (one interaction), read as an
/// `ApplyInteractionsRequest`.
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

/// Whether segmentation is sent interactions of `kind`: those a segment condition can
/// name (`received`, `displayed`, `clicked`, `dismissed`). SENT is not: it only says
/// delivery accepted the message, which no condition asks about (`received` is
/// DELIVERED), so relaying it would double the hop's traffic for nothing.
/// ASSIGNED_CONTROL is trigger's, never recorded by delivery.
pub fn segmentation_wants(kind: InteractionKind) -> bool {
    match kind {
        InteractionKind::Delivered
        | InteractionKind::Impression
        | InteractionKind::Click
        | InteractionKind::Dismissal => true,
        // EXPOSED and ASSIGNED_CONTROL are trigger's, CONVERTED analytics': never
        // recorded by delivery.
        InteractionKind::Unspecified
        | InteractionKind::Sent
        | InteractionKind::AssignedControl
        | InteractionKind::Exposed
        | InteractionKind::Converted => false,
    }
}

#[cfg(test)]
mod tests {
    use herald_proto::analytics::v1::Interaction;
    use prost::Message;

    use super::*;

    #[test]
    fn segmentation_gets_the_engagement_kinds_and_not_sent() {
        let wanted: Vec<InteractionKind> = [
            InteractionKind::Unspecified,
            InteractionKind::Sent,
            InteractionKind::Delivered,
            InteractionKind::Impression,
            InteractionKind::Click,
            InteractionKind::Dismissal,
            InteractionKind::AssignedControl,
        ]
        .into_iter()
        .filter(|k| segmentation_wants(*k))
        .collect();
        assert_eq!(
            wanted,
            [
                InteractionKind::Delivered,
                InteractionKind::Impression,
                InteractionKind::Click,
                InteractionKind::Dismissal
            ]
        );
    }

    /// The outbox holds analytics' encoding; segmentation must read the same bytes as its
    /// own request, field for field.
    #[test]
    fn an_analytics_payload_is_a_segmentation_request() {
        let recorded = RecordInteractionsRequest {
            workspace_id: "ws_1".into(),
            interactions: vec![Interaction {
                id: "msg_1:click".into(),
                campaign_id: "cmp_x".into(),
                variant_id: "var_a".into(),
                user_id: "u1".into(),
                kind: InteractionKind::Click as i32,
                message_id: "msg_1".into(),
                action_id: "go".into(),
                time: Some(prost_types::Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 5,
                }),
                delivery_idempotency_key: "k1".into(),
                ..Default::default()
            }],
        };
        let decoded = ApplyInteractionsRequest::decode(recorded.encode_to_vec().as_slice())
            .expect("same bytes decode as segmentation's request");
        assert_eq!(
            decoded,
            ApplyInteractionsRequest {
                workspace_id: recorded.workspace_id,
                interactions: recorded.interactions,
            }
        );
    }
}
