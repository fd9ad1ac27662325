//! The hop out of segmentation: each new event, with its user's state, to trigger's
//! HandleEvents, relayed through the outbox.

use herald_outbox::{Item, MAX_BATCH, Sink, SinkError, merge_runs, relay_span};
use herald_proto::trigger::v1::HandleEventsRequest;
use herald_proto::trigger::v1::trigger_internal_service_client::TriggerInternalServiceClient;
use herald_runtime::Downstream;
use tracing::Instrument;

/// Outbox destination of trigger.
pub const TRIGGER: &str = "trigger";

/// Merges consecutive items of one workspace into as few requests as the contract
/// allows, keeping their order.
fn batch(items: &[Item]) -> Result<Vec<HandleEventsRequest>, SinkError> {
    merge_runs(
        items,
        |last: &HandleEventsRequest, next: &HandleEventsRequest| {
            last.workspace_id == next.workspace_id
                && last.events.len() + next.events.len() <= MAX_BATCH
        },
        |last, next| last.events.extend(next.events),
    )
}

/// Sends to trigger's HandleEvents, one call per run of a workspace, in order.
pub struct TriggerSink(pub Downstream);

#[async_trait::async_trait]
impl Sink for TriggerSink {
    async fn send(&self, items: &[Item]) -> Result<(), SinkError> {
        let mut client = TriggerInternalServiceClient::new(self.0.channel());
        let calls = batch(items)?;
        async {
            for call in calls {
                client.handle_events(self.0.request(call, None)).await?;
            }
            Ok(())
        }
        .instrument(relay_span(TRIGGER, items))
        .await
    }
}

#[cfg(test)]
mod tests {
    use herald_proto::common::v1::Event;
    use herald_proto::trigger::v1::UserEvent;
    use prost::Message;

    use super::*;

    fn item(id: i64, workspace: &str) -> Item {
        let event = Event {
            message_id: format!("m{id}"),
            ..Default::default()
        };
        let request = HandleEventsRequest {
            workspace_id: workspace.into(),
            events: vec![UserEvent {
                event: Some(event),
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
    fn consecutive_items_of_a_workspace_share_a_call() {
        let calls = batch(&[item(1, "a"), item(2, "a"), item(3, "b"), item(4, "a")]).unwrap();
        let shape: Vec<(&str, Vec<&str>)> = calls
            .iter()
            .map(|c| {
                let ids = c
                    .events
                    .iter()
                    .map(|e| e.event.as_ref().unwrap().message_id.as_str())
                    .collect();
                (c.workspace_id.as_str(), ids)
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("a", vec!["m1", "m2"]),
                ("b", vec!["m3"]),
                ("a", vec!["m4"])
            ]
        );
    }

    #[test]
    fn garbage_is_rejected_not_retried() {
        let bad = Item {
            id: 1,
            key: "u".into(),
            payload: vec![0xff, 0xff],
            traceparent: None,
        };
        assert!(matches!(batch(&[bad]), Err(SinkError::Rejected(_))));
    }
}
