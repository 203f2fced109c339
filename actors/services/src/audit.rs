//! The write side of the hash-chained audit trail: a group commit led by the requests that wait
//! on it, and the AuditActor, which verifies the chain and reports the writer's state.
//!
//! Callers wait for the append to commit before they answer (fail closed: a read of patient
//! data whose audit event cannot be written is refused with 503 `audit_unavailable`). While one
//! batch is being written, the events that arrive meanwhile queue up and go in the next
//! transaction together, so a burst of reads costs a few commits, not one each. If a batch
//! fails, each caller's events are retried on their own, so one bad event cannot fail (or
//! lose) everyone else's.
//!
//! Why no actor on the write path (#19): the first caller that finds no batch being written
//! starts the writer as a task on its own thread, and the writer keeps taking whatever queued
//! while it wrote until the queue is empty. An actor would cost every read two hops between
//! threads (the request's to the actor's, and back) on top of the commit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

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

type Waiter = (Vec<NewEvent>, oneshot::Sender<Result<(), Error>>);

/// The group commit: events waiting for the next batch, and whether a writer is running.
pub struct Writer {
    db: Db,
    key: ChainKey,
    state: Mutex<Queue>,
    failures: AtomicU64,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Waiter>,
    writing: bool,
}

impl Writer {
    pub fn new(db: Db, key: ChainKey) -> Arc<Self> {
        Arc::new(Self { db, key, state: Mutex::new(Queue::default()), failures: AtomicU64::new(0) })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue events; the receiver answers once they are committed. The first caller to find no
    /// writer running starts one, as a task of its own: a request dropped halfway (a client
    /// that hung up) must not cut the batch it was writing for everyone else.
    fn submit(self: &Arc<Self>, events: Vec<NewEvent>) -> oneshot::Receiver<Result<(), Error>> {
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut q = self.queue();
            q.pending.push((events, tx));
            !std::mem::replace(&mut q.writing, true)
        };
        if lead {
            tokio::spawn(self.clone().write_all());
        }
        rx
    }

    /// Write batches until nothing waits.
    async fn write_all(self: Arc<Self>) {
        // Dropped before the queue was seen empty (the runtime stopping mid-batch): let the next
        // caller start a writer, and refuse those still waiting rather than leave them hanging.
        struct Release(Arc<Writer>, bool);
        impl Drop for Release {
            fn drop(&mut self) {
                if self.1 {
                    let stranded = {
                        let mut q = self.0.queue();
                        q.writing = false;
                        std::mem::take(&mut q.pending)
                    };
                    for (_, tx) in stranded {
                        let _ = tx.send(Err(unavailable("the audit writer stopped")));
                    }
                }
            }
        }
        let mut release = Release(self.clone(), true);
        loop {
            let batch = {
                let mut q = self.queue();
                if q.pending.is_empty() {
                    q.writing = false;
                    release.1 = false;
                    return;
                }
                std::mem::take(&mut q.pending)
            };
            if self.write(batch).await {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// One batch in one transaction; on failure, each caller's events on their own. True when
    /// something could not be written.
    async fn write(&self, batch: Vec<Waiter>) -> bool {
        let events: Vec<NewEvent> = batch.iter().flat_map(|(e, _)| e.iter().cloned()).collect();
        if audit::append(&self.db, &self.key, &events).await.is_ok() {
            for (_, tx) in batch {
                let _ = tx.send(Ok(()));
            }
            return false;
        }
        // One caller's events may be what failed: retry each on its own.
        let mut failed = false;
        for (events, tx) in batch {
            let r = audit::append(&self.db, &self.key, &events).await.map(|_| ()).map_err(|e| {
                failed = true;
                Error::new(Code::AuditUnavailable).caused_by(anyhow::anyhow!("audit append failed: {e}")).retry_after(5)
            });
            let _ = tx.send(r);
        }
        failed
    }
}

fn unavailable(why: &'static str) -> Error {
    Error::new(Code::AuditUnavailable).caused_by(anyhow::anyhow!(why)).retry_after(5)
}

/// The actor beside the writer: verifies the chain, and answers pings with the writer's state.
pub struct AuditActor {
    writer: Arc<Writer>,
}

impl AuditActor {
    pub fn new(writer: Arc<Writer>) -> Self {
        Self { writer }
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
        let db = self.writer.db.clone();
        let key = self.writer.key.clone();
        Box::pin(async move { audit::verify(&db, &key).await.map_err(Error::store) })
    }
}

impl Handler<Ping> for AuditActor {
    type Result = MessageResult<Ping>;
    fn handle(&mut self, _: Ping, _: &mut Self::Context) -> Self::Result {
        let waiting = self.writer.queue().pending.len();
        let failures = self.writer.failures.load(Ordering::Relaxed);
        MessageResult(ActorStatus {
            ok: true,
            detail: format!("{waiting} waiting, {failures} failed batch(es) since start"),
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
    writer: Arc<Writer>,
}

impl Audit {
    pub fn new(actor: crate::Handle<AuditActor>, writer: Arc<Writer>) -> Self {
        Self { actor, writer }
    }

    /// Append events and wait for the commit (fail closed).
    pub async fn write(&self, events: Vec<NewEvent>) -> Result<(), Error> {
        self.writer.submit(events).await.unwrap_or_else(|_| Err(unavailable("the audit writer stopped")))
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
