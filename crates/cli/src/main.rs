//! `herald`: one binary for every way of running Herald.
//!
//! - `herald dev` starts all five services in one process on this machine, with SQLite
//!   under a local data directory and a demo workspace, and prints how to use them.
//! - `herald serve <service>` runs one service (what the container runs).
//! - `herald token --user <id>` mints an end-user token for the dev workspace.
//! - `herald keygen --workspace <id> --scopes ingest,admin` makes a server API key.
//! - `herald outbox list|replay --service <service>` shows and resends parked outbox items.
//! - `herald stats <campaign>` prints a campaign's analytics (or one metric's series) as CSV.

#![forbid(unsafe_code)]

mod demo;
mod dev;
mod outbox;
mod stats;
mod web;

use std::process::ExitCode;

use herald_runtime::ServiceKind;

const USAGE: &str = "usage:
  herald dev [--data-dir DIR] [--web-port PORT]
                                              run all five services locally (SQLite, demo workspace),
                                              with the demo app and the dashboard on http://127.0.0.1:50080
  herald serve <service> [--config FILE]      run one service: ingest|segmentation|trigger|delivery|analytics
  herald token --user ID [--ttl-hours N] [--data-dir DIR]
                                              mint an end-user token for the dev workspace
  herald keygen --workspace ID --scopes ingest,admin,internal
                                              print a new server API key and its config entry
  herald outbox list|replay --service SERVICE [--config FILE] [--all | --id ID ...]
                                              show or resend outbox items parked after failing
  herald stats CAMPAIGN_ID [--url URL] [--start TIME] [--end TIME] [--goal-version N]
               [--series METRIC [--bucket hour|day|week] [--zone ZONE] [--variant ID | --control]
               [--unique-users]]   a campaign's analytics as CSV ($HERALD_KEY, admin scope)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("dev") => dev::run(&args[1..]),
        Some("token") => dev::token(&args[1..]),
        Some("keygen") => herald_runtime::keygen(&args[1..]),
        Some("outbox") => outbox::run(&args[1..]),
        Some("stats") => stats::run(&args[1..]),
        Some("serve") => match args.get(1).and_then(|s| ServiceKind::parse(s)) {
            Some(kind) => serve(kind, &args[2..]),
            None => {
                eprintln!(
                    "herald serve: name a service: ingest, segmentation, trigger, delivery or analytics"
                );
                ExitCode::from(2)
            }
        },
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn serve(kind: ServiceKind, args: &[String]) -> ExitCode {
    let program = format!("herald serve {kind}");
    match kind {
        ServiceKind::Ingest => {
            herald_runtime::run_service(kind, &program, args, herald_ingest::serve)
        }
        ServiceKind::Segmentation => {
            herald_runtime::run_service(kind, &program, args, herald_segmentation::serve)
        }
        ServiceKind::Trigger => {
            herald_runtime::run_service(kind, &program, args, herald_trigger::serve)
        }
        ServiceKind::Delivery => {
            herald_runtime::run_service(kind, &program, args, herald_delivery::serve)
        }
        ServiceKind::Analytics => {
            herald_runtime::run_service(kind, &program, args, herald_analytics::serve)
        }
    }
}
