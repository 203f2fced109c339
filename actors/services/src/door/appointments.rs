//! Appointments: booking for a patient, the list, one appointment, rescheduling and outcomes,
//! cancelling with a reason. Times are stored in UTC milliseconds and shown as RFC 3339.
//!
//! An appointment of a soft-deleted patient is invisible everywhere, as the record is to
//! everyone but an administrator: by id it answers 404 to every caller, and lists leave it out.

use careport_domain::time::now_ms;
use careport_domain::{Code, Error, Role};
use careport_store::appointments::{self, AppointmentRow};
use careport_store::patients;
use uuid::Uuid;

use super::page::{self, Page, PageRequest};
use super::store_err;
use super::views::Appointment;
use crate::Services;
use crate::access::{
    BookForPatient, CancelAppointment, ListAppointments, Pass, ReadAppointment, WriteAppointment, scope,
};
use crate::audit::{EventExt, outcome};
use crate::clinic::{Booking, parse_instant};
use crate::identity::Caller;

/// The appointment operations.
pub struct Appointments<'a>(pub(crate) &'a Services);

/// A booking request.
#[derive(Debug, Clone)]
pub struct NewAppointment {
    pub clinician_id: Uuid,
    /// RFC 3339; must be the start of one of the clinician's free slots.
    pub starts_at: String,
    /// What the visit is for (seen by the care team; never put in e-mails).
    pub reason: String,
}

/// What an appointment list asks for.
#[derive(Debug, Clone, Default)]
pub struct AppointmentQuery {
    pub status: Option<String>,
    pub patient_id: Option<Uuid>,
    pub clinician_id: Option<Uuid>,
    /// RFC 3339: appointments starting at or after.
    pub from: Option<String>,
    /// RFC 3339: appointments starting before.
    pub to: Option<String>,
    pub page: PageRequest,
}

/// A change to an appointment: a move or an outcome.
#[derive(Debug, Clone, Default)]
pub struct AppointmentChange {
    pub starts_at: Option<String>,
    pub status: Option<String>,
    pub reason: Option<String>,
}

fn reason_text(field: &str, v: &str, max: usize) -> Result<String, Error> {
    let v = v.trim();
    if v.chars().count() > max || v.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::with_message(
            Code::InvalidValue,
            format!("{field} must be at most {max} characters of text."),
        ));
    }
    Ok(v.to_owned())
}

async fn audit(services: &Services, caller: &Caller, action: &str, a: &AppointmentRow) -> Result<(), Error> {
    services
        .audit
        .one(caller.ctx.event(action, outcome::SUCCESS).resource("appointment", a.id).patient(a.patient_id))
        .await
}

impl Appointments<'_> {
    /// The appointment `id`, unless it or its patient's record is gone (404).
    async fn load(&self, id: Uuid) -> Result<AppointmentRow, Error> {
        let a =
            appointments::get(&self.0.db, id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
        let patient = patients::get(&self.0.db, a.patient_id).await.map_err(store_err)?;
        if patient.is_none_or(|p| p.deleted_at.is_some()) {
            return Err(Error::new(Code::NotFound));
        }
        Ok(a)
    }

    /// Book an appointment in a free slot: a patient for themself, a clinician for a patient
    /// they may book for, an administrator for anyone. Two bookings of one slot: one wins, the
    /// other gets 409 `slot_taken`. Reminder e-mails are queued.
    pub async fn book(&self, pass: Pass<BookForPatient>, b: NewAppointment) -> Result<Appointment, Error> {
        let (caller, patient) = (pass.caller(), pass.id());
        let record = patients::get(&self.0.db, patient).await.map_err(store_err)?;
        if record.is_none_or(|p| p.deleted_at.is_some()) {
            return Err(Error::new(Code::NotFound));
        }
        let starts_at = parse_instant("starts_at", &b.starts_at)?;
        let reason = reason_text("reason", &b.reason, 500)?;
        // A patient booking for themself is limited (rate, and appointments held); the care team
        // and administrators book what care needs.
        if caller.user() == patient {
            self.0.clinic.check_own_booking(patient, b.clinician_id).await?;
        }
        let booked = self
            .0
            .clinic
            .book(Booking { patient, clinician: b.clinician_id, starts_at, reason, booked_by: caller.user() })
            .await
            .map_err(|e| {
                // An unknown clinician is a bad value in the body, not a missing path resource.
                if e.code() == Code::NotFound {
                    Error::with_message(Code::InvalidValue, "clinician_id names no active clinician.")
                } else {
                    e
                }
            })?;
        audit(self.0, caller, "appointment.book", &booked).await?;
        Ok(Appointment::from(&booked))
    }

    /// Appointments the caller may see, by start time: a patient's own; a doctor's own and
    /// their assigned patients'; a nurse's own and their department's; all for an
    /// administrator. One audit event names the patients whose appointments were returned.
    pub async fn list(&self, pass: Pass<ListAppointments>, q: AppointmentQuery) -> Result<Page<Appointment>, Error> {
        let caller = pass.caller();
        let limit = q.page.limit()?;
        let as_query = |e: Error| Error::with_message(Code::InvalidQuery, e.message().to_owned());
        let from = q.from.as_deref().map(|f| parse_instant("from", f)).transpose().map_err(as_query)?;
        let to = q.to.as_deref().map(|t| parse_instant("to", t)).transpose().map_err(as_query)?;
        if let Some(s) = q.status.as_deref()
            && !appointments::STATUSES.contains(&s)
        {
            return Err(Error::with_message(
                Code::InvalidQuery,
                "status must be scheduled, completed, cancelled or no_show.",
            ));
        }
        let after = match q.page.cursor.as_deref() {
            None => None,
            Some(c) => {
                let pos = page::decode(c)?;
                let bad = || Error::with_message(Code::InvalidQuery, "cursor is not valid; use next_cursor as given.");
                let (start, id) = pos.split_once('/').ok_or_else(bad)?;
                Some((start.parse::<i64>().map_err(|_| bad())?, id.parse::<Uuid>().map_err(|_| bad())?))
            }
        };
        let filter = appointments::ListFilter {
            status: q.status,
            patient: q.patient_id,
            clinician: q.clinician_id,
            from: from.unwrap_or(i64::MIN),
            to: to.unwrap_or(i64::MAX),
        };
        let rows = appointments::list(&self.0.db, &scope::appointments(caller), &filter, after, limit)
            .await
            .map_err(store_err)?;
        let mut patients: Vec<String> = rows.iter().map(|a| a.patient_id.to_string()).collect();
        patients.sort_unstable();
        patients.dedup();
        self.0
            .audit
            .one(caller.ctx.event("appointment.list", outcome::SUCCESS).detail(format!(
                "{} appointments of patients: {}",
                rows.len(),
                patients.join(",")
            )))
            .await?;
        Ok(Page::of(rows, limit, |a| format!("{}/{}", a.starts_at, a.id)).map(|a| Appointment::from(&a)))
    }

    /// One appointment.
    pub async fn read(&self, pass: Pass<ReadAppointment>) -> Result<Appointment, Error> {
        let a = self.load(pass.id()).await?;
        audit(self.0, pass.caller(), "appointment.read", &a).await?;
        Ok(Appointment::from(&a))
    }

    /// Reschedule an appointment (another free slot of the same clinician), or record its
    /// outcome (completed or no-show; the clinic, after it started).
    pub async fn update(&self, pass: Pass<WriteAppointment>, b: AppointmentChange) -> Result<Appointment, Error> {
        let caller = pass.caller();
        let a = self.load(pass.id()).await?;
        if b.reason.is_some() {
            return Err(Error::with_message(
                Code::InvalidValue,
                "The reason is set at booking; cancel and book again.",
            ));
        }
        match (b.starts_at, b.status) {
            (Some(_), Some(_)) | (None, None) => {
                Err(Error::with_message(Code::InvalidValue, "Send either starts_at (to move) or status (an outcome)."))
            }
            (Some(start), None) => {
                let starts_at = parse_instant("starts_at", &start)?;
                let moved = self.0.clinic.reschedule(&a, starts_at).await?;
                audit(self.0, caller, "appointment.reschedule", &a).await?;
                Ok(Appointment::from(&moved))
            }
            (None, Some(status)) => {
                if !["completed", "no_show"].contains(&status.as_str()) {
                    return Err(Error::with_message(
                        Code::InvalidValue,
                        "status must be completed or no_show; cancel with POST …/cancel.",
                    ));
                }
                if caller.role() == Role::Patient {
                    return Err(Error::with_message(Code::Forbidden, "The clinic records the outcome of a visit."));
                }
                if a.starts_at > now_ms() {
                    return Err(Error::with_message(Code::Conflict, "The appointment has not started yet."));
                }
                if !appointments::set_status(&self.0.db, a.id, &status, None).await.map_err(store_err)? {
                    return Err(Error::new(Code::AppointmentNotScheduled));
                }
                audit(self.0, caller, &format!("appointment.{status}"), &a).await?;
                Ok(Appointment::from(&self.load(a.id).await?))
            }
        }
    }

    /// Cancel a scheduled appointment with a reason; its slot is free again at once.
    pub async fn cancel(&self, pass: Pass<CancelAppointment>, reason: &str) -> Result<Appointment, Error> {
        let reason = reason_text("reason", reason, 500)?;
        if reason.is_empty() {
            return Err(Error::with_message(Code::InvalidValue, "reason is required."));
        }
        let a = self.load(pass.id()).await?;
        if !appointments::set_status(&self.0.db, a.id, "cancelled", Some(&reason)).await.map_err(store_err)? {
            return Err(Error::new(Code::AppointmentNotScheduled));
        }
        audit(self.0, pass.caller(), "appointment.cancel", &a).await?;
        Ok(Appointment::from(&self.load(a.id).await?))
    }
}
