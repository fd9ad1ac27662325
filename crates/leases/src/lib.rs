//! Leased work rows: the primitive under the outbox relay and durable timers.
//!
//! A table of work items (each with `id`, `created_at`, `lease_owner`, `lease_until`,
//! `attempts`, `failed_at`, `last_error`) is worked by several replicas without two of
//! them taking the same row at once: a replica *claims* rows by writing its name and a
//! lease expiry into them in one statement (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so
//! claimers never wait for each other; SQLite serialises writers anyway), *renews* the
//! lease while it works, *completes* (deletes) what it finished, and *parks* what can
//! never succeed, keeping it with its last error until an operator replays it. A row
//! whose lease ran out (its replica died) can be claimed by any replica; a replica
//! restarted under the same name takes its own rows back at once.
//!
//! Times are milliseconds since the epoch read from the injected [`Clock`].

#![forbid(unsafe_code)]

mod table;

pub use table::{Claim, LeasedTable, Parked, id_column, lease_columns};
