//! Two replicas of ingest relaying one user's trait updates to segmentation: whichever
//! order they arrive in, the user ends with the traits of the latest update per trait
//! (segmentation merges last-writer-wins by the identity's timestamp). One replica's
//! relay is held back behind a proxy until the other's newer update has been applied.
//! On SQLite and PostgreSQL.

use std::time::Duration;

use herald_proto::common::v1::Identity;
use herald_proto::ingest::v1::IdentifyRequest;
use herald_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use herald_runtime::{Clock, ServiceKind};
use herald_storage::sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use herald_testkit::{Credentials, Proxy, Running, TestDatabase, authorized, eventually};
use prost::Message;
use prost_types::value::Kind;
use prost_types::{Struct, Timestamp, Value};

const WAIT: Duration = Duration::from_secs(30);

fn traits(pairs: &[(&str, Kind)]) -> Struct {
    Struct {
        fields: pairs
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Value {
                        kind: Some(v.clone()),
                    },
                )
            })
            .collect(),
    }
}

fn text(s: &str) -> Kind {
    Kind::StringValue(s.into())
}

async fn identify(ingest: &Running, key: &str, id: &str, at_secs: i64, update: Struct) {
    let identity = Identity {
        message_id: id.into(),
        user_id: "u1".into(),
        traits: Some(update),
        timestamp: Some(Timestamp {
            seconds: at_secs,
            nanos: 0,
        }),
        ..Default::default()
    };
    IngestServiceClient::connect(ingest.url())
        .await
        .unwrap()
        .identify(authorized(
            IdentifyRequest {
                identity: Some(identity),
            },
            key,
        ))
        .await
        .unwrap();
}

/// u1's traits as segmentation stored them.
async fn stored_traits(db: &DatabaseConnection) -> Option<Struct> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT traits FROM segmentation_users WHERE user_id = 'u1'",
        ))
        .await
        .ok()??;
    Struct::decode(row.try_get::<Vec<u8>>("", "traits").ok()?.as_slice()).ok()
}

async fn outbox_rows(db: &DatabaseConnection) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM ingest_outbox",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

#[tokio::test]
async fn trait_updates_relayed_by_two_replicas_in_either_order_merge_to_the_latest() {
    let db = TestDatabase::new().await;
    let credentials = Credentials::new();
    let clock = Clock::system();
    let mut config = herald_testkit::config(ServiceKind::Segmentation, &db, &credentials);
    config.trigger_url = "http://127.0.0.1:1".into();
    let segmentation =
        herald_testkit::spawn(config, clock.clone(), herald_segmentation::serve).await;

    // Replica B reaches segmentation only through a proxy that is cut for now.
    let held = Proxy::cut_off().await;
    let replica = |name: &str, segmentation_url: String| {
        let mut config = herald_testkit::config(ServiceKind::Ingest, &db, &credentials);
        config.instance_id = Some(name.into());
        config.segmentation_url = segmentation_url;
        config.analytics_url = "http://127.0.0.1:1".into();
        herald_testkit::spawn(config, clock.clone(), herald_ingest::serve)
    };
    let a = replica("ingest-a", segmentation.url()).await;
    let b = replica("ingest-b", held.url()).await;
    let key = credentials.ingest_key.expose().to_owned();

    // The older update goes through B and waits; the newer one through A arrives first.
    identify(
        &b,
        &key,
        "older",
        1_000,
        traits(&[("plan", text("free")), ("seats", Kind::NumberValue(3.0))]),
    )
    .await;
    identify(&a, &key, "newer", 2_000, traits(&[("plan", text("pro"))])).await;
    let store = herald_storage::connect(&db.url("segmentation"))
        .await
        .unwrap();
    eventually(WAIT, "the newer update at segmentation", || async {
        let t = stored_traits(&store).await?;
        (t.fields.get("plan")?.kind == Some(text("pro"))).then_some(())
    })
    .await;

    // Now B's older update arrives, late.
    held.forward(segmentation.addr);
    let ingest_db = herald_storage::connect(&db.url("ingest")).await.unwrap();
    eventually(WAIT, "both replicas' outboxes to drain", || async {
        (outbox_rows(&ingest_db).await == 0).then_some(())
    })
    .await;
    assert_eq!(
        stored_traits(&store).await.unwrap(),
        traits(&[("plan", text("pro")), ("seats", Kind::NumberValue(3.0))]),
        "the latest value of each trait wins, whatever the arrival order"
    );
    for running in [a, b, segmentation] {
        running.stop().await;
    }
}
