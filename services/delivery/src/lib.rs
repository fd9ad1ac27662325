//! Herald delivery: writes rendered messages to users' inboxes, pushes in-app messages
//! to their open Subscribe streams, takes the app's reports of what the user did with
//! them, and relays every interaction to analytics through the outbox.

#![forbid(unsafe_code)]

mod api;
mod downstream;
mod error;
mod hub;
pub mod migration;
mod page;
mod store;
mod subscribe;
mod validate;

use std::sync::Arc;

use herald_outbox::Outbox;
use herald_proto::delivery::v1::delivery_internal_service_server::DeliveryInternalServiceServer;
use herald_proto::delivery::v1::delivery_service_server::DeliveryServiceServer;
use herald_runtime::{
    Access, AccessPolicy, CancellationToken, Config, Downstream, Scope, ServiceKind, ServiceSpec,
};
use tokio::net::TcpListener;

const PUBLIC: &str = "herald.delivery.v1.DeliveryService";
const INTERNAL: &str = "herald.delivery.v1.DeliveryInternalService";

/// Runs delivery on `listener` until `shutdown` is cancelled.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let kind = ServiceKind::Delivery;
    let db = herald_storage::connect_and_migrate::<migration::Migrator>(&config.database_url(kind))
        .await?;
    let analytics = Downstream::for_relay(&config, ServiceKind::Analytics)?;
    let outbox = Outbox::builder(db.clone(), migration::OUTBOX_TABLE, config.instance_id())
        .destination(
            downstream::ANALYTICS,
            Arc::new(downstream::AnalyticsSink(analytics)),
        )
        .start(shutdown.clone());

    // Open Subscribe streams end on `shutdown` themselves, so the drain stays bounded.
    let api = api::Api {
        db: db.clone(),
        outbox,
        hub: hub::Hub::default(),
        shutdown: shutdown.clone(),
    };
    let public =
        DeliveryServiceServer::new(api.clone()).max_decoding_message_size(config.max_request_bytes);
    let internal =
        DeliveryInternalServiceServer::new(api).max_decoding_message_size(config.max_request_bytes);
    let spec = ServiceSpec {
        kind,
        routes: tonic::service::Routes::new(public).add_service(internal),
        service_names: vec![PUBLIC, INTERNAL],
        descriptor_sets: vec![herald_proto::delivery::v1::FILE_DESCRIPTOR_SET],
        access: AccessPolicy::default()
            .service(PUBLIC, Access::UserToken)
            .service(INTERNAL, Access::Scope(Scope::Internal)),
        readiness: Some(herald_storage::readiness(&db)),
    };
    herald_runtime::serve(&config, spec, listener, shutdown).await
}
