//! Herald segmentation: folds committed events and trait updates from ingest, and
//! interactions from delivery, into per-user state (traits, and the series and
//! memberships of `herald_rules::engine::Profile`), deduplicated on their ids; evaluates
//! again only the segments an arrival can change, and each user at the exact instant time
//! changes one of their memberships (a durable timer per user); forwards each new event
//! with the user's traits and segments to trigger, and each membership change as a
//! transition, through the outbox.
//!
//! Segments are managed through the public `SegmentationService`; each create or rule
//! change is backfilled over every known user in the background (`backfill`).

mod api;
mod backfill;
mod downstream;
mod engines;
mod manage;
pub mod migration;
mod preview;
pub mod segments;
mod store;
mod timer;
mod traits;
mod user_state;
mod validate;

use std::sync::Arc;

use herald_outbox::Outbox;
use herald_proto::segmentation::v1::segmentation_internal_service_server::SegmentationInternalServiceServer;
use herald_proto::segmentation::v1::segmentation_service_server::SegmentationServiceServer;
use herald_runtime::{Access, Downstream, Launch, Scope, ServiceKind, ServiceSpec};
use herald_timers::Timers;
use tokio::sync::Notify;

/// Runs segmentation until `launch.shutdown` is cancelled.
pub async fn serve(launch: Launch) -> anyhow::Result<()> {
    let kind = ServiceKind::Segmentation;
    let db = herald_storage::open::<migration::Migrator>(&launch.config, kind).await?;
    let outbox = Outbox::for_service(&launch, &db, migration::OUTBOX_TABLE)
        .destination(downstream::TRIGGER, downstream::trigger(&launch.config)?)
        .destination(
            downstream::TRANSITIONS,
            downstream::transitions(&launch.config)?,
        )
        .start(launch.shutdown.clone());
    herald_storage::retention::spawn_cleanup(&launch, &db, vec![store::PROCESSED]);
    let timers = Timers::new(
        db.clone(),
        migration::TIMERS_TABLE,
        launch.config.instance_id(),
        launch.clock.clone(),
        herald_timers::Settings::default(),
    );
    let segmenter = store::Segmenter {
        db: db.clone(),
        outbox,
        clock: launch.clock.clone(),
        engines: Arc::new(engines::Engines::default()),
        timers: timers.clone(),
    };
    timers.start(
        Arc::new(timer::Due(segmenter.clone())),
        launch.shutdown.clone(),
    );
    // Notified when a segment's backfill becomes pending; the backfill waits on it.
    let backfill_wake = Arc::new(Notify::new());
    tokio::spawn(backfill::run(
        segmenter.clone(),
        backfill_wake.clone(),
        launch.shutdown.clone(),
    ));
    let max_bytes = launch.config.max_request_bytes;
    let internal = SegmentationInternalServiceServer::new(api::Internal {
        segmenter: segmenter.clone(),
    })
    .max_decoding_message_size(max_bytes);
    let segments = SegmentationServiceServer::new(api::Segments {
        db: db.clone(),
        clock: launch.clock.clone(),
        backfill: backfill_wake.clone(),
        trigger: Downstream::for_relay(&launch.config, ServiceKind::Trigger)?,
    })
    .max_decoding_message_size(max_bytes);
    let spec = ServiceSpec::new(kind, herald_proto::segmentation::v1::FILE_DESCRIPTOR_SET)
        .serve(segments, Access::Scope(Scope::Admin))
        .serve(internal, Access::Scope(Scope::Internal))
        .readiness(herald_storage::readiness(&db));
    launch.serve(spec).await
}
