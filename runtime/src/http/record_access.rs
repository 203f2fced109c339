//! Reading a record's content (streamed, with `Range`), by the caller's own token or by a
//! signed link; grants; signed links; erasing a patient (crypto-shredding).
//!
//! Content is served only as what it was sniffed to be, with `nosniff`, a sandboxing CSP and a
//! `Content-Disposition` built from the sanitised name: inline for PDF and images (so that a
//! browser can page through a PDF with range requests), as an attachment otherwise. Before a
//! byte is sent, the frames of the range are checked for tampering; a tampered file answers 500
//! `integrity_error`, audited, with no plaintext.

use std::time::{Duration, SystemTime};

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use careport_actors::audit::{EventExt, outcome};
use careport_actors::vault::{Download, sniff};
use careport_actors::{Caller, Services};
use careport_domain::time::now_ms;
use careport_domain::{Code, Error, Role};
use careport_store::vault::{self as stored, RecordRow};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::authn::{Authorized, ErasePatient, ReadDocument, ShareDocument};
use super::error::ApiError;
use super::page::store;
use super::patients::{invalid, path_id, rfc3339};
use super::records::live_record;

type Result<T> = std::result::Result<T, ApiError>;

/// `GET /api/v1/records/{id}/content` query.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ContentQuery {
    /// A signed link's token (`POST /api/v1/records/{id}/links`), instead of a bearer token.
    pub link: Option<String>,
}

/// Open the record for `caller`: through the chart when the policies let them read it as the
/// patient or the care team, otherwise through a live grant of theirs (administrators always).
async fn open_for(services: &Services, caller: &Caller, r: &RecordRow) -> std::result::Result<Download, Error> {
    let id = r.id.to_string();
    let care_team = services.auth.document_facts(caller, r, false).await?;
    if caller.role() != Role::Admin && services.auth.permits(caller, "read", "document", &id, &care_team)? {
        return services.vault.open_as_care_team(r).await;
    }
    services.vault.open_by_grant(r, caller.user()).await?.ok_or_else(|| Error::new(Code::NotFound))
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
        let end: u64 =
            if b.is_empty() { size - 1 } else { b.parse::<u64>().map_err(|_| unsatisfiable())?.min(size - 1) };
        (start, end)
    };
    if start >= size || start > end {
        return Err(unsatisfiable());
    }
    Ok(Some((start, end)))
}

/// The record's content, streamed; `Range: bytes=a-b` gives 206 with that part. With
/// `?link=TOKEN`, a signed link stands in for the bearer token (401 once it has expired).
#[utoipa::path(get, path = "/api/v1/records/{id}/content", tag = "records", params(("id" = Uuid, Path, description = "Record id"), ContentQuery),
    responses((status = 200, description = "The file"), (status = 206, description = "The range asked for"),
        (status = 401, description = "No token, or an expired link", body = super::error::ErrorBody),
        (status = 404, description = "No such record, or not yours", body = super::error::ErrorBody),
        (status = 410, description = "Erased with its patient's keys", body = super::error::ErrorBody),
        (status = 416, description = "Range outside the file", body = super::error::ErrorBody),
        (status = 500, description = "`integrity_error`: the stored file was tampered with", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn content(req: HttpRequest, services: web::Data<Services>) -> Result<HttpResponse> {
    let q: ContentQuery = super::authn::query(&req)?;
    let (caller, via_link) = match q.link.as_deref() {
        Some(link) => match link_caller(&req, &services, link).await {
            Ok(c) => (c, true),
            Err(e) => {
                // A refused link is a denial like any other: audited (without the token).
                let id = req.match_info().get("id").unwrap_or_default().chars().take(36).collect::<String>();
                let event = super::authn::client_info(&req)
                    .context()
                    .event("record.download", outcome::DENIED)
                    .resource("document", id)
                    .detail(format!("signed link refused: {}", e.code()));
                if let Err(audit) = services.auth.audit(vec![event]).await {
                    tracing::warn!(error = %audit, "could not audit a refused link");
                }
                return Err(e.into());
            }
        },
        None => (Authorized::<ReadDocument>::extract(&req).await?.caller, false),
    };
    let raw = req.match_info().get("id").unwrap_or_default();
    let id = Uuid::parse_str(raw).map_err(|_| Error::new(Code::NotFound))?;
    let r = live_record(&services, id).await?;
    let download = match open_for(&services, &caller, &r).await {
        Ok(d) => d,
        Err(e) if e.code() == Code::Erased => {
            audit_read(&services, &caller, &r, outcome::FAILURE, "erased").await?;
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    let size = download.size();
    let asked = match range(&req, size) {
        Ok(r) => r,
        Err(e) => {
            return Ok(HttpResponse::RangeNotSatisfiable()
                .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                .json(super::error::ErrorBody { code: e.code().as_str(), message: e.message().to_owned() }));
        }
    };
    let (start, end) = asked.unwrap_or((0, size.saturating_sub(1)));
    if let Err(e) = download.verify(start, end).await {
        if e.code() == Code::IntegrityError {
            tracing::error!(record = %r.id, file = %r.file_id, "a stored file failed its integrity check");
            audit_read(&services, &caller, &r, outcome::FAILURE, "integrity_error").await?;
        }
        return Err(e.into());
    }
    let detail = match (asked, via_link) {
        (Some((a, b)), true) => format!("bytes {a}-{b} by signed link"),
        (Some((a, b)), false) => format!("bytes {a}-{b}"),
        (None, true) => "whole file by signed link".to_owned(),
        (None, false) => "whole file".to_owned(),
    };
    // Fail closed: no audit, no content.
    audit_read(&services, &caller, &r, outcome::SUCCESS, &detail).await?;
    let on_broken = {
        let services = services.clone();
        let event = caller
            .ctx
            .event("record.download", outcome::FAILURE)
            .resource("document", r.id)
            .patient(r.patient_id)
            .detail("integrity_error during the transfer");
        move || {
            tracing::error!("a stored file failed its integrity check during a download; the transfer was cut");
            // Called on the transfer's own task, outside actix's local set: a plain tokio task.
            tokio::spawn(async move {
                if let Err(e) = services.auth.audit(vec![event]).await {
                    tracing::error!(error = %e, "could not audit a broken download");
                }
            });
        }
    };
    let body = download.stream(start, end, on_broken).await?;
    let mut res = if asked.is_some() { HttpResponse::PartialContent() } else { HttpResponse::Ok() };
    if asked.is_some() {
        res.insert_header((header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")));
    }
    Ok(res
        .insert_header((header::CONTENT_TYPE, r.media_type.clone()))
        .insert_header((header::CONTENT_DISPOSITION, sniff::content_disposition(&r.file_name, &r.media_type)))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox"))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .no_chunking(end - start + 1)
        .streaming(body))
}

async fn audit_read(
    services: &Services,
    caller: &Caller,
    r: &RecordRow,
    result: &str,
    detail: &str,
) -> std::result::Result<(), Error> {
    services
        .auth
        .audit(vec![
            caller
                .ctx
                .event("record.download", result)
                .resource("document", r.id)
                .patient(r.patient_id)
                .detail(detail.to_owned()),
        ])
        .await
}

/// The caller a signed link stands for: its maker, narrowed to reading one record, while the
/// link has not expired and its maker's account is active. The policies then decide as for any
/// request: a maker who may no longer read the record no longer opens it by link.
async fn link_caller(req: &HttpRequest, services: &Services, link: &str) -> std::result::Result<Caller, Error> {
    let token = services.auth.authenticate(link)?;
    if !token.is_attenuated() {
        // A link is always narrowed; a plain access token does not belong in a URL.
        return Err(Error::new(Code::TokenInvalid));
    }
    // The maker's account as it is now: active, and still the role, staff role and department
    // the link was made with (a nurse moved to another department no longer opens her links).
    let claims = token.claims();
    let maker = careport_store::users::find(&services.db, claims.user).await.map_err(store)?;
    let unchanged = maker.is_some_and(|u| {
        u.is_active()
            && u.role == claims.role.as_str()
            && u.staff_role.as_deref() == claims.staff_role.map(|r| r.as_str())
            && u.department == claims.department
    });
    if !unchanged {
        return Err(Error::new(Code::TokenRevoked));
    }
    let mut ctx = super::authn::client_info(req).context();
    ctx.actor_id = Some(token.claims().user);
    ctx.actor_role = Some(token.claims().role.as_str().to_owned());
    let caller = Caller { token, ctx };
    let id = req.match_info().get("id").unwrap_or_default();
    let id = Uuid::parse_str(id).map_err(|_| Error::new(Code::NotFound))?.to_string();
    services.auth.authorize(&caller, "read", "document", &id, true).await?;
    Ok(caller)
}

/// `POST /api/v1/records/{id}/grants`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// The user who may read the record.
    pub user_id: Uuid,
    /// Until when (RFC 3339), at most `vault.max_grant_days` ahead.
    pub expires_at: String,
    /// Why; required when the grantee is an administrator (emergency access).
    pub reason: Option<String>,
}

fn grant_json(g: &stored::GrantRow) -> serde_json::Value {
    serde_json::json!({
        "id": g.id,
        "record_id": g.record_id,
        "user_id": g.grantee_id,
        "reason": g.reason,
        "expires_at": rfc3339(g.expires_at),
        "created_by": g.created_by,
        "created_at": rfc3339(g.created_at),
        "active": g.expires_at > now_ms(),
    })
}

/// Let one user read this record until a time: the record's data key is wrapped with that
/// user's key. The patient and the assigned doctors grant; administrators grant too — an
/// emergency grant to an administrator (themselves included) needs a reason.
#[utoipa::path(post, path = "/api/v1/records/{id}/grants", tag = "records", request_body = GrantBody,
    params(("id" = Uuid, Path, description = "Record id")),
    responses((status = 201, description = "The grant"), (status = 400, description = "Unknown user, bad time", body = super::error::ErrorBody),
        (status = 422, description = "`reason_required`", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_grant(
    auth: Authorized<ShareDocument>,
    services: web::Data<Services>,
    body: super::authn::JsonBody,
) -> Result<HttpResponse> {
    let id = path_id(&auth.resource_id)?;
    let b = body.parse::<GrantBody>()?;
    let r = live_record(&services, id).await?;
    let expires_at = careport_actors::clinic::parse_instant("expires_at", &b.expires_at)?;
    let max_days = services.vault.config().max_grant_days;
    if expires_at <= now_ms() || expires_at > now_ms() + (max_days as i64) * 86_400_000 {
        return Err(invalid(format!("expires_at must be in the future and at most {max_days} days ahead.")).into());
    }
    let grantee = careport_store::users::find(&services.db, b.user_id).await.map_err(store)?;
    let grantee = grantee.filter(|u| u.is_active()).ok_or_else(|| invalid("user_id names no active user."))?;
    let reason = b.reason.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(|s| s.chars().take(500).collect());
    if grantee.role == "admin" && reason.is_none() {
        return Err(Error::new(Code::ReasonRequired).into());
    }
    let g = services.vault.grant(&r, b.user_id, expires_at, reason, auth.caller.user()).await?;
    services
        .auth
        .audit(vec![
            auth.caller
                .ctx
                .event("record.grant", outcome::SUCCESS)
                .resource("document", id)
                .patient(r.patient_id)
                .detail(format!("grant {} to user {} until {}", g.id, g.grantee_id, rfc3339(g.expires_at))),
        ])
        .await?;
    Ok(HttpResponse::Created().json(grant_json(&g)))
}

/// The record's grants, newest first, expired ones included.
#[utoipa::path(get, path = "/api/v1/records/{id}/grants", tag = "records", params(("id" = Uuid, Path, description = "Record id")),
    responses((status = 200, description = "`{items}`")), security(("bearer" = [])))]
pub async fn list_grants(auth: Authorized<ShareDocument>, services: web::Data<Services>) -> Result<HttpResponse> {
    let id = path_id(&auth.resource_id)?;
    live_record(&services, id).await?;
    let items: Vec<_> = stored::grants(&services.db, id).await.map_err(store)?.iter().map(grant_json).collect();
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
    let id = path_id(&auth.resource_id)?;
    let gid = path_id(req.match_info().get("grant_id").unwrap_or_default())?;
    let r = live_record(&services, id).await?;
    let grantee =
        stored::delete_grant(&services.db, id, gid).await.map_err(store)?.ok_or_else(|| Error::new(Code::NotFound))?;
    services
        .auth
        .audit(vec![
            auth.caller
                .ctx
                .event("record.grant_revoke", outcome::SUCCESS)
                .resource("document", id)
                .patient(r.patient_id)
                .detail(format!("grant {gid} of user {grantee}")),
        ])
        .await?;
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
/// read the record themselves.
#[utoipa::path(post, path = "/api/v1/records/{id}/links", tag = "records", request_body = LinkBody,
    params(("id" = Uuid, Path, description = "Record id")),
    responses((status = 201, description = "`{url, expires_at}`"), (status = 400, description = "expires_in out of bounds", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_link(
    auth: Authorized<ShareDocument>,
    services: web::Data<Services>,
    body: super::authn::JsonBody,
) -> Result<HttpResponse> {
    let id = path_id(&auth.resource_id)?;
    // A link carries its maker's full identity: a narrowed token (itself perhaps a link) must
    // not turn into a wider or longer-lived one.
    if auth.caller.token.is_attenuated() {
        return Err(
            Error::with_message(Code::Forbidden, "A narrowed token cannot make links; use your own session.").into()
        );
    }
    let b = body.parse::<LinkBody>()?;
    let max = services.vault.config().max_link_secs;
    if b.expires_in == 0 || b.expires_in > max {
        return Err(invalid(format!("expires_in must be 1 to {max} seconds.")).into());
    }
    let r = live_record(&services, id).await?;
    // Sharing by link never gives more than the caller has: they must read it themselves.
    open_for(&services, &auth.caller, &r).await?;
    let expires = SystemTime::now() + Duration::from_secs(b.expires_in);
    let token = services.auth.mint_link(&auth.caller, "document", &id.to_string(), expires)?;
    let expires_ms = expires.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default();
    services
        .auth
        .audit(vec![
            auth.caller
                .ctx
                .event("record.link_create", outcome::SUCCESS)
                .resource("document", id)
                .patient(r.patient_id)
                .detail(format!("signed link until {}", rfc3339(expires_ms))),
        ])
        .await?;
    let url = format!("{}/api/v1/records/{id}/content?link={token}", services.auth.public_url().trim_end_matches('/'));
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "url": url, "expires_at": rfc3339(expires_ms) })))
}

/// Erase a patient's files for good (administrators; the patient's record must be deleted
/// first): their key and every wrap of their files' data keys are destroyed, so nothing —
/// this server, a backup of its store, a copy of its objects — can open them again.
#[utoipa::path(post, path = "/api/v1/patients/{id}/erase", tag = "patients", params(("id" = Uuid, Path, description = "Patient id")),
    responses((status = 200, description = "`{files, grants}` destroyed"),
        (status = 409, description = "`patient_not_deleted`", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn erase(auth: Authorized<ErasePatient>, services: web::Data<Services>) -> Result<HttpResponse> {
    let id = path_id(&auth.resource_id)?;
    let p = careport_store::patients::get(&services.db, id)
        .await
        .map_err(store)?
        .ok_or_else(|| Error::new(Code::NotFound))?;
    if p.deleted_at.is_none() {
        return Err(Error::new(Code::PatientNotDeleted).into());
    }
    let shredded = services.vault.erase_patient(id).await?;
    services
        .auth
        .audit(vec![
            auth.caller
                .ctx
                .event("patient.erase", outcome::SUCCESS)
                .resource("patient", id)
                .patient(id)
                .detail(format!("{} files, {} grants", shredded.files.len(), shredded.grants)),
        ])
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "files": shredded.files.len(), "grants": shredded.grants })))
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
