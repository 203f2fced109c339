//! The optional Redis connection (clustered mode): a bb8 pool of multiplexed connections, its
//! health check, and the client the [`Bus`](crate::Bus) subscribes with.
//!
//! Every use of Redis has a fallback (the cache reads the store, throttles count on the node,
//! revocations arrive by the store poll), so Redis being down must cost little: after a failure
//! to get a connection, calls fail at once for [`BACKOFF`] instead of each waiting
//! `connect_timeout_ms` for the pool; the first call after it tries again.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use bb8_redis::RedisConnectionManager;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::redact_url;

/// `[redis]` settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[:PASSWORD@]HOST:PORT/DB`. Unset: no Redis; caches and events stay in process.
    pub url: Option<SecretString>,
    /// Largest number of pooled connections.
    pub pool_size: u32,
    /// How long to wait for a connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Prefix of every key and channel, so that several deployments can share one Redis.
    pub prefix: String,
}

impl RedisConfig {
    pub fn redacted_url(&self) -> Option<String> {
        self.url.as_ref().map(|u| redact_url(u.expose_secret()))
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("pool_size", &self.pool_size)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// A Redis pool plus the plain client (pub/sub needs a dedicated connection).
/// How long calls fail at once after Redis could not be reached.
pub const BACKOFF: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Redis {
    pool: bb8::Pool<RedisConnectionManager>,
    client: redis::Client,
    prefix: String,
    /// Until when (ms since the epoch) calls fail without trying: Redis was just unreachable.
    down_until: Arc<AtomicI64>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl Redis {
    /// Connect when `redis.url` is set; `Ok(None)` when it is not. Fails if Redis does not
    /// answer a PING within the connect timeout, so a wrong URL stops the boot.
    pub async fn connect(cfg: &RedisConfig) -> anyhow::Result<Option<Self>> {
        let Some(url) = &cfg.url else { return Ok(None) };
        let redacted = redact_url(url.expose_secret());
        let client = redis::Client::open(url.expose_secret())
            .with_context(|| format!("redis.url `{redacted}` is not a valid Redis URL"))?;
        let manager = RedisConnectionManager::new(url.expose_secret())
            .with_context(|| format!("redis.url `{redacted}` is not a valid Redis URL"))?;
        let pool = bb8::Pool::builder()
            .max_size(cfg.pool_size.max(1))
            .connection_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .build_unchecked(manager);
        let redis = Self { pool, client, prefix: cfg.prefix.clone(), down_until: Arc::default() };
        redis
            .ping(Duration::from_millis(cfg.connect_timeout_ms.max(1000)))
            .await
            .with_context(|| format!("Could not reach Redis at {redacted}"))?;
        Ok(Some(redis))
    }

    pub fn pool(&self) -> &bb8::Pool<RedisConnectionManager> {
        &self.pool
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The key prefix, for instance `careport:`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// PING, bounded by `timeout`.
    pub async fn ping(&self, timeout: Duration) -> anyhow::Result<()> {
        let fut = async {
            let mut conn = self.conn().await?;
            let pong: String = redis::cmd("PING").query_async(&mut *conn).await?;
            anyhow::Ok(pong)
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(p)) if p == "PONG" => Ok(()),
            Ok(Ok(p)) => bail!("unexpected PING answer {p:?}"),
            Ok(Err(e)) => Err(e),
            Err(_) => bail!("Redis did not answer within {} ms", timeout.as_millis()),
        }
    }
}

/// Small counters and flags (throttling), each bounded by the pool's connection timeout.
impl Redis {
    /// A pooled connection; fails at once while Redis is known to be down (see [`BACKOFF`]).
    pub async fn conn(&self) -> anyhow::Result<bb8::PooledConnection<'_, RedisConnectionManager>> {
        let now = careport_domain::time::now_ms();
        if now < self.down_until.load(Ordering::Relaxed) {
            bail!("no Redis connection: Redis was unreachable less than {} ms ago", BACKOFF.as_millis());
        }
        match self.pool.get().await {
            Ok(conn) => Ok(conn),
            Err(e) => {
                let until = careport_domain::time::now_ms() + BACKOFF.as_millis() as i64;
                self.down_until.store(until, Ordering::Relaxed);
                Err(anyhow::anyhow!("no Redis connection: {e}"))
            }
        }
    }

    /// INCR `key` (prefixed); on the first increment it expires after `window_secs`.
    pub async fn incr_window(&self, key: &str, window_secs: u64) -> anyhow::Result<i64> {
        let key = format!("{}{key}", self.prefix);
        let mut conn = self.conn().await?;
        let (n,): (i64,) = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg(&key)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(window_secs.max(1))
            .arg("NX")
            .ignore()
            .query_async(&mut *conn)
            .await?;
        Ok(n)
    }

    /// SET `key` (prefixed) to 1 for `secs` seconds.
    pub async fn set_flag(&self, key: &str, secs: u64) -> anyhow::Result<()> {
        let key = format!("{}{key}", self.prefix);
        let mut conn = self.conn().await?;
        let _: () = redis::cmd("SET").arg(&key).arg(1).arg("EX").arg(secs.max(1)).query_async(&mut *conn).await?;
        Ok(())
    }

    /// Seconds left on `key` (prefixed), if it exists with an expiry.
    pub async fn ttl(&self, key: &str) -> anyhow::Result<Option<u64>> {
        let key = format!("{}{key}", self.prefix);
        let mut conn = self.conn().await?;
        let ttl: i64 = redis::cmd("TTL").arg(&key).query_async(&mut *conn).await?;
        Ok(u64::try_from(ttl).ok().filter(|t| *t > 0))
    }

    /// DEL the given keys (prefixed).
    pub async fn del(&self, keys: &[&str]) -> anyhow::Result<()> {
        let mut conn = self.conn().await?;
        let mut cmd = redis::cmd("DEL");
        for k in keys {
            cmd.arg(format!("{}{k}", self.prefix));
        }
        let _: i64 = cmd.query_async(&mut *conn).await?;
        Ok(())
    }
}
