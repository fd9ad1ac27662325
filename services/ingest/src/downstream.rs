//! The hops out of ingest: events and identities to segmentation, events to analytics,
//! each relayed through the outbox as batched internal RPCs.

use herald_outbox::{Item, MAX_BATCH, Sink, SinkError, merge_runs, relay_span};
use herald_proto::analytics::v1::RecordEventsRequest;
use herald_proto::analytics::v1::analytics_internal_service_client::AnalyticsInternalServiceClient;
use herald_proto::segmentation::v1::segmentation_internal_service_client::SegmentationInternalServiceClient;
use herald_proto::segmentation::v1::{ApplyEventsRequest, ApplyIdentitiesRequest};
use herald_runtime::Downstream;
use prost::Message;
use tracing::Instrument;

/// Outbox destination of segmentation.
pub const SEGMENTATION: &str = "segmentation";
/// Outbox destination of analytics.
pub const ANALYTICS: &str = "analytics";

/// What one outbox item for segmentation carries. Events and identities share the
/// destination so that one user's events and trait updates stay in order.
pub enum SegmentationItem {
    Events(ApplyEventsRequest),
    Identities(ApplyIdentitiesRequest),
}

impl SegmentationItem {
    /// A tag byte, then the request.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            SegmentationItem::Events(r) => [&[1u8][..], &r.encode_to_vec()].concat(),
            SegmentationItem::Identities(r) => [&[2u8][..], &r.encode_to_vec()].concat(),
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self, SinkError> {
        let bad = |e: String| SinkError::Rejected(format!("undecodable outbox item: {e}"));
        match bytes.split_first() {
            Some((1, rest)) => ApplyEventsRequest::decode(rest)
                .map(Self::Events)
                .map_err(|e| bad(e.to_string())),
            Some((2, rest)) => ApplyIdentitiesRequest::decode(rest)
                .map(Self::Identities)
                .map_err(|e| bad(e.to_string())),
            _ => Err(bad("unknown tag".into())),
        }
    }
}

/// Sends to segmentation's ApplyEvents / ApplyIdentities, one call per run of items of
/// the same kind and workspace, in order.
pub struct SegmentationSink(pub Downstream);

#[async_trait::async_trait]
impl Sink for SegmentationSink {
    async fn send(&self, items: &[Item]) -> Result<(), SinkError> {
        let mut client = SegmentationInternalServiceClient::new(self.0.channel());
        let mut pending: Option<SegmentationItem> = None;
        let mut calls = Vec::new();
        for item in items {
            let next = SegmentationItem::decode(&item.payload)?;
            pending = match (pending.take(), next) {
                (Some(SegmentationItem::Events(mut a)), SegmentationItem::Events(b))
                    if a.workspace_id == b.workspace_id =>
                {
                    a.events.extend(b.events);
                    Some(SegmentationItem::Events(a))
                }
                (Some(SegmentationItem::Identities(mut a)), SegmentationItem::Identities(b))
                    if a.workspace_id == b.workspace_id =>
                {
                    a.identities.extend(b.identities);
                    Some(SegmentationItem::Identities(a))
                }
                (previous, next) => {
                    calls.extend(previous);
                    Some(next)
                }
            };
        }
        calls.extend(pending);
        async {
            for call in calls {
                match call {
                    SegmentationItem::Events(r) => {
                        client.apply_events(self.0.request(r, None)).await?;
                    }
                    SegmentationItem::Identities(r) => {
                        client.apply_identities(self.0.request(r, None)).await?;
                    }
                }
            }
            Ok(())
        }
        .instrument(relay_span(SEGMENTATION, items))
        .await
    }
}

/// Sends to analytics' RecordEvents (conversions), one call per run of a workspace.
pub struct AnalyticsSink(pub Downstream);

#[async_trait::async_trait]
impl Sink for AnalyticsSink {
    async fn send(&self, items: &[Item]) -> Result<(), SinkError> {
        let mut client = AnalyticsInternalServiceClient::new(self.0.channel());
        let calls = merge_runs(
            items,
            |last: &RecordEventsRequest, next: &RecordEventsRequest| {
                last.workspace_id == next.workspace_id
                    && last.events.len() + next.events.len() <= MAX_BATCH
            },
            |last, next| last.events.extend(next.events),
        )?;
        async {
            for call in calls {
                client.record_events(self.0.request(call, None)).await?;
            }
            Ok(())
        }
        .instrument(relay_span(ANALYTICS, items))
        .await
    }
}
