//! The baseline: a bare tonic server in this process implementing `grpc.health.v1.Health`,
//! with no auth, no database and no hops. `Check` answers at once; `Check` on the service
//! name [`PUSH`] also pushes one item onto every open `Watch` stream, which gives a
//! "unary call causes a server-stream item" round trip to set beside Herald's
//! Track → Subscribe.

use std::net::SocketAddr;
use std::pin::Pin;

use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{BroadcastStream, TcpListenerStream};
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// The service name whose `Check` pushes an item to the `Watch` streams.
pub const PUSH: &str = "push";

struct Echo {
    pushes: broadcast::Sender<()>,
}

fn serving() -> HealthCheckResponse {
    HealthCheckResponse {
        status: ServingStatus::Serving as i32,
    }
}

#[tonic::async_trait]
impl Health for Echo {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        if request.get_ref().service == PUSH {
            let _ = self.pushes.send(());
        }
        Ok(Response::new(serving()))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let stream = BroadcastStream::new(self.pushes.subscribe())
            .filter_map(|item| item.ok().map(|()| Ok(serving())));
        Ok(Response::new(Box::pin(stream)))
    }
}

/// A running echo server; stops when dropped.
pub struct EchoServer {
    pub addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl EchoServer {
    pub async fn start() -> anyhow::Result<EchoServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (pushes, _) = broadcast::channel(1024);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let incoming = TcpListenerStream::new(listener);
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .add_service(HealthServer::new(Echo { pushes }))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(EchoServer { addr, _stop: stop })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
