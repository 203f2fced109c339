//! Which sessions are revoked, as every node must know at once.
//!
//! The store is the truth (`sessions.revoked_at`). Each node keeps the recently revoked
//! session ids in memory, so checking a token costs a hash lookup. It learns of revocations
//! three ways: its own (inserted before the call that revoked returns), the bus (Redis pub/sub
//! in clustered mode: the other nodes' revocations within milliseconds), and a poll of the
//! store every few seconds (what pub/sub dropped while a node was disconnected). An entry is
//! kept until every access token of that session has expired.

use std::collections::HashMap;
use std::sync::RwLock;

use uuid::Uuid;

/// The bus channel revocations travel on. The payload is a JSON array of session ids.
pub const CHANNEL: &str = "auth.revoked";

#[derive(Default)]
pub struct Revocations {
    sessions: RwLock<HashMap<Uuid, i64>>,
}

impl Revocations {
    pub fn is_revoked(&self, session: Uuid) -> bool {
        self.sessions.read().unwrap_or_else(|p| p.into_inner()).contains_key(&session)
    }

    /// Record sessions revoked at `at_ms`.
    pub fn insert(&self, sessions: impl IntoIterator<Item = Uuid>, at_ms: i64) {
        let mut map = self.sessions.write().unwrap_or_else(|p| p.into_inner());
        for s in sessions {
            map.entry(s).or_insert(at_ms);
        }
    }

    /// Forget revocations older than `before_ms` (their tokens have all expired).
    pub fn prune(&self, before_ms: i64) {
        self.sessions.write().unwrap_or_else(|p| p.into_inner()).retain(|_, at| *at >= before_ms);
    }

    pub fn len(&self) -> usize {
        self.sessions.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
