//! The `OcrSupervisor` actor: owns this node's OCR workers and the jobs running on them.
//!
//! The queue's `JobRunner` claims OCR jobs like any other (leases, heartbeats, retries, dead
//! letters, re-queueing after a crash) and hands each to the supervisor through
//! [`OcrHandler`]. The supervisor keeps a cancel flag per running job, set when a cancel for it
//! arrives on the bus from any node, or when the runner gives the job up (its lease was lost):
//! the pages still queued are then skipped unread.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix::prelude::*;
use careport_store::Job;
use futures_util::future::BoxFuture;
use uuid::Uuid;

use super::pool::{GpuState, OcrPool};
use super::{CANCEL_CHANNEL, OCR_JOB, Ocr, job};
use crate::jobs::{JobError, JobHandler};
use crate::{ActorStatus, Ping};

pub struct OcrSupervisor {
    ocr: Ocr,
    pool: OcrPool,
    running: HashMap<Uuid, Arc<AtomicBool>>,
}

impl OcrSupervisor {
    pub fn new(ocr: Ocr, pool: OcrPool) -> Self {
        Self { ocr, pool, running: HashMap::new() }
    }
}

impl Actor for OcrSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Cancels from any node: stop this node's pages of that job.
        let mut rx = self.ocr.inner.bus.subscribe(CANCEL_CHANNEL);
        let me = ctx.address();
        ctx.spawn(
            async move {
                loop {
                    match rx.recv().await {
                        Ok(event) => {
                            if let Some(id) = std::str::from_utf8(&event).ok().and_then(|s| s.parse::<Uuid>().ok()) {
                                me.do_send(Cancel(id));
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    }
                }
            }
            .into_actor(self),
        );
    }
}

impl Supervised for OcrSupervisor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        // The futures of the old instance are gone; their jobs' leases expire and the queue
        // hands them out again. Stop their pages.
        for flag in self.running.values() {
            flag.store(true, Ordering::Relaxed);
        }
        self.running.clear();
        tracing::warn!("OCR supervisor restarting");
    }
}

/// Run a claimed job to its end.
#[derive(Message)]
#[rtype(result = "Result<(), JobError>")]
pub struct RunJob(pub Job);

/// Stop a job's pages on this node (a cancel, or the runner gave the job up).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Cancel(pub Uuid);

/// What the supervisor is doing.
#[derive(Message)]
#[rtype(result = "SupervisorStats")]
pub struct Stats;

#[derive(Debug, Clone, serde::Serialize)]
pub struct SupervisorStats {
    pub running_jobs: usize,
    pub cpu_workers: usize,
    pub busy_workers: usize,
    pub queued_pages: usize,
    /// `running`, or why the GPU worker is off.
    pub gpu: String,
}

impl Handler<RunJob> for OcrSupervisor {
    type Result = ResponseActFuture<Self, Result<(), JobError>>;

    fn handle(&mut self, msg: RunJob, _: &mut Context<Self>) -> Self::Result {
        let id = serde_json::from_str::<job::Payload>(&msg.0.payload).ok().map(|p| p.ocr_job);
        let flag = Arc::new(AtomicBool::new(false));
        if let Some(id) = id {
            self.running.insert(id, flag.clone());
        }
        let fut = job::run(self.ocr.clone(), self.pool.clone(), msg.0, flag);
        Box::pin(fut.into_actor(self).map(move |result, act, _| {
            if let Some(id) = id {
                act.running.remove(&id);
            }
            result
        }))
    }
}

impl Handler<Cancel> for OcrSupervisor {
    type Result = ();
    fn handle(&mut self, msg: Cancel, _: &mut Context<Self>) {
        if let Some(flag) = self.running.get(&msg.0) {
            flag.store(true, Ordering::Relaxed);
        }
    }
}

impl Handler<Stats> for OcrSupervisor {
    type Result = MessageResult<Stats>;
    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(SupervisorStats {
            running_jobs: self.running.len(),
            cpu_workers: self.pool.cpu_workers(),
            busy_workers: self.pool.busy(),
            queued_pages: self.pool.queued(),
            gpu: match self.pool.gpu() {
                GpuState::Running => "running".to_owned(),
                GpuState::Off(why) => format!("off: {why}"),
            },
        })
    }
}

impl Handler<Ping> for OcrSupervisor {
    type Result = MessageResult<Ping>;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> Self::Result {
        // Checked when the supervisor was started (`Ocr::check_packs`).
        let missing = self.ocr.check_packs();
        let gpu = match self.pool.gpu() {
            GpuState::Running => "GPU worker running".to_owned(),
            GpuState::Off(why) => format!("GPU worker off ({why})"),
        };
        let mut detail = format!(
            "{} CPU worker(s), {} job(s) running, {} page(s) queued; {gpu}",
            self.pool.cpu_workers(),
            self.running.len(),
            self.pool.queued()
        );
        if !missing.is_empty() {
            detail.push_str(&format!("; language packs missing: {}", missing.join(", ")));
        }
        // Serving its mailbox is what the actor answers for; missing packs are `/readyz`'s `ocr`.
        MessageResult(ActorStatus { ok: true, detail })
    }
}

/// The queue's handler of OCR jobs: hands each claimed job to the supervisor.
pub struct OcrHandler {
    supervisor: Addr<OcrSupervisor>,
    concurrency: usize,
}

impl OcrHandler {
    pub fn new(supervisor: Addr<OcrSupervisor>, concurrency: usize) -> Self {
        Self { supervisor, concurrency }
    }
}

/// Tells the supervisor to stop a job's pages if the runner drops the job's future (its lease
/// was lost to another node) before it ended.
struct StopOnDrop {
    supervisor: Addr<OcrSupervisor>,
    id: Option<Uuid>,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.supervisor.do_send(Cancel(id));
        }
    }
}

impl JobHandler for OcrHandler {
    fn kind(&self) -> &'static str {
        OCR_JOB
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    fn run(&self, job: Job) -> BoxFuture<'static, Result<(), JobError>> {
        let supervisor = self.supervisor.clone();
        let id = serde_json::from_str::<job::Payload>(&job.payload).ok().map(|p| p.ocr_job);
        Box::pin(async move {
            let mut guard = StopOnDrop { supervisor: supervisor.clone(), id };
            let result = supervisor
                .send(RunJob(job))
                .await
                .unwrap_or_else(|e| Err(JobError::Retry(format!("the OCR supervisor did not answer: {e}"))));
            guard.id = None;
            result
        })
    }
}
