//! The first reads of personal data: a patient's summary (`/api/v1/patients/{id}`), a user
//! record (`/api/v1/users/{id}`) and a patient's access log (`/api/v1/me/access-log`).
//!
//! Each read of patient data writes its audit event and waits for the commit before it
//! answers: if the trail cannot be written, the read fails (503 `audit_unavailable`).
//! The clinic directory (issue #4) extends the patient summary with its own fields.

use actix_web::{HttpResponse, web};
use careport_actors::Services;
use careport_actors::audit::{EventExt, outcome};
use careport_domain::{Code, Error};
use careport_store::{assignments, audit as trail, users};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::authn::{Authorized, ReadOwnAccessLog, ReadPatient, ReadUser};
use super::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

fn store(e: impl Into<anyhow::Error>) -> Error {
    Error::new(Code::StoreUnavailable).caused_by(e).retry_after(1)
}

/// A patient's summary: who they are and who treats them.
#[utoipa::path(get, path = "/api/v1/patients/{id}", tag = "patients", params(("id" = Uuid, Path, description = "Patient id (their user id)")),
    responses((status = 200, description = "The patient"), (status = 404, description = "No such patient, or not yours to see", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_patient(auth: Authorized<ReadPatient>, services: web::Data<Services>) -> Result<HttpResponse> {
    let id = Uuid::parse_str(&auth.resource_id).map_err(|_| Error::new(Code::NotFound))?;
    let user = users::find(&services.db, id).await.map_err(store)?;
    let Some(user) = user.filter(|u| u.role == "patient") else { return Err(Error::new(Code::NotFound).into()) };
    let team = assignments::care_team(&services.db, id).await.map_err(store)?;
    // Fail closed: no audit event, no data.
    services
        .auth
        .audit(vec![auth.caller.ctx.event("patient.read", outcome::SUCCESS).resource("patient", id).patient(id)])
        .await?;
    let team: Vec<_> =
        team.into_iter().map(|(c, d)| serde_json::json!({ "clinician_id": c, "department": d })).collect();
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(serde_json::json!({
        "id": user.id,
        "full_name": user.full_name,
        "email": user.email,
        "preferred_language": user.preferred_language,
        "active": user.is_active(),
        "care_team": team,
    })))
}

/// A user record: one's own, or any for an administrator.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "The account"), (status = 404, description = "No such account, or not yours to see", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_user(auth: Authorized<ReadUser>, services: web::Data<Services>) -> Result<HttpResponse> {
    let id = Uuid::parse_str(&auth.resource_id).map_err(|_| Error::new(Code::NotFound))?;
    let account = services.auth.account(id).await?;
    let mut event = auth.caller.ctx.event("user.read", outcome::SUCCESS).resource("user", id);
    if account.role == "patient" {
        event = event.patient(id);
    }
    services.auth.audit(vec![event]).await?;
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(account))
}

/// `GET /api/v1/me/access-log` query.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AccessLogQuery {
    /// The `seq` of the last entry of the previous page.
    pub before: Option<i64>,
    /// 1 to 200 (default 50).
    pub limit: Option<i64>,
}

/// Who opened the caller's record, and when (patients).
#[utoipa::path(get, path = "/api/v1/me/access-log", tag = "patients", params(AccessLogQuery),
    responses((status = 200, description = "Accesses, newest first")), security(("bearer" = [])))]
pub async fn access_log(
    auth: Authorized<ReadOwnAccessLog>,
    services: web::Data<Services>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse> {
    let q: AccessLogQuery = super::authn::query(&req)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let entries = trail::access_log(&services.db, auth.caller.user(), q.before, limit).await.map_err(store)?;
    let next = (entries.len() as i64 == limit).then(|| entries.last().map(|e| e.seq)).flatten();
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(serde_json::json!({
        "entries": entries,
        "next_before": next,
    })))
}

/// Register the routes.
pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let r = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/v1/patients/{id}").get(get_patient))
        .service(r("/api/v1/users/{id}").get(get_user))
        .service(r("/api/v1/me/access-log").get(access_log));
}
