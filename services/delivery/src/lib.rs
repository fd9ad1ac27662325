//! Herald delivery: writes rendered messages to users' inboxes, pushes in-app messages
//! to their open Subscribe streams, sends push messages to the configured push provider
//! (holding them while the user's own quiet hours last), takes the app's reports of what the user did with them, and relays every interaction
//! to analytics through the outbox, and the engagement among them (delivered, displayed,
//! clicked, dismissed) to segmentation the same way.

mod api;
mod display;
mod downstream;
mod hold;
mod hub;
pub mod migration;
mod page;
mod push;
mod store;
mod subscribe;
mod validate;

use std::sync::Arc;

use herald_outbox::Outbox;
use herald_proto::delivery::v1::delivery_internal_service_server::DeliveryInternalServiceServer;
use herald_proto::delivery::v1::delivery_service_server::DeliveryServiceServer;
use herald_runtime::{Access, Launch, Scope, ServiceKind, ServiceSpec};
use herald_timers::Timers;

/// Runs delivery until `launch.shutdown` is cancelled. Open Subscribe streams end on the
/// shutdown themselves, so the drain stays bounded.
pub async fn serve(launch: Launch) -> anyhow::Result<()> {
    let db =
        herald_storage::open::<migration::Migrator>(&launch.config, ServiceKind::Delivery).await?;
    let mut outbox = Outbox::for_service(&launch, &db, migration::OUTBOX_TABLE)
        .destination(
            downstream::ANALYTICS,
            downstream::analytics(&launch.config)?,
        )
        .destination(
            downstream::SEGMENTATION,
            downstream::segmentation(&launch.config)?,
        );
    // The push sink records DELIVERED through the outbox it is part of: it gets the
    // handle once the outbox has started.
    let started = Arc::new(tokio::sync::SetOnce::new());
    let push = push::PushSink::from_config(&launch.config, &db, &launch.clock, started.clone())?;
    let providers = push::Providers {
        push: push.is_some(),
    };
    if let Some(sink) = push {
        outbox = outbox.destination(push::PUSH, sink);
    }
    let outbox = outbox.start(launch.shutdown.clone());
    let _ = started.set(outbox.clone());
    if !providers.push {
        push::warn_if_stranded(&outbox).await;
    }
    // Pushes held by their user's quiet hours, released by a timer when they end.
    let timers = Timers::new(
        db.clone(),
        migration::TIMERS_TABLE,
        launch.config.instance_id(),
        launch.clock.clone(),
        herald_timers::Settings::default(),
    );
    timers.start(
        Arc::new(hold::Release {
            db: db.clone(),
            outbox: outbox.clone(),
            timers: timers.clone(),
            clock: launch.clock.clone(),
            providers,
        }),
        launch.shutdown.clone(),
    );
    let api = api::Api {
        db: db.clone(),
        outbox,
        timers,
        providers,
        hub: hub::Hub::new(hub::Caps {
            per_user: launch.config.max_streams_per_user,
            per_workspace: launch.config.max_streams_per_workspace,
            per_process: launch.config.max_streams,
        }),
        clock: launch.clock.clone(),
        shutdown: launch.shutdown.clone(),
        heartbeat_after: std::time::Duration::from_secs(launch.config.heartbeat_secs),
        display: Arc::new(display::DisplaySource::new(&launch.config)?),
    };
    let max_bytes = launch.config.max_request_bytes;
    let spec = ServiceSpec::new(
        ServiceKind::Delivery,
        herald_proto::delivery::v1::FILE_DESCRIPTOR_SET,
    )
    .serve(
        DeliveryServiceServer::new(api.clone()).max_decoding_message_size(max_bytes),
        Access::UserToken,
    )
    .serve(
        DeliveryInternalServiceServer::new(api).max_decoding_message_size(max_bytes),
        Access::Scope(Scope::Internal),
    )
    .readiness(herald_storage::readiness(&db));
    launch.serve(spec).await
}
