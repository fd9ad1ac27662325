//! The hop out of trigger: rendered deliveries to delivery, relayed through the outbox
//! as batched internal RPCs.

use herald_outbox::{Item, MAX_BATCH, Sink, SinkError, merge_runs, relay_span};
use herald_proto::delivery::v1::DeliverRequest;
use herald_proto::delivery::v1::delivery_internal_service_client::DeliveryInternalServiceClient;
use herald_runtime::Downstream;
use tracing::Instrument;

/// Outbox destination of delivery.
pub const DELIVERY: &str = "delivery";

/// Merges the outbox payloads (each a `DeliverRequest` of one delivery) into as few
/// requests as possible, keeping their order: one per run of the same workspace.
pub fn merge(items: &[Item]) -> Result<Vec<DeliverRequest>, SinkError> {
    merge_runs(
        items,
        |last: &DeliverRequest, next: &DeliverRequest| {
            last.workspace_id == next.workspace_id
                && last.deliveries.len() + next.deliveries.len() <= MAX_BATCH
        },
        |last, next| last.deliveries.extend(next.deliveries),
    )
}

/// Sends to delivery's Deliver, one call per run of a workspace, in order.
pub struct DeliverySink(pub Downstream);

#[async_trait::async_trait]
impl Sink for DeliverySink {
    async fn send(&self, items: &[Item]) -> Result<(), SinkError> {
        let mut client = DeliveryInternalServiceClient::new(self.0.channel());
        let calls = merge(items)?;
        async {
            for call in calls {
                client.deliver(self.0.request(call, None)).await?;
            }
            Ok(())
        }
        .instrument(relay_span(DELIVERY, items))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_proto::delivery::v1::Delivery;
    use prost::Message;

    fn item(id: i64, workspace: &str, key: &str) -> Item {
        let request = DeliverRequest {
            workspace_id: workspace.into(),
            deliveries: vec![Delivery {
                idempotency_key: key.into(),
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
    fn consecutive_items_of_a_workspace_are_merged_in_order() {
        let calls = merge(&[
            item(1, "a", "k1"),
            item(2, "a", "k2"),
            item(3, "b", "k3"),
            item(4, "a", "k4"),
        ])
        .expect("decodes");
        let shape: Vec<(String, Vec<String>)> = calls
            .into_iter()
            .map(|c| {
                (
                    c.workspace_id,
                    c.deliveries
                        .into_iter()
                        .map(|d| d.idempotency_key)
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("a".to_owned(), vec!["k1".to_owned(), "k2".to_owned()]),
                ("b".to_owned(), vec!["k3".to_owned()]),
                ("a".to_owned(), vec!["k4".to_owned()]),
            ]
        );
    }

    #[test]
    fn garbage_is_rejected_not_retried() {
        let garbage = Item {
            id: 1,
            key: "u".into(),
            payload: vec![0xff, 0xff, 0xff],
            traceparent: None,
        };
        assert!(matches!(merge(&[garbage]), Err(SinkError::Rejected(_))));
    }
}
