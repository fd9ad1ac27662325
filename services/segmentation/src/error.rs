//! Segmentation's errors and their one mapping to gRPC statuses.

use herald_runtime::FieldViolation;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request")]
    Invalid(Vec<FieldViolation>),
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid(violations) => herald_runtime::invalid_argument(&violations),
            Error::Database(e) => {
                tracing::error!(error = %e, "segmentation database error");
                tonic::Status::unavailable(
                    "storage is unavailable, retry with the same message ids",
                )
            }
        }
    }
}
