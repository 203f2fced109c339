//! Brute-force throttling: failed attempts are counted per account and per client IP within a
//! window; past the limit, that key is locked out for a while and answers 429 with
//! `Retry-After`. Counters live in Redis when it is configured (every node sees the same
//! counts) and in process otherwise. If Redis fails, the node falls back to its own counters
//! rather than stop throttling or stop logging people in.
//!
//! Account keys are SHA-256 digests of the e-mail address: no address is written to Redis.

use std::collections::HashMap;
use std::sync::Mutex;

use careport_domain::time::now_ms;
use careport_store::Redis;
use serde::{Deserialize, Serialize};

/// `[auth.throttle]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Failed logins on one account *from one client* within the window before that client is
    /// locked out of that account (and failed re-authentications of a signed-in user before
    /// their sensitive changes are).
    pub account_max_failures: u32,
    /// Failed logins on one account from all clients together within the window before the
    /// account itself is locked — except for a correct password with a valid second factor,
    /// which always gets through. High, so that nobody can lock an owner out by failing from
    /// elsewhere.
    #[serde(default = "default_account_lock_failures")]
    pub account_lock_failures: u32,
    /// Failed attempts per client IP within the window before a lockout.
    pub ip_max_failures: u32,
    pub window_secs: u64,
    pub lockout_secs: u64,
    /// Messages that `register`, `password/forgot` and `email/resend` may cause to one address
    /// per hour (each request counts, whether or not the address has an account, so answers
    /// stay alike), and requests of these three per client address per hour. Past either:
    /// 429 with `Retry-After`. Counted in Redis when configured, so every node counts together.
    #[serde(default = "default_mail_per_address")]
    pub mail_per_address_per_hour: u32,
    #[serde(default = "default_mail_per_client")]
    pub mail_per_client_per_hour: u32,
    /// A client from which the account signed in within `usual_client_days` is its owner's usual
    /// client: past `account_max_failures` it is slowed down, not locked out — each further
    /// failure doubles a wait that starts at 2 s and stops at `usual_client_max_wait_secs` — so
    /// that someone behind the same address (a hospital's or a family's shared connection)
    /// cannot lock the owner out for `lockout_secs`.
    #[serde(default = "default_usual_client_days")]
    pub usual_client_days: u32,
    #[serde(default = "default_usual_client_max_wait")]
    pub usual_client_max_wait_secs: u64,
}

fn default_usual_client_days() -> u32 {
    90
}
fn default_usual_client_max_wait() -> u64 {
    60
}

fn default_account_lock_failures() -> u32 {
    50
}
fn default_mail_per_address() -> u32 {
    3
}
fn default_mail_per_client() -> u32 {
    20
}

#[derive(Debug, Default)]
struct Counter {
    failures: u32,
    window_started: i64,
    locked_until: i64,
}

/// The throttle. Cheap to share behind an `Arc`.
pub struct Throttle {
    cfg: ThrottleConfig,
    redis: Option<Redis>,
    local: Mutex<HashMap<String, Counter>>,
}

/// A throttled key: which limit, for how long.
#[derive(Debug, Clone, Copy)]
pub struct Locked {
    pub retry_after_secs: u64,
}

impl Throttle {
    pub fn new(cfg: ThrottleConfig, redis: Option<Redis>) -> Self {
        Self { cfg, redis, local: Mutex::default() }
    }

    /// The key for an account (digest of the normalised address).
    pub fn account_key(email: &str) -> String {
        format!("acct:{}", &super::secret::digest(email)[..32])
    }

    /// The key for an account from one client.
    pub fn pair_key(email: &str, ip: &str) -> String {
        format!("pair:{}:{ip}", &super::secret::digest(email)[..32])
    }

    /// The key for a signed-in user's own sensitive changes (MFA, password): only their own
    /// session reaches these, so nobody else can fill this counter.
    pub fn signed_in_key(user: uuid::Uuid) -> String {
        format!("user:{user}")
    }

    /// The key for a client IP.
    pub fn ip_key(ip: &str) -> String {
        format!("ip:{ip}")
    }

    /// `Err` if any of `keys` is locked out.
    pub async fn check(&self, keys: &[&str]) -> Result<(), Locked> {
        for key in keys {
            if let Some(secs) = self.locked_for(key).await {
                return Err(Locked { retry_after_secs: secs });
            }
        }
        Ok(())
    }

    /// Count a failure against each key (`(key, limit)`), locking those past their limit.
    pub async fn failed(&self, keys: &[(&str, u32)]) {
        for (key, limit) in keys {
            self.fail_one(key, *limit).await;
        }
    }

    /// Count a failure against a usual client's key: past `limit` failures in the window, the
    /// key waits 2 s, then 4 s, 8 s, … up to `usual_client_max_wait_secs` — slowed down, never
    /// locked out for `lockout_secs`.
    pub async fn failed_slowly(&self, key: &str, limit: u32) {
        let wait = |n: i64| -> u64 {
            let over = u32::try_from(n - i64::from(limit)).unwrap_or(u32::MAX).min(16);
            (2u64 << over).min(self.cfg.usual_client_max_wait_secs.max(1))
        };
        let key = format!("slow:{key}");
        if let Some(r) = &self.redis {
            let res = async {
                let n = r.incr_window(&format!("throttle:{key}"), self.cfg.window_secs).await?;
                if n >= i64::from(limit) {
                    r.set_flag(&format!("lock:{key}"), wait(n)).await?;
                }
                anyhow::Ok(())
            }
            .await;
            match res {
                Ok(()) => return,
                Err(e) => tracing::warn!(error = %e, "throttle: Redis failed; counting on this node"),
            }
        }
        let now = now_ms();
        let window = (self.cfg.window_secs * 1000) as i64;
        let mut local = self.local();
        let c = local.entry(key).or_default();
        if now - c.window_started >= window {
            c.failures = 0;
            c.window_started = now;
        }
        c.failures += 1;
        if c.failures >= limit {
            c.locked_until = now + (wait(i64::from(c.failures)) * 1000) as i64;
        }
    }

    /// The key [`Throttle::failed_slowly`] counts on, for [`Throttle::check`] and
    /// [`Throttle::reset`].
    pub fn slow_key(key: &str) -> String {
        format!("slow:{key}")
    }

    /// Forget the failures of a key (after a successful login).
    pub async fn reset(&self, key: &str) {
        if let Some(r) = &self.redis {
            let (count, lock) = (format!("throttle:{key}"), format!("lock:{key}"));
            if let Err(e) = r.del(&[&count, &lock]).await {
                tracing::warn!(error = %e, "throttle: Redis failed; resetting the local counter only");
            }
        }
        self.local().remove(key);
    }

    pub fn config(&self) -> &ThrottleConfig {
        &self.cfg
    }

    async fn locked_for(&self, key: &str) -> Option<u64> {
        if let Some(r) = &self.redis {
            match r.ttl(&format!("lock:{key}")).await {
                Ok(ttl) => return ttl,
                Err(e) => tracing::warn!(error = %e, "throttle: Redis failed; using this node's counters"),
            }
        }
        let now = now_ms();
        let local = self.local();
        let c = local.get(key)?;
        (c.locked_until > now).then(|| ((c.locked_until - now) as u64).div_ceil(1000))
    }

    async fn fail_one(&self, key: &str, limit: u32) {
        if let Some(r) = &self.redis {
            let res = async {
                let n = r.incr_window(&format!("throttle:{key}"), self.cfg.window_secs).await?;
                if n >= i64::from(limit) {
                    r.set_flag(&format!("lock:{key}"), self.cfg.lockout_secs).await?;
                    r.del(&[&format!("throttle:{key}")]).await?;
                }
                anyhow::Ok(())
            }
            .await;
            match res {
                Ok(()) => return,
                Err(e) => tracing::warn!(error = %e, "throttle: Redis failed; counting on this node"),
            }
        }
        let now = now_ms();
        let window = (self.cfg.window_secs * 1000) as i64;
        let mut local = self.local();
        // Bound memory: drop stale counters when the map grows large.
        if local.len() > 100_000 {
            local.retain(|_, c| c.locked_until > now || now - c.window_started < window);
        }
        let c = local.entry(key.to_owned()).or_default();
        if now - c.window_started >= window {
            c.failures = 0;
            c.window_started = now;
        }
        c.failures += 1;
        if c.failures >= limit {
            c.locked_until = now + (self.cfg.lockout_secs * 1000) as i64;
            c.failures = 0;
        }
    }

    fn local(&self) -> std::sync::MutexGuard<'_, HashMap<String, Counter>> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn locks_after_the_limit_and_resets_on_success() {
        let t = Throttle::new(
            ThrottleConfig {
                account_max_failures: 3,
                account_lock_failures: 50,
                ip_max_failures: 10,
                window_secs: 60,
                lockout_secs: 30,
                mail_per_address_per_hour: 3,
                mail_per_client_per_hour: 20,
                usual_client_days: 90,
                usual_client_max_wait_secs: 60,
            },
            None,
        );
        let k = Throttle::account_key("ada@example.org");
        for _ in 0..2 {
            t.failed(&[(&k, 3)]).await;
            assert!(t.check(&[&k]).await.is_ok());
        }
        t.failed(&[(&k, 3)]).await;
        let locked = t.check(&[&k]).await.expect_err("locked");
        assert!(locked.retry_after_secs > 0 && locked.retry_after_secs <= 30);
        t.reset(&k).await;
        assert!(t.check(&[&k]).await.is_ok());
    }
}

#[cfg(test)]
mod slow_tests {
    use super::*;

    #[tokio::test]
    async fn a_usual_client_waits_a_doubling_time_bounded_by_the_setting_never_the_lockout() {
        let cfg = ThrottleConfig {
            account_max_failures: 3,
            account_lock_failures: 50,
            ip_max_failures: 10,
            window_secs: 600,
            lockout_secs: 900,
            mail_per_address_per_hour: 3,
            mail_per_client_per_hour: 20,
            usual_client_days: 90,
            usual_client_max_wait_secs: 5,
        };
        let t = Throttle::new(cfg, None);
        let k = Throttle::pair_key("ada@example.org", "192.0.2.1");
        let slow = Throttle::slow_key(&k);
        for _ in 0..2 {
            t.failed_slowly(&k, 3).await;
            assert!(t.check(&[&slow]).await.is_ok());
        }
        let mut waits = Vec::new();
        for _ in 0..4 {
            t.failed_slowly(&k, 3).await;
            waits.push(t.check(&[&slow]).await.expect_err("slowed").retry_after_secs);
        }
        assert_eq!(waits, [2, 4, 5, 5], "2 s, doubling, capped by usual_client_max_wait_secs");
        assert!(t.check(&[&k]).await.is_ok(), "the client's ordinary key is never locked by these");
        t.reset(&slow).await;
        assert!(t.check(&[&slow]).await.is_ok());
    }
}
