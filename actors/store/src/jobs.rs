//! The durable job queue: OCR, embeddings, e-mail and reminders are rows here before any actor
//! hears of them, so a crash or a restart loses no accepted work.
//!
//! Life of a job: `queued` → (claim) `running` with a lease → `done`, or back to `queued` with
//! a backoff delay after a failure, or `dead` once `max_attempts` are spent. A worker extends
//! its lease with heartbeats; a lease that expires (its node died) is re-queued by
//! [`JobQueue::reclaim_expired`], which every node runs at boot and then periodically.
//! Every state change after the claim is fenced by the lease owner and the attempt, so a
//! worker that lost its lease cannot overwrite the work of the worker that took the job over.
//!
//! A finished job keeps `lease_owner`: the node that completed it (operators and the cluster
//! tests read who ran what).
//!
//! Claiming uses `FOR UPDATE SKIP LOCKED` on PostgreSQL, so any number of nodes share the
//! queue without blocking one another; on SQLite the single writer connection serialises it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use careport_domain::JobId;
use careport_domain::time::{ms, now_ms};
use serde::{Deserialize, Serialize};

use crate::db::Db;
use crate::sql::Sql;
use crate::{exec, fetch, scalar};

/// `[jobs]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// How often an idle worker looks for new jobs, in milliseconds.
    pub poll_interval_ms: u64,
    /// How long a claim holds a job before another node may take it over, in seconds.
    pub lease_secs: u64,
    /// Attempts before a job is dead-lettered (a job may ask for its own number).
    pub max_attempts: i32,
    /// First retry delay, in milliseconds; doubled on each further attempt.
    pub backoff_base_ms: u64,
    /// Longest retry delay, in milliseconds.
    pub backoff_max_ms: u64,
    /// How long finished jobs are kept before they are purged, in hours (dead jobs are kept).
    pub retention_hours: u64,
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    /// Identifiers and parameters only: never patient data (the table is not encrypted).
    pub payload: serde_json::Value,
    pub priority: i32,
    pub max_attempts: Option<i32>,
    pub run_at: Option<i64>,
    /// At most one job with this key exists; enqueueing it again returns the existing id.
    pub dedup_key: Option<String>,
}

impl NewJob {
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> Self {
        Self { kind: kind.into(), payload, priority: 0, max_attempts: None, run_at: None, dedup_key: None }
    }

    pub fn dedup_key(mut self, key: impl Into<String>) -> Self {
        self.dedup_key = Some(key.into());
        self
    }

    pub fn run_at(mut self, unix_ms: i64) -> Self {
        self.run_at = Some(unix_ms);
        self
    }

    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    pub fn max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = Some(n);
        self
    }
}

/// A job as stored.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub state: String,
    pub priority: i32,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// One claim of a job: the job and the attempt it was claimed for. Every change after the
/// claim is fenced by node *and* attempt, so a worker whose lease expired and was re-claimed —
/// even by its own node — cannot touch the new attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    pub id: JobId,
    pub attempt: i32,
}

impl Job {
    pub fn id(&self) -> JobId {
        JobId(self.id)
    }

    /// This claim's lease.
    pub fn lease(&self) -> Lease {
        Lease { id: JobId(self.id), attempt: self.attempts }
    }

    /// The payload as JSON (it was JSON when enqueued).
    pub fn payload_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload).unwrap_or(serde_json::Value::Null)
    }
}

/// What became of a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Queued again, to run at this time.
    Retry { run_at: i64 },
    /// Out of attempts, or failed permanently: dead-lettered.
    Dead,
    /// The lease was lost (expired and taken over); nothing was changed.
    LeaseLost,
}

/// Queue a job inside a [`transaction!`](crate::transaction) block, with the row that says what
/// it is about: `enqueue_in_tx!(tx, dialect, kind, payload, max_attempts, now)` evaluates to the
/// new job's id. A worker cannot claim the job before that row exists (it would find nothing to
/// do and end the job, leaving the row waiting for ever), and a crash leaves both or neither.
#[macro_export]
macro_rules! enqueue_in_tx {
    ($tx:expr, $dialect:expr, $kind:expr, $payload:expr, $max_attempts:expr, $now:expr) => {
        sqlx::query_scalar::<_, i64>($crate::jobs::ENQUEUE.text($dialect))
            .bind($kind)
            .bind($payload)
            .bind(0i32)
            .bind(($max_attempts).max(1))
            .bind($now)
            .bind(None::<String>)
            .bind($now)
            .fetch_one(&mut *$tx)
            .await?
    };
}

#[doc(hidden)]
pub static ENQUEUE: Sql = Sql::new(
    "INSERT INTO jobs (kind, payload, state, priority, attempts, max_attempts, run_at, dedup_key, created_at, updated_at)
     VALUES ($1, $2, 'queued', $3, 0, $4, $5, $6, $7, $7)
     ON CONFLICT (dedup_key) DO NOTHING
     RETURNING id",
);
static BY_DEDUP_KEY: Sql = Sql::new("SELECT id FROM jobs WHERE dedup_key = $1");
static CLAIM: Sql = Sql::each(
    "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $1, lease_until = $2, updated_at = $3
     WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' AND kind = $4 AND run_at <= $3
                  ORDER BY priority DESC, run_at, id LIMIT $5 FOR UPDATE SKIP LOCKED)
     RETURNING id, kind, payload, state, priority, attempts, max_attempts, run_at, lease_owner, lease_until, last_error, created_at, finished_at",
    "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $1, lease_until = $2, updated_at = $3
     WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' AND kind = $4 AND run_at <= $3
                  ORDER BY priority DESC, run_at, id LIMIT $5)
     RETURNING id, kind, payload, state, priority, attempts, max_attempts, run_at, lease_owner, lease_until, last_error, created_at, finished_at",
);
static HEARTBEAT: Sql = Sql::new(
    "UPDATE jobs SET lease_until = $1, updated_at = $2
     WHERE id = $3 AND lease_owner = $4 AND attempts = $5 AND state = 'running'",
);
static COMPLETE: Sql = Sql::new(
    "UPDATE jobs SET state = 'done', lease_until = NULL, last_error = NULL, finished_at = $1, updated_at = $1
     WHERE id = $2 AND lease_owner = $3 AND attempts = $4 AND state = 'running'",
);
static FAIL: Sql = Sql::new(
    "UPDATE jobs SET
        state = CASE WHEN $1 OR attempts >= max_attempts THEN 'dead' ELSE 'queued' END,
        finished_at = CASE WHEN $1 OR attempts >= max_attempts THEN $2 ELSE NULL END,
        run_at = $3, last_error = $4, lease_owner = NULL, lease_until = NULL, updated_at = $2
     WHERE id = $5 AND lease_owner = $6 AND attempts = $7 AND state = 'running'
     RETURNING state",
);
static RECLAIM: Sql = Sql::new(
    "UPDATE jobs SET
        state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END,
        finished_at = CASE WHEN attempts >= max_attempts THEN $1 ELSE NULL END,
        last_error = 'lease expired: the worker stopped or its node died',
        lease_owner = NULL, lease_until = NULL, updated_at = $1
     WHERE state = 'running' AND lease_until < $1",
);
static RELEASE: Sql = Sql::new(
    "UPDATE jobs SET state = 'queued', attempts = attempts - 1, lease_owner = NULL, lease_until = NULL, updated_at = $1
     WHERE state = 'running' AND lease_owner = $2",
);
static RETRY_DEAD: Sql = Sql::new(
    "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $1, finished_at = NULL, updated_at = $1 WHERE id = $2 AND state = 'dead'",
);
static PURGE: Sql = Sql::new("DELETE FROM jobs WHERE state = 'done' AND finished_at < $1");
static RUNNING_ON: Sql = Sql::new("SELECT COUNT(*) FROM jobs WHERE state = 'running' AND lease_owner = $1");
static COUNTS: Sql = Sql::new("SELECT state, COUNT(*) FROM jobs GROUP BY state");
static GET: Sql = Sql::new(
    "SELECT id, kind, payload, state, priority, attempts, max_attempts, run_at, lease_owner, lease_until, last_error, created_at, finished_at
     FROM jobs WHERE id = $1",
);

/// The queue, as one node sees it: `node` names this process in leases.
#[derive(Clone, Debug)]
pub struct JobQueue {
    db: Db,
    node: String,
    cfg: JobConfig,
    tally: Arc<Tally>,
}

/// What this node's runner has done since it started, for `careport cluster status`.
#[derive(Debug, Default)]
struct Tally {
    done: AtomicU64,
    failed: AtomicU64,
}

impl JobQueue {
    pub fn new(db: Db, node: impl Into<String>, cfg: JobConfig) -> Self {
        Self { db, node: node.into(), cfg, tally: Arc::default() }
    }

    /// Jobs this process completed and failed (each failed attempt) since it started.
    pub fn tally(&self) -> (u64, u64) {
        (self.tally.done.load(Ordering::Relaxed), self.tally.failed.load(Ordering::Relaxed))
    }

    /// Jobs leased to this node now.
    pub async fn running_here(&self) -> Result<i64, sqlx::Error> {
        scalar!(self.db.reader(), i64, fetch_one, &RUNNING_ON, &self.node)
    }

    /// This node's name in leases.
    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn config(&self) -> &JobConfig {
        &self.cfg
    }

    /// Store a job. Once this returns, the job survives any crash.
    pub async fn enqueue(&self, job: NewJob) -> Result<JobId, sqlx::Error> {
        let now = now_ms();
        let payload = job.payload.to_string();
        let max_attempts = job.max_attempts.unwrap_or(self.cfg.max_attempts).max(1);
        let inserted: Option<i64> = scalar!(
            self.db.writer(),
            i64,
            fetch_optional,
            &ENQUEUE,
            &job.kind,
            &payload,
            job.priority,
            max_attempts,
            job.run_at.unwrap_or(now),
            &job.dedup_key,
            now
        )?;
        match (inserted, &job.dedup_key) {
            (Some(id), _) => Ok(JobId(id)),
            (None, Some(key)) => scalar!(self.db.reader(), i64, fetch_one, &BY_DEDUP_KEY, key).map(JobId),
            (None, None) => Err(sqlx::Error::RowNotFound),
        }
    }

    /// Take up to `limit` due jobs of `kind`, leasing them to this node.
    pub async fn claim(&self, kind: &str, limit: i64) -> Result<Vec<Job>, sqlx::Error> {
        let now = now_ms();
        let until = now + ms(self.lease());
        let mut jobs = fetch!(self.db.writer(), Job, fetch_all, &CLAIM, &self.node, until, now, kind, limit)?;
        // RETURNING has no order; hand them out in the order the queue meant.
        jobs.sort_by_key(|j| (-j.priority, j.run_at, j.id));
        Ok(jobs)
    }

    /// Extend the lease. `false`: the lease was lost and the worker must stop the job.
    pub async fn heartbeat(&self, lease: Lease) -> Result<bool, sqlx::Error> {
        let now = now_ms();
        let n =
            exec!(self.db.writer(), &HEARTBEAT, now + ms(self.lease()), now, lease.id.0, &self.node, lease.attempt)?;
        Ok(n == 1)
    }

    /// Mark done. `false`: the lease was lost before completion (another worker owns it now).
    pub async fn complete(&self, lease: Lease) -> Result<bool, sqlx::Error> {
        let n = exec!(self.db.writer(), &COMPLETE, now_ms(), lease.id.0, &self.node, lease.attempt)?;
        if n == 1 {
            self.tally.done.fetch_add(1, Ordering::Relaxed);
        }
        Ok(n == 1)
    }

    /// Record a failure: retry with exponential backoff, or dead-letter when out of attempts
    /// or when `permanent`. `attempts` is the job's attempt count as claimed.
    pub async fn fail(&self, lease: Lease, error: &str, permanent: bool) -> Result<FailOutcome, sqlx::Error> {
        let now = now_ms();
        let run_at = now + ms(self.backoff(lease.attempt));
        let error: String = error.chars().take(2000).collect();
        let state: Option<String> = scalar!(
            self.db.writer(),
            String,
            fetch_optional,
            &FAIL,
            permanent,
            now,
            run_at,
            &error,
            lease.id.0,
            &self.node,
            lease.attempt
        )?;
        if state.is_some() {
            self.tally.failed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(match state.as_deref() {
            None => FailOutcome::LeaseLost,
            Some("dead") => FailOutcome::Dead,
            Some(_) => FailOutcome::Retry { run_at },
        })
    }

    /// Re-queue (or dead-letter, when out of attempts) every job whose lease has expired.
    pub async fn reclaim_expired(&self) -> Result<u64, sqlx::Error> {
        exec!(self.db.writer(), &RECLAIM, now_ms())
    }

    /// Hand back this node's leases without counting the attempt (graceful shutdown).
    pub async fn release_own(&self) -> Result<u64, sqlx::Error> {
        exec!(self.db.writer(), &RELEASE, now_ms(), &self.node)
    }

    /// Give a dead job a fresh set of attempts (an operator's decision).
    pub async fn retry_dead(&self, id: JobId) -> Result<bool, sqlx::Error> {
        Ok(exec!(self.db.writer(), &RETRY_DEAD, now_ms(), id.0)? == 1)
    }

    /// Delete finished jobs older than the retention period.
    pub async fn purge_finished(&self) -> Result<u64, sqlx::Error> {
        let cutoff = now_ms() - ms(Duration::from_secs(self.cfg.retention_hours * 3600));
        exec!(self.db.writer(), &PURGE, cutoff)
    }

    /// Number of jobs in each state, for `/metrics`.
    pub async fn counts(&self) -> Result<Vec<(String, i64)>, sqlx::Error> {
        fetch!(self.db.reader(), (String, i64), fetch_all, &COUNTS)
    }

    pub async fn get(&self, id: JobId) -> Result<Option<Job>, sqlx::Error> {
        fetch!(self.db.reader(), Job, fetch_optional, &GET, id.0)
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.cfg.lease_secs.max(1))
    }

    /// Delay before attempt `attempts + 1`: base·2^(attempts−1), capped, ±20 % jitter so that
    /// jobs failing together do not retry together.
    pub fn backoff(&self, attempts: i32) -> Duration {
        let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(0);
        let raw = self.cfg.backoff_base_ms.saturating_mul(1u64 << exp).min(self.cfg.backoff_max_ms);
        let jitter: f64 = rand::random_range(0.8..=1.2);
        Duration::from_millis((raw as f64 * jitter) as u64)
    }
}
