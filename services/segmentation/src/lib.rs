//! Herald segmentation: folds committed events and trait updates from ingest into
//! per-user state (traits, event counters), deduplicated on their `message_id`, and
//! forwards each new event with the user's current traits to trigger through the outbox.
//!
//! Segments (the public `SegmentationService`) come in a later version; their RPCs
//! answer UNIMPLEMENTED.

#![forbid(unsafe_code)]

mod api;
mod downstream;
pub mod migration;
mod store;
mod traits;
mod validate;

use std::sync::Arc;

use herald_outbox::{CallLimits, Outbox, Settings};
use herald_proto::segmentation::v1::segmentation_internal_service_server::SegmentationInternalServiceServer;
use herald_proto::segmentation::v1::segmentation_service_server::SegmentationServiceServer;
use herald_runtime::{Access, CancellationToken, Clock, Config, Scope, ServiceKind, ServiceSpec};
use tokio::net::TcpListener;

/// Runs segmentation on `listener` until `shutdown` is cancelled, on the system clock.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    serve_with(config, Clock::system(), listener, shutdown).await
}

/// Runs segmentation on `listener` until `shutdown` is cancelled, reading time from
/// `clock`.
pub async fn serve_with(
    config: Config,
    clock: Clock,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let kind = ServiceKind::Segmentation;
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
        downstream::TRIGGER,
        Arc::new(downstream::trigger(
            &config,
            CallLimits::from_config(&config),
        )?),
    )
    .start(shutdown.clone());
    herald_storage::retention::spawn_cleanup(
        db.clone(),
        vec![store::PROCESSED],
        config.ledger_retention(),
        clock.clone(),
        shutdown.clone(),
    );

    let public = SegmentationServiceServer::new(api::Segments)
        .max_decoding_message_size(config.max_request_bytes);
    let internal = SegmentationInternalServiceServer::new(api::Internal {
        db: db.clone(),
        outbox,
        clock: clock.clone(),
    })
    .max_decoding_message_size(config.max_request_bytes);
    let spec = ServiceSpec::new(kind, herald_proto::segmentation::v1::FILE_DESCRIPTOR_SET)
        .serve(public, Access::Scope(Scope::Admin))
        .serve(internal, Access::Scope(Scope::Internal))
        .readiness(herald_storage::readiness(&db));
    herald_runtime::serve(&config, &clock, spec, listener, shutdown).await
}
