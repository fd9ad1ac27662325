//! Herald trigger: campaigns, and the matching of users' events against them into
//! rendered deliveries, handed to delivery through the outbox.

#![forbid(unsafe_code)]

mod api;
mod assign;
mod downstream;
mod error;
mod filter;
mod fire;
mod manage;
pub mod migration;
mod render;
mod store;
mod validate;

use std::sync::Arc;

use herald_outbox::Outbox;
use herald_proto::trigger::v1::trigger_internal_service_server::TriggerInternalServiceServer;
use herald_proto::trigger::v1::trigger_service_server::TriggerServiceServer;
use herald_runtime::{
    Access, AccessPolicy, CancellationToken, Config, Downstream, Scope, ServiceKind, ServiceSpec,
};
use tokio::net::TcpListener;

const PUBLIC: &str = "herald.trigger.v1.TriggerService";
const INTERNAL: &str = "herald.trigger.v1.TriggerInternalService";

/// Runs trigger on `listener` until `shutdown` is cancelled.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let kind = ServiceKind::Trigger;
    let db = herald_storage::connect_and_migrate::<migration::Migrator>(&config.database_url(kind))
        .await?;
    let delivery = Downstream::for_relay(&config, ServiceKind::Delivery)?;
    let outbox = Outbox::builder(db.clone(), migration::OUTBOX_TABLE, config.instance_id())
        .destination(
            downstream::DELIVERY,
            Arc::new(downstream::DeliverySink(delivery)),
        )
        .start(shutdown.clone());
    let templates = Arc::new(render::TemplateCache::new());

    let public = TriggerServiceServer::new(api::Campaigns {
        db: db.clone(),
        templates: templates.clone(),
    })
    .max_decoding_message_size(config.max_request_bytes);
    let internal = TriggerInternalServiceServer::new(api::Internal {
        db: db.clone(),
        outbox,
        templates,
    })
    .max_decoding_message_size(config.max_request_bytes);
    let mut routes = tonic::service::Routes::new(public);
    routes = routes.add_service(internal);
    let spec = ServiceSpec {
        kind,
        routes,
        service_names: vec![PUBLIC, INTERNAL],
        descriptor_sets: vec![herald_proto::trigger::v1::FILE_DESCRIPTOR_SET],
        access: AccessPolicy::default()
            .service(PUBLIC, Access::Scope(Scope::Admin))
            .service(INTERNAL, Access::Scope(Scope::Internal)),
        readiness: Some(herald_storage::readiness(&db)),
    };
    herald_runtime::serve(&config, spec, listener, shutdown).await
}
