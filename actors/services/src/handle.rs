//! An actor's address that knows its name and counts the messages it has not yet answered.
//!
//! actix does not expose a mailbox's length, so the count is kept here: incremented when a
//! message is sent, decremented when its answer (or a mailbox error) comes back. It is what
//! `/metrics` reports as `careport_actor_mailbox_depth`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::prelude::*;

use crate::{ActorStatus, Ping};

pub struct Handle<A: Actor> {
    addr: Addr<A>,
    name: &'static str,
    depth: Arc<AtomicI64>,
}

impl<A: Actor> Clone for Handle<A> {
    fn clone(&self) -> Self {
        Self { addr: self.addr.clone(), name: self.name, depth: self.depth.clone() }
    }
}

/// Decrements the depth even when the sending future is dropped (a client hung up).
struct InFlight(Arc<AtomicI64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<A: Actor> Handle<A> {
    pub fn new(name: &'static str, addr: Addr<A>) -> Self {
        Self { addr, name, depth: Arc::new(AtomicI64::new(0)) }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn addr(&self) -> &Addr<A> {
        &self.addr
    }

    /// Messages sent and not yet answered.
    pub fn depth(&self) -> i64 {
        self.depth.load(Ordering::Relaxed)
    }

    /// Send a message and wait for the answer. `MailboxError` means the actor is stopped or
    /// restarting: callers answer 503.
    pub async fn send<M>(&self, msg: M) -> Result<M::Result, MailboxError>
    where
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        self.depth.fetch_add(1, Ordering::Relaxed);
        let _guard = InFlight(self.depth.clone());
        self.addr.send(msg).await
    }

    /// Ping the actor, bounded by `timeout`.
    pub async fn ping(&self, timeout: Duration) -> ActorStatus
    where
        A: Handler<Ping>,
        A::Context: ToEnvelope<A, Ping>,
    {
        match tokio::time::timeout(timeout, self.send(Ping)).await {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => ActorStatus { ok: false, detail: format!("mailbox closed: {e}") },
            Err(_) => ActorStatus { ok: false, detail: format!("no answer within {} ms", timeout.as_millis()) },
        }
    }
}
