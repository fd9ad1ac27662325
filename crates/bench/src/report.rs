//! The settings block and the final table (plain or Markdown).

use hdrhistogram::Histogram;

use crate::analytics::{self, StatsResult};
use crate::args::{Backend, Settings};
use crate::campaigns::{self, CampaignsResult};
use crate::phases::{Drain, Results};
use crate::segments::{self, SegmentsResult};

/// What the in-process phases measured; a phase that did not run is `None`.
pub type InProcess<'a> = (Option<&'a SegmentsResult>, Option<&'a CampaignsResult>);

pub fn settings_lines(s: &Settings) -> Vec<(&'static str, String)> {
    let segments = (
        "segments",
        format!(
            "{} events x {} segments; backfill {} users x {} segments (in process)",
            thousands(s.segment_events as f64),
            segments::EVENT_SEGMENTS,
            thousands(s.segment_users as f64),
            segments::BACKFILL_SEGMENTS
        ),
    );
    let campaigns = (
        "campaigns",
        format!(
            "{} events x {} active campaigns, {} event names, {} users (in process)",
            thousands(s.campaign_events as f64),
            thousands(s.campaigns as f64),
            campaigns::EVENT_NAMES,
            thousands(campaigns::USERS as f64)
        ),
    );
    let stats = (
        "analytics stats",
        format!(
            "{} interactions of one campaign through RecordInteractions, then {} GetCampaignStats calls of each kind (lifetime; last {} days)",
            thousands(s.stats_interactions as f64),
            analytics::CALLS,
            analytics::RANGE_DAYS
        ),
    );
    if s.in_process_only() {
        let mut lines = Vec::new();
        if s.runs_segments() {
            lines.push(segments);
        }
        if s.runs_campaigns() {
            lines.push(campaigns);
        }
        return lines;
    }
    let backend = match s.backend {
        Some(Backend::Postgres) => {
            format!("postgres (one shared database, admin {})", s.postgres_url)
        }
        Some(Backend::Sqlite) => "sqlite (one file per service, temp dir)".into(),
        None => "auto".into(),
    };
    if s.stats_only {
        return vec![("backend", backend), stats];
    }
    let mut lines = vec![
        ("backend", backend),
        (
            "duration",
            format!(
                "{} s measured after {} s warm-up, per phase",
                s.duration.as_secs(),
                s.warmup.as_secs()
            ),
        ),
        (
            "unary concurrency",
            format!("{} callers over {} connections", s.concurrency, s.channels),
        ),
        (
            "batch",
            format!(
                "{} events per TrackBatch, {} callers",
                s.batch_size, s.batch_concurrency
            ),
        ),
        (
            "background rate",
            format!("{} events/s (unary Track, paced)", s.background_rate),
        ),
        (
            "latency probes",
            format!(
                "{} matching events/s over {} subscribed users",
                s.probe_rate, s.subscribers
            ),
        ),
        ("settle max", format!("{} s", s.settle_max.as_secs())),
        segments,
        campaigns,
    ];
    if s.runs_stats() {
        lines.push(stats);
    }
    lines
}

fn ms(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.1}")
    }
}

/// 12345.6 → "12,346".
fn thousands(x: f64) -> String {
    let n = x.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn quantiles(h: &Histogram<u64>, qs: &[f64]) -> String {
    qs.iter()
        .map(|q| ms(h.value_at_quantile(*q)))
        .collect::<Vec<_>>()
        .join(" / ")
}

fn drain(d: Drain, s: &Settings) -> String {
    match d.took {
        Some(t) => format!(
            "{} rows left, drained in {:.1} s",
            thousands(d.rows as f64),
            t.as_secs_f64()
        ),
        None => format!(
            "{} rows left, {} still queued after {} s (drained ~{} rows/s)",
            thousands(d.rows as f64),
            thousands(d.left as f64),
            s.settle_max.as_secs(),
            thousands(d.rows.saturating_sub(d.left) as f64 / d.waited.as_secs_f64().max(1e-3))
        ),
    }
}

/// What a run measured besides the Herald phases.
#[derive(Clone, Copy)]
pub struct Extras<'a> {
    pub idle: Option<&'a crate::idle::Idle>,
    pub stream_memory: Option<&'a crate::streams::StreamMemory>,
    pub raw: &'a crate::load::LoadResult,
    pub ready: &'a [(herald_runtime::ServiceKind, std::time::Duration)],
    pub timers: Option<&'a crate::timers::TimersResult>,
}

/// The final table: the services' figures (absent with `--segments-only`,
/// `--campaigns-only` or `--stats-only`), the campaign statistics', then the segment
/// evaluation's and the campaign targeting's.
pub fn table(
    s: &Settings,
    herald: Option<(Backend, &Results, &Extras)>,
    stats: Option<&StatsResult>,
    (segments, campaigns): InProcess,
) -> String {
    let where_ = herald
        .map(|(backend, _, _)| backend)
        .or(stats.map(|r| r.backend))
        .map_or("in process", Backend::name);
    let header = [
        "measurement".to_owned(),
        format!("Herald ({where_})"),
        "baseline (bare tonic, in-process)".to_owned(),
        "target".to_owned(),
    ];
    let mut rows: Vec<[String; 4]> = Vec::new();
    if let Some((_, r, extras)) = herald {
        service_rows(&mut rows, s, r, extras);
    }
    if let Some(stats) = stats {
        stats_rows(&mut rows, stats);
    }
    if let Some(segments) = segments {
        segment_rows(&mut rows, segments);
    }
    if let Some(campaigns) = campaigns {
        campaign_rows(&mut rows, campaigns);
    }
    render(&header, &rows, s.markdown)
}

fn campaign_rows(rows: &mut Vec<[String; 4]>, r: &CampaignsResult) {
    rows.push([
        format!(
            "campaign match + decision per event (on_event), {} active campaigns, {:.1} per event, {} events over {} users: p50 / p99 (µs)",
            thousands(r.campaigns as f64),
            r.per_event,
            thousands(r.events as f64),
            thousands(r.users as f64)
        ),
        format!(
            "{:.2} / {:.2}",
            campaigns::us(&r.decide, 0.5),
            campaigns::us(&r.decide, 0.99)
        ),
        "-".into(),
        "p50 <= 5".into(),
    ]);
    rows.push([
        "  index lookup alone p50 / p99 (ns); decisions, contents rendered, messages sent per event"
            .into(),
        format!(
            "{} / {}; {:.1}, {:.1}, {:.2}",
            r.matching.value_at_quantile(0.5),
            r.matching.value_at_quantile(0.99),
            r.decisions,
            r.renders,
            r.sends
        ),
        "-".into(),
        "-".into(),
    ]);
    rows.push([
        format!(
            "  {} campaigns compiled; indexed (ms)",
            thousands(r.campaigns as f64)
        ),
        format!(
            "{:.0}; {:.1}",
            campaigns::ms(r.compile),
            campaigns::ms(r.index)
        ),
        "-".into(),
        "-".into(),
    ]);
}

fn stats_rows(rows: &mut Vec<[String; 4]>, r: &StatsResult) {
    let aggregates = |n: Option<u64>| {
        n.map_or(String::new(), |n| {
            format!(", {} aggregate rows", thousands(n as f64))
        })
    };
    rows.push([
        format!(
            "GetCampaignStats, lifetime, one campaign with {} interactions ({} users, 2 variants + control{}): p50 / p99 (ms)",
            thousands(r.interactions as f64),
            thousands(r.users as f64),
            aggregates(r.aggregate_rows)
        ),
        quantiles(&r.lifetime, &[0.5, 0.99]),
        "-".into(),
        "-".into(),
    ]);
    rows.push([
        format!(
            "  the same over the last {} days (hourly aggregates): p50 / p99 (ms)",
            analytics::RANGE_DAYS
        ),
        quantiles(&r.range, &[0.5, 0.99]),
        "-".into(),
        "-".into(),
    ]);
    if let Some(small) = &r.small {
        rows.push([
            format!(
                "  the same at {} interactions{}: lifetime; last {} days, p50 / p99 (ms)",
                thousands(small.interactions as f64),
                aggregates(small.aggregate_rows),
                analytics::RANGE_DAYS
            ),
            format!(
                "{}; {}",
                quantiles(&small.lifetime, &[0.5, 0.99]),
                quantiles(&small.range, &[0.5, 0.99])
            ),
            "-".into(),
            "-".into(),
        ]);
    }
    rows.push([
        format!(
            "  recorded through RecordInteractions ({} per call, {} in flight), untimed: interactions/s; s",
            thousands(analytics::PER_CALL as f64),
            analytics::IN_FLIGHT
        ),
        format!(
            "{}; {:.1}",
            thousands(r.load_rate()),
            r.load.as_secs_f64()
        ),
        "-".into(),
        "-".into(),
    ]);
}

fn segment_rows(rows: &mut Vec<[String; 4]>, r: &SegmentsResult) {
    if let Some(e) = &r.eval {
        rows.push([
            format!(
                "segment evaluation per event (record_event + evaluate), {} segments, {} events over {} users: p50 / p99 (µs)",
                e.segments,
                thousands(e.events as f64),
                thousands(e.users as f64)
            ),
            format!(
                "{:.2} / {:.2}",
                segments::us(&e.per_event, 0.5),
                segments::us(&e.per_event, 0.99)
            ),
            "-".into(),
            "p50 <= 10".into(),
        ]);
        rows.push([
            "  segments a user is in, on average; encoded profile: bytes (mean; largest); decode + encode p50 (µs)"
                .into(),
            format!(
                "{:.1}; {}; {}; {:.2}",
                e.memberships,
                thousands(e.profile_bytes),
                thousands(e.profile_bytes_max as f64),
                segments::us(&e.codec, 0.5)
            ),
            "-".into(),
            "-".into(),
        ]);
    }
    if let Some(b) = &r.backfill {
        rows.push([
            format!(
                "segment backfill, {} users x {} segments, evaluation only: ms",
                thousands(b.users as f64),
                b.segments
            ),
            thousands(b.took.as_secs_f64() * 1000.0),
            "-".into(),
            "<= 2,000 (1,000,000 users)".into(),
        ]);
    }
}

fn service_rows(rows: &mut Vec<[String; 4]>, s: &Settings, r: &Results, extras: &Extras) {
    let Extras {
        idle,
        stream_memory,
        raw,
        ready,
        timers,
    } = *extras;
    rows.push([
        format!("durable Track, unary ({} callers): events/s", s.concurrency),
        thousands(r.unary.rate()),
        format!("{} calls/s (Health/Check)", thousands(r.echo_unary.rate())),
        "-".into(),
    ]);
    rows.push([
        "  Track latency p50 / p99 (ms)".into(),
        quantiles(&r.unary.hist, &[0.5, 0.99]),
        quantiles(&r.echo_unary.hist, &[0.5, 0.99]),
        "-".into(),
    ]);
    rows.push([
        format!(
            "durable TrackBatch ({} events x {} callers): events/s",
            s.batch_size, s.batch_concurrency
        ),
        thousands(r.batch.rate()),
        "-".into(),
        ">= 20,000".into(),
    ]);
    rows.push([
        format!(
            "  raw-insert baseline: rows/s into a bare table ({} per INSERT x {} tasks); TrackBatch as a share of it",
            s.batch_size, s.batch_concurrency
        ),
        format!(
            "{}; {:.2}",
            thousands(raw.rate()),
            r.batch.rate() / raw.rate().max(1.0)
        ),
        "-".into(),
        ">= 0.3".into(),
    ]);
    rows.push([
        "  TrackBatch call latency p50 / p99 (ms)".into(),
        quantiles(&r.batch.hist, &[0.5, 0.99]),
        "-".into(),
        "-".into(),
    ]);
    rows.push([
        "delivery hop, Deliver → open stream, Rust client: p50 / p99 (ms)".into(),
        quantiles(&r.hop.rust, &[0.5, 0.99]),
        format!(
            "{} (stream round trip p50 / p99)",
            quantiles(&r.echo_stream, &[0.5, 0.99])
        ),
        "-".into(),
    ]);
    rows.push([
        "  the same, Python client (grpcio): p50 / p99 (ms)".into(),
        match &r.hop.python {
            Ok(py) => format!("{:.2} / {:.2}", py.p50_ms, py.p99_ms),
            Err(_) => "skipped".into(),
        },
        "-".into(),
        "p50 <= 2".into(),
    ]);
    rows.push([
        format!(
            "event-to-stream p50 / p95 / p99 / max (ms), {} probes, {} lost",
            r.latency.sent, r.latency.lost
        ),
        format!(
            "{} / {}",
            quantiles(&r.latency.hist, &[0.5, 0.95, 0.99]),
            ms(r.latency.hist.max())
        ),
        format!(
            "{} / {} (stream round trip p50 / p95 / p99 / max)",
            quantiles(&r.echo_stream, &[0.5, 0.95, 0.99]),
            ms(r.echo_stream.max())
        ),
        "p99 <= 25".into(),
    ]);
    rows.push([
        "  the probe's Track call p50 / p99 (ms)".into(),
        quantiles(&r.latency_track, &[0.5, 0.99]),
        "-".into(),
        "-".into(),
    ]);
    rows.push([
        "  background load achieved: events/s".into(),
        format!(
            "{} of {} ({} errors)",
            thousands(r.background.rate()),
            thousands(f64::from(s.background_rate)),
            r.background.errors
        ),
        "-".into(),
        "1,000".into(),
    ]);
    rows.push([
        "  outbox backlog after the latency phase".into(),
        drain(r.drain_after_latency, s),
        "-".into(),
        "-".into(),
    ]);
    let pipeline = |events: u64, d: Drain| match d.through(events, r.phase_secs) {
        Some(eps) => format!(
            "{}; ~{} events/s through the whole pipeline",
            drain(d, s),
            thousands(eps)
        ),
        None => drain(d, s),
    };
    rows.push([
        "outbox backlog after the unary phase".into(),
        pipeline(r.unary.total_events, r.drain_after_unary),
        "-".into(),
        "-".into(),
    ]);
    rows.push([
        "outbox backlog after the batch phase".into(),
        pipeline(r.batch.total_events, r.drain_after_batch),
        "-".into(),
        "-".into(),
    ]);
    rows.push([
        "segment backfill through segmentation, storage included: users; ms; users/s".into(),
        format!(
            "{}; {:.0}; {}",
            thousands(r.backfill.users as f64),
            r.backfill.ms,
            thousands(r.backfill.users as f64 / (r.backfill.ms / 1000.0))
        ),
        "-".into(),
        "-".into(),
    ]);
    rows.push([
        "CPU cores used (services / bench / machine): unary, batch, latency".into(),
        format!(
            "{}; {}; {}",
            cores(&r.cpu_unary),
            cores(&r.cpu_batch),
            cores(&r.cpu_latency)
        ),
        "-".into(),
        "-".into(),
    ]);
    if let Some(idle) = idle {
        rows.push([
            format!(
                "idle, {} s without calls: CPU cores (five together); resident MiB (largest)",
                idle.secs
            ),
            format!("{:.3}; {:.1}", idle.cores(), idle.max_rss_mib()),
            "-".into(),
            "<= 0.01; <= 30".into(),
        ]);
    }
    if let Some(m) = stream_memory {
        rows.push([
            format!(
                "delivery memory per idle Subscribe stream, {} open: bytes (shared connections; a connection each)",
                thousands(m.streams as f64)
            ),
            format!(
                "{}; {}",
                thousands(m.shared_bytes),
                thousands(m.own_connection_bytes)
            ),
            "-".into(),
            "<= 10,000".into(),
        ]);
    }
    if let Some(slowest) = ready.iter().map(|(_, d)| d.as_millis()).max() {
        rows.push([
            "ready: ms from process start to SERVING (slowest of five, started together)".into(),
            slowest.to_string(),
            "-".into(),
            "<= 300".into(),
        ]);
    }
    if let Some(t) = timers {
        rows.push([
            format!(
                "durable timers scheduled, until {} pending: timers/s",
                thousands(t.pending as f64)
            ),
            thousands(t.schedule_rate),
            "-".into(),
            "-".into(),
        ]);
        rows.push([
            format!(
                "  {} due timers fired by one runner, {} pending: timers/s; timers another replica scheduled, fired late by p50 / p99 (ms)",
                thousands(t.due as f64),
                thousands(t.pending as f64)
            ),
            format!(
                "{}; {} / {}",
                thousands(t.fire_rate),
                t.lateness.value_at_quantile(0.5),
                t.lateness.value_at_quantile(0.99)
            ),
            "-".into(),
            "-".into(),
        ]);
    }
    if r.streams_ended > 0 {
        rows.push([
            "  Subscribe streams that ended during the phase".into(),
            r.streams_ended.to_string(),
            "-".into(),
            "0".into(),
        ]);
    }
}

fn cores(c: &crate::machine::CpuUse) -> String {
    let services: f64 = c.services.iter().map(|(_, x)| x).sum();
    format!("{services:.2} / {:.2} / {:.2}", c.bench, c.machine)
}

fn render(header: &[String; 4], rows: &[[String; 4]], markdown: bool) -> String {
    let mut out = String::new();
    if markdown {
        let line = |cells: &[String; 4]| format!("| {} |\n", cells.join(" | "));
        out.push_str(&line(header));
        out.push_str("|---|---:|---:|---|\n");
        for row in rows {
            out.push_str(&line(row));
        }
        return out;
    }
    let mut widths = [0usize; 4];
    for row in std::iter::once(header).chain(rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String; 4]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    out.push_str(&line(header));
    let rule: [String; 4] = widths.map(|w| "-".repeat(w));
    out.push_str(&line(&rule));
    for row in rows {
        out.push_str(&line(row));
    }
    out
}
