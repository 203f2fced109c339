//! The knowledge base over HTTP: documents (`/api/v1/knowledge/documents`), their embedding jobs
//! (`/api/v1/knowledge/jobs/{id}`, events over a WebSocket), search, reindexing, the statistics,
//! and opting a record in (`/api/v1/records/{id}/knowledge`).
//!
//! Adapters over `careport_actors::door::knowledge`: they parse, call one operation, and shape
//! the answer. A document arrives as `multipart/form-data` (a `file` part and the metadata as
//! text fields, in any order) or as JSON `{title, text, ...}`.

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::Services;
use careport_actors::door::knowledge::{ListQuery as DocQuery, MetaInput, Mode, SearchInput, Source};
use careport_actors::door::page::PageRequest;
use careport_domain::{Code, Error};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::authn::{
    Authenticated, Authorized, IndexDocument, JsonBody, ListKnowledge, ManageKnowledge, SearchKnowledge, path_id,
};
use super::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

fn invalid(message: impl Into<String>) -> Error {
    Error::with_message(Code::InvalidValue, message)
}

fn no_store() -> actix_web::HttpResponseBuilder {
    let mut b = HttpResponse::Ok();
    b.insert_header((header::CACHE_CONTROL, "no-store"));
    b
}

/// `POST /api/v1/knowledge/documents` as JSON (multipart sends the same fields, and `file`).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct DocumentBody {
    pub title: String,
    /// Plain text or Markdown (headings become the chunks' heading paths).
    pub text: String,
    /// `patient`, `clinician` or `all`.
    pub audience: String,
    /// `normal` (default) or `restricted` (only within its department).
    pub sensitivity: Option<String>,
    /// `en`, `es`, `fr`, `ar`, `zh` or `hi`.
    pub language: String,
    /// A cancer type or subtype id.
    pub cancer_type: Option<String>,
    /// A department id.
    pub department: Option<String>,
}

/// A string field of a JSON object: absent `None`, `null` `Some(None)`.
fn field(m: &Map<String, Value>, name: &str) -> std::result::Result<Option<Option<String>>, Error> {
    match m.get(name) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(invalid(format!("{name} must be a string."))),
    }
}

const META_FIELDS: [&str; 6] = ["title", "audience", "sensitivity", "language", "cancer_type", "department"];

fn meta_from(m: &Map<String, Value>) -> std::result::Result<MetaInput, Error> {
    let required = |name: &str| -> std::result::Result<Option<String>, Error> {
        match field(m, name)? {
            Some(None) => Err(invalid(format!("{name} may not be null."))),
            v => Ok(v.flatten()),
        }
    };
    Ok(MetaInput {
        title: required("title")?,
        audience: required("audience")?,
        sensitivity: required("sensitivity")?,
        language: required("language")?,
        cancer_type: field(m, "cancer_type")?,
        department: field(m, "department")?,
    })
}

fn object(body: JsonBody) -> Result<Map<String, Value>> {
    match body.parse::<Value>()? {
        Value::Object(m) => Ok(m),
        _ => Err(Error::with_message(Code::InvalidJson, "The body must be a JSON object.").into()),
    }
}

/// Read a multipart document: its text fields and its `file` part, in memory (bounded by
/// `knowledge.max_upload_mib`).
async fn read_form(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> std::result::Result<(MetaInput, Source), Error> {
    let malformed = || Error::with_message(Code::BadRequest, "The multipart body is malformed.");
    let mut form = Multipart::new(req.headers(), payload.into_inner());
    let mut fields = Map::new();
    let mut file: Option<Source> = None;
    while let Some(part) = form.next().await {
        let mut part = part.map_err(|_| malformed())?;
        let name = part.name().unwrap_or_default().to_owned();
        let is_file = name == "file";
        if !is_file && !META_FIELDS.contains(&name.as_str()) {
            return Err(invalid(format!(
                "Unknown form field `{}`; send file and {}.",
                name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(40).collect::<String>(),
                META_FIELDS.join(", ")
            )));
        }
        let cap = if is_file { limit } else { 4096 };
        let mut buf = Vec::new();
        while let Some(chunk) = part.next().await {
            buf.extend_from_slice(&chunk.map_err(|_| malformed())?);
            if buf.len() > cap {
                return Err(if is_file {
                    Error::new(Code::PayloadTooLarge)
                } else {
                    invalid("A form field is longer than 4 KiB.")
                });
            }
        }
        if is_file {
            let file_name = part.content_disposition().and_then(|d| d.get_filename().map(str::to_owned));
            let media_type = part.content_type().map(|m| m.essence_str().to_owned());
            file = Some(Source::File { bytes: buf, media_type, file_name });
        } else {
            let text = String::from_utf8(buf).map_err(|_| invalid("A form field is not UTF-8 text."))?;
            fields.insert(name, Value::String(text));
        }
    }
    let file = file.ok_or_else(|| invalid("The form has no `file` part."))?;
    Ok((meta_from(&fields)?, file))
}

/// Add a document (administrators; clinicians for clinician-audience documents of their own
/// department). `multipart/form-data` with a `file` (plain text, Markdown, HTML, or a PDF with
/// a text layer) and the metadata fields, or JSON `{title, text, audience, language, ...}`. The
/// text is kept and an embedding job queued: `201 {id, job_id}`.
#[utoipa::path(post, path = "/api/v1/knowledge/documents", tag = "knowledge",
    request_body(content = DocumentBody, description = "JSON, or multipart/form-data with `file` and the same fields"),
    responses((status = 201, description = "`{id, job_id}`; `Location` is the document"),
        (status = 400, description = "Bad metadata", body = super::error::ErrorBody),
        (status = 403, description = "Not allowed to add this document", body = super::error::ErrorBody),
        (status = 413, description = "Larger than `knowledge.max_upload_mib`", body = super::error::ErrorBody),
        (status = 415, description = "Not text, Markdown, HTML or PDF", body = super::error::ErrorBody),
        (status = 422, description = "`knowledge_unreadable`: no text could be read", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    auth: Authenticated,
    services: web::Data<Services>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (meta, source) = if content_type.starts_with("multipart/form-data") {
        let limit = services.knowledge.config().max_upload_mib.saturating_mul(1 << 20) as usize;
        read_form(&req, payload, limit).await?
    } else if content_type.starts_with("application/json") {
        let limit = services.knowledge.config().max_upload_mib.saturating_mul(1 << 20) as usize;
        let mut body = web::BytesMut::new();
        let mut payload = payload;
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|_| Error::with_message(Code::BadRequest, "The body could not be read."))?;
            if body.len() + chunk.len() > limit + 4096 {
                return Err(Error::new(Code::PayloadTooLarge).into());
            }
            body.extend_from_slice(&chunk);
        }
        let m: Map<String, Value> = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => m,
            _ => return Err(Error::with_message(Code::InvalidJson, "The body must be a JSON object.").into()),
        };
        if let Some(k) = m.keys().find(|k| *k != "text" && !META_FIELDS.contains(&k.as_str())) {
            return Err(invalid(format!("Unknown field `{}`.", k.chars().take(40).collect::<String>())).into());
        }
        let text = match field(&m, "text")? {
            Some(Some(t)) => t,
            _ => return Err(invalid("text is required (or send a file as multipart/form-data).").into()),
        };
        (meta_from(&m)?, Source::Text(text))
    } else {
        return Err(
            Error::with_message(Code::UnsupportedMediaType, "Send multipart/form-data or application/json.").into()
        );
    };
    let created = services.knowledge().create(auth.caller, source, meta).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/knowledge/documents/{}", created.id)))
        .json(created))
}

/// `GET /api/v1/knowledge/documents` query.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// A cancer type id (a type includes its subtypes).
    pub cancer_type: Option<String>,
    pub department: Option<String>,
    pub language: Option<String>,
    /// `patient`, `clinician` or `all`.
    pub audience: Option<String>,
    /// `indexing`, `ready` or `failed`.
    pub state: Option<String>,
    /// Part of the title.
    pub q: Option<String>,
    /// 1 to 200 (default 50).
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The documents the caller finds (by audience, department and sensitivity; a patient's own
/// records opted in), oldest first: `{items, next_cursor}`.
#[utoipa::path(get, path = "/api/v1/knowledge/documents", tag = "knowledge", params(ListQuery),
    responses((status = 200, description = "`{items, next_cursor}`")), security(("bearer" = [])))]
pub async fn list(
    auth: Authorized<ListKnowledge>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let q: ListQuery = super::authn::query(&req)?;
    let query = DocQuery {
        cancer_type: q.cancer_type,
        department: q.department,
        language: q.language,
        audience: q.audience,
        state: q.state,
        title: q.q,
        page: PageRequest { limit: q.limit, cursor: q.cursor },
    };
    Ok(no_store().json(services.knowledge().list(auth.pass, query).await?))
}

/// One document's metadata and state; 404 if the caller does not find it.
#[utoipa::path(get, path = "/api/v1/knowledge/documents/{id}", tag = "knowledge", params(("id" = Uuid, Path, description = "Document id")),
    responses((status = 200, description = "The document"), (status = 404, description = "No such document, or not yours to see", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    auth: Authorized<ListKnowledge>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let id = path_id(&req, "id")?;
    Ok(no_store().json(services.knowledge().get(auth.pass, id).await?))
}

/// Change a document's metadata (`title`, `audience`, `sensitivity`, `language`,
/// `cancer_type`, `department`; `null` clears the last two). Searches see the new scope at once.
#[utoipa::path(patch, path = "/api/v1/knowledge/documents/{id}", tag = "knowledge", params(("id" = Uuid, Path, description = "Document id")),
    request_body(content = Object, description = "Any of the metadata fields"),
    responses((status = 200, description = "The document"), (status = 400, description = "Bad metadata", body = super::error::ErrorBody),
        (status = 404, description = "No such document, or not yours to change", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    auth: Authenticated,
    services: web::Data<Services>,
    req: HttpRequest,
    body: JsonBody,
) -> Result<HttpResponse> {
    let id = path_id(&req, "id")?;
    let m = object(body)?;
    if let Some(k) = m.keys().find(|k| !META_FIELDS.contains(&k.as_str())) {
        return Err(invalid(format!("Unknown field `{}`.", k.chars().take(40).collect::<String>())).into());
    }
    let meta = meta_from(&m)?;
    Ok(HttpResponse::Ok().json(services.knowledge().update(auth.caller, id, meta).await?))
}

/// Delete a document, its chunks and their vectors; its jobs are cancelled.
#[utoipa::path(delete, path = "/api/v1/knowledge/documents/{id}", tag = "knowledge", params(("id" = Uuid, Path, description = "Document id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such document, or not yours to delete", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(auth: Authenticated, services: web::Data<Services>, req: HttpRequest) -> Result<HttpResponse> {
    let id = path_id(&req, "id")?;
    services.knowledge().delete(auth.caller, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// An embedding job: `{id, kind, document_id, model, status, chunks_done, chunks_total, error,
/// created_at, finished_at}`; `status` is `queued`, `running`, `done`, `failed` or `cancelled`.
#[utoipa::path(get, path = "/api/v1/knowledge/jobs/{id}", tag = "knowledge", params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, description = "The job"), (status = 404, description = "No such job, or not yours", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn job(auth: Authenticated, services: web::Data<Services>, req: HttpRequest) -> Result<HttpResponse> {
    let id = path_id(&req, "id")?;
    Ok(no_store().json(services.knowledge().job(auth.caller, id).await?))
}

/// Cancel a queued or running job; 409 `job_finished` once it has ended.
#[utoipa::path(delete, path = "/api/v1/knowledge/jobs/{id}", tag = "knowledge", params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, description = "The job, cancelled"), (status = 404, description = "No such job, or not yours", body = super::error::ErrorBody),
        (status = 409, description = "`job_finished`", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel(auth: Authenticated, services: web::Data<Services>, req: HttpRequest) -> Result<HttpResponse> {
    let id = path_id(&req, "id")?;
    Ok(HttpResponse::Ok().json(services.knowledge().cancel(auth.caller, id).await?))
}

/// Run a failed or cancelled job again; it resumes from the chunks already embedded.
#[utoipa::path(post, path = "/api/v1/knowledge/jobs/{id}/retry", tag = "knowledge", params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, description = "The job, queued"), (status = 404, description = "No such job, or not yours", body = super::error::ErrorBody),
        (status = 409, description = "`job_active` (still running) or `job_finished` (done)", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn retry(auth: Authenticated, services: web::Data<Services>, req: HttpRequest) -> Result<HttpResponse> {
    let id = path_id(&req, "id")?;
    Ok(HttpResponse::Ok().json(services.knowledge().retry(auth.caller, id).await?))
}

/// A WebSocket of the job's progress: `{type: "state", job}`, then `{type: "progress",
/// chunks_done, chunks_total}` per batch, and `{type: "done" | "failed" | "cancelled"}`, after
/// which the server closes. Events come from whichever node runs the job.
#[utoipa::path(get, path = "/api/v1/knowledge/jobs/{id}/events", tag = "knowledge", params(("id" = Uuid, Path, description = "Job id")),
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
    let (state, events) = services.knowledge().watch(auth.caller, id).await?;
    let (response, session, stream) = actix_ws::handle(&req, body)
        .map_err(|_| Error::with_message(Code::BadRequest, "This route speaks WebSocket only."))?;
    let services = services.into_inner();
    let refresh = move || {
        let services = services.clone();
        async move { services.knowledge().job_state(id).await.ok().flatten().and_then(|j| serde_json::to_value(j).ok()) }
    };
    let state = serde_json::to_value(&state).unwrap_or_default();
    let ending = |job: &Value| {
        serde_json::json!({"type": job["status"], "job_id": job["id"], "chunks_done": job["chunks_done"],
            "chunks_total": job["chunks_total"], "error": job["error"]})
    };
    actix_web::rt::spawn(super::ocr::relay(state, events, refresh, ending, session, stream));
    Ok(response)
}

/// `POST /api/v1/knowledge/search` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    /// The question, in any of the six languages.
    pub query: String,
    /// Results wanted: 1 to `knowledge.max_k` (default 8).
    pub k: Option<usize>,
    /// Only documents of this cancer type (a type includes its subtypes).
    pub cancer_type: Option<String>,
    pub department: Option<String>,
    /// Only documents in this language.
    pub language: Option<String>,
    /// `hybrid` (default: vector and full text fused by reciprocal rank), `vector` or `text`.
    pub mode: Option<String>,
}

/// Search the knowledge base. The caller's scope (audience, department, sensitivity, the
/// patient records they may read) and the filters are applied inside each arm's query, so `k`
/// results come back whenever `k` visible passages exist. Audited without the query's text.
#[utoipa::path(post, path = "/api/v1/knowledge/search", tag = "knowledge", request_body = SearchBody,
    responses((status = 200, description = "`{items: [{document_id, chunk_id, title, heading, text, start, end, score, cancer_type, language, record_id}], mode, space, degraded}`"),
        (status = 400, description = "Bad query, k, mode or language", body = super::error::ErrorBody),
        (status = 503, description = "`model_unavailable` (vector mode without the model)", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn search(
    auth: Authorized<SearchKnowledge>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b: SearchBody = body.parse()?;
    let mode = match b.mode.as_deref() {
        None => None,
        Some(m) => Some(Mode::parse(m).ok_or_else(|| invalid("mode must be hybrid, vector or text."))?),
    };
    let input = SearchInput {
        query: b.query,
        k: b.k,
        cancer_type: b.cancer_type,
        department: b.department,
        language: b.language,
        mode,
    };
    Ok(no_store().json(services.knowledge().search(auth.pass, input).await?))
}

/// Embed every chunk into the configured model's space (after a model change, or to finish
/// documents whose jobs failed); searches answer from the active space until it is complete.
/// A reindex already queued or running is answered instead of a second. `202` with the job.
#[utoipa::path(post, path = "/api/v1/knowledge/reindex", tag = "knowledge",
    responses((status = 202, description = "The reindex job"), (status = 403, description = "Not an administrator", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn reindex(auth: Authorized<ManageKnowledge>, services: web::Data<Services>) -> Result<HttpResponse> {
    let job = services.knowledge().reindex(auth.pass).await?;
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/api/v1/knowledge/jobs/{}", job.id)))
        .json(job))
}

/// The knowledge base's figures: documents, chunks, vectors in the active space, jobs by state,
/// the index (kind, vectors, bytes) and this node's searches.
#[utoipa::path(get, path = "/api/v1/admin/knowledge/stats", tag = "admin",
    responses((status = 200, description = "The figures"), (status = 403, description = "Not an administrator", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn stats(auth: Authorized<ManageKnowledge>, services: web::Data<Services>) -> Result<HttpResponse> {
    Ok(no_store().json(services.knowledge().stats(auth.pass).await?))
}

/// Make the record's text (from OCR) searchable in the knowledge base, in its patient's private
/// scope: found only by those who may read the record. The patient or an assigned doctor.
/// `201 {id, job_id}`; 404 `text_not_ready` before the record has text.
#[utoipa::path(post, path = "/api/v1/records/{id}/knowledge", tag = "records", params(("id" = Uuid, Path, description = "Record id")),
    responses((status = 201, description = "`{id, job_id}`"), (status = 404, description = "No such record, not yours, or `text_not_ready`", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_record(auth: Authorized<IndexDocument>, services: web::Data<Services>) -> Result<HttpResponse> {
    let created = services.knowledge().add_record(auth.pass).await?;
    Ok(HttpResponse::Created().json(created))
}

/// Take the record's text out of the knowledge base.
#[utoipa::path(delete, path = "/api/v1/records/{id}/knowledge", tag = "records", params(("id" = Uuid, Path, description = "Record id")),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such record, not yours, or not in the knowledge base", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn remove_record(auth: Authorized<IndexDocument>, services: web::Data<Services>) -> Result<HttpResponse> {
    services.knowledge().remove_record(auth.pass).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let r = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/v1/knowledge/documents").post(create).get(list))
        .service(r("/api/v1/knowledge/documents/{id}").get(get).patch(update).delete(delete))
        .service(r("/api/v1/knowledge/jobs/{id}").get(job).delete(cancel))
        .service(r("/api/v1/knowledge/jobs/{id}/retry").post(retry))
        .service(r("/api/v1/knowledge/jobs/{id}/events").get(events))
        .service(r("/api/v1/knowledge/search").post(search))
        .service(r("/api/v1/knowledge/reindex").post(reindex))
        .service(r("/api/v1/admin/knowledge/stats").get(stats))
        .service(r("/api/v1/records/{id}/knowledge").post(add_record).delete(remove_record));
}
