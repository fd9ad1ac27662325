//! Push dispatch: each accepted PUSH message goes to the push provider the deployment
//! configures (`push_provider_url`) as one JSON POST, through delivery's outbox. The item
//! is staged in the transaction that stores the message ([`item`]), or, when the user's
//! own quiet hours hold it, in the one that releases it at their end ([`crate::hold`]);
//! it is relayed at least once with the outbox's backoff, jitter and parking
//! ([`PushSink`]), and deduplicated by the provider on the `Idempotency-Key` header (the
//! message id). A 2xx marks the message DELIVERED and records the DELIVERED interaction,
//! as writing an in-app message to a stream does ([`store::mark_delivered`]). The
//! contract a provider implements is in docs/push.md and in the comment of
//! `herald.delivery.v1.DeliveryInternalService`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use herald_outbox::{Item, NewItem, Outbox, Sink, SinkError, relay_span};
use herald_proto::common::v1::{MessageContent, PushContent, message_content};
use herald_runtime::{Clock, Config, Error};
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use prost::Message as _;
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use tokio::sync::SetOnce;
use tracing::Instrument;

use crate::store;

/// Outbox destination of the push provider.
pub const PUSH: &str = "push";

/// Pushes of different users sent at once within one relayed batch; one user's go one
/// after the other, in order.
const CONCURRENCY: usize = 32;

/// The most one batch may take, well within the relay's 30 s lease on its items: pushes
/// not answered by then are retried with the batch.
const BATCH_BUDGET: Duration = Duration::from_secs(20);

/// The most of a provider's answer read (and logged, up to [`LOGGED_BYTES`]).
const ANSWER_BYTES: usize = 16 * 1024;
const LOGGED_BYTES: usize = 256;

/// The providers this deployment has for channels other than in-app.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Providers {
    /// A push provider is configured.
    pub push: bool,
}

/// The JSON body POSTed to the provider, as the outbox holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushRequest {
    /// The message's id, also sent as the `Idempotency-Key` header.
    pub message_id: String,
    pub workspace_id: String,
    pub user_id: String,
    pub campaign_id: String,
    pub variant_id: String,
    /// The device's push token: the delivery's address (the user's `push_token` trait).
    pub token: String,
    /// The rendered `PushContent`.
    pub notification: Notification,
    /// When the message expires (RFC 3339); absent when it never does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<String>,
}

/// `herald.common.v1.PushContent` as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub title: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub deep_link: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Notification {
    fn of(content: &PushContent) -> Notification {
        Notification {
            title: content.title.clone(),
            body: content.body.clone(),
            deep_link: content.deep_link.clone(),
            image_url: content.image_url.clone(),
            custom_data: content.custom_data.as_ref().map(object),
        }
    }
}

/// A `google.protobuf.Struct` as a JSON object (its canonical JSON mapping; a number that
/// JSON cannot hold, NaN or an infinity, becomes null).
fn object(fields: &prost_types::Struct) -> serde_json::Map<String, serde_json::Value> {
    fields
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), json(v)))
        .collect()
}

fn json(value: &prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    use serde_json::Value;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::NumberValue(n)) => {
            serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
        }
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::ListValue(list)) => Value::Array(list.values.iter().map(json).collect()),
        Some(Kind::StructValue(fields)) => Value::Object(object(fields)),
    }
}

/// The outbox item that sends `model`, a stored PUSH message, to the provider (from its
/// stored content); keyed by user, so one user's pushes leave in order. Staged when the
/// message is stored, or when the user's quiet hours that held it end ([`crate::hold`]).
pub fn item(model: &store::message::Model) -> Result<NewItem, Error> {
    let content = MessageContent::decode(model.content.as_slice())
        .map_err(|e| Error::corrupt(format!("content of message {}: {e}", model.id)))?;
    let content = match content.body {
        Some(message_content::Body::Push(push)) => push,
        _ => {
            return Err(Error::internal(format!(
                "push message {} has no push content",
                model.id
            )));
        }
    };
    let request = PushRequest {
        message_id: model.id.clone(),
        workspace_id: model.workspace_id.clone(),
        user_id: model.user_id.clone(),
        campaign_id: model.campaign_id.clone(),
        variant_id: model.variant_id.clone(),
        token: model.address.clone(),
        notification: Notification::of(&content),
        expire_time: model
            .expire_time
            .map(|ms| herald_core::time::from_ms(ms).to_string()),
    };
    let payload = serde_json::to_vec(&request)
        .map_err(|e| Error::internal(format!("cannot encode push {}: {e}", model.id)))?;
    Ok(NewItem {
        destination: PUSH,
        key: model.user_id.clone(),
        payload,
        traceparent: herald_runtime::telemetry::current_traceparent(),
    })
}

/// What the sink reads of an item: where the push belongs (the body is sent as stored).
#[derive(Deserialize)]
struct Route {
    message_id: String,
    workspace_id: String,
}

/// What the provider's answer means for one push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// 2xx: the provider has it.
    Accepted,
    /// Worth sending again: the provider is overloaded or failing, or refused our key
    /// (an operator fixes the configuration; the pushes wait, within the retry bounds).
    Retry,
    /// The provider can never accept this push (a bad token, a malformed request).
    Refused,
}

/// 2xx is accepted; 401 (our key), 408 (timeout), 429 (overload) and 5xx are retried;
/// every other status (other 4xx, and redirects, which the client does not follow) is
/// final.
fn verdict(status: StatusCode) -> Verdict {
    match status.as_u16() {
        200..=299 => Verdict::Accepted,
        401 | 408 | 429 | 500..=599 => Verdict::Retry,
        _ => Verdict::Refused,
    }
}

/// The pushes the provider accepted are marked DELIVERED in delivery's database, with
/// the outbox that records the DELIVERED interactions.
struct Marks {
    db: DatabaseConnection,
    clock: Clock,
    outbox: Arc<SetOnce<Outbox>>,
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The push provider's end of the `push` hop: one POST per item, with a deadline.
pub struct PushSink {
    client: HttpClient,
    url: Uri,
    authorization: Option<HeaderValue>,
    deadline: Duration,
    marks: Marks,
}

impl PushSink {
    /// The sink of the provider `config` names (`push_provider_url`, `push_provider_key`),
    /// marking accepted pushes in `db` on `clock` through the outbox that `outbox` will
    /// hold once started; `None` when no provider is configured. Each POST's deadline is
    /// the configured default, at most 10 s, as the relay's gRPC calls.
    pub fn from_config(
        config: &Config,
        db: &DatabaseConnection,
        clock: &Clock,
        outbox: Arc<SetOnce<Outbox>>,
    ) -> anyhow::Result<Option<PushSink>> {
        let Some(url) = &config.push_provider_url else {
            return Ok(None);
        };
        let url: Uri = url
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid push_provider_url: {e}"))?;
        let authorization = match &config.push_provider_key {
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                    .map_err(|_| {
                        anyhow::anyhow!("invalid push_provider_key: must be visible ASCII")
                    })?;
                // Kept out of any debug output of the request.
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let mut http = HttpConnector::new();
        // The https connector below does TLS for https URLs; this one only connects.
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(2)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Some(PushSink {
            client,
            url,
            authorization,
            deadline: config.default_deadline().min(Duration::from_secs(10)),
            marks: Marks {
                db: db.clone(),
                clock: clock.clone(),
                outbox,
            },
        }))
    }

    /// POSTs one item to the provider, within the deadline.
    async fn post(&self, item: &Item, route: &Route) -> Result<(), SinkError> {
        let id = &route.message_id;
        let idempotency_key = HeaderValue::from_str(id)
            .map_err(|_| SinkError::Rejected(format!("message id {id:?} is not a header value")))?;
        let mut request = http::Request::post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("idempotency-key", idempotency_key)
            .body(Full::new(Bytes::copy_from_slice(&item.payload)))
            .map_err(|e| SinkError::Rejected(format!("cannot build the push request: {e}")))?;
        let headers = request.headers_mut();
        if let Some(authorization) = &self.authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        if let Some(traceparent) = herald_runtime::telemetry::current_traceparent()
            .and_then(|t| HeaderValue::from_str(&t).ok())
        {
            headers.insert("traceparent", traceparent);
        }
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            // Read (a bounded part of) the answer: a drained connection is reused, and a
            // refusal's reason is logged.
            let answer = Limited::new(response.into_body(), ANSWER_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, hyper_util::client::legacy::Error>((status, answer))
        };
        let (status, answer) = match tokio::time::timeout(self.deadline, exchange).await {
            Err(_) => {
                return Err(SinkError::Retryable(format!(
                    "push provider did not answer message {id} within {} ms",
                    self.deadline.as_millis()
                )));
            }
            Ok(Err(e)) => {
                return Err(SinkError::Retryable(format!(
                    "push provider unreachable for message {id}: {}",
                    chain(&e)
                )));
            }
            Ok(Ok(answered)) => answered,
        };
        let reason = || {
            let shown = &answer[..answer.len().min(LOGGED_BYTES)];
            format!(
                "push provider answered {status} for message {id}: {}",
                String::from_utf8_lossy(shown).trim()
            )
        };
        match verdict(status) {
            Verdict::Accepted => Ok(()),
            Verdict::Retry => Err(SinkError::Retryable(reason())),
            Verdict::Refused => {
                tracing::warn!(message_id = %id, status = status.as_u16(), "push provider refused the message, it will not be retried");
                Err(SinkError::Rejected(reason()))
            }
        }
    }

    /// Sends `items`: one user's in order (after a failure, that user's later pushes wait
    /// for the retry), different users' at once, all within [`BATCH_BUDGET`]. Returns the
    /// per-item outcomes in item order; `None` for an item not sent.
    async fn post_all(
        &self,
        items: &[Item],
        routes: &[Route],
    ) -> Vec<Option<Result<(), SinkError>>> {
        let mut by_user: Vec<Vec<usize>> = Vec::new();
        let mut slot: HashMap<&str, usize> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            let at = *slot.entry(item.key.as_str()).or_insert_with(|| {
                by_user.push(Vec::new());
                by_user.len() - 1
            });
            by_user[at].push(i);
        }
        let mut outcomes: Vec<Option<Result<(), SinkError>>> = items.iter().map(|_| None).collect();
        let mut users = futures::stream::iter(by_user)
            .map(|indexes| async move {
                let mut done = Vec::with_capacity(indexes.len());
                for i in indexes {
                    let outcome = self.post(&items[i], &routes[i]).await;
                    let failed = outcome.is_err();
                    done.push((i, outcome));
                    if failed {
                        break;
                    }
                }
                done
            })
            .buffer_unordered(CONCURRENCY);
        let budget = tokio::time::sleep(BATCH_BUDGET);
        tokio::pin!(budget);
        loop {
            tokio::select! {
                next = users.next() => match next {
                    Some(done) => {
                        for (i, outcome) in done {
                            outcomes[i] = Some(outcome);
                        }
                    }
                    None => break,
                },
                _ = &mut budget => break,
            }
        }
        outcomes
    }

    /// Marks the accepted pushes DELIVERED (recording the DELIVERED interactions), one
    /// transaction per workspace.
    async fn mark(&self, accepted: &[&Route]) -> Result<(), SinkError> {
        if accepted.is_empty() {
            return Ok(());
        }
        // Set as soon as the outbox started, before any relay could reach this.
        let outbox = self.marks.outbox.wait().await;
        let mut by_workspace: HashMap<&str, Vec<&str>> = HashMap::new();
        for route in accepted {
            by_workspace
                .entry(route.workspace_id.as_str())
                .or_default()
                .push(route.message_id.as_str());
        }
        for (workspace, ids) in by_workspace {
            store::mark_delivered(&self.marks.db, outbox, &self.marks.clock, workspace, &ids)
                .await
                .map_err(|e| {
                    // The provider has them; the retry resends them (deduplicated on the
                    // Idempotency-Key) and marks them again.
                    SinkError::Retryable(format!("cannot mark pushed messages delivered: {e}"))
                })?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Sink for PushSink {
    async fn send(&self, items: &[Item]) -> Result<(), SinkError> {
        async {
            let routes = items
                .iter()
                .map(|item| {
                    serde_json::from_slice::<Route>(&item.payload).map_err(|e| {
                        SinkError::Rejected(format!("undecodable push item {}: {e}", item.id))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let outcomes = self.post_all(items, &routes).await;
            let accepted: Vec<&Route> = outcomes
                .iter()
                .zip(&routes)
                .filter(|(outcome, _)| matches!(outcome, Some(Ok(()))))
                .map(|(_, route)| route)
                .collect();
            self.mark(&accepted).await?;
            // A refusal first: the relay then sends the items one by one and parks only
            // the refused one. Items the provider already accepted are sent again then,
            // and deduplicated by it on their Idempotency-Key.
            let mut retry = None;
            for outcome in outcomes {
                match outcome {
                    Some(Ok(())) => {}
                    Some(Err(refused @ SinkError::Rejected(_))) => return Err(refused),
                    Some(Err(failed)) => {
                        retry.get_or_insert(failed);
                    }
                    None => {
                        retry.get_or_insert(SinkError::Retryable(
                            "push not sent yet: an earlier push of its user failed, or the batch ran out of time".into(),
                        ));
                    }
                }
            }
            retry.map_or(Ok(()), Err)
        }
        .instrument(relay_span(PUSH, items))
        .await
    }
}

/// An error and its causes, `: `-separated (hyper's errors say little at the top).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Logs when push items wait in the outbox of a deployment that has no push provider
/// (any more): nothing relays them until one is configured again.
pub async fn warn_if_stranded(outbox: &Outbox) {
    match outbox.pending(PUSH).await {
        Ok(0) => {}
        Ok(waiting) => tracing::warn!(
            waiting,
            "push messages wait in the outbox but no push_provider_url is configured; they are sent once one is"
        ),
        Err(error) => tracing::debug!(%error, "cannot count waiting push items"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> prost_types::Value {
        prost_types::Value {
            kind: Some(prost_types::value::Kind::StringValue(s.into())),
        }
    }

    #[test]
    fn statuses_are_accepted_retried_or_final() {
        let of = |code: u16| verdict(StatusCode::from_u16(code).unwrap());
        for code in [200, 201, 202, 204] {
            assert_eq!(of(code), Verdict::Accepted, "{code}");
        }
        for code in [401, 408, 429, 500, 502, 503, 504] {
            assert_eq!(of(code), Verdict::Retry, "{code}");
        }
        for code in [301, 400, 403, 404, 409, 410, 413, 422] {
            assert_eq!(of(code), Verdict::Refused, "{code}");
        }
    }

    #[test]
    fn the_item_is_the_documented_json() {
        let custom = prost_types::Struct {
            fields: [
                ("screen".to_owned(), text("billing")),
                (
                    "n".to_owned(),
                    prost_types::Value {
                        kind: Some(prost_types::value::Kind::NumberValue(2.0)),
                    },
                ),
            ]
            .into(),
        };
        let content = MessageContent {
            body: Some(message_content::Body::Push(PushContent {
                title: "Hi".into(),
                body: "Your report is ready".into(),
                custom_data: Some(custom),
                ..Default::default()
            })),
        };
        let model = store::message::Model {
            id: "msg_1".into(),
            workspace_id: "acme".into(),
            user_id: "u1".into(),
            idempotency_key: "k1".into(),
            campaign_id: "cmp_1".into(),
            variant_id: "a".into(),
            channel: herald_proto::common::v1::Channel::Push as i16,
            content: content.encode_to_vec(),
            address: "tok-1".into(),
            state: 1,
            priority: 0,
            category: String::new(),
            create_time: 0,
            update_time: 0,
            expire_time: Some(1_772_971_200_000),
            display_time: None,
            click_time: None,
            dismiss_time: None,
            read_time: None,
            archive_time: None,
        };
        let item = item(&model).unwrap();
        assert_eq!((item.destination, item.key.as_str()), (PUSH, "u1"));
        let body: serde_json::Value = serde_json::from_slice(&item.payload).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "message_id": "msg_1",
                "workspace_id": "acme",
                "user_id": "u1",
                "campaign_id": "cmp_1",
                "variant_id": "a",
                "token": "tok-1",
                "notification": {
                    "title": "Hi",
                    "body": "Your report is ready",
                    "custom_data": {"screen": "billing", "n": 2.0}
                },
                "expire_time": "2026-03-08T12:00:00Z"
            })
        );
    }

    #[test]
    fn a_struct_becomes_its_json_object() {
        use prost_types::value::Kind;
        let value = |kind| prost_types::Value { kind: Some(kind) };
        let nested = prost_types::Struct {
            fields: [
                ("yes".to_owned(), value(Kind::BoolValue(true))),
                ("none".to_owned(), value(Kind::NullValue(0))),
                ("nan".to_owned(), value(Kind::NumberValue(f64::NAN))),
                (
                    "list".to_owned(),
                    value(Kind::ListValue(prost_types::ListValue {
                        values: vec![text("a"), value(Kind::NumberValue(1.5))],
                    })),
                ),
            ]
            .into(),
        };
        let outer = prost_types::Struct {
            fields: [("inner".to_owned(), value(Kind::StructValue(nested)))].into(),
        };
        assert_eq!(
            serde_json::Value::Object(object(&outer)),
            serde_json::json!({"inner": {"yes": true, "none": null, "nan": null, "list": ["a", 1.5]}})
        );
    }
}
