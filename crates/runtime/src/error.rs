//! The one error vocabulary of Herald's services and its one conversion to a gRPC
//! `Status`. Handlers return [`Error`]; none builds a `Status` itself.
//!
//! - Bad input is INVALID_ARGUMENT naming every wrong field (`google.rpc.BadRequest`).
//! - A transient database failure (connection lost, pool exhausted, serialization
//!   conflict, SQLite busy) is UNAVAILABLE: the caller retries the same request.
//! - Corrupt stored data and bugs are INTERNAL: the client gets a generic message, the
//!   server log gets the full cause chain, inside the call's span (RPC and workspace).

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub use herald_core::FieldViolation;
use herald_core::violation::describe;

/// A boxed cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed: every wrong field.
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// What the request names does not exist (in the caller's workspace).
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// The request is valid but the state does not allow it; the violations say what
    /// is missing, when that is the reason.
    #[error("{message}")]
    FailedPrecondition {
        message: String,
        violations: Vec<FieldViolation>,
    },
    /// A concurrent change won; retry the whole read-modify-write.
    #[error("{0}")]
    Aborted(String),
    /// The caller went past a limit (a rate, a quota); the message names it.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A dependency failed transiently; retry the same request.
    #[error("unavailable")]
    Unavailable(#[source] BoxError),
    /// A bug or corrupt stored data; retrying will not help.
    #[error("internal error")]
    Internal(#[source] BoxError),
}

/// A cause that is only a message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Message(pub String);

impl Error {
    /// INVALID_ARGUMENT for one field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Error {
        Error::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    /// FAILED_PRECONDITION without field details.
    pub fn failed_precondition(message: impl Into<String>) -> Error {
        Error::FailedPrecondition {
            message: message.into(),
            violations: Vec::new(),
        }
    }

    /// INTERNAL: stored data that cannot be read back (`what` says which).
    pub fn corrupt(what: impl Into<String>) -> Error {
        Error::Internal(Box::new(Message(format!(
            "corrupt stored data: {}",
            what.into()
        ))))
    }

    /// INTERNAL with a message as its cause.
    pub fn internal(message: impl Into<String>) -> Error {
        Error::Internal(Box::new(Message(message.into())))
    }

    /// The gRPC code this error answers with.
    pub fn code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::FailedPrecondition { .. } => Code::FailedPrecondition,
            Error::Aborted(_) => Code::Aborted,
            Error::ResourceExhausted(_) => Code::ResourceExhausted,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Internal(_) => Code::Internal,
        }
    }
}

impl From<Vec<FieldViolation>> for Error {
    fn from(violations: Vec<FieldViolation>) -> Self {
        Error::InvalidArgument(violations)
    }
}

/// The cause chain of `error`, outermost first, joined with `: `.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(violations) => invalid_argument(&violations),
            Error::NotFound(message) => Status::not_found(message),
            Error::PermissionDenied(message) => Status::permission_denied(message),
            Error::FailedPrecondition {
                message,
                violations,
            } if violations.is_empty() => Status::failed_precondition(message),
            Error::FailedPrecondition {
                message,
                violations,
            } => with_violations(
                Code::FailedPrecondition,
                format!("{message}: {}", describe(&violations)),
                &violations,
            ),
            Error::Aborted(message) => Status::aborted(message),
            Error::ResourceExhausted(message) => Status::resource_exhausted(message),
            Error::Unavailable(cause) => {
                tracing::warn!(error = %chain(cause.as_ref()), "call failed on a transient error");
                Status::unavailable("temporarily unavailable, retry the same request")
            }
            Error::Internal(cause) => {
                tracing::error!(error = %chain(cause.as_ref()), "call failed on an internal error");
                Status::internal("internal error")
            }
        }
    }
}

fn with_violations(code: Code, message: String, violations: &[FieldViolation]) -> Status {
    let mut details = ErrorDetails::new();
    for v in violations {
        details.add_bad_request_violation(v.field.clone(), v.description.clone());
    }
    Status::with_error_details(code, message, details)
}

/// INVALID_ARGUMENT listing every violation in the message and in `BadRequest` details.
pub fn invalid_argument(violations: &[FieldViolation]) -> Status {
    with_violations(
        Code::InvalidArgument,
        format!("invalid {}", describe(violations)),
        violations,
    )
}

/// UNIMPLEMENTED for an RPC of the contract that a later Herald version implements.
pub fn not_yet_implemented(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is part of the v1 contract but not implemented in this Herald version yet"
    ))
}

impl From<sea_orm::DbErr> for Error {
    /// Transient failures (the database unreachable, the pool exhausted, a serialization
    /// failure or deadlock, SQLite busy) are UNAVAILABLE; everything else, from SQL a bug
    /// got wrong to a value that does not decode, is INTERNAL.
    fn from(error: sea_orm::DbErr) -> Self {
        if is_transient(&error) {
            Error::Unavailable(Box::new(error))
        } else {
            Error::Internal(Box::new(error))
        }
    }
}

/// Whether a database error is worth retrying as it is.
pub fn is_transient(error: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx};
    let sqlx_error = match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    match sqlx_error.as_ref() {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // PostgreSQL: connection exceptions (08), serialization failure, deadlock,
            // insufficient resources (53), operator intervention (57: shutdown,
            // cannot connect now), lock not available. SQLite: BUSY (5), LOCKED (6) and
            // their extended codes.
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || matches!(code.as_ref(), "40001" | "40P01" | "55P03")
                || code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_tell_the_client_nothing() {
        let status = Status::from(Error::corrupt("campaign cmp_1 body"));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
        let status = Status::from(Error::from(sea_orm::DbErr::Custom("x".into())));
        assert_eq!(status.code(), Code::Internal);
    }

    #[test]
    fn a_limit_is_resource_exhausted_with_its_message() {
        let status = Status::from(Error::ResourceExhausted("past 120 calls per minute".into()));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.message(), "past 120 calls per minute");
    }

    #[test]
    fn connection_failures_are_unavailable() {
        let error = sea_orm::DbErr::Conn(sea_orm::RuntimeErr::Internal("gone".into()));
        assert_eq!(Error::from(error).code(), Code::Unavailable);
    }

    #[test]
    fn the_cause_chain_is_kept_for_the_log() {
        let error = Error::from(sea_orm::DbErr::Custom("row 7 does not decode".into()));
        let Error::Internal(cause) = &error else {
            panic!("internal expected")
        };
        assert!(chain(cause.as_ref()).contains("row 7 does not decode"));
    }

    #[test]
    fn violations_travel_as_bad_request_details() {
        let status = Status::from(Error::invalid("events[1].name", "is required"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("events[1].name"));
        let details = status.get_details_bad_request().expect("details");
        assert_eq!(details.field_violations[0].field, "events[1].name");
    }
}
