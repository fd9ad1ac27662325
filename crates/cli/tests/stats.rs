//! `herald stats` against a real analytics service (fresh database, real gRPC): the CSV
//! holds exactly the numbers GetCampaignStats answers, to the last digit, and a series
//! CSV sums to the statistics. The `herald` binary runs as a user would run it, with the
//! key in its environment.

use std::process::{Command, Output};

use herald_proto::analytics::v1::analytics_internal_service_client::AnalyticsInternalServiceClient;
use herald_proto::analytics::v1::analytics_service_client::AnalyticsServiceClient;
use herald_proto::analytics::v1::*;
use herald_proto::common::v1::Event;
use herald_runtime::{Clock, ServiceKind};
use herald_testkit::{Credentials, Running, TestDatabase, WORKSPACE, authorized};
use prost_types::Timestamp;
use tonic::transport::Channel;

/// What the service's clock reads.
const NOW: &str = "2026-06-01T12:00:00Z";
const HOUR: i64 = 3600;
/// A variant id a CSV must quote.
const QUOTED: &str = "b,\"x\"";

struct App {
    running: Running,
    credentials: Credentials,
    public: AnalyticsServiceClient<Channel>,
    _db: TestDatabase,
}

fn seconds(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_second()
}

fn at(seconds: i64) -> Timestamp {
    Timestamp { seconds, nanos: 0 }
}

fn rfc3339(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds).unwrap().to_string()
}

/// The start of the scenario: a day before [`NOW`], on a whole hour.
fn base() -> i64 {
    seconds(NOW) - 24 * HOUR
}

fn experiment() -> Experiment {
    Experiment {
        variants: vec![
            ArmWeight {
                variant_id: "v1".into(),
                weight: 1,
            },
            ArmWeight {
                variant_id: QUOTED.into(),
                weight: 1,
            },
        ],
        control_weight: 1,
        sequential_tuning: 0,
    }
}

fn interaction(
    id: String,
    kind: InteractionKind,
    variant: &str,
    user: &str,
    message: &str,
    t: i64,
) -> Interaction {
    let exposure = matches!(
        kind,
        InteractionKind::Exposed | InteractionKind::AssignedControl
    );
    Interaction {
        id,
        campaign_id: "c1".into(),
        variant_id: variant.into(),
        user_id: user.into(),
        kind: kind as i32,
        message_id: message.into(),
        time: Some(at(t)),
        goal_event_name: if exposure {
            "purchased".into()
        } else {
            String::new()
        },
        attribution_window: exposure.then_some(prost_types::Duration {
            seconds: HOUR,
            nanos: 0,
        }),
        experiment: exposure.then(experiment),
        ..Default::default()
    }
}

/// Campaign c1, exposures spread over three hours from [`base`], each user converting (a
/// "purchased" event 10 minutes after exposure) or not:
/// - v1: u1..u9 exposed and sent a message; m1..m4 shown, m1 and m2 clicked, m3
///   dismissed; u1..u6 convert (6 of 9);
/// - `b,"x"`: u10..u17 exposed and sent; m10..m12 shown, m10 clicked; u10 and u11
///   convert (2 of 8);
/// - control: u20..u29 held out; u20 converts (1 of 10).
///
/// Every arm has enough exposed users for the sample-ratio check to be made.
fn scenario() -> (Vec<Interaction>, Vec<Event>) {
    use InteractionKind::*;
    let t0 = base();
    let mut interactions = Vec::new();
    let mut events = Vec::new();
    let mut arm = |variant: &str, users: std::ops::RangeInclusive<u32>, converting: u32| {
        for n in users {
            let (user, message) = (format!("u{n}"), format!("m{n}"));
            let t = t0 + i64::from(n % 3) * HOUR;
            let kind = if variant.is_empty() {
                AssignedControl
            } else {
                Exposed
            };
            let message_of = |kind| {
                if kind == AssignedControl {
                    ""
                } else {
                    &message
                }
            };
            interactions.push(interaction(
                format!("x{n}"),
                kind,
                variant,
                &user,
                message_of(kind),
                t,
            ));
            if !variant.is_empty() {
                interactions.push(interaction(
                    format!("s{n}"),
                    Sent,
                    variant,
                    &user,
                    &message,
                    t,
                ));
            }
            if n < converting {
                events.push(Event {
                    message_id: format!("e{n}"),
                    user_id: user.clone(),
                    name: "purchased".into(),
                    timestamp: Some(at(t + 600)),
                    ..Default::default()
                });
            }
        }
    };
    arm("v1", 1..=9, 7);
    arm(QUOTED, 10..=17, 12);
    arm("", 20..=29, 21);
    let t = t0 + 2 * HOUR + 60;
    for (id, kind, variant, n) in [
        ("i1", Impression, "v1", 1),
        ("i2", Impression, "v1", 2),
        ("i3", Impression, "v1", 3),
        ("i4", Impression, "v1", 4),
        ("k1", Click, "v1", 1),
        ("k2", Click, "v1", 2),
        ("d3", Dismissal, "v1", 3),
        ("i10", Impression, QUOTED, 10),
        ("i11", Impression, QUOTED, 11),
        ("i12", Impression, QUOTED, 12),
        ("k10", Click, QUOTED, 10),
    ] {
        interactions.push(interaction(
            id.into(),
            kind,
            variant,
            &format!("u{n}"),
            &format!("m{n}"),
            t,
        ));
    }
    (interactions, events)
}

async fn spawn_app() -> App {
    let db = TestDatabase::new().await;
    let credentials = Credentials::new();
    let config = herald_testkit::config(ServiceKind::Analytics, &db, &credentials);
    let clock = Clock::manual(NOW.parse().unwrap());
    let running = herald_testkit::spawn(config, clock, herald_analytics::serve).await;
    let mut internal = AnalyticsInternalServiceClient::connect(running.url())
        .await
        .expect("connect");
    let public = AnalyticsServiceClient::connect(running.url())
        .await
        .expect("connect");
    let key = credentials.internal_key.expose().to_owned();
    let (interactions, events) = scenario();
    internal
        .record_interactions(authorized(
            RecordInteractionsRequest {
                workspace_id: WORKSPACE.into(),
                interactions,
            },
            &key,
        ))
        .await
        .expect("record interactions");
    internal
        .record_events(authorized(
            RecordEventsRequest {
                workspace_id: WORKSPACE.into(),
                events,
            },
            &key,
        ))
        .await
        .expect("record events");
    App {
        running,
        credentials,
        public,
        _db: db,
    }
}

impl App {
    fn admin_key(&self) -> String {
        self.credentials.admin_key.expose().to_owned()
    }

    async fn stats(&mut self, request: GetCampaignStatsRequest) -> CampaignStats {
        let key = self.admin_key();
        self.public
            .get_campaign_stats(authorized(request, &key))
            .await
            .expect("stats")
            .into_inner()
            .stats
            .expect("stats")
    }

    async fn series(&mut self, request: GetTimeSeriesRequest) -> Vec<TimeSeriesPoint> {
        let key = self.admin_key();
        self.public
            .get_time_series(authorized(request, &key))
            .await
            .expect("series")
            .into_inner()
            .points
    }

    /// `herald stats ARGS --url <this service>` with the admin key.
    async fn herald(&self, args: &[&str]) -> Output {
        let mut full: Vec<String> = vec!["stats".into()];
        full.extend(args.iter().map(|a| (*a).to_owned()));
        full.extend(["--url".into(), self.running.url()]);
        herald(full, Some(self.admin_key())).await
    }

    /// The CSV `herald stats ARGS` prints, failing the test if it fails.
    async fn csv(&self, args: &[&str]) -> String {
        let output = self.herald(args).await;
        assert!(
            output.status.success(),
            "herald stats {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8")
    }
}

/// Runs the `herald` binary with `args`, nothing of the test's `HERALD_*` environment,
/// and `key` as `HERALD_KEY`.
async fn herald(args: Vec<String>, key: Option<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("HERALD_") {
                command.env_remove(name);
            }
        }
        if let Some(key) = key {
            command.env("HERALD_KEY", key);
        }
        command.args(args).output().expect("run herald")
    })
    .await
    .expect("join")
}

/// Splits CSV text into rows of cells (RFC 4180: quoted fields, doubled quotes).
fn read_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut cell, mut quoted) = (Vec::new(), Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    assert!(
        row.is_empty() && cell.is_empty(),
        "the CSV ends with a line break"
    );
    rows
}

/// What a cell must hold.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Count(u64),
    Number(f64),
    Text(String),
    Empty,
}

impl Cell {
    /// Whether `text` is this value, read back exactly: a count as an integer, a number
    /// as the very same `f64` (bit for bit).
    fn matches(&self, text: &str) -> bool {
        match self {
            Cell::Count(n) => text.parse::<u64>().ok() == Some(*n),
            Cell::Number(x) => text.parse::<f64>().map(f64::to_bits).ok() == Some(x.to_bits()),
            Cell::Text(s) => text == s,
            Cell::Empty => text.is_empty(),
        }
    }
}

fn text(s: impl ToString) -> Cell {
    Cell::Text(s.to_string())
}

fn or_empty<T>(value: Option<T>, cell: impl FnOnce(T) -> Cell) -> Cell {
    value.map_or(Cell::Empty, cell)
}

/// The row `herald stats` must print for `v`, from the API's answer: every VariantStats
/// number (an effect's numbers empty where there is no comparison or insufficient_data
/// says why), then the campaign's columns.
fn expected_row(stats: &CampaignStats, arm: &str, v: &VariantStats) -> Vec<(String, Cell)> {
    let users = v.users.expect("unique users");
    let mut row: Vec<(String, Cell)> = [
        ("campaign_id", text(&stats.campaign_id)),
        ("arm", text(arm)),
        ("variant_id", text(&v.variant_id)),
        ("control", text(v.control)),
        ("sent", Cell::Count(v.sent)),
        ("delivered", Cell::Count(v.delivered)),
        ("impressions", Cell::Count(v.impressions)),
        ("clicks", Cell::Count(v.clicks)),
        ("dismissals", Cell::Count(v.dismissals)),
        ("conversions", Cell::Count(v.conversions)),
        ("click_rate", Cell::Number(v.click_rate)),
        ("dismissal_rate", Cell::Number(v.dismissal_rate)),
        ("conversion_rate", Cell::Number(v.conversion_rate)),
        ("assigned", Cell::Count(v.assigned)),
        ("exposures", Cell::Count(v.exposures)),
        ("exposed", Cell::Count(v.exposed)),
        ("users_sent", Cell::Count(users.sent)),
        ("users_delivered", Cell::Count(users.delivered)),
        ("users_impressions", Cell::Count(users.impressions)),
        ("users_clicks", Cell::Count(users.clicks)),
        ("users_dismissals", Cell::Count(users.dismissals)),
    ]
    .into_iter()
    .map(|(name, cell)| (name.to_owned(), cell))
    .collect();
    let comparison = v.vs_control.as_ref();
    for (prefix, effect) in [
        ("absolute", comparison.and_then(|c| c.absolute.as_ref())),
        ("relative", comparison.and_then(|c| c.relative.as_ref())),
    ] {
        let computed = effect.filter(|e| e.insufficient_data.is_empty());
        let number =
            |f: &dyn Fn(&Effect) -> Option<f64>| or_empty(computed.and_then(f), Cell::Number);
        let cells = [
            (
                "insufficient_data",
                text(effect.map(|e| e.insufficient_data.as_str()).unwrap_or("")),
            ),
            ("estimate", number(&|e| Some(e.estimate))),
            (
                "sequential_lower",
                number(&|e| e.sequential.map(|t| t.lower)),
            ),
            (
                "sequential_upper",
                number(&|e| e.sequential.map(|t| t.upper)),
            ),
            (
                "sequential_p_value",
                number(&|e| e.sequential.map(|t| t.p_value)),
            ),
            (
                "fixed_horizon_lower",
                number(&|e| e.fixed_horizon.map(|t| t.lower)),
            ),
            (
                "fixed_horizon_upper",
                number(&|e| e.fixed_horizon.map(|t| t.upper)),
            ),
            (
                "fixed_horizon_p_value",
                number(&|e| e.fixed_horizon.map(|t| t.p_value)),
            ),
            (
                "chance_to_beat_control",
                number(&|e| Some(e.chance_to_beat_control)),
            ),
            ("credible_lower", number(&|e| e.credible.map(|t| t.lower))),
            ("credible_upper", number(&|e| e.credible.map(|t| t.upper))),
        ];
        row.extend(
            cells
                .into_iter()
                .map(|(name, cell)| (format!("{prefix}_{name}"), cell)),
        );
    }
    let goal = stats.goal.as_ref().expect("a goal version");
    let experiment = goal.experiment.as_ref().expect("the experiment");
    let weight = match arm {
        "variant" => Cell::Count(u64::from(
            experiment
                .variants
                .iter()
                .find(|w| w.variant_id == v.variant_id)
                .expect("the variant's weight")
                .weight,
        )),
        "control" => Cell::Count(u64::from(experiment.control_weight)),
        _ => Cell::Empty,
    };
    let window = goal.attribution_window.expect("a window");
    assert_eq!(window.nanos, 0);
    let first = goal.first_exposure_time.expect("a first exposure");
    let method = stats.method.clone().expect("the method");
    let srm = stats.sample_ratio.clone().expect("the sample-ratio check");
    let campaign = [
        ("allocation_weight", weight),
        ("goal_version", Cell::Count(u64::from(goal.version))),
        ("goal_event_name", text(&goal.event_name)),
        (
            "goal_attribution_window_seconds",
            Cell::Count(window.seconds as u64),
        ),
        ("goal_first_exposure_time", text(rfc3339(first.seconds))),
        ("method_metric", text(&method.metric)),
        ("method_alpha", Cell::Number(method.alpha)),
        (
            "method_sequential_tuning",
            Cell::Number(method.sequential_tuning),
        ),
        ("method_prior", text(&method.prior)),
        ("method_default_test", text(&method.default_test)),
        ("srm_insufficient_data", text(&srm.insufficient_data)),
        (
            "srm_p_value",
            if srm.insufficient_data.is_empty() {
                Cell::Number(srm.p_value)
            } else {
                Cell::Empty
            },
        ),
        ("srm_threshold", Cell::Number(srm.threshold)),
        ("srm_mismatch", text(srm.mismatch)),
        ("lifetime", text(stats.lifetime)),
    ];
    row.extend(
        campaign
            .into_iter()
            .map(|(name, cell)| (name.to_owned(), cell)),
    );
    row
}

/// Asserts `csv` is `stats` to the last digit: the header, a row per variant and for
/// control in the answer's order, then the total. Returns how many cells held a number
/// with at least 15 significant digits (so a caller can check the comparison had some).
#[track_caller]
fn assert_csv_is(csv: &str, stats: &CampaignStats) -> usize {
    let rows = read_csv(csv);
    let mut expected: Vec<(&str, &VariantStats)> = stats
        .variants
        .iter()
        .map(|v| (if v.control { "control" } else { "variant" }, v))
        .collect();
    expected.push(("total", stats.total.as_ref().expect("total")));
    assert_eq!(rows.len(), expected.len() + 1, "header and rows:\n{csv}");
    let mut long = 0;
    for (i, (arm, v)) in expected.into_iter().enumerate() {
        let want = expected_row(stats, arm, v);
        let header: Vec<&str> = want.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(rows[0], header, "the header");
        let row = &rows[i + 1];
        assert_eq!(row.len(), want.len(), "row {i}: {row:?}");
        for ((name, cell), got) in want.iter().zip(row) {
            assert!(
                cell.matches(got),
                "row {i} ({arm} {:?}) {name}: the CSV says {got:?}, the API {cell:?}",
                v.variant_id
            );
            if matches!(cell, Cell::Number(_))
                && got.chars().filter(char::is_ascii_digit).count() >= 15
            {
                long += 1;
            }
        }
    }
    long
}

/// Sums the `value` column of a series CSV, checking its header.
#[track_caller]
fn series_sum(csv: &str) -> u64 {
    let rows = read_csv(csv);
    assert_eq!(rows[0], ["start_time", "value"]);
    rows[1..]
        .iter()
        .map(|row| row[1].parse::<u64>().expect("a count"))
        .sum()
}

#[tokio::test]
async fn the_csv_holds_the_api_numbers_to_the_last_digit() {
    let mut app = spawn_app().await;
    let stats = app
        .stats(GetCampaignStatsRequest {
            campaign_id: "c1".into(),
            ..Default::default()
        })
        .await;
    // The scenario as the counting rules count it; otherwise the comparison below would
    // prove little.
    let exposed: Vec<(String, bool, u64, u64)> = stats
        .variants
        .iter()
        .map(|v| (v.variant_id.clone(), v.control, v.exposed, v.conversions))
        .collect();
    assert_eq!(
        exposed,
        [
            (QUOTED.to_owned(), false, 8, 2),
            ("v1".to_owned(), false, 9, 6),
            (String::new(), true, 10, 1),
        ],
        "exposed users and conversions per arm"
    );
    let srm = stats.sample_ratio.as_ref().expect("a sample-ratio check");
    assert_eq!(srm.insufficient_data, "", "the check is made");
    let v1 = stats
        .variants
        .iter()
        .find(|v| v.variant_id == "v1")
        .unwrap();
    assert_eq!(
        v1.vs_control
            .as_ref()
            .unwrap()
            .relative
            .as_ref()
            .unwrap()
            .insufficient_data,
        ""
    );

    let csv = app.csv(&["c1"]).await;
    let long = assert_csv_is(&csv, &stats);
    assert!(
        long >= 10,
        "only {long} numbers with 15 digits or more:\n{csv}"
    );
    // A quoted variant id, as a spreadsheet reads it.
    assert!(csv.contains("\"b,\"\"x\"\"\""), "{csv}");

    // A range: hourly aggregates, lifetime false.
    let (start, end) = (base() + HOUR, seconds(NOW));
    let ranged = app
        .stats(GetCampaignStatsRequest {
            campaign_id: "c1".into(),
            start_time: Some(at(start)),
            end_time: Some(at(end)),
            ..Default::default()
        })
        .await;
    assert!(!ranged.lifetime);
    let csv = app
        .csv(&["c1", "--start", &rfc3339(start), "--end", &rfc3339(end)])
        .await;
    assert_csv_is(&csv, &ranged);

    // The current goal version named explicitly is the same table.
    let version = stats.goal.as_ref().unwrap().version.to_string();
    assert_eq!(
        app.csv(&["c1", "--goal-version", &version]).await,
        app.csv(&["c1"]).await
    );
}

#[tokio::test]
async fn series_sum_to_the_statistics() {
    let mut app = spawn_app().await;
    let stats = app
        .stats(GetCampaignStatsRequest {
            campaign_id: "c1".into(),
            ..Default::default()
        })
        .await;
    let total = stats.total.clone().unwrap();
    let control = stats.variants.iter().find(|v| v.control).unwrap();
    let v1 = stats
        .variants
        .iter()
        .find(|v| v.variant_id == "v1")
        .unwrap();
    let start = rfc3339(base());
    // (arguments, what the series must sum to)
    let cases: [(&[&str], u64); 8] = [
        (
            &["--series", "exposed", "--bucket", "hour"],
            total.exposures,
        ),
        (&["--series", "exposed", "--control"], control.exposures),
        (&["--series", "exposed", "--variant", "v1"], v1.exposures),
        (
            &["--series", "exposed", "--variant", QUOTED],
            stats.variants[0].exposures,
        ),
        (&["--series", "sent", "--bucket", "week"], total.sent),
        (
            &["--series", "conversions", "--zone", "Europe/Paris"],
            total.conversions,
        ),
        (
            &["--series", "clicks", "--unique-users", "--bucket", "hour"],
            total.users.unwrap().clicks,
        ),
        (&["--series", "impressions"], total.impressions),
    ];
    for (args, want) in cases {
        let mut full = vec!["c1", "--start", start.as_str()];
        full.extend(args);
        let csv = app.csv(&full).await;
        assert_eq!(series_sum(&csv), want, "{args:?}:\n{csv}");
        assert!(want > 0, "{args:?} sums to 0: a vacuous check");
    }

    // The buckets are the API's, each start the same instant (printed in the zone).
    let points = app
        .series(GetTimeSeriesRequest {
            campaign_id: "c1".into(),
            metric: Metric::Exposed as i32,
            bucket_size: BucketSize::Hour as i32,
            start_time: Some(at(base())),
            time_zone: "Europe/Paris".into(),
            ..Default::default()
        })
        .await;
    let csv = app
        .csv(&[
            "c1",
            "--series",
            "exposed",
            "--bucket",
            "hour",
            "--zone",
            "Europe/Paris",
            "--start",
            &start,
        ])
        .await;
    let rows = read_csv(&csv);
    let printed: Vec<(i64, u64)> = rows[1..]
        .iter()
        .map(|row| {
            assert!(
                row[0].ends_with("+02:00"),
                "{row:?} is in Paris summer time"
            );
            (seconds(&row[0]), row[1].parse().unwrap())
        })
        .collect();
    let answered: Vec<(i64, u64)> = points
        .iter()
        .map(|p| (p.start_time.unwrap().seconds, p.value))
        .collect();
    assert_eq!(printed, answered);
}

#[tokio::test]
async fn errors_show_the_status_and_exit_non_zero() {
    let mut app = spawn_app().await;
    // A goal version the campaign never had: the server's NOT_FOUND and its message.
    let key = app.admin_key();
    let status = app
        .public
        .get_campaign_stats(authorized(
            GetCampaignStatsRequest {
                campaign_id: "c1".into(),
                goal_version: 9,
                ..Default::default()
            },
            &key,
        ))
        .await
        .expect_err("version 9 is unknown");
    let output = app.herald(&["c1", "--goal-version", "9"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty(), "no partial CSV");
    assert!(
        stderr.contains("NotFound") && stderr.contains(status.message()),
        "{stderr} does not show {status:?}"
    );

    // The server refuses the request (more than 1000 hourly buckets): INVALID_ARGUMENT.
    let output = app
        .herald(&[
            "c1",
            "--series",
            "sent",
            "--start",
            "2026-01-01T00:00:00Z",
            "--bucket",
            "hour",
        ])
        .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("InvalidArgument"), "{stderr}");

    // A key without the admin scope.
    let url = app.running.url();
    let ingest_key = app.credentials.ingest_key.expose().to_owned();
    let output = herald(
        vec!["stats".into(), "c1".into(), "--url".into(), url.clone()],
        Some(ingest_key),
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("PermissionDenied"), "{stderr}");

    // No key at all: a usage error before any call.
    let output = herald(vec!["stats".into(), "c1".into(), "--url".into(), url], None).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("HERALD_KEY"), "{stderr}");

    // Nothing listening: an error, not a hang.
    let output = herald(
        vec![
            "stats".into(),
            "c1".into(),
            "--url".into(),
            "http://127.0.0.1:1".into(),
            "--timeout-secs".into(),
            "5".into(),
        ],
        Some(key),
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Unavailable"), "{stderr}");
}
