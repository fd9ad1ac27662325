//! `herald-analytics`: serves the analytics service.

fn main() -> std::process::ExitCode {
    herald_runtime::service_main(
        herald_runtime::ServiceKind::Analytics,
        herald_analytics::serve,
    )
}
