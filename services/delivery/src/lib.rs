//! Herald delivery: writes rendered messages to users' inboxes, pushes in-app messages
//! to their open Subscribe streams, takes the app's reports of what the user did with
//! them, and relays every interaction to analytics through the outbox.

#![forbid(unsafe_code)]

mod api;
mod downstream;
mod hub;
pub mod migration;
mod page;
mod store;
mod subscribe;
mod validate;

use std::sync::Arc;

use herald_outbox::{CallLimits, Outbox, Settings};
use herald_proto::delivery::v1::delivery_internal_service_server::DeliveryInternalServiceServer;
use herald_proto::delivery::v1::delivery_service_server::DeliveryServiceServer;
use herald_runtime::{Access, CancellationToken, Clock, Config, Scope, ServiceKind, ServiceSpec};
use tokio::net::TcpListener;

/// Runs delivery on `listener` until `shutdown` is cancelled, on the system clock.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    serve_with(config, Clock::system(), listener, shutdown).await
}

/// Runs delivery on `listener` until `shutdown` is cancelled, reading time from `clock`.
pub async fn serve_with(
    config: Config,
    clock: Clock,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let kind = ServiceKind::Delivery;
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
        downstream::ANALYTICS,
        Arc::new(downstream::analytics(
            &config,
            CallLimits::from_config(&config),
        )?),
    )
    .start(shutdown.clone());

    // Open Subscribe streams end on `shutdown` themselves, so the drain stays bounded.
    let api = api::Api {
        db: db.clone(),
        outbox,
        hub: hub::Hub::default(),
        clock: clock.clone(),
        shutdown: shutdown.clone(),
    };
    let public =
        DeliveryServiceServer::new(api.clone()).max_decoding_message_size(config.max_request_bytes);
    let internal =
        DeliveryInternalServiceServer::new(api).max_decoding_message_size(config.max_request_bytes);
    let spec = ServiceSpec::new(kind, herald_proto::delivery::v1::FILE_DESCRIPTOR_SET)
        .serve(public, Access::UserToken)
        .serve(internal, Access::Scope(Scope::Internal))
        .readiness(herald_storage::readiness(&db));
    herald_runtime::serve(&config, &clock, spec, listener, shutdown).await
}
