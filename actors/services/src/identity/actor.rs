//! The AuthActor: keeps this node's view of revoked sessions current.
//!
//! It listens on the bus for revocations made on other nodes (Redis pub/sub in clustered
//! mode), polls the store every few seconds for any it missed, and forgets revocations (and
//! cached tokens) once every token they could concern has expired.

use std::time::Duration;

use actix::prelude::*;
use careport_domain::time::now_ms;
use careport_store::sessions;
use uuid::Uuid;

use super::Identity;
use super::revocation::CHANNEL;
use crate::{ActorStatus, Ping};

/// How often the store is polled for revocations.
pub const POLL: Duration = Duration::from_secs(5);

pub struct AuthActor {
    auth: Identity,
    /// Revocations at or after this time are known (store time, ms).
    synced_to: i64,
    last_error: Option<String>,
}

impl AuthActor {
    pub fn new(auth: Identity) -> Self {
        // At start, load every revocation whose tokens may still be alive.
        let horizon = now_ms() - (auth.config().access_token_ttl_secs as i64 + 60) * 1000;
        Self { auth, synced_to: horizon, last_error: None }
    }

    fn poll(&mut self, ctx: &mut Context<Self>) {
        let auth = self.auth.clone();
        // Overlap the previous window: a revocation committed just before the last poll's
        // read may carry an earlier timestamp.
        let since = self.synced_to - 10_000;
        let started = now_ms();
        let fut = async move {
            let rows = sessions::revoked_since(auth.db(), since).await?;
            let ids: Vec<(Uuid, i64)> = rows.iter().map(|s| (s.id, s.revoked_at.unwrap_or(started))).collect();
            for (id, at) in &ids {
                if !auth.revocations().is_revoked(*id) {
                    auth.revocations().insert([*id], *at);
                    auth.token_cache().forget_session(*id);
                }
            }
            let ttl_ms = (auth.config().access_token_ttl_secs as i64 + 60) * 1000;
            auth.revocations().prune(started - ttl_ms);
            auth.token_cache().purge_expired(std::time::SystemTime::now());
            Ok::<_, sqlx::Error>(())
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, _| match res {
            Ok(()) => {
                act.synced_to = started;
                act.last_error = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not poll revoked sessions");
                act.last_error = Some("store unavailable".into());
            }
        }));
    }
}

impl Actor for AuthActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let mut rx = self.auth.bus().subscribe(CHANNEL);
        let auth = self.auth.clone();
        // Events from every node (this one included: inserting twice is harmless).
        ctx.spawn(
            async move {
                loop {
                    match rx.recv().await {
                        Ok(payload) => {
                            if let Ok(ids) = serde_json::from_slice::<Vec<Uuid>>(&payload) {
                                auth.revocations().insert(ids.iter().copied(), now_ms());
                                for id in ids {
                                    auth.token_cache().forget_session(id);
                                }
                            }
                        }
                        // Fell behind: the poll catches up with what was missed.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    }
                }
            }
            .into_actor(self),
        );
        self.poll(ctx);
        ctx.run_interval(POLL, |act, ctx| act.poll(ctx));
    }
}

impl Supervised for AuthActor {}

impl Handler<Ping> for AuthActor {
    type Result = MessageResult<Ping>;
    fn handle(&mut self, _: Ping, _: &mut Self::Context) -> Self::Result {
        let known = self.auth.revocations().len();
        MessageResult(match &self.last_error {
            None => ActorStatus { ok: true, detail: format!("{known} recent revocation(s) known") },
            Some(e) => ActorStatus { ok: false, detail: format!("revocation poll failing: {e}") },
        })
    }
}
