//! Reading a record's content (streamed, with `Range`), by the caller's own token or by a
//! signed link; grants; signed links; erasing a patient (crypto-shredding).
//!
//! Adapters over `careport_actors::door::records` (content) and `careport_actors::door::sharing`
//! (the rest). What stays here is the wire: the `?link=` query, the `Range` header, and the
//! response headers. Content is served only as what it was sniffed to be, with `nosniff`, a
//! sandboxing CSP and a `Content-Disposition` built from the sanitised name: inline for PDF and
//! images (so that a browser can page through a PDF with range requests), as an attachment
//! otherwise. The operation checks the frames of the range before a byte is sent; a tampered
//! file answers 500 `integrity_error`, audited, with no plaintext.

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use careport_actors::Services;
use careport_actors::door::sharing::GrantRequest;
use careport_actors::vault::sniff;
use careport_domain::{Code, Error};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::authn::{Authorized, ErasePatient, JsonBody, ReadDocument, ShareDocument, client_info, path_id};
use super::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

/// `GET /api/v1/records/{id}/content` query.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ContentQuery {
    /// A signed link's token (`POST /api/v1/records/{id}/links`), instead of a bearer token.
    pub link: Option<String>,
}

/// A single `bytes=` range of a `size`-byte file, as (start, end) inclusive. `None`: serve it
/// whole (no header, or several ranges). Unsatisfiable: 416.
fn range(req: &HttpRequest, size: u64) -> std::result::Result<Option<(u64, u64)>, Error> {
    let Some(v) = req.headers().get(header::RANGE).and_then(|v| v.to_str().ok()) else { return Ok(None) };
    let unsatisfiable = || Error::new(Code::RangeNotSatisfiable);
    let Some(spec) = v.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| unsatisfiable())?;
        if n == 0 {
            return Err(unsatisfiable());
        }
        (size.saturating_sub(n), size.saturating_sub(1))
    } else {
        let start: u64 = a.parse().map_err(|_| unsatisfiable())?;
        let last = size.saturating_sub(1);
        let end: u64 = if b.is_empty() { last } else { b.parse::<u64>().map_err(|_| unsatisfiable())?.min(last) };
        (start, end)
    };
    if start >= size || start > end {
        return Err(unsatisfiable());
    }
    Ok(Some((start, end)))
}

/// The record's content, streamed; `Range: bytes=a-b` gives 206 with that part. With
/// `?link=TOKEN`, a signed link stands in for the bearer token (401 once it has expired). A
/// link works as a bearer token too; either way its downloads are audited as by signed link.
#[utoipa::path(get, path = "/api/v1/records/{id}/content", tag = "records", params(("id" = Uuid, Path, description = "Record id"), ContentQuery),
    responses((status = 200, description = "The file"), (status = 206, description = "The range asked for"),
        (status = 401, description = "No token, or an expired or revoked link", body = super::error::ErrorBody),
        (status = 404, description = "No such record, or not yours", body = super::error::ErrorBody),
        (status = 410, description = "Erased with its patient's keys", body = super::error::ErrorBody),
        (status = 416, description = "Range outside the file", body = super::error::ErrorBody),
        (status = 500, description = "`integrity_error`: the stored file was tampered with", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn content(req: HttpRequest, services: web::Data<Services>) -> Result<HttpResponse> {
    let q: ContentQuery = super::authn::query(&req)?;
    let pass = match q.link.as_deref() {
        Some(link) => services.records().link_pass(link, &client_info(&req), path_id(&req, "id")?).await?,
        None => Authorized::<ReadDocument>::extract(&req).await?.pass,
    };
    let content = services.records().content(pass).await?;
    let size = content.size();
    let asked = match range(&req, size) {
        Ok(r) => r,
        Err(e) => {
            return Ok(HttpResponse::RangeNotSatisfiable()
                .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                .json(super::error::ErrorBody { code: e.code().as_str(), message: e.message().to_owned() }));
        }
    };
    let media_type = content.record.media_type.clone();
    let disposition = sniff::content_disposition(&content.record.file_name, &media_type);
    let sent = content.send(asked).await?;
    let mut res = if asked.is_some() { HttpResponse::PartialContent() } else { HttpResponse::Ok() };
    if asked.is_some() {
        res.insert_header((header::CONTENT_RANGE, format!("bytes {}-{}/{}", sent.start, sent.end, sent.size)));
    }
    Ok(res
        .insert_header((header::CONTENT_TYPE, media_type))
        .insert_header((header::CONTENT_DISPOSITION, disposition))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox"))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .no_chunking(sent.end - sent.start + 1)
        .streaming(sent.body))
}

/// `POST /api/v1/records/{id}/grants`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// The user who may read the record.
    pub user_id: Uuid,
    /// Until when (RFC 3339), at most `vault.max_grant_days` ahead.
    pub expires_at: String,
    /// Why this user may read the record; required for every grant (at most 500 characters
    /// are kept).
    pub reason: Option<String>,
}

/// Let one user read this record until a time: the record's data key is wrapped with that
/// user's key. The patient and the assigned doctors grant; administrators grant too (emergency
/// access, themselves included). Every grant needs a reason. A token narrowed by attenuation
/// (a signed link among them) cannot grant: use your own session.
#[utoipa::path(post, path = "/api/v1/records/{id}/grants", tag = "records", request_body = GrantBody,
    params(("id" = Uuid, Path, description = "Record id")),
    responses((status = 201, description = "The grant"), (status = 400, description = "Unknown user, bad time", body = super::error::ErrorBody),
        (status = 403, description = "A narrowed token", body = super::error::ErrorBody),
        (status = 404, description = "No such record, or not yours to share", body = super::error::ErrorBody),
        (status = 422, description = "`reason_required`: no reason given", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_grant(
    auth: Authorized<ShareDocument>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b = body.parse::<GrantBody>()?;
    let req = GrantRequest { user_id: b.user_id, expires_at: b.expires_at, reason: b.reason };
    Ok(HttpResponse::Created().json(services.sharing().grant(auth.pass, req).await?))
}

/// The record's grants, newest first, expired ones included. Each list is audited in the
/// patient's trail.
#[utoipa::path(get, path = "/api/v1/records/{id}/grants", tag = "records", params(("id" = Uuid, Path, description = "Record id")),
    responses((status = 200, description = "`{items}`"),
        (status = 404, description = "No such record, or not yours to share", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_grants(auth: Authorized<ShareDocument>, services: web::Data<Services>) -> Result<HttpResponse> {
    let items = services.sharing().grants(auth.pass).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "items": items })))
}

/// Revoke a grant: its wrap of the data key is deleted at once.
#[utoipa::path(delete, path = "/api/v1/records/{id}/grants/{grant_id}", tag = "records",
    params(("id" = Uuid, Path, description = "Record id"), ("grant_id" = Uuid, Path, description = "Grant id")),
    responses((status = 204, description = "Revoked"), (status = 404, description = "No such grant", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_grant(
    auth: Authorized<ShareDocument>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let grant = path_id(&req, "grant_id")?;
    services.sharing().revoke(auth.pass, grant).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/v1/records/{id}/links`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    /// Seconds the link lives: 1 to `vault.max_link_secs`.
    pub expires_in: u64,
}

/// A link that reads this one record, and nothing else, until it expires: a Biscuit with the
/// caller's identity narrowed to reading this record. Anyone holding it can download the file,
/// so it is for sending to someone you trust; every use is audited. The caller must be able to
/// read the record themselves, with their own session: a narrowed token makes no link.
#[utoipa::path(post, path = "/api/v1/records/{id}/links", tag = "records", request_body = LinkBody,
    params(("id" = Uuid, Path, description = "Record id")),
    responses((status = 201, description = "`{url, expires_at}`"), (status = 400, description = "expires_in out of bounds", body = super::error::ErrorBody),
        (status = 403, description = "A narrowed token", body = super::error::ErrorBody),
        (status = 404, description = "No such record, or not yours to read and share", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_link(
    auth: Authorized<ShareDocument>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b = body.parse::<LinkBody>()?;
    let link = services.sharing().link(auth.pass, b.expires_in).await?;
    Ok(HttpResponse::Created().insert_header((header::CACHE_CONTROL, "no-store")).json(link))
}

/// Erase a patient's files for good (administrators; the patient's record must be deleted
/// first): their key and every wrap of their files' data keys are destroyed, so nothing —
/// this server, a backup of its store, a copy of its objects — can open them again.
#[utoipa::path(post, path = "/api/v1/patients/{id}/erase", tag = "patients", params(("id" = Uuid, Path, description = "Patient id")),
    responses((status = 200, description = "`{files, grants}` destroyed"),
        (status = 409, description = "`patient_not_deleted`", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn erase(auth: Authorized<ErasePatient>, services: web::Data<Services>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(services.sharing().erase_patient(auth.pass).await?))
}

pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let r = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/v1/records/{id}/content").get(content))
        .service(r("/api/v1/records/{id}/grants").get(list_grants).post(create_grant))
        .service(r("/api/v1/records/{id}/grants/{grant_id}").delete(delete_grant))
        .service(r("/api/v1/records/{id}/links").post(create_link))
        .service(r("/api/v1/patients/{id}/erase").post(erase));
}
