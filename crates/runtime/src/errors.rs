//! Building the statuses clients see for bad input: INVALID_ARGUMENT naming the field,
//! with `google.rpc.BadRequest` field violations in the details.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// One wrong field: its path (e.g. `events[3].name`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        FieldViolation {
            field: field.into(),
            description: description.into(),
        }
    }

    /// The same violation under a parent path, e.g. `name` → `events[3].name`.
    pub fn nested(self, parent: &str) -> Self {
        FieldViolation {
            field: format!("{parent}.{}", self.field),
            ..self
        }
    }
}

impl std::fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// INVALID_ARGUMENT listing every violation in the message and in `BadRequest` details.
pub fn invalid_argument(violations: &[FieldViolation]) -> Status {
    let message = format!(
        "invalid {}",
        violations
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    );
    let mut details = ErrorDetails::new();
    for v in violations {
        details.add_bad_request_violation(v.field.clone(), v.description.clone());
    }
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// UNIMPLEMENTED for an RPC of the contract that a later Herald version implements.
pub fn not_yet_implemented(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is part of the v1 contract but not implemented in this Herald version yet"
    ))
}
