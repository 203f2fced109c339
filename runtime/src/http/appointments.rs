//! Appointments: booking for a patient (`POST /api/v1/patients/{id}/appointments`), the list
//! (`GET /api/v1/appointments`), one appointment, rescheduling and outcomes (`PATCH`), and
//! cancelling with a reason. Times are RFC 3339; they are stored in UTC.

use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::Services;
use careport_actors::door::PageRequest;
use careport_actors::door::appointments::{AppointmentChange, AppointmentQuery, NewAppointment};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::authn::{
    Authorized, BookForPatient, CancelAppointment, JsonBody, ListAppointments, ReadAppointment, WriteAppointment,
};
use super::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

fn ok_no_store() -> actix_web::HttpResponseBuilder {
    let mut res = HttpResponse::Ok();
    res.insert_header(("cache-control", "no-store"));
    res
}

/// `POST /api/v1/patients/{id}/appointments`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookBody {
    pub clinician_id: Uuid,
    /// RFC 3339; must be the start of one of the clinician's free slots.
    pub starts_at: String,
    /// What the visit is for (seen by the care team; never put in e-mails).
    #[serde(default)]
    pub reason: String,
}

/// Book an appointment in a free slot: a patient for themself, a clinician for a patient they
/// may book for, an administrator for anyone. Two bookings of one slot: one wins, the other
/// gets 409 `slot_taken`. Reminder e-mails are queued for `clinic.reminder_hours_before`.
#[utoipa::path(post, path = "/api/v1/patients/{id}/appointments", tag = "appointments", request_body = BookBody,
    params(("id" = Uuid, Path, description = "Patient id")),
    responses((status = 201, description = "Booked"), (status = 409, description = "Slot taken or clinician away", body = super::error::ErrorBody),
        (status = 422, description = "In the past or outside working hours", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn book(
    auth: Authorized<BookForPatient>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b = body.parse::<BookBody>()?;
    let booking = NewAppointment { clinician_id: b.clinician_id, starts_at: b.starts_at, reason: b.reason };
    let booked = services.appointments().book(auth.pass, booking).await?;
    Ok(HttpResponse::Created().insert_header(("cache-control", "no-store")).json(booked))
}

/// `GET /api/v1/appointments` query.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// scheduled, completed, cancelled or no_show.
    pub status: Option<String>,
    pub patient_id: Option<Uuid>,
    pub clinician_id: Option<Uuid>,
    /// RFC 3339: appointments starting at or after.
    pub from: Option<String>,
    /// RFC 3339: appointments starting before.
    pub to: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Appointments the caller may see, by start time: a patient's own; a doctor's own and their
/// assigned patients'; a nurse's own and their department's; all for an administrator.
#[utoipa::path(get, path = "/api/v1/appointments", tag = "appointments", params(ListQuery),
    responses((status = 200, description = "`{items, next_cursor}`")), security(("bearer" = [])))]
pub async fn list(
    auth: Authorized<ListAppointments>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let q: ListQuery = super::authn::query(&req)?;
    let query = AppointmentQuery {
        status: q.status,
        patient_id: q.patient_id,
        clinician_id: q.clinician_id,
        from: q.from,
        to: q.to,
        page: PageRequest { limit: q.limit, cursor: q.cursor },
    };
    Ok(ok_no_store().json(services.appointments().list(auth.pass, query).await?))
}

/// One appointment.
#[utoipa::path(get, path = "/api/v1/appointments/{id}", tag = "appointments", params(("id" = Uuid, Path, description = "Appointment id")),
    responses((status = 200, description = "The appointment"), (status = 404, description = "No such appointment, or not yours", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(auth: Authorized<ReadAppointment>, services: web::Data<Services>) -> Result<HttpResponse> {
    Ok(ok_no_store().json(services.appointments().read(auth.pass).await?))
}

/// `PATCH /api/v1/appointments/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    /// Move to another free slot of the same clinician (RFC 3339).
    pub starts_at: Option<String>,
    /// completed or no_show (clinicians and administrators), after the appointment has started.
    pub status: Option<String>,
    pub reason: Option<String>,
}

/// Reschedule an appointment, or record its outcome.
#[utoipa::path(patch, path = "/api/v1/appointments/{id}", tag = "appointments", request_body = UpdateBody,
    params(("id" = Uuid, Path, description = "Appointment id")),
    responses((status = 200, description = "The appointment"), (status = 409, description = "Not scheduled, or the slot is taken", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    auth: Authorized<WriteAppointment>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b = body.parse::<UpdateBody>()?;
    let change = AppointmentChange { starts_at: b.starts_at, status: b.status, reason: b.reason };
    Ok(ok_no_store().json(services.appointments().update(auth.pass, change).await?))
}

/// `POST /api/v1/appointments/{id}/cancel`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Why (required, at most 500 characters).
    pub reason: String,
}

/// Cancel a scheduled appointment with a reason; its slot is free again at once.
#[utoipa::path(post, path = "/api/v1/appointments/{id}/cancel", tag = "appointments", request_body = CancelBody,
    params(("id" = Uuid, Path, description = "Appointment id")),
    responses((status = 200, description = "Cancelled"), (status = 409, description = "Not scheduled", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel(
    auth: Authorized<CancelAppointment>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b = body.parse::<CancelBody>()?;
    Ok(ok_no_store().json(services.appointments().cancel(auth.pass, &b.reason).await?))
}

/// Register the routes.
pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let r = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/v1/patients/{id}/appointments").post(book))
        .service(r("/api/v1/appointments").get(list))
        .service(r("/api/v1/appointments/{id}").get(get).patch(update))
        .service(r("/api/v1/appointments/{id}/cancel").post(cancel));
}
