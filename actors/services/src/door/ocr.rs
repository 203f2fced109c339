//! The text of medical records: asking for OCR, following and cancelling its job, reading the
//! text, and the administrators' OCR statistics.
//!
//! Whoever may read a record may ask for its text, the patient included: the text is the
//! record's own content, sealed with its file's key, so it opens through exactly the wrap the
//! file opens through (the chart's, or the reader's own grant). A job's status and events are
//! readable by whoever may read its record, and 404 to anyone else, like the record. Every read
//! of the text is audited (failing closed); asking and cancelling are audited too.
//!
//! The latest request wins: asking again for a record whose job is still queued or running
//! cancels that job, so a clinician who picked the wrong language is not made to wait for it.

use careport_domain::JobId;
use careport_domain::{Code, Error};
use careport_ml::ocr::OcrLanguage;
use careport_store::ocr::{self as stored, OcrJobRow};
use careport_store::patients;
use careport_store::vault::RecordRow;
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::patients::invalid;
use super::records::{live_record, open_for};
use super::store_err;
use crate::access::{ReadDocument, ReadStats};
use crate::audit::{EventExt, outcome};
use crate::ocr::{self, CANCEL_CHANNEL, OCR_JOB, events_channel};
use crate::{Caller, Pass, Services};

/// OCR operations.
pub struct Text<'a>(pub(crate) &'a Services);

/// An OCR job, as its clients see it.
#[derive(Debug, Clone, Serialize)]
pub struct OcrJob {
    pub id: Uuid,
    pub record_id: Uuid,
    /// `queued`, `running`, `done`, `failed` or `cancelled`.
    pub status: String,
    pub language: String,
    pub pages_done: i32,
    pub pages_total: Option<i32>,
    pub mean_confidence: Option<f64>,
    /// Why it failed, or why its last attempt failed while it waits to try again.
    pub error: Option<JobErrorView>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobErrorView {
    pub code: String,
    pub message: String,
}

/// A record's text: the whole, each page with its source and confidence, and what the
/// post-processing plugins found.
#[derive(Debug, Clone, Serialize)]
pub struct RecordText {
    pub record_id: Uuid,
    #[serde(flatten)]
    pub stored: ocr::StoredText,
}

/// A job's events as they come from the bus (JSON texts), for a watcher.
pub type Events = tokio::sync::broadcast::Receiver<careport_store::bus::Event>;

/// A new job: `202 {job_id}`.
#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    pub job_id: Uuid,
    pub status: &'static str,
    pub language: &'static str,
}

fn view(row: OcrJobRow) -> OcrJob {
    let error = match (row.error_code, row.error) {
        (Some(code), Some(message)) => Some(JobErrorView { code, message }),
        _ => None,
    };
    OcrJob {
        id: row.id,
        record_id: row.record_id,
        status: row.state,
        language: row.language,
        pages_done: row.pages_done,
        pages_total: row.pages_total,
        mean_confidence: row.mean_confidence,
        error,
        created_at: row.created_at,
        finished_at: row.finished_at,
    }
}

/// The language of a job: the request's, else the patient's preferred language when OCR reads
/// it, else English.
async fn language_for(services: &Services, asked: Option<&str>, patient: Uuid) -> Result<OcrLanguage, Error> {
    if let Some(code) = asked.map(str::trim).filter(|c| !c.is_empty()) {
        return OcrLanguage::from_code(code)
            .ok_or_else(|| invalid("language must be one of en, es, fr, ar, zh, hi (the languages OCR reads)."));
    }
    let preferred = patients::get(&services.db, patient).await.map_err(store_err)?.map(|p| p.preferred_language);
    Ok(preferred.as_deref().and_then(OcrLanguage::from_code).unwrap_or(OcrLanguage::En))
}

/// Queue a job for `r` (the checks are the caller's): cancel the record's active jobs, then
/// queue the work and the row clients poll in one transaction (before, the queue row was
/// committed first, and a worker claiming it in between ended it as orphaned while the job row
/// stayed queued for ever: the crash test caught it on PostgreSQL).
pub(crate) async fn submit(
    services: &Services,
    r: &RecordRow,
    language: OcrLanguage,
    by: Option<Uuid>,
) -> Result<Uuid, Error> {
    for old in stored::active_for_record(&services.db, r.id).await.map_err(store_err)? {
        if stored::cancel(&services.db, old.id).await.map_err(store_err)? {
            announce_cancel(services, old.id).await;
        }
    }
    let id = Uuid::now_v7();
    let attempts = services.ocr.config().max_attempts;
    stored::insert_queued(&services.db, id, r.id, OCR_JOB, attempts, by, language.code()).await.map_err(store_err)?;
    services.jobs.addr().do_send(crate::jobs::Wake);
    Ok(id)
}

/// Tell every node that `job` was cancelled: its pages stop, its watchers hear it.
async fn announce_cancel(services: &Services, job: Uuid) {
    if let Err(e) = services.bus.publish(CANCEL_CHANNEL, job.to_string().as_bytes()).await {
        tracing::warn!(error = %e, "a cancel was not published; the job stops at its next page");
    }
    let event = json!({"type": "cancelled", "job_id": job});
    let _ = services.bus.publish(&events_channel(job), event.to_string().as_bytes()).await;
}

/// After an upload: read the record automatically when its type is configured for it and its
/// file is one OCR reads. The upload is committed already; a failure here is logged, and the
/// text can still be asked for.
pub(crate) async fn after_upload(services: &Services, r: &RecordRow, by: Uuid) -> Option<Uuid> {
    let cfg = services.ocr.config();
    if !cfg.auto_for(&r.record_type) || !ocr::readable(&r.media_type) {
        return None;
    }
    let queued = async {
        let language = language_for(services, None, r.patient_id).await?;
        if !services.ocr.has_language(language).await {
            return Err(Error::new(Code::OcrLanguageUnavailable));
        }
        submit(services, r, language, Some(by)).await
    };
    match queued.await {
        Ok(job) => Some(job),
        Err(e) => {
            tracing::warn!(record = %r.id, code = %e.code(), "automatic OCR of an upload was not queued");
            None
        }
    }
}

impl Text<'_> {
    /// Ask for the record's text (`POST /records/{id}/ocr`): checks the file is one OCR reads,
    /// the language, and the cluster's queue depth (503 `ocr_overloaded` with `Retry-After` when
    /// full), then queues the job.
    pub async fn request(&self, pass: Pass<ReadDocument>, language: Option<String>) -> Result<Accepted, Error> {
        let services = self.0;
        let (caller, id) = (pass.caller(), pass.id());
        let r = live_record(services, id).await?;
        if !ocr::readable(&r.media_type) {
            return Err(Error::new(Code::OcrUnsupported));
        }
        let language = language_for(services, language.as_deref(), r.patient_id).await?;
        if !services.ocr.has_language(language).await {
            return Err(Error::with_message(
                Code::OcrLanguageUnavailable,
                format!("The OCR language pack `{}` is not installed on this server.", language.pack()),
            ));
        }
        let cfg = services.ocr.config();
        let depth = stored::active_count(&services.db).await.map_err(store_err)?;
        if depth >= cfg.max_queued as i64 {
            return Err(Error::new(Code::OcrOverloaded).retry_after(cfg.retry_after_secs));
        }
        let job_id = submit(services, &r, language, Some(caller.user())).await?;
        services
            .audit
            .one(
                caller
                    .ctx
                    .event("ocr.request", outcome::SUCCESS)
                    .resource("document", id)
                    .patient(r.patient_id)
                    .detail(format!("job {job_id}, language {}", language.code())),
            )
            .await?;
        Ok(Accepted { job_id, status: stored::state::QUEUED, language: language.code() })
    }

    /// The job `id` if it exists and its record opens for `caller` (404 otherwise, the refusal
    /// audited by the decision like any refused read of the record).
    async fn gate(&self, caller: &Caller, id: Uuid) -> Result<OcrJobRow, Error> {
        let row = stored::get(&self.0.db, id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
        live_record(self.0, row.record_id).await?;
        self.0.access.pass::<ReadDocument>(caller.clone(), Some(row.record_id)).await?;
        Ok(row)
    }

    /// A job's status (`GET /ocr/jobs/{id}`). A job whose queue row was dead-lettered behind
    /// its back (its node died on its last attempt) shows as failed.
    pub async fn job(&self, caller: Caller, id: Uuid) -> Result<OcrJob, Error> {
        let row = self.gate(&caller, id).await?;
        Ok(self.settled(row).await)
    }

    async fn settled(&self, row: OcrJobRow) -> OcrJob {
        if row.is_active()
            && let Ok(Some(q)) = self.0.queue.get(JobId(row.queue_job)).await
            && q.state == "dead"
        {
            let mut v = view(row);
            v.status = stored::state::FAILED.to_owned();
            // The worker's own reason when it recorded one (`code: message`, PHI-free), else
            // the node died on the last attempt.
            let recorded = q
                .last_error
                .as_deref()
                .and_then(|e| e.split_once(": "))
                .filter(|(code, _)| !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            v.error = Some(match recorded {
                Some((code, message)) => JobErrorView { code: code.to_owned(), message: message.to_owned() },
                None => JobErrorView {
                    code: "worker_lost".into(),
                    message: "The job's worker stopped on its last attempt.".into(),
                },
            });
            return v;
        }
        view(row)
    }

    /// Cancel a queued or running job (`DELETE /ocr/jobs/{id}`): 409 `job_finished` once it
    /// has ended. The record keeps the text it had.
    pub async fn cancel(&self, caller: Caller, id: Uuid) -> Result<OcrJob, Error> {
        let row = self.gate(&caller, id).await?;
        if !row.is_active() || !stored::cancel(&self.0.db, id).await.map_err(store_err)? {
            return Err(Error::new(Code::JobFinished));
        }
        announce_cancel(self.0, id).await;
        self.0
            .audit
            .one(
                caller
                    .ctx
                    .event("ocr.cancel", outcome::SUCCESS)
                    .resource("document", row.record_id)
                    .detail(format!("job {id}")),
            )
            .await?;
        let row = stored::get(&self.0.db, id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
        Ok(view(row))
    }

    /// Follow a job: its state now and a subscription to its events, taken before the state is
    /// read so that nothing between the two is missed (an event may come twice; never none).
    pub async fn watch(&self, caller: Caller, id: Uuid) -> Result<(OcrJob, Events), Error> {
        self.gate(&caller, id).await?;
        let events = self.0.bus.subscribe(&events_channel(id));
        let row = stored::get(&self.0.db, id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
        Ok((self.settled(row).await, events))
    }

    /// OCR jobs by state in the whole cluster (for `/metrics`).
    pub async fn counts(&self) -> Result<Vec<(String, i64)>, Error> {
        stored::counts(&self.0.db).await.map_err(store_err)
    }

    /// A job's state now (for a watcher that missed events).
    pub async fn job_state(&self, id: Uuid) -> Result<Option<OcrJob>, Error> {
        match stored::get(&self.0.db, id).await.map_err(store_err)? {
            Some(row) => Ok(Some(self.settled(row).await)),
            None => Ok(None),
        }
    }

    /// The record's text (`GET /records/{id}/text`), opened with the reader's own way into the
    /// file; 404 `text_not_ready` before a job has finished. Audited, failing closed.
    pub async fn text(&self, pass: Pass<ReadDocument>) -> Result<RecordText, Error> {
        let (caller, id) = (pass.caller(), pass.id());
        let r = live_record(self.0, id).await?;
        let file = open_for(self.0, caller, &r).await?;
        let sealed = file.ocr_text(&r).await?.ok_or_else(|| Error::new(Code::TextNotReady))?;
        let stored: ocr::StoredText = serde_json::from_str(&sealed)
            .map_err(|_| Error::internal(anyhow::anyhow!("a record's stored text is not the expected document")))?;
        self.0
            .audit
            .one(
                caller
                    .ctx
                    .event("record.text_read", outcome::SUCCESS)
                    .resource("document", id)
                    .patient(r.patient_id)
                    .detail(format!("{} pages", stored.pages.len())),
            )
            .await?;
        Ok(RecordText { record_id: id, stored })
    }

    /// OCR statistics (`GET /admin/ocr/stats`): jobs by state and queue depth in the whole
    /// cluster, pages read in the last hour, and this node's workers.
    pub async fn stats(&self, _: Pass<ReadStats>) -> Result<Value, Error> {
        let services = self.0;
        let counts = stored::counts(&services.db).await.map_err(store_err)?;
        let hour_ago = careport_domain::time::now_ms() - 3_600_000;
        let (pages_hour, _) = stored::throughput(&services.db, hour_ago).await.map_err(store_err)?;
        let by_state: serde_json::Map<String, Value> = ["queued", "running", "done", "failed", "cancelled"]
            .iter()
            .map(|s| {
                let n = counts.iter().find(|(k, _)| k == s).map(|(_, n)| *n).unwrap_or(0);
                ((*s).to_owned(), json!(n))
            })
            .collect();
        let depth = by_state.get("queued").and_then(Value::as_i64).unwrap_or(0)
            + by_state.get("running").and_then(Value::as_i64).unwrap_or(0);
        let c = services.ocr.counters();
        let get = ocr::OcrCounters::get;
        let pages_read = get(&c.pages_ocr) + get(&c.pages_text_layer) + get(&c.pages_gpu);
        let node = match &services.ocr_supervisor {
            Some(s) => match s.send(ocr::StatsRequest).await {
                Ok(st) => json!(st),
                Err(_) => json!({"error": "the OCR supervisor did not answer"}),
            },
            None => json!({"workers": "OCR jobs do not run on this node (ocr.enabled = false)"}),
        };
        Ok(json!({
            "jobs": by_state,
            "queue_depth": depth,
            "max_queued": services.ocr.config().max_queued,
            "pages_last_hour": pages_hour,
            "pages_per_second_last_hour": pages_hour as f64 / 3600.0,
            "languages_missing": services.ocr.missing_packs().await,
            "node": {
                "workers": node,
                "pages_read": {"ocr": get(&c.pages_ocr), "text_layer": get(&c.pages_text_layer), "gpu": get(&c.pages_gpu)},
                "mean_page_seconds": if pages_read > 0 { get(&c.page_micros) as f64 / pages_read as f64 / 1e6 } else { 0.0 },
                "jobs": {"done": get(&c.jobs_done), "failed": get(&c.jobs_failed), "cancelled": get(&c.jobs_cancelled)},
            },
        }))
    }
}
