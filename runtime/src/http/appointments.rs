//! Appointments: booking for a patient (`POST /api/v1/patients/{id}/appointments`), the list
//! (`GET /api/v1/appointments`), one appointment, rescheduling and outcomes (`PATCH`), and
//! cancelling with a reason. Times are RFC 3339; they are stored in UTC.

use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::Services;
use careport_actors::audit::{EventExt, outcome};
use careport_actors::clinic::{Booking, parse_instant, rfc3339};
use careport_domain::{Code, Error, Role};
use careport_policy::StaffRole;
use careport_store::appointments::{self, AppointmentRow, Scope};
use careport_store::patients;
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::authn::{
    Authorized, BookForPatient, CancelAppointment, JsonBody, ListAppointments, ReadAppointment, WriteAppointment,
};
use super::error::ApiError;
use super::page::{self, store};

type Result<T> = std::result::Result<T, ApiError>;

/// An appointment as the API shows it.
pub fn appointment_json(a: &AppointmentRow) -> Value {
    serde_json::json!({
        "id": a.id,
        "patient_id": a.patient_id,
        "clinician_id": a.clinician_id,
        "starts_at": rfc3339(a.starts_at),
        "ends_at": rfc3339(a.ends_at),
        "status": a.status,
        "reason": a.reason,
        "cancel_reason": a.cancel_reason,
        "booked_by": a.booked_by,
        "created_at": rfc3339(a.created_at),
        "updated_at": rfc3339(a.updated_at),
    })
}

/// Write an appointment's audit event and wait for it (fail closed).
async fn audit(
    services: &Services,
    caller: &careport_actors::Caller,
    action: &str,
    appointment: Uuid,
    patient: Uuid,
) -> std::result::Result<(), Error> {
    services
        .auth
        .audit(vec![caller.ctx.event(action, outcome::SUCCESS).resource("appointment", appointment).patient(patient)])
        .await
}

fn path_id(id: &str) -> std::result::Result<Uuid, Error> {
    Uuid::parse_str(id).map_err(|_| Error::new(Code::NotFound))
}

fn reason_text(field: &str, v: &str, max: usize) -> std::result::Result<String, Error> {
    let v = v.trim();
    if v.chars().count() > max || v.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::with_message(
            Code::InvalidValue,
            format!("{field} must be at most {max} characters of text."),
        ));
    }
    Ok(v.to_owned())
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
    let patient = path_id(&auth.resource_id)?;
    let b = body.parse::<BookBody>()?;
    let record = patients::get(&services.db, patient).await.map_err(store)?;
    if record.is_none_or(|p| p.deleted_at.is_some()) {
        return Err(Error::new(Code::NotFound).into());
    }
    let starts_at = parse_instant("starts_at", &b.starts_at)?;
    let reason = reason_text("reason", &b.reason, 500)?;
    let booked = services
        .clinic
        .book(Booking { patient, clinician: b.clinician_id, starts_at, reason, booked_by: auth.caller.user() })
        .await
        .map_err(|e| {
            // An unknown clinician is a bad value in the body, not a missing path resource.
            if e.code() == Code::NotFound {
                Error::with_message(Code::InvalidValue, "clinician_id names no active clinician.")
            } else {
                e
            }
        })?;
    audit(&services, &auth.caller, "appointment.book", booked.id, patient).await?;
    Ok(HttpResponse::Created().insert_header(("cache-control", "no-store")).json(appointment_json(&booked)))
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
    let limit = page::limit(q.limit)?;
    let as_query = |e: Error| Error::with_message(Code::InvalidQuery, e.message().to_owned());
    let from = q.from.as_deref().map(|f| parse_instant("from", f)).transpose().map_err(as_query)?;
    let to = q.to.as_deref().map(|t| parse_instant("to", t)).transpose().map_err(as_query)?;
    if let Some(s) = q.status.as_deref()
        && !appointments::STATUSES.contains(&s)
    {
        return Err(Error::with_message(
            Code::InvalidQuery,
            "status must be scheduled, completed, cancelled or no_show.",
        )
        .into());
    }
    let after = match q.cursor.as_deref() {
        None => None,
        Some(c) => {
            let pos = page::decode(c)?;
            let bad = || Error::with_message(Code::InvalidQuery, "cursor is not valid; use next_cursor as given.");
            let (start, id) = pos.split_once('/').ok_or_else(bad)?;
            Some((start.parse::<i64>().map_err(|_| bad())?, id.parse::<Uuid>().map_err(|_| bad())?))
        }
    };
    let claims = auth.caller.token.claims();
    let scope = match (claims.role, claims.staff_role, &claims.department) {
        (Role::Admin, _, _) => Scope::All,
        (Role::Patient, _, _) => Scope::Own(claims.user),
        (Role::Clinician, Some(StaffRole::Doctor), _) => Scope::Doctor(claims.user),
        (Role::Clinician, Some(StaffRole::Nurse), Some(d)) => Scope::Nurse(claims.user, d.clone()),
        (Role::Clinician, Some(StaffRole::Nurse), None) => Scope::Nurse(claims.user, String::new()),
        (Role::Clinician, None, _) => Scope::Nothing,
    };
    let filter = appointments::ListFilter {
        status: q.status,
        patient: q.patient_id,
        clinician: q.clinician_id,
        from: from.unwrap_or(i64::MIN),
        to: to.unwrap_or(i64::MAX),
    };
    let rows = appointments::list(&services.db, &scope, &filter, after, limit).await.map_err(store)?;
    let items: Vec<Value> = rows.iter().map(appointment_json).collect();
    let next =
        rows.last().filter(|_| rows.len() as i64 == limit).map(|a| page::encode(&format!("{}/{}", a.starts_at, a.id)));
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(serde_json::json!({ "items": items, "next_cursor": next })))
}

async fn load(services: &Services, id: &str) -> std::result::Result<AppointmentRow, Error> {
    let id = path_id(id)?;
    appointments::get(&services.db, id).await.map_err(store)?.ok_or_else(|| Error::new(Code::NotFound))
}

/// One appointment.
#[utoipa::path(get, path = "/api/v1/appointments/{id}", tag = "appointments", params(("id" = Uuid, Path, description = "Appointment id")),
    responses((status = 200, description = "The appointment"), (status = 404, description = "No such appointment, or not yours", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(auth: Authorized<ReadAppointment>, services: web::Data<Services>) -> Result<HttpResponse> {
    let a = load(&services, &auth.resource_id).await?;
    audit(&services, &auth.caller, "appointment.read", a.id, a.patient_id).await?;
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(appointment_json(&a)))
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
    let a = load(&services, &auth.resource_id).await?;
    if b.reason.is_some() {
        return Err(
            Error::with_message(Code::InvalidValue, "The reason is set at booking; cancel and book again.").into()
        );
    }
    match (b.starts_at, b.status) {
        (Some(_), Some(_)) | (None, None) => {
            Err(Error::with_message(Code::InvalidValue, "Send either starts_at (to move) or status (an outcome).")
                .into())
        }
        (Some(start), None) => {
            let starts_at = parse_instant("starts_at", &start)?;
            let moved = services.clinic.reschedule(&a, starts_at).await?;
            audit(&services, &auth.caller, "appointment.reschedule", a.id, a.patient_id).await?;
            Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(appointment_json(&moved)))
        }
        (None, Some(status)) => {
            if !["completed", "no_show"].contains(&status.as_str()) {
                return Err(Error::with_message(
                    Code::InvalidValue,
                    "status must be completed or no_show; cancel with POST …/cancel.",
                )
                .into());
            }
            if auth.caller.role() == Role::Patient {
                return Err(Error::with_message(Code::Forbidden, "The clinic records the outcome of a visit.").into());
            }
            if a.starts_at > careport_domain::time::now_ms() {
                return Err(Error::with_message(Code::Conflict, "The appointment has not started yet.").into());
            }
            if !appointments::set_status(&services.db, a.id, &status, None).await.map_err(store)? {
                return Err(Error::new(Code::AppointmentNotScheduled).into());
            }
            audit(&services, &auth.caller, &format!("appointment.{status}"), a.id, a.patient_id).await?;
            let a = load(&services, &auth.resource_id).await?;
            Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(appointment_json(&a)))
        }
    }
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
    let reason = reason_text("reason", &b.reason, 500)?;
    if reason.is_empty() {
        return Err(Error::with_message(Code::InvalidValue, "reason is required.").into());
    }
    let a = load(&services, &auth.resource_id).await?;
    if !appointments::set_status(&services.db, a.id, "cancelled", Some(&reason)).await.map_err(store)? {
        return Err(Error::new(Code::AppointmentNotScheduled).into());
    }
    audit(&services, &auth.caller, "appointment.cancel", a.id, a.patient_id).await?;
    let a = load(&services, &auth.resource_id).await?;
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(appointment_json(&a)))
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
