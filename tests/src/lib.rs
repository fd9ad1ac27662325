//! The whole Herald suite for end-to-end tests: five services, each its own gRPC server
//! on an ephemeral port, talking to each other over real gRPC, sharing one fresh
//! database (SQLite files per service, or one PostgreSQL database, as chosen by
//! `HERALD_TEST_DATABASE`).

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::SocketAddr;

use herald_runtime::{Config, ServiceKind};
use herald_testkit::{Credentials, Running, TestDatabase};
use tokio::net::TcpListener;

pub use herald_testkit::{authorized, eventually};

/// Five running services and what it takes to call them.
pub struct Suite {
    pub credentials: Credentials,
    pub db: TestDatabase,
    addrs: HashMap<ServiceKind, SocketAddr>,
    running: HashMap<ServiceKind, Running>,
}

impl Suite {
    /// Starts all five services on a fresh database.
    pub async fn start() -> Suite {
        herald_testkit::init_tracing();
        let db = TestDatabase::new().await;
        let credentials = Credentials::new();
        // Bind every port first: each service needs the others' addresses in its config.
        let mut listeners = HashMap::new();
        let mut addrs = HashMap::new();
        for kind in ServiceKind::ALL {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addrs.insert(kind, listener.local_addr().expect("addr"));
            listeners.insert(kind, listener);
        }
        let mut suite = Suite {
            credentials,
            db,
            addrs,
            running: HashMap::new(),
        };
        for (kind, listener) in listeners {
            suite.run(kind, listener);
        }
        for addr in suite.addrs.values() {
            herald_testkit::wait_until_serving(*addr).await;
        }
        suite
    }

    /// The config `kind` runs with in this suite.
    pub fn config(&self, kind: ServiceKind) -> Config {
        let mut config = herald_testkit::config(kind, &self.db, &self.credentials);
        config.listen_addr = self.addrs[&kind];
        let url = |k: ServiceKind| format!("http://{}", self.addrs[&k]);
        config.ingest_url = url(ServiceKind::Ingest);
        config.segmentation_url = url(ServiceKind::Segmentation);
        config.trigger_url = url(ServiceKind::Trigger);
        config.delivery_url = url(ServiceKind::Delivery);
        config.analytics_url = url(ServiceKind::Analytics);
        config
    }

    fn run(&mut self, kind: ServiceKind, listener: TcpListener) {
        let config = self.config(kind);
        let running = match kind {
            ServiceKind::Ingest => herald_testkit::spawn_on(listener, config, herald_ingest::serve),
            ServiceKind::Segmentation => {
                herald_testkit::spawn_on(listener, config, herald_segmentation::serve)
            }
            ServiceKind::Trigger => {
                herald_testkit::spawn_on(listener, config, herald_trigger::serve)
            }
            ServiceKind::Delivery => {
                herald_testkit::spawn_on(listener, config, herald_delivery::serve)
            }
            ServiceKind::Analytics => {
                herald_testkit::spawn_on(listener, config, herald_analytics::serve)
            }
        };
        self.running.insert(kind, running);
    }

    /// `http://addr` of `kind`.
    pub fn url(&self, kind: ServiceKind) -> String {
        format!("http://{}", self.addrs[&kind])
    }

    /// A channel to `kind`.
    pub async fn channel(&self, kind: ServiceKind) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(self.url(kind))
            .expect("url")
            .connect()
            .await
            .expect("connect to a test service")
    }

    /// Stops `kind` (its port stops answering) until [`Suite::restart`].
    pub async fn stop(&mut self, kind: ServiceKind) {
        if let Some(running) = self.running.remove(&kind) {
            running.stop().await;
        }
    }

    /// Starts `kind` again on its old port.
    pub async fn restart(&mut self, kind: ServiceKind) {
        let listener = TcpListener::bind(self.addrs[&kind])
            .await
            .expect("rebind the same port");
        self.run(kind, listener);
    }

    /// Stops every service.
    pub async fn shutdown(mut self) {
        for kind in ServiceKind::ALL {
            self.stop(kind).await;
        }
    }
}
