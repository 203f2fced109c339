//! One OCR job, start to end, on the node that claimed it: open the file, split it into pages,
//! read the pages on the pool, keep each page as it comes, post-process the document's text,
//! and commit the result into the record.
//!
//! Errors are sorted by what trying again would do. A file that is not readable (encrypted,
//! malformed, too many pages, a page too large) fails the job at once with a stable code; a
//! passing failure (the store or the object storage did not answer) is retried by the queue
//! with backoff, the job showing `queued` with the reason, until its attempts are spent. Error
//! texts name the problem, never the document's content.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use careport_domain::Code;
use careport_ml::ocr::{Document, DocumentText, OcrError, OcrLanguage, PageResult, PageSource};
use careport_store::ocr::{self as stored, OcrPageRow};
use careport_store::{Job, vault as records};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::pool::{Engine, OcrPool, PageTask};
use super::{Ocr, events_channel};
use crate::jobs::JobError;

/// The queue payload of an OCR job: identifiers only.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Payload {
    pub ocr_job: Uuid,
}

/// The result kept in the record, sealed with its file's key: what
/// `GET /api/v1/records/{id}/text` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredText {
    pub text: String,
    pub mean_confidence: f32,
    pub language: String,
    pub pages: Vec<StoredPage>,
    /// What the post-processing plugins found (each carries `plugin`).
    pub annotations: Vec<serde_json::Value>,
    /// Each plugin that ran, and how it went (`ok`, or a failure's kind: the text before it
    /// was kept).
    pub plugins: Vec<PluginRun>,
    pub job_id: Uuid,
    pub finished_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredPage {
    pub page: usize,
    pub text: String,
    pub confidence: f32,
    pub source: String,
    pub engine: String,
    pub rotation: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginRun {
    pub name: String,
    pub status: String,
}

/// Why a job ended without text: a stable code and a message without patient data.
pub(crate) struct Failure {
    pub code: &'static str,
    pub message: String,
    pub retry: bool,
}

impl Failure {
    fn permanent(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry: false }
    }
    fn retry(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry: true }
    }
}

fn store_failure(e: sqlx::Error) -> Failure {
    tracing::warn!(error = %e, "OCR job: the store failed");
    Failure::retry("store_unavailable", "The data store did not answer.")
}

/// The stable code and message of a document or page error.
fn ocr_failure(e: &OcrError) -> Failure {
    match e {
        OcrError::LanguageMissing(pack) => {
            Failure::permanent("ocr_language_unavailable", format!("The language pack `{pack}` is not installed."))
        }
        OcrError::NotAnImage => Failure::permanent("ocr_unsupported", e.to_string()),
        OcrError::Encrypted => Failure::permanent("ocr_encrypted", e.to_string()),
        OcrError::Malformed(_) => Failure::permanent("ocr_malformed", e.to_string()),
        OcrError::TooManyPages { .. } => Failure::permanent("ocr_too_many_pages", e.to_string()),
        OcrError::PageTooLarge { .. } => Failure::permanent("ocr_page_too_large", e.to_string()),
        OcrError::Engine(_) => Failure::retry("ocr_engine_failed", "The OCR engine failed on a page."),
        #[allow(unreachable_patterns)]
        _ => Failure::permanent("ocr_failed", e.to_string()),
    }
}

/// A progress event, as WebSocket clients receive it. Awaited in turn, so that a job's events
/// reach watchers in the order they happened (the last one, `done`, last).
pub(crate) async fn publish(ocr: &Ocr, job: Uuid, event: serde_json::Value) {
    if let Err(e) = ocr.inner.bus.publish(&events_channel(job), event.to_string().as_bytes()).await {
        tracing::debug!(error = %e, "an OCR progress event was not published");
    }
}

/// Run the queue's job `job` to its end. `cancelled` is set by the supervisor when a cancel
/// reaches this node.
pub(crate) async fn run(ocr: Ocr, pool: OcrPool, job: Job, cancelled: Arc<AtomicBool>) -> Result<(), JobError> {
    let Ok(payload) = serde_json::from_str::<Payload>(&job.payload) else {
        return Err(JobError::Permanent("OCR payload is not valid".into()));
    };
    let id = payload.ocr_job;
    let last_attempt = job.attempts >= job.max_attempts;
    match attempt(&ocr, &pool, id, &cancelled).await {
        Ok(Outcome::Done { pages_total, mean_confidence }) => {
            ocr.inner.counters.jobs_done.fetch_add(1, Ordering::Relaxed);
            publish(
                &ocr,
                id,
                json!({"type": "done", "job_id": id, "pages_total": pages_total, "mean_confidence": mean_confidence}),
            )
            .await;
            Ok(())
        }
        Ok(Outcome::Cancelled) => {
            ocr.inner.counters.jobs_cancelled.fetch_add(1, Ordering::Relaxed);
            // The pages of a job cancelled while a worker was still writing go now.
            let _ = stored::drop_pages(&ocr.inner.db, id).await;
            Ok(())
        }
        Ok(Outcome::Gone) => Ok(()),
        Err(f) if f.retry && !last_attempt => {
            let _ = stored::requeue(&ocr.inner.db, id, f.code, &f.message).await;
            Err(JobError::Retry(format!("{}: {}", f.code, f.message)))
        }
        Err(f) => {
            ocr.inner.counters.jobs_failed.fetch_add(1, Ordering::Relaxed);
            // Recorded on the job's row for its watchers; a store that does not answer is tried
            // again, and the queue's dead letter (with the same code) stands in meanwhile.
            let mut failed = stored::fail(&ocr.inner.db, id, f.code, &f.message).await;
            for _ in 0..3 {
                if failed.is_ok() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                failed = stored::fail(&ocr.inner.db, id, f.code, &f.message).await;
            }
            if let Err(e) = &failed {
                tracing::warn!(error = %e, job = %id, "could not record an OCR job's failure on its row");
            }
            if matches!(failed, Ok(true)) {
                publish(
                    &ocr,
                    id,
                    json!({"type": "failed", "job_id": id, "error": {"code": f.code, "message": f.message}}),
                )
                .await;
            }
            Err(JobError::Permanent(format!("{}: {}", f.code, f.message)))
        }
    }
}

enum Outcome {
    Done {
        pages_total: usize,
        mean_confidence: f32,
    },
    Cancelled,
    /// The job or its record no longer exists: nothing to do.
    Gone,
}

async fn attempt(ocr: &Ocr, pool: &OcrPool, id: Uuid, cancelled: &Arc<AtomicBool>) -> Result<Outcome, Failure> {
    let db = &ocr.inner.db;
    let Some(row) = stored::get(db, id).await.map_err(store_failure)? else { return Ok(Outcome::Gone) };
    if !row.is_active() {
        return Ok(if row.state == stored::state::CANCELLED { Outcome::Cancelled } else { Outcome::Gone });
    }
    let Some(record) = records::live_record(db, row.record_id).await.map_err(store_failure)? else {
        return Err(Failure::permanent("record_deleted", "The record was deleted."));
    };
    let language = OcrLanguage::from_code(&row.language)
        .ok_or_else(|| Failure::permanent("ocr_language_unavailable", "The job's language is not one OCR reads."))?;
    if !ocr.has_language(language).await {
        return Err(Failure::permanent(
            "ocr_language_unavailable",
            format!("The language pack `{}` is not installed.", language.pack()),
        ));
    }
    // The system's wrap of the file key: OCR works for whoever asked, after the door decided.
    let file = match ocr.inner.vault.open_as_care_team(&record).await {
        Ok(f) => f,
        Err(e) if e.code() == Code::Erased => return Err(Failure::permanent("erased", "The file was erased.")),
        Err(e) => {
            return Err(Failure::retry("storage_unavailable", format!("The file could not be opened ({}).", e.code())));
        }
    };
    // Reading the file consumes its handle; the pages are sealed with the same key.
    let sealer = file.clone();
    let limit = ocr.inner.cfg.max_file_mib.saturating_mul(1 << 20);
    let bytes = match file.read_all(limit).await {
        Ok(b) => b,
        Err(e) if e.code() == Code::PayloadTooLarge => {
            return Err(Failure::permanent(
                "ocr_file_too_large",
                format!("The file is larger than ocr.max_file_mib ({} MiB).", ocr.inner.cfg.max_file_mib),
            ));
        }
        Err(e) if e.code() == Code::IntegrityError => {
            return Err(Failure::permanent("integrity_error", "The stored file failed its integrity check."));
        }
        Err(e) => {
            return Err(Failure::retry("storage_unavailable", format!("The file could not be read ({}).", e.code())));
        }
    };
    let limits = ocr.inner.cfg.limits();
    let opened = tokio::task::spawn_blocking(move || Document::open(Arc::from(bytes), &limits))
        .await
        .map_err(|_| Failure::permanent("ocr_malformed", "The document could not be opened."))?;
    let doc = Arc::new(opened.map_err(|e| ocr_failure(&e))?);
    let total = doc.page_count();

    // Pages kept by an earlier attempt are not read again.
    let kept = stored::pages(db, id).await.map_err(store_failure)?;
    let done: BTreeSet<usize> = kept.iter().map(|p| p.page as usize).collect();
    if !stored::start(db, id, total as i32, done.len() as i32).await.map_err(store_failure)? {
        return Ok(Outcome::Cancelled);
    }
    publish(
        ocr,
        id,
        json!({"type": "progress", "job_id": id, "page": done.len(), "pages_done": done.len(), "pages_total": total, "stage": "started", "confidence": null}),
    ).await;

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut waiting = 0usize;
    for index in (0..total).filter(|i| !done.contains(&(i + 1))) {
        let task = PageTask { doc: doc.clone(), index, language, cancelled: cancelled.clone(), reply: tx.clone() };
        if !pool.submit(task) {
            return Err(Failure::retry("shutting_down", "The OCR workers are stopping."));
        }
        waiting += 1;
    }
    drop(tx);
    let mut pages_done = done.len();
    let mut failure = None;
    while waiting > 0 {
        let Some(outcome) = rx.recv().await else { break };
        waiting -= 1;
        if cancelled.load(Ordering::Relaxed) {
            continue;
        }
        let page = match outcome.result {
            Ok(page) => page,
            Err(e) => {
                // Stop the pages still queued; the first failure decides.
                cancelled.store(true, Ordering::Relaxed);
                failure.get_or_insert(ocr_failure(&e));
                continue;
            }
        };
        count(ocr, outcome.engine, outcome.elapsed);
        let row = OcrPageRow {
            page: page.page as i32,
            source: source_name(&page.source).to_owned(),
            confidence: f64::from(page.confidence),
            rotation: i32::from(page.rotation),
            engine: outcome.engine.as_str().to_owned(),
            chars: page.text.chars().count() as i32,
            sealed_text: sealer.seal_text(&page.text),
        };
        if !stored::add_page(db, id, row.page, &row).await.map_err(store_failure)? {
            cancelled.store(true, Ordering::Relaxed);
            return Ok(Outcome::Cancelled);
        }
        pages_done += 1;
        publish(
            ocr,
            id,
            json!({"type": "progress", "job_id": id, "page": page.page, "pages_done": pages_done, "pages_total": total,
                   "stage": source_name(&page.source), "engine": outcome.engine.as_str(), "confidence": page.confidence}),
        ).await;
    }
    if let Some(f) = failure {
        return Err(f);
    }
    if cancelled.load(Ordering::Relaxed) {
        return Ok(Outcome::Cancelled);
    }

    // Every page is kept: the document, through the plugins, into the record.
    let kept = stored::pages(db, id).await.map_err(store_failure)?;
    let mut pages = Vec::with_capacity(kept.len());
    let mut engines = Vec::with_capacity(kept.len());
    for p in &kept {
        let text = sealer
            .open_text(&p.sealed_text)
            .map_err(|_| Failure::permanent("integrity_error", "A kept page failed its integrity check."))?;
        pages.push(PageResult {
            page: p.page as usize,
            text,
            confidence: p.confidence as f32,
            source: if p.source == "text-layer" { PageSource::TextLayer } else { PageSource::Ocr },
            rotation: u16::try_from(p.rotation).unwrap_or(0),
            words: Vec::new(),
        });
        engines.push(p.engine.clone());
    }
    if pages.len() != total {
        return Err(Failure::retry("pages_missing", "Some pages were not kept; the job reads them again."));
    }
    let document = DocumentText::from_pages(pages);
    let (text, annotations, plugins) = postprocess(ocr, &document, language).await;
    let stored_text = StoredText {
        text,
        mean_confidence: document.mean_confidence,
        language: language.code().to_owned(),
        pages: document
            .pages
            .iter()
            .zip(engines)
            .map(|(p, engine)| StoredPage {
                page: p.page,
                text: p.text.clone(),
                confidence: p.confidence,
                source: source_name(&p.source).to_owned(),
                engine,
                rotation: p.rotation,
            })
            .collect(),
        annotations,
        plugins,
        job_id: id,
        finished_at: careport_domain::time::now_ms(),
    };
    let json = serde_json::to_string(&stored_text)
        .map_err(|_| Failure::permanent("ocr_failed", "The result could not be written."))?;
    let sealed = sealer.seal_text(&json);
    if !stored::complete(db, id, record.id, &sealed, f64::from(document.mean_confidence))
        .await
        .map_err(store_failure)?
    {
        return Ok(Outcome::Cancelled);
    }
    Ok(Outcome::Done { pages_total: total, mean_confidence: document.mean_confidence })
}

fn source_name(source: &PageSource) -> &'static str {
    match source {
        PageSource::TextLayer => "text-layer",
        PageSource::Ocr => "ocr",
    }
}

fn count(ocr: &Ocr, engine: Engine, elapsed: std::time::Duration) {
    let c = &ocr.inner.counters;
    match engine {
        Engine::TextLayer => c.pages_text_layer.fetch_add(1, Ordering::Relaxed),
        Engine::Tesseract => c.pages_ocr.fetch_add(1, Ordering::Relaxed),
        Engine::TrOcr => c.pages_gpu.fetch_add(1, Ordering::Relaxed),
    };
    c.page_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
}

/// The document's text through every enabled `ocr-postprocess` plugin, in name order. Each
/// takes the text the one before returned; one that fails is skipped (its failure's kind is
/// recorded) and the text before it goes on, so a plugin can never lose the OCR text.
async fn postprocess(
    ocr: &Ocr,
    document: &DocumentText,
    language: OcrLanguage,
) -> (String, Vec<serde_json::Value>, Vec<PluginRun>) {
    let mut names: Vec<String> = ocr
        .inner
        .plugins
        .list()
        .into_iter()
        .filter(|p| p.kind == "ocr-postprocess" && p.enabled)
        .map(|p| p.name)
        .collect();
    names.sort();
    let mut text = document.text.clone();
    let mut annotations = Vec::new();
    let mut runs = Vec::new();
    for name in names {
        let input = json!({
            "text": text,
            "pages": document.pages.iter().map(|p| json!({"number": p.page, "text": p.text, "confidence": p.confidence / 100.0})).collect::<Vec<_>>(),
            "language": language.code(),
        });
        let status = match ocr.inner.plugins.call(&name, input).await {
            Ok(out) => match out.get("text").and_then(|t| t.as_str()) {
                Some(new_text) => {
                    text = new_text.to_owned();
                    if let Some(found) = out.get("annotations").and_then(|a| a.as_array()) {
                        for a in found {
                            let mut a = a.clone();
                            if let Some(obj) = a.as_object_mut() {
                                obj.insert("plugin".into(), json!(name));
                            }
                            annotations.push(a);
                        }
                    }
                    "ok".to_owned()
                }
                None => "bad_output".to_owned(),
            },
            Err(e) => plugin_failure(&e).to_owned(),
        };
        if status != "ok" {
            tracing::warn!(plugin = %name, status = %status, "an OCR post-processing plugin failed; its input text is kept");
        }
        runs.push(PluginRun { name, status });
    }
    (text, annotations, runs)
}

/// The kind of a plugin's failure (never its message: it may quote the text).
fn plugin_failure(e: &careport_plugins::PluginError) -> &'static str {
    use careport_plugins::PluginError as P;
    match e {
        P::TimeLimit { .. } => "time_limit",
        P::MemoryLimit { .. } => "memory_limit",
        P::Trapped(_) => "trapped",
        P::Output(_) => "bad_output",
        P::Input(_) => "bad_input",
        P::Disabled(_) | P::NotFound(_) => "unavailable",
        _ => "failed",
    }
}
