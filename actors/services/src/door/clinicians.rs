//! The clinician directory: the list (filter by specialization, department, staff role,
//! availability), one clinician's profile with hours and absences, their free slots, and the
//! changes a clinician (or an administrator) makes to their profile, hours and absences. Every
//! change drops the clinician's cached hours and profile at once, on every node.

use careport_domain::time::now_ms;
use careport_domain::{Code, Error};
use careport_store::clinicians::{self, ClinicianRow, Exception, Hours, Specialization};
use careport_store::reference;
use serde::Serialize;
use uuid::Uuid;

use super::page::{self, Page, PageRequest};
use super::store_err;
use super::views::{Absence, Clinician, Schedule, rfc3339};
use crate::Services;
use crate::access::{ListClinicians, Pass, ReadClinician, WriteClinician};
use crate::audit::{EventExt, outcome};
use crate::clinic::{parse_instant, slots};

const DAY_MS: i64 = 86_400_000;

/// The clinician directory's operations.
pub struct Clinicians<'a>(pub(crate) &'a Services);

/// What a directory list asks for.
#[derive(Debug, Clone, Default)]
pub struct ClinicianQuery {
    /// A top-level cancer type id.
    pub specialization: Option<String>,
    pub department: Option<String>,
    /// doctor or nurse.
    pub staff_role: Option<String>,
    /// `true` (a free slot in the next 7 days), `false`, or a date `YYYY-MM-DD`.
    pub available: Option<String>,
    pub page: PageRequest,
}

/// A profile change. Absent fields are kept.
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    pub bio: Option<String>,
    pub slot_minutes: Option<i64>,
    /// Top-level cancer types, exactly one primary (an empty list clears them).
    pub specializations: Option<Vec<Specialization>>,
}

/// A new absence.
#[derive(Debug, Clone, Default)]
pub struct NewAbsence {
    pub starts_at: String,
    pub ends_at: String,
    /// leave, holiday, training or other.
    pub kind: String,
    pub note: String,
}

/// Free slots between two instants.
#[derive(Debug, Clone, Serialize)]
pub struct FreeSlots {
    pub items: Vec<Slot>,
    pub time_zone: String,
}

/// One free slot.
#[derive(Debug, Clone, Serialize)]
pub struct Slot {
    pub starts_at: String,
    pub ends_at: String,
}

/// A clinician's weekly hours.
#[derive(Debug, Clone, Serialize)]
pub struct WeeklyHours {
    pub items: Vec<Hours>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::with_message(Code::InvalidValue, message)
}

impl Clinicians<'_> {
    async fn active(&self, id: Uuid) -> Result<ClinicianRow, Error> {
        self.0.clinic.clinician(id).await?.ok_or_else(|| Error::new(Code::NotFound))
    }

    async fn audit(&self, pass_caller: &crate::Caller, action: &str, id: Uuid) -> Result<(), Error> {
        self.0.audit.one(pass_caller.ctx.event(action, outcome::SUCCESS).resource("clinician", id)).await
    }

    /// Active clinicians, by id, filtered. With an availability filter, pages are filled from
    /// further rows until full.
    pub async fn list(&self, _: Pass<ListClinicians>, q: ClinicianQuery) -> Result<Page<Clinician>, Error> {
        let limit = q.page.limit()?;
        let after = page::decode_uuid(q.page.cursor.as_deref())?;
        let window = match q.available.as_deref() {
            None | Some("false") => None,
            Some("true") => Some((now_ms(), now_ms() + 7 * DAY_MS)),
            Some(day) => {
                let d: jiff::civil::Date = day.parse().map_err(|_| {
                    Error::with_message(Code::InvalidQuery, "available must be true, false or a date YYYY-MM-DD.")
                })?;
                let tz = self.0.clinic.time_zone().clone();
                let start =
                    d.to_zoned(tz.clone()).map_err(|_| Error::new(Code::InvalidQuery))?.timestamp().as_millisecond();
                let end = d
                    .tomorrow()
                    .and_then(|t| t.to_zoned(tz))
                    .map_err(|_| Error::new(Code::InvalidQuery))?
                    .timestamp()
                    .as_millisecond();
                Some((start, end))
            }
        };
        if let Some(s) = q.staff_role.as_deref()
            && !["doctor", "nurse"].contains(&s)
        {
            return Err(Error::with_message(Code::InvalidQuery, "staff_role must be doctor or nurse."));
        }
        let filter = clinicians::ListFilter {
            specialization: q.specialization,
            department: q.department,
            staff_role: q.staff_role,
        };
        let specs = clinicians::all_specializations(&self.0.db).await.map_err(store_err)?;
        let mut items = Vec::new();
        let mut cursor = after;
        loop {
            let rows = clinicians::list(&self.0.db, &filter, cursor, limit).await.map_err(store_err)?;
            let exhausted = (rows.len() as i64) < limit;
            for c in rows {
                cursor = Some(c.id);
                if let Some((from, to)) = window
                    && !self.0.clinic.has_free_slot(c.id, from, to).await?
                {
                    continue;
                }
                let own: Vec<Specialization> = specs
                    .iter()
                    .filter(|(id, _, _)| *id == c.id)
                    .map(|(_, t, p)| Specialization { cancer_type_id: t.clone(), is_primary: *p })
                    .collect();
                items.push(Clinician::new(&c, own));
                if items.len() as i64 == limit {
                    break;
                }
            }
            if exhausted || items.len() as i64 == limit {
                break;
            }
        }
        Ok(Page::of(items, limit, |c| c.id.to_string()))
    }

    /// One clinician: profile, weekly hours, absences in the next 90 days, the clinic's zone.
    pub async fn read(&self, pass: Pass<ReadClinician>) -> Result<Clinician, Error> {
        let id = pass.id();
        let c = self.active(id).await?;
        let specs = clinicians::specializations(&self.0.db, id).await.map_err(store_err)?;
        let working_hours = self.0.clinic.hours(id).await?;
        let now = now_ms();
        let away = clinicians::exceptions(&self.0.db, id, now, now + 90 * DAY_MS).await.map_err(store_err)?;
        let mut v = Clinician::new(&c, specs);
        v.schedule = Some(Schedule {
            working_hours,
            exceptions: away.iter().map(Absence::from).collect(),
            time_zone: self.0.clinic.config().time_zone.clone(),
        });
        Ok(v)
    }

    /// The clinician's free slots between `from` and `to` (RFC 3339).
    pub async fn free_slots(&self, pass: Pass<ReadClinician>, from: &str, to: &str) -> Result<FreeSlots, Error> {
        let as_query = |e: Error| Error::with_message(Code::InvalidQuery, e.message().to_owned());
        let from = parse_instant("from", from).map_err(as_query)?;
        let to = parse_instant("to", to).map_err(as_query)?;
        let free = self.0.clinic.free_slots(pass.id(), from, to).await?;
        Ok(FreeSlots {
            items: free.iter().map(|(s, e)| Slot { starts_at: rfc3339(*s), ends_at: rfc3339(*e) }).collect(),
            time_zone: self.0.clinic.config().time_zone.clone(),
        })
    }

    /// Change the bio, slot length or specializations, in one transaction.
    pub async fn update(&self, pass: Pass<WriteClinician>, b: ProfileChange) -> Result<Clinician, Error> {
        let id = pass.id();
        let c = self.active(id).await?;
        let bio = match b.bio {
            Some(bio) if bio.chars().count() > 2000 || bio.chars().any(|ch| ch.is_control() && ch != '\n') => {
                return Err(invalid("bio must be at most 2000 characters of text."));
            }
            Some(bio) => bio.trim().to_owned(),
            None => c.bio.clone(),
        };
        let slot_minutes = b.slot_minutes.unwrap_or(c.slot_minutes);
        if !(5..=240).contains(&slot_minutes) {
            return Err(invalid("slot_minutes must be 5 to 240."));
        }
        let specs = match b.specializations {
            None => None,
            Some(list) => {
                let mut out: Vec<Specialization> = Vec::new();
                for s in list {
                    let t = reference::cancer_type(&self.0.db, &s.cancer_type_id).await.map_err(store_err)?;
                    match t {
                        Some(t) if t.parent_id.is_none() && t.retired_at.is_none() => {}
                        _ => return Err(invalid("Each specialization must be an active top-level cancer type.")),
                    }
                    if out.iter().any(|o| o.cancer_type_id == s.cancer_type_id) {
                        return Err(invalid("A specialization is listed twice."));
                    }
                    out.push(s);
                }
                if !out.is_empty() && out.iter().filter(|s| s.is_primary).count() != 1 {
                    return Err(invalid("Exactly one specialization must be primary."));
                }
                Some(out)
            }
        };
        clinicians::set_profile(&self.0.db, id, &bio, slot_minutes, specs.as_deref()).await.map_err(store_err)?;
        self.0.clinic.forget_clinician(id).await;
        self.audit(pass.caller(), "clinician.update", id).await?;
        let c = self.active(id).await?;
        let specs = clinicians::specializations(&self.0.db, id).await.map_err(store_err)?;
        Ok(Clinician::new(&c, specs))
    }

    /// Replace the weekly hours (checked: no overlaps, within the day).
    pub async fn set_hours(&self, pass: Pass<WriteClinician>, hours: Vec<Hours>) -> Result<WeeklyHours, Error> {
        let id = pass.id();
        self.active(id).await?;
        if hours.len() > 70 {
            return Err(invalid("At most 70 spans a week."));
        }
        slots::check_hours(&hours).map_err(|(overlap, message)| {
            Error::with_message(if overlap { Code::HoursOverlap } else { Code::InvalidValue }, message)
        })?;
        clinicians::set_hours(&self.0.db, id, &hours).await.map_err(store_err)?;
        self.0.clinic.forget_clinician(id).await;
        self.audit(pass.caller(), "clinician.hours", id).await?;
        let items = clinicians::hours(&self.0.db, id).await.map_err(store_err)?;
        Ok(WeeklyHours { items })
    }

    /// Record an absence; says how many scheduled appointments fall inside it.
    pub async fn add_absence(&self, pass: Pass<WriteClinician>, b: NewAbsence) -> Result<Absence, Error> {
        let id = pass.id();
        self.active(id).await?;
        let starts_at = parse_instant("starts_at", &b.starts_at)?;
        let ends_at = parse_instant("ends_at", &b.ends_at)?;
        if ends_at <= starts_at || ends_at - starts_at > 366 * DAY_MS {
            return Err(invalid("ends_at must be after starts_at, within a year."));
        }
        if !["leave", "holiday", "training", "other"].contains(&b.kind.as_str()) {
            return Err(invalid("kind must be leave, holiday, training or other."));
        }
        if b.note.chars().count() > 500 || b.note.chars().any(char::is_control) {
            return Err(invalid("note must be at most 500 characters of text."));
        }
        let e = Exception { id: Uuid::now_v7(), clinician_id: id, starts_at, ends_at, kind: b.kind, note: b.note };
        clinicians::add_exception(&self.0.db, &e, pass.caller().user()).await.map_err(store_err)?;
        self.0.clinic.forget_clinician(id).await;
        self.audit(pass.caller(), "clinician.exception_add", id).await?;
        let affected =
            careport_store::appointments::busy(&self.0.db, id, starts_at, ends_at).await.map_err(store_err)?;
        let mut v = Absence::from(&e);
        v.appointments_inside = Some(affected.len());
        Ok(v)
    }

    /// Remove an absence; 404 if the clinician has none with that id.
    pub async fn remove_absence(&self, pass: Pass<WriteClinician>, absence: Uuid) -> Result<(), Error> {
        let id = pass.id();
        if !clinicians::delete_exception(&self.0.db, id, absence).await.map_err(store_err)? {
            return Err(Error::new(Code::NotFound));
        }
        self.0.clinic.forget_clinician(id).await;
        self.audit(pass.caller(), "clinician.exception_remove", id).await
    }
}
