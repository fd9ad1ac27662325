//! `herald stats`: a campaign's analytics as CSV, from the analytics service's public RPCs
//! (`GetCampaignStats`, or `GetTimeSeries` with `--series`), so a spreadsheet shows the
//! same numbers as the API, to the last digit: counts print as integers and every
//! floating-point value in Rust's shortest form that parses back to the same `f64`.

use std::borrow::Cow;
use std::fmt::Display;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use herald_core::Timestamp;
use herald_proto::analytics::v1::analytics_service_client::AnalyticsServiceClient;
use herald_proto::analytics::v1::{
    BucketSize, CampaignStats, Effect, GetCampaignStatsRequest, GetTimeSeriesRequest, Metric, Test,
    TimeSeriesPoint, VariantStats,
};
use herald_runtime::{Downstream, Secret, ServiceKind};
use jiff::tz::TimeZone;

const USAGE: &str = "usage:
  herald stats CAMPAIGN_ID [--url URL] [--start TIME] [--end TIME] [--goal-version N]
  herald stats CAMPAIGN_ID --series METRIC --start TIME [--end TIME] [--bucket hour|day|week]
               [--zone ZONE] [--variant ID | --control] [--unique-users] [--goal-version N]
Prints CSV: one row per variant, control and the total (GetCampaignStats), or with --series
one `start_time,value` row per bucket (GetTimeSeries). METRIC is sent, delivered,
impressions, clicks, dismissals, conversions, assigned or exposed; TIME is RFC 3339
(2026-06-01T00:00:00Z); ZONE an IANA time zone (Europe/Paris). The key is $HERALD_KEY (a
server API key with the admin scope); URL defaults to $HERALD_ANALYTICS_URL, else
http://127.0.0.1:50055. --timeout-secs N bounds the call (30 by default).";

/// The call's deadline when `--timeout-secs` is not given: the services' default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What `herald stats` was asked for.
#[derive(Debug)]
struct Args {
    url: String,
    timeout: Duration,
    query: Query,
}

#[derive(Debug)]
enum Query {
    Stats(GetCampaignStatsRequest),
    /// The request, and the zone bucket starts are printed in (UTC when `None`).
    Series(GetTimeSeriesRequest, Option<TimeZone>),
}

fn parse_metric(name: &str) -> Option<Metric> {
    Some(match name {
        "sent" => Metric::Sent,
        "delivered" => Metric::Delivered,
        "impressions" => Metric::Impressions,
        "clicks" => Metric::Clicks,
        "dismissals" => Metric::Dismissals,
        "conversions" => Metric::Conversions,
        "assigned" => Metric::Assigned,
        "exposed" => Metric::Exposed,
        _ => return None,
    })
}

fn parse_time(flag: &str, value: &str) -> Result<prost_types::Timestamp, String> {
    value
        .parse::<Timestamp>()
        .map(herald_core::time::proto)
        .map_err(|e| format!("{flag} must be an RFC 3339 time like 2026-06-01T00:00:00Z: {e}"))
}

/// Parses the arguments after `stats`; `default_url` is what `--url` falls back to.
fn parse(args: &[String], default_url: &str) -> Result<Args, String> {
    let mut campaign_id = None;
    let mut url = default_url.to_owned();
    let mut timeout = DEFAULT_TIMEOUT;
    let (mut start, mut end, mut goal_version) = (None, None, 0);
    let mut series = None;
    let mut bucket = None;
    let mut zone = None;
    let mut variant = None;
    let (mut control, mut unique_users) = (false, false);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--url" => url = value("--url")?,
            "--timeout-secs" => {
                let secs: u64 = value("--timeout-secs")?
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or("--timeout-secs must be a whole number of seconds, at least 1")?;
                timeout = Duration::from_secs(secs);
            }
            "--start" => start = Some(parse_time("--start", &value("--start")?)?),
            "--end" => end = Some(parse_time("--end", &value("--end")?)?),
            "--goal-version" => {
                goal_version = value("--goal-version")?
                    .parse()
                    .map_err(|_| "--goal-version must be a whole number".to_owned())?
            }
            "--series" => {
                let name = value("--series")?;
                series = Some(parse_metric(&name).ok_or_else(|| {
                    format!(
                        "unknown metric {name:?}: sent, delivered, impressions, clicks, \
                         dismissals, conversions, assigned or exposed"
                    )
                })?);
            }
            "--bucket" => {
                let name = value("--bucket")?;
                bucket = Some(match name.as_str() {
                    "hour" => BucketSize::Hour,
                    "day" => BucketSize::Day,
                    "week" => BucketSize::Week,
                    _ => return Err(format!("unknown bucket {name:?}: hour, day or week")),
                });
            }
            "--zone" => {
                let name = value("--zone")?;
                let tz =
                    TimeZone::get(&name).map_err(|e| format!("unknown time zone {name:?}: {e}"))?;
                zone = Some((name, tz));
            }
            "--variant" => variant = Some(value("--variant")?),
            "--control" => control = true,
            "--unique-users" => unique_users = true,
            flag if flag.starts_with('-') => return Err(format!("unexpected argument {flag:?}")),
            id if campaign_id.is_none() => campaign_id = Some(id.to_owned()),
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let campaign_id = campaign_id.ok_or("name the campaign: herald stats CAMPAIGN_ID")?;
    // Herald speaks plaintext gRPC (tonic is built without TLS): only http:// can work.
    if !url.starts_with("http://") {
        return Err(format!("--url must be http://HOST:PORT, not {url:?}"));
    }
    let query = match series {
        Some(metric) => {
            if variant.is_some() && control {
                return Err("give either --variant or --control, not both".into());
            }
            let Some(start_time) = start else {
                return Err("--series needs --start".into());
            };
            let (time_zone, tz) = zone.unzip();
            Query::Series(
                GetTimeSeriesRequest {
                    campaign_id,
                    metric: metric as i32,
                    bucket_size: bucket.unwrap_or(BucketSize::Day) as i32,
                    start_time: Some(start_time),
                    end_time: end,
                    variant_id: variant.unwrap_or_default(),
                    control,
                    time_zone: time_zone.unwrap_or_default(),
                    unique_users,
                    goal_version,
                },
                tz,
            )
        }
        None => {
            let series_only = [
                ("--bucket", bucket.is_some()),
                ("--zone", zone.is_some()),
                ("--variant", variant.is_some()),
                ("--control", control),
                ("--unique-users", unique_users),
            ];
            if let Some((flag, _)) = series_only.iter().find(|(_, given)| *given) {
                return Err(format!("{flag} goes with --series"));
            }
            Query::Stats(GetCampaignStatsRequest {
                campaign_id,
                start_time: start,
                end_time: end,
                goal_version,
            })
        }
    };
    Ok(Args {
        url,
        timeout,
        query,
    })
}

/// `herald stats CAMPAIGN_ID …`.
pub fn run(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let default_url = std::env::var("HERALD_ANALYTICS_URL")
        .unwrap_or_else(|_| format!("http://127.0.0.1:{}", ServiceKind::Analytics.default_port()));
    let parsed = match parse(args, &default_url) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("herald stats: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let Some(key) = std::env::var("HERALD_KEY").ok().filter(|k| !k.is_empty()) else {
        eprintln!(
            "herald stats: set HERALD_KEY to a server API key with the admin scope \
             (`herald dev` prints one)"
        );
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herald stats: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let csv = match runtime.block_on(fetch(&parsed, Secret::new(key))) {
        Ok(csv) => csv,
        Err(e) => {
            eprintln!("herald stats: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Written at once, after the call succeeded: a failure never leaves half a CSV.
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(csv.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald stats: cannot write the CSV: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Makes the call (with the key and a deadline) and renders its answer as CSV; an error
/// is the status code and the server's message.
async fn fetch(args: &Args, key: Secret) -> Result<String, String> {
    let analytics = Downstream::connect_lazy("analytics", &args.url, Some(key), args.timeout)
        .map_err(|e| format!("invalid --url {:?}: {e}", args.url))?;
    let mut client = AnalyticsServiceClient::new(analytics.channel());
    let failed = |status: tonic::Status| {
        format!(
            "{} failed: {:?}: {}",
            args.url,
            status.code(),
            status.message()
        )
    };
    match &args.query {
        Query::Stats(request) => {
            let response = client
                .get_campaign_stats(analytics.request(request.clone(), None))
                .await
                .map_err(failed)?
                .into_inner();
            let stats = response.stats.ok_or("the answer holds no stats")?;
            Ok(stats_csv(&stats))
        }
        Query::Series(request, zone) => {
            let response = client
                .get_time_series(analytics.request(request.clone(), None))
                .await
                .map_err(failed)?
                .into_inner();
            Ok(series_csv(&response.points, zone.as_ref()))
        }
    }
}

/// One CSV field: quoted (quotes doubled) when it holds a comma, a quote or a line break.
fn field(value: &str) -> Cow<'_, str> {
    if value.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", value.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(value)
    }
}

fn push_line<'a>(out: &mut String, cells: impl IntoIterator<Item = &'a str>) {
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&field(cell));
    }
    out.push('\n');
}

/// A value as its cell: `Display`, which for `f64` is the shortest text that parses back
/// to the same number (never rounded to fixed decimals), for integers the integer.
fn cell(value: impl Display) -> String {
    value.to_string()
}

/// An optional value: an empty cell when absent.
fn opt<T: Display>(value: Option<T>) -> String {
    value.map(cell).unwrap_or_default()
}

fn time(t: &prost_types::Timestamp) -> String {
    Timestamp::new(t.seconds, t.nanos)
        .map(cell)
        .unwrap_or_else(|_| format!("{}s {}ns", t.seconds, t.nanos))
}

/// A duration in seconds, exactly (a fraction only when there is one).
fn seconds(d: &prost_types::Duration) -> String {
    if d.nanos == 0 {
        return d.seconds.to_string();
    }
    let sign = if d.seconds < 0 || d.nanos < 0 {
        "-"
    } else {
        ""
    };
    let fraction = format!("{:09}", d.nanos.unsigned_abs());
    format!(
        "{sign}{}.{}",
        d.seconds.unsigned_abs(),
        fraction.trim_end_matches('0')
    )
}

/// Which row of the stats table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arm {
    Variant,
    Control,
    Total,
}

impl Arm {
    fn name(self) -> &'static str {
        match self {
            Arm::Variant => "variant",
            Arm::Control => "control",
            Arm::Total => "total",
        }
    }
}

/// The columns of one effect (`absolute` or `relative`): empty numbers when there is no
/// comparison, or when insufficient_data says why none could be made (the API's zeros
/// there are placeholders, not results).
fn effect_columns(prefix: &str, effect: Option<&Effect>, row: &mut Vec<(String, String)>) {
    let computed = effect.filter(|e| e.insufficient_data.is_empty());
    let test = |pick: fn(&Effect) -> Option<&Test>| computed.and_then(pick);
    let columns: [(&str, String); 11] = [
        (
            "insufficient_data",
            effect
                .map(|e| e.insufficient_data.clone())
                .unwrap_or_default(),
        ),
        ("estimate", opt(computed.map(|e| e.estimate))),
        (
            "sequential_lower",
            opt(test(|e| e.sequential.as_ref()).map(|t| t.lower)),
        ),
        (
            "sequential_upper",
            opt(test(|e| e.sequential.as_ref()).map(|t| t.upper)),
        ),
        (
            "sequential_p_value",
            opt(test(|e| e.sequential.as_ref()).map(|t| t.p_value)),
        ),
        (
            "fixed_horizon_lower",
            opt(test(|e| e.fixed_horizon.as_ref()).map(|t| t.lower)),
        ),
        (
            "fixed_horizon_upper",
            opt(test(|e| e.fixed_horizon.as_ref()).map(|t| t.upper)),
        ),
        (
            "fixed_horizon_p_value",
            opt(test(|e| e.fixed_horizon.as_ref()).map(|t| t.p_value)),
        ),
        (
            "chance_to_beat_control",
            opt(computed.map(|e| e.chance_to_beat_control)),
        ),
        (
            "credible_lower",
            opt(test(|e| e.credible.as_ref()).map(|t| t.lower)),
        ),
        (
            "credible_upper",
            opt(test(|e| e.credible.as_ref()).map(|t| t.upper)),
        ),
    ];
    row.extend(
        columns
            .into_iter()
            .map(|(name, value)| (format!("{prefix}_{name}"), value)),
    );
}

/// One row of the stats table, as (column, cell) pairs: the arm's own numbers, then the
/// campaign's (goal version, method, sample-ratio check, range), repeated on every row so
/// the file is one flat table.
fn row(stats: &CampaignStats, arm: Arm, v: &VariantStats) -> Vec<(String, String)> {
    let users = v.users.unwrap_or_default();
    let mut row: Vec<(String, String)> = [
        ("campaign_id", stats.campaign_id.clone()),
        ("arm", arm.name().to_owned()),
        ("variant_id", v.variant_id.clone()),
        ("control", cell(v.control)),
        ("sent", cell(v.sent)),
        ("delivered", cell(v.delivered)),
        ("impressions", cell(v.impressions)),
        ("clicks", cell(v.clicks)),
        ("dismissals", cell(v.dismissals)),
        ("conversions", cell(v.conversions)),
        ("click_rate", cell(v.click_rate)),
        ("dismissal_rate", cell(v.dismissal_rate)),
        ("conversion_rate", cell(v.conversion_rate)),
        ("assigned", cell(v.assigned)),
        ("exposures", cell(v.exposures)),
        ("exposed", cell(v.exposed)),
        ("users_sent", cell(users.sent)),
        ("users_delivered", cell(users.delivered)),
        ("users_impressions", cell(users.impressions)),
        ("users_clicks", cell(users.clicks)),
        ("users_dismissals", cell(users.dismissals)),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    let vs = v.vs_control.as_ref();
    effect_columns("absolute", vs.and_then(|c| c.absolute.as_ref()), &mut row);
    effect_columns("relative", vs.and_then(|c| c.relative.as_ref()), &mut row);

    let goal = stats.goal.as_ref();
    let experiment = goal.and_then(|g| g.experiment.as_ref());
    // The arm's weight in the allocation its exposures were drawn with.
    let weight = experiment.and_then(|e| match arm {
        Arm::Variant => e
            .variants
            .iter()
            .find(|w| w.variant_id == v.variant_id)
            .map(|w| w.weight),
        Arm::Control => Some(e.control_weight),
        Arm::Total => None,
    });
    let method = stats.method.as_ref();
    let srm = stats.sample_ratio.as_ref();
    let campaign = [
        ("allocation_weight", opt(weight)),
        ("goal_version", opt(goal.map(|g| g.version))),
        (
            "goal_event_name",
            goal.map(|g| g.event_name.clone()).unwrap_or_default(),
        ),
        (
            "goal_attribution_window_seconds",
            opt(goal
                .and_then(|g| g.attribution_window.as_ref())
                .map(seconds)),
        ),
        (
            "goal_first_exposure_time",
            opt(goal.and_then(|g| g.first_exposure_time.as_ref()).map(time)),
        ),
        (
            "method_metric",
            method.map(|m| m.metric.clone()).unwrap_or_default(),
        ),
        ("method_alpha", opt(method.map(|m| m.alpha))),
        (
            "method_sequential_tuning",
            opt(method.map(|m| m.sequential_tuning)),
        ),
        (
            "method_prior",
            method.map(|m| m.prior.clone()).unwrap_or_default(),
        ),
        (
            "method_default_test",
            method.map(|m| m.default_test.clone()).unwrap_or_default(),
        ),
        (
            "srm_insufficient_data",
            srm.map(|s| s.insufficient_data.clone()).unwrap_or_default(),
        ),
        (
            "srm_p_value",
            opt(srm
                .filter(|s| s.insufficient_data.is_empty())
                .map(|s| s.p_value)),
        ),
        ("srm_threshold", opt(srm.map(|s| s.threshold))),
        ("srm_mismatch", opt(srm.map(|s| s.mismatch))),
        ("lifetime", cell(stats.lifetime)),
    ];
    row.extend(
        campaign
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value)),
    );
    row
}

/// GetCampaignStats as CSV: a header, then a row per variant and for control (in the
/// answer's order), then the total.
fn stats_csv(stats: &CampaignStats) -> String {
    let mut rows: Vec<Vec<(String, String)>> = stats
        .variants
        .iter()
        .map(|v| {
            let arm = if v.control {
                Arm::Control
            } else {
                Arm::Variant
            };
            row(stats, arm, v)
        })
        .collect();
    if let Some(total) = &stats.total {
        rows.push(row(stats, Arm::Total, total));
    }
    let mut out = String::new();
    let header = row(stats, Arm::Total, &VariantStats::default());
    push_line(&mut out, header.iter().map(|(name, _)| name.as_str()));
    for row in &rows {
        push_line(&mut out, row.iter().map(|(_, value)| value.as_str()));
    }
    out
}

/// GetTimeSeries as CSV: `start_time,value`, a bucket's start in RFC 3339 (with the
/// zone's offset at that instant when a zone was given, else UTC).
fn series_csv(points: &[TimeSeriesPoint], zone: Option<&TimeZone>) -> String {
    let mut out = String::from("start_time,value\n");
    for point in points {
        let start = match point.start_time.as_ref() {
            None => String::new(),
            Some(t) => match (Timestamp::new(t.seconds, t.nanos), zone) {
                (Ok(ts), Some(zone)) => ts.display_with_offset(zone.to_offset(ts)).to_string(),
                _ => time(t),
            },
        };
        push_line(&mut out, [start.as_str(), &cell(point.value)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_proto::analytics::v1::{
        ArmWeight, Comparison, Experiment, GoalVersion, SampleRatioCheck, StatsMethod, UniqueUsers,
    };

    fn args(list: &[&str]) -> Result<Args, String> {
        let list: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        parse(&list, "http://default:1")
    }

    /// Splits CSV text into rows of cells (quoted fields, doubled quotes).
    fn read_csv(text: &str) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        let (mut row, mut cell, mut quoted, mut chars) =
            (Vec::new(), String::new(), false, text.chars().peekable());
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
        rows
    }

    #[test]
    fn fields_with_separators_are_quoted_and_read_back() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        let mut out = String::new();
        let cells = ["a,b", "\"q\"", "x\r\ny", "", "plain"];
        push_line(&mut out, cells);
        assert_eq!(read_csv(&out), vec![cells.map(str::to_owned).to_vec()]);
    }

    #[test]
    fn floats_print_in_full_and_parse_back_to_the_same_bits() {
        for x in [
            2.0 / 3.0,
            0.1 + 0.2,
            1e-300,
            -0.000_123_456_789_012_345_67,
            f64::MIN_POSITIVE,
            f64::MAX,
            0.0,
            1.0,
        ] {
            let text = cell(x);
            assert!(!text.contains('e'), "{text} is not plain decimal");
            assert_eq!(
                text.parse::<f64>().unwrap().to_bits(),
                x.to_bits(),
                "{text}"
            );
        }
        assert_eq!(cell(2.0 / 3.0), "0.6666666666666666");
        assert_eq!(cell(u64::MAX), "18446744073709551615");
    }

    #[test]
    fn durations_print_exact_seconds() {
        let d = |seconds, nanos| prost_types::Duration { seconds, nanos };
        assert_eq!(seconds(&d(3600, 0)), "3600");
        assert_eq!(seconds(&d(1, 500_000_000)), "1.5");
        assert_eq!(seconds(&d(0, 1)), "0.000000001");
        assert_eq!(seconds(&d(-1, -250_000_000)), "-1.25");
    }

    fn effect(estimate: f64) -> Effect {
        let test = |lower, upper, p_value| {
            Some(Test {
                lower,
                upper,
                p_value,
            })
        };
        Effect {
            insufficient_data: String::new(),
            estimate,
            sequential: test(-0.1, 0.3, 0.25),
            fixed_horizon: test(-0.05, 0.25, 0.125),
            chance_to_beat_control: 0.875,
            credible: test(-0.04, 0.24, 0.0),
        }
    }

    fn sample() -> CampaignStats {
        let arm = |id: &str, control: bool| VariantStats {
            variant_id: id.into(),
            control,
            sent: 3,
            conversions: 1,
            exposed: 3,
            conversion_rate: 1.0 / 3.0,
            users: Some(UniqueUsers {
                sent: 2,
                ..Default::default()
            }),
            ..Default::default()
        };
        CampaignStats {
            campaign_id: "c1".into(),
            variants: vec![
                VariantStats {
                    vs_control: Some(Comparison {
                        absolute: Some(effect(0.1)),
                        relative: Some(Effect {
                            insufficient_data: "control rate is 0".into(),
                            ..Default::default()
                        }),
                    }),
                    ..arm("a,\"b\"", false)
                },
                arm("", true),
            ],
            total: Some(arm("", false)),
            goal: Some(GoalVersion {
                version: 2,
                event_name: "purchased".into(),
                attribution_window: Some(prost_types::Duration {
                    seconds: 3600,
                    nanos: 0,
                }),
                first_exposure_time: Some(prost_types::Timestamp {
                    seconds: 1_780_228_800,
                    nanos: 0,
                }),
                experiment: Some(Experiment {
                    variants: vec![ArmWeight {
                        variant_id: "a,\"b\"".into(),
                        weight: 3,
                    }],
                    control_weight: 1,
                    sequential_tuning: 0,
                }),
            }),
            method: Some(StatsMethod {
                metric: "proportion of exposed users who converted".into(),
                alpha: 0.05,
                sequential_tuning: 5000.0,
                prior: "flat (improper)".into(),
                default_test: "sequential".into(),
            }),
            lifetime: true,
            sample_ratio: Some(SampleRatioCheck {
                insufficient_data: "fewer than 8 exposed users in an arm".into(),
                p_value: 0.0,
                mismatch: false,
                threshold: 0.001,
            }),
        }
    }

    /// The CSV as maps from column to cell, one per row.
    fn table(csv: &str) -> Vec<std::collections::HashMap<String, String>> {
        let rows = read_csv(csv);
        let (header, rows) = rows.split_first().expect("a header");
        rows.iter()
            .map(|row| {
                assert_eq!(row.len(), header.len(), "{row:?}");
                header.iter().cloned().zip(row.iter().cloned()).collect()
            })
            .collect()
    }

    #[test]
    fn stats_are_one_flat_table_with_a_row_per_arm_then_the_total() {
        let csv = stats_csv(&sample());
        let rows = table(&csv);
        let get = |row: usize, column: &str| rows[row][column].as_str();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            [get(0, "arm"), get(1, "arm"), get(2, "arm")],
            ["variant", "control", "total"]
        );
        assert_eq!(get(0, "variant_id"), "a,\"b\"");
        assert_eq!(get(1, "control"), "true");
        assert_eq!(get(0, "conversion_rate"), "0.3333333333333333");
        assert_eq!(get(0, "users_sent"), "2");
        // A computed effect prints every number; an insufficient one says why, no zeros.
        assert_eq!(get(0, "absolute_estimate"), "0.1");
        assert_eq!(get(0, "absolute_fixed_horizon_p_value"), "0.125");
        assert_eq!(get(0, "absolute_credible_upper"), "0.24");
        assert_eq!(get(0, "relative_insufficient_data"), "control rate is 0");
        assert_eq!(get(0, "relative_estimate"), "");
        // Control has no comparison.
        assert_eq!(get(1, "absolute_estimate"), "");
        assert_eq!(get(1, "absolute_insufficient_data"), "");
        // Campaign-level columns repeat on every row.
        for row in 0..3 {
            assert_eq!(get(row, "campaign_id"), "c1");
            assert_eq!(get(row, "goal_version"), "2");
            assert_eq!(get(row, "goal_attribution_window_seconds"), "3600");
            assert_eq!(get(row, "goal_first_exposure_time"), "2026-05-31T12:00:00Z");
            assert_eq!(get(row, "method_alpha"), "0.05");
            assert_eq!(get(row, "method_sequential_tuning"), "5000");
            assert_eq!(get(row, "srm_p_value"), "");
            assert_eq!(get(row, "srm_threshold"), "0.001");
            assert_eq!(get(row, "lifetime"), "true");
        }
        assert_eq!(
            [
                get(0, "allocation_weight"),
                get(1, "allocation_weight"),
                get(2, "allocation_weight")
            ],
            ["3", "1", ""]
        );
    }

    #[test]
    fn a_campaign_without_exposures_leaves_goal_and_checks_empty() {
        let stats = CampaignStats {
            campaign_id: "c0".into(),
            total: Some(VariantStats::default()),
            ..Default::default()
        };
        let rows = table(&stats_csv(&stats));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["arm"], "total");
        assert_eq!(rows[0]["sent"], "0");
        assert_eq!(rows[0]["goal_version"], "");
        assert_eq!(rows[0]["srm_mismatch"], "");
    }

    #[test]
    fn series_print_bucket_starts_in_utc_or_in_the_zone() {
        let point = |seconds, value| TimeSeriesPoint {
            start_time: Some(prost_types::Timestamp { seconds, nanos: 0 }),
            value,
        };
        // 2026-05-30T22:00:00Z is midnight in Paris (summer time).
        let points = [point(1_780_178_400, 3), point(1_780_264_800, 0)];
        assert_eq!(
            series_csv(&points, None),
            "start_time,value\n2026-05-30T22:00:00Z,3\n2026-05-31T22:00:00Z,0\n"
        );
        let paris = TimeZone::get("Europe/Paris").unwrap();
        assert_eq!(
            series_csv(&points, Some(&paris)),
            "start_time,value\n2026-05-31T00:00:00+02:00,3\n2026-06-01T00:00:00+02:00,0\n"
        );
    }

    #[test]
    fn arguments_make_the_request() {
        let parsed = args(&[
            "c1",
            "--start",
            "2026-05-01T00:00:00Z",
            "--goal-version",
            "2",
        ])
        .unwrap();
        assert_eq!(parsed.url, "http://default:1");
        assert_eq!(parsed.timeout, DEFAULT_TIMEOUT);
        let Query::Stats(request) = parsed.query else {
            panic!("a stats query")
        };
        assert_eq!(request.campaign_id, "c1");
        assert_eq!(request.start_time.unwrap().seconds, 1_777_593_600);
        assert_eq!(request.end_time, None);
        assert_eq!(request.goal_version, 2);

        let parsed = args(&[
            "--series",
            "clicks",
            "c1",
            "--start",
            "2026-05-01T00:00:00+02:00",
            "--bucket",
            "week",
            "--zone",
            "Europe/Paris",
            "--control",
            "--unique-users",
            "--url",
            "http://x:1",
            "--timeout-secs",
            "5",
        ])
        .unwrap();
        assert_eq!(parsed.url, "http://x:1");
        assert_eq!(parsed.timeout, Duration::from_secs(5));
        let Query::Series(request, Some(_)) = parsed.query else {
            panic!("a series query with a zone")
        };
        assert_eq!(request.metric, Metric::Clicks as i32);
        assert_eq!(request.bucket_size, BucketSize::Week as i32);
        assert_eq!(request.start_time.unwrap().seconds, 1_777_586_400);
        assert_eq!(request.time_zone, "Europe/Paris");
        assert!(request.control && request.unique_users);
    }

    #[test]
    fn wrong_arguments_say_what_is_wrong() {
        let error = |list: &[&str]| args(list).expect_err("refused");
        assert!(error(&[]).contains("name the campaign"));
        assert!(error(&["c1", "c2"]).contains("unexpected argument \"c2\""));
        assert!(error(&["c1", "--start", "yesterday"]).contains("RFC 3339"));
        assert!(
            error(&["c1", "--series", "opens", "--start", "2026-05-01T00:00:00Z"])
                .contains("unknown metric")
        );
        assert!(error(&["c1", "--series", "sent"]).contains("needs --start"));
        assert!(error(&["c1", "--bucket", "day"]).contains("goes with --series"));
        assert!(error(&["c1", "--zone", "Mars/Olympus"]).contains("unknown time zone"));
        assert!(error(&["c1", "--goal-version"]).contains("needs a value"));
        assert!(error(&["c1", "--timeout-secs", "0"]).contains("at least 1"));
        assert!(error(&["c1", "--url", "127.0.0.1:50055"]).contains("http://HOST:PORT"));
        assert!(
            error(&[
                "c1",
                "--series",
                "sent",
                "--start",
                "2026-05-01T00:00:00Z",
                "--variant",
                "a",
                "--control"
            ])
            .contains("not both")
        );
    }
}
