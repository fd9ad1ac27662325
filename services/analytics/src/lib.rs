//! Herald analytics: records campaign interactions (from trigger and delivery) and user
//! events (from ingest), each once per id, and answers per-campaign, per-variant counts,
//! rates, conversions, and uplift against control with its significance (the arithmetic
//! lives in `herald-stats`).

#![forbid(unsafe_code)]

mod api;
pub mod migration;
mod store;
mod validate;

use herald_proto::analytics::v1::analytics_internal_service_server::AnalyticsInternalServiceServer;
use herald_proto::analytics::v1::analytics_service_server::AnalyticsServiceServer;
use herald_runtime::{Access, CancellationToken, Clock, Config, Scope, ServiceKind, ServiceSpec};
use tokio::net::TcpListener;

/// Runs analytics on `listener` until `shutdown` is cancelled, on the system clock.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    serve_with(config, Clock::system(), listener, shutdown).await
}

/// Runs analytics on `listener` until `shutdown` is cancelled, reading time from `clock`.
pub async fn serve_with(
    config: Config,
    clock: Clock,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let kind = ServiceKind::Analytics;
    let db = herald_storage::connect_and_migrate::<migration::Migrator>(&config.database_url(kind))
        .await?;
    let api = api::Analytics {
        db: db.clone(),
        clock: clock.clone(),
    };
    let public = AnalyticsServiceServer::new(api.clone())
        .max_decoding_message_size(config.max_request_bytes);
    let internal = AnalyticsInternalServiceServer::new(api)
        .max_decoding_message_size(config.max_request_bytes);
    let spec = ServiceSpec::new(kind, herald_proto::analytics::v1::FILE_DESCRIPTOR_SET)
        .serve(public, Access::Scope(Scope::Admin))
        .serve(internal, Access::Scope(Scope::Internal))
        .readiness(herald_storage::readiness(&db));
    herald_runtime::serve(&config, &clock, spec, listener, shutdown).await
}
