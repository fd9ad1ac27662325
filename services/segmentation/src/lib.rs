//! Herald segmentation: folds committed events and trait updates from ingest into
//! per-user state (traits, event counters), deduplicated on their `message_id`, and
//! forwards each new event with the user's current traits to trigger through the outbox.
//!
//! Segments (the public `SegmentationService`) come in a later version; their RPCs
//! answer UNIMPLEMENTED.

mod api;
mod downstream;
pub mod migration;
mod store;
mod traits;
mod validate;

use herald_outbox::Outbox;
use herald_proto::segmentation::v1::segmentation_internal_service_server::SegmentationInternalServiceServer;
use herald_proto::segmentation::v1::segmentation_service_server::SegmentationServiceServer;
use herald_runtime::{Access, Launch, Scope, ServiceKind, ServiceSpec};

/// Runs segmentation until `launch.shutdown` is cancelled.
pub async fn serve(launch: Launch) -> anyhow::Result<()> {
    let kind = ServiceKind::Segmentation;
    let db = herald_storage::open::<migration::Migrator>(&launch.config, kind).await?;
    let outbox = Outbox::for_service(&launch, &db, migration::OUTBOX_TABLE)
        .destination(downstream::TRIGGER, downstream::trigger(&launch.config)?)
        .start(launch.shutdown.clone());
    herald_storage::retention::spawn_cleanup(&launch, &db, vec![store::PROCESSED]);
    let max_bytes = launch.config.max_request_bytes;
    let internal = SegmentationInternalServiceServer::new(api::Internal {
        db: db.clone(),
        outbox,
        clock: launch.clock.clone(),
    })
    .max_decoding_message_size(max_bytes);
    let segments =
        SegmentationServiceServer::new(api::Segments).max_decoding_message_size(max_bytes);
    let spec = ServiceSpec::new(kind, herald_proto::segmentation::v1::FILE_DESCRIPTOR_SET)
        .serve(segments, Access::Scope(Scope::Admin))
        .serve(internal, Access::Scope(Scope::Internal))
        .readiness(herald_storage::readiness(&db));
    launch.serve(spec).await
}
