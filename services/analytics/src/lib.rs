//! Herald analytics: records campaign interactions (from trigger and delivery) and user
//! events (from ingest), each once per id, and answers per-campaign, per-variant counts,
//! rates, conversions, and uplift against control with its significance.

#![forbid(unsafe_code)]

mod api;
mod error;
pub mod migration;
mod stats;
mod store;
mod validate;

use herald_proto::analytics::v1::analytics_internal_service_server::AnalyticsInternalServiceServer;
use herald_proto::analytics::v1::analytics_service_server::AnalyticsServiceServer;
use herald_runtime::{
    Access, AccessPolicy, CancellationToken, Config, Scope, ServiceKind, ServiceSpec,
};
use tokio::net::TcpListener;

/// The public gRPC service (statistics), for admins.
const PUBLIC: &str = "herald.analytics.v1.AnalyticsService";
/// The internal gRPC service (interactions and events from the other services).
const INTERNAL: &str = "herald.analytics.v1.AnalyticsInternalService";

/// Runs analytics on `listener` until `shutdown` is cancelled.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let kind = ServiceKind::Analytics;
    let db = herald_storage::connect_and_migrate::<migration::Migrator>(&config.database_url(kind))
        .await?;

    let public = AnalyticsServiceServer::new(api::Analytics { db: db.clone() })
        .max_decoding_message_size(config.max_request_bytes);
    let internal = AnalyticsInternalServiceServer::new(api::Analytics { db: db.clone() })
        .max_decoding_message_size(config.max_request_bytes);
    let spec = ServiceSpec {
        kind,
        routes: tonic::service::Routes::new(public).add_service(internal),
        service_names: vec![PUBLIC, INTERNAL],
        descriptor_sets: vec![herald_proto::analytics::v1::FILE_DESCRIPTOR_SET],
        access: AccessPolicy::default()
            .service(PUBLIC, Access::Scope(Scope::Admin))
            .service(INTERNAL, Access::Scope(Scope::Internal)),
        readiness: Some(herald_storage::readiness(&db)),
    };
    herald_runtime::serve(&config, spec, listener, shutdown).await
}
