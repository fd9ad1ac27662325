//! Herald ingest: user events and traits in, durably and deduplicated on the client's
//! `message_id`, acknowledged only after the commit, and forwarded through the outbox to
//! segmentation and analytics.

#![forbid(unsafe_code)]

mod api;
mod downstream;
pub mod migration;
mod store;
mod validate;

use std::sync::Arc;

use herald_outbox::{CallLimits, Outbox, Settings};
use herald_proto::ingest::v1::ingest_service_server::IngestServiceServer;
use herald_runtime::{Access, CancellationToken, Clock, Config, Scope, ServiceKind, ServiceSpec};
use tokio::net::TcpListener;

/// Runs ingest on `listener` until `shutdown` is cancelled, on the system clock.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    serve_with(config, Clock::system(), listener, shutdown).await
}

/// Runs ingest on `listener` until `shutdown` is cancelled, reading time from `clock`.
pub async fn serve_with(
    config: Config,
    clock: Clock,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let kind = ServiceKind::Ingest;
    let db = herald_storage::connect_and_migrate::<migration::Migrator>(&config.database_url(kind))
        .await?;
    let limits = CallLimits::from_config(&config);
    let outbox = Outbox::builder(
        db.clone(),
        migration::OUTBOX_TABLE,
        config.instance_id(),
        clock.clone(),
    )
    .settings(Settings::from_config(&config))
    .destination(
        downstream::SEGMENTATION,
        Arc::new(downstream::segmentation(&config, limits)?),
    )
    .destination(
        downstream::ANALYTICS,
        Arc::new(downstream::analytics(&config, limits)?),
    )
    .start(shutdown.clone());

    let ingest = IngestServiceServer::new(api::Ingest {
        db: db.clone(),
        outbox,
        clock: clock.clone(),
    })
    .max_decoding_message_size(config.max_request_bytes);
    let spec = ServiceSpec::new(kind, herald_proto::ingest::v1::FILE_DESCRIPTOR_SET)
        .serve(ingest, Access::Scope(Scope::Ingest))
        .readiness(herald_storage::readiness(&db));
    herald_runtime::serve(&config, &clock, spec, listener, shutdown).await
}
