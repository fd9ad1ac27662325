//! The delivery hop alone: `Deliver` (the internal RPC trigger calls) → the message on the
//! user's open `Subscribe` stream, one probe at a time at `--hop-rate`, on a quiet
//! pipeline. Measured by this Rust client and by the Python client in
//! `tests/python/delivery_hop.py` (gRPC's C core: no TCP_NODELAY on the server would show
//! there as a ~40 ms delayed-ACK stall, not here).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use hdrhistogram::Histogram;
use herald_proto::common::v1::{Channel as DeliveryChannel, InAppContent, MessageContent};
use herald_proto::common::v1::{InAppFormat, message_content};
use herald_proto::delivery::v1::delivery_internal_service_client::DeliveryInternalServiceClient;
use herald_proto::delivery::v1::delivery_service_client::DeliveryServiceClient;
use herald_proto::delivery::v1::{DeliverRequest, Delivery, SubscribeRequest, subscribe_response};
use herald_runtime::ServiceKind;
use tokio::time::MissedTickBehavior;

use crate::args::Settings;
use crate::fleet::Fleet;
use crate::load::{self, Window};
use crate::phases::{authed, bearer, connect};
use crate::progress;

/// How long one probe's message is waited for before the phase fails.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the delivery hop measured.
pub struct Hop {
    /// Deliver call start → message on the stream, µs, Rust client.
    pub rust: Histogram<u64>,
    /// The Deliver call alone, µs, Rust client.
    pub deliver_call: Histogram<u64>,
    /// The Python client's figures, or why they are missing.
    pub python: Result<PythonHop, String>,
}

/// The Python client's figures, in milliseconds.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct PythonHop {
    pub samples: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub deliver_p50_ms: f64,
}

/// Runs both clients; the messages are attributed to `campaign` (as trigger's are), so
/// analytics accepts their DELIVERED interactions.
pub async fn measure(fleet: &Fleet, s: &Settings, campaign: &str) -> anyhow::Result<Hop> {
    let progress = progress::timed(s.warmup + s.duration);
    let (rust, deliver_call) = rust_client(fleet, s, campaign).await?;
    drop(progress);
    let progress = progress::timed(s.warmup + s.duration);
    let python = python_client(fleet, s, campaign).await;
    drop(progress);
    Ok(Hop {
        rust,
        deliver_call,
        python,
    })
}

/// The variant the probes are attributed to (the bench campaign's only one).
pub const VARIANT: &str = "a";

/// The in-app delivery of probe `seq` to `user`, attributed to `campaign`; its title
/// carries `seq`.
fn probe(fleet: &Fleet, campaign: &str, user: &str, seq: u64) -> DeliverRequest {
    DeliverRequest {
        workspace_id: fleet.workspace.id.clone(),
        deliveries: vec![Delivery {
            idempotency_key: format!("hop-{user}-{seq}"),
            user_id: user.to_owned(),
            campaign_id: campaign.to_owned(),
            variant_id: VARIANT.to_owned(),
            channel: DeliveryChannel::InApp as i32,
            content: Some(MessageContent {
                body: Some(message_content::Body::InApp(InAppContent {
                    format: InAppFormat::Banner as i32,
                    title: seq.to_string(),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        }],
    }
}

async fn rust_client(
    fleet: &Fleet,
    s: &Settings,
    campaign: &str,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>)> {
    const USER: &str = "hop-rust";
    let url = fleet.url(ServiceKind::Delivery);
    let mut deliver = DeliveryInternalServiceClient::new(connect(url.clone()).await?);
    let mut stream = DeliveryServiceClient::new(connect(url).await?)
        .subscribe(authed(
            SubscribeRequest {
                session_id: "bench-hop".into(),
                ..Default::default()
            },
            &bearer(&fleet.user_token(USER)?),
        ))
        .await
        .context("subscribe for the delivery hop")?
        .into_inner();
    let internal = bearer(&fleet.internal_key);
    let mut hop = load::histogram();
    let mut call = load::histogram();
    let window = Window::new(s.warmup, s.duration);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(s.hop_rate)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut seq = 0u64;
    loop {
        ticker.tick().await;
        let start = Instant::now();
        if start >= window.until {
            break;
        }
        seq += 1;
        deliver
            .deliver(authed(probe(fleet, campaign, USER, seq), &internal))
            .await
            .context("Deliver")?;
        let called = start.elapsed();
        let want = seq.to_string();
        let arrived = tokio::time::timeout(PROBE_TIMEOUT, async {
            while let Some(item) = stream.next().await {
                if let Some(subscribe_response::Kind::Message(m)) = item?.kind
                    && m.content.and_then(|c| c.body).is_some_and(
                        |b| matches!(b, message_content::Body::InApp(a) if a.title == want),
                    )
                {
                    return Ok(Instant::now());
                }
            }
            anyhow::bail!("the Subscribe stream ended")
        })
        .await
        .with_context(|| {
            format!("delivery hop probe {seq} did not arrive within {PROBE_TIMEOUT:?}")
        })??;
        if start >= window.measure_from {
            hop.saturating_record(load::micros(arrived - start).max(1));
            call.saturating_record(load::micros(called).max(1));
        }
    }
    Ok((hop, call))
}

/// The hop script beside the bench's sources.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/delivery_hop.py")
}

/// The first Python that imports grpcio and grpcio-tools: `HERALD_BENCH_PYTHON`, the one
/// `just setup` installs under `.tools/`, then `python3`.
fn python() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("HERALD_BENCH_PYTHON") {
        candidates.push(p.into());
    }
    candidates.push(root.join(".tools/venv/bin/python"));
    candidates.push("python3".into());
    for candidate in candidates {
        let ok = std::process::Command::new(&candidate)
            .args(["-c", "import grpc, grpc_tools"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(candidate);
        }
    }
    None
}

async fn python_client(fleet: &Fleet, s: &Settings, campaign: &str) -> Result<PythonHop, String> {
    let script = script();
    if !script.exists() {
        return Err(format!("{} is missing", script.display()));
    }
    let Some(python) = python() else {
        return Err("no Python with grpcio and grpcio-tools (`just setup` installs one)".into());
    };
    let user = "hop-python";
    let token = fleet.user_token(user).map_err(|e| format!("{e:#}"))?;
    let address = fleet.url(ServiceKind::Delivery);
    let address = address.trim_start_matches("http://");
    let mut command = std::process::Command::new(&python);
    command
        .arg(&script)
        .args(["--address", address])
        .args(["--key", &fleet.internal_key])
        .args(["--workspace", &fleet.workspace.id])
        .args(["--campaign", campaign, "--variant", VARIANT])
        .args(["--user", user, "--token", &token])
        .args(["--rate", &s.hop_rate.to_string()])
        .args(["--warmup-secs", &s.warmup.as_secs_f64().to_string()])
        .args(["--duration-secs", &s.duration.as_secs_f64().to_string()])
        .stdin(Stdio::null());
    // The script ends by itself after its window (and a probe that does not arrive fails it).
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .map_err(|e| format!("the Python run panicked: {e}"))?
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        return Err(format!(
            "{} failed ({}): {}",
            script.display(),
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).map_err(|e| format!("unreadable output {last:?}: {e}"))
}
