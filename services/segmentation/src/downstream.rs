//! The hops out of segmentation: each new event, with its user's state and segments, to
//! trigger's HandleEvents, and each membership change to HandleSegmentTransitions, both
//! relayed through the outbox.

use herald_outbox::GrpcSink;
use herald_proto::trigger::v1::trigger_internal_service_client::TriggerInternalServiceClient;
use herald_proto::trigger::v1::{HandleEventsRequest, HandleSegmentTransitionsRequest};
use herald_runtime::{Config, ServiceKind};

/// Outbox destination of trigger.
pub const TRIGGER: &str = "trigger";

/// Trigger's HandleEvents, one call per run of a workspace, in order.
pub fn trigger(config: &Config) -> Result<GrpcSink<HandleEventsRequest>, tonic::transport::Error> {
    GrpcSink::to(
        config,
        TRIGGER,
        ServiceKind::Trigger,
        |d, call| async move {
            TriggerInternalServiceClient::new(d.channel())
                .handle_events(d.request(call, None))
                .await
                .map(drop)
        },
    )
}

/// Outbox destination of segment transitions, to trigger.
pub const TRANSITIONS: &str = "trigger_transitions";

/// Trigger's HandleSegmentTransitions, one call per run of a workspace, in order.
pub fn transitions(
    config: &Config,
) -> Result<GrpcSink<HandleSegmentTransitionsRequest>, tonic::transport::Error> {
    GrpcSink::to(
        config,
        TRANSITIONS,
        ServiceKind::Trigger,
        |d, call| async move {
            TriggerInternalServiceClient::new(d.channel())
                .handle_segment_transitions(d.request(call, None))
                .await
                .map(drop)
        },
    )
}
