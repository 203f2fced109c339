//! careport's persistence: one [`Db`] over SQLite (embedded, the default) or PostgreSQL
//! (clustered), the embedded migrations, the durable job queue, accounts' rows, and the
//! optional Redis connection with the publish/subscribe [`Bus`] built on it.
//!
//! # Layout
//! - [`db`]: connecting, the SQLite single-writer pool, health, migrations.
//! - [`sql`]: one SQL text for both dialects (`$N` is rewritten to `?N` for SQLite) and the
//!   macros that run it on whichever backend is configured.
//! - [`jobs`]: enqueue, claim with a lease, heartbeat, complete, fail with backoff, dead letters.
//! - [`users`]: the account rows that `careport user create` writes.
//! - [`embeddings`]: stored vectors with the model and dimension that made them.
//! - [`redis`] and [`bus`]: the Redis pool and cross-node events (in process without Redis).
//!
//! Everything here is async and runs on the caller's runtime; nothing blocks a thread.

pub mod bus;
pub mod db;
pub mod embeddings;
pub mod jobs;
pub mod redis;
pub mod sql;
pub mod users;

pub use bus::Bus;
pub use db::{Backend, Db, DbConfig};
pub use jobs::{Job, JobConfig, JobQueue, Lease, NewJob};
pub use redis::{Redis, RedisConfig};

/// Hide the password of a connection URL (`postgres://user:***@host/db`, and a `password=`
/// query parameter) for logs and `config show`.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
            match authority.rsplit_once('@') {
                Some((userinfo, host)) if userinfo.contains(':') => {
                    let user = userinfo.split(':').next().unwrap_or("");
                    format!("{scheme}://{user}:***@{host}{path}")
                }
                _ => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.to_ascii_lowercase().contains("password") => format!("{k}=***"),
                _ => kv.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(redact_url("postgres://app:s3cret@db:5432/careport"), "postgres://app:***@db:5432/careport");
        assert_eq!(redact_url("redis://:s3cret@cache:6379/0"), "redis://:***@cache:6379/0");
        assert_eq!(
            redact_url("postgres://db/careport?user=a&password=x"),
            "postgres://db/careport?user=a&password=***"
        );
        assert_eq!(redact_url("postgres://app@db/careport"), "postgres://app@db/careport");
        assert_eq!(redact_url("sqlite:///var/lib/careport/careport.db"), "sqlite:///var/lib/careport/careport.db");
    }
}
