//! `herald-segmentation`: serves the segmentation service.

fn main() -> std::process::ExitCode {
    herald_runtime::service_main(
        herald_runtime::ServiceKind::Segmentation,
        herald_segmentation::serve,
    )
}
