//! One SQL text for both backends.
//!
//! Statements are written once in PostgreSQL's `$N` style. SQLite accepts `?NNN` numbered
//! parameters with the same meaning, so [`Sql`] rewrites `$N` to `?N` (outside quotes) the first
//! time the SQLite text is needed and keeps it. Where the dialects really differ (row locks,
//! types), [`Sql::each`] carries one text per backend.
//!
//! The macros [`exec!`](crate::exec), [`fetch!`](crate::fetch) and [`scalar!`](crate::scalar)
//! bind the same values on either backend, so a repository function is written once.

use std::sync::{Arc, OnceLock};

/// A statement, written once, runnable on SQLite and PostgreSQL.
pub struct Sql {
    pg: &'static str,
    sqlite_override: Option<&'static str>,
    sqlite: OnceLock<Arc<str>>,
}

impl Sql {
    /// The same text on both backends (`$N` parameters).
    pub const fn new(text: &'static str) -> Self {
        Self { pg: text, sqlite_override: None, sqlite: OnceLock::new() }
    }

    /// A text per backend, where the dialects differ. The SQLite text may also use `$N`.
    pub const fn each(pg: &'static str, sqlite: &'static str) -> Self {
        Self { pg, sqlite_override: Some(sqlite), sqlite: OnceLock::new() }
    }

    /// The PostgreSQL text.
    pub fn pg(&self) -> &'static str {
        self.pg
    }

    /// The text for `backend`, for statements run inside a [`transaction!`](crate::transaction).
    pub fn text(&self, backend: crate::Backend) -> sqlx::AssertSqlSafe<Arc<str>> {
        match backend {
            crate::Backend::Sqlite => self.sqlite(),
            crate::Backend::Postgres => sqlx::AssertSqlSafe(self.pg.into()),
        }
    }

    /// The SQLite text (`?N` parameters), rewritten once.
    pub fn sqlite(&self) -> sqlx::AssertSqlSafe<Arc<str>> {
        // The text comes from a `&'static str` in this crate's source, never from input.
        sqlx::AssertSqlSafe(
            self.sqlite.get_or_init(|| numbered_to_sqlite(self.sqlite_override.unwrap_or(self.pg)).into()).clone(),
        )
    }
}

/// Rewrite `$N` parameters to `?N`, leaving quoted strings and identifiers alone.
pub fn numbered_to_sqlite(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                out.push(c);
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '$' && chars.peek().is_some_and(|n| n.is_ascii_digit()) => out.push('?'),
            None => out.push(c),
        }
    }
    out
}

/// A `LIKE` pattern for "contains `text`, any case", against a lower-cased column. The
/// wildcards `%` and `_` (and backslashes) are dropped from the text rather than escaped: escaping
/// differs between the dialects, and nobody searches a name or title for them.
pub fn contains_pattern(text: &str) -> String {
    format!("%{}%", text.to_lowercase().chars().filter(|c| !matches!(c, '%' | '_' | '\\')).collect::<String>())
}

/// Execute a statement that returns no rows; evaluates to `Result<u64, sqlx::Error>` (rows affected).
///
/// `exec!(pool, &STATEMENT, arg1, arg2)` where `pool` is a [`crate::db::Pool`].
#[macro_export]
macro_rules! exec {
    ($pool:expr, $sql:expr $(, $arg:expr)* $(,)?) => {
        match $pool {
            $crate::db::Pool::Sqlite(p) => sqlx::query($sql.sqlite())$(.bind($arg))*.execute(p).await.map(|r| r.rows_affected()),
            $crate::db::Pool::Postgres(p) => sqlx::query($sql.pg())$(.bind($arg))*.execute(p).await.map(|r| r.rows_affected()),
        }
    };
}

/// Fetch rows into a type that derives `sqlx::FromRow`:
/// `fetch!(pool, Row, fetch_all, &STATEMENT, args…)` (or `fetch_one`, `fetch_optional`).
#[macro_export]
macro_rules! fetch {
    ($pool:expr, $ty:ty, $method:ident, $sql:expr $(, $arg:expr)* $(,)?) => {
        match $pool {
            $crate::db::Pool::Sqlite(p) => sqlx::query_as::<_, $ty>($sql.sqlite())$(.bind($arg))*.$method(p).await,
            $crate::db::Pool::Postgres(p) => sqlx::query_as::<_, $ty>($sql.pg())$(.bind($arg))*.$method(p).await,
        }
    };
}

/// Fetch single-column values: `scalar!(pool, i64, fetch_one, &STATEMENT, args…)`.
#[macro_export]
macro_rules! scalar {
    ($pool:expr, $ty:ty, $method:ident, $sql:expr $(, $arg:expr)* $(,)?) => {
        match $pool {
            $crate::db::Pool::Sqlite(p) => sqlx::query_scalar::<_, $ty>($sql.sqlite())$(.bind($arg))*.$method(p).await,
            $crate::db::Pool::Postgres(p) => sqlx::query_scalar::<_, $ty>($sql.pg())$(.bind($arg))*.$method(p).await,
        }
    };
}

/// Run a block in one transaction on whichever backend, committing if it returns `Ok`:
/// `transaction!(db, |tx, dialect| { sqlx::query(S.text(dialect)).bind(x).execute(&mut *tx).await?; Ok(v) })`.
/// The block is compiled once per backend; it must evaluate to `Result<_, E>` where `E: From<sqlx::Error>`.
/// A `?` inside returns from the enclosing function (rolling back): wrap the call in an
/// `async {}` block to handle the error in place.
#[macro_export]
macro_rules! transaction {
    ($db:expr, |$tx:ident, $dialect:ident| $body:block) => {
        match $db.writer() {
            $crate::db::Pool::Sqlite(p) => {
                // IMMEDIATE: take the write lock when the transaction begins. A deferred one that
                // reads first and then writes cannot wait for another process's writer (SQLite
                // answers "database is locked" at once, to avoid a deadlock), so a CLI command
                // beside a running server, or a test's own handle beside the app's, would fail.
                let mut $tx = p.begin_with("BEGIN IMMEDIATE").await?;
                let $dialect = $crate::Backend::Sqlite;
                let result = $body;
                if result.is_ok() {
                    $tx.commit().await?;
                }
                result
            }
            $crate::db::Pool::Postgres(p) => {
                let mut $tx = p.begin().await?;
                let $dialect = $crate::Backend::Postgres;
                let result = $body;
                if result.is_ok() {
                    $tx.commit().await?;
                }
                result
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_are_rewritten_outside_quotes() {
        assert_eq!(
            numbered_to_sqlite("SELECT '$1', \"$2\" FROM t WHERE a = $1 AND b = $12 AND c = $"),
            "SELECT '$1', \"$2\" FROM t WHERE a = ?1 AND b = ?12 AND c = $"
        );
    }

    #[test]
    fn per_backend_text_is_used_for_sqlite() {
        let s = Sql::each("SELECT $1 FOR UPDATE", "SELECT $1");
        assert_eq!(s.pg(), "SELECT $1 FOR UPDATE");
        assert_eq!(&*s.sqlite().0, "SELECT ?1");
    }
}
