//! Delivery's errors and their one mapping to gRPC statuses.

use herald_runtime::FieldViolation;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request")]
    Invalid(Vec<FieldViolation>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
}

impl Error {
    /// INVALID_ARGUMENT for one field.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldViolation::new(field, description)])
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid(violations) => herald_runtime::invalid_argument(&violations),
            Error::NotFound(message) => tonic::Status::not_found(message),
            Error::PermissionDenied(message) => tonic::Status::permission_denied(message),
            Error::Database(e) => {
                tracing::error!(error = %e, "delivery database error");
                tonic::Status::unavailable("storage is unavailable, retry")
            }
        }
    }
}
