//! Herald trigger: campaigns, and the matching of users' events against them into
//! rendered deliveries, handed to delivery through the outbox. The rules (validation,
//! matching, assignment, rendering, the decision) live in `herald-campaigns`; this crate
//! stores campaigns and adapts gRPC to them.

#![forbid(unsafe_code)]

mod api;
mod cache;
mod downstream;
mod fire;
mod manage;
pub mod migration;
mod store;

use std::sync::Arc;

use herald_outbox::{CallLimits, Outbox, Settings};
use herald_proto::trigger::v1::trigger_internal_service_server::TriggerInternalServiceServer;
use herald_proto::trigger::v1::trigger_service_server::TriggerServiceServer;
use herald_runtime::{Access, CancellationToken, Clock, Config, Scope, ServiceKind, ServiceSpec};
use tokio::net::TcpListener;

/// Runs trigger on `listener` until `shutdown` is cancelled, on the system clock.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    serve_with(config, Clock::system(), listener, shutdown).await
}

/// Runs trigger on `listener` until `shutdown` is cancelled, reading time from `clock`.
pub async fn serve_with(
    config: Config,
    clock: Clock,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let kind = ServiceKind::Trigger;
    let db = herald_storage::connect_and_migrate::<migration::Migrator>(&config.database_url(kind))
        .await?;
    let outbox = Outbox::builder(
        db.clone(),
        migration::OUTBOX_TABLE,
        config.instance_id(),
        clock.clone(),
    )
    .settings(Settings::from_config(&config))
    .destination(
        downstream::DELIVERY,
        Arc::new(downstream::delivery(
            &config,
            CallLimits::from_config(&config),
        )?),
    )
    .start(shutdown.clone());
    herald_storage::retention::spawn_cleanup(
        db.clone(),
        vec![store::HANDLED],
        config.ledger_retention(),
        clock.clone(),
        shutdown.clone(),
    );
    let cache = Arc::new(cache::CampaignCache::new());

    let public = TriggerServiceServer::new(api::Campaigns {
        db: db.clone(),
        cache: cache.clone(),
        clock: clock.clone(),
    })
    .max_decoding_message_size(config.max_request_bytes);
    let internal = TriggerInternalServiceServer::new(api::Internal {
        db: db.clone(),
        outbox,
        cache,
        clock: clock.clone(),
    })
    .max_decoding_message_size(config.max_request_bytes);
    let spec = ServiceSpec::new(kind, herald_proto::trigger::v1::FILE_DESCRIPTOR_SET)
        .serve(public, Access::Scope(Scope::Admin))
        .serve(internal, Access::Scope(Scope::Internal))
        .readiness(herald_storage::readiness(&db));
    herald_runtime::serve(&config, &clock, spec, listener, shutdown).await
}
