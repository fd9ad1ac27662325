//! `herald-bench`: durable ingest throughput and event-to-stream latency of the five Herald
//! services running as separate processes, each figure printed beside a bare-tonic
//! baseline measured in the same run; and, in process, the segment evaluation the
//! segmentation service does per event and per backfilled user, and the campaign
//! targeting (match and decision) trigger does per event; and, through the services, the
//! latency of a campaign's statistics over a million interactions. Run it with `just bench`
//! (see docs/benchmarks.md).
//!
//! It only ever targets 127.0.0.1, every load stops by itself at the end of its window, and
//! the service processes are killed (and a PostgreSQL bench database dropped) on exit,
//! Ctrl-C or panic.

#![forbid(unsafe_code)]

mod analytics;
mod args;
mod campaigns;
mod dbwork;
mod echo;
mod fleet;
mod hop;
mod idle;
mod json;
mod load;
mod machine;
mod phases;
mod progress;
mod raw;
mod report;
mod segments;
mod streams;
mod timers;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use args::{Backend, Parsed, Settings};

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let settings = match args::parse(&argv) {
        Ok(Parsed::Run(settings)) => *settings,
        Ok(Parsed::Help) => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("herald-bench: {e}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herald-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            result = run(settings) => result,
            // Dropping `run` drops the fleet guard: children killed, database dropped.
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
            _ = terminated() => Err(anyhow::anyhow!("terminated")),
        }
    });
    // Load tasks may still hold channels; do not wait for them.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM (e.g. `timeout`), so that is cleaned up like Ctrl-C.
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

async fn run(mut settings: Settings) -> anyhow::Result<()> {
    let backend = if settings.in_process_only() {
        None
    } else {
        // Fail early, before any work, when the service binary is missing.
        fleet::herald_binary()?;
        Some(*settings.backend.get_or_insert_with(|| {
            if fleet::postgres_answers() {
                Backend::Postgres
            } else {
                Backend::Sqlite
            }
        }))
    };

    println!("Herald benchmark");
    println!();
    println!("machine");
    for (k, v) in machine::describe() {
        println!("  {k:<8} {v}");
    }
    println!();
    println!("settings");
    for (k, v) in report::settings_lines(&settings) {
        println!("  {k:<20} {v}");
    }
    println!();

    // In process and first, while the machine is quiet.
    let segments = segment_phases(&settings).await?;
    if segments.is_some() {
        println!();
    }
    let campaigns = campaign_phase(&settings).await?;
    let in_process = (segments.as_ref(), campaigns.as_ref());
    let Some(backend) = backend else {
        return figures(&settings, None, None, in_process);
    };
    if campaigns.is_some() {
        println!();
    }

    let started = Instant::now();
    let fleet = fleet::Fleet::start(backend, &settings.postgres_url).await?;
    println!(
        "five services started as separate processes, SERVING after {:.1} s (logs in {})",
        started.elapsed().as_secs_f64(),
        fleet.dir().display()
    );
    let slowest = fleet.ready().iter().max_by_key(|(_, d)| *d);
    if let Some((kind, d)) = slowest {
        println!(
            "the slowest to answer SERVING was {kind}, {:.0} ms after its start",
            d.as_secs_f64() * 1000.0
        );
    }
    let ready = fleet.ready().to_vec();
    if settings.stats_only {
        let mut fleet = fleet;
        let stats = analytics::run(&mut fleet, &settings, backend).await?;
        fleet.check_alive()?;
        log_notes(&fleet);
        drop(fleet);
        return figures(&settings, None, Some(&stats), in_process);
    }
    let idle = if settings.idle.is_zero() {
        None
    } else {
        println!(
            "watching the idle services for {} s",
            settings.idle.as_secs()
        );
        let idle = idle::measure(&fleet, settings.idle).await;
        let rss: Vec<String> = idle
            .rss_mib
            .iter()
            .map(|(name, mib)| format!("{name} {mib:.1}"))
            .collect();
        println!(
            "  idle: {:.3} CPU cores for the five together; resident MiB: {}",
            idle.cores(),
            rss.join(", ")
        );
        Some(idle)
    };
    let stream_memory = if settings.idle_streams == 0 {
        None
    } else {
        println!(
            "opening {} idle Subscribe streams, over shared connections and then one connection each…",
            settings.idle_streams
        );
        let memory = streams::measure(&fleet, settings.idle_streams).await?;
        println!(
            "  delivery's resident memory per idle stream: {:.0} bytes shared, {:.0} bytes with a connection each",
            memory.shared_bytes, memory.own_connection_bytes
        );
        Some(memory)
    };
    println!(
        "[baseline] raw inserts: {} rows per INSERT, {} tasks, into a bare table of the same database…",
        settings.batch_size, settings.batch_concurrency
    );
    let raw = raw::measure(&fleet, &settings).await?;
    println!("  {:.0} rows/s, errors {}", raw.rate(), raw.errors);
    let mut fleet = fleet;
    let results = phases::run_all(&mut fleet, &settings).await?;
    // After the other phases: its million interactions would otherwise sit in their way.
    let stats = if settings.runs_stats() {
        println!();
        Some(analytics::run(&mut fleet, &settings, backend).await?)
    } else {
        None
    };
    fleet.check_alive()?;
    log_notes(&fleet);
    // The services are done: the timers phase has the machine to itself.
    drop(fleet);
    let timers = if settings.timers > 0 {
        println!();
        Some(
            timers::run(
                backend,
                &settings.postgres_url,
                settings.timers,
                settings.due_timers,
            )
            .await?,
        )
    } else {
        None
    };
    let extras = report::Extras {
        idle: idle.as_ref(),
        stream_memory: stream_memory.as_ref(),
        raw: &raw,
        ready: &ready,
        timers: timers.as_ref(),
    };
    figures(
        &settings,
        Some((backend, &results, &extras)),
        stats.as_ref(),
        in_process,
    )
}

/// Prints the first lines of every service log that is not empty.
fn log_notes(fleet: &fleet::Fleet) {
    println!();
    for (kind, lines) in fleet.log_lines() {
        if lines > 0 {
            println!("note: {kind} logged {lines} warning/error lines, first ones:");
            for line in fleet.log_head(kind, 3) {
                println!("    {line}");
            }
        }
    }
}

/// The segment evaluation phases, when any is asked for: CPU work on a blocking thread,
/// so Ctrl-C is still heard.
async fn segment_phases(settings: &Settings) -> anyhow::Result<Option<segments::SegmentsResult>> {
    let (events, users) = (settings.segment_events, settings.segment_users);
    if !settings.runs_segments() || (events == 0 && users == 0) {
        return Ok(None);
    }
    let result = tokio::task::spawn_blocking(move || segments::run(events, users)).await??;
    Ok(Some(result))
}

/// The campaign targeting phase, when asked for: CPU work on a blocking thread, like the
/// segment phases.
async fn campaign_phase(settings: &Settings) -> anyhow::Result<Option<campaigns::CampaignsResult>> {
    if !settings.runs_campaigns() {
        return Ok(None);
    }
    let (count, events) = (settings.campaigns as usize, settings.campaign_events);
    let result = tokio::task::spawn_blocking(move || campaigns::run(count, events)).await??;
    Ok(Some(result))
}

/// Prints the final table, and writes the JSON when asked.
fn figures(
    settings: &Settings,
    herald: Option<(Backend, &phases::Results, &report::Extras)>,
    stats: Option<&analytics::StatsResult>,
    in_process: report::InProcess,
) -> anyhow::Result<()> {
    println!();
    println!("{}", report::table(settings, herald, stats, in_process));
    if let Some(target) = &settings.json {
        let figures = json::figures(herald, stats, in_process);
        let text = serde_json::to_string_pretty(&figures)? + "\n";
        match target {
            Some(path) => {
                std::fs::write(path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("figures written to {}", path.display());
            }
            None => print!("{text}"),
        }
    }
    Ok(())
}
