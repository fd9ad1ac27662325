//! The one sink every hop uses: outbox items carried to another service as batched gRPC
//! calls, merged in order while they fit the receiver's limits.

use std::future::Future;

use futures::future::BoxFuture;
use herald_proto::WorkspaceBatch;
use herald_runtime::Downstream;
use tracing::Instrument;

use crate::{Item, Sink, SinkError};

/// The request an outbox item's payload holds, and how consecutive ones merge into one
/// call. Every [`WorkspaceBatch`] request is one; a hop whose items hold several kinds of
/// request (an enum) implements it itself.
pub trait Call: Sized + Send + 'static {
    /// Decodes an item's payload.
    fn decode(payload: &[u8]) -> Result<Self, String>;
    /// How many entries the call carries.
    fn entries(&self) -> usize;
    /// Its encoded size in bytes.
    fn encoded_len(&self) -> usize;
    /// Appends `next` when both can go in one call (same RPC, same workspace); gives
    /// `next` back otherwise.
    fn absorb(&mut self, next: Self) -> Option<Self>;
}

impl<R> Call for R
where
    R: WorkspaceBatch + prost::Message + Default + Send + 'static,
{
    fn decode(payload: &[u8]) -> Result<Self, String> {
        R::decode(payload).map_err(|e| e.to_string())
    }

    fn entries(&self) -> usize {
        self.len()
    }

    fn encoded_len(&self) -> usize {
        prost::Message::encoded_len(self)
    }

    fn absorb(&mut self, next: Self) -> Option<Self> {
        if self.workspace_id() == next.workspace_id() {
            self.append(next);
            None
        } else {
            Some(next)
        }
    }
}

/// How big one merged call may be: the receiver's batch limit and message size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// Entries per call (the contracts allow 1000).
    pub max_entries: usize,
    /// Encoded bytes per call.
    pub max_bytes: usize,
}

/// Room left under the receiver's message limit for the framing a merge may add.
const HEADROOM: usize = 16 * 1024;

impl CallLimits {
    /// The limits of a receiver running with `config` (services share one config).
    pub fn from_config(config: &herald_runtime::Config) -> CallLimits {
        CallLimits {
            max_entries: herald_core::limits::MAX_BATCH,
            max_bytes: config.max_request_bytes.saturating_sub(HEADROOM).max(1024),
        }
    }
}

/// Decodes `items` and merges consecutive ones that `Call::absorb` allows into as few
/// calls as `limits` let through, keeping their order. An undecodable payload rejects
/// the batch (the relay then isolates and parks that item).
pub fn merge<C: Call>(items: &[Item], limits: CallLimits) -> Result<Vec<C>, SinkError> {
    // Each call with its entries and bytes so far, so merging stays linear.
    let mut calls: Vec<(C, usize, usize)> = Vec::new();
    for item in items {
        let next = C::decode(&item.payload).map_err(|e| {
            SinkError::Rejected(format!("undecodable outbox item {}: {e}", item.id))
        })?;
        let (entries, bytes) = (next.entries(), next.encoded_len());
        let next = match calls.last_mut() {
            Some((last, n, size))
                if *n + entries <= limits.max_entries && *size + bytes <= limits.max_bytes =>
            {
                match last.absorb(next) {
                    None => {
                        *n += entries;
                        *size += bytes;
                        continue;
                    }
                    Some(next) => next,
                }
            }
            _ => next,
        };
        calls.push((next, entries, bytes));
    }
    Ok(calls.into_iter().map(|(call, _, _)| call).collect())
}

type SendCall<C> =
    dyn Fn(Downstream, C) -> BoxFuture<'static, Result<(), tonic::Status>> + Send + Sync;

/// Sends a destination's items as merged calls, one after another in order, through
/// `send` (which makes the RPC with `Downstream::request`, so every call carries a
/// deadline, the internal key and the trace context).
pub struct GrpcSink<C: Call> {
    destination: &'static str,
    downstream: Downstream,
    limits: CallLimits,
    send: Box<SendCall<C>>,
}

impl<C: Call> GrpcSink<C> {
    /// A sink for `destination`, the service `target` as `config` names it (its URL, the
    /// internal key, a deadline within the relay's lease, the receiver's limits), sending
    /// each call with `send`.
    pub fn to<F, Fut>(
        config: &herald_runtime::Config,
        destination: &'static str,
        target: herald_runtime::ServiceKind,
        send: F,
    ) -> Result<GrpcSink<C>, tonic::transport::Error>
    where
        F: Fn(Downstream, C) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), tonic::Status>> + Send + 'static,
    {
        let downstream = Downstream::for_relay(config, target)?;
        Ok(GrpcSink::new(
            destination,
            downstream,
            CallLimits::from_config(config),
            send,
        ))
    }

    /// A sink for `destination` reaching `downstream`.
    pub fn new<F, Fut>(
        destination: &'static str,
        downstream: Downstream,
        limits: CallLimits,
        send: F,
    ) -> GrpcSink<C>
    where
        F: Fn(Downstream, C) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), tonic::Status>> + Send + 'static,
    {
        GrpcSink {
            destination,
            downstream,
            limits,
            send: Box::new(move |downstream, call| Box::pin(send(downstream, call))),
        }
    }
}

#[async_trait::async_trait]
impl<C: Call> Sink for GrpcSink<C> {
    async fn send(&self, items: &[Item]) -> Result<(), SinkError> {
        let calls = merge::<C>(items, self.limits)?;
        async {
            for call in calls {
                (self.send)(self.downstream.clone(), call).await?;
            }
            Ok(())
        }
        .instrument(relay_span(self.destination, items))
        .await
    }
}

/// A span for relaying `items` to `destination`, continuing the trace of the operation that
/// produced the first of them.
pub fn relay_span(destination: &'static str, items: &[Item]) -> tracing::Span {
    let span = tracing::info_span!("outbox.relay", destination, count = items.len());
    if let Some(parent) = items.first().and_then(|i| i.traceparent.as_deref()) {
        herald_runtime::telemetry::set_parent_from_traceparent(&span, parent);
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_proto::trigger::v1::{HandleEventsRequest, UserEvent};
    use prost::Message;

    fn item(id: i64, workspace: &str, events: usize) -> Item {
        let request = HandleEventsRequest {
            workspace_id: workspace.into(),
            events: vec![UserEvent::default(); events],
        };
        Item {
            id,
            key: "u".into(),
            payload: request.encode_to_vec(),
            traceparent: None,
            created_ms: 0,
            attempts: 0,
        }
    }

    const WIDE: CallLimits = CallLimits {
        max_entries: 1000,
        max_bytes: 1 << 20,
    };

    fn shape(calls: &[HandleEventsRequest]) -> Vec<(&str, usize)> {
        calls
            .iter()
            .map(|c| (c.workspace_id.as_str(), c.events.len()))
            .collect()
    }

    #[test]
    fn consecutive_items_of_one_workspace_merge_in_order() {
        let items = [
            item(1, "a", 1),
            item(2, "a", 2),
            item(3, "b", 1),
            item(4, "a", 1),
        ];
        let calls: Vec<HandleEventsRequest> = merge(&items, WIDE).unwrap();
        assert_eq!(shape(&calls), [("a", 3), ("b", 1), ("a", 1)]);
    }

    #[test]
    fn merged_calls_stay_under_both_limits() {
        let items: Vec<Item> = (0..10).map(|i| item(i, "a", 3)).collect();
        let by_entries: Vec<HandleEventsRequest> = merge(
            &items,
            CallLimits {
                max_entries: 7,
                max_bytes: 1 << 20,
            },
        )
        .unwrap();
        assert!(by_entries.iter().all(|c| c.events.len() <= 7));
        assert_eq!(by_entries.iter().map(|c| c.events.len()).sum::<usize>(), 30);
        let one = items[0].payload.len();
        let by_bytes: Vec<HandleEventsRequest> = merge(
            &items,
            CallLimits {
                max_entries: 1000,
                max_bytes: 2 * one,
            },
        )
        .unwrap();
        assert_eq!(by_bytes.len(), 5);
        assert!(by_bytes.iter().all(|c| Message::encoded_len(c) <= 2 * one));
    }

    #[test]
    fn an_undecodable_item_is_rejected() {
        let bad = Item {
            payload: vec![0xff, 0xff],
            ..item(9, "a", 1)
        };
        assert!(matches!(
            merge::<HandleEventsRequest>(&[bad], WIDE),
            Err(SinkError::Rejected(_))
        ));
    }
}
