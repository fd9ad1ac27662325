//! `herald-trigger`: serves the trigger service.

fn main() -> std::process::ExitCode {
    herald_runtime::service_main(herald_runtime::ServiceKind::Trigger, herald_trigger::serve)
}
