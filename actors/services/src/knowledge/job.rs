//! Embedding jobs: `index` (one document: chunk it, embed its chunks) and `reindex` (every chunk
//! into the configured model's space, then make that space the active one).
//!
//! Each batch of vectors is committed before its progress is published, so a job resumed after a
//! crash (the queue re-queues it when its lease expires) embeds only the chunks still without a
//! vector. Cancellation is a state in `knowledge_jobs` that no worker write can leave; the worker
//! checks it before each batch and stops.

use std::collections::HashMap;

use careport_domain::Code;
use careport_ml::EmbedError;
use careport_store::knowledge::{self as stored, NewChunk, PendingChunk};
use careport_store::{Job, vault as records};
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{KNOWLEDGE_JOB, Knowledge, SPACE_CHANNEL, events_channel};
use crate::jobs::{JobError, JobHandler};
use crate::vault::Vault;

/// The queue payload: identifiers only.
#[derive(Debug, Deserialize)]
pub struct Payload {
    pub knowledge_job: Uuid,
}

/// Why an attempt stopped: its code and message are shown to the job's readers (no PHI).
struct Failure {
    code: &'static str,
    message: String,
    retry: bool,
}

impl Failure {
    fn retry(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry: true }
    }
    fn permanent(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry: false }
    }
}

fn store_failure(e: sqlx::Error) -> Failure {
    tracing::warn!(error = %e, "knowledge job: store failure");
    Failure::retry("store_unavailable", "The store was unavailable.")
}

fn embed_failure(e: EmbedError) -> Failure {
    match e {
        EmbedError::Disabled => Failure::permanent("model_disabled", "Embeddings are turned off."),
        EmbedError::Invalid(_) => Failure::permanent("model_failed", "The embedding model refused a chunk."),
        other => Failure::retry("model_unavailable", format!("The embedding model was unavailable ({other}).")),
    }
}

enum Outcome {
    Done,
    Cancelled,
    Gone,
}

/// The queue's handler of embedding jobs.
pub struct KnowledgeHandler {
    knowledge: Knowledge,
    vault: Vault,
}

impl KnowledgeHandler {
    pub fn new(knowledge: Knowledge, vault: Vault) -> Self {
        Self { knowledge, vault }
    }
}

impl JobHandler for KnowledgeHandler {
    fn kind(&self) -> &'static str {
        KNOWLEDGE_JOB
    }

    fn run(&self, job: Job) -> BoxFuture<'static, Result<(), JobError>> {
        let (knowledge, vault) = (self.knowledge.clone(), self.vault.clone());
        Box::pin(async move { run(knowledge, vault, job).await })
    }
}

async fn publish(k: &Knowledge, id: Uuid, event: Value) {
    let _ = k.inner.bus.publish(&events_channel(id), event.to_string().as_bytes()).await;
}

/// Run one claimed job to its end (or to a failure the queue retries).
pub async fn run(k: Knowledge, vault: Vault, job: Job) -> Result<(), JobError> {
    let Ok(payload) = serde_json::from_str::<Payload>(&job.payload) else {
        return Err(JobError::Permanent("bad payload".into()));
    };
    let id = payload.knowledge_job;
    let last_attempt = job.attempts >= job.max_attempts;
    // The queue row is written first and the job's row just after (the door does both before
    // it answers), so a runner quick enough can claim the work before its row is visible: try
    // again shortly. A row that never comes (its insert failed) ends the work after a few tries.
    if job.attempts < 3 && matches!(stored::job_state(&k.inner.db, id).await, Ok(None)) {
        return Err(JobError::Retry("the job's row is not written yet".into()));
    }
    match attempt(&k, &vault, id).await {
        Ok(Outcome::Done) => Ok(()),
        Ok(Outcome::Cancelled) => {
            publish(&k, id, json!({"type": "cancelled", "job_id": id})).await;
            Ok(())
        }
        Ok(Outcome::Gone) => Ok(()),
        Err(f) if f.retry && !last_attempt => {
            let _ = stored::requeue_job(&k.inner.db, id, f.code, &f.message).await;
            publish(&k, id, json!({"type": "retrying", "job_id": id, "code": f.code, "message": f.message})).await;
            Err(JobError::Retry(format!("{}: {}", f.code, f.message)))
        }
        Err(f) => {
            if let Ok(Some(row)) = stored::get_job(&k.inner.db, id).await
                && let Some(doc) = row.document_id
            {
                let _ = stored::set_document_state(&k.inner.db, doc, "failed").await;
            }
            let _ = stored::finish_job(&k.inner.db, id, stored::state::FAILED, Some(f.code), Some(&f.message)).await;
            publish(&k, id, json!({"type": "failed", "job_id": id, "code": f.code, "message": f.message})).await;
            Err(JobError::Permanent(format!("{}: {}", f.code, f.message)))
        }
    }
}

async fn attempt(k: &Knowledge, vault: &Vault, id: Uuid) -> Result<Outcome, Failure> {
    let db = &k.inner.db;
    let Some(row) = stored::get_job(db, id).await.map_err(store_failure)? else { return Ok(Outcome::Gone) };
    if !row.is_active() {
        return Ok(if row.state == stored::state::CANCELLED { Outcome::Cancelled } else { Outcome::Gone });
    }
    let model = k.configured().map(|(m, _)| m);
    match (row.kind.as_str(), model) {
        ("index", model) => {
            let Some(doc) = row.document_id else {
                return Err(Failure::permanent("document_deleted", "The document was deleted."));
            };
            index_document(k, vault, id, doc, model.as_deref()).await
        }
        (_, Some(model)) => reindex(k, vault, id, &model, &row.model).await,
        (_, None) => Err(Failure::permanent("model_disabled", "Embeddings are turned off: there is no space to fill.")),
    }
}

/// The text of a document: its body, or its record's OCR text (opened with the system's wrap:
/// the door decided who may add it).
async fn document_text(k: &Knowledge, vault: &Vault, doc: &stored::DocumentRow) -> Result<String, Failure> {
    if let Some(record) = doc.record_id {
        let r = records::record(&k.inner.db, record).await.map_err(store_failure)?;
        let Some(r) = r.filter(|r| r.deleted_at.is_none()) else {
            return Err(Failure::permanent("record_deleted", "The record was deleted."));
        };
        let file = vault.open_as_care_team(&r).await.map_err(|e| match e.code() {
            Code::Erased => Failure::permanent("erased", "The file was erased."),
            c => Failure::retry("storage_unavailable", format!("The record could not be opened ({c}).")),
        })?;
        let json = file
            .ocr_text(&r)
            .await
            .map_err(|_| Failure::retry("storage_unavailable", "The record's text could not be opened."))?
            .ok_or_else(|| Failure::permanent("text_not_ready", "The record has no text yet."))?;
        let stored: crate::ocr::StoredText = serde_json::from_str(&json)
            .map_err(|_| Failure::permanent("text_not_ready", "The record's text is not readable."))?;
        return Ok(stored.text);
    }
    stored::body(&k.inner.db, doc.id)
        .await
        .map_err(store_failure)?
        .ok_or_else(|| Failure::permanent("document_deleted", "The document was deleted."))
}

/// Cut a text into chunks with the model's tokenizer (on the blocking pool).
async fn chunk_text(k: &Knowledge, text: String, keep_text: bool) -> Result<Vec<NewChunk>, Failure> {
    let tokens = k.tokens();
    let cfg = k.chunk_config();
    tokio::task::spawn_blocking(move || {
        careport_ml::chunking::chunk(&text, tokens.as_ref(), &cfg)
            .into_iter()
            .map(|c| NewChunk {
                heading: c.heading_path.join(" › "),
                start_char: c.start as i64,
                end_char: c.end as i64,
                tokens: c.tokens as i64,
                text: keep_text.then_some(c.text),
            })
            .collect()
    })
    .await
    .map_err(|_| Failure::permanent("chunking_failed", "The document could not be cut into chunks."))
}

/// A chunk's text: its own, or its slice of the record's text.
fn chunk_body(c: &PendingChunk, record_text: Option<&Vec<char>>) -> String {
    let text = match (&c.text, record_text) {
        (Some(t), _) => t.clone(),
        (None, Some(chars)) => {
            let (s, e) = (c.start_char.max(0) as usize, (c.end_char.max(0) as usize).min(chars.len()));
            chars.get(s..e).map(|cs| cs.iter().collect()).unwrap_or_default()
        }
        (None, None) => String::new(),
    };
    // The heading path gives a chunk its context ("Side effects › Nausea").
    if c.heading.is_empty() { text } else { format!("{}\n{text}", c.heading) }
}

/// Embed `chunks` in batches into `model`'s space, committing and publishing each batch.
/// `false`: the job was cancelled on the way.
#[allow(clippy::too_many_arguments)]
async fn embed_chunks(
    k: &Knowledge,
    id: Uuid,
    model: &str,
    chunks: &[PendingChunk],
    texts: &HashMap<Uuid, Vec<char>>,
    mut done: usize,
    total: usize,
) -> Result<(bool, usize), Failure> {
    let db = &k.inner.db;
    let active = k.active();
    for batch in chunks.chunks(k.config().batch.max(1)) {
        if stored::job_state(db, id).await.map_err(store_failure)?.as_deref() != Some(stored::state::RUNNING) {
            return Ok((false, done));
        }
        let inputs: Vec<String> = batch.iter().map(|c| chunk_body(c, texts.get(&c.document_id))).collect();
        let vectors = k.embed_passages(model, inputs).await.map_err(embed_failure)?;
        if vectors.len() != batch.len() {
            return Err(Failure::retry("model_failed", "The embedding model answered the wrong number of vectors."));
        }
        let rows: Vec<(i64, Vec<f32>)> = batch.iter().map(|c| c.id).zip(vectors).collect();
        stored::put_vectors(db, model, &rows).await.map_err(store_failure)?;
        if let (Some(index), Some(a)) = (k.index(), active.as_ref())
            && a.model == model
        {
            let mut by_doc: HashMap<Uuid, Vec<(i64, Vec<f32>)>> = HashMap::new();
            for (c, (cid, v)) in batch.iter().zip(rows) {
                by_doc.entry(c.document_id).or_default().push((cid, v));
            }
            for (doc, vs) in by_doc {
                index.add(doc, &vs);
            }
        }
        done += batch.len();
        k.inner.counters.chunks_embedded.fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if !stored::progress(db, id, done as i32).await.map_err(store_failure)? {
            return Ok((false, done));
        }
        publish(k, id, json!({"type": "progress", "job_id": id, "chunks_done": done, "chunks_total": total})).await;
    }
    Ok((true, done))
}

/// Chunk a document and embed its chunks (with no model: chunk it for the text arm only).
async fn index_document(
    k: &Knowledge,
    vault: &Vault,
    id: Uuid,
    doc_id: Uuid,
    model: Option<&str>,
) -> Result<Outcome, Failure> {
    let db = &k.inner.db;
    let Some(doc) = stored::get_document(db, doc_id).await.map_err(store_failure)? else {
        return Err(Failure::permanent("document_deleted", "The document was deleted."));
    };
    let mut texts = HashMap::new();
    if stored::chunk_ids(db, doc_id).await.map_err(store_failure)?.is_empty() {
        let text = document_text(k, vault, &doc).await?;
        let chunks = chunk_text(k, text.clone(), doc.record_id.is_none()).await?;
        let old = stored::replace_chunks(db, doc_id, &chunks).await.map_err(store_failure)?;
        if let Some(index) = k.index() {
            index.remove_chunks(&old);
        }
        if doc.record_id.is_some() {
            texts.insert(doc_id, text.chars().collect());
        }
    } else if doc.record_id.is_some() {
        texts.insert(doc_id, document_text(k, vault, &doc).await?.chars().collect());
    }
    let total = stored::chunk_ids(db, doc_id).await.map_err(store_failure)?.len();
    let pending = match model {
        Some(model) => stored::chunks_to_embed(db, doc_id, model).await.map_err(store_failure)?,
        None => Vec::new(),
    };
    let done = total - pending.len();
    if !stored::start_job(db, id, total as i32, done as i32).await.map_err(store_failure)? {
        return Ok(Outcome::Cancelled);
    }
    publish(k, id, json!({"type": "progress", "job_id": id, "chunks_done": done, "chunks_total": total})).await;
    if let Some(model) = model {
        let (finished, _) = embed_chunks(k, id, model, &pending, &texts, done, total).await?;
        if !finished {
            return Ok(Outcome::Cancelled);
        }
    }
    stored::set_document_state(db, doc_id, "ready").await.map_err(store_failure)?;
    if !stored::finish_job(db, id, stored::state::DONE, None, None).await.map_err(store_failure)? {
        return Ok(Outcome::Cancelled);
    }
    publish(k, id, json!({"type": "done", "job_id": id, "chunks_done": total, "chunks_total": total})).await;
    Ok(Outcome::Done)
}

async fn reindex(k: &Knowledge, vault: &Vault, id: Uuid, model: &str, asked: &str) -> Result<Outcome, Failure> {
    let db = &k.inner.db;
    if model != asked {
        return Err(Failure::permanent(
            "model_changed",
            "The configured embedding model changed after this reindex was asked for; ask again.",
        ));
    }
    // Documents whose own job never finished are chunked first.
    for doc_id in stored::documents_to_index(db).await.map_err(store_failure)? {
        if stored::chunk_ids(db, doc_id).await.map_err(store_failure)?.is_empty()
            && let Some(doc) = stored::get_document(db, doc_id).await.map_err(store_failure)?
        {
            match document_text(k, vault, &doc).await {
                Ok(text) => {
                    let chunks = chunk_text(k, text, doc.record_id.is_none()).await?;
                    stored::replace_chunks(db, doc_id, &chunks).await.map_err(store_failure)?;
                }
                Err(f) if !f.retry => {
                    stored::set_document_state(db, doc_id, "failed").await.map_err(store_failure)?;
                }
                Err(f) => return Err(f),
            }
        }
    }
    let (total, done) = stored::coverage(db, model).await.map_err(store_failure)?;
    if !stored::start_job(db, id, total as i32, done as i32).await.map_err(store_failure)? {
        return Ok(Outcome::Cancelled);
    }
    publish(k, id, json!({"type": "progress", "job_id": id, "chunks_done": done, "chunks_total": total})).await;
    let mut done = done as usize;
    let mut texts: HashMap<Uuid, Vec<char>> = HashMap::new();
    loop {
        let pending = stored::any_chunks_to_embed(db, model, 512).await.map_err(store_failure)?;
        if pending.is_empty() {
            break;
        }
        for c in pending.iter().filter(|c| c.text.is_none()) {
            if texts.contains_key(&c.document_id) {
                continue;
            }
            if let Some(doc) = stored::get_document(db, c.document_id).await.map_err(store_failure)? {
                texts.insert(c.document_id, document_text(k, vault, &doc).await?.chars().collect());
            }
        }
        let (finished, now) = embed_chunks(k, id, model, &pending, &texts, done, total as usize).await?;
        if !finished {
            return Ok(Outcome::Cancelled);
        }
        done = now;
    }
    for doc_id in stored::documents_to_index(db).await.map_err(store_failure)? {
        if !stored::chunk_ids(db, doc_id).await.map_err(store_failure)?.is_empty() {
            stored::set_document_state(db, doc_id, "ready").await.map_err(store_failure)?;
        }
    }
    // Every chunk has its vector in the new space: switch, and drop the old space's vectors.
    let previous = stored::active_space(db).await.map_err(store_failure)?;
    let dim = k.configured().map(|(_, d)| d).unwrap_or(0);
    stored::put_space(db, model, dim as i32, "building").await.map_err(store_failure)?;
    stored::activate_space(db, model).await.map_err(store_failure)?;
    if !stored::finish_job(db, id, stored::state::DONE, None, None).await.map_err(store_failure)? {
        return Ok(Outcome::Cancelled);
    }
    k.reload_active().await.map_err(|_| Failure::retry("store_unavailable", "The new space could not be loaded."))?;
    let _ = k.inner.bus.publish(SPACE_CHANNEL, model.as_bytes()).await;
    if let Some(old) = previous.filter(|p| p.model != model) {
        stored::delete_space_vectors(db, &old.model).await.map_err(store_failure)?;
    }
    publish(k, id, json!({"type": "done", "job_id": id, "chunks_done": total, "chunks_total": total})).await;
    Ok(Outcome::Done)
}
