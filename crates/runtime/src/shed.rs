//! Load shedding that spares health checks: calls beyond the concurrency limit are
//! refused at once with RESOURCE_EXHAUSTED, but `grpc.health.v1.Health` always gets
//! through, so an overloaded server is not also restarted by its liveness probe.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::limit::ConcurrencyLimit;
use tower::load_shed::LoadShed;
use tower::{BoxError, Service, ServiceExt};

const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

/// Tower layer: at most `max` calls in flight (health checks excepted), the rest shed.
#[derive(Debug, Clone, Copy)]
pub struct ShedLayer {
    max: usize,
}

impl ShedLayer {
    /// Allows `max` calls at once.
    pub fn new(max: usize) -> Self {
        ShedLayer { max }
    }
}

impl<S: Clone> tower::Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Shed {
            limited: LoadShed::new(ConcurrencyLimit::new(inner.clone(), self.max)),
            direct: inner,
        }
    }
}

/// See [`ShedLayer`].
#[derive(Clone)]
pub struct Shed<S> {
    limited: LoadShed<ConcurrencyLimit<S>>,
    direct: S,
}

impl<S, B> Service<http::Request<B>> for Shed<S>
where
    S: Service<http::Request<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    S::Response: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is decided per call below: shedding never makes a caller wait.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path().starts_with(HEALTH_PREFIX) {
            let direct = self.direct.clone();
            Box::pin(async move { direct.oneshot(request).await.map_err(Into::into) })
        } else {
            // Clones share the limit's semaphore; `oneshot` takes a permit or sheds.
            let limited = self.limited.clone();
            Box::pin(limited.oneshot(request))
        }
    }
}
