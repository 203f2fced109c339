//! The clinician directory: `/api/v1/clinicians` (filter by specialization, department, staff
//! role, availability), one clinician's profile with hours and absences, their free slots, and
//! the changes a clinician (or an administrator) makes to their profile, hours and absences.

use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::Services;
use careport_actors::door::PageRequest;
use careport_actors::door::clinicians::{ClinicianQuery, NewAbsence, ProfileChange};
use careport_actors::door::views::{Hours, Specialization};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::authn::{Authorized, JsonBody, ListClinicians, ReadClinician, WriteClinician, path_id};
use super::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

/// `GET /api/v1/clinicians` query.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// A top-level cancer type id.
    pub specialization: Option<String>,
    pub department: Option<String>,
    /// doctor or nurse.
    pub staff_role: Option<String>,
    /// `true`: with a free slot in the next 7 days; a date `YYYY-MM-DD`: with a free slot that
    /// day (in the clinic's time zone).
    pub available: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The clinician directory.
#[utoipa::path(get, path = "/api/v1/clinicians", tag = "clinicians", params(ListQuery),
    responses((status = 200, description = "`{items, next_cursor}`")), security(("bearer" = [])))]
pub async fn list(
    auth: Authorized<ListClinicians>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let q: ListQuery = super::authn::query(&req)?;
    let query = ClinicianQuery {
        specialization: q.specialization,
        department: q.department,
        staff_role: q.staff_role,
        available: q.available,
        page: PageRequest { limit: q.limit, cursor: q.cursor },
    };
    Ok(HttpResponse::Ok().json(services.clinicians().list(auth.pass, query).await?))
}

/// One clinician: profile, specializations, weekly hours and absences of the next 90 days.
#[utoipa::path(get, path = "/api/v1/clinicians/{id}", tag = "clinicians", params(("id" = Uuid, Path, description = "Clinician id")),
    responses((status = 200, description = "The clinician"), (status = 404, description = "No such clinician", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(auth: Authorized<ReadClinician>, services: web::Data<Services>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(services.clinicians().read(auth.pass).await?))
}

/// `GET /api/v1/clinicians/{id}/slots` query.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SlotsQuery {
    /// RFC 3339 start of the window.
    pub from: String,
    /// RFC 3339 end of the window (at most `clinic.max_slot_window_days` after `from`).
    pub to: String,
}

/// Free slots: working hours minus absences and bookings, from now on.
#[utoipa::path(get, path = "/api/v1/clinicians/{id}/slots", tag = "clinicians",
    params(("id" = Uuid, Path, description = "Clinician id"), SlotsQuery),
    responses((status = 200, description = "`{items: [{starts_at, ends_at}]}`"), (status = 404, description = "No such clinician", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn free_slots(
    auth: Authorized<ReadClinician>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let q: SlotsQuery = super::authn::query(&req)?;
    Ok(HttpResponse::Ok().json(services.clinicians().free_slots(auth.pass, &q.from, &q.to).await?))
}

/// `PATCH /api/v1/clinicians/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    pub bio: Option<String>,
    /// Appointment length, 5 to 240 minutes.
    pub slot_minutes: Option<i64>,
    /// Top-level cancer types; exactly one `is_primary` when any are given.
    pub specializations: Option<Vec<SpecializationBody>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecializationBody {
    pub cancer_type_id: String,
    #[serde(default)]
    pub is_primary: bool,
}

/// Change a clinician's bio, appointment length or specializations (the clinician, or an
/// administrator).
#[utoipa::path(patch, path = "/api/v1/clinicians/{id}", tag = "clinicians", request_body = ProfileBody,
    params(("id" = Uuid, Path, description = "Clinician id")),
    responses((status = 200, description = "The clinician"), (status = 404, description = "No such clinician", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    auth: Authorized<WriteClinician>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b = body.parse::<ProfileBody>()?;
    let change = ProfileChange {
        bio: b.bio,
        slot_minutes: b.slot_minutes,
        specializations: b.specializations.map(|list| {
            list.into_iter()
                .map(|s| Specialization { cancer_type_id: s.cancer_type_id, is_primary: s.is_primary })
                .collect()
        }),
    };
    Ok(HttpResponse::Ok().json(services.clinicians().update(auth.pass, change).await?))
}

/// `PUT /api/v1/clinicians/{id}/hours`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoursBody {
    /// The whole week: `{weekday (1 = Monday … 7), start_minute, end_minute}` in the clinic's
    /// local time. Spans of one day must not overlap.
    pub hours: Vec<HoursItem>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoursItem {
    pub weekday: i64,
    pub start_minute: i64,
    pub end_minute: i64,
}

/// Replace a clinician's weekly working hours. Existing appointments are kept.
#[utoipa::path(put, path = "/api/v1/clinicians/{id}/hours", tag = "clinicians", request_body = HoursBody,
    params(("id" = Uuid, Path, description = "Clinician id")),
    responses((status = 200, description = "The hours"), (status = 422, description = "Overlapping hours", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_hours(
    auth: Authorized<WriteClinician>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b = body.parse::<HoursBody>()?;
    let hours = b
        .hours
        .iter()
        .map(|h| Hours { weekday: h.weekday, start_minute: h.start_minute, end_minute: h.end_minute })
        .collect();
    Ok(HttpResponse::Ok().json(services.clinicians().set_hours(auth.pass, hours).await?))
}

/// `POST /api/v1/clinicians/{id}/exceptions`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExceptionBody {
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339, after `starts_at`, at most a year later.
    pub ends_at: String,
    /// leave, holiday, training or other.
    pub kind: String,
    #[serde(default)]
    pub note: String,
}

/// Record an absence: no slots are offered inside it. Appointments already booked in it are
/// kept (the answer lists them, to be moved).
#[utoipa::path(post, path = "/api/v1/clinicians/{id}/exceptions", tag = "clinicians", request_body = ExceptionBody,
    params(("id" = Uuid, Path, description = "Clinician id")),
    responses((status = 201, description = "The absence, and appointments inside it")), security(("bearer" = [])))]
pub async fn add_exception(
    auth: Authorized<WriteClinician>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b = body.parse::<ExceptionBody>()?;
    let absence = NewAbsence { starts_at: b.starts_at, ends_at: b.ends_at, kind: b.kind, note: b.note };
    Ok(HttpResponse::Created().json(services.clinicians().add_absence(auth.pass, absence).await?))
}

/// Remove an absence.
#[utoipa::path(delete, path = "/api/v1/clinicians/{id}/exceptions/{exception_id}", tag = "clinicians",
    params(("id" = Uuid, Path, description = "Clinician id"), ("exception_id" = Uuid, Path, description = "Absence id")),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such absence", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_exception(
    auth: Authorized<WriteClinician>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let absence = path_id(&req, "exception_id")?;
    services.clinicians().remove_absence(auth.pass, absence).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let r = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/v1/clinicians").get(list))
        .service(r("/api/v1/clinicians/{id}").get(get).patch(update))
        .service(r("/api/v1/clinicians/{id}/slots").get(free_slots))
        .service(r("/api/v1/clinicians/{id}/hours").put(set_hours))
        .service(r("/api/v1/clinicians/{id}/exceptions").post(add_exception))
        .service(r("/api/v1/clinicians/{id}/exceptions/{exception_id}").delete(delete_exception));
}
