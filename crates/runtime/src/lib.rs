//! What every Herald service shares, so that no service repeats it: typed configuration,
//! the gRPC server assembly (health, reflection, gRPC-Web, the tower stack, graceful
//! shutdown), authentication, deadlines, outgoing clients, telemetry, and the one error
//! vocabulary with its conversion to gRPC statuses.

#![forbid(unsafe_code)]

mod allocator;
pub mod auth;
pub mod client;
pub mod config;
pub mod deadline;
pub mod error;
mod main_helper;
pub mod panic;
pub mod secret;
pub mod server;
pub mod shed;
pub mod shutdown;
pub mod telemetry;

pub use auth::{Access, AccessPolicy, Caller, Scope, require_workspace};
pub use client::Downstream;
pub use config::{Config, ConfigError, ServiceKind};
pub use deadline::Deadline;
pub use error::{Error, FieldViolation, invalid_argument, not_yet_implemented};
pub use herald_core::Clock;
pub use main_helper::{keygen, run_service, service_main};
pub use secret::Secret;
pub use server::{Launch, ReadinessCheck, ServiceSpec, serve};
pub use tokio_util::sync::CancellationToken;
