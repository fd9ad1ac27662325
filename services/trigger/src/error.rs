//! Trigger's errors and their one mapping to gRPC statuses.

use herald_runtime::FieldViolation;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request")]
    Invalid(Vec<FieldViolation>),
    #[error("{0} not found")]
    NotFound(String),
    /// The request is valid but the campaign is not in a state that allows it; the
    /// violations say what is missing, when that is the reason.
    #[error("failed precondition: {0}")]
    FailedPrecondition(String, Vec<FieldViolation>),
    #[error("aborted: {0}")]
    Aborted(String),
    #[error("stored campaign {0} cannot be decoded")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
}

impl Error {
    /// INVALID_ARGUMENT for one field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldViolation::new(field, description)])
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid(violations) => herald_runtime::invalid_argument(&violations),
            Error::NotFound(what) => tonic::Status::not_found(format!("{what} not found")),
            Error::FailedPrecondition(message, violations) if violations.is_empty() => {
                tonic::Status::failed_precondition(message)
            }
            Error::FailedPrecondition(message, violations) => {
                let mut details = ErrorDetails::new();
                for v in &violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                let reasons = violations
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                tonic::Status::with_error_details(
                    Code::FailedPrecondition,
                    format!("{message}: {reasons}"),
                    details,
                )
            }
            Error::Aborted(message) => tonic::Status::aborted(message),
            Error::Corrupt(id) => {
                tracing::error!(campaign_id = %id, "stored campaign cannot be decoded");
                tonic::Status::internal("internal error")
            }
            Error::Database(e) => {
                tracing::error!(error = %e, "trigger database error");
                tonic::Status::unavailable("storage is unavailable, retry")
            }
        }
    }
}
