//! Patients' records: `/api/v1/patients` (list, create, read, update, soft delete, restore), a
//! user record (`/api/v1/users/{id}`) and a patient's access log (`/api/v1/me/access-log`).
//! Care teams and assignments are in [`super::care_team`].
//!
//! Each read of patient data writes its audit event and waits for the commit before it
//! answers: if the trail cannot be written, the read fails (503 `audit_unavailable`).
//! A record a caller may not see answers 404, like one that does not exist; a deleted record
//! is visible to administrators only.

use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::audit::{EventExt, outcome};
use careport_actors::{Caller, Services, accounts};
use careport_domain::time::now_ms;
use careport_domain::{Code, Email, Error, Role};
use careport_policy::StaffRole;
use careport_store::patients::{self, PatientError, PatientFields, PatientRow, Scope};
use careport_store::{assignments, audit as trail};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::authn::{
    Authorized, AuthorizedPatientRead, CreatePatient, DeletePatient, JsonBody, ListPatients, ReadOwnAccessLog,
    ReadUser, RestorePatient, WritePatient,
};
use super::error::ApiError;
use super::page::{self, store};

type Result<T> = std::result::Result<T, ApiError>;

pub(super) fn rfc3339(ms: i64) -> String {
    careport_actors::clinic::rfc3339(ms)
}

/// A record as the API shows it (times in RFC 3339).
pub fn patient_json(p: &PatientRow) -> Value {
    serde_json::json!({
        "id": p.id,
        "mrn": p.mrn,
        "full_name": p.full_name,
        "date_of_birth": p.date_of_birth,
        "sex": p.sex,
        "email": p.email,
        "phone": p.phone,
        "address": p.address,
        "emergency_contact": {
            "name": p.emergency_contact_name,
            "phone": p.emergency_contact_phone,
            "relation": p.emergency_contact_relation,
        },
        "preferred_language": p.preferred_language,
        "department": p.department,
        "has_account": p.account_status.is_some(),
        "created_at": rfc3339(p.created_at),
        "updated_at": rfc3339(p.updated_at),
        "deleted_at": p.deleted_at.map(rfc3339),
    })
}

/// Whose records a caller may list: the same rules as `patients.datalog`.
pub fn scope_of(caller: &Caller) -> Scope {
    let claims = caller.token.claims();
    match (claims.role, claims.staff_role) {
        (Role::Admin, _) => Scope::All,
        (Role::Patient, _) => Scope::Own(claims.user),
        (Role::Clinician, Some(StaffRole::Doctor)) => Scope::Assigned(claims.user),
        (Role::Clinician, Some(StaffRole::Nurse)) => {
            claims.department.clone().map(Scope::Department).unwrap_or(Scope::Nothing)
        }
        (Role::Clinician, None) => Scope::Nothing,
    }
}

pub(super) fn path_id(auth_id: &str) -> std::result::Result<Uuid, Error> {
    Uuid::parse_str(auth_id).map_err(|_| Error::new(Code::NotFound))
}

/// The record, if it exists and (for anyone but an administrator) is not deleted.
pub(super) async fn visible(services: &Services, caller: &Caller, id: Uuid) -> std::result::Result<PatientRow, Error> {
    let p = patients::get(&services.db, id).await.map_err(store)?.ok_or_else(|| Error::new(Code::NotFound))?;
    if p.deleted_at.is_some() && caller.role() != Role::Admin {
        return Err(Error::new(Code::NotFound));
    }
    Ok(p)
}

pub(super) fn invalid(message: impl Into<String>) -> Error {
    Error::with_message(Code::InvalidValue, message)
}

fn text(field: &str, v: &Value, max: usize) -> std::result::Result<Option<String>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            if s.chars().count() > max || s.chars().any(|c| c.is_control() && c != '\n') {
                return Err(invalid(format!("{field} must be at most {max} characters of text.")));
            }
            Ok(Some(s.to_owned()))
        }
        _ => Err(invalid(format!("{field} must be a string or null."))),
    }
}

fn phone(field: &str, v: &Value) -> std::result::Result<Option<String>, Error> {
    let p = text(field, v, 32)?;
    if let Some(p) = &p {
        let digits = p.chars().filter(char::is_ascii_digit).count();
        if digits < 3 || !p.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) {
            return Err(invalid(format!("{field} must be a phone number: digits, spaces, + - ( ) and dots.")));
        }
    }
    Ok(p)
}

fn date_of_birth(v: &Value) -> std::result::Result<Option<String>, Error> {
    let Some(s) = text("date_of_birth", v, 10)? else { return Ok(None) };
    let bad = || invalid("date_of_birth must be a past date written YYYY-MM-DD.");
    let d: jiff::civil::Date = s.parse().map_err(|_| bad())?;
    let today = jiff::Zoned::now().date();
    if d > today || d.year() < 1880 || s.len() != 10 {
        return Err(bad());
    }
    Ok(Some(d.to_string()))
}

fn mrn(v: &Value) -> std::result::Result<Option<String>, Error> {
    let m = text("mrn", v, 32)?;
    if let Some(m) = &m
        && !m.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(invalid("mrn must be letters, digits and hyphens (at most 32)."));
    }
    Ok(m)
}

/// Fields a patient may change on their own record.
const PATIENT_FIELDS: [&str; 4] = ["phone", "address", "emergency_contact", "preferred_language"];

/// Apply a JSON object of changes to `f`. Absent keys keep their value; `null` clears an
/// optional field. Unknown keys are refused, so a typo never passes silently.
async fn apply(
    services: &Services,
    f: &mut PatientFields,
    body: &Map<String, Value>,
) -> std::result::Result<(), Error> {
    for (key, v) in body {
        match key.as_str() {
            "mrn" => f.mrn = mrn(v)?.ok_or_else(|| invalid("mrn cannot be empty."))?,
            "full_name" => {
                f.full_name = text("full_name", v, 200)?.ok_or_else(|| invalid("full_name is required."))?;
            }
            "date_of_birth" => f.date_of_birth = date_of_birth(v)?,
            "sex" => {
                let s = text("sex", v, 16)?.unwrap_or_else(|| "unknown".into());
                if !["female", "male", "other", "unknown"].contains(&s.as_str()) {
                    return Err(invalid("sex must be female, male, other or unknown."));
                }
                f.sex = s;
            }
            "email" => {
                f.email = match text("email", v, 254)? {
                    Some(e) => Some(Email::parse(&e)?.as_str().to_owned()),
                    None => None,
                };
            }
            "phone" => f.phone = phone("phone", v)?,
            "address" => f.address = text("address", v, 500)?,
            "emergency_contact" => match v {
                Value::Null => {
                    f.emergency_contact_name = None;
                    f.emergency_contact_phone = None;
                    f.emergency_contact_relation = None;
                }
                Value::Object(c) => {
                    for k in c.keys() {
                        if !["name", "phone", "relation"].contains(&k.as_str()) {
                            return Err(invalid(format!("emergency_contact has no field {k:?}.")));
                        }
                    }
                    let none = Value::Null;
                    f.emergency_contact_name = text("emergency_contact.name", c.get("name").unwrap_or(&none), 200)?;
                    f.emergency_contact_phone = phone("emergency_contact.phone", c.get("phone").unwrap_or(&none))?;
                    f.emergency_contact_relation =
                        text("emergency_contact.relation", c.get("relation").unwrap_or(&none), 50)?;
                }
                _ => return Err(invalid("emergency_contact must be an object {name, phone, relation} or null.")),
            },
            "preferred_language" => {
                let l = text("preferred_language", v, 8)?.unwrap_or_else(|| "en".into());
                accounts::check_language(&l)?;
                f.preferred_language = l;
            }
            "department" => {
                let d = text("department", v, 128)?;
                accounts::check_department(&services.db, d.as_deref()).await?;
                f.department = d;
            }
            other => return Err(invalid(format!("Patients have no field {other:?}."))),
        }
    }
    Ok(())
}

fn object(body: JsonBody) -> Result<Map<String, Value>> {
    match body.parse::<Value>()? {
        Value::Object(m) => Ok(m),
        _ => Err(Error::with_message(Code::InvalidJson, "The body must be a JSON object.").into()),
    }
}

fn patient_error(e: PatientError) -> Error {
    match e {
        PatientError::MrnTaken => Error::new(Code::MrnTaken),
        PatientError::Store(e) => store(e),
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
    let limit = page::limit(q.limit)?;
    let after = page::decode_uuid(q.cursor.as_deref())?;
    if q.include_deleted && auth.caller.role() != Role::Admin {
        return Err(Error::with_message(Code::Forbidden, "Only administrators see deleted records.").into());
    }
    if q.q.as_deref().is_some_and(|t| t.chars().count() > 100) {
        return Err(Error::with_message(Code::InvalidQuery, "q must be at most 100 characters.").into());
    }
    let filter = patients::ListFilter {
        text: q.q.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()),
        department: q.department,
        cancer_type: q.cancer_type,
        include_deleted: q.include_deleted,
    };
    let rows = patients::list(&services.db, &scope_of(&auth.caller), &filter, after, limit).await.map_err(store)?;
    services
        .auth
        .audit(vec![auth.caller.ctx.event("patient.list", outcome::SUCCESS).detail(format!("{} records", rows.len()))])
        .await?;
    let next = rows.last().filter(|_| rows.len() as i64 == limit).map(|p| page::encode(&p.id.to_string()));
    let items: Vec<Value> = rows.iter().map(patient_json).collect();
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(serde_json::json!({ "items": items, "next_cursor": next })))
}

/// `POST /api/v1/patients` body (documented; the handler reads the object field by field).
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
    if !body.contains_key("full_name") {
        return Err(invalid("full_name is required.").into());
    }
    let claims = auth.caller.token.claims();
    // A nurse's new record is in her department unless she names another, so she can go on
    // working on it.
    let department = match claims.staff_role {
        Some(StaffRole::Nurse) => claims.department.clone(),
        _ => None,
    };
    let mut f =
        PatientFields { sex: "unknown".into(), preferred_language: "en".into(), department, ..Default::default() };
    apply(&services, &mut f, &body).await?;
    let id = Uuid::now_v7();
    let generated = f.mrn.is_empty();
    // A generated number can collide (one in ten billion per record): try again.
    let mut tries = 0;
    loop {
        if generated {
            f.mrn = patients::generate_mrn();
        }
        match patients::create(&services.db, id, &f, Some(auth.caller.user())).await {
            Ok(()) => break,
            Err(PatientError::MrnTaken) if generated && tries < 3 => tries += 1,
            Err(e) => return Err(patient_error(e).into()),
        }
    }
    // A doctor who opens a record joins its care team (no cancer type yet), so they can go on
    // working on it; an administrator sets the subtype with the assignment route.
    if claims.staff_role == Some(StaffRole::Doctor) {
        assignments::assign(&services.db, claims.user, id, None, Some(claims.user)).await.map_err(store)?;
    }
    services
        .auth
        .audit(vec![auth.caller.ctx.event("patient.create", outcome::SUCCESS).resource("patient", id).patient(id)])
        .await?;
    let p = patients::get(&services.db, id).await.map_err(store)?.ok_or_else(|| Error::new(Code::NotFound))?;
    Ok(HttpResponse::Created().insert_header(("cache-control", "no-store")).json(patient_json(&p)))
}

/// A patient's record with their care team.
#[utoipa::path(get, path = "/api/v1/patients/{id}", tag = "patients", params(("id" = Uuid, Path, description = "Patient id")),
    responses((status = 200, description = "The patient"), (status = 404, description = "No such patient, or not yours to see", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_patient(auth: AuthorizedPatientRead) -> Result<HttpResponse> {
    let services = auth.services;
    let id = auth.id;
    let (p, team) = auth
        .loaded
        .filter(|(p, _)| p.deleted_at.is_none() || auth.caller.role() == Role::Admin)
        .ok_or_else(|| Error::new(Code::NotFound))?;
    // Fail closed: no audit event, no data.
    services
        .auth
        .audit(vec![auth.caller.ctx.event("patient.read", outcome::SUCCESS).resource("patient", id).patient(id)])
        .await?;
    let mut v = patient_json(&p);
    v["care_team"] = serde_json::to_value(team).unwrap_or_default();
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(v))
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
    let id = path_id(&auth.resource_id)?;
    let current = visible(&services, &auth.caller, id).await?;
    if current.deleted_at.is_some() {
        return Err(Error::with_message(Code::Conflict, "The record is deleted; restore it first.").into());
    }
    let body = object(body)?;
    if auth.caller.role() == Role::Patient
        && let Some(k) = body.keys().find(|k| !PATIENT_FIELDS.contains(&k.as_str()))
    {
        return Err(Error::with_message(
            Code::Forbidden,
            format!("Patients change only their contact details; ask the clinic to change {k}."),
        )
        .into());
    }
    let mut f = PatientFields::from(&current);
    apply(&services, &mut f, &body).await?;
    patients::update(&services.db, id, &f).await.map_err(patient_error)?;
    let fields: Vec<&str> = body.keys().map(String::as_str).collect();
    services
        .auth
        .audit(vec![
            auth.caller
                .ctx
                .event("patient.update", outcome::SUCCESS)
                .resource("patient", id)
                .patient(id)
                .detail(format!("fields: {}", fields.join(","))),
        ])
        .await?;
    let p = patients::get(&services.db, id).await.map_err(store)?.ok_or_else(|| Error::new(Code::NotFound))?;
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(patient_json(&p)))
}

/// Soft-delete a record (administrators): hidden from everyone else, restorable, audited.
#[utoipa::path(delete, path = "/api/v1/patients/{id}", tag = "patients", params(("id" = Uuid, Path, description = "Patient id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such patient", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(auth: Authorized<DeletePatient>, services: web::Data<Services>) -> Result<HttpResponse> {
    set_deleted(auth.caller, &services, &auth.resource_id, true).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Restore a soft-deleted record (administrators).
#[utoipa::path(post, path = "/api/v1/patients/{id}/restore", tag = "patients", params(("id" = Uuid, Path, description = "Patient id")),
    responses((status = 200, description = "The record"), (status = 404, description = "No such patient", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn restore(auth: Authorized<RestorePatient>, services: web::Data<Services>) -> Result<HttpResponse> {
    let p = set_deleted(auth.caller, &services, &auth.resource_id, false).await?;
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(patient_json(&p)))
}

async fn set_deleted(
    caller: Caller,
    services: &Services,
    id: &str,
    delete: bool,
) -> std::result::Result<PatientRow, Error> {
    let id = path_id(id)?;
    let current = visible(services, &caller, id).await?;
    let (action, at) = if delete { ("patient.delete", Some(now_ms())) } else { ("patient.restore", None) };
    if current.deleted_at.is_some() != delete {
        patients::set_deleted(&services.db, id, at).await.map_err(store)?;
    }
    services.auth.audit(vec![caller.ctx.event(action, outcome::SUCCESS).resource("patient", id).patient(id)]).await?;
    patients::get(&services.db, id).await.map_err(store)?.ok_or_else(|| Error::new(Code::NotFound))
}

/// A user record: one's own, or any for an administrator.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "The account"), (status = 404, description = "No such account, or not yours to see", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_user(auth: Authorized<ReadUser>, services: web::Data<Services>) -> Result<HttpResponse> {
    let id = path_id(&auth.resource_id)?;
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
    req: actix_web::HttpRequest,
) -> Result<HttpResponse> {
    let q: AccessLogQuery = super::authn::query(&req)?;
    let limit = page::limit(q.limit)?;
    let before = page::decode_seq(q.cursor.as_deref())?;
    let entries = trail::access_log(&services.db, auth.caller.user(), before, limit).await.map_err(store)?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(page::page(entries, limit, |e| e.seq.to_string())))
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
