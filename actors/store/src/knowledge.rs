//! The knowledge base's rows (#15): documents, their chunks, embedding jobs, vector spaces, and
//! the two arms of hybrid search as the store runs them.
//!
//! # Who finds what
//! [`DocFilter`] says which documents a search or a list may show. It is rendered twice from one
//! struct: as SQL ([`DocFilter::sql`], used by every query here, on both backends) and as a Rust
//! predicate ([`DocFilter::allows`], used by the embedded vector index, which filters while it
//! searches). `tests/api/knowledge.rs` checks on both backends that the two agree on generated
//! documents and filters. Filters are applied *inside* each query (the pgvector scan iterates
//! until it has `k` visible rows; FTS and the embedded index filter as they go), so a filtered
//! search returns `k` results whenever `k` visible chunks exist.
//!
//! # Vectors
//! Chunk vectors are rows of `embeddings` (`source_kind = 'knowledge'`, `source_id` = the chunk
//! id), one per model. On PostgreSQL each model's space gets a partial HNSW index over
//! `vector::vector(dim)` ([`ensure_pg_index`]); searches name the model as a literal so that the
//! planner matches the index's predicate.

use careport_domain::time::now_ms;
use sqlx::Row as _;
use uuid::Uuid;

use crate::db::{Db, Pool};
use crate::sql::{Sql, numbered_to_sqlite};
use crate::{exec, fetch, scalar, transaction};

/// `embeddings.source_kind` of knowledge chunks.
pub const SOURCE_KIND: &str = "knowledge";

/// The states of an embedding job.
pub mod state {
    pub const QUEUED: &str = "queued";
    pub const RUNNING: &str = "running";
    pub const DONE: &str = "done";
    pub const FAILED: &str = "failed";
    pub const CANCELLED: &str = "cancelled";
}

/// A knowledge document as stored (without its body).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DocumentRow {
    pub id: Uuid,
    pub title: String,
    pub media_type: String,
    pub cancer_type: Option<String>,
    pub department: Option<String>,
    pub audience: String,
    pub sensitivity: String,
    pub language: String,
    pub record_id: Option<Uuid>,
    pub patient_id: Option<Uuid>,
    pub chars: i64,
    pub sha256: String,
    pub state: String,
    pub created_by: Option<Uuid>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl DocumentRow {
    /// Its metadata, as a change starts from it.
    pub fn fields(&self) -> DocumentMeta {
        DocumentMeta {
            title: self.title.clone(),
            cancer_type: self.cancer_type.clone(),
            department: self.department.clone(),
            audience: self.audience.clone(),
            sensitivity: self.sensitivity.clone(),
            language: self.language.clone(),
        }
    }

    /// What the filters look at.
    pub fn meta(&self) -> DocMeta {
        DocMeta {
            audience: self.audience.clone(),
            sensitivity: self.sensitivity.clone(),
            department: self.department.clone(),
            cancer_type: self.cancer_type.clone(),
            language: self.language.clone(),
            record_id: self.record_id,
        }
    }
}

/// A new document.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub id: Uuid,
    pub title: String,
    pub media_type: String,
    pub cancer_type: Option<String>,
    pub department: Option<String>,
    pub audience: String,
    pub sensitivity: String,
    pub language: String,
    pub record_id: Option<Uuid>,
    pub patient_id: Option<Uuid>,
    /// `None` for a record's document: its text stays sealed in the record.
    pub body: Option<String>,
    pub chars: i64,
    pub sha256: String,
    pub created_by: Option<Uuid>,
}

/// A document's metadata, as a change sets it.
#[derive(Debug, Clone)]
pub struct DocumentMeta {
    pub title: String,
    pub cancer_type: Option<String>,
    pub department: Option<String>,
    pub audience: String,
    pub sensitivity: String,
    pub language: String,
}

/// What the access and search filters look at of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocMeta {
    pub audience: String,
    pub sensitivity: String,
    pub department: Option<String>,
    pub cancer_type: Option<String>,
    pub language: String,
    pub record_id: Option<Uuid>,
}

/// Which documents a caller may find, and the filters they asked for.
#[derive(Debug, Clone, Default)]
pub struct DocFilter {
    /// Every curated document (administrators).
    pub all_documents: bool,
    /// The audiences whose curated documents the caller sees.
    pub audiences: Vec<String>,
    /// Departments whose restricted documents the caller sees.
    pub restricted_departments: Vec<String>,
    /// Whether restricted documents of no department are seen (staff).
    pub restricted_without_department: bool,
    /// The patients' records (opted in) the caller may read.
    pub records: Vec<Uuid>,
    /// Asked: documents of these cancer types (a type and its subtypes).
    pub cancer_types: Option<Vec<String>>,
    /// Asked: documents of this department.
    pub department: Option<String>,
    /// Asked: documents in this language.
    pub language: Option<String>,
}

/// A value bound into a query built at run time.
#[derive(Debug, Clone)]
pub enum Param {
    Text(String),
    Uuid(Uuid),
    I64(i64),
    Vector(Vec<f32>),
}

/// A query text (PostgreSQL `$N`) and its values, in order.
#[derive(Debug, Default)]
pub struct Query {
    pub text: String,
    pub params: Vec<Param>,
}

impl Query {
    /// Bind `p` and return its placeholder.
    pub fn bind(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }

    fn list<T>(&mut self, items: &[T], f: impl Fn(&T) -> Param) -> String {
        items.iter().map(|i| self.bind(f(i))).collect::<Vec<_>>().join(", ")
    }
}

impl DocFilter {
    /// Whether a document passes (the Rust reading of [`DocFilter::sql`]).
    pub fn allows(&self, d: &DocMeta) -> bool {
        let visible = match d.record_id {
            Some(r) => self.records.contains(&r),
            None => {
                self.all_documents
                    || (self.audiences.contains(&d.audience)
                        && (d.sensitivity == "normal"
                            || match &d.department {
                                Some(dep) => self.restricted_departments.contains(dep),
                                None => self.restricted_without_department,
                            }))
            }
        };
        visible
            && self.cancer_types.as_ref().is_none_or(|ts| d.cancer_type.as_ref().is_some_and(|c| ts.contains(c)))
            && self.department.as_ref().is_none_or(|dep| d.department.as_ref() == Some(dep))
            && self.language.as_ref().is_none_or(|l| *l == d.language)
    }

    /// The condition on `d` (the documents table) as SQL, its values bound into `q`.
    pub fn sql(&self, q: &mut Query) -> String {
        let curated = if self.all_documents {
            "TRUE".to_owned()
        } else if self.audiences.is_empty() {
            "FALSE".to_owned()
        } else {
            let audiences = q.list(&self.audiences, |a| Param::Text(a.clone()));
            let departments = if self.restricted_departments.is_empty() {
                "FALSE".to_owned()
            } else {
                format!("d.department IN ({})", q.list(&self.restricted_departments, |d| Param::Text(d.clone())))
            };
            let none = if self.restricted_without_department { "d.department IS NULL" } else { "FALSE" };
            format!("d.audience IN ({audiences}) AND (d.sensitivity = 'normal' OR {departments} OR {none})")
        };
        let records = if self.records.is_empty() {
            "FALSE".to_owned()
        } else {
            format!("d.record_id IN ({})", q.list(&self.records, |r| Param::Uuid(*r)))
        };
        let mut sql = format!("((d.record_id IS NULL AND ({curated})) OR ({records}))");
        if let Some(types) = &self.cancer_types {
            if types.is_empty() {
                sql.push_str(" AND FALSE");
            } else {
                sql.push_str(&format!(" AND d.cancer_type IN ({})", q.list(types, |t| Param::Text(t.clone()))));
            }
        }
        if let Some(dep) = &self.department {
            let p = q.bind(Param::Text(dep.clone()));
            sql.push_str(&format!(" AND d.department = {p}"));
        }
        if let Some(l) = &self.language {
            let p = q.bind(Param::Text(l.clone()));
            sql.push_str(&format!(" AND d.language = {p}"));
        }
        sql
    }
}

/// Bind every parameter of a run-time query onto a sqlx query of either backend.
macro_rules! bind_params {
    ($query:expr, $params:expr, $vector:expr) => {{
        let mut q = $query;
        for p in $params {
            q = match p {
                Param::Text(s) => q.bind(s.clone()),
                Param::Uuid(u) => q.bind(*u),
                Param::I64(n) => q.bind(*n),
                Param::Vector(v) => q.bind($vector(v)),
            };
        }
        q
    }};
}

fn sqlite_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn pg_vector(v: &[f32]) -> pgvector::Vector {
    pgvector::Vector::from(v.to_vec())
}

/// Run a run-time query returning rows of `T`.
async fn fetch_rows<T>(pool: Pool<'_>, q: &Query) -> Result<Vec<T>, sqlx::Error>
where
    T: Send
        + Unpin
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    match pool {
        Pool::Sqlite(p) => {
            // The text is built in this module from constants and placeholders, never from input.
            let text = sqlx::AssertSqlSafe(numbered_to_sqlite(&q.text));
            bind_params!(sqlx::query_as::<_, T>(text), &q.params, |v: &Vec<f32>| sqlite_blob(v)).fetch_all(p).await
        }
        Pool::Postgres(p) => {
            let text = sqlx::AssertSqlSafe(q.text.clone());
            bind_params!(sqlx::query_as::<_, T>(text), &q.params, |v: &Vec<f32>| pg_vector(v)).fetch_all(p).await
        }
    }
}

/// `SELECT <every column but the body> FROM knowledge_documents d <rest>`.
macro_rules! select_docs {
    ($rest:literal) => {
        concat!(
            "SELECT d.id, d.title, d.media_type, d.cancer_type, d.department, d.audience, d.sensitivity, d.language,
                d.record_id, d.patient_id, d.chars, d.sha256, d.state, d.created_by, d.created_at, d.updated_at
             FROM knowledge_documents d ",
            $rest
        )
    };
}

static INSERT_DOC: Sql = Sql::new(
    "INSERT INTO knowledge_documents (id, title, media_type, cancer_type, department, audience, sensitivity, language,
        record_id, patient_id, body, chars, sha256, state, created_by, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'indexing', $14, $15, $15)",
);
static GET_DOC: Sql = Sql::new(select_docs!("WHERE d.id = $1"));
static DOC_FOR_RECORD: Sql = Sql::new(select_docs!("WHERE d.record_id = $1"));
static PATIENT_DOCS: Sql = Sql::new("SELECT id FROM knowledge_documents WHERE patient_id = $1");
static BODY: Sql = Sql::new("SELECT body FROM knowledge_documents WHERE id = $1");
static UPDATE_META: Sql = Sql::new(
    "UPDATE knowledge_documents SET title = $2, cancer_type = $3, department = $4, audience = $5, sensitivity = $6,
        language = $7, updated_at = $8 WHERE id = $1",
);
static SET_DOC_STATE: Sql = Sql::new("UPDATE knowledge_documents SET state = $2, updated_at = $3 WHERE id = $1");
static DELETE_DOC_VECTORS: Sql = Sql::new(
    "DELETE FROM embeddings WHERE source_kind = 'knowledge'
       AND source_id IN (SELECT CAST(id AS TEXT) FROM knowledge_chunks WHERE document_id = $1)",
);
static DELETE_DOC: Sql = Sql::new("DELETE FROM knowledge_documents WHERE id = $1");
static DELETE_CHUNKS: Sql = Sql::new("DELETE FROM knowledge_chunks WHERE document_id = $1");
static INSERT_CHUNK: Sql = Sql::new(
    "INSERT INTO knowledge_chunks (document_id, position, heading, start_char, end_char, tokens, text)
     VALUES ($1, $2, $3, $4, $5, $6, $7)",
);
static CHUNK_IDS: Sql = Sql::new("SELECT id FROM knowledge_chunks WHERE document_id = $1 ORDER BY position");
static CHUNKS_TO_EMBED: Sql = Sql::new(
    "SELECT c.id, c.document_id, c.heading, c.start_char, c.end_char, c.text FROM knowledge_chunks c
     WHERE c.document_id = $1
       AND NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.source_kind = 'knowledge'
                       AND e.source_id = CAST(c.id AS TEXT) AND e.model = $2)
     ORDER BY c.position",
);
static ALL_CHUNKS_TO_EMBED: Sql = Sql::new(
    "SELECT c.id, c.document_id, c.heading, c.start_char, c.end_char, c.text FROM knowledge_chunks c
     WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.source_kind = 'knowledge'
                       AND e.source_id = CAST(c.id AS TEXT) AND e.model = $1)
     ORDER BY c.id LIMIT $2",
);
static COUNT_CHUNKS: Sql = Sql::new("SELECT COUNT(*) FROM knowledge_chunks");
static COUNT_EMBEDDED: Sql = Sql::new(
    "SELECT COUNT(*) FROM knowledge_chunks c WHERE EXISTS (SELECT 1 FROM embeddings e WHERE e.source_kind = 'knowledge'
       AND e.source_id = CAST(c.id AS TEXT) AND e.model = $1)",
);
static CHUNK_DOCS: Sql = Sql::new("SELECT id, document_id FROM knowledge_chunks");
static ALL_META: Sql = Sql::new(select_docs!(""));
static SPACE_VECTORS_PAGE: Sql = Sql::new(
    "SELECT e.id, e.source_id, e.vector FROM embeddings e
     WHERE e.source_kind = 'knowledge' AND e.model = $1 AND e.id > $2 ORDER BY e.id LIMIT $3",
);
static UPSERT_VECTOR_SQLITE: &str = "INSERT INTO embeddings (source_kind, source_id, model, dim, vector, created_at)
     VALUES ('knowledge', ?1, ?2, ?3, ?4, ?5)
     ON CONFLICT (source_kind, source_id, model) DO UPDATE SET dim = excluded.dim, vector = excluded.vector, created_at = excluded.created_at";
static UPSERT_VECTOR_PG: &str = "INSERT INTO embeddings (source_kind, source_id, model, dim, vector, created_at)
     VALUES ('knowledge', $1, $2, $3, $4, $5)
     ON CONFLICT (source_kind, source_id, model) DO UPDATE SET dim = EXCLUDED.dim, vector = EXCLUDED.vector, created_at = EXCLUDED.created_at";
static DELETE_SPACE_VECTORS: Sql = Sql::new("DELETE FROM embeddings WHERE source_kind = 'knowledge' AND model = $1");
static DOCS_TO_INDEX: Sql = Sql::new(
    "SELECT d.id FROM knowledge_documents d WHERE d.state <> 'ready' OR NOT EXISTS (SELECT 1 FROM knowledge_chunks c WHERE c.document_id = d.id) ORDER BY d.created_at",
);
static COUNT_DOCS: Sql = Sql::new("SELECT COUNT(*) FROM knowledge_documents");

static INSERT_JOB: Sql = Sql::new(
    "INSERT INTO knowledge_jobs (id, kind, document_id, queue_job, model, state, chunks_done, requested_by, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $7, $7)",
);
macro_rules! select_jobs {
    ($rest:literal) => {
        concat!(
            "SELECT id, kind, document_id, queue_job, model, state, chunks_done, chunks_total, error_code, error,
                    requested_by, created_at, updated_at, finished_at FROM knowledge_jobs ",
            $rest
        )
    };
}
static GET_JOB: Sql = Sql::new(select_jobs!("WHERE id = $1"));
static ACTIVE_JOBS_FOR_DOC: Sql =
    Sql::new(select_jobs!("WHERE document_id = $1 AND state IN ('queued', 'running') ORDER BY created_at"));
static ACTIVE_REINDEX: Sql =
    Sql::new(select_jobs!("WHERE kind = 'reindex' AND state IN ('queued', 'running') ORDER BY created_at"));
static START_JOB: Sql = Sql::new(
    "UPDATE knowledge_jobs SET state = 'running', chunks_total = $2, chunks_done = $3, error_code = NULL, error = NULL,
        updated_at = $4 WHERE id = $1 AND state IN ('queued', 'running')",
);
static PROGRESS: Sql =
    Sql::new("UPDATE knowledge_jobs SET chunks_done = $2, updated_at = $3 WHERE id = $1 AND state = 'running'");
static FINISH_JOB: Sql = Sql::new(
    "UPDATE knowledge_jobs SET state = $2, error_code = $3, error = $4, updated_at = $5, finished_at = $5
     WHERE id = $1 AND state IN ('queued', 'running')",
);
static REQUEUE_JOB: Sql = Sql::new(
    "UPDATE knowledge_jobs SET state = 'queued', error_code = $2, error = $3, updated_at = $4
     WHERE id = $1 AND state IN ('queued', 'running')",
);
static RETRY_JOB: Sql = Sql::new(
    "UPDATE knowledge_jobs SET state = 'queued', queue_job = $2, error_code = NULL, error = NULL, updated_at = $3,
        finished_at = NULL WHERE id = $1 AND state IN ('failed', 'cancelled')",
);
static SET_QUEUE_JOB: Sql = Sql::new("UPDATE knowledge_jobs SET queue_job = $2 WHERE id = $1");
static CANCEL_JOB: Sql = Sql::new(
    "UPDATE knowledge_jobs SET state = 'cancelled', updated_at = $2, finished_at = $2 WHERE id = $1 AND state IN ('queued', 'running')",
);
static JOB_STATE: Sql = Sql::new("SELECT state FROM knowledge_jobs WHERE id = $1");
static JOB_COUNTS: Sql = Sql::new("SELECT state, COUNT(*) FROM knowledge_jobs GROUP BY state");

static ACTIVE_SPACE: Sql =
    Sql::new("SELECT model, dim, state, created_at, activated_at FROM knowledge_spaces WHERE state = 'active'");
static GET_SPACE: Sql =
    Sql::new("SELECT model, dim, state, created_at, activated_at FROM knowledge_spaces WHERE model = $1");
static PUT_SPACE: Sql = Sql::new(
    "INSERT INTO knowledge_spaces (model, dim, state, created_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (model) DO UPDATE SET dim = EXCLUDED.dim, state = EXCLUDED.state",
);
static RETIRE_ACTIVE: Sql =
    Sql::new("UPDATE knowledge_spaces SET state = 'retired' WHERE state = 'active' AND model <> $1");
static ACTIVATE_SPACE: Sql =
    Sql::new("UPDATE knowledge_spaces SET state = 'active', activated_at = $2 WHERE model = $1");

static READABLE_RECORDS: Sql = Sql::new(
    "SELECT d.record_id FROM knowledge_documents d
       JOIN medical_records r ON r.id = d.record_id
       JOIN patients p ON p.id = r.patient_id
     WHERE r.deleted_at IS NULL AND (
          ($1 = 'self' AND r.patient_id = $2)
       OR ($1 = 'assigned' AND EXISTS (SELECT 1 FROM care_assignments a WHERE a.patient_id = r.patient_id AND a.clinician_id = $2))
       OR ($1 = 'department' AND NOT r.sensitive AND (p.department = $3 OR EXISTS (
              SELECT 1 FROM care_assignments a JOIN users c ON c.id = a.clinician_id
              WHERE a.patient_id = r.patient_id AND c.department = $3 AND c.status = 'active')))
       OR EXISTS (SELECT 1 FROM record_grants g WHERE g.record_id = r.id AND g.grantee_id = $2
                  AND g.expires_at > $4))",
);
static PATIENT_DEPARTMENTS: Sql = Sql::new(
    "SELECT p.department FROM patients p WHERE p.id = $1 AND p.department IS NOT NULL
     UNION SELECT c.department FROM care_assignments a JOIN users c ON c.id = a.clinician_id
       WHERE a.patient_id = $1 AND c.department IS NOT NULL AND c.status = 'active'",
);
static CANCER_SUBTREE: Sql = Sql::new("SELECT id FROM cancer_types WHERE id = $1 OR parent_id = $1");

/// A chunk to store.
#[derive(Debug, Clone)]
pub struct NewChunk {
    pub heading: String,
    pub start_char: i64,
    pub end_char: i64,
    pub tokens: i64,
    /// `None` for a record's chunk.
    pub text: Option<String>,
}

/// A chunk waiting for its vector.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingChunk {
    pub id: i64,
    pub document_id: Uuid,
    pub heading: String,
    pub start_char: i64,
    pub end_char: i64,
    pub text: Option<String>,
}

/// A chunk as a search shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChunkHit {
    pub id: i64,
    pub document_id: Uuid,
    pub heading: String,
    pub start_char: i64,
    pub end_char: i64,
    pub text: Option<String>,
    pub title: String,
    pub cancer_type: Option<String>,
    pub language: String,
    pub record_id: Option<Uuid>,
    pub patient_id: Option<Uuid>,
}

/// An embedding job as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub id: Uuid,
    pub kind: String,
    pub document_id: Option<Uuid>,
    pub queue_job: i64,
    pub model: String,
    pub state: String,
    pub chunks_done: i32,
    pub chunks_total: Option<i32>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub requested_by: Option<Uuid>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

impl JobRow {
    pub fn is_active(&self) -> bool {
        self.state == state::QUEUED || self.state == state::RUNNING
    }
}

/// A vector space of the knowledge base.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SpaceRow {
    pub model: String,
    pub dim: i32,
    pub state: String,
    pub created_at: i64,
    pub activated_at: Option<i64>,
}

/// Filters of [`list_documents`] beyond the caller's [`DocFilter`].
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub audience: Option<String>,
    pub state: Option<String>,
    /// Part of the title, any case.
    pub title: Option<String>,
}

// ---- documents ----

/// Insert a document and its first job in one transaction (the queue job is already queued).
pub async fn insert_document(
    db: &Db,
    doc: &NewDocument,
    job: Uuid,
    queue_job: i64,
    model: &str,
) -> Result<(), sqlx::Error> {
    insert_document_with(db, doc, job, QueueJob::Given(queue_job), model).await.map(|_| ())
}

/// The queue's row of a knowledge job: one already queued, or one to queue (kind, max attempts)
/// in the same transaction as the job's own row.
pub enum QueueJob<'a> {
    Given(i64),
    Queue { kind: &'a str, max_attempts: i32 },
}

/// Store a new document and its `index` job, queueing the work in the same transaction (see
/// [`crate::enqueue_in_tx`]). Returns the queue job's id.
pub async fn insert_document_queued(
    db: &Db,
    doc: &NewDocument,
    job: Uuid,
    kind: &str,
    max_attempts: i32,
    model: &str,
) -> Result<i64, sqlx::Error> {
    insert_document_with(db, doc, job, QueueJob::Queue { kind, max_attempts }, model).await
}

async fn insert_document_with(
    db: &Db,
    doc: &NewDocument,
    job: Uuid,
    queue: QueueJob<'_>,
    model: &str,
) -> Result<i64, sqlx::Error> {
    let now = now_ms();
    let payload = serde_json::json!({ "knowledge_job": job }).to_string();
    transaction!(db, |tx, dialect| {
        let queue_job = match queue {
            QueueJob::Given(id) => id,
            QueueJob::Queue { kind, max_attempts } => {
                crate::enqueue_in_tx!(tx, dialect, kind, &payload, max_attempts, now)
            }
        };
        sqlx::query(INSERT_DOC.text(dialect))
            .bind(doc.id)
            .bind(&doc.title)
            .bind(&doc.media_type)
            .bind(&doc.cancer_type)
            .bind(&doc.department)
            .bind(&doc.audience)
            .bind(&doc.sensitivity)
            .bind(&doc.language)
            .bind(doc.record_id)
            .bind(doc.patient_id)
            .bind(&doc.body)
            .bind(doc.chars)
            .bind(&doc.sha256)
            .bind(doc.created_by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(INSERT_JOB.text(dialect))
            .bind(job)
            .bind("index")
            .bind(Some(doc.id))
            .bind(queue_job)
            .bind(model)
            .bind(doc.created_by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        Ok::<_, sqlx::Error>(queue_job)
    })
}

pub async fn get_document(db: &Db, id: Uuid) -> Result<Option<DocumentRow>, sqlx::Error> {
    fetch!(db.writer(), DocumentRow, fetch_optional, &GET_DOC, id)
}

/// The document a record was opted in as.
pub async fn document_for_record(db: &Db, record: Uuid) -> Result<Option<DocumentRow>, sqlx::Error> {
    fetch!(db.writer(), DocumentRow, fetch_optional, &DOC_FOR_RECORD, record)
}

/// The knowledge documents of a patient's records.
pub async fn documents_of_patient(db: &Db, patient: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    scalar!(db.writer(), Uuid, fetch_all, &PATIENT_DOCS, patient)
}

/// A curated document's text (`None` for a record's, or no such document).
pub async fn body(db: &Db, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    Ok(scalar!(db.writer(), Option<String>, fetch_optional, &BODY, id)?.flatten())
}

/// Change a document's metadata; false if it does not exist.
pub async fn update_meta(db: &Db, id: Uuid, m: &DocumentMeta) -> Result<bool, sqlx::Error> {
    let n = exec!(
        db.writer(),
        &UPDATE_META,
        id,
        &m.title,
        &m.cancer_type,
        &m.department,
        &m.audience,
        &m.sensitivity,
        &m.language,
        now_ms()
    )?;
    Ok(n == 1)
}

pub async fn set_document_state(db: &Db, id: Uuid, state: &str) -> Result<(), sqlx::Error> {
    exec!(db.writer(), &SET_DOC_STATE, id, state, now_ms()).map(|_| ())
}

/// Delete a document, its chunks and their vectors in one transaction; the ids of the chunks it
/// had (for the in-process index). `None`: no such document.
pub async fn delete_document(db: &Db, id: Uuid) -> Result<Option<Vec<i64>>, sqlx::Error> {
    transaction!(db, |tx, dialect| {
        let chunks: Vec<i64> = sqlx::query_scalar(CHUNK_IDS.text(dialect)).bind(id).fetch_all(&mut *tx).await?;
        sqlx::query(DELETE_DOC_VECTORS.text(dialect)).bind(id).execute(&mut *tx).await?;
        sqlx::query(DELETE_CHUNKS.text(dialect)).bind(id).execute(&mut *tx).await?;
        let n = sqlx::query(DELETE_DOC.text(dialect)).bind(id).execute(&mut *tx).await?.rows_affected();
        Ok::<_, sqlx::Error>(if n == 1 { Some(chunks) } else { None })
    })
}

/// A page of the documents `filter` shows, newest id last (ids are time-ordered), after `after`.
pub async fn list_documents(
    db: &Db,
    filter: &DocFilter,
    list: &ListFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<DocumentRow>, sqlx::Error> {
    let mut q = Query::default();
    let cond = filter.sql(&mut q);
    let mut text = format!(select_docs!("WHERE {}"), cond);
    if let Some(a) = &list.audience {
        let p = q.bind(Param::Text(a.clone()));
        text.push_str(&format!(" AND d.audience = {p}"));
    }
    if let Some(s) = &list.state {
        let p = q.bind(Param::Text(s.clone()));
        text.push_str(&format!(" AND d.state = {p}"));
    }
    if let Some(t) = &list.title {
        let p = q.bind(Param::Text(crate::sql::contains_pattern(t)));
        text.push_str(&format!(" AND lower(d.title) LIKE {p}"));
    }
    if let Some(a) = after {
        let p = q.bind(Param::Uuid(a));
        text.push_str(&format!(" AND d.id > {p}"));
    }
    let p = q.bind(Param::I64(limit));
    text.push_str(&format!(" ORDER BY d.id LIMIT {p}"));
    q.text = text;
    fetch_rows(db.reader(), &q).await
}

/// Every document's filter metadata (the embedded index loads it at start).
pub async fn all_documents(db: &Db) -> Result<Vec<DocumentRow>, sqlx::Error> {
    fetch!(db.reader(), DocumentRow, fetch_all, &ALL_META)
}

/// Which document each chunk belongs to (the embedded index loads it at start).
pub async fn chunk_documents(db: &Db) -> Result<Vec<(i64, Uuid)>, sqlx::Error> {
    fetch!(db.reader(), (i64, Uuid), fetch_all, &CHUNK_DOCS)
}

/// Documents that never finished indexing (their jobs are re-queued by a reindex).
pub async fn documents_to_index(db: &Db) -> Result<Vec<Uuid>, sqlx::Error> {
    scalar!(db.reader(), Uuid, fetch_all, &DOCS_TO_INDEX)
}

pub async fn count_documents(db: &Db) -> Result<i64, sqlx::Error> {
    scalar!(db.reader(), i64, fetch_one, &COUNT_DOCS)
}

// ---- chunks and vectors ----

/// Replace a document's chunks (and drop the old chunks' vectors) in one transaction; the ids
/// of the old chunks, for the in-process index.
pub async fn replace_chunks(db: &Db, doc: Uuid, chunks: &[NewChunk]) -> Result<Vec<i64>, sqlx::Error> {
    transaction!(db, |tx, dialect| {
        let old: Vec<i64> = sqlx::query_scalar(CHUNK_IDS.text(dialect)).bind(doc).fetch_all(&mut *tx).await?;
        sqlx::query(DELETE_DOC_VECTORS.text(dialect)).bind(doc).execute(&mut *tx).await?;
        sqlx::query(DELETE_CHUNKS.text(dialect)).bind(doc).execute(&mut *tx).await?;
        for (i, c) in chunks.iter().enumerate() {
            sqlx::query(INSERT_CHUNK.text(dialect))
                .bind(doc)
                .bind(i as i32)
                .bind(&c.heading)
                .bind(c.start_char)
                .bind(c.end_char)
                .bind(c.tokens)
                .bind(&c.text)
                .execute(&mut *tx)
                .await?;
        }
        Ok::<_, sqlx::Error>(old)
    })
}

/// How many chunks the document has.
pub async fn chunk_ids(db: &Db, doc: Uuid) -> Result<Vec<i64>, sqlx::Error> {
    scalar!(db.writer(), i64, fetch_all, &CHUNK_IDS, doc)
}

/// The document's chunks without a vector in `model`'s space, in order.
pub async fn chunks_to_embed(db: &Db, doc: Uuid, model: &str) -> Result<Vec<PendingChunk>, sqlx::Error> {
    fetch!(db.writer(), PendingChunk, fetch_all, &CHUNKS_TO_EMBED, doc, model)
}

/// Up to `limit` chunks of any document without a vector in `model`'s space.
pub async fn any_chunks_to_embed(db: &Db, model: &str, limit: i64) -> Result<Vec<PendingChunk>, sqlx::Error> {
    fetch!(db.writer(), PendingChunk, fetch_all, &ALL_CHUNKS_TO_EMBED, model, limit)
}

/// Chunks in all, and those with a vector in `model`'s space.
pub async fn coverage(db: &Db, model: &str) -> Result<(i64, i64), sqlx::Error> {
    let total = scalar!(db.writer(), i64, fetch_one, &COUNT_CHUNKS)?;
    let done = scalar!(db.writer(), i64, fetch_one, &COUNT_EMBEDDED, model)?;
    Ok((total, done))
}

/// Store the vectors of chunks in `model`'s space, in one transaction.
pub async fn put_vectors(db: &Db, model: &str, vectors: &[(i64, Vec<f32>)]) -> Result<(), sqlx::Error> {
    let now = now_ms();
    match db.writer() {
        Pool::Sqlite(p) => {
            let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
            for (id, v) in vectors {
                sqlx::query(UPSERT_VECTOR_SQLITE)
                    .bind(id.to_string())
                    .bind(model)
                    .bind(v.len() as i32)
                    .bind(sqlite_blob(v))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        }
        Pool::Postgres(p) => {
            let mut tx = p.begin().await?;
            for (id, v) in vectors {
                sqlx::query(UPSERT_VECTOR_PG)
                    .bind(id.to_string())
                    .bind(model)
                    .bind(v.len() as i32)
                    .bind(pg_vector(v))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        }
    }
}

/// A page of `model`'s chunk vectors after embeddings row `after`: `(row id, chunk id, vector)`.
pub async fn space_vectors(
    db: &Db,
    model: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, i64, Vec<f32>)>, sqlx::Error> {
    match db.reader() {
        Pool::Sqlite(p) => {
            let rows =
                sqlx::query(SPACE_VECTORS_PAGE.sqlite()).bind(model).bind(after).bind(limit).fetch_all(p).await?;
            rows.into_iter()
                .map(|r| {
                    let blob: Vec<u8> = r.try_get(2)?;
                    let v = blob.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                    let source: String = r.try_get(1)?;
                    Ok((r.try_get(0)?, source.parse().unwrap_or(-1), v))
                })
                .collect()
        }
        Pool::Postgres(p) => {
            let rows = sqlx::query(SPACE_VECTORS_PAGE.pg()).bind(model).bind(after).bind(limit).fetch_all(p).await?;
            rows.into_iter()
                .map(|r| {
                    let v: pgvector::Vector = r.try_get(2)?;
                    let source: String = r.try_get(1)?;
                    Ok((r.try_get(0)?, source.parse().unwrap_or(-1), v.to_vec()))
                })
                .collect()
        }
    }
}

/// Drop a retired space's chunk vectors.
pub async fn delete_space_vectors(db: &Db, model: &str) -> Result<u64, sqlx::Error> {
    exec!(db.writer(), &DELETE_SPACE_VECTORS, model)
}

// ---- spaces ----

pub async fn active_space(db: &Db) -> Result<Option<SpaceRow>, sqlx::Error> {
    fetch!(db.writer(), SpaceRow, fetch_optional, &ACTIVE_SPACE)
}

pub async fn space(db: &Db, model: &str) -> Result<Option<SpaceRow>, sqlx::Error> {
    fetch!(db.writer(), SpaceRow, fetch_optional, &GET_SPACE, model)
}

/// Record a space in `state` (`active` or `building`).
pub async fn put_space(db: &Db, model: &str, dim: i32, state: &str) -> Result<(), sqlx::Error> {
    exec!(db.writer(), &PUT_SPACE, model, dim, state, now_ms()).map(|_| ())
}

/// Make `model`'s space the one searches use; the others retire.
pub async fn activate_space(db: &Db, model: &str) -> Result<(), sqlx::Error> {
    let now = now_ms();
    transaction!(db, |tx, dialect| {
        sqlx::query(RETIRE_ACTIVE.text(dialect)).bind(model).execute(&mut *tx).await?;
        sqlx::query(ACTIVATE_SPACE.text(dialect)).bind(model).bind(now).execute(&mut *tx).await?;
        Ok::<_, sqlx::Error>(())
    })
}

/// The name of the partial HNSW index of one model's space.
fn pg_index_name(model: &str) -> String {
    let h = model.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("knowledge_hnsw_{h:016x}")
}

/// A model id as an SQL string literal. Model ids come from the settings, never from a
/// request; quotes are doubled all the same.
fn literal(model: &str) -> String {
    format!("'{}'", model.replace('\'', "''"))
}

/// On PostgreSQL, make sure `model`'s space has its HNSW index (cosine). A no-op on SQLite.
pub async fn ensure_pg_index(db: &Db, model: &str, dim: usize) -> Result<(), sqlx::Error> {
    let Pool::Postgres(p) = db.writer() else { return Ok(()) };
    let text = format!(
        "CREATE INDEX IF NOT EXISTS {} ON embeddings USING hnsw ((vector::vector({dim})) vector_cosine_ops)
         WHERE source_kind = 'knowledge' AND model = {}",
        pg_index_name(model),
        literal(model)
    );
    sqlx::query(sqlx::AssertSqlSafe(text)).execute(p).await.map(|_| ())
}

// ---- search ----

/// The vector arm on PostgreSQL: the `k` nearest visible chunks in `model`'s space, by cosine
/// similarity, with the filter inside the HNSW scan (pgvector's iterative scan keeps reading the
/// graph until `k` rows pass it).
pub async fn pg_vector_search(
    db: &Db,
    model: &str,
    query: &[f32],
    filter: &DocFilter,
    k: i64,
    ef_search: i64,
) -> Result<Vec<(i64, f64)>, sqlx::Error> {
    let Pool::Postgres(p) = db.reader() else {
        return Err(sqlx::Error::Protocol("pg_vector_search needs PostgreSQL".into()));
    };
    let dim = query.len();
    let mut q = Query::default();
    let v = q.bind(Param::Vector(query.to_vec()));
    let cond = filter.sql(&mut q);
    let limit = q.bind(Param::I64(k));
    let distance = format!("e.vector::vector({dim}) <=> {v}::vector({dim})");
    q.text = format!(
        "WITH hits AS MATERIALIZED (
           SELECT c.id, {distance} AS distance
           FROM embeddings e
           JOIN knowledge_chunks c ON c.id = CAST(CASE WHEN e.source_kind = 'knowledge' THEN e.source_id END AS BIGINT)
           JOIN knowledge_documents d ON d.id = c.document_id
           WHERE e.source_kind = 'knowledge' AND e.model = {model} AND {cond}
           ORDER BY {distance} LIMIT {limit})
         SELECT id, CAST(1 - distance AS DOUBLE PRECISION) FROM hits ORDER BY distance",
        model = literal(model)
    );
    let mut tx = p.begin().await?;
    // Iterative scans: a filter that hides most chunks still gets `k` rows (pgvector 0.8).
    sqlx::query("SET LOCAL hnsw.iterative_scan = relaxed_order").execute(&mut *tx).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL hnsw.ef_search = {}", ef_search.clamp(10, 1000))))
        .execute(&mut *tx)
        .await?;
    let rows =
        bind_params!(sqlx::query_as::<_, (i64, f64)>(sqlx::AssertSqlSafe(q.text.clone())), &q.params, |v: &Vec<
            f32,
        >| {
            pg_vector(v)
        })
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows)
}

/// The text arm: chunks matching any of `terms` (words, already cut to letters and digits),
/// best first (BM25 on SQLite's FTS5, `ts_rank_cd` on PostgreSQL), with the filter inside.
pub async fn text_search(
    db: &Db,
    terms: &[String],
    filter: &DocFilter,
    k: i64,
) -> Result<Vec<(i64, f64)>, sqlx::Error> {
    if terms.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = Query::default();
    match db.backend() {
        crate::Backend::Sqlite => {
            let expr = terms.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(" OR ");
            let m = q.bind(Param::Text(expr));
            let cond = filter.sql(&mut q);
            let limit = q.bind(Param::I64(k));
            q.text = format!(
                "SELECT c.id, CAST(-bm25(knowledge_fts) AS REAL) FROM knowledge_fts
                 JOIN knowledge_chunks c ON c.id = knowledge_fts.rowid
                 JOIN knowledge_documents d ON d.id = c.document_id
                 WHERE knowledge_fts MATCH {m} AND {cond}
                 ORDER BY bm25(knowledge_fts) LIMIT {limit}"
            );
        }
        crate::Backend::Postgres => {
            let expr = terms.join(" | ");
            let m = q.bind(Param::Text(expr));
            let cond = filter.sql(&mut q);
            let limit = q.bind(Param::I64(k));
            q.text = format!(
                "SELECT c.id, CAST(ts_rank_cd(c.tsv, to_tsquery('simple', {m})) AS DOUBLE PRECISION) AS rank
                 FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id
                 WHERE c.tsv @@ to_tsquery('simple', {m}) AND {cond}
                 ORDER BY rank DESC, c.id LIMIT {limit}"
            );
        }
    }
    fetch_rows(db.reader(), &q).await
}

/// The chunks `ids` with their documents' titles, those `filter` still shows (a document
/// re-scoped or deleted since the index answered drops out here).
pub async fn hits(db: &Db, ids: &[i64], filter: &DocFilter) -> Result<Vec<ChunkHit>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = Query::default();
    let list = q.list(ids, |i| Param::I64(*i));
    let cond = filter.sql(&mut q);
    q.text = format!(
        "SELECT c.id, c.document_id, c.heading, c.start_char, c.end_char, c.text, d.title, d.cancer_type, d.language,
                d.record_id, d.patient_id
         FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id
         WHERE c.id IN ({list}) AND {cond}"
    );
    fetch_rows(db.writer(), &q).await
}

/// Of the records opted into the knowledge base, those a caller may read (the reading of
/// `documents.datalog` for lists): `mode` is `self` (a patient, `who`), `assigned` (a doctor,
/// `who`), `department` (a nurse: unrestricted records of `department`'s patients) or `none`;
/// live grants to `who` count in every mode.
pub async fn readable_records(db: &Db, mode: &str, who: Uuid, department: &str) -> Result<Vec<Uuid>, sqlx::Error> {
    scalar!(db.reader(), Uuid, fetch_all, &READABLE_RECORDS, mode, who, department, now_ms())
}

/// A patient's departments: their record's and their care team's.
pub async fn patient_departments(db: &Db, patient: Uuid) -> Result<Vec<String>, sqlx::Error> {
    scalar!(db.reader(), String, fetch_all, &PATIENT_DEPARTMENTS, patient)
}

/// A cancer type and its subtypes.
pub async fn cancer_subtree(db: &Db, id: &str) -> Result<Vec<String>, sqlx::Error> {
    scalar!(db.reader(), String, fetch_all, &CANCER_SUBTREE, id)
}

// ---- jobs ----

/// A new job (for a document's re-index, or a reindex of everything).
pub async fn insert_job(
    db: &Db,
    id: Uuid,
    kind: &str,
    document: Option<Uuid>,
    queue_job: i64,
    model: &str,
    by: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    exec!(db.writer(), &INSERT_JOB, id, kind, document, queue_job, model, by, now_ms()).map(|_| ())
}

/// Store a job (a reindex) and queue its work in one transaction (see [`crate::enqueue_in_tx`]).
pub async fn insert_job_queued(
    db: &Db,
    id: Uuid,
    kind: &str,
    queue_kind: &str,
    max_attempts: i32,
    model: &str,
    by: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let payload = serde_json::json!({ "knowledge_job": id }).to_string();
    transaction!(db, |tx, dialect| {
        let queue_job = crate::enqueue_in_tx!(tx, dialect, queue_kind, &payload, max_attempts, now);
        sqlx::query(INSERT_JOB.text(dialect))
            .bind(id)
            .bind(kind)
            .bind(None::<Uuid>)
            .bind(queue_job)
            .bind(model)
            .bind(by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        Ok::<_, sqlx::Error>(())
    })
}

pub async fn get_job(db: &Db, id: Uuid) -> Result<Option<JobRow>, sqlx::Error> {
    fetch!(db.writer(), JobRow, fetch_optional, &GET_JOB, id)
}

pub async fn active_jobs_for_document(db: &Db, doc: Uuid) -> Result<Vec<JobRow>, sqlx::Error> {
    fetch!(db.writer(), JobRow, fetch_all, &ACTIVE_JOBS_FOR_DOC, doc)
}

pub async fn active_reindex(db: &Db) -> Result<Vec<JobRow>, sqlx::Error> {
    fetch!(db.writer(), JobRow, fetch_all, &ACTIVE_REINDEX)
}

/// A worker began (or resumed) the job. `false`: it was cancelled or has ended.
pub async fn start_job(db: &Db, id: Uuid, total: i32, done: i32) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &START_JOB, id, total, done, now_ms())? == 1)
}

/// Chunks done so far. `false`: the job is no longer running (cancelled).
pub async fn progress(db: &Db, id: Uuid, done: i32) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &PROGRESS, id, done, now_ms())? == 1)
}

/// End the job (`done` or `failed`). `false`: it had ended already (a cancel won).
pub async fn finish_job(
    db: &Db,
    id: Uuid,
    state: &str,
    code: Option<&str>,
    error: Option<&str>,
) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &FINISH_JOB, id, state, code, error, now_ms())? == 1)
}

/// An attempt failed and the queue will try again.
pub async fn requeue_job(db: &Db, id: Uuid, code: &str, error: &str) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &REQUEUE_JOB, id, code, error, now_ms())? == 1)
}

/// Queue a failed or cancelled job again under a new queue job. `false`: it had not ended.
pub async fn retry_job(db: &Db, id: Uuid, queue_job: i64) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &RETRY_JOB, id, queue_job, now_ms())? == 1)
}

/// The queue job that runs a job (after a retry queued it again).
pub async fn set_queue_job(db: &Db, id: Uuid, queue_job: i64) -> Result<(), sqlx::Error> {
    exec!(db.writer(), &SET_QUEUE_JOB, id, queue_job).map(|_| ())
}

pub async fn cancel_job(db: &Db, id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &CANCEL_JOB, id, now_ms())? == 1)
}

pub async fn job_state(db: &Db, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    scalar!(db.writer(), String, fetch_optional, &JOB_STATE, id)
}

pub async fn job_counts(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    fetch!(db.reader(), (String, i64), fetch_all, &JOB_COUNTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(audience: &str, sensitivity: &str, department: Option<&str>) -> DocMeta {
        DocMeta {
            audience: audience.into(),
            sensitivity: sensitivity.into(),
            department: department.map(Into::into),
            cancer_type: None,
            language: "en".into(),
            record_id: None,
        }
    }

    #[test]
    fn a_patient_filter_hides_clinician_and_other_departments_restricted_documents() {
        let f = DocFilter {
            audiences: vec!["patient".into(), "all".into()],
            restricted_departments: vec!["oncology".into()],
            ..Default::default()
        };
        assert!(f.allows(&meta("patient", "normal", None)));
        assert!(f.allows(&meta("all", "restricted", Some("oncology"))));
        assert!(!f.allows(&meta("clinician", "normal", None)));
        assert!(!f.allows(&meta("patient", "restricted", Some("surgery"))));
        assert!(!f.allows(&meta("patient", "restricted", None)));
        let mut q = Query::default();
        let sql = f.sql(&mut q);
        assert!(sql.contains("d.audience IN ($1, $2)"), "{sql}");
        assert_eq!(q.params.len(), 3);
    }

    #[test]
    fn records_are_seen_only_when_listed() {
        let r = Uuid::now_v7();
        let mut d = meta("all", "normal", None);
        d.record_id = Some(r);
        let f = DocFilter { all_documents: true, ..Default::default() };
        assert!(!f.allows(&d), "administrators see a record's chunks only when they may read the record");
        let f = DocFilter { records: vec![r], ..Default::default() };
        assert!(f.allows(&d));
    }
}
