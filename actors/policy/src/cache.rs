//! The per-node cache of verified tokens (DESIGN §4): verifying the signatures is most of an
//! 80–100 µs check, the Datalog run about 10 µs, so each node verifies a token once and then keeps
//! it, keyed by the SHA-256 of the token string, until the token expires or its session or user is
//! revoked. Failures are never cached: a bad token costs its sender the full verification.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use uuid::Uuid;

use crate::keys::digest;
use crate::{KeyRing, TokenError, VerifiedToken};

/// Default bound on entries: ~10 000 live access tokens per node is far above the expected load,
/// and bounds memory if someone replays many distinct valid tokens.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Verified tokens by token digest. A plain `Mutex`: the critical sections are a hash lookup or
/// insert, far shorter than anything the lock could save by being an `RwLock`.
#[derive(Debug)]
pub struct TokenCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<[u8; 32], Entry>,
    /// Insertion counter, to evict the oldest entry when no entry has expired.
    tick: u64,
}

#[derive(Debug)]
struct Entry {
    token: Arc<VerifiedToken>,
    inserted: u64,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::new(DEFAULT_CAPACITY)
    }
}

impl TokenCache {
    /// `capacity` of at least 1.
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache { capacity: capacity.max(1), inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-written map entry behind (insert and
        // remove are single calls), so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The verified token for `token`, from the cache or by verifying it now (outside the lock).
    /// An expired token answers [`TokenError::Expired`] and is dropped from the cache.
    pub fn get_or_verify(
        &self,
        keys: &KeyRing,
        token: &str,
        now: SystemTime,
    ) -> Result<Arc<VerifiedToken>, TokenError> {
        let key = digest(token);
        {
            let mut inner = self.lock();
            if let Some(e) = inner.entries.get(&key) {
                if e.token.expires_at() >= now_secs_floor(now) {
                    return Ok(Arc::clone(&e.token));
                }
                inner.entries.remove(&key);
                return Err(TokenError::Expired);
            }
        }
        let verified = Arc::new(keys.verify(token)?);
        if verified.expires_at() < now_secs_floor(now) {
            return Err(TokenError::Expired);
        }
        let mut inner = self.lock();
        if inner.entries.len() >= self.capacity && !inner.entries.contains_key(&key) {
            evict(&mut inner, now, self.capacity);
        }
        inner.tick += 1;
        let inserted = inner.tick;
        inner.entries.insert(key, Entry { token: Arc::clone(&verified), inserted });
        Ok(verified)
    }

    /// Drop every token of a session (logout, refresh-token reuse).
    pub fn forget_session(&self, session: Uuid) {
        self.lock().entries.retain(|_, e| e.token.claims().session != session);
    }

    /// Drop every token of a user (password change, deactivation, role change).
    pub fn forget_user(&self, user: Uuid) {
        self.lock().entries.retain(|_, e| e.token.claims().user != user);
    }

    /// Drop expired entries; the runtime may call it periodically, `get_or_verify` does it when full.
    pub fn purge_expired(&self, now: SystemTime) {
        let floor = now_secs_floor(now);
        self.lock().entries.retain(|_, e| e.token.expires_at() >= floor);
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Token expiries are whole seconds and valid through that second (the Datalog check is
/// `$t <= expiry` on truncated times), so compare against `now` truncated the same way.
fn now_secs_floor(now: SystemTime) -> SystemTime {
    crate::time::to_secs(now).map(crate::time::from_secs).unwrap_or(now)
}

/// Make room: first drop expired entries; if none expired, drop the oldest tenth (at least one),
/// so that a full cache does not pay an O(n) scan on every insert.
fn evict(inner: &mut Inner, now: SystemTime, capacity: usize) {
    let floor = now_secs_floor(now);
    inner.entries.retain(|_, e| e.token.expires_at() >= floor);
    if inner.entries.len() < capacity {
        return;
    }
    let mut ages: Vec<u64> = inner.entries.values().map(|e| e.inserted).collect();
    let n = (capacity / 10).max(1).min(ages.len());
    let (_, cutoff, _) = ages.select_nth_unstable(n - 1);
    let cutoff = *cutoff;
    inner.entries.retain(|_, e| e.inserted > cutoff);
}
