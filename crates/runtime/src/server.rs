//! Assembles a service's gRPC server the same way for every service: health, reflection,
//! gRPC-Web, the tower stack, and a bounded graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use herald_core::Clock;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::ServiceBuilder;

use crate::auth::{Access, AccessPolicy, AuthLayer, Authenticator};
use crate::config::{Config, ServiceKind};
use crate::deadline::DeadlineLayer;
use crate::panic::CatchPanicLayer;
use crate::shed::ShedLayer;
use crate::telemetry::TraceLayer;

/// Answers whether the service's dependencies (its database) are reachable.
pub type ReadinessCheck = Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>;

/// What a service brings to the shared server: its gRPC services, each added together
/// with the access it requires, so a served RPC can never lack a rule.
pub struct ServiceSpec {
    kind: ServiceKind,
    routes: Routes,
    service_names: Vec<&'static str>,
    descriptor_sets: Vec<&'static [u8]>,
    access: AccessPolicy,
    readiness: Option<ReadinessCheck>,
}

impl ServiceSpec {
    /// An empty spec for `kind`, described over reflection by `descriptor_set`.
    pub fn new(kind: ServiceKind, descriptor_set: &'static [u8]) -> ServiceSpec {
        ServiceSpec {
            kind,
            routes: Routes::default(),
            service_names: Vec::new(),
            descriptor_sets: vec![descriptor_set],
            access: AccessPolicy::default(),
            readiness: None,
        }
    }

    /// Serves the generated gRPC service `service`, every method of it requiring `access`.
    pub fn serve<S>(mut self, service: S, access: Access) -> ServiceSpec
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.routes = self.routes.add_service(service);
        self.service_names.push(S::NAME);
        self.access = self.access.serve::<S>(access);
        self
    }

    /// Requires `access` for the one method `method` of the already served gRPC service
    /// named `service` (its generated `SERVICE_NAME`), instead of the access it was
    /// served with.
    pub fn method(mut self, service: &str, method: &str, access: Access) -> ServiceSpec {
        debug_assert!(
            self.service_names.contains(&service),
            "a method rule for {service}, which is not served"
        );
        self.access = self.access.method(service, method, access);
        self
    }

    /// Readiness follows `check` (polled every few seconds).
    pub fn readiness(mut self, check: ReadinessCheck) -> ServiceSpec {
        self.readiness = Some(check);
        self
    }

    /// The access rules of the served services (health and reflection, which every
    /// server adds, are public).
    pub fn access_policy(&self) -> AccessPolicy {
        BUILTIN.iter().fold(self.access.clone(), |policy, name| {
            policy.service(name, Access::Public)
        })
    }

    /// The full names of the served gRPC services.
    pub fn service_names(&self) -> &[&'static str] {
        &self.service_names
    }
}

/// The services every server adds, answered without credentials.
const BUILTIN: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// What a service process is started with: its configuration, its clock, the bound
/// listener, and the cancellation that SIGTERM (or a test) triggers.
pub struct Launch {
    pub config: Config,
    pub clock: Clock,
    pub listener: TcpListener,
    pub shutdown: CancellationToken,
}

impl Launch {
    /// Serves `spec` until the shutdown (see [`serve`]).
    pub async fn serve(self, spec: ServiceSpec) -> anyhow::Result<()> {
        serve(
            &self.config,
            &self.clock,
            spec,
            self.listener,
            self.shutdown,
        )
        .await
    }
}

/// Health service name that reports liveness only (not readiness).
pub const LIVENESS: &str = "liveness";

/// How often readiness is re-checked.
const READINESS_INTERVAL: Duration = Duration::from_secs(2);

/// Serves `spec` on `listener` until `shutdown` is cancelled, then reports NOT_SERVING,
/// stops accepting, and waits for in-flight calls for at most the configured grace.
/// Long-lived streams must end themselves on `shutdown` too. User tokens are checked
/// against `clock`.
pub async fn serve(
    config: &Config,
    clock: &Clock,
    spec: ServiceSpec,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let access = spec.access_policy();
    let (reporter, health) = tonic_health::server::health_reporter();
    let names: Vec<&'static str> = std::iter::once("")
        .chain(spec.service_names.iter().copied())
        .collect();
    set_all(&reporter, &names, ServingStatus::Serving).await;
    // Liveness: SERVING for as long as the process serves at all, whatever the database
    // does, so an orchestrator restarts a wedged process but not every pod of an outage.
    reporter
        .set_service_status(LIVENESS, ServingStatus::Serving)
        .await;

    // Health and both reflection versions are described too, so `grpcurl list` shows
    // every service the server answers.
    let builtin = [
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    let mut reflection_v1 = tonic_reflection::server::Builder::configure();
    let mut reflection_v1alpha = tonic_reflection::server::Builder::configure();
    for set in builtin.iter().chain(&spec.descriptor_sets) {
        reflection_v1 = reflection_v1.register_encoded_file_descriptor_set(set);
        reflection_v1alpha = reflection_v1alpha.register_encoded_file_descriptor_set(set);
    }
    // Only the services this server answers are listed: a descriptor set also holds the
    // files its contracts import, and an imported file's service (analytics' internal
    // service, imported by segmentation for its Interaction message) is served elsewhere.
    for &name in spec.service_names.iter().chain(&BUILTIN) {
        reflection_v1 = reflection_v1.with_service_name(name);
        reflection_v1alpha = reflection_v1alpha.with_service_name(name);
    }
    let routes = spec
        .routes
        .add_service(health)
        .add_service(reflection_v1.build_v1()?)
        // grpcurl 1.8 and other older tools only speak v1alpha.
        .add_service(reflection_v1alpha.build_v1alpha()?);

    if let Some(check) = spec.readiness.clone() {
        tokio::spawn(follow_readiness(
            check,
            reporter.clone(),
            names.clone(),
            shutdown.clone(),
        ));
    }

    let authenticator = Authenticator::new(
        &config.api_keys,
        config.internal_key.as_ref(),
        &config.workspaces,
        clock.clone(),
        config.max_user_token_lifetime(),
    );
    let stack = ServiceBuilder::new()
        // Browsers send CORS preflights before gRPC-Web calls; answer them first.
        .layer(cors())
        // Translate gRPC-Web (HTTP/1.1, browsers) into plain gRPC for everything inside.
        .layer(tonic_web::GrpcWebLayer::new())
        // One span per call, parented to the caller's W3C trace context.
        .layer(TraceLayer)
        // Shed calls beyond the concurrency limit at once (RESOURCE_EXHAUSTED) rather
        // than queueing them past their deadlines; health checks are never shed.
        .layer(ShedLayer::new(config.max_concurrent_requests))
        // Every call gets a deadline: the caller's grpc-timeout or the default.
        .layer(DeadlineLayer::new(config.default_deadline()))
        // Credentials, refusing paths without a rule, so handlers always find a `Caller`.
        .layer(AuthLayer::new(authenticator, access))
        // Innermost: a panicking handler answers INTERNAL instead of taking the
        // connection, and every other call on it, down.
        .layer(CatchPanicLayer);

    let local = listener.local_addr()?;
    tracing::info!(service = %spec.kind, addr = %local, "serving");
    let drain_started = shutdown.clone();
    let reporter_for_stop = reporter.clone();
    let stop_names = names.clone();
    let incoming = incoming(listener);
    let server = tonic::transport::Server::builder()
        .accept_http1(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .layer(stack)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, async move {
            drain_started.cancelled().await;
            set_all(&reporter_for_stop, &stop_names, ServingStatus::NotServing).await;
        });
    tokio::pin!(server);
    let grace = config.shutdown_grace();
    tokio::select! {
        result = &mut server => result?,
        _ = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_secs = grace.as_secs(), "drain exceeded the grace period, closing");
        }
    }
    tracing::info!(service = %spec.kind, "stopped");
    Ok(())
}

/// TCP keep-alive probes on accepted connections start after this much silence.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// The connections `listener` accepts, with Nagle's algorithm off (a small response or
/// stream item goes out at once instead of waiting for the peer's delayed ACK, ~40 ms)
/// and TCP keep-alive on. `serve_with_incoming*` ignores the builder's TCP options, so
/// they are set here.
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(TCP_KEEPALIVE))
}

async fn set_all(reporter: &HealthReporter, names: &[&'static str], status: ServingStatus) {
    for name in names {
        reporter.set_service_status(*name, status).await;
    }
}

async fn follow_readiness(
    check: ReadinessCheck,
    reporter: HealthReporter,
    names: Vec<&'static str>,
    shutdown: CancellationToken,
) {
    let mut last = true;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(READINESS_INTERVAL) => {}
        }
        let ready = check().await;
        if ready != last && !shutdown.is_cancelled() {
            let status = if ready {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            if ready {
                tracing::info!("dependencies reachable again, serving");
            } else {
                tracing::warn!("dependencies unreachable, reporting not serving");
            }
            set_all(&reporter, &names, status).await;
            last = ready;
        }
    }
}

fn cors() -> tower_http::cors::CorsLayer {
    use http::HeaderName;
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::AllowOrigin::mirror_request())
        .allow_methods([http::Method::POST, http::Method::OPTIONS])
        .allow_headers([
            HeaderName::from_static("authorization"),
            HeaderName::from_static("content-type"),
            HeaderName::from_static("x-grpc-web"),
            HeaderName::from_static("x-user-agent"),
            HeaderName::from_static("grpc-timeout"),
            HeaderName::from_static("traceparent"),
        ])
        .expose_headers([
            HeaderName::from_static("grpc-status"),
            HeaderName::from_static("grpc-message"),
            HeaderName::from_static("grpc-status-details-bin"),
        ])
        .max_age(Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nodelay_and_keepalive() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = incoming(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let accepted = incoming.next().await.unwrap().unwrap();
        assert!(
            accepted.nodelay().unwrap(),
            "TCP_NODELAY on an accepted socket"
        );
        let socket = socket2::SockRef::from(&accepted);
        assert!(
            socket.keepalive().unwrap(),
            "SO_KEEPALIVE on an accepted socket"
        );
        assert_eq!(socket.tcp_keepalive_time().unwrap(), TCP_KEEPALIVE);
    }
}
