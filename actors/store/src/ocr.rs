//! OCR jobs and the pages they have read so far (#14).
//!
//! An OCR job is two rows: the queue's (`jobs`: leases, retries, dead letters, shared by every
//! kind of work) and this one (`ocr_jobs`: what a client polls — record, language, pages done
//! of pages total, confidence, a state that knows `cancelled` and `failed`). Every change of
//! state here is conditional on the state it leaves, so a cancel and a worker's progress never
//! overwrite each other: a cancelled job stays cancelled whatever a worker still writes.
//!
//! Pages are kept as they are read (sealed by the caller with the record's file key), so a job
//! resumed after a crash reads only the pages it had not finished. They are deleted when the
//! job ends.

use careport_domain::time::now_ms;
use uuid::Uuid;

use crate::db::Db;
use crate::sql::Sql;
use crate::{exec, fetch, scalar, transaction};

/// The states an OCR job can be in.
pub mod state {
    pub const QUEUED: &str = "queued";
    pub const RUNNING: &str = "running";
    pub const DONE: &str = "done";
    pub const FAILED: &str = "failed";
    pub const CANCELLED: &str = "cancelled";
}

/// An OCR job as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OcrJobRow {
    pub id: Uuid,
    pub record_id: Uuid,
    pub queue_job: i64,
    pub requested_by: Option<Uuid>,
    pub language: String,
    pub state: String,
    pub pages_done: i32,
    pub pages_total: Option<i32>,
    pub mean_confidence: Option<f64>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

impl OcrJobRow {
    /// Whether the job may still change (queued or running).
    pub fn is_active(&self) -> bool {
        self.state == state::QUEUED || self.state == state::RUNNING
    }
}

/// One page read by a job, its text sealed with the record's file key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OcrPageRow {
    pub page: i32,
    pub source: String,
    pub confidence: f64,
    pub rotation: i32,
    pub engine: String,
    pub chars: i32,
    pub sealed_text: String,
}

/// `SELECT <every column> FROM ocr_jobs <rest>`.
macro_rules! select_jobs {
    ($rest:literal) => {
        concat!(
            "SELECT id, record_id, queue_job, requested_by, language, state, pages_done, pages_total,
                    mean_confidence, error_code, error, created_at, updated_at, finished_at
             FROM ocr_jobs ",
            $rest
        )
    };
}

static INSERT: Sql = Sql::new(
    "INSERT INTO ocr_jobs (id, record_id, queue_job, requested_by, language, state, pages_done, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $6)",
);
static GET: Sql = Sql::new(select_jobs!("WHERE id = $1"));
static ACTIVE_FOR_RECORD: Sql =
    Sql::new(select_jobs!("WHERE record_id = $1 AND state IN ('queued', 'running') ORDER BY created_at"));
static LATEST_FOR_RECORD: Sql =
    Sql::new(select_jobs!("WHERE record_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1"));
// A job whose queue job was dead-lettered while it ran (its node died on the last attempt: the
// queue's reclaim marks the queue row `dead`, nobody is left to mark this one) is failed, not
// active: it must not hold an `ocr.max_queued` place or show as running in the figures for ever.
static ACTIVE_COUNT: Sql = Sql::new(
    "SELECT COUNT(*) FROM ocr_jobs o WHERE o.state IN ('queued', 'running')
     AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = o.queue_job AND j.state = 'dead')",
);
static COUNTS: Sql = Sql::new(
    "SELECT CASE WHEN o.state IN ('queued', 'running')
                  AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = o.queue_job AND j.state = 'dead')
             THEN 'failed' ELSE o.state END AS state, COUNT(*)
     FROM ocr_jobs o GROUP BY 1",
);
static START: Sql = Sql::new(
    "UPDATE ocr_jobs SET state = 'running', pages_total = $2, pages_done = $3, error_code = NULL, error = NULL, updated_at = $4
     WHERE id = $1 AND state IN ('queued', 'running')",
);
static REQUEUE: Sql = Sql::new(
    "UPDATE ocr_jobs SET state = 'queued', error_code = $2, error = $3, updated_at = $4
     WHERE id = $1 AND state IN ('queued', 'running')",
);
static PAGE: Sql = Sql::new(
    "INSERT INTO ocr_pages (job_id, page, source, confidence, rotation, engine, chars, sealed_text, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (job_id, page) DO NOTHING",
);
static PAGE_DONE: Sql = Sql::new(
    "UPDATE ocr_jobs SET pages_done = (SELECT COUNT(*) FROM ocr_pages WHERE job_id = $1), updated_at = $2
     WHERE id = $1 AND state = 'running'",
);
static PAGES: Sql = Sql::new(
    "SELECT page, source, confidence, rotation, engine, chars, sealed_text FROM ocr_pages WHERE job_id = $1 ORDER BY page",
);
static FINISH: Sql = Sql::new(
    "UPDATE ocr_jobs SET state = $2, mean_confidence = $3, error_code = $4, error = $5, updated_at = $6, finished_at = $6
     WHERE id = $1 AND state IN ('queued', 'running')",
);
static CANCEL: Sql = Sql::new(
    "UPDATE ocr_jobs SET state = 'cancelled', updated_at = $2, finished_at = $2 WHERE id = $1 AND state IN ('queued', 'running')",
);
static DROP_PAGES: Sql = Sql::new("DELETE FROM ocr_pages WHERE job_id = $1");
static SET_TEXT: Sql = Sql::new("UPDATE medical_records SET ocr_text = $2 WHERE id = $1");
static STATE: Sql = Sql::new("SELECT state FROM ocr_jobs WHERE id = $1");
static THROUGHPUT: Sql = Sql::new(
    "SELECT CAST(COALESCE(SUM(pages_done), 0) AS BIGINT), CAST(COALESCE(SUM(finished_at - created_at), 0) AS BIGINT) FROM ocr_jobs
     WHERE state = 'done' AND finished_at >= $1",
);

/// A new job, queued. `queue_job` is the id of the queue's job that will run it.
pub async fn insert(
    db: &Db,
    id: Uuid,
    record: Uuid,
    queue_job: i64,
    requested_by: Option<Uuid>,
    language: &str,
) -> Result<(), sqlx::Error> {
    exec!(db.writer(), &INSERT, id, record, queue_job, requested_by, language, now_ms()).map(|_| ())
}

/// Queue the work of OCR job `id` (kind `kind`, payload `{"ocr_job": id}`) and insert the row
/// clients poll, **in one transaction**: a worker can never claim the queue row before the job
/// row exists (it would end it at once as orphaned, leaving the job row queued for ever), and a
/// crash leaves both or neither. Returns the queue job's id.
pub async fn insert_queued(
    db: &Db,
    id: Uuid,
    record: Uuid,
    kind: &str,
    max_attempts: i32,
    requested_by: Option<Uuid>,
    language: &str,
) -> Result<i64, sqlx::Error> {
    let now = now_ms();
    let payload = serde_json::json!({ "ocr_job": id }).to_string();
    transaction!(db, |tx, dialect| {
        let queue_job = crate::enqueue_in_tx!(tx, dialect, kind, &payload, max_attempts, now);
        sqlx::query(INSERT.text(dialect))
            .bind(id)
            .bind(record)
            .bind(queue_job)
            .bind(requested_by)
            .bind(language)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        Ok::<_, sqlx::Error>(queue_job)
    })
}

pub async fn get(db: &Db, id: Uuid) -> Result<Option<OcrJobRow>, sqlx::Error> {
    fetch!(db.writer(), OcrJobRow, fetch_optional, &GET, id)
}

/// The record's queued or running jobs, oldest first.
pub async fn active_for_record(db: &Db, record: Uuid) -> Result<Vec<OcrJobRow>, sqlx::Error> {
    fetch!(db.writer(), OcrJobRow, fetch_all, &ACTIVE_FOR_RECORD, record)
}

/// The record's newest job, whatever its state.
pub async fn latest_for_record(db: &Db, record: Uuid) -> Result<Option<OcrJobRow>, sqlx::Error> {
    fetch!(db.writer(), OcrJobRow, fetch_optional, &LATEST_FOR_RECORD, record)
}

/// Jobs queued or running, on every node: the depth the admission limit is checked against.
pub async fn active_count(db: &Db) -> Result<i64, sqlx::Error> {
    scalar!(db.reader(), i64, fetch_one, &ACTIVE_COUNT)
}

/// Jobs in each state.
pub async fn counts(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    fetch!(db.reader(), (String, i64), fetch_all, &COUNTS)
}

/// Pages read by jobs finished since `since` (unix ms) and the time those jobs took in all
/// (ms, from submission to the end), for the admin statistics.
pub async fn throughput(db: &Db, since: i64) -> Result<(i64, i64), sqlx::Error> {
    fetch!(db.reader(), (i64, i64), fetch_one, &THROUGHPUT, since)
}

/// The job's state now (`None`: no such job).
pub async fn state_of(db: &Db, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    scalar!(db.writer(), String, fetch_optional, &STATE, id)
}

/// A worker began (or resumed) the job: it is running, with this many pages of which `done`
/// were read before. `false`: the job was cancelled or has ended.
pub async fn start(db: &Db, id: Uuid, pages_total: i32, done: i32) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &START, id, pages_total, done, now_ms())? == 1)
}

/// An attempt failed and the queue will try again: queued, with the reason.
pub async fn requeue(db: &Db, id: Uuid, code: &str, error: &str) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &REQUEUE, id, code, error, now_ms())? == 1)
}

/// Keep a page a worker read (once: a page read again after a crash keeps its first text)
/// and count it. `false`: the job is no longer running (cancelled), and the page was not kept.
pub async fn add_page(db: &Db, id: Uuid, page: i32, row: &OcrPageRow) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    transaction!(db, |tx, dialect| {
        let state: Option<String> = sqlx::query_scalar(STATE.text(dialect)).bind(id).fetch_optional(&mut *tx).await?;
        if state.as_deref() != Some(state::RUNNING) {
            return Ok(false);
        }
        sqlx::query(PAGE.text(dialect))
            .bind(id)
            .bind(page)
            .bind(&row.source)
            .bind(row.confidence)
            .bind(row.rotation)
            .bind(&row.engine)
            .bind(row.chars)
            .bind(&row.sealed_text)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(PAGE_DONE.text(dialect)).bind(id).bind(now).execute(&mut *tx).await?;
        Ok::<_, sqlx::Error>(true)
    })
}

/// The pages the job has read so far, in page order.
pub async fn pages(db: &Db, id: Uuid) -> Result<Vec<OcrPageRow>, sqlx::Error> {
    fetch!(db.writer(), OcrPageRow, fetch_all, &PAGES, id)
}

/// Finish the job: its document's text (sealed) goes into the record and the job is done, in
/// one transaction, and its pages are dropped. `false`: the job had been cancelled (nothing
/// was written).
pub async fn complete(
    db: &Db,
    id: Uuid,
    record: Uuid,
    sealed_document: &str,
    mean_confidence: f64,
) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    transaction!(db, |tx, dialect| {
        let n = sqlx::query(FINISH.text(dialect))
            .bind(id)
            .bind(state::DONE)
            .bind(Some(mean_confidence))
            .bind(None::<String>)
            .bind(None::<String>)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        sqlx::query(SET_TEXT.text(dialect)).bind(record).bind(sealed_document).execute(&mut *tx).await?;
        sqlx::query(DROP_PAGES.text(dialect)).bind(id).execute(&mut *tx).await?;
        Ok::<_, sqlx::Error>(true)
    })
}

/// The job failed for good: `code` (a stable name) and `error` (a PHI-free message). Its pages
/// are dropped.
pub async fn fail(db: &Db, id: Uuid, code: &str, error: &str) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    transaction!(db, |tx, dialect| {
        let n = sqlx::query(FINISH.text(dialect))
            .bind(id)
            .bind(state::FAILED)
            .bind(None::<f64>)
            .bind(Some(code))
            .bind(Some(error))
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(DROP_PAGES.text(dialect)).bind(id).execute(&mut *tx).await?;
        Ok::<_, sqlx::Error>(n == 1)
    })
}

/// Cancel a queued or running job. `false`: it had already ended.
pub async fn cancel(db: &Db, id: Uuid) -> Result<bool, sqlx::Error> {
    let n = exec!(db.writer(), &CANCEL, id, now_ms())?;
    exec!(db.writer(), &DROP_PAGES, id)?;
    Ok(n == 1)
}

/// Drop a finished job's pages (a cancelled job's, once its worker has stopped).
pub async fn drop_pages(db: &Db, id: Uuid) -> Result<(), sqlx::Error> {
    exec!(db.writer(), &DROP_PAGES, id).map(|_| ())
}
