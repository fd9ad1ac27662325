//! `herald-ingest`: serves the ingest service.

fn main() -> std::process::ExitCode {
    herald_runtime::service_main(herald_runtime::ServiceKind::Ingest, herald_ingest::serve)
}
