//! Herald ingest: user events and traits in, durably and deduplicated on the client's
//! `message_id`, acknowledged only after the commit, and forwarded through the outbox to
//! segmentation and analytics.

mod api;
mod downstream;
mod group_commit;
pub mod migration;
mod store;
mod user_token;
mod validate;

use group_commit::GroupCommit;
use herald_outbox::Outbox;
use herald_proto::ingest::v1::ingest_service_server::{IngestServiceServer, SERVICE_NAME};
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
    // SQLite has one connection, so one writer; PostgreSQL overlaps a few commits.
    let writers = match db.get_database_backend() {
        sea_orm::DbBackend::Sqlite => 1,
        _ => 4,
    };
    let group = GroupCommit::start(db.clone(), outbox.clone(), launch.clock.clone(), writers);
    let users = user_token::UserCalls::new(&launch.config, launch.clock.clone())?;
    let ingest = IngestServiceServer::new(api::Ingest {
        db: db.clone(),
        outbox,
        clock: launch.clock.clone(),
        group,
        users,
    })
    .max_decoding_message_size(launch.config.max_request_bytes);
    let spec = ServiceSpec::new(
        ServiceKind::Ingest,
        herald_proto::ingest::v1::FILE_DESCRIPTOR_SET,
    )
    .serve(ingest, Access::Scope(Scope::Ingest))
    // Browsers and apps send their own user's events (and, where the workspace allows it,
    // traits) with an end-user token; the handlers hold them to that user and its limits.
    .method(SERVICE_NAME, "Track", Access::ScopeOrUser(Scope::Ingest))
    .method(SERVICE_NAME, "Identify", Access::ScopeOrUser(Scope::Ingest))
    .readiness(herald_storage::readiness(&db));
    launch.serve(spec).await
}
