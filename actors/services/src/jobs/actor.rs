//! The `JobRunner` actor.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use careport_store::jobs::FailOutcome;
use careport_store::{Job, JobQueue, Lease};

use super::messages::{Drain, RunnerStats, Stats, Wake};
use super::{JobError, JobHandler};
use crate::{ActorStatus, Ping};

/// How often expired leases are re-queued and old finished jobs purged.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);
/// How often a draining runner checks whether its jobs have finished.
const DRAIN_CHECK: Duration = Duration::from_millis(50);

pub struct JobRunner {
    queue: JobQueue,
    handlers: Vec<Arc<dyn JobHandler>>,
    /// Running jobs per kind.
    running: HashMap<&'static str, usize>,
    /// Kinds with a claim in progress, so two ticks never claim the same kind at once.
    claiming: HashSet<&'static str>,
    /// Running jobs: their kind and the future running them (cancelled if the lease is lost).
    leased: HashMap<Lease, (&'static str, SpawnHandle)>,
    draining: bool,
    completed: u64,
    failed: u64,
}

impl JobRunner {
    pub fn new(queue: JobQueue, handlers: Vec<Arc<dyn JobHandler>>) -> Self {
        Self {
            queue,
            handlers,
            running: HashMap::new(),
            claiming: HashSet::new(),
            leased: HashMap::new(),
            draining: false,
            completed: 0,
            failed: 0,
        }
    }

    fn running_total(&self) -> usize {
        self.running.values().sum()
    }

    /// Jobs running plus claims in flight: what a drain waits for.
    fn busy(&self) -> usize {
        self.running_total() + self.claiming.len()
    }

    /// Claim as many due jobs as each handler has free slots for, and start them.
    fn poll(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        for handler in self.handlers.clone() {
            let kind = handler.kind();
            let free = handler.concurrency().saturating_sub(*self.running.get(kind).unwrap_or(&0));
            if free == 0 || self.claiming.contains(kind) {
                continue;
            }
            self.claiming.insert(kind);
            let queue = self.queue.clone();
            let fut = async move { queue.claim(kind, free as i64).await };
            ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
                act.claiming.remove(kind);
                match res {
                    // Shutdown began while claiming: leave them leased; the drain hands this
                    // node's leases back without counting the attempt.
                    Ok(jobs) if act.draining => tracing::debug!(kind, n = jobs.len(), "claimed while draining"),
                    Ok(jobs) => {
                        for job in jobs {
                            act.start_job(handler.clone(), job, ctx);
                        }
                    }
                    Err(e) => tracing::warn!(kind, error = %e, "could not claim jobs"),
                }
            }));
        }
    }

    fn start_job(&mut self, handler: Arc<dyn JobHandler>, job: Job, ctx: &mut Context<Self>) {
        let kind = handler.kind();
        let lease = job.lease();
        let id = lease.id;
        let queue = self.queue.clone();
        let span = tracing::info_span!("job", job_id = %id, kind, attempt = lease.attempt);
        let work = handler.run(job);
        let fut = async move {
            let _enter = span.clone();
            let result = work.await;
            let outcome = match &result {
                Ok(()) => {
                    queue.complete(lease).await.map(|kept| if kept { None } else { Some(FailOutcome::LeaseLost) })
                }
                Err(e) => queue.fail(lease, &e.to_string(), matches!(e, JobError::Permanent(_))).await.map(Some),
            };
            (result.is_ok(), outcome)
        };
        let handle = ctx.spawn(fut.into_actor(self).map(move |(ok, outcome), act, ctx| {
            act.finished(lease);
            if ok {
                act.completed += 1;
            } else {
                act.failed += 1;
            }
            match outcome {
                Ok(None) => tracing::debug!(job_id = %id, kind, "job done"),
                Ok(Some(FailOutcome::Retry { run_at })) => tracing::info!(job_id = %id, kind, run_at, "job failed; will retry"),
                Ok(Some(FailOutcome::Dead)) => tracing::warn!(job_id = %id, kind, "job failed for good; dead-lettered"),
                Ok(Some(FailOutcome::LeaseLost)) => tracing::warn!(job_id = %id, kind, "job lease was lost; another worker owns it"),
                Err(e) => tracing::error!(job_id = %id, kind, error = %e, "could not record the job's outcome; its lease will expire"),
            }
            // A slot is free: look for more work now rather than at the next tick.
            act.poll(ctx);
        }));
        *self.running.entry(kind).or_default() += 1;
        self.leased.insert(lease, (kind, handle));
    }

    /// Forget a running job; returns its future's handle when it was still tracked.
    fn finished(&mut self, lease: Lease) -> Option<SpawnHandle> {
        let (kind, handle) = self.leased.remove(&lease)?;
        if let Some(n) = self.running.get_mut(kind) {
            *n = n.saturating_sub(1);
        }
        Some(handle)
    }

    /// Renew every running job's lease. A job whose lease is gone (it expired and was taken
    /// over) is stopped here, so two workers never run one attempt side by side.
    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        for lease in self.leased.keys().copied().collect::<Vec<_>>() {
            let queue = self.queue.clone();
            ctx.spawn(async move { (lease, queue.heartbeat(lease).await) }.into_actor(self).map(
                |(lease, beat), act, ctx| match beat {
                    Ok(true) => {}
                    Ok(false) => {
                        if let Some(handle) = act.finished(lease) {
                            ctx.cancel_future(handle);
                            act.failed += 1;
                            tracing::warn!(job_id = %lease.id, "lease lost; the job was stopped on this node");
                        }
                    }
                    Err(e) => tracing::warn!(job_id = %lease.id, error = %e, "heartbeat failed"),
                },
            ));
        }
    }

    /// Re-queue the jobs of a node that died (their leases expired), so that another node
    /// takes them up within about half a lease of the expiry.
    fn reclaim(&mut self, ctx: &mut Context<Self>) {
        let queue = self.queue.clone();
        ctx.spawn(
            async move {
                match queue.reclaim_expired().await {
                    Ok(n) if n > 0 => {
                        tracing::info!(reclaimed = n, "re-queued jobs whose lease expired")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not re-queue expired leases"),
                }
            }
            .into_actor(self),
        );
    }

    fn maintain(&mut self, ctx: &mut Context<Self>) {
        let queue = self.queue.clone();
        ctx.spawn(
            async move {
                match queue.purge_finished().await {
                    Ok(n) if n > 0 => tracing::info!(purged = n, "purged old finished jobs"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not purge finished jobs"),
                }
            }
            .into_actor(self),
        );
    }
}

impl Actor for JobRunner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let cfg = self.queue.config().clone();
        let poll = Duration::from_millis(cfg.poll_interval_ms.max(10));
        // Heartbeat three times per lease, so one missed beat does not lose the job.
        let beat = (self.queue.lease() / 3).max(Duration::from_millis(100));
        ctx.run_interval(poll, |act, ctx| act.poll(ctx));
        ctx.run_interval(beat, |act, ctx| act.heartbeat(ctx));
        ctx.run_interval(MAINTENANCE_INTERVAL, |act, ctx| act.maintain(ctx));
        let reclaim = (self.queue.lease() / 2).clamp(Duration::from_secs(1), MAINTENANCE_INTERVAL);
        ctx.run_interval(reclaim, |act, ctx| act.reclaim(ctx));
        self.poll(ctx);
        tracing::debug!(handlers = self.handlers.len(), "job runner started");
    }
}

impl Supervised for JobRunner {
    /// Futures of the old instance are dropped with it; their jobs keep their leases until
    /// they expire and are re-queued by maintenance. Start clean.
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!(lost = self.running_total(), "job runner restarting");
        self.running.clear();
        self.claiming.clear();
        self.leased.clear();
    }
}

impl Handler<Ping> for JobRunner {
    type Result = MessageResult<Ping>;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> Self::Result {
        let detail = if self.draining {
            "draining".to_owned()
        } else {
            format!("{} handler(s), {} running", self.handlers.len(), self.running_total())
        };
        MessageResult(ActorStatus { ok: !self.draining, detail })
    }
}

impl Handler<Wake> for JobRunner {
    type Result = ();
    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.poll(ctx);
    }
}

impl Handler<Stats> for JobRunner {
    type Result = MessageResult<Stats>;
    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(RunnerStats {
            running: self.running_total(),
            completed: self.completed,
            failed: self.failed,
            draining: self.draining,
        })
    }
}

impl Handler<Drain> for JobRunner {
    type Result = ResponseActFuture<Self, usize>;
    fn handle(&mut self, msg: Drain, _: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        let deadline = tokio::time::Instant::now() + msg.grace;
        // Poll our own state until the jobs are done or the grace period is over.
        let wait = actix::fut::wrap_future::<_, Self>(tokio::time::sleep(DRAIN_CHECK));
        Box::pin(wait.then(move |_, act, _| drain_loop(act.busy(), deadline)))
    }
}

/// Re-check the running jobs and claims every [`DRAIN_CHECK`] until it is zero or `deadline` passes.
fn drain_loop(running: usize, deadline: tokio::time::Instant) -> Pin<Box<dyn ActorFuture<JobRunner, Output = usize>>> {
    if running == 0 || tokio::time::Instant::now() >= deadline {
        return Box::pin(actix::fut::ready(running));
    }
    Box::pin(
        actix::fut::wrap_future::<_, JobRunner>(tokio::time::sleep(DRAIN_CHECK))
            .then(move |_, act, _| drain_loop(act.busy(), deadline)),
    )
}
