//! The durable job queue, on the store directly: claim, lease, retry, dead letters, fencing.

use std::collections::HashSet;

use careport_domain::JobId;
use careport_store::jobs::FailOutcome;
use careport_store::{Db, JobConfig, JobQueue, NewJob};
use careport_tests::TestDb;
use serde_json::json;

fn cfg() -> JobConfig {
    JobConfig {
        poll_interval_ms: 50,
        lease_secs: 30,
        max_attempts: 3,
        backoff_base_ms: 1,
        backoff_max_ms: 5,
        retention_hours: 1,
    }
}

async fn queue() -> (TestDb, Db, JobQueue) {
    let tdb = TestDb::new().await;
    let db = tdb.connect().await;
    let q = JobQueue::new(db.clone(), "node-a", cfg());
    (tdb, db, q)
}

#[actix_web::test]
async fn an_enqueued_job_is_claimed_once_and_completed() {
    let (_t, _db, q) = queue().await;
    let id = q.enqueue(NewJob::new("ocr", json!({"record": "r1"}))).await.expect("enqueue");
    let jobs = q.claim("ocr", 10).await.expect("claim");
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job.id(), id);
    assert_eq!(job.state, "running");
    assert_eq!(job.attempts, 1);
    assert_eq!(job.lease_owner.as_deref(), Some("node-a"));
    assert_eq!(job.payload_json(), json!({"record": "r1"}));
    assert!(q.claim("ocr", 10).await.expect("claim again").is_empty(), "a leased job is not handed out twice");
    assert!(q.complete(job.lease()).await.expect("complete"));
    let stored = q.get(id).await.expect("get").expect("exists");
    assert_eq!(stored.state, "done");
    assert!(stored.finished_at.is_some());
    assert_eq!(q.counts().await.expect("counts"), vec![("done".to_owned(), 1)]);
}

#[actix_web::test]
async fn claims_take_only_due_jobs_of_their_kind_in_priority_order() {
    let (_t, _db, q) = queue().await;
    let later = careport_domain::time::now_ms() + 60_000;
    q.enqueue(NewJob::new("email", json!(1))).await.expect("other kind");
    q.enqueue(NewJob::new("ocr", json!("future")).run_at(later)).await.expect("future");
    let low = q.enqueue(NewJob::new("ocr", json!("low"))).await.expect("low");
    let high = q.enqueue(NewJob::new("ocr", json!("high")).priority(5)).await.expect("high");
    let jobs = q.claim("ocr", 10).await.expect("claim");
    let ids: Vec<JobId> = jobs.iter().map(|j| j.id()).collect();
    assert_eq!(ids, vec![high, low]);
}

/// Two nodes are two processes with pools of their own: node b gets its own connections to the
/// same store (on SQLite, a second pool on the same file, as a second process would open it), so
/// that the claims really race in the database on either backend, not only behind one pool's
/// single writer.
#[actix_web::test]
async fn concurrent_claims_from_two_nodes_never_share_a_job() {
    let (t, _db, a) = queue().await;
    let b = JobQueue::new(t.connect().await, "node-b", cfg());
    for i in 0..40 {
        a.enqueue(NewJob::new("embed", json!(i))).await.expect("enqueue");
    }
    let mut handles = Vec::new();
    for q in [a.clone(), b.clone(), a.clone(), b.clone()] {
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = q.claim("embed", 3).await.expect("claim");
                if got.is_empty() {
                    break mine;
                }
                mine.extend(got.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("task"));
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 40, "every job claimed");
    assert_eq!(unique.len(), 40, "no job claimed twice");
}

#[actix_web::test]
async fn failures_retry_with_backoff_then_dead_letter() {
    let (_t, _db, q) = queue().await;
    let id = q.enqueue(NewJob::new("email", json!({}))).await.expect("enqueue");
    for attempt in 1..=3 {
        // Backoff is at most 5 ms here; wait it out.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let job = q.claim("email", 1).await.expect("claim").pop().expect("due again");
        assert_eq!(job.attempts, attempt);
        let outcome = q.fail(job.lease(), "smtp refused", false).await.expect("fail");
        if attempt < 3 {
            assert!(matches!(outcome, FailOutcome::Retry { .. }), "{outcome:?}");
        } else {
            assert_eq!(outcome, FailOutcome::Dead);
        }
    }
    let dead = q.get(id).await.expect("get").expect("exists");
    assert_eq!(dead.state, "dead");
    assert_eq!(dead.last_error.as_deref(), Some("smtp refused"));
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(q.claim("email", 1).await.expect("claim").is_empty(), "dead jobs are not retried");
    assert!(q.retry_dead(id).await.expect("retry dead"));
    assert_eq!(q.claim("email", 1).await.expect("claim").len(), 1, "an operator can revive it");
}

#[actix_web::test]
async fn a_permanent_failure_dead_letters_at_once() {
    let (_t, _db, q) = queue().await;
    let id = q.enqueue(NewJob::new("ocr", json!({}))).await.expect("enqueue");
    let job = q.claim("ocr", 1).await.expect("claim").pop().expect("job");
    assert_eq!(job.id(), id);
    assert_eq!(q.fail(job.lease(), "unreadable file", true).await.expect("fail"), FailOutcome::Dead);
}

#[actix_web::test]
async fn backoff_doubles_and_is_capped() {
    let q = JobQueue::new(
        TestDb::sqlite().connect().await,
        "n",
        JobConfig { backoff_base_ms: 1000, backoff_max_ms: 10_000, ..cfg() },
    );
    let ms = |n| q.backoff(n).as_millis();
    assert!((800..=1200).contains(&ms(1)), "{}", ms(1));
    assert!((1600..=2400).contains(&ms(2)), "{}", ms(2));
    assert!((8000..=12000).contains(&ms(10)), "capped: {}", ms(10));
}

#[actix_web::test]
async fn expired_leases_are_reclaimed_and_the_old_owner_is_fenced_off() {
    let (_t, db, a) = queue().await;
    let short = JobQueue::new(db.clone(), "node-dead", JobConfig { lease_secs: 1, ..cfg() });
    a.enqueue(NewJob::new("ocr", json!({}))).await.expect("enqueue");
    let old = short.claim("ocr", 1).await.expect("claim").pop().expect("job").lease();
    assert_eq!(a.reclaim_expired().await.expect("reclaim"), 0, "the lease is still valid");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(a.reclaim_expired().await.expect("reclaim"), 1);
    let job = a.claim("ocr", 1).await.expect("claim").pop().expect("due again");
    assert_eq!(job.attempts, 2, "the lost attempt counts");
    assert!(!short.complete(old).await.expect("complete"), "the old owner cannot complete");
    assert!(!short.heartbeat(old).await.expect("heartbeat"), "nor extend the lease");
    assert_eq!(short.fail(old, "late", false).await.expect("fail"), FailOutcome::LeaseLost);
    assert!(a.heartbeat(job.lease()).await.expect("heartbeat"));
    assert!(a.complete(job.lease()).await.expect("complete"));
}

#[actix_web::test]
async fn a_stale_attempt_is_fenced_off_even_when_its_own_node_reclaims_the_job() {
    let (_t, db, _) = queue().await;
    let node = JobQueue::new(db.clone(), "node-a", JobConfig { lease_secs: 1, ..cfg() });
    node.enqueue(NewJob::new("ocr", json!({}))).await.expect("enqueue");
    let first = node.claim("ocr", 1).await.expect("claim").pop().expect("job").lease();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    node.reclaim_expired().await.expect("reclaim");
    let second = node.claim("ocr", 1).await.expect("claim").pop().expect("job").lease();
    assert_eq!((first.id, first.attempt + 1), (second.id, second.attempt));
    assert!(!node.complete(first).await.expect("complete"), "the stale attempt cannot finish the new one");
    assert!(!node.heartbeat(first).await.expect("heartbeat"));
    assert!(node.complete(second).await.expect("complete"));
}

#[actix_web::test]
async fn a_lease_that_expires_on_the_last_attempt_dead_letters() {
    let (_t, db, a) = queue().await;
    let short = JobQueue::new(db.clone(), "node-dead", JobConfig { lease_secs: 1, ..cfg() });
    let id = a.enqueue(NewJob::new("ocr", json!({})).max_attempts(1)).await.expect("enqueue");
    assert_eq!(short.claim("ocr", 1).await.expect("claim").len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    a.reclaim_expired().await.expect("reclaim");
    assert_eq!(
        a.get(id).await.expect("get").expect("job").state,
        "dead",
        "a job that kills its worker stops at max_attempts"
    );
}

#[actix_web::test]
async fn released_leases_are_due_again_without_losing_an_attempt() {
    let (_t, _db, q) = queue().await;
    let id = q.enqueue(NewJob::new("ocr", json!({}))).await.expect("enqueue");
    q.claim("ocr", 1).await.expect("claim");
    assert_eq!(q.release_own().await.expect("release"), 1);
    let job = q.get(id).await.expect("get").expect("job");
    assert_eq!((job.state.as_str(), job.attempts, job.lease_owner), ("queued", 0, None));
}

#[actix_web::test]
async fn a_dedup_key_makes_enqueue_idempotent() {
    let (_t, _db, q) = queue().await;
    let a = q.enqueue(NewJob::new("reminder", json!({"appointment": 7})).dedup_key("reminder:7")).await.expect("first");
    let b =
        q.enqueue(NewJob::new("reminder", json!({"appointment": 7})).dedup_key("reminder:7")).await.expect("second");
    assert_eq!(a, b);
    assert_eq!(q.counts().await.expect("counts"), vec![("queued".to_owned(), 1)]);
}

#[actix_web::test]
async fn purge_removes_only_old_finished_jobs() {
    let (_t, db, _) = queue().await;
    let q = JobQueue::new(db, "node-a", JobConfig { retention_hours: 0, ..cfg() });
    let done = q.enqueue(NewJob::new("ocr", json!(1))).await.expect("enqueue");
    let waiting = q.enqueue(NewJob::new("email", json!(2))).await.expect("enqueue");
    let job = q.claim("ocr", 1).await.expect("claim").pop().expect("job");
    assert_eq!(job.id(), done);
    q.complete(job.lease()).await.expect("complete");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(q.purge_finished().await.expect("purge"), 1);
    assert!(q.get(done).await.expect("get").is_none());
    assert!(q.get(waiting).await.expect("get").is_some());
}

#[actix_web::test]
async fn an_acknowledged_job_survives_closing_and_reopening_the_store() {
    let tdb = TestDb::new().await;
    let db = tdb.connect().await;
    let id = JobQueue::new(db.clone(), "n", cfg()).enqueue(NewJob::new("ocr", json!({"k": 1}))).await.expect("enqueue");
    db.close().await;
    let reopened = tdb.connect().await;
    let job = JobQueue::new(reopened, "n", cfg()).get(id).await.expect("get").expect("still there");
    assert_eq!(job.state, "queued");
}
