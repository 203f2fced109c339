//! Patients' records: `/api/v1/patients` (list, create, read, update, soft delete, restore), a
//! user record (`/api/v1/users/{id}`) and a patient's access log (`/api/v1/me/access-log`).
//! Care teams and assignments are in [`super::care_team`].
//!
//! Adapters over `careport_actors::door::patients`: each handler parses the request, calls one
//! operation and shapes the answer. The rules (who sees what, which fields a patient may
//! change, the audit event of every read) live in the operation.

use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::Services;
use careport_actors::door::PageRequest;
use careport_actors::door::patients::PatientQuery;
use careport_domain::{Code, Error};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::authn::{
    Authenticated, Authorized, CreatePatient, DeletePatient, JsonBody, ListPatients, ReadOwnAccessLog, ReadUser,
    RestorePatient, WritePatient, path_id,
};
use super::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

/// Patient data is never cached by a browser or a proxy.
fn ok_no_store() -> actix_web::HttpResponseBuilder {
    let mut res = HttpResponse::Ok();
    res.insert_header(("cache-control", "no-store"));
    res
}

fn object(body: JsonBody) -> Result<Map<String, Value>> {
    match body.parse::<Value>()? {
        Value::Object(m) => Ok(m),
        _ => Err(Error::with_message(Code::InvalidJson, "The body must be a JSON object.").into()),
    }
}

/// `GET /api/v1/patients` query.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Part of the name or the medical record number.
    pub q: Option<String>,
    /// A department id.
    pub department: Option<String>,
    /// A cancer type id: patients assigned for it (a top-level type includes its subtypes).
    pub cancer_type: Option<String>,
    /// Include soft-deleted records (administrators only).
    #[serde(default)]
    pub include_deleted: bool,
    /// 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The patients the caller may see: a patient themself, a doctor their assigned patients, a
/// nurse their department's, an administrator everyone.
#[utoipa::path(get, path = "/api/v1/patients", tag = "patients", params(ListQuery),
    responses((status = 200, description = "`{items, next_cursor}`")), security(("bearer" = [])))]
pub async fn list(
    auth: Authorized<ListPatients>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let q: ListQuery = super::authn::query(&req)?;
    let query = PatientQuery {
        q: q.q,
        department: q.department,
        cancer_type: q.cancer_type,
        include_deleted: q.include_deleted,
        page: PageRequest { limit: q.limit, cursor: q.cursor },
    };
    Ok(ok_no_store().json(services.patients().list(auth.pass, query).await?))
}

/// `POST /api/v1/patients` body (documented; the operation reads the object field by field).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct PatientBody {
    /// The hospital's medical record number; generated (`CP` and ten digits) when absent.
    pub mrn: Option<String>,
    pub full_name: String,
    /// `YYYY-MM-DD`.
    pub date_of_birth: Option<String>,
    /// female, male, other or unknown.
    pub sex: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    /// `{name, phone, relation}`.
    pub emergency_contact: Option<Value>,
    pub preferred_language: Option<String>,
    pub department: Option<String>,
}

/// Open a patient record (clinicians and administrators). The patient links their account to
/// it by registering with the record's e-mail address.
#[utoipa::path(post, path = "/api/v1/patients", tag = "patients", request_body = PatientBody,
    responses((status = 201, description = "The record"), (status = 409, description = "MRN taken", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    auth: Authorized<CreatePatient>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let body = object(body)?;
    let p = services.patients().create(auth.pass, body).await?;
    Ok(HttpResponse::Created().insert_header(("cache-control", "no-store")).json(p))
}

/// A patient's record with their care team.
#[utoipa::path(get, path = "/api/v1/patients/{id}", tag = "patients", params(("id" = Uuid, Path, description = "Patient id")),
    responses((status = 200, description = "The patient"), (status = 404, description = "No such patient, or not yours to see", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_patient(auth: Authenticated, services: web::Data<Services>, req: HttpRequest) -> Result<HttpResponse> {
    let id = path_id(&req, "id")?;
    Ok(ok_no_store().json(services.patients().read(auth.caller, id).await?))
}

/// Update a record. Absent fields are kept; `null` clears one. A patient may change only their
/// contact details (phone, address, emergency contact, preferred language).
#[utoipa::path(patch, path = "/api/v1/patients/{id}", tag = "patients", request_body = PatientBody,
    params(("id" = Uuid, Path, description = "Patient id")),
    responses((status = 200, description = "The record"), (status = 404, description = "No such patient, or not yours", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    auth: Authorized<WritePatient>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let body = object(body)?;
    Ok(ok_no_store().json(services.patients().update(auth.pass, body).await?))
}

/// Soft-delete a record (administrators): hidden from everyone else, restorable, audited.
#[utoipa::path(delete, path = "/api/v1/patients/{id}", tag = "patients", params(("id" = Uuid, Path, description = "Patient id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such patient", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(auth: Authorized<DeletePatient>, services: web::Data<Services>) -> Result<HttpResponse> {
    services.patients().delete(auth.pass).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Restore a soft-deleted record (administrators).
#[utoipa::path(post, path = "/api/v1/patients/{id}/restore", tag = "patients", params(("id" = Uuid, Path, description = "Patient id")),
    responses((status = 200, description = "The record"), (status = 404, description = "No such patient", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn restore(auth: Authorized<RestorePatient>, services: web::Data<Services>) -> Result<HttpResponse> {
    Ok(ok_no_store().json(services.patients().restore(auth.pass).await?))
}

/// A user record: one's own, or any for an administrator.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "The account"), (status = 404, description = "No such account, or not yours to see", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_user(auth: Authorized<ReadUser>, services: web::Data<Services>) -> Result<HttpResponse> {
    Ok(ok_no_store().json(services.patients().user(auth.pass).await?))
}

/// `GET /api/v1/me/access-log` query.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AccessLogQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 200 (default 50).
    pub limit: Option<i64>,
}

/// Who opened the caller's record, and when (patients).
#[utoipa::path(get, path = "/api/v1/me/access-log", tag = "patients", params(AccessLogQuery),
    responses((status = 200, description = "Accesses, newest first")), security(("bearer" = [])))]
pub async fn access_log(
    auth: Authorized<ReadOwnAccessLog>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let q: AccessLogQuery = super::authn::query(&req)?;
    let page = PageRequest { limit: q.limit, cursor: q.cursor };
    Ok(ok_no_store().json(services.patients().access_log(auth.pass, page).await?))
}

/// Register the routes.
pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let r = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/v1/patients").get(list).post(create))
        .service(r("/api/v1/patients/{id}").get(get_patient).patch(update).delete(delete))
        .service(r("/api/v1/patients/{id}/restore").post(restore))
        .service(r("/api/v1/users/{id}").get(get_user))
        .service(r("/api/v1/me/access-log").get(access_log));
}
