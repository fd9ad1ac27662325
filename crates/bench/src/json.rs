//! `--json FILE`: every figure of a run under a stable name, for scripts and comparisons.
//! Latencies are in milliseconds, rates per second, memory in MiB, unless the name says
//! otherwise (`_us`, `_ns`, `_bytes`); a figure the run did not measure (a skipped phase, a
//! backlog that did not drain) is absent.

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};

use crate::analytics::StatsResult;
use crate::args::Backend;
use crate::campaigns::{self, CampaignsResult};
use crate::phases::Results;
use crate::report::{Extras, InProcess};
use crate::segments::{self, SegmentsResult};

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// The figures of the services' phases (absent with `--segments-only`,
/// `--campaigns-only` or `--stats-only`), of the campaign statistics phase, of the segment
/// phases and of the campaign phase.
pub fn figures(
    herald: Option<(Backend, &Results, &Extras)>,
    stats: Option<&StatsResult>,
    (segments, campaigns): InProcess,
) -> Value {
    let mut f = Map::new();
    if let Some((backend, r, extras)) = herald {
        service_figures(&mut f, backend, r, extras);
    }
    if let Some(s) = stats {
        stats_figures(&mut f, s);
    }
    if let Some(s) = segments {
        segment_figures(&mut f, s);
    }
    if let Some(c) = campaigns {
        campaign_figures(&mut f, c);
    }
    Value::Object(f)
}

fn stats_figures(f: &mut Map<String, Value>, s: &StatsResult) {
    f.entry("backend").or_insert(json!(s.backend.name()));
    let mut put = |name: &str, value: Value| {
        f.insert(name.to_owned(), value);
    };
    put("stats_interactions", json!(s.interactions));
    put("stats_users", json!(s.users));
    put("stats_goal_events", json!(s.events));
    put("stats_conversions", json!(s.conversions));
    put("stats_load_s", json!(s.load.as_secs_f64()));
    put("stats_load_per_s", json!(s.load_rate()));
    put("stats_load_retries", json!(s.retries));
    put("stats_lifetime_p50_ms", json!(ms(&s.lifetime, 0.5)));
    put("stats_lifetime_p99_ms", json!(ms(&s.lifetime, 0.99)));
    put("stats_range_p50_ms", json!(ms(&s.range, 0.5)));
    put("stats_range_p99_ms", json!(ms(&s.range, 0.99)));
    if let Some(n) = s.aggregate_rows {
        put("stats_aggregate_rows", json!(n));
    }
    if let Some(small) = &s.small {
        put("stats_small_interactions", json!(small.interactions));
        put(
            "stats_small_lifetime_p50_ms",
            json!(ms(&small.lifetime, 0.5)),
        );
        put(
            "stats_small_lifetime_p99_ms",
            json!(ms(&small.lifetime, 0.99)),
        );
        put("stats_small_range_p50_ms", json!(ms(&small.range, 0.5)));
        put("stats_small_range_p99_ms", json!(ms(&small.range, 0.99)));
        if let Some(n) = small.aggregate_rows {
            put("stats_small_aggregate_rows", json!(n));
        }
    }
}

fn campaign_figures(f: &mut Map<String, Value>, c: &CampaignsResult) {
    let mut put = |name: &str, value: Value| {
        f.insert(name.to_owned(), value);
    };
    put("campaigns", json!(c.campaigns));
    put("campaigns_per_event", json!(c.per_event));
    put("campaigns_per_event_max", json!(c.per_event_max));
    put("campaigns_cancel_per_event", json!(c.cancel_per_event));
    put("campaign_event_names", json!(c.event_names));
    put("campaign_users", json!(c.users));
    put("campaign_events", json!(c.events));
    put(
        "campaign_decide_p50_us",
        json!(campaigns::us(&c.decide, 0.5)),
    );
    put(
        "campaign_decide_p99_us",
        json!(campaigns::us(&c.decide, 0.99)),
    );
    put(
        "campaign_match_p50_ns",
        json!(c.matching.value_at_quantile(0.5)),
    );
    put(
        "campaign_match_p99_ns",
        json!(c.matching.value_at_quantile(0.99)),
    );
    put("campaigns_compile_ms", json!(campaigns::ms(c.compile)));
    put("campaigns_index_ms", json!(campaigns::ms(c.index)));
    put("campaign_decisions_per_event", json!(c.decisions));
    put("campaign_renders_per_event", json!(c.renders));
    put("campaign_sends_per_event", json!(c.sends));
}

fn segment_figures(f: &mut Map<String, Value>, s: &SegmentsResult) {
    let mut put = |name: &str, value: Value| {
        f.insert(name.to_owned(), value);
    };
    if let Some(e) = &s.eval {
        put(
            "segment_eval_p50_us",
            json!(segments::us(&e.per_event, 0.5)),
        );
        put(
            "segment_eval_p99_us",
            json!(segments::us(&e.per_event, 0.99)),
        );
        put("segment_eval_events", json!(e.events));
        put("segment_eval_segments", json!(e.segments));
        put("segment_memberships_per_user", json!(e.memberships));
        put("segment_profile_bytes", json!(e.profile_bytes));
        put("segment_profile_bytes_max", json!(e.profile_bytes_max));
        put(
            "segment_profile_codec_p50_us",
            json!(segments::us(&e.codec, 0.5)),
        );
    }
    if let Some(b) = &s.backfill {
        put(
            "segment_backfill_eval_ms",
            json!(b.took.as_secs_f64() * 1000.0),
        );
        put("segment_backfill_users", json!(b.users));
        put("segment_backfill_segments", json!(b.segments));
    }
}

fn service_figures(f: &mut Map<String, Value>, backend: Backend, r: &Results, extras: &Extras) {
    let Extras {
        idle,
        stream_memory,
        raw,
        ready,
        timers,
    } = *extras;
    let mut put = |name: &str, value: Value| {
        f.insert(name.to_owned(), value);
    };
    put("backend", json!(backend.name()));
    put("ingest_unary_eps", json!(r.unary.rate()));
    put("ingest_unary_p50_ms", json!(ms(&r.unary.hist, 0.5)));
    put("ingest_unary_p99_ms", json!(ms(&r.unary.hist, 0.99)));
    put("ingest_batch_eps", json!(r.batch.rate()));
    put("raw_insert_rows_per_s", json!(raw.rate()));
    put(
        "ingest_batch_raw_ratio",
        json!(r.batch.rate() / raw.rate().max(1.0)),
    );
    put("ingest_batch_call_p50_ms", json!(ms(&r.batch.hist, 0.5)));
    put("ingest_batch_call_p99_ms", json!(ms(&r.batch.hist, 0.99)));
    put("baseline_unary_calls_per_s", json!(r.echo_unary.rate()));
    put("baseline_stream_p50_ms", json!(ms(&r.echo_stream, 0.5)));
    put("baseline_stream_p99_ms", json!(ms(&r.echo_stream, 0.99)));
    put("delivery_hop_p50_ms", json!(ms(&r.hop.rust, 0.5)));
    put("delivery_hop_p99_ms", json!(ms(&r.hop.rust, 0.99)));
    put("deliver_call_p50_ms", json!(ms(&r.hop.deliver_call, 0.5)));
    if let Ok(py) = &r.hop.python {
        put("delivery_hop_python_p50_ms", json!(py.p50_ms));
        put("delivery_hop_python_p99_ms", json!(py.p99_ms));
        put("deliver_call_python_p50_ms", json!(py.deliver_p50_ms));
    }
    put("e2s_p50_ms", json!(ms(&r.latency.hist, 0.5)));
    put("e2s_p95_ms", json!(ms(&r.latency.hist, 0.95)));
    put("e2s_p99_ms", json!(ms(&r.latency.hist, 0.99)));
    put("e2s_max_ms", json!(r.latency.hist.max() as f64 / 1000.0));
    put("e2s_probes", json!(r.latency.sent));
    put("e2s_lost", json!(r.latency.lost));
    put("background_achieved_eps", json!(r.background.rate()));
    put("background_errors", json!(r.background.errors));
    let unary = r
        .drain_after_unary
        .through(r.unary.total_events, r.phase_secs);
    let batch = r
        .drain_after_batch
        .through(r.batch.total_events, r.phase_secs);
    if let Some(eps) = unary {
        put("pipeline_unary_eps", json!(eps));
    }
    if let Some(eps) = batch {
        put("pipeline_batch_eps", json!(eps));
    }
    if let Some(eps) = unary.into_iter().chain(batch).reduce(f64::max) {
        put("pipeline_eps", json!(eps));
    }
    put("segment_backfill_storage_users", json!(r.backfill.users));
    put("segment_backfill_storage_ms", json!(r.backfill.ms));
    put("backlog_after_batch_rows", json!(r.drain_after_batch.rows));
    put("backlog_after_batch_left", json!(r.drain_after_batch.left));
    let cores = |c: &crate::machine::CpuUse| c.services.iter().map(|(_, x)| x).sum::<f64>();
    put("services_cpu_cores_unary", json!(cores(&r.cpu_unary)));
    put("services_cpu_cores_batch", json!(cores(&r.cpu_batch)));
    put("services_cpu_cores_latency", json!(cores(&r.cpu_latency)));
    put("machine_cpu_cores_unary", json!(r.cpu_unary.machine));
    for (phase, work) in [("latency", &r.work_latency), ("unary", &r.work_unary)] {
        let Some(work) = work else { continue };
        put(
            &format!("pg_commits_per_event_{phase}"),
            json!(work.commits),
        );
        let written: f64 = work.tables.iter().map(|(_, d)| d[0] + d[1] + d[2]).sum();
        put(
            &format!("pg_rows_written_per_event_{phase}"),
            json!(written),
        );
        let seq_read: f64 = work.tables.iter().map(|(_, d)| d[4]).sum();
        put(
            &format!("pg_rows_seq_read_per_event_{phase}"),
            json!(seq_read),
        );
    }
    if let Some(idle) = idle {
        put("idle_cpu_cores", json!(idle.cores()));
        put("max_idle_rss_mib", json!(idle.max_rss_mib()));
        let rss: Map<String, Value> = idle
            .rss_mib
            .iter()
            .map(|(name, mib)| ((*name).to_owned(), json!(mib)))
            .collect();
        put("idle_rss_mib", Value::Object(rss));
    }
    if let Some(m) = stream_memory {
        put("idle_streams", json!(m.streams));
        put("stream_bytes_idle", json!(m.shared_bytes));
        put(
            "stream_bytes_idle_own_connection",
            json!(m.own_connection_bytes),
        );
    }
    let ready_ms = |d: &std::time::Duration| d.as_secs_f64() * 1000.0;
    if let Some(slowest) = ready.iter().map(|(_, d)| ready_ms(d)).reduce(f64::max) {
        put("ready_ms", json!(slowest));
    }
    let by_service: Map<String, Value> = ready
        .iter()
        .map(|(kind, d)| (kind.name().to_owned(), json!(ready_ms(d))))
        .collect();
    put("ready_ms_by_service", Value::Object(by_service));
    if let Some(t) = timers {
        put("timers_pending", json!(t.pending));
        put("timers_schedule_per_s", json!(t.schedule_rate));
        put("timers_fire_per_s", json!(t.fire_rate));
        put(
            "timers_late_p50_ms",
            json!(t.lateness.value_at_quantile(0.5)),
        );
        put(
            "timers_late_p99_ms",
            json!(t.lateness.value_at_quantile(0.99)),
        );
    }
}
