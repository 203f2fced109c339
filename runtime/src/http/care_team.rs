//! A patient's care team: who treats them, for which cancer subtype, and every change
//! (`/api/v1/patients/{id}/care-team`), and the administrators' assignments
//! (`/api/v1/patients/{id}/assignments`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::Services;
use careport_actors::door::care_team::AssignOutcome;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::authn::{AssignPatient, Authorized, JsonBody, ReadPatient, path_id};
use super::error::ApiError;

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
    let team = services.care_team().read(auth.pass, q.history).await?;
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(team))
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
    let b = body.parse::<AssignBody>()?;
    let (done, team) = services.care_team().assign(auth.pass, b.clinician_id, &b.cancer_type_id).await?;
    let status = if done == AssignOutcome::Created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(HttpResponse::build(status).json(team))
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
    let clinician = path_id(&req, "clinician_id")?;
    services.care_team().unassign(auth.pass, clinician).await?;
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
