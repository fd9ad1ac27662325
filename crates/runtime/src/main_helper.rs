//! The `main` of every service binary: arguments, config, telemetry, bind, serve.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use tokio::net::TcpListener;

use crate::auth::{Scope, generate_api_key};
use crate::config::{Config, ServiceKind};
use crate::server::Launch;
use herald_core::Clock;

const USAGE: &str = "usage:
  herald-<service> [--config FILE]        serve (config: defaults, FILE or $HERALD_CONFIG, HERALD_* env)
  herald-<service> keygen --workspace ID --scopes ingest,admin,internal
                                          print a new API key and the config entry holding its hash";

/// Runs a service binary: parses arguments, loads config (exiting 2 naming the bad key),
/// starts telemetry, binds the listen address and calls `serve` on the system clock
/// until SIGTERM/SIGINT.
pub fn service_main<F, Fut>(kind: ServiceKind, serve: F) -> ExitCode
where
    F: FnOnce(Launch) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let args: Vec<String> = std::env::args().skip(1).collect();
    run_service(kind, &format!("herald-{kind}"), &args, serve)
}

/// [`service_main`] with explicit arguments (after the program or subcommand name), for
/// binaries that host several services, such as `herald serve <service>`.
pub fn run_service<F, Fut>(kind: ServiceKind, program: &str, args: &[String], serve: F) -> ExitCode
where
    F: FnOnce(Launch) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut config_file: Option<PathBuf> = None;
    match args.first().map(String::as_str) {
        None => {}
        Some("--config") if args.len() == 2 => config_file = Some(PathBuf::from(&args[1])),
        Some("keygen") => return keygen(&args[1..]),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(_) => {
            eprintln!("{program}: unexpected arguments {args:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let config = match Config::load(kind, config_file.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{program}: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("{program}: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let _telemetry =
            crate::telemetry::init(kind.name(), &config.log, config.otlp_endpoint.as_deref())?;
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen_addr))?;
        let shutdown = crate::shutdown::on_signal();
        serve(Launch {
            config,
            clock: Clock::system(),
            listener,
            shutdown,
        })
        .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{program}: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `keygen --workspace ID --scopes a,b`: prints a new API key and its config entry.
pub fn keygen(args: &[String]) -> ExitCode {
    let mut workspace = None;
    let mut scopes = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match (arg.as_str(), it.next()) {
            ("--workspace", Some(w)) => workspace = Some(w.clone()),
            ("--scopes", Some(s)) => {
                for name in s.split(',') {
                    match name.trim() {
                        "ingest" => scopes.push(Scope::Ingest),
                        "admin" => scopes.push(Scope::Admin),
                        "internal" => scopes.push(Scope::Internal),
                        other => {
                            eprintln!("unknown scope {other:?} (expected ingest, admin, internal)");
                            return ExitCode::from(2);
                        }
                    }
                }
            }
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(workspace), false) = (workspace, scopes.is_empty()) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let (key, entry) = generate_api_key(&workspace, &scopes);
    let scopes: Vec<String> = entry
        .scopes
        .iter()
        .map(|s| format!("{:?}", format!("{s:?}").to_lowercase()))
        .collect();
    println!(
        "# API key (shown once; send as `authorization: Bearer <key>`):\n# {}",
        key.expose()
    );
    println!(
        "[[api_keys]]\nworkspace = {:?}\nscopes = [{}]\nsha256 = {:?}",
        entry.workspace,
        scopes.join(", "),
        entry.sha256
    );
    ExitCode::SUCCESS
}
