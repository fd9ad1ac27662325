//! Herald analytics: records campaign interactions (from trigger and delivery) and user
//! events (from ingest), each once per id, counts them into maintained aggregates and
//! attributes conversions as they arrive (relaying each to segmentation through its
//! outbox, for the `converted` engagement), and answers per-campaign, per-variant counts,
//! rates and comparisons against control (the statistics live in `herald-stats`) and
//! time series.

mod aggregates;
mod api;
mod downstream;
pub mod migration;
mod report;
mod series;
mod store;
mod validate;

use std::sync::Arc;

use herald_outbox::Outbox;
use herald_proto::analytics::v1::analytics_internal_service_server::AnalyticsInternalServiceServer;
use herald_proto::analytics::v1::analytics_service_server::AnalyticsServiceServer;
use herald_runtime::{Access, Launch, Scope, ServiceKind, ServiceSpec};

/// Runs analytics until `launch.shutdown` is cancelled.
pub async fn serve(launch: Launch) -> anyhow::Result<()> {
    let db =
        herald_storage::open::<migration::Migrator>(&launch.config, ServiceKind::Analytics).await?;
    let outbox = Outbox::for_service(&launch, &db, migration::OUTBOX_TABLE)
        .destination(
            downstream::SEGMENTATION,
            downstream::segmentation(&launch.config)?,
        )
        .start(launch.shutdown.clone());
    let api = api::Analytics {
        db: db.clone(),
        clock: launch.clock.clone(),
        outbox,
        zones: Arc::new(
            launch
                .config
                .workspaces
                .iter()
                .filter_map(|w| {
                    let zone = jiff::tz::TimeZone::get(w.time_zone.as_deref()?).ok()?;
                    Some((w.id.clone(), zone))
                })
                .collect(),
        ),
    };
    let max_bytes = launch.config.max_request_bytes;
    let spec = ServiceSpec::new(
        ServiceKind::Analytics,
        herald_proto::analytics::v1::FILE_DESCRIPTOR_SET,
    )
    .serve(
        AnalyticsServiceServer::new(api.clone()).max_decoding_message_size(max_bytes),
        Access::Scope(Scope::Admin),
    )
    .serve(
        AnalyticsInternalServiceServer::new(api).max_decoding_message_size(max_bytes),
        Access::Scope(Scope::Internal),
    )
    .readiness(herald_storage::readiness(&db));
    launch.serve(spec).await
}
