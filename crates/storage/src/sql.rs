//! Raw SQL written once for both backends: placeholders and statements.

use sea_orm::{DbBackend, Statement, Value};

/// `n` placeholders starting at parameter `first` (1-based), comma separated: `$3, $4`
/// on PostgreSQL, `?, ?` on SQLite.
pub fn params(backend: DbBackend, first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| match backend {
            DbBackend::Postgres => format!("${i}"),
            _ => "?".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The placeholder of parameter `i` (1-based).
pub fn param(backend: DbBackend, i: usize) -> String {
    params(backend, i, 1)
}

/// A statement for `backend`.
pub fn statement(backend: DbBackend, sql: String, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(backend, sql, values)
}

/// Checks that `name` can be spliced into SQL as an identifier.
///
/// # Panics
/// When it cannot: table names come from code, never from input.
pub fn assert_identifier(name: &str) {
    assert!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "{name:?} is not an SQL identifier"
    );
}

/// The physical row id column used to delete in bounded batches: `ctid` on
/// PostgreSQL, `rowid` on SQLite.
pub fn row_id(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "ctid",
        _ => "rowid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_backend() {
        assert_eq!(params(DbBackend::Postgres, 3, 2), "$3, $4");
        assert_eq!(params(DbBackend::Sqlite, 3, 2), "?, ?");
    }
}
