//! Herald segmentation: folds committed events and trait updates from ingest into
//! per-user state (traits, event counters), deduplicated on their `message_id`, and
//! forwards each new event with the user's current traits to trigger through the outbox.
//!
//! Segments (the public `SegmentationService`) come in a later version; their RPCs
//! answer UNIMPLEMENTED.

#![forbid(unsafe_code)]

mod api;
mod downstream;
mod error;
pub mod migration;
mod store;
mod traits;
mod validate;

use std::sync::Arc;

use herald_outbox::Outbox;
use herald_proto::segmentation::v1::segmentation_internal_service_server::SegmentationInternalServiceServer;
use herald_proto::segmentation::v1::segmentation_service_server::SegmentationServiceServer;
use herald_runtime::{
    Access, AccessPolicy, CancellationToken, Config, Downstream, Scope, ServiceKind, ServiceSpec,
};
use tokio::net::TcpListener;

/// The public gRPC service (segments), for admins.
const PUBLIC: &str = "herald.segmentation.v1.SegmentationService";
/// The internal gRPC service (events and identities from ingest).
const INTERNAL: &str = "herald.segmentation.v1.SegmentationInternalService";

/// Runs segmentation on `listener` until `shutdown` is cancelled.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let kind = ServiceKind::Segmentation;
    let db = herald_storage::connect_and_migrate::<migration::Migrator>(&config.database_url(kind))
        .await?;
    let trigger = Downstream::for_relay(&config, ServiceKind::Trigger)?;
    let outbox = Outbox::builder(db.clone(), migration::OUTBOX_TABLE, config.instance_id())
        .destination(
            downstream::TRIGGER,
            Arc::new(downstream::TriggerSink(trigger)),
        )
        .start(shutdown.clone());

    let public = SegmentationServiceServer::new(api::Segments)
        .max_decoding_message_size(config.max_request_bytes);
    let internal = SegmentationInternalServiceServer::new(api::Internal {
        db: db.clone(),
        outbox,
    })
    .max_decoding_message_size(config.max_request_bytes);
    let spec = ServiceSpec {
        kind,
        routes: tonic::service::Routes::new(public).add_service(internal),
        service_names: vec![PUBLIC, INTERNAL],
        descriptor_sets: vec![herald_proto::segmentation::v1::FILE_DESCRIPTOR_SET],
        access: AccessPolicy::default()
            .service(PUBLIC, Access::Scope(Scope::Admin))
            .service(INTERNAL, Access::Scope(Scope::Internal)),
        readiness: Some(herald_storage::readiness(&db)),
    };
    herald_runtime::serve(&config, spec, listener, shutdown).await
}
