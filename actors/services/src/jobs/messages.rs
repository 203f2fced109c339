//! Messages the job runner answers.

use std::time::Duration;

use actix::Message;

/// Look for due jobs now instead of at the next poll (sent after a local enqueue).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

/// Stop claiming, wait up to `grace` for running jobs; answers how many are still running.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Drain {
    pub grace: Duration,
}

/// What the runner is doing.
#[derive(Message)]
#[rtype(result = "RunnerStats")]
pub struct Stats;

#[derive(Debug, Clone, Default)]
pub struct RunnerStats {
    pub running: usize,
    pub completed: u64,
    pub failed: u64,
    pub draining: bool,
}
