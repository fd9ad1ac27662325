//! The whole Herald suite for end-to-end tests: five services, each its own gRPC server
//! on an ephemeral port, talking to each other over real gRPC, sharing one fresh
//! database (SQLite files per service, or one PostgreSQL database, as chosen by
//! `HERALD_TEST_DATABASE`).
//!
//! Every service is reached through a [`Proxy`] of the test's, so a service can be
//! stopped and started again on a new port while the others (and the test's clients)
//! keep its address: no freed ephemeral port is ever bound again.

#![forbid(unsafe_code)]

use std::collections::HashMap;

use herald_runtime::{Clock, Config, ServiceKind};
use herald_testkit::{Credentials, Proxy, Running, TestDatabase};
use tokio::net::TcpListener;

pub use herald_testkit::{authorized, eventually};

/// Five running services and what it takes to call them.
pub struct Suite {
    pub credentials: Credentials,
    pub db: TestDatabase,
    pub clock: Clock,
    proxies: HashMap<ServiceKind, Proxy>,
    running: HashMap<ServiceKind, Running>,
}

impl Suite {
    /// Starts all five services on a fresh database, on the system clock.
    pub async fn start() -> Suite {
        Suite::start_with(Clock::system(), |_, _| {}).await
    }

    /// Starts all five services on a fresh database, reading time from `clock`, each
    /// config adjusted by `adjust`.
    pub async fn start_with(clock: Clock, adjust: impl Fn(ServiceKind, &mut Config)) -> Suite {
        herald_testkit::init_tracing();
        let db = TestDatabase::new().await;
        let credentials = Credentials::new();
        let mut listeners = HashMap::new();
        let mut proxies = HashMap::new();
        for kind in ServiceKind::ALL {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            proxies.insert(
                kind,
                Proxy::start(listener.local_addr().expect("addr")).await,
            );
            listeners.insert(kind, listener);
        }
        let mut suite = Suite {
            credentials,
            db,
            clock,
            proxies,
            running: HashMap::new(),
        };
        for (kind, listener) in listeners {
            let mut config = suite.config(kind);
            adjust(kind, &mut config);
            suite.run(kind, listener, config);
        }
        for running in suite.running.values() {
            herald_testkit::wait_until_serving(running.addr).await;
        }
        suite
    }

    /// The config `kind` runs with in this suite: downstream services reached through
    /// their proxies.
    pub fn config(&self, kind: ServiceKind) -> Config {
        let mut config = herald_testkit::config(kind, &self.db, &self.credentials);
        config.ingest_url = self.url(ServiceKind::Ingest);
        config.segmentation_url = self.url(ServiceKind::Segmentation);
        config.trigger_url = self.url(ServiceKind::Trigger);
        config.delivery_url = self.url(ServiceKind::Delivery);
        config.analytics_url = self.url(ServiceKind::Analytics);
        config
    }

    fn run(&mut self, kind: ServiceKind, listener: TcpListener, config: Config) {
        let running = spawn(kind, listener, config, self.clock.clone());
        self.running.insert(kind, running);
    }

    /// The proxy in front of `kind`.
    pub fn proxy(&self, kind: ServiceKind) -> &Proxy {
        &self.proxies[&kind]
    }

    /// `http://addr` of `kind` (its proxy).
    pub fn url(&self, kind: ServiceKind) -> String {
        self.proxies[&kind].url()
    }

    /// A channel to `kind`.
    pub async fn channel(&self, kind: ServiceKind) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(self.url(kind))
            .expect("url")
            .connect()
            .await
            .expect("connect to a test service")
    }

    /// Stops `kind`; its address refuses connections until [`Suite::restart`].
    pub async fn stop(&mut self, kind: ServiceKind) {
        self.proxies[&kind].cut();
        if let Some(running) = self.running.remove(&kind) {
            running.stop().await;
        }
    }

    /// Starts `kind` again, on a new port behind its old address.
    pub async fn restart(&mut self, kind: ServiceKind) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let config = self.config(kind);
        self.run(kind, listener, config);
        herald_testkit::wait_until_serving(addr).await;
        self.proxies[&kind].forward(addr);
    }

    /// Stops every service.
    pub async fn shutdown(mut self) {
        for kind in ServiceKind::ALL {
            self.stop(kind).await;
        }
    }
}

/// Runs `kind` on `listener` with `config` and `clock`.
pub fn spawn(kind: ServiceKind, listener: TcpListener, config: Config, clock: Clock) -> Running {
    use herald_testkit::spawn_on;
    match kind {
        ServiceKind::Ingest => spawn_on(listener, config, clock, herald_ingest::serve),
        ServiceKind::Segmentation => spawn_on(listener, config, clock, herald_segmentation::serve),
        ServiceKind::Trigger => spawn_on(listener, config, clock, herald_trigger::serve),
        ServiceKind::Delivery => spawn_on(listener, config, clock, herald_delivery::serve),
        ServiceKind::Analytics => spawn_on(listener, config, clock, herald_analytics::serve),
    }
}
