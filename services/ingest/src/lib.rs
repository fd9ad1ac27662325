//! Herald ingest: user events and traits in, durably and deduplicated on the client's
//! `message_id`, acknowledged only after the commit, and forwarded through the outbox to
//! segmentation and analytics.

#![forbid(unsafe_code)]

mod api;
mod downstream;
mod error;
pub mod migration;
mod store;
mod validate;

use std::sync::Arc;

use herald_outbox::Outbox;
use herald_proto::ingest::v1::ingest_service_server::IngestServiceServer;
use herald_runtime::{
    Access, AccessPolicy, CancellationToken, Config, Downstream, Scope, ServiceKind, ServiceSpec,
};
use tokio::net::TcpListener;

/// Runs ingest on `listener` until `shutdown` is cancelled.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let kind = ServiceKind::Ingest;
    let db = herald_storage::connect_and_migrate::<migration::Migrator>(&config.database_url(kind))
        .await?;
    let segmentation = Downstream::for_relay(&config, ServiceKind::Segmentation)?;
    let analytics = Downstream::for_relay(&config, ServiceKind::Analytics)?;
    let outbox = Outbox::builder(db.clone(), migration::OUTBOX_TABLE, config.instance_id())
        .destination(
            downstream::SEGMENTATION,
            Arc::new(downstream::SegmentationSink(segmentation)),
        )
        .destination(
            downstream::ANALYTICS,
            Arc::new(downstream::AnalyticsSink(analytics)),
        )
        .start(shutdown.clone());

    let ingest = IngestServiceServer::new(api::Ingest {
        db: db.clone(),
        outbox,
    })
    .max_decoding_message_size(config.max_request_bytes);
    let spec = ServiceSpec {
        kind,
        routes: tonic::service::Routes::new(ingest),
        service_names: vec!["herald.ingest.v1.IngestService"],
        descriptor_sets: vec![herald_proto::ingest::v1::FILE_DESCRIPTOR_SET],
        access: AccessPolicy::default().service(
            "herald.ingest.v1.IngestService",
            Access::Scope(Scope::Ingest),
        ),
        readiness: Some(herald_storage::readiness(&db)),
    };
    herald_runtime::serve(&config, spec, listener, shutdown).await
}
