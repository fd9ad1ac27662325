//! `herald-delivery`: serves the delivery service.

fn main() -> std::process::ExitCode {
    herald_runtime::service_main(
        herald_runtime::ServiceKind::Delivery,
        herald_delivery::serve,
    )
}
