//! A handler that panics answers INTERNAL. Without this layer the panic would unwind
//! into the connection's task and close the HTTP/2 connection, failing every other call
//! multiplexed on it; with it, only the panicking call fails, and the log says where.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::BoxFuture;
use tonic::Status;

/// Tower layer turning a panic in the inner service into an INTERNAL answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanicLayer;

impl<S> tower::Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic { inner }
    }
}

/// See [`CatchPanicLayer`].
#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for CatchPanic<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        // The panic may come from building the future as well as from running it.
        let call = match std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(request))) {
            Ok(call) => call,
            Err(panic) => {
                let response = internal(&path, panic.as_ref());
                return Box::pin(async move { Ok(response) });
            }
        };
        Box::pin(async move {
            match AssertUnwindSafe(call).catch_unwind().await {
                Ok(result) => result,
                Err(panic) => Ok(internal(&path, panic.as_ref())),
            }
        })
    }
}

fn internal(path: &str, panic: &(dyn Any + Send)) -> http::Response<tonic::body::Body> {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned());
    tracing::error!(rpc = path, panic = %message, "handler panicked, answered INTERNAL");
    Status::internal("internal error").into_http()
}
