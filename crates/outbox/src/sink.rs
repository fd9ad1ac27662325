//! Helpers for the sinks that carry outbox items to another service as batched gRPC calls.

use crate::{Item, SinkError};

/// The most entries one internal batch RPC accepts (the contracts' limit).
pub const MAX_BATCH: usize = 1000;

/// A span for relaying `items` to `destination`, continuing the trace of the operation that
/// produced the first of them.
pub fn relay_span(destination: &'static str, items: &[Item]) -> tracing::Span {
    let span = tracing::info_span!("outbox.relay", destination, count = items.len());
    if let Some(parent) = items.first().and_then(|i| i.traceparent.as_deref()) {
        herald_runtime::telemetry::set_parent_from_traceparent(&span, parent);
    }
    span
}

/// Decodes each item's payload as a request `M` and merges consecutive requests that
/// `same_run(previous, next)` allows (typically: same workspace, still within
/// [`MAX_BATCH`]) with `absorb`, keeping the items' order. An undecodable payload is
/// rejected, never retried.
pub fn merge_runs<M: prost::Message + Default>(
    items: &[Item],
    same_run: impl Fn(&M, &M) -> bool,
    absorb: impl Fn(&mut M, M),
) -> Result<Vec<M>, SinkError> {
    let mut calls: Vec<M> = Vec::new();
    for item in items {
        let next = M::decode(item.payload.as_slice()).map_err(|e| {
            SinkError::Rejected(format!("undecodable outbox item {}: {e}", item.id))
        })?;
        match calls.last_mut() {
            Some(last) if same_run(last, &next) => absorb(last, next),
            _ => calls.push(next),
        }
    }
    Ok(calls)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in request: `name` is the workspace, `tags` the entries.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Batch {
        #[prost(string, tag = "1")]
        workspace: String,
        #[prost(string, repeated, tag = "2")]
        entries: Vec<String>,
    }

    fn item(id: i64, workspace: &str, entry: &str) -> Item {
        let payload = prost::Message::encode_to_vec(&Batch {
            workspace: workspace.into(),
            entries: vec![entry.into()],
        });
        Item {
            id,
            key: "u".into(),
            payload,
            traceparent: None,
        }
    }

    fn merge(items: &[Item], max: usize) -> Result<Vec<Batch>, SinkError> {
        merge_runs(
            items,
            |a: &Batch, b: &Batch| {
                a.workspace == b.workspace && a.entries.len() + b.entries.len() <= max
            },
            |a, b| a.entries.extend(b.entries),
        )
    }

    #[test]
    fn consecutive_items_of_one_run_merge_in_order() {
        let items = [
            item(1, "a", "1"),
            item(2, "a", "2"),
            item(3, "b", "3"),
            item(4, "a", "4"),
            item(5, "a", "5"),
        ];
        let calls = merge(&items, 1000).unwrap();
        let shape: Vec<(&str, Vec<&str>)> = calls
            .iter()
            .map(|c| {
                (
                    c.workspace.as_str(),
                    c.entries.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("a", vec!["1", "2"]),
                ("b", vec!["3"]),
                ("a", vec!["4", "5"])
            ]
        );
        assert_eq!(
            merge(&items[..2], 1).unwrap().len(),
            2,
            "the size bound splits runs"
        );
    }

    #[test]
    fn an_undecodable_item_is_rejected() {
        let bad = Item {
            id: 9,
            key: "u".into(),
            payload: vec![0xff, 0xff],
            traceparent: None,
        };
        assert!(matches!(merge(&[bad], 10), Err(SinkError::Rejected(_))));
    }
}
