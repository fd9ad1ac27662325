//! The workspace's attention budget over real gRPC, on a fresh database per test (SQLite
//! by default, PostgreSQL with `HERALD_TEST_DATABASE=postgres`): cap rules (create, list,
//! update, delete, validation, the 50-rule limit, tenancy, auth) and trigger settings
//! (defaults, update, clear), and every write moving the workspace's campaign version.

use std::time::Duration;

use herald_proto::common::v1::{Channel, InAppFormat};
use herald_proto::trigger::v1::trigger_service_client::TriggerServiceClient;
use herald_proto::trigger::v1::*;
use herald_runtime::auth::{Scope, generate_api_key};
use herald_runtime::{Clock, ServiceKind};
use herald_storage::sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use herald_testkit::{Credentials, Running, TestDatabase, authorized, config, spawn, violations};
use prost_types::FieldMask;
use tonic::transport::Channel as GrpcChannel;
use tonic::{Code, Request, Status};

struct App {
    running: Running,
    credentials: Credentials,
    clock: Clock,
    /// An admin key of another workspace.
    other_admin_key: String,
}

impl App {
    async fn client(&self) -> TriggerServiceClient<GrpcChannel> {
        TriggerServiceClient::connect(self.running.url())
            .await
            .expect("connect")
    }

    fn admin<T>(&self, message: T) -> Request<T> {
        authorized(message, self.credentials.admin_key.expose())
    }

    fn other<T>(&self, message: T) -> Request<T> {
        authorized(message, &self.other_admin_key)
    }
}

/// A delivery URL nobody listens on: these tests never deliver.
const NOWHERE: &str = "http://127.0.0.1:1";

/// Trigger on a fresh database with a manual clock.
async fn spawn_trigger(db: &TestDatabase) -> App {
    let clock = Clock::manual("2026-03-01T09:00:00Z".parse().expect("instant"));
    let credentials = Credentials::new();
    let mut config = config(ServiceKind::Trigger, db, &credentials);
    config.delivery_url = NOWHERE.to_owned();
    let (other_admin_key, other) = generate_api_key("globex", &[Scope::Admin]);
    config.api_keys.push(other);
    let running = spawn(config, clock.clone(), herald_trigger::serve).await;
    App {
        running,
        credentials,
        clock,
        other_admin_key: other_admin_key.expose().to_owned(),
    }
}

fn duration(seconds: i64) -> prost_types::Duration {
    prost_types::Duration { seconds, nanos: 0 }
}

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

fn modals_per_day() -> CapRule {
    CapRule {
        name: "At most 2 modals a day".into(),
        max_messages: 2,
        window: Some(cap_rule::Window::CalendarDays(1)),
        channel: Channel::InApp as i32,
        in_app_format: InAppFormat::Modal as i32,
        default_time_zone: "Europe/Paris".into(),
        ..Default::default()
    }
}

fn three_an_hour() -> CapRule {
    CapRule {
        name: "Three an hour".into(),
        max_messages: 3,
        window: Some(cap_rule::Window::Rolling(duration(3600))),
        ..Default::default()
    }
}

async fn create(app: &App, rule: CapRule) -> Result<CapRule, Status> {
    Ok(app
        .client()
        .await
        .create_cap_rule(app.admin(CreateCapRuleRequest {
            cap_rule: Some(rule),
        }))
        .await?
        .into_inner()
        .cap_rule
        .expect("cap_rule"))
}

async fn list(app: &App) -> Vec<CapRule> {
    app.client()
        .await
        .list_cap_rules(app.admin(ListCapRulesRequest {}))
        .await
        .expect("list")
        .into_inner()
        .cap_rules
}

async fn update(app: &App, rule: CapRule, paths: &[&str]) -> Result<CapRule, Status> {
    Ok(app
        .client()
        .await
        .update_cap_rule(app.admin(UpdateCapRuleRequest {
            cap_rule: Some(rule),
            update_mask: mask(paths),
        }))
        .await?
        .into_inner()
        .cap_rule
        .expect("cap_rule"))
}

async fn delete(app: &App, id: &str) -> Result<(), Status> {
    app.client()
        .await
        .delete_cap_rule(app.admin(DeleteCapRuleRequest {
            cap_rule_id: id.into(),
        }))
        .await?;
    Ok(())
}

async fn get_settings(app: &App) -> TriggerSettings {
    app.client()
        .await
        .get_trigger_settings(app.admin(GetTriggerSettingsRequest {}))
        .await
        .expect("get settings")
        .into_inner()
        .settings
        .expect("settings")
}

async fn update_settings(
    app: &App,
    settings: TriggerSettings,
    paths: &[&str],
) -> Result<TriggerSettings, Status> {
    Ok(app
        .client()
        .await
        .update_trigger_settings(app.admin(UpdateTriggerSettingsRequest {
            settings: Some(settings),
            update_mask: mask(paths),
        }))
        .await?
        .into_inner()
        .settings
        .expect("settings"))
}

/// The campaign version of workspace `acme`, as the caches of every replica read it.
async fn version(store: &DatabaseConnection) -> i64 {
    let backend = store.get_database_backend();
    let row = store
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT version FROM trigger_campaign_versions WHERE workspace_id = 'acme'",
        ))
        .await
        .expect("read version");
    row.map_or(0, |r| r.try_get::<i64>("", "version").expect("version"))
}

#[tokio::test]
async fn cap_rules_round_trip() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db).await;
    assert!(list(&app).await.is_empty());

    let modals = create(
        &app,
        CapRule {
            id: "cap_mine".into(),
            ..modals_per_day()
        },
    )
    .await
    .expect("create");
    assert!(modals.id.starts_with("cap_"), "{}", modals.id);
    assert_ne!(modals.id, "cap_mine", "the server assigns ids");
    assert_eq!(
        modals.create_time,
        Some(herald_core::time::proto(app.clock.now()))
    );
    assert_eq!(modals.update_time, modals.create_time);
    assert_eq!(
        CapRule {
            id: String::new(),
            create_time: None,
            update_time: None,
            ..modals.clone()
        },
        modals_per_day()
    );
    app.clock.advance(Duration::from_secs(60));
    let hourly = create(&app, three_an_hour()).await.expect("create");
    assert_eq!(list(&app).await, [modals.clone(), hourly.clone()]);

    // Only what the mask names changes.
    app.clock.advance(Duration::from_secs(60));
    let updated = update(
        &app,
        CapRule {
            id: modals.id.clone(),
            name: "Modals weekly".into(),
            max_messages: 99,
            window: Some(cap_rule::Window::CalendarDays(7)),
            ..Default::default()
        },
        &["name", "window"],
    )
    .await
    .expect("update");
    assert_eq!(updated.name, "Modals weekly");
    assert_eq!(updated.window, Some(cap_rule::Window::CalendarDays(7)));
    assert_eq!(updated.max_messages, 2);
    assert_eq!(updated.in_app_format, InAppFormat::Modal as i32);
    assert_eq!(updated.create_time, modals.create_time);
    assert_eq!(
        updated.update_time,
        Some(herald_core::time::proto(app.clock.now()))
    );
    // An update keeps the rule's place: oldest first by creation.
    assert_eq!(list(&app).await, [updated.clone(), hourly.clone()]);

    delete(&app, &updated.id).await.expect("delete");
    assert_eq!(list(&app).await, [hourly]);
    let again = delete(&app, &updated.id).await.expect_err("deleted twice");
    assert_eq!(again.code(), Code::NotFound);
    let gone = update(&app, updated, &["name"]).await.expect_err("deleted");
    assert_eq!(gone.code(), Code::NotFound);
    let refused = delete(&app, "").await.expect_err("no id");
    assert_eq!(violations(&refused), ["cap_rule_id"]);
}

#[tokio::test]
async fn every_invalid_rule_field_is_named_and_nothing_is_written() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db).await;
    let bad = CapRule {
        name: String::new(),
        max_messages: 0,
        window: Some(cap_rule::Window::Rolling(duration(59))),
        channel: 42,
        in_app_format: 42,
        default_time_zone: "Mars/Olympus_Mons".into(),
        ..Default::default()
    };
    let refused = create(&app, bad).await.expect_err("invalid");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&refused),
        [
            "cap_rule.name",
            "cap_rule.max_messages",
            "cap_rule.rolling",
            "cap_rule.channel",
            "cap_rule.in_app_format",
            "cap_rule.default_time_zone",
        ]
    );
    let refused = create(
        &app,
        CapRule {
            window: None,
            ..modals_per_day()
        },
    )
    .await
    .expect_err("no window");
    assert_eq!(violations(&refused), ["cap_rule.window"]);
    let refused = create(
        &app,
        CapRule {
            window: Some(cap_rule::Window::CalendarDays(32)),
            channel: Channel::Email as i32,
            ..modals_per_day()
        },
    )
    .await
    .expect_err("a modal format on email, 32 days");
    assert_eq!(
        violations(&refused),
        ["cap_rule.calendar_days", "cap_rule.in_app_format"]
    );
    let refused = app
        .client()
        .await
        .create_cap_rule(app.admin(CreateCapRuleRequest { cap_rule: None }))
        .await
        .expect_err("no rule");
    assert_eq!(violations(&refused), ["cap_rule"]);
    assert!(list(&app).await.is_empty());

    // An update is checked as the rule it would leave, and then changes nothing.
    let stored = create(&app, modals_per_day()).await.expect("create");
    let refused = update(
        &app,
        CapRule {
            id: stored.id.clone(),
            max_messages: 0,
            channel: Channel::Sms as i32,
            ..Default::default()
        },
        &["max_messages", "channel"],
    )
    .await
    .expect_err("invalid update");
    assert_eq!(
        violations(&refused),
        ["cap_rule.max_messages", "cap_rule.in_app_format"]
    );
    assert_eq!(list(&app).await, [stored]);
}

#[tokio::test]
async fn update_masks_are_checked() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db).await;
    let stored = create(&app, modals_per_day()).await.expect("create");
    let change = CapRule {
        id: stored.id.clone(),
        ..three_an_hour()
    };
    let refused = update(&app, change.clone(), &[])
        .await
        .expect_err("empty mask");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violations(&refused), ["update_mask"]);
    let refused = update(
        &app,
        change.clone(),
        &["name", "colour", "id", "calendar_days"],
    )
    .await
    .expect_err("bad paths");
    assert_eq!(
        violations(&refused),
        [
            "update_mask.paths[1]",
            "update_mask.paths[2]",
            "update_mask.paths[3]"
        ]
    );
    let refused = update(
        &app,
        CapRule {
            id: String::new(),
            ..change.clone()
        },
        &["name"],
    )
    .await
    .expect_err("no id");
    assert_eq!(violations(&refused), ["cap_rule.id"]);
    assert_eq!(list(&app).await, [stored], "nothing changed");
    let every = update(
        &app,
        change,
        &[
            "name",
            "max_messages",
            "window",
            "channel",
            "in_app_format",
            "default_time_zone",
        ],
    )
    .await
    .expect("every updatable field");
    assert_eq!(
        CapRule {
            id: String::new(),
            create_time: None,
            update_time: None,
            ..every
        },
        three_an_hour()
    );

    // The settings' mask too.
    let refused = update_settings(&app, TriggerSettings::default(), &[])
        .await
        .expect_err("empty mask");
    assert_eq!(violations(&refused), ["update_mask"]);
    let refused = update_settings(&app, TriggerSettings::default(), &["quiet_hours", "locale"])
        .await
        .expect_err("unknown path");
    assert_eq!(violations(&refused), ["update_mask.paths[1]"]);
}

#[tokio::test]
async fn a_workspace_holds_at_most_50_rules() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db).await;
    let mut ids = Vec::new();
    for i in 0..50 {
        let rule = create(
            &app,
            CapRule {
                name: format!("rule {i}"),
                ..three_an_hour()
            },
        )
        .await
        .expect("create");
        ids.push(rule.id);
    }
    let refused = create(&app, three_an_hour())
        .await
        .expect_err("the 51st rule");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("50"), "{}", refused.message());
    let listed: Vec<String> = list(&app).await.into_iter().map(|r| r.id).collect();
    assert_eq!(listed, ids, "all 50, oldest first");
    // Another workspace has a budget of its own.
    app.client()
        .await
        .create_cap_rule(app.other(CreateCapRuleRequest {
            cap_rule: Some(three_an_hour()),
        }))
        .await
        .expect("another workspace");
    delete(&app, &ids[7]).await.expect("delete one");
    create(&app, three_an_hour())
        .await
        .expect("room for one more");
}

#[tokio::test]
async fn concurrent_creates_never_pass_the_limit() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db).await;
    for _ in 0..40 {
        create(&app, three_an_hour()).await.expect("create");
    }
    let mut racing = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let mut client = app.client().await;
        let request = app.admin(CreateCapRuleRequest {
            cap_rule: Some(three_an_hour()),
        });
        racing.spawn(async move { client.create_cap_rule(request).await.map(|_| ()) });
    }
    let mut created = 0;
    while let Some(result) = racing.join_next().await {
        match result.expect("join") {
            Ok(()) => created += 1,
            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
        }
    }
    assert_eq!(created, 10);
    assert_eq!(list(&app).await.len(), 50);
}

#[tokio::test]
async fn rules_of_another_workspace_are_not_found() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db).await;
    let mut client = app.client().await;
    let theirs = client
        .create_cap_rule(app.other(CreateCapRuleRequest {
            cap_rule: Some(modals_per_day()),
        }))
        .await
        .expect("create in globex")
        .into_inner()
        .cap_rule
        .expect("cap_rule");
    assert!(list(&app).await.is_empty());
    let refused = update(&app, theirs.clone(), &["name"])
        .await
        .expect_err("update theirs");
    assert_eq!(refused.code(), Code::NotFound);
    let refused = delete(&app, &theirs.id).await.expect_err("delete theirs");
    assert_eq!(refused.code(), Code::NotFound);
    let still = client
        .list_cap_rules(app.other(ListCapRulesRequest {}))
        .await
        .expect("list globex")
        .into_inner()
        .cap_rules;
    assert_eq!(still, [theirs]);
    // Settings are per workspace too.
    update_settings(
        &app,
        TriggerSettings {
            default_locale: "de".into(),
            ..Default::default()
        },
        &["default_locale"],
    )
    .await
    .expect("update acme");
    let theirs = client
        .get_trigger_settings(app.other(GetTriggerSettingsRequest {}))
        .await
        .expect("get globex")
        .into_inner()
        .settings
        .expect("settings");
    assert_eq!(theirs.default_locale, "");
}

#[tokio::test]
async fn keys_without_the_admin_scope_are_refused() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db).await;
    let mut client = app.client().await;
    let ingest = app.credentials.ingest_key.expose();
    let denied = client
        .create_cap_rule(authorized(
            CreateCapRuleRequest {
                cap_rule: Some(modals_per_day()),
            },
            ingest,
        ))
        .await
        .expect_err("ingest key");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = client
        .list_cap_rules(authorized(ListCapRulesRequest {}, ingest))
        .await
        .expect_err("ingest key");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = client
        .update_trigger_settings(authorized(
            UpdateTriggerSettingsRequest {
                settings: None,
                update_mask: mask(&["quiet_hours"]),
            },
            ingest,
        ))
        .await
        .expect_err("ingest key");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let missing = client
        .get_trigger_settings(Request::new(GetTriggerSettingsRequest {}))
        .await
        .expect_err("no key");
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert!(list(&app).await.is_empty());
}

fn quiet_nights() -> QuietHours {
    QuietHours {
        start_local_time: "22:00".into(),
        end_local_time: "08:00".into(),
        behavior: QuietHoursBehavior::Delay as i32,
        default_time_zone: "America/New_York".into(),
        channels: vec![Channel::Push as i32, Channel::InApp as i32],
        release_jitter: Some(duration(900)),
    }
}

#[tokio::test]
async fn delivery_reads_the_minimum_in_app_interval_as_display_settings() {
    use herald_proto::trigger::v1::trigger_internal_service_client::TriggerInternalServiceClient;
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db).await;
    let mut internal = TriggerInternalServiceClient::connect(app.running.url())
        .await
        .expect("connect");
    let ask = |workspace: &str| {
        authorized(
            GetDisplaySettingsRequest {
                workspace_id: workspace.into(),
            },
            app.credentials.internal_key.expose(),
        )
    };
    let interval = |r: GetDisplaySettingsResponse| r.min_in_app_interval.expect("always set");
    // The default, then what the workspace set.
    let answer = internal
        .get_display_settings(ask("acme"))
        .await
        .expect("default");
    assert_eq!(interval(answer.into_inner()), duration(30));
    let settings = TriggerSettings {
        min_in_app_interval: Some(duration(0)),
        ..Default::default()
    };
    update_settings(&app, settings, &["min_in_app_interval"])
        .await
        .expect("turn the interval off");
    let answer = internal
        .get_display_settings(ask("acme"))
        .await
        .expect("set");
    assert_eq!(interval(answer.into_inner()), duration(0));
    // Internal only, and the workspace is named.
    let status = internal
        .get_display_settings(app.admin(GetDisplaySettingsRequest {
            workspace_id: "acme".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = internal.get_display_settings(ask("")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violations(&status), ["workspace_id"]);
    app.running.stop().await;
}

#[tokio::test]
async fn settings_have_defaults_and_clearing_restores_them() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db).await;
    let defaults = TriggerSettings {
        min_in_app_interval: Some(duration(30)),
        quiet_hours: None,
        default_locale: String::new(),
    };
    assert_eq!(get_settings(&app).await, defaults);

    let chosen = TriggerSettings {
        min_in_app_interval: Some(duration(0)),
        quiet_hours: Some(quiet_nights()),
        default_locale: "fr-CA".into(),
    };
    let updated = update_settings(
        &app,
        chosen.clone(),
        &["min_in_app_interval", "quiet_hours", "default_locale"],
    )
    .await
    .expect("update");
    assert_eq!(updated, chosen, "0 turns the interval off and stays set");
    assert_eq!(get_settings(&app).await, chosen);

    // Only the named fields change.
    let updated = update_settings(
        &app,
        TriggerSettings {
            default_locale: "en".into(),
            ..Default::default()
        },
        &["default_locale"],
    )
    .await
    .expect("update the locale");
    assert_eq!(
        updated,
        TriggerSettings {
            default_locale: "en".into(),
            ..chosen.clone()
        }
    );

    // Naming a field without a value clears it back to its default.
    let cleared = update_settings(
        &app,
        TriggerSettings::default(),
        &["min_in_app_interval", "quiet_hours"],
    )
    .await
    .expect("clear");
    let expected = TriggerSettings {
        default_locale: "en".into(),
        ..defaults.clone()
    };
    assert_eq!(cleared, expected);
    assert_eq!(get_settings(&app).await, expected);
    let cleared = app
        .client()
        .await
        .update_trigger_settings(app.admin(UpdateTriggerSettingsRequest {
            settings: None,
            update_mask: mask(&["default_locale"]),
        }))
        .await
        .expect("clear without settings")
        .into_inner()
        .settings;
    assert_eq!(cleared, Some(defaults.clone()));
    assert_eq!(get_settings(&app).await, defaults);
}

#[tokio::test]
async fn every_invalid_settings_field_is_named_and_nothing_is_written() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db).await;
    let refused = update_settings(
        &app,
        TriggerSettings {
            min_in_app_interval: Some(duration(86_401)),
            quiet_hours: Some(QuietHours {
                start_local_time: "25:00".into(),
                end_local_time: "8am".into(),
                behavior: 9,
                default_time_zone: "Atlantis/Capital".into(),
                channels: vec![Channel::Unspecified as i32],
                release_jitter: Some(duration(6 * 3600 + 1)),
            }),
            default_locale: "not a locale".into(),
        },
        &["min_in_app_interval", "quiet_hours", "default_locale"],
    )
    .await
    .expect_err("invalid");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&refused),
        [
            "settings.min_in_app_interval",
            "settings.quiet_hours.start_local_time",
            "settings.quiet_hours.end_local_time",
            "settings.quiet_hours.behavior",
            "settings.quiet_hours.default_time_zone",
            "settings.quiet_hours.channels[0]",
            "settings.quiet_hours.release_jitter",
            "settings.default_locale",
        ]
    );
    assert_eq!(
        get_settings(&app).await.min_in_app_interval,
        Some(duration(30))
    );
    assert_eq!(get_settings(&app).await.quiet_hours, None);
}

#[tokio::test]
async fn every_write_moves_the_campaign_version() {
    let db = TestDatabase::new().await;
    let app = spawn_trigger(&db).await;
    let store = herald_storage::connect(&db.url("trigger"))
        .await
        .expect("open trigger database");
    assert_eq!(version(&store).await, 0);
    let rule = create(&app, modals_per_day()).await.expect("create");
    assert_eq!(version(&store).await, 1);
    update(&app, rule.clone(), &["name"]).await.expect("update");
    assert_eq!(version(&store).await, 2);
    update_settings(
        &app,
        TriggerSettings {
            quiet_hours: Some(quiet_nights()),
            ..Default::default()
        },
        &["quiet_hours"],
    )
    .await
    .expect("settings");
    assert_eq!(version(&store).await, 3);
    delete(&app, &rule.id).await.expect("delete");
    assert_eq!(version(&store).await, 4);
    // Refused writes change nothing, the version included.
    delete(&app, &rule.id).await.expect_err("not found");
    create(&app, CapRule::default()).await.expect_err("invalid");
    update_settings(&app, TriggerSettings::default(), &["nope"])
        .await
        .expect_err("bad mask");
    list(&app).await;
    get_settings(&app).await;
    assert_eq!(version(&store).await, 4);
}
