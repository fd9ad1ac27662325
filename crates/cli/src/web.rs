//! `herald dev`'s web server: the demo app, the operator dashboard and the web SDK (built
//! from `web/` by `scripts/web.sh` and committed under `web/dist/`, embedded in the
//! binary so a fresh checkout serves them with Rust alone), and two endpoints for them
//! that only the dev suite has: where the services listen, and a token for a new demo
//! user. It listens on 127.0.0.1 only.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use herald_runtime::auth::{WorkspaceConfig, sign_user_token};
use herald_runtime::{Clock, ServiceKind};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The port the dev web server listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 50080;

/// How long a demo user's token is valid.
const DEMO_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

/// One embedded file: its URL path, content type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $file:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            bytes: include_bytes!(concat!("../../../web/dist/", $file)),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Everything the pages need, from `web/dist/`.
const ASSETS: &[Asset] = &[
    asset!("/", "demo.html", HTML),
    asset!("/dashboard/", "dashboard.html", HTML),
    asset!("/assets/herald.js", "herald.js", JS),
    asset!("/assets/herald.esm.js", "herald.esm.js", JS),
    asset!("/assets/demo.js", "demo.js", JS),
    asset!("/assets/dashboard.js", "dashboard.js", JS),
];

/// What the dev web server knows of the suite.
#[derive(Clone)]
pub struct Site {
    pub workspace: WorkspaceConfig,
    /// The host the services listen on, as the browser reaches them.
    pub host: String,
}

impl Site {
    fn url(&self, kind: ServiceKind) -> String {
        format!("http://{}:{}", self.host, kind.default_port())
    }

    /// `/dev/config.json`: where the pages find the services.
    fn config(&self) -> serde_json::Value {
        serde_json::json!({
            "workspace": self.workspace.id,
            "ingest": self.url(ServiceKind::Ingest),
            "segmentation": self.url(ServiceKind::Segmentation),
            "trigger": self.url(ServiceKind::Trigger),
            "delivery": self.url(ServiceKind::Delivery),
            "analytics": self.url(ServiceKind::Analytics),
        })
    }

    /// `POST /dev/demo-user`: a new demo user and an end-user token for it.
    fn demo_user(&self) -> Result<serde_json::Value, String> {
        let user_id = format!("demo-{:08x}", rand::random::<u32>());
        let token = sign_user_token(
            &self.workspace,
            &user_id,
            DEMO_TOKEN_TTL,
            Clock::system().now(),
        )
        .map_err(|e| format!("cannot sign a token: {e}"))?;
        Ok(serde_json::json!({ "user_id": user_id, "token": token }))
    }
}

fn asset(path: &str) -> Response {
    match ASSETS.iter().find(|a| a.path == path) {
        Some(a) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(a.content_type),
                ),
                // The embedded files change only with the binary.
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            Body::from(a.bytes),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

fn json(value: serde_json::Value) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        value.to_string(),
    )
        .into_response()
}

fn router(site: Site) -> Router {
    let config = site.clone();
    Router::new()
        .route("/", get(|| async { asset("/") }))
        .route(
            "/dashboard",
            get(|| async { Redirect::permanent("/dashboard/") }),
        )
        .route("/dashboard/", get(|| async { asset("/dashboard/") }))
        .route(
            "/assets/{file}",
            get(
                |axum::extract::Path(file): axum::extract::Path<String>| async move {
                    asset(&format!("/assets/{file}"))
                },
            ),
        )
        .route(
            "/dev/config.json",
            get(move || async move { json(config.config()) }),
        )
        .route(
            "/dev/demo-user",
            post(move || async move {
                match site.demo_user() {
                    Ok(user) => json(user),
                    Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
                }
            }),
        )
}

/// Serves the pages on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    site: Site,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    axum::serve(listener, router(site))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
