//! The hop out of delivery: interactions (sent, delivered, impression, click, dismissal)
//! to analytics, relayed through the outbox as batched internal RPCs.

use herald_outbox::{Item, MAX_BATCH, Sink, SinkError, merge_runs, relay_span};
use herald_proto::analytics::v1::RecordInteractionsRequest;
use herald_proto::analytics::v1::analytics_internal_service_client::AnalyticsInternalServiceClient;
use herald_runtime::Downstream;
use tracing::Instrument;

/// Outbox destination of analytics.
pub const ANALYTICS: &str = "analytics";

/// Sends to analytics' RecordInteractions, one call per run of items of one workspace,
/// in order. Each item holds a `RecordInteractionsRequest` with one interaction.
pub struct AnalyticsSink(pub Downstream);

#[async_trait::async_trait]
impl Sink for AnalyticsSink {
    async fn send(&self, items: &[Item]) -> Result<(), SinkError> {
        let mut client = AnalyticsInternalServiceClient::new(self.0.channel());
        let calls = merge(items)?;
        async {
            for call in calls {
                client
                    .record_interactions(self.0.request(call, None))
                    .await?;
            }
            Ok(())
        }
        .instrument(relay_span(ANALYTICS, items))
        .await
    }
}

/// Decodes `items` and merges consecutive ones of the same workspace into one request.
fn merge(items: &[Item]) -> Result<Vec<RecordInteractionsRequest>, SinkError> {
    merge_runs(
        items,
        |last: &RecordInteractionsRequest, next: &RecordInteractionsRequest| {
            last.workspace_id == next.workspace_id
                && last.interactions.len() + next.interactions.len() <= MAX_BATCH
        },
        |last, next| last.interactions.extend(next.interactions),
    )
}

#[cfg(test)]
mod tests {
    use herald_proto::analytics::v1::Interaction;
    use prost::Message;

    use super::*;

    fn item(id: i64, workspace: &str) -> Item {
        let request = RecordInteractionsRequest {
            workspace_id: workspace.into(),
            interactions: vec![Interaction {
                id: format!("m{id}:sent"),
                ..Default::default()
            }],
        };
        Item {
            id,
            key: "u".into(),
            payload: request.encode_to_vec(),
            traceparent: None,
        }
    }

    #[test]
    fn merges_runs_of_one_workspace_in_order() {
        let calls = merge(&[item(1, "a"), item(2, "a"), item(3, "b"), item(4, "a")]).unwrap();
        let shape: Vec<(&str, usize)> = calls
            .iter()
            .map(|c| (c.workspace_id.as_str(), c.interactions.len()))
            .collect();
        assert_eq!(shape, vec![("a", 2), ("b", 1), ("a", 1)]);
        assert_eq!(calls[0].interactions[1].id, "m2:sent");
    }

    #[test]
    fn undecodable_items_are_rejected() {
        let bad = Item {
            id: 1,
            key: "u".into(),
            payload: vec![0xff, 0xff],
            traceparent: None,
        };
        assert!(matches!(merge(&[bad]), Err(SinkError::Rejected(_))));
    }
}
