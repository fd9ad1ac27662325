//! Outgoing calls to other Herald services, built in one place so that every call
//! carries a deadline (never later than the incoming call's), the internal key and the
//! W3C trace context.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::config::{Config, ServiceKind};
use crate::deadline::{Deadline, outgoing_timeout};
use crate::secret::Secret;

/// A connection to one downstream service.
#[derive(Clone)]
pub struct Downstream {
    name: &'static str,
    channel: Channel,
    key: Option<Secret>,
    default_timeout: Duration,
}

impl std::fmt::Debug for Downstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downstream")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Downstream {
    /// A lazily connecting channel to `url`; calls time out after `default_timeout` unless
    /// a shorter incoming deadline applies.
    pub fn connect_lazy(
        name: &'static str,
        url: &str,
        key: Option<Secret>,
        default_timeout: Duration,
    ) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(url.to_owned())?
            .connect_timeout(Duration::from_secs(2))
            // The local ceiling; each request also sends its own, possibly shorter,
            // grpc-timeout, and the channel enforces the smaller of the two.
            .timeout(default_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true)
            .connect_lazy();
        Ok(Downstream {
            name,
            channel,
            key,
            default_timeout,
        })
    }

    /// The connection an outbox relay uses to reach `target`: its URL from `config`, the
    /// internal key, and a deadline of the configured default but at most 10 s, so a call
    /// always ends well within the relay's lease on the items it carries.
    pub fn for_relay(
        config: &Config,
        target: ServiceKind,
    ) -> Result<Self, tonic::transport::Error> {
        let deadline = config.default_deadline().min(Duration::from_secs(10));
        Self::connect_lazy(
            target.name(),
            config.url_of(target),
            config.internal_key.clone(),
            deadline,
        )
    }

    /// The service this connects to, for logs.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The channel, for building a generated client.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Wraps `message` for an outgoing call: deadline, internal key, trace context.
    pub fn request<T>(&self, message: T, incoming: Option<Deadline>) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(outgoing_timeout(incoming, self.default_timeout));
        if let Some(key) = &self.key
            && let Ok(value) = format!("Bearer {}", key.expose()).parse()
        {
            request.metadata_mut().insert("authorization", value);
        }
        crate::telemetry::inject_current(request.metadata_mut());
        request
    }
}
