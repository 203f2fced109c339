//! The job runner: claims due jobs from the durable queue for each registered
//! [`JobHandler`], keeps their leases alive while they run, records success or failure
//! (retry with backoff, dead letter after `max_attempts`), re-queues expired leases of dead
//! nodes, purges old finished jobs, and hands its leases back at shutdown.
//!
//! Handlers run as futures on the runner's arbiter; one that has blocking work sends it to
//! the blocking pool or a `SyncArbiter` itself.

mod actor;
mod messages;

pub use actor::JobRunner;
pub use messages::{Drain, RunnerStats, Stats, Wake};

use careport_store::Job;
use futures_util::future::BoxFuture;

/// Why a job failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    /// Worth trying again later (a dependency was down).
    #[error("{0}")]
    Retry(String),
    /// Will never succeed (bad payload, the subject was deleted): dead-letter at once.
    #[error("{0}")]
    Permanent(String),
}

/// Work of one kind. Register an implementation with [`crate::Services::start`].
pub trait JobHandler: Send + Sync + 'static {
    /// The `kind` column this handler takes.
    fn kind(&self) -> &'static str;

    /// How many jobs of this kind may run at once on this node.
    fn concurrency(&self) -> usize {
        1
    }

    /// Do the work. The error's text is stored in `last_error`: keep patient data out of it.
    fn run(&self, job: Job) -> BoxFuture<'static, Result<(), JobError>>;
}
