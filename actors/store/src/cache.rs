//! A read-through cache in Redis for hot reads that hold no patient data: the reference data
//! (departments, the cancer-type tree) and clinicians' directory entries and hours.
//!
//! Patient data is never cached: it stays in the store, where every read is audited.
//!
//! Invalidation is by generation: each namespace has a counter (`cache:{ns}:gen`), entries are
//! stored under the generation current when their load began, and a write bumps the counter
//! after its commit. A reader that loaded the old value while the write committed stores it
//! under the old generation, where nobody looks again: no stale read after a write, on any node.
//! Entries also expire (`ttl_secs`), which bounds staleness if a bump is lost with Redis down.
//! Any Redis failure falls back to the store.

use std::future::Future;

use redis::AsyncCommands;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Redis;

/// The cache (off without Redis).
#[derive(Clone, Debug, Default)]
pub struct Cache {
    redis: Option<Redis>,
    ttl_secs: u64,
}

impl Cache {
    pub fn new(redis: Option<Redis>, ttl_secs: u64) -> Self {
        Self { redis, ttl_secs: ttl_secs.max(1) }
    }

    /// Whether reads go through Redis.
    pub fn is_on(&self) -> bool {
        self.redis.is_some()
    }

    fn gen_key(r: &Redis, ns: &str) -> String {
        format!("{}cache:{ns}:gen", r.prefix())
    }

    async fn lookup(r: &Redis, ns: &str, key: &str) -> anyhow::Result<(Option<String>, i64)> {
        let mut conn = r.conn().await?;
        let generation: Option<i64> = conn.get(Self::gen_key(r, ns)).await?;
        let generation = generation.unwrap_or(0);
        let value: Option<String> = conn.get(format!("{}cache:{ns}:{generation}:{key}", r.prefix())).await?;
        Ok((value, generation))
    }

    async fn put(&self, r: &Redis, ns: &str, generation: i64, key: &str, value: String) -> anyhow::Result<()> {
        let mut conn = r.conn().await?;
        let _: () = conn.set_ex(format!("{}cache:{ns}:{generation}:{key}", r.prefix()), value, self.ttl_secs).await?;
        Ok(())
    }

    /// The cached value of `key` in `ns`, or `load()`'s, which is then cached.
    pub async fn get_or_load<T, E, F, Fut>(&self, ns: &str, key: &str, load: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let Some(r) = &self.redis else { return load().await };
        let generation = match Self::lookup(r, ns, key).await {
            Ok((Some(hit), _)) => match serde_json::from_str(&hit) {
                Ok(v) => return Ok(v),
                Err(_) => None,
            },
            Ok((None, generation)) => Some(generation),
            Err(e) => {
                tracing::warn!(error = %e, "cache unavailable; reading the store");
                None
            }
        };
        let value = load().await?;
        if let (Some(generation), Ok(text)) = (generation, serde_json::to_string(&value))
            && let Err(e) = self.put(r, ns, generation, key, text).await
        {
            tracing::warn!(error = %e, "could not fill the cache");
        }
        Ok(value)
    }

    /// Forget everything cached in `ns`. Call after the write has committed.
    pub async fn invalidate(&self, ns: &str) {
        let Some(r) = &self.redis else { return };
        let bump = async {
            let mut conn = r.conn().await?;
            let _: i64 = conn.incr(Self::gen_key(r, ns), 1).await?;
            anyhow::Ok(())
        };
        if let Err(e) = bump.await {
            tracing::error!(error = %e, namespace = ns, "could not invalidate the cache; entries expire by their TTL");
        }
    }
}
