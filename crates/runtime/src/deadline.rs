//! Deadlines: every incoming call gets one (the caller's `grpc-timeout`, or a default),
//! the call is abandoned with DEADLINE_EXCEEDED when it passes, and outgoing calls made
//! on its behalf carry what is left of it.

use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;
use tonic::Status;

/// The instant by which the current incoming call must be answered; found in the request
/// extensions of every call that went through [`DeadlineLayer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// The deadline of `request`, if it came through the server stack.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<Deadline> {
        request.extensions().get::<Deadline>().copied()
    }

    /// Time left before the deadline (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

/// Parses a `grpc-timeout` header value: an integer of at most 8 digits and a unit
/// (`H`, `M`, `S`, `m`, `u`, `n`).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// How long before a call's deadline [`DeadlineLayer`] answers DEADLINE_EXCEEDED: more
/// than tokio's timer granularity (1 ms), so its timer fires before tonic's own.
const ANSWER_EARLY: Duration = Duration::from_millis(5);

/// Tower layer giving every call a deadline and answering DEADLINE_EXCEEDED when it
/// passes (tower's own timeout would surface as INTERNAL).
#[derive(Debug, Clone, Copy)]
pub struct DeadlineLayer {
    default: Duration,
}

impl DeadlineLayer {
    /// Calls without `grpc-timeout` get `default`.
    pub fn new(default: Duration) -> Self {
        DeadlineLayer { default }
    }
}

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DeadlineService {
            inner,
            default: self.default,
        }
    }
}

/// See [`DeadlineLayer`].
#[derive(Debug, Clone)]
pub struct DeadlineService<S> {
    inner: S,
    default: Duration,
}

impl<S, B> tower::Service<http::Request<B>> for DeadlineService<S>
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

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let header = request
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok());
        let timeout = match header {
            Some(value) => match parse_grpc_timeout(value) {
                Some(t) => t,
                None => {
                    let status = Status::invalid_argument(format!(
                        "malformed grpc-timeout header {value:?}"
                    ));
                    return Box::pin(async move { Ok(status.into_http()) });
                }
            },
            None => self.default,
        };
        // A grpc-timeout of up to 99999999 hours is valid; cap what cannot be represented.
        let now = Instant::now();
        let deadline = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
        request.extensions_mut().insert(Deadline(deadline));
        // tonic's server enforces a caller's grpc-timeout too, outside this layer, from an
        // instant taken a few microseconds earlier, and answers CANCELLED ("Timeout
        // expired"). Ending the call a little before the deadline makes this layer's
        // DEADLINE_EXCEEDED the answer, whichever timer tokio wakes first under load.
        let answer_at = deadline
            .checked_sub(ANSWER_EARLY)
            .filter(|at| *at > now)
            .unwrap_or(deadline);
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let call = inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout_at(answer_at, call).await {
                Ok(result) => result,
                Err(_) => Ok(Status::deadline_exceeded(format!(
                    "deadline of {}ms exceeded",
                    timeout.as_millis()
                ))
                .into_http()),
            }
        })
    }
}

/// The timeout for an outgoing call: `default`, but never beyond the incoming call's
/// deadline when there is one.
pub fn outgoing_timeout(incoming: Option<Deadline>, default: Duration) -> Duration {
    match incoming {
        Some(deadline) => deadline.remaining().min(default),
        None => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grpc_timeout_units() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("100n"), Some(Duration::from_nanos(100)));
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("5x"), None);
        assert_eq!(
            parse_grpc_timeout("99999999H"),
            Some(Duration::from_secs(99_999_999 * 3600))
        );
    }

    #[tokio::test]
    async fn outgoing_never_outlives_incoming() {
        let incoming = Deadline(Instant::now() + Duration::from_millis(200));
        assert!(
            outgoing_timeout(Some(incoming), Duration::from_secs(5)) <= Duration::from_millis(200)
        );
        assert_eq!(
            outgoing_timeout(None, Duration::from_secs(5)),
            Duration::from_secs(5)
        );
    }
}
