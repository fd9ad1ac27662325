//! Herald ingest: user events and traits in, durably and deduplicated on the client's
//! `message_id`, acknowledged only after the commit, and forwarded through the outbox to
//! segmentation and analytics.

mod api;
mod downstream;
pub mod migration;
mod store;
mod validate;

use herald_outbox::Outbox;
use herald_proto::ingest::v1::ingest_service_server::IngestServiceServer;
use herald_runtime::{Access, Launch, Scope, ServiceKind, ServiceSpec};

/// Runs ingest until `launch.shutdown` is cancelled.
pub async fn serve(launch: Launch) -> anyhow::Result<()> {
    let db =
        herald_storage::open::<migration::Migrator>(&launch.config, ServiceKind::Ingest).await?;
    let outbox = Outbox::for_service(&launch, &db, migration::OUTBOX_TABLE)
        .destination(
            downstream::SEGMENTATION,
            downstream::segmentation(&launch.config)?,
        )
        .destination(
            downstream::ANALYTICS,
            downstream::analytics(&launch.config)?,
        )
        .start(launch.shutdown.clone());
    let ingest = IngestServiceServer::new(api::Ingest {
        db: db.clone(),
        outbox,
        clock: launch.clock.clone(),
    })
    .max_decoding_message_size(launch.config.max_request_bytes);
    let spec = ServiceSpec::new(
        ServiceKind::Ingest,
        herald_proto::ingest::v1::FILE_DESCRIPTOR_SET,
    )
    .serve(ingest, Access::Scope(Scope::Ingest))
    .readiness(herald_storage::readiness(&db));
    launch.serve(spec).await
}
