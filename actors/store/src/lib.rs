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
//! - [`patients`], [`assignments`], [`clinicians`], [`appointments`]: the clinic directory and
//!   scheduling.
//! - [`embeddings`]: stored vectors with the model and dimension that made them.
//! - [`knowledge`]: the knowledge base: documents, chunks, embedding jobs, spaces, and the
//!   filtered vector and full-text arms of its search.
//! - [`redis`] and [`bus`]: the Redis pool and cross-node events (in process without Redis).
//! - [`objects`]: the vault's sealed file objects, async, in a local directory or an S3 bucket.
//! - [`vault`]: wrapped keys, sealed files, medical records and grants (never a key in the clear).
//! - [`cache`]: the Redis read-through cache; [`plugins`]: plugins kept for every node.
//! - [`chat`]: chat sessions and messages, sealed by the service before they arrive.
//!
//! Everything here is async and runs on the caller's runtime; nothing blocks a thread.

pub mod appointments;
pub mod assignments;
pub mod audit;
pub mod auth_links;
pub mod billing;
pub mod bus;
pub mod cache;
pub mod chart_links;
pub mod chat;
pub mod clinicians;
pub mod db;
pub mod embeddings;
pub mod images;
pub mod jobs;
pub mod knowledge;
pub mod mfa;
pub mod objects;
pub mod ocr;
pub mod patients;
pub mod plugins;
pub mod record_types;
pub mod redis;
pub mod reference;
pub mod reports;
pub mod sessions;
pub mod sql;
pub mod users;
pub mod vault;
pub mod workflow;

pub use bus::Bus;
pub use cache::Cache;
pub use db::{Backend, Db, DbConfig};
pub use jobs::{Job, JobConfig, JobQueue, Lease, NewJob};
pub use objects::{ObjectWriter, Objects, StorageBackend, StorageConfig};
pub use redis::{Redis, RedisConfig};

/// Create a directory (and its parents) readable by the owner only: the data dir holds the
/// database and keys. Directories that already exist keep their mode.
pub fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// Hide the password of a connection URL (`postgres://user:***@host/db`, and a `password=`
/// query parameter) for logs, errors and `config show`.
///
/// The userinfo ends at the *last* `@`, so a password holding `/`, `?` or `@` is still hidden.
/// A URL that cannot be split this way is shown as `scheme://***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return if url.contains('@') || url.contains("password") { "***".to_owned() } else { url.to_owned() };
    };
    let (userinfo, after) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (hostpath, query) = match after.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (after, None),
    };
    let mut out = format!("{scheme}://");
    if let Some(userinfo) = userinfo {
        match userinfo.split_once(':') {
            Some((user, _)) if !user.contains('/') => out.push_str(&format!("{user}:***@")),
            Some(_) => return format!("{scheme}://***"),
            None => out.push_str(&format!("{userinfo}@")),
        }
    }
    out.push_str(hostpath);
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
        // Unencoded `/`, `?` and `@` in a password must not let it through.
        for url in ["postgres://app:pa/ss@db/x", "postgres://app:pa?ss@db/x", "postgres://app:p@ss@db/x"] {
            let shown = redact_url(url);
            assert!(!shown.contains("ss@") && !shown.contains("pa/") && !shown.contains("pa?"), "{url} -> {shown}");
            assert!(shown.ends_with("@db/x"), "{url} -> {shown}");
        }
    }
}
