//! The hops out of ingest: events and identities to segmentation, events to analytics,
//! each relayed through the outbox as batched internal RPCs.

use herald_outbox::{Call, GrpcSink};
use herald_proto::WorkspaceBatch;
use herald_proto::analytics::v1::RecordEventsRequest;
use herald_proto::analytics::v1::analytics_internal_service_client::AnalyticsInternalServiceClient;
use herald_proto::segmentation::v1::segmentation_internal_service_client::SegmentationInternalServiceClient;
use herald_proto::segmentation::v1::{ApplyEventsRequest, ApplyIdentitiesRequest};
use herald_runtime::{Config, ServiceKind};
use prost::Message;

/// Outbox destination of segmentation.
pub const SEGMENTATION: &str = "segmentation";
/// Outbox destination of analytics.
pub const ANALYTICS: &str = "analytics";

/// What one outbox item for segmentation carries. Events and identities share the
/// destination so that one user's events and trait updates stay in order.
pub enum SegmentationCall {
    Events(ApplyEventsRequest),
    Identities(ApplyIdentitiesRequest),
}

impl SegmentationCall {
    /// A tag byte, then the request.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            SegmentationCall::Events(r) => [&[1u8][..], &r.encode_to_vec()].concat(),
            SegmentationCall::Identities(r) => [&[2u8][..], &r.encode_to_vec()].concat(),
        }
    }
}

impl Call for SegmentationCall {
    fn decode(payload: &[u8]) -> Result<Self, String> {
        let decoded = match payload.split_first() {
            Some((1, rest)) => <ApplyEventsRequest as Message>::decode(rest).map(Self::Events),
            Some((2, rest)) => {
                <ApplyIdentitiesRequest as Message>::decode(rest).map(Self::Identities)
            }
            _ => return Err("unknown tag".into()),
        };
        decoded.map_err(|e| e.to_string())
    }

    fn entries(&self) -> usize {
        match self {
            SegmentationCall::Events(r) => r.len(),
            SegmentationCall::Identities(r) => r.len(),
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            SegmentationCall::Events(r) => Message::encoded_len(r),
            SegmentationCall::Identities(r) => Message::encoded_len(r),
        }
    }

    fn absorb(&mut self, next: Self) -> Option<Self> {
        match (self, next) {
            (SegmentationCall::Events(a), SegmentationCall::Events(b)) => {
                a.absorb(b).map(Self::Events)
            }
            (SegmentationCall::Identities(a), SegmentationCall::Identities(b)) => {
                a.absorb(b).map(Self::Identities)
            }
            (_, next) => Some(next),
        }
    }
}

/// Segmentation's ApplyEvents / ApplyIdentities, one call per run of items of the same
/// kind and workspace, in order.
pub fn segmentation(
    config: &Config,
) -> Result<GrpcSink<SegmentationCall>, tonic::transport::Error> {
    GrpcSink::to(
        config,
        SEGMENTATION,
        ServiceKind::Segmentation,
        |d, call| async move {
            let mut client = SegmentationInternalServiceClient::new(d.channel());
            match call {
                SegmentationCall::Events(r) => {
                    client.apply_events(d.request(r, None)).await.map(drop)
                }
                SegmentationCall::Identities(r) => {
                    client.apply_identities(d.request(r, None)).await.map(drop)
                }
            }
        },
    )
}

/// Analytics' RecordEvents, one call per run of a workspace.
pub fn analytics(
    config: &Config,
) -> Result<GrpcSink<RecordEventsRequest>, tonic::transport::Error> {
    GrpcSink::to(
        config,
        ANALYTICS,
        ServiceKind::Analytics,
        |d, call| async move {
            AnalyticsInternalServiceClient::new(d.channel())
                .record_events(d.request(call, None))
                .await
                .map(drop)
        },
    )
}
