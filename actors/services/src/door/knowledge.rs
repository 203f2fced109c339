//! The knowledge base: adding, listing, changing and deleting documents, their embedding jobs,
//! opting a patient's record in, reindexing, and search.
//!
//! Who may *change* a document is the policies' (`knowledge.datalog`, with the document's facts
//! as it is and as it would become). Who *finds* a document is one scope
//! ([`crate::access::scope::knowledge`]) applied inside every query: search (both arms), the
//! list and reading one, so the three always agree. A document the caller cannot see is 404.
//!
//! Searches are audited without their text (a question is a patient's words): the event keeps
//! the query's SHA-256, the mode and the number of results; a search that returned a patient's
//! own record text is also written into that patient's access log.

use std::collections::HashMap;
use std::time::Instant;

use careport_domain::{Code, Error};
use careport_policy::StoreFact;
use careport_store::knowledge::{self as stored, DocFilter, DocumentMeta, DocumentRow, JobRow, NewDocument};
use careport_store::{NewJob, reference};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::page::{self, Page, PageRequest};
use super::records::{live_record, open_for};
use super::store_err;
use crate::access::{IndexDocument, ListKnowledge, ManageKnowledge, SearchKnowledge, WriteKnowledge, scope};
use crate::audit::{EventExt, outcome};
use crate::knowledge::extract::{self, Format};
use crate::knowledge::{KNOWLEDGE_JOB, events_channel};
use crate::{Caller, Pass, Services};

/// Knowledge base operations.
pub struct KnowledgeBase<'a>(pub(crate) &'a Services);

/// The six languages documents and questions may be in.
pub const LANGUAGES: [&str; 6] = ["en", "es", "fr", "ar", "zh", "hi"];
const AUDIENCES: [&str; 3] = ["patient", "clinician", "all"];
const SENSITIVITIES: [&str; 2] = ["normal", "restricted"];
const MAX_TITLE: usize = 300;
const MAX_QUERY: usize = 2_000;

fn invalid(message: impl Into<String>) -> Error {
    Error::with_message(Code::InvalidValue, message)
}

/// A document's metadata as a request gives it (`None`: not given).
#[derive(Debug, Clone, Default)]
pub struct MetaInput {
    pub title: Option<String>,
    /// `Some(None)`: clear it (a change); `None`: leave it.
    pub cancer_type: Option<Option<String>>,
    pub department: Option<Option<String>>,
    pub audience: Option<String>,
    pub sensitivity: Option<String>,
    pub language: Option<String>,
}

/// What is being added: a file, or a text.
#[derive(Debug, Clone)]
pub enum Source {
    File { bytes: Vec<u8>, media_type: Option<String>, file_name: Option<String> },
    Text(String),
}

/// `201 {id, job_id}`.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    pub id: Uuid,
    pub job_id: Uuid,
}

/// A knowledge document as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Document {
    pub id: Uuid,
    pub title: String,
    pub media_type: String,
    pub cancer_type: Option<String>,
    pub department: Option<String>,
    pub audience: String,
    pub sensitivity: String,
    pub language: String,
    /// Set for a patient's record opted in (its patient-private scope).
    pub record_id: Option<Uuid>,
    pub chars: i64,
    pub sha256: String,
    /// `indexing`, `ready` or `failed`.
    pub state: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A cited passage: its document, the passage and its context (empty for a record's document).
#[derive(Debug, Clone, Serialize)]
pub struct Passage {
    pub document: Document,
    pub before: String,
    pub text: String,
    pub after: String,
}

fn document(d: DocumentRow) -> Document {
    Document {
        id: d.id,
        title: d.title,
        media_type: d.media_type,
        cancer_type: d.cancer_type,
        department: d.department,
        audience: d.audience,
        sensitivity: d.sensitivity,
        language: d.language,
        record_id: d.record_id,
        chars: d.chars,
        sha256: d.sha256,
        state: d.state,
        created_at: d.created_at,
        updated_at: d.updated_at,
    }
}

/// An embedding job as its clients see it.
#[derive(Debug, Clone, Serialize)]
pub struct KnowledgeJob {
    pub id: Uuid,
    /// `index` (one document) or `reindex` (everything, into the configured model's space).
    pub kind: String,
    pub document_id: Option<Uuid>,
    pub model: String,
    /// `queued`, `running`, `done`, `failed` or `cancelled`.
    pub status: String,
    pub chunks_done: i32,
    pub chunks_total: Option<i32>,
    pub error: Option<super::ocr::JobErrorView>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

fn job_view(r: JobRow) -> KnowledgeJob {
    let error = match (r.error_code, r.error) {
        (Some(code), Some(message)) => Some(super::ocr::JobErrorView { code, message }),
        _ => None,
    };
    KnowledgeJob {
        id: r.id,
        kind: r.kind,
        document_id: r.document_id,
        model: r.model,
        status: r.state,
        chunks_done: r.chunks_done,
        chunks_total: r.chunks_total,
        error,
        created_at: r.created_at,
        finished_at: r.finished_at,
    }
}

/// Filters of the document list.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub cancer_type: Option<String>,
    pub department: Option<String>,
    pub language: Option<String>,
    pub audience: Option<String>,
    pub state: Option<String>,
    pub title: Option<String>,
    pub page: PageRequest,
}

/// How a search ranks: both arms fused, or one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Hybrid,
    Vector,
    Text,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hybrid" => Some(Mode::Hybrid),
            "vector" => Some(Mode::Vector),
            "text" => Some(Mode::Text),
            _ => None,
        }
    }
}

/// A search.
#[derive(Debug, Clone)]
pub struct SearchInput {
    pub query: String,
    pub k: Option<usize>,
    pub cancer_type: Option<String>,
    pub department: Option<String>,
    pub language: Option<String>,
    pub mode: Option<Mode>,
}

/// One result.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub document_id: Uuid,
    pub chunk_id: i64,
    pub title: String,
    pub heading: String,
    pub text: String,
    /// Character offsets of the passage in its document's text (for citations).
    pub start: i64,
    pub end: i64,
    /// Hybrid: the fused reciprocal-rank score; vector: cosine similarity; text: the engine's rank.
    pub score: f64,
    pub cancer_type: Option<String>,
    pub language: String,
    /// Set when the passage is from a patient's own record.
    pub record_id: Option<Uuid>,
}

/// `{items, mode, space, degraded}`.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResults {
    pub items: Vec<Hit>,
    /// The mode that answered (a hybrid search whose model is unavailable answers `text`).
    pub mode: Mode,
    /// The vector space searched (`null` in text mode).
    pub space: Option<String>,
    /// True when the answer is less than asked: the vector arm was unavailable.
    pub degraded: bool,
}

/// The words of a question, for the text arm: runs of letters and digits, lower-cased, at most 32.
pub fn terms(query: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in query.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let w = w.to_lowercase();
        if (w.chars().count() >= 2 || !w.is_ascii()) && !out.contains(&w) {
            out.push(w);
        }
        if out.len() == 32 {
            break;
        }
    }
    out
}

/// Reciprocal rank fusion of ranked lists (k = 60, as in Cormack et al.).
pub fn fuse(lists: &[&[(i64, f64)]]) -> Vec<(i64, f64)> {
    let mut scores: HashMap<i64, f64> = HashMap::new();
    for list in lists {
        for (rank, (id, _)) in list.iter().enumerate() {
            *scores.entry(*id).or_default() += 1.0 / (60.0 + rank as f64 + 1.0);
        }
    }
    let mut fused: Vec<(i64, f64)> = scores.into_iter().collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused
}

fn check_choice(value: &str, allowed: &[&str], field: &str) -> Result<(), Error> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(invalid(format!("{field} must be one of {}.", allowed.join(", "))))
    }
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// The facts the policies decide a change on.
fn facts(id: Uuid, m: &DocumentMeta) -> Vec<StoreFact> {
    vec![StoreFact::Knowledge {
        document: id.to_string(),
        audience: m.audience.clone(),
        department: m.department.clone(),
    }]
}

impl KnowledgeBase<'_> {
    /// The metadata a request gives, on top of `base` (a new document's defaults, or the
    /// document as it is), checked against the reference data.
    async fn meta(&self, base: DocumentMeta, input: MetaInput) -> Result<DocumentMeta, Error> {
        let db = &self.0.db;
        let mut m = base;
        if let Some(t) = input.title {
            m.title = t.trim().to_owned();
        }
        if m.title.is_empty() || m.title.chars().count() > MAX_TITLE {
            return Err(invalid(format!("title must be 1 to {MAX_TITLE} characters.")));
        }
        if let Some(a) = input.audience {
            m.audience = a;
        }
        check_choice(&m.audience, &AUDIENCES, "audience")?;
        if let Some(s) = input.sensitivity {
            m.sensitivity = s;
        }
        check_choice(&m.sensitivity, &SENSITIVITIES, "sensitivity")?;
        if let Some(l) = input.language {
            m.language = l;
        }
        check_choice(&m.language, &LANGUAGES, "language")?;
        if let Some(c) = input.cancer_type {
            m.cancer_type = nonempty(c);
        }
        if let Some(c) = &m.cancer_type
            && reference::cancer_type(db, c).await.map_err(store_err)?.is_none()
        {
            return Err(invalid("cancer_type is not a known cancer type or subtype."));
        }
        if let Some(d) = input.department {
            m.department = nonempty(d);
        }
        if let Some(d) = &m.department
            && !reference::department_exists(db, d).await.map_err(store_err)?
        {
            return Err(invalid("department is not a known department."));
        }
        Ok(m)
    }

    /// The documents `caller` finds, with the filters of a search or a list.
    async fn filter(
        &self,
        caller: &Caller,
        cancer_type: Option<String>,
        department: Option<String>,
        language: Option<String>,
    ) -> Result<DocFilter, Error> {
        let mut f = scope::knowledge(&self.0.db, caller).await?;
        if let Some(c) = nonempty(cancer_type) {
            f.cancer_types = Some(stored::cancer_subtree(&self.0.db, &c).await.map_err(store_err)?);
        }
        f.department = nonempty(department);
        if let Some(l) = nonempty(language) {
            check_choice(&l, &LANGUAGES, "language")?;
            f.language = Some(l);
        }
        Ok(f)
    }

    /// The document `id` if `caller` finds it (404 otherwise).
    async fn visible(&self, caller: &Caller, id: Uuid) -> Result<DocumentRow, Error> {
        // As every decision: an account that must still enrol MFA reaches nothing else.
        if caller.token.claims().mfa_pending {
            return Err(Error::new(Code::MfaEnrolmentRequired));
        }
        let d =
            stored::get_document(&self.0.db, id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
        let f = scope::knowledge(&self.0.db, caller).await?;
        if !f.allows(&d.meta()) {
            return Err(Error::new(Code::NotFound));
        }
        Ok(d)
    }

    /// The configured model's id, or the embedding provider's error.
    fn model(&self) -> Result<String, Error> {
        match self.0.knowledge.configured() {
            Some((m, _)) => Ok(m),
            None => Err(match self.0.embeddings.status() {
                careport_ml::ModelStatus::Off => Error::new(Code::ModelDisabled),
                _ => Error::new(Code::ModelUnavailable).retry_after(30),
            }),
        }
    }

    /// Store a new document with its `index` job and the queue's work, in one transaction. With
    /// embeddings off the document is chunked for the full-text arm and embedded later.
    async fn store_new(&self, doc: &NewDocument) -> Result<Uuid, Error> {
        let model = self.0.knowledge.configured().map_or_else(|| crate::knowledge::NO_MODEL.to_owned(), |(m, _)| m);
        let job = Uuid::now_v7();
        let max = self.0.knowledge.config().max_attempts;
        stored::insert_document_queued(&self.0.db, doc, job, KNOWLEDGE_JOB, max, &model).await.map_err(store_err)?;
        if let Some(index) = self.0.knowledge.index() {
            index.put_document(
                doc.id,
                stored::DocMeta {
                    audience: doc.audience.clone(),
                    sensitivity: doc.sensitivity.clone(),
                    department: doc.department.clone(),
                    cancer_type: doc.cancer_type.clone(),
                    language: doc.language.clone(),
                    record_id: doc.record_id,
                },
            );
        }
        self.0.jobs.addr().do_send(crate::jobs::Wake);
        Ok(job)
    }

    /// Add a document (`POST /knowledge/documents`): decided on the new document's facts,
    /// read (nothing is kept if it cannot be), stored, and queued for embedding.
    pub async fn create(&self, caller: Caller, source: Source, input: MetaInput) -> Result<Created, Error> {
        let id = Uuid::now_v7();
        let default_title = match &source {
            Source::File { file_name: Some(n), .. } => {
                n.rsplit_once('.').map(|(stem, _)| stem).unwrap_or(n).trim().to_owned()
            }
            _ => String::new(),
        };
        if input.audience.is_none() {
            return Err(invalid("audience is required: patient, clinician or all."));
        }
        if input.language.is_none() {
            return Err(invalid(format!("language is required: one of {}.", LANGUAGES.join(", "))));
        }
        let base = DocumentMeta {
            title: default_title,
            cancer_type: None,
            department: None,
            audience: String::new(),
            sensitivity: "normal".into(),
            language: String::new(),
        };
        let m = self.meta(base, input).await?;
        let pass = self.0.access.pass_for_new::<WriteKnowledge>(caller, id, &facts(id, &m)).await?;
        let limit = self.0.knowledge.config().max_upload_mib.saturating_mul(1 << 20) as usize;
        let max_pages = self.0.knowledge.config().max_pages;
        let (text, format) = match source {
            Source::Text(t) => {
                if t.len() > limit {
                    return Err(Error::new(Code::PayloadTooLarge));
                }
                (extract::text_of(t.into_bytes(), Format::Markdown, max_pages)?, Format::Markdown)
            }
            Source::File { bytes, media_type, file_name } => {
                if bytes.len() > limit {
                    return Err(Error::new(Code::PayloadTooLarge));
                }
                let format = Format::of(&bytes, media_type.as_deref(), file_name.as_deref()).ok_or_else(|| {
                    Error::with_message(
                        Code::UnsupportedMediaType,
                        "A knowledge document is plain text, Markdown, HTML or a PDF with a text layer.",
                    )
                })?;
                let text = tokio::task::spawn_blocking(move || extract::text_of(bytes, format, max_pages))
                    .await
                    .map_err(|_| Error::with_message(Code::KnowledgeUnreadable, "The document could not be read."))??;
                (text, format)
            }
        };
        let sha = Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect::<String>();
        let doc = NewDocument {
            id,
            title: m.title.clone(),
            media_type: format.media_type().into(),
            cancer_type: m.cancer_type.clone(),
            department: m.department.clone(),
            audience: m.audience.clone(),
            sensitivity: m.sensitivity.clone(),
            language: m.language.clone(),
            record_id: None,
            patient_id: None,
            chars: text.chars().count() as i64,
            sha256: sha,
            body: Some(text),
            created_by: Some(pass.caller().user()),
        };
        let job_id = self.store_new(&doc).await?;
        self.0
            .audit
            .one(
                pass.caller()
                    .ctx
                    .event("knowledge.create", outcome::SUCCESS)
                    .resource("knowledge", id)
                    .detail(format!("{} chars, audience {}, job {job_id}", doc.chars, doc.audience)),
            )
            .await?;
        Ok(Created { id, job_id })
    }

    /// A page of the documents `caller` finds (`GET /knowledge/documents`).
    pub async fn list(&self, pass: Pass<ListKnowledge>, q: ListQuery) -> Result<Page<Document>, Error> {
        let limit = q.page.limit()?;
        let after = page::decode_uuid(q.page.cursor.as_deref())?;
        if let Some(a) = &q.audience {
            check_choice(a, &AUDIENCES, "audience")?;
        }
        if let Some(s) = &q.state {
            check_choice(s, &["indexing", "ready", "failed"], "state")?;
        }
        let f = self.filter(pass.caller(), q.cancer_type, q.department, q.language).await?;
        let list = stored::ListFilter { audience: q.audience, state: q.state, title: nonempty(q.title) };
        let rows = stored::list_documents(&self.0.db, &f, &list, after, limit).await.map_err(store_err)?;
        Ok(Page::of(rows, limit, |d| d.id.to_string()).map(document))
    }

    /// One document (`GET /knowledge/documents/{id}`), if `caller` finds it.
    pub async fn get(&self, pass: Pass<ListKnowledge>, id: Uuid) -> Result<Document, Error> {
        Ok(document(self.visible(pass.caller(), id).await?))
    }

    /// A passage of a document `caller` finds, as a chat citation names it (characters
    /// `start..end` of its text), with some context either side: the web UI opens a citation
    /// with it. A record's document names its record instead, whose reading is the records
    /// operation's decision and audit event.
    pub async fn passage(&self, pass: Pass<ListKnowledge>, id: Uuid, start: i64, end: i64) -> Result<Passage, Error> {
        const CONTEXT: usize = 400;
        let d = document(self.visible(pass.caller(), id).await?);
        if d.record_id.is_some() {
            return Ok(Passage { document: d, before: String::new(), text: String::new(), after: String::new() });
        }
        let body = stored::body(&self.0.db, id).await.map_err(store_err)?.unwrap_or_default();
        let chars: Vec<char> = body.chars().collect();
        let s = usize::try_from(start.max(0)).unwrap_or(0).min(chars.len());
        let e = usize::try_from(end.max(0)).unwrap_or(0).clamp(s, chars.len());
        let from = s.saturating_sub(CONTEXT);
        let to = (e + CONTEXT).min(chars.len());
        Ok(Passage {
            document: d,
            before: chars[from..s].iter().collect(),
            text: chars[s..e].iter().collect(),
            after: chars[e..to].iter().collect(),
        })
    }

    /// Change a document's metadata (`PATCH`): decided on the document as it is and as it would
    /// become; searches see the new scope at once.
    pub async fn update(&self, caller: Caller, id: Uuid, input: MetaInput) -> Result<Document, Error> {
        let d = self.visible(&caller, id).await?;
        if d.record_id.is_some() {
            return Err(invalid("A record's document takes its metadata from the record."));
        }
        let now = d.fields();
        let pass = self.0.access.pass_with_facts::<WriteKnowledge>(caller, id, &facts(id, &now)).await?;
        let m = self.meta(now, input).await?;
        let pass = self.0.access.pass_with_facts::<WriteKnowledge>(pass.caller().clone(), id, &facts(id, &m)).await?;
        if !stored::update_meta(&self.0.db, id, &m).await.map_err(store_err)? {
            return Err(Error::new(Code::NotFound));
        }
        let row =
            stored::get_document(&self.0.db, id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
        if let Some(index) = self.0.knowledge.index() {
            index.put_document(id, row.meta());
        }
        self.0
            .audit
            .one(
                pass.caller()
                    .ctx
                    .event("knowledge.update", outcome::SUCCESS)
                    .resource("knowledge", id)
                    .detail(format!("audience {}, sensitivity {}", m.audience, m.sensitivity)),
            )
            .await?;
        Ok(document(row))
    }

    /// Delete a document with its chunks and vectors (`DELETE`); its active jobs are cancelled.
    pub async fn delete(&self, caller: Caller, id: Uuid) -> Result<(), Error> {
        let d = self.visible(&caller, id).await?;
        let pass = self.may_change(caller, &d).await?;
        self.remove(id).await?;
        self.0.audit.one(pass.ctx.event("knowledge.delete", outcome::SUCCESS).resource("knowledge", id)).await?;
        Ok(())
    }

    /// Decide whether `caller` may change (or delete, or follow the jobs of) document `d`: a
    /// record's document by whoever may index the record, a curated one by the policies on its
    /// facts. The caller back, decided.
    async fn may_change(&self, caller: Caller, d: &DocumentRow) -> Result<Caller, Error> {
        let pass = match d.record_id {
            Some(record) => self.0.access.pass::<IndexDocument>(caller, Some(record)).await?.caller().clone(),
            None => {
                let facts = facts(d.id, &d.fields());
                self.0.access.pass_with_facts::<WriteKnowledge>(caller, d.id, &facts).await?.caller().clone()
            }
        };
        Ok(pass)
    }

    /// Remove a document from the store and the index, cancelling its jobs.
    async fn remove(&self, id: Uuid) -> Result<(), Error> {
        for job in stored::active_jobs_for_document(&self.0.db, id).await.map_err(store_err)? {
            if stored::cancel_job(&self.0.db, job.id).await.map_err(store_err)? {
                self.announce(job.id, json!({"type": "cancelled", "job_id": job.id})).await;
            }
        }
        let chunks = stored::delete_document(&self.0.db, id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| Error::new(Code::NotFound))?;
        if let Some(index) = self.0.knowledge.index() {
            index.remove_document(id, &chunks);
        }
        Ok(())
    }

    async fn announce(&self, job: Uuid, event: Value) {
        let _ = self.0.bus.publish(&events_channel(job), event.to_string().as_bytes()).await;
    }

    /// A job if `caller` may follow it: a document's job by whoever may change the document (or
    /// index its record); a reindex by administrators.
    async fn gate(&self, caller: &Caller, id: Uuid) -> Result<JobRow, Error> {
        let row =
            stored::get_job(&self.0.db, id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
        match row.document_id {
            Some(doc) => {
                let d = self.visible(caller, doc).await?;
                self.may_change(caller.clone(), &d).await?;
            }
            None => {
                self.0
                    .access
                    .pass::<ManageKnowledge>(caller.clone(), None)
                    .await
                    .map_err(|_| Error::new(Code::NotFound))?;
            }
        }
        Ok(row)
    }

    /// A job's status (`GET /knowledge/jobs/{id}`).
    pub async fn job(&self, caller: Caller, id: Uuid) -> Result<KnowledgeJob, Error> {
        Ok(job_view(self.gate(&caller, id).await?))
    }

    /// Follow a job: its state now and its events (subscribed before the state is read).
    pub async fn watch(&self, caller: Caller, id: Uuid) -> Result<(KnowledgeJob, super::ocr::Events), Error> {
        self.gate(&caller, id).await?;
        let events = self.0.bus.subscribe(&events_channel(id));
        let row =
            stored::get_job(&self.0.db, id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
        Ok((job_view(row), events))
    }

    /// A job's state now (for a watcher that missed events).
    pub async fn job_state(&self, id: Uuid) -> Result<Option<KnowledgeJob>, Error> {
        Ok(stored::get_job(&self.0.db, id).await.map_err(store_err)?.map(job_view))
    }

    /// Cancel a queued or running job (`DELETE /knowledge/jobs/{id}`); 409 `job_finished` after.
    pub async fn cancel(&self, caller: Caller, id: Uuid) -> Result<KnowledgeJob, Error> {
        self.gate(&caller, id).await?;
        if !stored::cancel_job(&self.0.db, id).await.map_err(store_err)? {
            return Err(Error::new(Code::JobFinished));
        }
        self.announce(id, json!({"type": "cancelled", "job_id": id})).await;
        self.0
            .audit
            .one(caller.ctx.event("knowledge.job_cancel", outcome::SUCCESS).resource("knowledge_job", id))
            .await?;
        self.job_state(id).await?.ok_or_else(|| Error::new(Code::NotFound))
    }

    /// Run a failed or cancelled job again (`POST /knowledge/jobs/{id}/retry`); it resumes from
    /// the chunks already embedded. 409 `job_active` while it is queued or running.
    pub async fn retry(&self, caller: Caller, id: Uuid) -> Result<KnowledgeJob, Error> {
        let row = self.gate(&caller, id).await?;
        if row.is_active() {
            return Err(Error::new(Code::JobActive));
        }
        if row.state == stored::state::DONE {
            return Err(Error::new(Code::JobFinished));
        }
        // The row is queued again first, then the queue's work: a runner that claims the work
        // at once finds the job to run, not the ended one.
        if !stored::retry_job(&self.0.db, id, 0).await.map_err(store_err)? {
            return Err(Error::new(Code::JobActive));
        }
        let max = self.0.knowledge.config().max_attempts;
        let queued =
            self.0.queue.enqueue(NewJob::new(KNOWLEDGE_JOB, json!({ "knowledge_job": id })).max_attempts(max)).await;
        let queued = match queued {
            Ok(q) => q,
            Err(e) => {
                let _ = stored::finish_job(
                    &self.0.db,
                    id,
                    stored::state::FAILED,
                    Some("store_unavailable"),
                    Some("The retry could not be queued."),
                )
                .await;
                return Err(store_err(e));
            }
        };
        stored::set_queue_job(&self.0.db, id, queued.0).await.map_err(store_err)?;
        if let Some(doc) = row.document_id {
            stored::set_document_state(&self.0.db, doc, "indexing").await.map_err(store_err)?;
        }
        self.0.jobs.addr().do_send(crate::jobs::Wake);
        self.0
            .audit
            .one(caller.ctx.event("knowledge.job_retry", outcome::SUCCESS).resource("knowledge_job", id))
            .await?;
        self.job_state(id).await?.ok_or_else(|| Error::new(Code::NotFound))
    }

    /// Embed every chunk into the configured model's space and make it the active one
    /// (`POST /knowledge/reindex`, `careport knowledge reindex`). A reindex already queued or
    /// running is answered instead of a second.
    pub async fn reindex(&self, pass: Pass<ManageKnowledge>) -> Result<KnowledgeJob, Error> {
        let model = self.model()?;
        let job = queue_reindex(self.0, &model, Some(pass.caller().user())).await?;
        self.0
            .audit
            .one(
                pass.caller()
                    .ctx
                    .event("knowledge.reindex", outcome::SUCCESS)
                    .resource("knowledge_job", job)
                    .detail(model),
            )
            .await?;
        self.job_state(job).await?.ok_or_else(|| Error::new(Code::NotFound))
    }

    /// Opt a record into the knowledge base (`POST /records/{id}/knowledge`): its OCR text is
    /// chunked into its patient's private scope, found only by those who may read the record.
    /// 404 `text_not_ready` before it has text; an opted-in record answers its document.
    pub async fn add_record(&self, pass: Pass<IndexDocument>) -> Result<Created, Error> {
        let (caller, id) = (pass.caller(), pass.id());
        let r = live_record(self.0, id).await?;
        if let Some(d) = stored::document_for_record(&self.0.db, id).await.map_err(store_err)? {
            let job = stored::active_jobs_for_document(&self.0.db, d.id).await.map_err(store_err)?;
            if let Some(j) = job.first() {
                return Ok(Created { id: d.id, job_id: j.id });
            }
        }
        // The text must exist, and opens for this caller (their own way into the file).
        let file = open_for(self.0, caller, &r).await?;
        let json = file.ocr_text(&r).await?.ok_or_else(|| Error::new(Code::TextNotReady))?;
        let text: crate::ocr::StoredText = serde_json::from_str(&json)
            .map_err(|_| Error::internal(anyhow::anyhow!("a record's stored text is not the expected document")))?;
        if let Some(old) = stored::document_for_record(&self.0.db, id).await.map_err(store_err)? {
            self.remove(old.id).await?;
        }
        let language = if LANGUAGES.contains(&text.language.as_str()) { text.language.clone() } else { "en".into() };
        let doc_id = Uuid::now_v7();
        let doc = NewDocument {
            id: doc_id,
            title: r.title.clone(),
            media_type: r.media_type.clone(),
            cancer_type: None,
            department: None,
            audience: "all".into(),
            sensitivity: if r.sensitive { "restricted".into() } else { "normal".into() },
            language,
            record_id: Some(id),
            patient_id: Some(r.patient_id),
            body: None,
            chars: text.text.chars().count() as i64,
            sha256: Sha256::digest(text.text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect(),
            created_by: Some(caller.user()),
        };
        let job_id = self.store_new(&doc).await?;
        self.0
            .audit
            .one(
                caller
                    .ctx
                    .event("knowledge.record_added", outcome::SUCCESS)
                    .resource("document", id)
                    .patient(r.patient_id)
                    .detail(format!("knowledge document {doc_id}, job {job_id}")),
            )
            .await?;
        Ok(Created { id: doc_id, job_id })
    }

    /// Take a record out of the knowledge base (`DELETE /records/{id}/knowledge`).
    pub async fn remove_record(&self, pass: Pass<IndexDocument>) -> Result<(), Error> {
        let (caller, id) = (pass.caller(), pass.id());
        let r = live_record(self.0, id).await?;
        let d = stored::document_for_record(&self.0.db, id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| Error::new(Code::NotFound))?;
        self.remove(d.id).await?;
        self.0
            .audit
            .one(
                caller
                    .ctx
                    .event("knowledge.record_removed", outcome::SUCCESS)
                    .resource("document", id)
                    .patient(r.patient_id),
            )
            .await?;
        Ok(())
    }

    /// Search (`POST /knowledge/search`): each arm filtered inside its query by the caller's
    /// scope and the asked filters, fused by reciprocal rank.
    pub async fn search(&self, pass: Pass<SearchKnowledge>, input: SearchInput) -> Result<SearchResults, Error> {
        let started = Instant::now();
        let caller = pass.caller();
        let query = input.query.trim().to_owned();
        if query.is_empty() || query.chars().count() > MAX_QUERY {
            return Err(invalid(format!("query must be 1 to {MAX_QUERY} characters.")));
        }
        let max_k = self.0.knowledge.config().max_k;
        let k = input.k.unwrap_or(8);
        if k == 0 || k > max_k {
            return Err(invalid(format!("k must be 1 to {max_k}.")));
        }
        let asked = input.mode.unwrap_or(Mode::Hybrid);
        let filter = self.filter(caller, input.cancer_type, input.department, input.language).await?;
        let candidates = self.0.knowledge.config().candidates.max(k);

        // The vector arm, when asked and the active space's model is here.
        let mut degraded = false;
        let mut space = None;
        let mut vector: Vec<(i64, f64)> = Vec::new();
        if asked != Mode::Text {
            match self.0.knowledge.active() {
                Some(active) => match self.0.knowledge.embed_query(&active, &query).await {
                    Some(Ok(q)) => {
                        vector = match self.0.knowledge.index() {
                            Some(index) => {
                                let n = if asked == Mode::Vector { k } else { candidates };
                                index.search(&q, n, &filter)
                            }
                            None => {
                                let n = if asked == Mode::Vector { k } else { candidates } as i64;
                                let ef = self.0.knowledge.config().ef_search.max(n);
                                stored::pg_vector_search(&self.0.db, &active.model, &q, &filter, n, ef)
                                    .await
                                    .map_err(store_err)?
                            }
                        };
                        space = Some(active.model.clone());
                    }
                    Some(Err(e)) if asked == Mode::Vector => return Err(e.into()),
                    Some(Err(_)) | None => {
                        if asked == Mode::Vector {
                            return Err(Error::new(Code::ModelUnavailable).retry_after(30));
                        }
                        degraded = true;
                    }
                },
                None if asked == Mode::Vector => return Err(Error::new(Code::ModelUnavailable).retry_after(30)),
                None => degraded = true,
            }
        }
        let text = if asked != Mode::Vector {
            let n = if asked == Mode::Text { k } else { candidates } as i64;
            stored::text_search(&self.0.db, &terms(&query), &filter, n).await.map_err(store_err)?
        } else {
            Vec::new()
        };
        let (mode, ranked) = match (asked, space.is_some()) {
            (Mode::Vector, _) => (Mode::Vector, vector),
            (Mode::Text, _) | (Mode::Hybrid, false) => (Mode::Text, text),
            (Mode::Hybrid, true) => (Mode::Hybrid, fuse(&[&vector, &text])),
        };
        let ranked: Vec<(i64, f64)> = ranked.into_iter().take(k).collect();
        let ids: Vec<i64> = ranked.iter().map(|(id, _)| *id).collect();
        let rows = stored::hits(&self.0.db, &ids, &filter).await.map_err(store_err)?;
        let mut by_id: HashMap<i64, stored::ChunkHit> = rows.into_iter().map(|h| (h.id, h)).collect();

        // A record's passages are read from its sealed text, opened the caller's own way.
        let mut record_texts: HashMap<Uuid, Option<Vec<char>>> = HashMap::new();
        let mut patients: Vec<(Uuid, Uuid)> = Vec::new();
        let mut items = Vec::with_capacity(ranked.len());
        for (id, score) in ranked {
            let Some(h) = by_id.remove(&id) else { continue };
            let text = match (h.text, h.record_id) {
                (Some(t), _) => t,
                (None, Some(record)) => {
                    if let std::collections::hash_map::Entry::Vacant(e) = record_texts.entry(record) {
                        e.insert(self.record_chars(caller, record).await);
                    }
                    let Some(Some(chars)) = record_texts.get(&record) else { continue };
                    let (s, e) = (h.start_char.max(0) as usize, (h.end_char.max(0) as usize).min(chars.len()));
                    let Some(slice) = chars.get(s..e) else { continue };
                    if let Some(p) = h.patient_id
                        && !patients.contains(&(record, p))
                    {
                        patients.push((record, p));
                    }
                    slice.iter().collect()
                }
                (None, None) => continue,
            };
            items.push(Hit {
                document_id: h.document_id,
                chunk_id: h.id,
                title: h.title,
                heading: h.heading,
                text,
                start: h.start_char,
                end: h.end_char,
                score,
                cancer_type: h.cancer_type,
                language: h.language,
                record_id: h.record_id,
            });
        }
        let digest: String = Sha256::digest(query.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        let mut events =
            vec![caller.ctx.event("knowledge.search", outcome::SUCCESS).resource("knowledge", "*").detail(format!(
                "query sha256 {digest}, mode {}, {} results",
                serde_json::to_string(&mode).unwrap_or_default(),
                items.len()
            ))];
        for (record, patient) in patients {
            events.push(
                caller
                    .ctx
                    .event("record.text_read", outcome::SUCCESS)
                    .resource("document", record)
                    .patient(patient)
                    .detail("found by a knowledge search"),
            );
        }
        self.0.audit.write(events).await?;
        self.0.knowledge.record_search(started.elapsed().as_micros() as u64);
        Ok(SearchResults { items, mode, space, degraded })
    }

    /// A record's text as characters, opened with the caller's own access (`None`: it does not
    /// open for them now, so its passages are left out).
    async fn record_chars(&self, caller: &Caller, record: Uuid) -> Option<Vec<char>> {
        let r = live_record(self.0, record).await.ok()?;
        let file = open_for(self.0, caller, &r).await.ok()?;
        let json = file.ocr_text(&r).await.ok()??;
        let text: crate::ocr::StoredText = serde_json::from_str(&json).ok()?;
        Some(text.text.chars().collect())
    }

    /// The knowledge base's figures (`GET /admin/knowledge/stats`).
    pub async fn stats(&self, _: Pass<ManageKnowledge>) -> Result<Value, Error> {
        let k = &self.0.knowledge;
        let counts = stored::job_counts(&self.0.db).await.map_err(store_err)?;
        let documents = stored::count_documents(&self.0.db).await.map_err(store_err)?;
        let active = k.active();
        let (chunks, embedded) = match &active {
            Some(a) => stored::coverage(&self.0.db, &a.model).await.map_err(store_err)?,
            None => (0, 0),
        };
        let c = k.counters();
        let searches = c.searches.load(std::sync::atomic::Ordering::Relaxed);
        let micros = c.search_micros.load(std::sync::atomic::Ordering::Relaxed);
        Ok(json!({
            "documents": documents,
            "chunks": chunks,
            "chunks_embedded": embedded,
            "jobs": counts.into_iter().collect::<HashMap<_, _>>(),
            "active_space": active.as_ref().map(|a| json!({"model": a.model, "dim": a.dim, "queries": a.embedder.is_some()})),
            "configured_model": k.configured().map(|(m, _)| m),
            "index": k.index().map(|i| json!({"kind": "in-process", "vectors": i.len(), "bytes": i.memory_bytes()}))
                .unwrap_or_else(|| json!({"kind": "pgvector"})),
            "node": {"searches": searches, "mean_search_ms": if searches > 0 { micros as f64 / searches as f64 / 1000.0 } else { 0.0 }},
        }))
    }
}

/// Embedding jobs by state in the whole cluster (for `/metrics`).
pub async fn job_counts(services: &Services) -> Result<Vec<(String, i64)>, Error> {
    stored::job_counts(&services.db).await.map_err(store_err)
}

/// A record was deleted: its passages leave the knowledge base with their vectors (searches
/// stopped finding them at once: the scope reads only live records). Logged if it fails; the
/// scope keeps them hidden either way.
pub(crate) async fn forget_record(services: &Services, record: Uuid) {
    let kb = KnowledgeBase(services);
    match stored::document_for_record(&services.db, record).await {
        Ok(Some(d)) => {
            if let Err(e) = kb.remove(d.id).await {
                tracing::warn!(code = %e.code(), "a deleted record's knowledge passages were not removed");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "a deleted record's knowledge passages were not looked up"),
    }
}

/// A patient's files were erased: their records' passages leave the knowledge base.
pub(crate) async fn forget_patient(services: &Services, patient: Uuid) {
    let kb = KnowledgeBase(services);
    match stored::documents_of_patient(&services.db, patient).await {
        Ok(docs) => {
            for d in docs {
                if let Err(e) = kb.remove(d).await {
                    tracing::warn!(code = %e.code(), "an erased patient's knowledge passages were not removed");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "an erased patient's knowledge passages were not looked up"),
    }
}

/// Queue a reindex into `model`'s space (at start after a model change, from the API) and wake
/// this node's runner.
pub async fn queue_reindex(services: &Services, model: &str, by: Option<Uuid>) -> Result<Uuid, Error> {
    let max = services.knowledge.config().max_attempts;
    let job = crate::knowledge::enqueue_reindex(&services.db, model, max, by).await?;
    services.jobs.addr().do_send(crate::jobs::Wake);
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_words_lowercased_once() {
        assert_eq!(terms("What is NAUSEA, nausea? a"), vec!["what", "is", "nausea"]);
        assert_eq!(terms("¿Qué es la quimioterapia?"), vec!["qué", "es", "la", "quimioterapia"]);
        assert_eq!(terms("化疗 的 副作用"), vec!["化疗", "的", "副作用"]);
        assert!(terms("\" OR 1=1 --").iter().all(|t| t.chars().all(char::is_alphanumeric)));
    }

    #[test]
    fn fusion_rewards_agreement() {
        let v = [(1, 0.9), (2, 0.8), (3, 0.7)];
        let t = [(3, 5.0), (4, 4.0)];
        let fused = fuse(&[&v, &t]);
        assert_eq!(fused[0].0, 3, "in both lists beats first in one: {fused:?}");
        assert_eq!(fused.len(), 4);
    }
}
