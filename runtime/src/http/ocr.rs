//! Records' text over HTTP: asking for OCR (`POST /api/v1/records/{id}/ocr`), following its job
//! (`GET`/`DELETE /api/v1/ocr/jobs/{id}`, and its events over a WebSocket at
//! `/api/v1/ocr/jobs/{id}/events`), reading the text (`GET /api/v1/records/{id}/text`) and the
//! administrators' statistics (`GET /api/v1/admin/ocr/stats`).
//!
//! Adapters over `careport_actors::door::ocr`. The WebSocket is decided like the job's `GET`
//! before the upgrade (a refusal is a plain HTTP error), then relays the job's bus events,
//! which come from whichever node runs the job.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::Message;
use careport_actors::Services;
use careport_actors::door::ocr::Events;
use serde::Deserialize;
use utoipa::ToSchema;

use super::authn::{Authenticated, Authorized, JsonBody, ReadDocument, ReadStats, path_id};
use super::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

/// A socket is pinged this often; one that stays silent for three pings is closed.
const PING_EVERY: Duration = Duration::from_secs(20);
/// A socket lives at most this long (a job that runs longer is followed by reconnecting).
const MAX_SOCKET_LIFE: Duration = Duration::from_secs(3600);

/// `POST /api/v1/records/{id}/ocr` body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OcrBody {
    /// `en`, `es`, `fr`, `ar`, `zh` or `hi`; default: the patient's preferred language when OCR
    /// reads it, else English.
    pub language: Option<String>,
}

/// Read the record's text: queues an OCR job (a PDF page with a text layer is taken as it is;
/// other pages are read by Tesseract, or TrOCR on a GPU node). Asking again while a job of the
/// record is queued or running cancels that job. Whoever may read the record may ask.
#[utoipa::path(post, path = "/api/v1/records/{id}/ocr", tag = "records", params(("id" = Uuid, Path, description = "Record id")),
    request_body(content = OcrBody, description = "Optional: `{language}`"),
    responses((status = 202, description = "`{job_id, status, language}`; `Location` is the job"),
        (status = 400, description = "Bad language", body = super::error::ErrorBody),
        (status = 404, description = "No such record, or not yours", body = super::error::ErrorBody),
        (status = 422, description = "`ocr_unsupported`: not a PDF or an image", body = super::error::ErrorBody),
        (status = 503, description = "`ocr_overloaded` (with `Retry-After`) or `ocr_language_unavailable`", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn request(
    auth: Authorized<ReadDocument>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let body: OcrBody = body.parse_optional()?.unwrap_or_default();
    let accepted = services.text().request(auth.pass, body.language).await?;
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/api/v1/ocr/jobs/{}", accepted.job_id)))
        .json(accepted))
}

/// The record's text: the whole, each page (`source`: `text-layer` or `ocr`, with the engine's
/// confidence, 0–100), and the post-processing plugins' annotations. 404 `text_not_ready`
/// before OCR has finished. Every read is audited.
#[utoipa::path(get, path = "/api/v1/records/{id}/text", tag = "records", params(("id" = Uuid, Path, description = "Record id")),
    responses((status = 200, description = "`{record_id, text, mean_confidence, language, pages, annotations, plugins, job_id, finished_at}`"),
        (status = 404, description = "No such record, not yours, or `text_not_ready`", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn text(auth: Authorized<ReadDocument>, services: web::Data<Services>) -> Result<HttpResponse> {
    let text = services.text().text(auth.pass).await?;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(text))
}

/// An OCR job: `{id, record_id, status, language, pages_done, pages_total, mean_confidence,
/// error, created_at, finished_at}`; `status` is `queued`, `running`, `done`, `failed` or
/// `cancelled`. 404 to anyone who may not read its record.
#[utoipa::path(get, path = "/api/v1/ocr/jobs/{id}", tag = "records", params(("id" = Uuid, Path, description = "OCR job id")),
    responses((status = 200, description = "The job"), (status = 404, description = "No such job, or not yours", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn job(auth: Authenticated, services: web::Data<Services>, req: HttpRequest) -> Result<HttpResponse> {
    let id = path_id(&req, "id")?;
    let job = services.text().job(auth.caller, id).await?;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(job))
}

/// Cancel a queued or running OCR job; the record keeps the text it had. 409 `job_finished`
/// once the job has ended.
#[utoipa::path(delete, path = "/api/v1/ocr/jobs/{id}", tag = "records", params(("id" = Uuid, Path, description = "OCR job id")),
    responses((status = 200, description = "The job, cancelled"), (status = 404, description = "No such job, or not yours", body = super::error::ErrorBody),
        (status = 409, description = "`job_finished`", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel(auth: Authenticated, services: web::Data<Services>, req: HttpRequest) -> Result<HttpResponse> {
    let id = path_id(&req, "id")?;
    let job = services.text().cancel(auth.caller, id).await?;
    Ok(HttpResponse::Ok().json(job))
}

/// A WebSocket of the job's progress: first `{type: "state", job}` (the job now), then
/// `{type: "progress", page, pages_done, pages_total, stage, engine, confidence}` per page, and
/// one of `{type: "done" | "failed" | "cancelled", ...}`, after which the server closes. Events
/// come from whichever node runs the job.
#[utoipa::path(get, path = "/api/v1/ocr/jobs/{id}/events", tag = "records", params(("id" = Uuid, Path, description = "OCR job id")),
    responses((status = 101, description = "WebSocket of JSON events"), (status = 404, description = "No such job, or not yours", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn events(
    auth: Authenticated,
    services: web::Data<Services>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse> {
    let id = path_id(&req, "id")?;
    super::authn::check_origin(&req, &services)?;
    let (state, events) = services.text().watch(auth.caller, id).await?;
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|_| {
        careport_domain::Error::with_message(careport_domain::Code::BadRequest, "This route speaks WebSocket only.")
    })?;
    let services = services.into_inner();
    let refresh = move || {
        let services = services.clone();
        async move { services.text().job_state(id).await.ok().flatten().and_then(|j| serde_json::to_value(j).ok()) }
    };
    let state = serde_json::to_value(&state).unwrap_or_default();
    actix_web::rt::spawn(relay(state, events, refresh, ending, session, stream));
    Ok(response)
}

fn terminal(status: &str) -> bool {
    matches!(status, "done" | "failed" | "cancelled")
}

/// The terminal event of an OCR job that has ended, from its state.
fn ending(job: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "type": job["status"], "job_id": job["id"], "pages_total": job["pages_total"],
        "mean_confidence": job["mean_confidence"], "error": job["error"],
    })
}

fn status_of(job: &serde_json::Value) -> &str {
    job.get("status").and_then(|s| s.as_str()).unwrap_or("")
}

/// Relay one job's events to one socket until the job ends, the client leaves, or the socket
/// has lived its time. `state` is the job as its `GET` shows it; `refresh` reads it again (for
/// a watcher that fell behind); `ending` makes the terminal event of an ended job. Shared by
/// every kind of job (OCR, knowledge).
pub(super) async fn relay<F, Fut>(
    state: serde_json::Value,
    mut events: Events,
    refresh: F,
    ending: fn(&serde_json::Value) -> serde_json::Value,
    mut session: actix_ws::Session,
    mut stream: actix_ws::MessageStream,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<serde_json::Value>>,
{
    use futures_util::StreamExt;
    use tokio::sync::broadcast::error::RecvError;

    let first = serde_json::json!({"type": "state", "job": state});
    if session.text(first.to_string()).await.is_err() {
        return;
    }
    if terminal(status_of(&state)) {
        let _ = session.text(ending(&state).to_string()).await;
        let _ = session.close(None).await;
        return;
    }
    let deadline = tokio::time::sleep(MAX_SOCKET_LIFE);
    tokio::pin!(deadline);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut unanswered = 0u32;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(bytes) => {
                    let Ok(text) = std::str::from_utf8(&bytes) else { continue };
                    if session.text(text.to_owned()).await.is_err() {
                        return;
                    }
                    let kind = serde_json::from_str::<serde_json::Value>(text)
                        .ok()
                        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned));
                    if kind.as_deref().is_some_and(terminal) {
                        break;
                    }
                }
                // Fell behind (or the bus restarted): send the state now, and the end if it came.
                Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => {
                    let Some(now) = refresh().await else { break };
                    let msg = serde_json::json!({"type": "state", "job": now});
                    if session.text(msg.to_string()).await.is_err() {
                        return;
                    }
                    if terminal(status_of(&now)) {
                        let _ = session.text(ending(&now).to_string()).await;
                        break;
                    }
                    if matches!(event, Err(RecvError::Closed)) {
                        break;
                    }
                }
            },
            msg = stream.next() => match msg {
                Some(Ok(Message::Ping(bytes))) => {
                    if session.pong(&bytes).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Pong(_))) => unanswered = 0,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                // The socket is one-way: what a client sends is ignored.
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                unanswered += 1;
                if unanswered > 3 || session.ping(b"").await.is_err() {
                    return;
                }
            }
            _ = &mut deadline => break,
        }
    }
    let _ = session.close(None).await;
}

/// OCR statistics (administrators): jobs by state and the queue's depth in the whole cluster,
/// pages read in the last hour, and this node's workers (CPU, GPU and why it is off).
#[utoipa::path(get, path = "/api/v1/admin/ocr/stats", tag = "admin",
    responses((status = 200, description = "`{jobs, queue_depth, max_queued, pages_last_hour, pages_per_second_last_hour, languages_missing, node}`"),
        (status = 403, description = "Not an administrator", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn stats(auth: Authorized<ReadStats>, services: web::Data<Services>) -> Result<HttpResponse> {
    let stats = services.text().stats(auth.pass).await?;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(stats))
}

pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let r = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/v1/records/{id}/ocr").post(request))
        .service(r("/api/v1/records/{id}/text").get(text))
        .service(r("/api/v1/ocr/jobs/{id}").get(job).delete(cancel))
        .service(r("/api/v1/ocr/jobs/{id}/events").get(events))
        .service(r("/api/v1/admin/ocr/stats").get(stats));
}
