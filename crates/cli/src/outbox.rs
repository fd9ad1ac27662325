//! `herald outbox list|replay`: what an operator does with outbox items that were parked
//! (the receiver could never accept them, or their retries ran out). It opens the
//! service's database with the service's configuration, like the service itself.

use std::path::PathBuf;
use std::process::ExitCode;

use herald_runtime::{Clock, Config, ServiceKind};

const USAGE: &str = "usage:
  herald outbox list   --service SERVICE [--config FILE] [--limit N]
  herald outbox replay --service SERVICE [--config FILE] (--all | --id ID [--id ID ...])
SERVICE is ingest, segmentation, trigger or delivery (the services with an outbox); the
database is the one that service is configured with (defaults, FILE or $HERALD_CONFIG,
HERALD_* variables). Replayed items are sent again at the relay's next scan (within 30 s).";

struct Args {
    service: ServiceKind,
    config: Option<PathBuf>,
    limit: usize,
    all: bool,
    ids: Vec<i64>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut service = None;
    let mut parsed = Args {
        service: ServiceKind::Ingest,
        config: None,
        limit: 100,
        all: false,
        ids: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--service" => {
                let name = value("--service")?;
                service = Some(
                    ServiceKind::parse(&name).ok_or_else(|| format!("unknown service {name:?}"))?,
                );
            }
            "--config" => parsed.config = Some(PathBuf::from(value("--config")?)),
            "--limit" => {
                parsed.limit = value("--limit")?
                    .parse()
                    .map_err(|_| "--limit must be a whole number".to_owned())?
            }
            "--all" => parsed.all = true,
            "--id" => parsed.ids.push(
                value("--id")?
                    .parse()
                    .map_err(|_| "--id must be a whole number".to_owned())?,
            ),
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    parsed.service = service.ok_or("--service is required")?;
    if parsed.service == ServiceKind::Analytics {
        return Err("analytics has no outbox".into());
    }
    Ok(parsed)
}

/// `herald outbox list|replay …`.
pub fn run(args: &[String]) -> ExitCode {
    let (command, rest) = match args.split_first() {
        Some((command, rest)) if command == "list" || command == "replay" => {
            (command.as_str(), rest)
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let parsed = match parse(rest) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("herald outbox: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Exactly one of the two: everything, or the named items.
    if command == "replay" && parsed.all != parsed.ids.is_empty() {
        eprintln!("herald outbox replay: give either --all or --id\n{USAGE}");
        return ExitCode::from(2);
    }
    let config = match Config::load(parsed.service, parsed.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("herald outbox: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herald outbox: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(command, &parsed, &config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald outbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: &str, args: &Args, config: &Config) -> anyhow::Result<()> {
    let db = herald_storage::connect(&config.database_url(args.service)).await?;
    let table = format!("{}_outbox", args.service.name());
    let clock = Clock::system();
    if command == "list" {
        let parked = herald_outbox::admin::list_parked(&db, &table, args.limit, clock).await?;
        if parked.is_empty() {
            println!("no parked items in {table}");
        }
        for item in parked {
            println!(
                "id {}  created {}  parked {}  attempts {}  {}",
                item.id,
                herald_core::time::from_ms(item.created_at),
                herald_core::time::from_ms(item.failed_at),
                item.attempts,
                item.last_error
            );
        }
    } else {
        let ids = (!args.all).then_some(args.ids.as_slice());
        let replayed = herald_outbox::admin::replay(&db, &table, ids, clock).await?;
        println!("{replayed} item(s) of {table} put back in line");
    }
    Ok(())
}
