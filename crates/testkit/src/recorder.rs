//! A real HTTP/1.1 server on `127.0.0.1:0` that records every request and answers with
//! the statuses a test scripts: the far end of a hop that leaves Herald over HTTP, such
//! as delivery's push provider.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

/// One request the recorder received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: http::Method,
    /// The path and query.
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
}

impl Recorded {
    /// The value of header `name`, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON request body")
    }
}

/// How to answer one request: after `delay`, with `status`.
#[derive(Debug, Clone, Copy)]
struct Answer {
    status: u16,
    delay: Duration,
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Recorded>>,
    /// Answers to the next requests, in order.
    script: Mutex<VecDeque<Answer>>,
    /// The status once the script is used up.
    otherwise: AtomicU16,
}

/// The recording server; stops accepting connections when dropped.
pub struct HttpRecorder {
    addr: SocketAddr,
    state: Arc<State>,
    accept: AbortHandle,
}

impl HttpRecorder {
    /// Starts a recorder that answers 200 until told otherwise.
    pub async fn start() -> HttpRecorder {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the recorder");
        let addr = listener.local_addr().expect("recorder address");
        let state = Arc::new(State {
            otherwise: AtomicU16::new(200),
            ..State::default()
        });
        let serving = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| answer(state.clone(), request));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        })
        .abort_handle();
        HttpRecorder {
            addr,
            state,
            accept,
        }
    }

    /// `http://addr` followed by `path` (e.g. `/push`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next requests with `statuses`, in order, then as before.
    pub fn answer_next(&self, statuses: &[u16]) {
        self.state
            .script
            .lock()
            .unwrap()
            .extend(statuses.iter().map(|&status| Answer {
                status,
                delay: Duration::ZERO,
            }));
    }

    /// Answers the next request (after those already scripted) only after `delay`, with
    /// `status`: a provider too slow for the caller's deadline. It is recorded on arrival.
    pub fn stall_next(&self, delay: Duration, status: u16) {
        self.state
            .script
            .lock()
            .unwrap()
            .push_back(Answer { status, delay });
    }

    /// Answers every request after the scripted ones with `status`.
    pub fn answer_otherwise(&self, status: u16) {
        self.state.otherwise.store(status, Ordering::SeqCst);
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Waits (up to `within`) until `matching` requests satisfy `is`, and returns them.
    pub async fn received(
        &self,
        within: Duration,
        count: usize,
        is: impl Fn(&Recorded) -> bool,
    ) -> Vec<Recorded> {
        crate::eventually(within, &format!("{count} matching HTTP request(s)"), || {
            let matching: Vec<Recorded> = self.requests().into_iter().filter(&is).collect();
            async move { (matching.len() >= count).then_some(matching) }
        })
        .await
    }
}

impl Drop for HttpRecorder {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn answer(
    state: Arc<State>,
    request: http::Request<Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let answer = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| Answer {
            status: state.otherwise.load(Ordering::SeqCst),
            delay: Duration::ZERO,
        });
    let status = answer.status;
    state.requests.lock().unwrap().push(Recorded {
        method: parts.method,
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        headers: parts.headers,
        body,
        status,
    });
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    let response = http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(format!("{{\"status\":{status}}}"))))
        .expect("a valid response");
    Ok(response)
}
