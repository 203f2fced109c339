//! A patient's care team: who treats them, for which cancer subtype, and every change
//! (`/api/v1/patients/{id}/care-team`), and the administrators' assignments
//! (`/api/v1/patients/{id}/assignments`).

use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::Services;
use careport_actors::audit::{EventExt, outcome};
use careport_domain::{Code, Error};
use careport_store::{assignments, reference, users};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::authn::{AssignPatient, Authorized, JsonBody, ReadPatient};
use super::error::ApiError;
use super::page::store;
use super::patients::{invalid, path_id, rfc3339, visible};

type Result<T> = std::result::Result<T, ApiError>;

/// `GET /api/v1/patients/{id}/care-team` query.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CareTeamQuery {
    /// Also return every assignment change, oldest first.
    #[serde(default)]
    pub history: bool,
}

/// Who treats the patient, for which cancer subtype; with `?history=true`, every change.
#[utoipa::path(get, path = "/api/v1/patients/{id}/care-team", tag = "patients", params(("id" = Uuid, Path, description = "Patient id"), CareTeamQuery),
    responses((status = 200, description = "`{items, history?}`"), (status = 404, description = "No such patient, or not yours", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn care_team(
    auth: Authorized<ReadPatient>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let q: CareTeamQuery = super::authn::query(&req)?;
    let id = path_id(&auth.resource_id)?;
    visible(&services, &auth.caller, id).await?;
    let team = assignments::team(&services.db, id).await.map_err(store)?;
    let mut v = serde_json::json!({ "items": team });
    if q.history {
        let history: Vec<Value> = assignments::history(&services.db, id)
            .await
            .map_err(store)?
            .into_iter()
            .map(|h| {
                serde_json::json!({ "clinician_id": h.clinician_id, "full_name": h.full_name, "cancer_type_id": h.cancer_type_id,
                    "action": h.action, "actor_id": h.actor_id, "at": rfc3339(h.at) })
            })
            .collect();
        v["history"] = Value::Array(history);
    }
    services
        .auth
        .audit(vec![
            auth.caller.ctx.event("patient.care_team_read", outcome::SUCCESS).resource("patient", id).patient(id),
        ])
        .await?;
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(v))
}

/// `POST /api/v1/patients/{id}/assignments`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    /// An active clinician.
    pub clinician_id: Uuid,
    /// A cancer *subtype* (`GET /api/v1/cancer-types/{id}/subtypes`); a top-level type is refused.
    pub cancer_type_id: String,
}

/// Assign a clinician to the patient for a cancer subtype (administrators). Assigning the same
/// clinician again with another subtype changes the assignment; every change is in the history.
#[utoipa::path(post, path = "/api/v1/patients/{id}/assignments", tag = "patients", request_body = AssignBody,
    params(("id" = Uuid, Path, description = "Patient id")),
    responses((status = 201, description = "Assigned"), (status = 200, description = "Changed or unchanged"),
        (status = 422, description = "Not a subtype", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn assign(
    auth: Authorized<AssignPatient>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let id = path_id(&auth.resource_id)?;
    let b = body.parse::<AssignBody>()?;
    let p = visible(&services, &auth.caller, id).await?;
    if p.deleted_at.is_some() {
        return Err(Error::with_message(Code::Conflict, "The record is deleted; restore it first.").into());
    }
    let t = reference::cancer_type(&services.db, &b.cancer_type_id)
        .await
        .map_err(store)?
        .ok_or_else(|| invalid("cancer_type_id names no cancer type."))?;
    if t.parent_id.is_none() {
        return Err(Error::new(Code::SubtypeRequired).into());
    }
    if t.retired_at.is_some() {
        return Err(invalid("That cancer type is retired.").into());
    }
    let clinician = users::find(&services.db, b.clinician_id).await.map_err(store)?;
    if !clinician.is_some_and(|c| c.role == "clinician" && c.is_active()) {
        return Err(invalid("clinician_id names no active clinician.").into());
    }
    let done = assignments::assign(&services.db, b.clinician_id, id, Some(&t.id), Some(auth.caller.user()))
        .await
        .map_err(store)?;
    let (status, action) = match done {
        assignments::Assigned::Created => (actix_web::http::StatusCode::CREATED, "assignment.create"),
        assignments::Assigned::Changed => (actix_web::http::StatusCode::OK, "assignment.change"),
        assignments::Assigned::Unchanged => (actix_web::http::StatusCode::OK, "assignment.unchanged"),
    };
    services
        .auth
        .audit(vec![
            auth.caller
                .ctx
                .event(action, outcome::SUCCESS)
                .resource("patient", id)
                .patient(id)
                .detail(format!("clinician {} type {}", b.clinician_id, t.id)),
        ])
        .await?;
    let team = assignments::team(&services.db, id).await.map_err(store)?;
    Ok(HttpResponse::build(status).json(serde_json::json!({ "items": team })))
}

/// End a clinician's assignment to the patient (administrators).
#[utoipa::path(delete, path = "/api/v1/patients/{id}/assignments/{clinician_id}", tag = "patients",
    params(("id" = Uuid, Path, description = "Patient id"), ("clinician_id" = Uuid, Path, description = "Clinician id")),
    responses((status = 204, description = "Ended"), (status = 404, description = "No such assignment", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn unassign(
    auth: Authorized<AssignPatient>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let id = path_id(&auth.resource_id)?;
    let clinician = req
        .match_info()
        .get("clinician_id")
        .and_then(|c| Uuid::parse_str(c).ok())
        .ok_or_else(|| Error::new(Code::NotFound))?;
    visible(&services, &auth.caller, id).await?;
    if !assignments::unassign(&services.db, clinician, id, Some(auth.caller.user())).await.map_err(store)? {
        return Err(Error::new(Code::NotFound).into());
    }
    services
        .auth
        .audit(vec![
            auth.caller
                .ctx
                .event("assignment.end", outcome::SUCCESS)
                .resource("patient", id)
                .patient(id)
                .detail(format!("clinician {clinician}")),
        ])
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Register the routes.
pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let r = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/v1/patients/{id}/care-team").get(care_team))
        .service(r("/api/v1/patients/{id}/assignments").post(assign))
        .service(r("/api/v1/patients/{id}/assignments/{clinician_id}").delete(unassign));
}
