//! Memory per idle Subscribe stream: delivery's resident memory before and after opening
//! `--idle-streams` streams (one user each) and holding them open without traffic, once
//! with the streams sharing connections (100 per HTTP/2 connection, under the server's
//! limit of concurrent streams per connection) and once with a connection per stream.

use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use herald_proto::delivery::v1::SubscribeRequest;
use herald_proto::delivery::v1::delivery_service_client::DeliveryServiceClient;
use herald_runtime::ServiceKind;
use tonic::transport::{Channel, Endpoint};

use crate::fleet::Fleet;
use crate::machine::rss_mib;

/// Streams per connection when they share connections.
const PER_CONNECTION: usize = 100;
/// Streams (or connections) opened at once.
const OPENING: usize = 64;
/// Time given to the server to finish setting up the streams before memory is read.
const SETTLE: Duration = Duration::from_secs(2);

pub struct StreamMemory {
    pub streams: usize,
    /// Resident bytes per stream over shared connections, and over one connection each.
    pub shared_bytes: f64,
    pub own_connection_bytes: f64,
}

pub async fn measure(fleet: &Fleet, n: usize) -> anyhow::Result<StreamMemory> {
    let shared_bytes = per_stream(fleet, n, n.div_ceil(PER_CONNECTION)).await?;
    let own_connection_bytes = per_stream(fleet, n, n).await?;
    Ok(StreamMemory {
        streams: n,
        shared_bytes,
        own_connection_bytes,
    })
}

/// Delivery's resident bytes per stream with `n` idle streams over `connections`.
async fn per_stream(fleet: &Fleet, n: usize, connections: usize) -> anyhow::Result<f64> {
    let pid = fleet
        .pids()
        .into_iter()
        .find(|(name, _)| *name == ServiceKind::Delivery.name())
        .map(|(_, pid)| pid)
        .context("no delivery process")?;
    let endpoint = Endpoint::from_shared(fleet.url(ServiceKind::Delivery))?;
    let channels: Vec<Channel> = futures::stream::iter(0..connections)
        .map(|_| endpoint.connect())
        .buffered(OPENING)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .context("connect to delivery")?;
    let before = rss_mib(pid);
    let streams: Vec<_> = futures::stream::iter(0..n)
        .map(|i| {
            let channel = channels[i % channels.len()].clone();
            let token = fleet.user_token(&format!("idle-user-{i}"));
            async move {
                let token = token?;
                let mut request = tonic::Request::new(SubscribeRequest {
                    session_id: "idle".into(),
                    ..Default::default()
                });
                request
                    .metadata_mut()
                    .insert("authorization", format!("Bearer {token}").parse()?);
                let stream = DeliveryServiceClient::new(channel)
                    .subscribe(request)
                    .await
                    .context("subscribe")?
                    .into_inner();
                anyhow::Ok(stream)
            }
        })
        .buffer_unordered(OPENING)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    tokio::time::sleep(SETTLE).await;
    let after = rss_mib(pid);
    drop(streams);
    drop(channels);
    // Let the server see the streams end before anything else is measured.
    tokio::time::sleep(SETTLE).await;
    Ok((after - before).max(0.0) * 1024.0 * 1024.0 / n.max(1) as f64)
}
