//! The clinician directory: `/api/v1/clinicians` (filter by specialization, department, staff
//! role, availability), one clinician's profile with hours and absences, their free slots, and
//! the changes a clinician (or an administrator) makes to their profile, hours and absences.

use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::Services;
use careport_actors::audit::{EventExt, outcome};
use careport_actors::clinic::{parse_instant, rfc3339, slots};
use careport_domain::time::now_ms;
use careport_domain::{Code, Error};
use careport_store::clinicians::{self, ClinicianRow, Exception, Hours, Specialization};
use careport_store::reference;
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::authn::{Authorized, JsonBody, ListClinicians, ReadClinician, WriteClinician};
use super::error::ApiError;
use super::page::{self, store};

type Result<T> = std::result::Result<T, ApiError>;

const DAY_MS: i64 = 86_400_000;

fn clinician_json(c: &ClinicianRow, specs: Vec<Specialization>) -> Value {
    let primary = specs.iter().find(|s| s.is_primary).map(|s| s.cancer_type_id.clone());
    serde_json::json!({
        "id": c.id,
        "full_name": c.full_name,
        "staff_role": c.staff_role,
        "department": c.department,
        "bio": c.bio,
        "slot_minutes": c.slot_minutes,
        "specializations": specs,
        "primary_specialization": primary,
    })
}

fn exception_json(e: &Exception) -> Value {
    serde_json::json!({ "id": e.id, "starts_at": rfc3339(e.starts_at), "ends_at": rfc3339(e.ends_at), "kind": e.kind, "note": e.note })
}

fn path_id(id: &str) -> std::result::Result<Uuid, Error> {
    Uuid::parse_str(id).map_err(|_| Error::new(Code::NotFound))
}

async fn active(services: &Services, id: Uuid) -> std::result::Result<ClinicianRow, Error> {
    services.clinic.clinician(id).await?.ok_or_else(|| Error::new(Code::NotFound))
}

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
    _: Authorized<ListClinicians>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let q: ListQuery = super::authn::query(&req)?;
    let limit = page::limit(q.limit)?;
    let after = page::decode_uuid(q.cursor.as_deref())?;
    let window = match q.available.as_deref() {
        None | Some("false") => None,
        Some("true") => Some((now_ms(), now_ms() + 7 * DAY_MS)),
        Some(day) => {
            let d: jiff::civil::Date = day.parse().map_err(|_| {
                Error::with_message(Code::InvalidQuery, "available must be true, false or a date YYYY-MM-DD.")
            })?;
            let tz = services.clinic.time_zone().clone();
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
        return Err(Error::with_message(Code::InvalidQuery, "staff_role must be doctor or nurse.").into());
    }
    let filter =
        clinicians::ListFilter { specialization: q.specialization, department: q.department, staff_role: q.staff_role };
    let specs = clinicians::all_specializations(&services.db).await.map_err(store)?;
    // With an availability filter, pages are filled from further rows until full.
    let mut items = Vec::new();
    let mut cursor = after;
    let mut last_seen = None;
    loop {
        let rows = clinicians::list(&services.db, &filter, cursor, limit).await.map_err(store)?;
        let exhausted = (rows.len() as i64) < limit;
        for c in rows {
            cursor = Some(c.id);
            if let Some((from, to)) = window
                && !services.clinic.has_free_slot(c.id, from, to).await?
            {
                continue;
            }
            let own: Vec<Specialization> = specs
                .iter()
                .filter(|(id, _, _)| *id == c.id)
                .map(|(_, t, p)| Specialization { cancer_type_id: t.clone(), is_primary: *p })
                .collect();
            items.push(clinician_json(&c, own));
            last_seen = Some(c.id);
            if items.len() as i64 == limit {
                break;
            }
        }
        if exhausted || items.len() as i64 == limit {
            break;
        }
    }
    let next = (items.len() as i64 == limit).then(|| last_seen.map(|id| page::encode(&id.to_string()))).flatten();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items, "next_cursor": next })))
}

/// One clinician: profile, specializations, weekly hours and absences of the next 90 days.
#[utoipa::path(get, path = "/api/v1/clinicians/{id}", tag = "clinicians", params(("id" = Uuid, Path, description = "Clinician id")),
    responses((status = 200, description = "The clinician"), (status = 404, description = "No such clinician", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(auth: Authorized<ReadClinician>, services: web::Data<Services>) -> Result<HttpResponse> {
    let id = path_id(&auth.resource_id)?;
    let c = active(&services, id).await?;
    let specs = clinicians::specializations(&services.db, id).await.map_err(store)?;
    let hours = services.clinic.hours(id).await?;
    let now = now_ms();
    let away = clinicians::exceptions(&services.db, id, now, now + 90 * DAY_MS).await.map_err(store)?;
    let mut v = clinician_json(&c, specs);
    v["working_hours"] = serde_json::to_value(hours).unwrap_or_default();
    v["exceptions"] = Value::Array(away.iter().map(exception_json).collect());
    v["time_zone"] = Value::String(services.clinic.config().time_zone.clone());
    Ok(HttpResponse::Ok().json(v))
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
    let id = path_id(&auth.resource_id)?;
    let q: SlotsQuery = super::authn::query(&req)?;
    let as_query = |e: Error| Error::with_message(Code::InvalidQuery, e.message().to_owned());
    let from = parse_instant("from", &q.from).map_err(as_query)?;
    let to = parse_instant("to", &q.to).map_err(as_query)?;
    let free = services.clinic.free_slots(id, from, to).await?;
    let items: Vec<Value> =
        free.iter().map(|(s, e)| serde_json::json!({ "starts_at": rfc3339(*s), "ends_at": rfc3339(*e) })).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items, "time_zone": services.clinic.config().time_zone })))
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
    let id = path_id(&auth.resource_id)?;
    let b = body.parse::<ProfileBody>()?;
    let c = active(&services, id).await?;
    let bio = match b.bio {
        Some(bio) if bio.chars().count() > 2000 || bio.chars().any(|ch| ch.is_control() && ch != '\n') => {
            return Err(Error::with_message(Code::InvalidValue, "bio must be at most 2000 characters of text.").into());
        }
        Some(bio) => bio.trim().to_owned(),
        None => c.bio.clone(),
    };
    let slot_minutes = b.slot_minutes.unwrap_or(c.slot_minutes);
    if !(5..=240).contains(&slot_minutes) {
        return Err(Error::with_message(Code::InvalidValue, "slot_minutes must be 5 to 240.").into());
    }
    let specs = match b.specializations {
        None => None,
        Some(list) => {
            let mut out: Vec<Specialization> = Vec::new();
            for s in list {
                let t = reference::cancer_type(&services.db, &s.cancer_type_id).await.map_err(store)?;
                match t {
                    Some(t) if t.parent_id.is_none() && t.retired_at.is_none() => {}
                    _ => {
                        return Err(Error::with_message(
                            Code::InvalidValue,
                            "Each specialization must be an active top-level cancer type.",
                        )
                        .into());
                    }
                }
                if out.iter().any(|o| o.cancer_type_id == s.cancer_type_id) {
                    return Err(Error::with_message(Code::InvalidValue, "A specialization is listed twice.").into());
                }
                out.push(Specialization { cancer_type_id: s.cancer_type_id, is_primary: s.is_primary });
            }
            if !out.is_empty() && out.iter().filter(|s| s.is_primary).count() != 1 {
                return Err(
                    Error::with_message(Code::InvalidValue, "Exactly one specialization must be primary.").into()
                );
            }
            Some(out)
        }
    };
    clinicians::set_profile(&services.db, id, &bio, slot_minutes).await.map_err(store)?;
    if let Some(specs) = &specs {
        clinicians::set_specializations(&services.db, id, specs).await.map_err(store)?;
    }
    services.clinic.forget_clinician(id).await;
    services
        .auth
        .audit(vec![auth.caller.ctx.event("clinician.update", outcome::SUCCESS).resource("clinician", id)])
        .await?;
    let c = active(&services, id).await?;
    let specs = clinicians::specializations(&services.db, id).await.map_err(store)?;
    Ok(HttpResponse::Ok().json(clinician_json(&c, specs)))
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
    let id = path_id(&auth.resource_id)?;
    let b = body.parse::<HoursBody>()?;
    active(&services, id).await?;
    if b.hours.len() > 70 {
        return Err(Error::with_message(Code::InvalidValue, "At most 70 spans a week.").into());
    }
    let hours: Vec<Hours> = b
        .hours
        .iter()
        .map(|h| Hours { weekday: h.weekday, start_minute: h.start_minute, end_minute: h.end_minute })
        .collect();
    slots::check_hours(&hours).map_err(|(overlap, message)| {
        Error::with_message(if overlap { Code::HoursOverlap } else { Code::InvalidValue }, message)
    })?;
    clinicians::set_hours(&services.db, id, &hours).await.map_err(store)?;
    services.clinic.forget_clinician(id).await;
    services
        .auth
        .audit(vec![auth.caller.ctx.event("clinician.hours", outcome::SUCCESS).resource("clinician", id)])
        .await?;
    let hours = clinicians::hours(&services.db, id).await.map_err(store)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": hours })))
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
    let id = path_id(&auth.resource_id)?;
    let b = body.parse::<ExceptionBody>()?;
    active(&services, id).await?;
    let starts_at = parse_instant("starts_at", &b.starts_at)?;
    let ends_at = parse_instant("ends_at", &b.ends_at)?;
    if ends_at <= starts_at || ends_at - starts_at > 366 * DAY_MS {
        return Err(Error::with_message(Code::InvalidValue, "ends_at must be after starts_at, within a year.").into());
    }
    if !["leave", "holiday", "training", "other"].contains(&b.kind.as_str()) {
        return Err(Error::with_message(Code::InvalidValue, "kind must be leave, holiday, training or other.").into());
    }
    if b.note.chars().count() > 500 || b.note.chars().any(char::is_control) {
        return Err(Error::with_message(Code::InvalidValue, "note must be at most 500 characters of text.").into());
    }
    let e = Exception { id: Uuid::now_v7(), clinician_id: id, starts_at, ends_at, kind: b.kind, note: b.note };
    clinicians::add_exception(&services.db, &e, auth.caller.user()).await.map_err(store)?;
    services
        .auth
        .audit(vec![auth.caller.ctx.event("clinician.exception_add", outcome::SUCCESS).resource("clinician", id)])
        .await?;
    let affected = careport_store::appointments::busy(&services.db, id, starts_at, ends_at).await.map_err(store)?;
    let mut v = exception_json(&e);
    v["appointments_inside"] = Value::from(affected.len());
    Ok(HttpResponse::Created().json(v))
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
    let id = path_id(&auth.resource_id)?;
    let eid = req
        .match_info()
        .get("exception_id")
        .and_then(|e| Uuid::parse_str(e).ok())
        .ok_or_else(|| Error::new(Code::NotFound))?;
    if !clinicians::delete_exception(&services.db, id, eid).await.map_err(store)? {
        return Err(Error::new(Code::NotFound).into());
    }
    services
        .auth
        .audit(vec![auth.caller.ctx.event("clinician.exception_remove", outcome::SUCCESS).resource("clinician", id)])
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Register the routes.
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
