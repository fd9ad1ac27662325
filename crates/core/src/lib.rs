//! What every part of Herald shares and none of it should write twice: the one [`Clock`]
//! (system or manual), timestamp conversions, id generation, the limits of the contracts
//! and [`FieldViolation`]s with the length checks that produce them.
//!
//! Pure: no tonic, no database, no IO. Code takes `now` from a [`Clock`] it was given.

#![forbid(unsafe_code)]

pub mod clock;
pub mod ids;
pub mod limits;
pub mod time;
pub mod violation;

pub use clock::Clock;
pub use jiff::Timestamp;
pub use violation::{FieldViolation, Len, Violations};
