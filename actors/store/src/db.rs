//! The relational store: SQLite (embedded) or PostgreSQL (clustered) behind one [`Db`].
//!
//! SQLite runs in WAL mode with foreign keys on, `synchronous = FULL` (an acknowledged write
//! survives a power cut) and a busy timeout. All writes go through a pool of exactly one
//! connection: SQLite allows one writer at a time, and a single writer never meets the
//! `SQLITE_BUSY` that a deferred transaction upgrading to a write lock can hit. Reads use a
//! separate read-only pool and see every committed write (WAL).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::redact_url;

/// `[database]` settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbConfig {
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`. Unset: `sqlite://<data_dir>/careport.db`.
    pub url: Option<SecretString>,
    /// Largest number of connections in the (read) pool.
    pub max_connections: u32,
    /// How long to wait for a connection before failing, in seconds.
    pub acquire_timeout_secs: u64,
    /// PostgreSQL only: how many times to retry the first connection, with exponential backoff.
    pub connect_retries: u32,
    /// SQLite only: how long a statement waits for a lock, in milliseconds.
    pub busy_timeout_ms: u64,
}

impl DbConfig {
    /// The URL with the password hidden.
    pub fn redacted_url(&self) -> Option<String> {
        self.url.as_ref().map(|u| redact_url(u.expose_secret()))
    }

    /// Which backend the settings select.
    pub fn backend(&self) -> Backend {
        match &self.url {
            Some(u) if u.expose_secret().starts_with("postgres") => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }
}

impl std::fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig")
            .field("url", &self.redacted_url())
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout_secs", &self.acquire_timeout_secs)
            .field("connect_retries", &self.connect_retries)
            .field("busy_timeout_ms", &self.busy_timeout_ms)
            .finish()
    }
}

/// Which relational backend is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A pool of one backend, what the [`exec!`](crate::exec) family of macros runs on.
#[derive(Clone, Copy)]
pub enum Pool<'a> {
    Sqlite(&'a SqlitePool),
    Postgres(&'a PgPool),
}

/// The store handle: cheap to clone, shared by every actor.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite { read: SqlitePool, write: SqlitePool },
    Postgres(PgPool),
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

impl Db {
    /// Connect as the settings say. `data_dir` holds the SQLite file when no URL is set.
    pub async fn connect(cfg: &DbConfig, data_dir: &Path) -> anyhow::Result<Self> {
        let url = match &cfg.url {
            Some(u) => u.expose_secret().to_owned(),
            None => format!("sqlite://{}", data_dir.join("careport.db").display()),
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::connect_pg(cfg, &url).await
        } else if url.starts_with("sqlite:") {
            Self::connect_sqlite(cfg, &url).await
        } else {
            bail!("database.url must start with sqlite:// or postgres:// (got `{}`)", redact_url(&url))
        }
    }

    async fn connect_sqlite(cfg: &DbConfig, url: &str) -> anyhow::Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("database.url `{}` is not a valid SQLite URL", redact_url(url)))?;
        if opts.get_filename() == Path::new(":memory:") {
            bail!("database.url: an in-memory SQLite database would lose every write; name a file");
        }
        if let Some(dir) = opts.get_filename().parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::create_private_dir(dir)
                .with_context(|| format!("Failed to create the database directory {}", dir.display()))?;
        }
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_millis(cfg.busy_timeout_ms))
            // Reads map the file instead of copying pages with pread, and each connection keeps
            // 16 MiB of pages: fewer syscalls per request (measured in bench/patients.sh).
            .pragma("mmap_size", "268435456")
            .pragma("cache_size", "-16384");
        let acquire = Duration::from_secs(cfg.acquire_timeout_secs);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(acquire)
            .connect_with(opts.clone())
            .await
            .with_context(|| format!("Failed to open the SQLite database {}", redact_url(url)))?;
        let read = SqlitePoolOptions::new()
            .max_connections(cfg.max_connections.max(1))
            .acquire_timeout(acquire)
            .connect_with(opts.read_only(true))
            .await
            .with_context(|| format!("Failed to open the SQLite database {} for reading", redact_url(url)))?;
        Ok(Db::Sqlite { read, write })
    }

    async fn connect_pg(cfg: &DbConfig, url: &str) -> anyhow::Result<Self> {
        let opts = PgConnectOptions::from_str(url)
            .with_context(|| format!("database.url `{}` is not a valid PostgreSQL URL", redact_url(url)))?;
        let pool_opts = PgPoolOptions::new()
            .max_connections(cfg.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(cfg.acquire_timeout_secs));
        let mut delay = Duration::from_millis(500);
        let mut attempt = 0;
        loop {
            attempt += 1;
            // One plain connection first: it fails at once on a refused connection, where the
            // pool would keep retrying until its acquire timeout.
            let probe = tokio::time::timeout(pool_opts.get_acquire_timeout(), PgConnection::connect_with(&opts)).await;
            let result = match probe {
                Ok(Ok(conn)) => {
                    let _ = conn.close().await;
                    pool_opts.clone().connect_with(opts.clone()).await.map_err(anyhow::Error::new)
                }
                Ok(Err(e)) => Err(anyhow::Error::new(e)),
                Err(_) => Err(anyhow::anyhow!("timed out")),
            };
            match result {
                Ok(pool) => return Ok(Db::Postgres(pool)),
                Err(e) if attempt <= cfg.connect_retries => {
                    tracing::warn!(attempt, retry_in_ms = delay.as_millis() as u64, error = %e, "PostgreSQL not reachable yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
                Err(e) => {
                    return Err(e.context(format!(
                        "Could not connect to PostgreSQL at {} after {attempt} attempt(s)",
                        redact_url(url)
                    )));
                }
            }
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// The pool for statements that write (on SQLite, the single writer).
    pub fn writer(&self) -> Pool<'_> {
        match self {
            Db::Sqlite { write, .. } => Pool::Sqlite(write),
            Db::Postgres(p) => Pool::Postgres(p),
        }
    }

    /// The pool for reads.
    pub fn reader(&self) -> Pool<'_> {
        match self {
            Db::Sqlite { read, .. } => Pool::Sqlite(read),
            Db::Postgres(p) => Pool::Postgres(p),
        }
    }

    /// Apply the embedded migrations, each in its own transaction.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Db::Sqlite { write, .. } => SQLITE_MIGRATOR.run(write).await,
            Db::Postgres(p) => PG_MIGRATOR.run(p).await,
        }
        .context("Failed to apply database migrations")
    }

    /// Names of the migrations this binary carries, and whether each is applied.
    pub async fn migration_status(&self) -> anyhow::Result<Vec<(i64, String, bool)>> {
        let migrator = match self {
            Db::Sqlite { .. } => &SQLITE_MIGRATOR,
            Db::Postgres(_) => &PG_MIGRATOR,
        };
        static APPLIED: crate::sql::Sql = crate::sql::Sql::new("SELECT version FROM _sqlx_migrations WHERE success");
        let applied: Vec<i64> = crate::scalar!(self.reader(), i64, fetch_all, &APPLIED).unwrap_or_default();
        Ok(migrator.iter().map(|m| (m.version, m.description.to_string(), applied.contains(&m.version))).collect())
    }

    /// A cheap round trip, bounded by `timeout`, for `/readyz`.
    pub async fn ping(&self, timeout: Duration) -> anyhow::Result<()> {
        static PING: crate::sql::Sql = crate::sql::Sql::new("SELECT 1");
        match tokio::time::timeout(timeout, async { crate::scalar!(self.reader(), i32, fetch_one, &PING) }).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context("store query failed")),
            Err(_) => bail!("store did not answer within {} ms", timeout.as_millis()),
        }
    }

    /// Close every connection (at shutdown).
    pub async fn close(&self) {
        match self {
            Db::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(p) => p.close().await,
        }
    }

    /// Connections open and idle, for `/metrics`. Saturating, and idle at most open: sqlx's idle
    /// count can run past the pool's size for a moment while connections come and go (a debug
    /// build panicked adding the two under the contract fuzzer), and a gauge must never panic.
    pub fn pool_stats(&self) -> (u32, u32) {
        let idle = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let (size, idle) = match self {
            Db::Sqlite { read, write } => {
                (read.size().saturating_add(write.size()), idle(read.num_idle()).saturating_add(idle(write.num_idle())))
            }
            Db::Postgres(p) => (p.size(), idle(p.num_idle())),
        };
        (size, idle.min(size))
    }
}
