//! Herald trigger: campaigns, and the matching of users' events against them into
//! rendered deliveries, handed to delivery through the outbox. Segment transitions are
//! acknowledged and deduplicated (no campaign acts on them yet), and segmentation can ask
//! which campaigns reference a segment. The rules (validation, matching, assignment,
//! rendering, the decision) live in `herald-campaigns`; this crate stores campaigns and
//! adapts gRPC to them.

mod admin;
mod api;
mod cache;
mod decisions;
mod downstream;
mod due;
mod effects;
mod engine;
mod fire;
mod ledgers;
mod manage;
pub mod migration;
mod store;
mod transitions;

use std::sync::Arc;

use herald_outbox::Outbox;
use herald_proto::trigger::v1::trigger_internal_service_server::TriggerInternalServiceServer;
use herald_proto::trigger::v1::trigger_service_server::TriggerServiceServer;
use herald_runtime::{Access, Downstream, Launch, Scope, ServiceKind, ServiceSpec};
use herald_timers::Timers;

/// Runs trigger until `launch.shutdown` is cancelled.
pub async fn serve(launch: Launch) -> anyhow::Result<()> {
    let db =
        herald_storage::open::<migration::Migrator>(&launch.config, ServiceKind::Trigger).await?;
    let outbox = Outbox::for_service(&launch, &db, migration::OUTBOX_TABLE)
        .destination(downstream::DELIVERY, downstream::delivery(&launch.config)?)
        .destination(
            downstream::ANALYTICS,
            downstream::analytics(&launch.config)?,
        )
        .start(launch.shutdown.clone());
    herald_storage::retention::spawn_cleanup(
        &launch,
        &db,
        vec![store::HANDLED, store::HANDLED_TRANSITIONS],
    );
    herald_storage::retention::spawn_cleanup_on(
        db.clone(),
        vec![decisions::RETENTION],
        launch.config.decision_retention(),
        launch.clock.clone(),
        launch.shutdown.clone(),
    );
    let cache = Arc::new(cache::CampaignCache::new());
    let clock = &launch.clock;
    let timers = Timers::new(
        db.clone(),
        migration::TIMERS_TABLE,
        launch.config.instance_id(),
        clock.clone(),
        herald_timers::Settings::default(),
    );
    let engine = engine::Engine {
        db: db.clone(),
        outbox,
        cache: cache.clone(),
        clock: clock.clone(),
        timers: timers.clone(),
        segmentation: Arc::new(Downstream::for_relay(
            &launch.config,
            ServiceKind::Segmentation,
        )?),
    };
    timers.start(Arc::new(due::Due(engine.clone())), launch.shutdown.clone());
    let campaigns = api::Campaigns {
        db: db.clone(),
        cache,
        clock: clock.clone(),
        timers: timers.clone(),
    };
    let matching = api::Internal { engine };
    let max_bytes = launch.config.max_request_bytes;
    let spec = ServiceSpec::new(
        ServiceKind::Trigger,
        herald_proto::trigger::v1::FILE_DESCRIPTOR_SET,
    )
    .serve(
        TriggerServiceServer::new(campaigns).max_decoding_message_size(max_bytes),
        Access::Scope(Scope::Admin),
    )
    .serve(
        TriggerInternalServiceServer::new(matching).max_decoding_message_size(max_bytes),
        Access::Scope(Scope::Internal),
    )
    .readiness(herald_storage::readiness(&db));
    launch.serve(spec).await
}
