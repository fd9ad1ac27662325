//! A TCP proxy a test controls: it forwards 127.0.0.1:port to a target until told to
//! cut, then refuses and severs connections until told to forward again, and can move to
//! another target. Tests use it to make a database or a service unreachable and back
//! without restarting anything, and to restart a service on a new port while its clients
//! keep the proxy's address (an ephemeral port, once freed, is never bound again).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Forward(SocketAddr),
    Cut,
}

/// See the module documentation. Stops when dropped.
pub struct Proxy {
    addr: SocketAddr,
    state: watch::Sender<State>,
    task: tokio::task::JoinHandle<()>,
    connections: Arc<Mutex<usize>>,
    refused: Arc<Mutex<usize>>,
}

impl Proxy {
    /// A proxy on a free loopback port that refuses connections until
    /// [`Proxy::forward`].
    pub async fn cut_off() -> Proxy {
        let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], 1))).await;
        proxy.cut();
        proxy
    }

    /// A proxy on a free loopback port forwarding to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (state, watching) = watch::channel(State::Forward(target));
        let connections = Arc::new(Mutex::new(0));
        let counted = connections.clone();
        let refused = Arc::new(Mutex::new(0));
        let refusals = refused.clone();
        let mut watching = watching;
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                // Marks the state seen, so the clone below waits for the next change.
                let state = *watching.borrow_and_update();
                let State::Forward(target) = state else {
                    // Cut: close at once.
                    drop(client);
                    *refusals.lock().expect("counter") += 1;
                    continue;
                };
                *counted.lock().expect("counter") += 1;
                let mut cut = watching.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        // Any change of state severs the connections made before it.
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            state,
            task,
            connections,
            refused,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr`, for gRPC clients and service configs.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A database URL through the proxy: `url` with its host and port replaced.
    pub fn database_url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let userinfo = authority
            .rsplit_once('@')
            .map(|(u, _)| format!("{u}@"))
            .unwrap_or_default();
        format!("{scheme}://{userinfo}{}/{path}", self.addr)
    }

    /// Severs every connection and refuses new ones until [`Proxy::forward`].
    pub fn cut(&self) {
        self.state.send_replace(State::Cut);
    }

    /// Forwards new connections to `target` (severing those to the old one).
    pub fn forward(&self, target: SocketAddr) {
        self.state.send_replace(State::Forward(target));
    }

    /// Connections forwarded so far.
    pub fn connections(&self) -> usize {
        *self.connections.lock().expect("counter")
    }

    /// Connections refused while cut: someone tried to reach the target meanwhile.
    pub fn refused(&self) -> usize {
        *self.refused.lock().expect("counter")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
