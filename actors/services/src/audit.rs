//! The AuditActor: appends events to the hash-chained trail in the store.
//!
//! Callers wait for the append to commit before they answer (fail closed: a read of patient
//! data whose audit event cannot be written is refused with 503 `audit_unavailable`). While one
//! batch is being written, the events that arrive meanwhile queue up and go in the next
//! transaction together, so a burst of reads costs a few commits, not one each. If a batch
//! fails, each caller's events are retried on their own, so one bad event cannot fail (or
//! lose) everyone else's.

use actix::prelude::*;
use careport_domain::time::now_ms;
use careport_domain::{Code, Error};
use careport_store::Db;
use careport_store::audit::{self, ChainKey, NewEvent};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::{ActorStatus, Ping};

/// Outcomes as written.
pub mod outcome {
    pub const SUCCESS: &str = "success";
    pub const FAILURE: &str = "failure";
    pub const DENIED: &str = "denied";
}

/// Who did it, from where: the request's side of an event.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub actor_id: Option<Uuid>,
    pub actor_role: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl Context {
    /// An event by this caller.
    pub fn event(&self, action: &str, outcome: &str) -> NewEvent {
        NewEvent {
            id: Uuid::now_v7(),
            at: now_ms(),
            actor_id: self.actor_id,
            actor_role: self.actor_role.clone(),
            action: action.to_owned(),
            outcome: outcome.to_owned(),
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
            request_id: self.request_id.clone(),
            ..NewEvent::default()
        }
    }
}

/// Builder helpers on an event.
pub trait EventExt {
    fn resource(self, kind: &str, id: impl ToString) -> Self;
    fn patient(self, patient: Uuid) -> Self;
    fn detail(self, detail: impl Into<String>) -> Self;
}

impl EventExt for NewEvent {
    fn resource(mut self, kind: &str, id: impl ToString) -> Self {
        self.resource_kind = Some(kind.to_owned());
        self.resource_id = Some(id.to_string());
        self
    }
    fn patient(mut self, patient: Uuid) -> Self {
        self.patient_id = Some(patient);
        self
    }
    fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// Append events; answered once they are committed.
#[derive(Message)]
#[rtype(result = "Result<(), Error>")]
pub struct Append(pub Vec<NewEvent>);

type Waiter = (Vec<NewEvent>, oneshot::Sender<Result<(), Error>>);

/// The actor owning the write side of the trail on this node.
pub struct AuditActor {
    db: Db,
    key: ChainKey,
    pending: Vec<Waiter>,
    flushing: bool,
    failures: u64,
}

impl AuditActor {
    pub fn new(db: Db, key: ChainKey) -> Self {
        Self { db, key, pending: Vec::new(), flushing: false, failures: 0 }
    }

    fn flush(&mut self, ctx: &mut actix::Context<Self>) {
        if self.flushing || self.pending.is_empty() {
            return;
        }
        self.flushing = true;
        let batch = std::mem::take(&mut self.pending);
        let db = self.db.clone();
        let key = self.key.clone();
        let fut = async move {
            let events: Vec<NewEvent> = batch.iter().flat_map(|(e, _)| e.iter().cloned()).collect();
            if audit::append(&db, &key, &events).await.is_ok() {
                for (_, tx) in batch {
                    let _ = tx.send(Ok(()));
                }
                return false;
            }
            // One caller's events may be what failed: retry each on its own.
            let mut failed = false;
            for (events, tx) in batch {
                let r = audit::append(&db, &key, &events).await.map(|_| ()).map_err(|e| {
                    failed = true;
                    Error::new(Code::AuditUnavailable)
                        .caused_by(anyhow::anyhow!("audit append failed: {e}"))
                        .retry_after(5)
                });
                let _ = tx.send(r);
            }
            failed
        };
        ctx.spawn(fut.into_actor(self).map(|failed, act, ctx| {
            act.flushing = false;
            if failed {
                act.failures += 1;
            }
            act.flush(ctx);
        }));
    }
}

impl Actor for AuditActor {
    type Context = actix::Context<Self>;
}

impl Supervised for AuditActor {}

/// Walk the whole chain with this node's key (the web UI's audit page; `careport audit
/// verify` does the same from the command line).
#[derive(Message)]
#[rtype(result = "Result<audit::Verification, Error>")]
pub struct Verify;

impl Handler<Verify> for AuditActor {
    type Result = ResponseFuture<Result<audit::Verification, Error>>;

    fn handle(&mut self, _: Verify, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        let key = self.key.clone();
        Box::pin(async move { audit::verify(&db, &key).await.map_err(Error::store) })
    }
}

impl Handler<Append> for AuditActor {
    type Result = ResponseFuture<Result<(), Error>>;

    fn handle(&mut self, msg: Append, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.pending.push((msg.0, tx));
        self.flush(ctx);
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(Error::new(Code::AuditUnavailable).caused_by(anyhow::anyhow!("audit actor stopped")))
            })
        })
    }
}

impl Handler<Ping> for AuditActor {
    type Result = MessageResult<Ping>;
    fn handle(&mut self, _: Ping, _: &mut Self::Context) -> Self::Result {
        MessageResult(ActorStatus {
            ok: true,
            detail: format!("{} waiting, {} failed batch(es) since start", self.pending.len(), self.failures),
        })
    }
}

/// The audit writer: what every service operation writes its events through. Cheap to clone.
///
/// [`Audit::write`] waits for the commit and fails closed (503 `audit_unavailable`): a read of
/// patient data whose event cannot be written is refused. [`Audit::best_effort`] is for events
/// whose loss must not change the answer (a refused login is still refused).
#[derive(Clone)]
pub struct Audit {
    actor: crate::Handle<AuditActor>,
}

impl Audit {
    pub fn new(actor: crate::Handle<AuditActor>) -> Self {
        Self { actor }
    }

    /// Append events and wait for the commit (fail closed).
    pub async fn write(&self, events: Vec<NewEvent>) -> Result<(), Error> {
        self.actor.send(Append(events)).await.map_err(|e| {
            Error::new(Code::AuditUnavailable).caused_by(anyhow::anyhow!("audit actor: {e}")).retry_after(5)
        })?
    }

    /// Verify the whole chain: how many events hold, and the first broken link if any.
    pub async fn verify(&self) -> Result<audit::Verification, Error> {
        self.actor.send(Verify).await.map_err(|e| {
            Error::new(Code::AuditUnavailable).caused_by(anyhow::anyhow!("audit actor: {e}")).retry_after(5)
        })?
    }

    /// Append one event and wait for the commit (fail closed).
    pub async fn one(&self, event: NewEvent) -> Result<(), Error> {
        self.write(vec![event]).await
    }

    /// Append an event whose loss must not change the answer, logging if it cannot be written.
    pub async fn best_effort(&self, event: NewEvent) {
        if let Err(e) = self.write(vec![event]).await {
            tracing::error!(error = ?e, "could not write an audit event");
        }
    }
}
