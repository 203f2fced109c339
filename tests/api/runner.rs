//! The job runner actor inside a running app: jobs run, fail and retry, and leases are handed
//! back at graceful shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use careport_actors::{JobError, JobHandler};
use careport_store::{Job, JobQueue, NewJob};
use careport_tests::spawn_app_with;
use futures_util::future::BoxFuture;
use serde_json::json;

/// Fails the first `fail_first` runs of each job, then succeeds; counts runs.
struct Flaky {
    kind: &'static str,
    fail_first: i32,
    runs: Arc<AtomicUsize>,
    delay: Duration,
}

impl JobHandler for Flaky {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn concurrency(&self) -> usize {
        4
    }
    fn run(&self, job: Job) -> BoxFuture<'static, Result<(), JobError>> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let fail = job.attempts <= self.fail_first;
        let delay = self.delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            if fail { Err(JobError::Retry("transient".into())) } else { Ok(()) }
        })
    }
}

async fn wait_for(queue: &JobQueue, id: careport_domain::JobId, state: &str) -> Job {
    for _ in 0..200 {
        let job = queue.get(id).await.expect("get").expect("job");
        if job.state == state {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("job {id} never reached {state}");
}

#[actix_web::test]
async fn the_runner_completes_jobs_and_retries_failures() {
    let runs = Arc::new(AtomicUsize::new(0));
    let handler = Arc::new(Flaky { kind: "test.flaky", fail_first: 2, runs: runs.clone(), delay: Duration::ZERO });
    let app = spawn_app_with(|_| {}, vec![handler]).await;
    let queue = JobQueue::new(app.db.clone(), "test", app.settings.jobs.clone());
    let id = queue.enqueue(NewJob::new("test.flaky", json!({}))).await.expect("enqueue");
    let job = wait_for(&queue, id, "done").await;
    assert_eq!(job.attempts, 3, "two failures, then success");
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

#[actix_web::test]
async fn a_job_that_keeps_failing_is_dead_lettered() {
    let runs = Arc::new(AtomicUsize::new(0));
    let handler =
        Arc::new(Flaky { kind: "test.broken", fail_first: i32::MAX, runs: runs.clone(), delay: Duration::ZERO });
    let app = spawn_app_with(|_| {}, vec![handler]).await;
    let queue = JobQueue::new(app.db.clone(), "test", app.settings.jobs.clone());
    let id = queue.enqueue(NewJob::new("test.broken", json!({})).max_attempts(2)).await.expect("enqueue");
    let job = wait_for(&queue, id, "dead").await;
    assert_eq!(job.attempts, 2);
    assert_eq!(job.last_error.as_deref(), Some("transient"));
}

#[actix_web::test]
async fn graceful_shutdown_hands_back_the_leases_of_unfinished_jobs() {
    let runs = Arc::new(AtomicUsize::new(0));
    let handler =
        Arc::new(Flaky { kind: "test.slow", fail_first: 0, runs: runs.clone(), delay: Duration::from_secs(60) });
    let mut app = spawn_app_with(|s| s.http.shutdown_timeout_secs = 1, vec![handler]).await;
    let queue = JobQueue::new(app.db.clone(), "test", app.settings.jobs.clone());
    let id = queue.enqueue(NewJob::new("test.slow", json!({}))).await.expect("enqueue");
    wait_for(&queue, id, "running").await;
    app.stop().await;
    let job = queue.get(id).await.expect("get").expect("job");
    assert_eq!(job.state, "queued", "handed back for another node");
    assert_eq!(job.attempts, 0, "an interrupted run is not held against the job");
    assert!(job.lease_owner.is_none());
}

#[actix_web::test]
async fn jobs_left_running_by_a_dead_process_are_picked_up_at_boot() {
    let runs = Arc::new(AtomicUsize::new(0));
    let tdb = careport_tests::TestDb::new().await;
    let db = tdb.connect().await;
    // A "previous process" claimed a job with a lease that has since expired.
    let dead_node = JobQueue::new(
        db.clone(),
        "dead-node",
        careport_store::JobConfig { lease_secs: 1, ..careport_tests::test_settings(&tdb).jobs },
    );
    let id = dead_node.enqueue(NewJob::new("test.boot", json!({}))).await.expect("enqueue");
    assert_eq!(dead_node.claim("test.boot", 1).await.expect("claim").len(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    db.close().await;

    let handler = Arc::new(Flaky { kind: "test.boot", fail_first: 0, runs: runs.clone(), delay: Duration::ZERO });
    let settings = careport_tests::test_settings(&tdb);
    let app = careport::Application::build_with(settings, vec![handler]).await.expect("build");
    let stop = app.stop_handle();
    let task = actix_web::rt::spawn(app.run_until_stopped());
    let queue = JobQueue::new(tdb.connect().await, "test", careport_tests::test_settings(&tdb).jobs);
    let job = wait_for(&queue, id, "done").await;
    assert_eq!(job.attempts, 2);
    stop.stop();
    task.await.expect("task").expect("clean stop");
}

/// Never finishes; records when its future is dropped.
struct Endless {
    dropped: Arc<AtomicUsize>,
}

struct DropFlag(Arc<AtomicUsize>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl JobHandler for Endless {
    fn kind(&self) -> &'static str {
        "test.endless"
    }
    fn run(&self, _job: Job) -> BoxFuture<'static, Result<(), JobError>> {
        let flag = DropFlag(self.dropped.clone());
        Box::pin(async move {
            let _flag = flag;
            futures_util::future::pending::<()>().await;
            Ok(())
        })
    }
}

#[actix_web::test]
async fn a_job_whose_lease_is_taken_over_is_stopped_on_this_node() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let app = spawn_app_with(|s| s.jobs.lease_secs = 1, vec![Arc::new(Endless { dropped: dropped.clone() })]).await;
    let queue = JobQueue::new(app.db.clone(), "test", app.settings.jobs.clone());
    let id = queue.enqueue(NewJob::new("test.endless", json!({}))).await.expect("enqueue");
    wait_for(&queue, id, "running").await;
    assert_eq!(dropped.load(Ordering::SeqCst), 0);
    // Another node takes the job over (as after an expired lease).
    let other = JobQueue::new(app.db.clone(), "other-node", app.settings.jobs.clone());
    let sql = "UPDATE jobs SET state = 'queued', lease_owner = NULL WHERE id = $1";
    match &app.db {
        careport_store::Db::Sqlite { write, .. } => {
            sqlx::query(sqlx::AssertSqlSafe(sql.replace("$1", "?1"))).bind(id.0).execute(write).await.map(|_| ())
        }
        careport_store::Db::Postgres(p) => sqlx::query(sql).bind(id.0).execute(p).await.map(|_| ()),
    }
    .expect("requeue");
    // Whoever claims it now (the other node, or this node's runner as a new attempt), the
    // attempt that was running here has lost its lease and must be stopped.
    other.claim("test.endless", 1).await.expect("claim");
    for _ in 0..100 {
        if dropped.load(Ordering::SeqCst) >= 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the job kept running after its lease was taken over");
}
