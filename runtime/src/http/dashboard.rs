//! The clinic's statistics (`GET /api/v1/admin/stats`, administrators) and each role's start
//! page (`GET /api/v1/dashboard`): a clinician's patients and appointments, a patient's next
//! appointment and care team, an administrator's statistics.

use actix_web::{HttpResponse, web};
use careport_actors::Services;
use careport_actors::audit::{EventExt, outcome};
use careport_domain::time::now_ms;
use careport_domain::{Error, Role};
use careport_store::appointments::{self, Scope as AppointmentScope};
use careport_store::{assignments, patients, users};
use serde_json::Value;

use super::appointments::appointment_json;
use super::authn::{Authorized, ReadSelf, ReadStats};
use super::error::ApiError;
use super::page::store;

type Result<T> = std::result::Result<T, ApiError>;

const DAY_MS: i64 = 86_400_000;
const WEEK_MS: i64 = 7 * DAY_MS;

async fn stats(services: &Services) -> std::result::Result<Value, Error> {
    let db = &services.db;
    let now = now_ms();
    let (roles, departments, types, statuses, weeks) = tokio::try_join!(
        async { users::count_by_role(db).await.map_err(store) },
        async { patients::count_by_department(db).await.map_err(store) },
        async { patients::count_by_cancer_type(db).await.map_err(store) },
        async { appointments::count_by_status(db).await.map_err(store) },
        async { appointments::count_by_week(db, now - 8 * WEEK_MS, now + 4 * WEEK_MS).await.map_err(store) },
    )?;
    let mut by_week: Vec<Value> = Vec::new();
    for (week, status, n) in weeks {
        let start = careport_actors::clinic::rfc3339(week);
        match by_week.last_mut() {
            Some(last) if last["week_start"] == start => last["by_status"][status.as_str()] = Value::from(n),
            _ => by_week.push(serde_json::json!({ "week_start": start, "by_status": { status: n } })),
        }
    }
    Ok(serde_json::json!({
        "users_by_role": roles.into_iter().map(|(r, n)| (r, Value::from(n))).collect::<serde_json::Map<_, _>>(),
        "patients_by_department": departments.into_iter()
            .map(|(d, n)| serde_json::json!({ "department": d, "patients": n })).collect::<Vec<_>>(),
        "patients_by_cancer_type": types.into_iter()
            .map(|(t, parent, n)| serde_json::json!({ "cancer_type_id": t, "parent_id": parent, "patients": n })).collect::<Vec<_>>(),
        "appointments_by_status": statuses.into_iter().map(|(s, n)| (s, Value::from(n))).collect::<serde_json::Map<_, _>>(),
        "appointments_by_week": by_week,
    }))
}

/// Counts: accounts by role, patients by department and by cancer type, appointments by status
/// and by week (weeks start Monday 00:00 UTC; eight weeks back, four ahead). No patient data.
#[utoipa::path(get, path = "/api/v1/admin/stats", tag = "admin",
    responses((status = 200, description = "Statistics")), security(("bearer" = [])))]
pub async fn admin_stats(_: Authorized<ReadStats>, services: web::Data<Services>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(stats(&services).await?))
}

/// The caller's start page, by role.
#[utoipa::path(get, path = "/api/v1/dashboard", tag = "users",
    responses((status = 200, description = "`{role, …}`: what this role starts from")), security(("bearer" = [])))]
pub async fn dashboard(auth: Authorized<ReadSelf>, services: web::Data<Services>) -> Result<HttpResponse> {
    let caller = &auth.caller;
    let db = &services.db;
    let now = now_ms();
    let body = match caller.role() {
        Role::Admin => serde_json::json!({ "role": "admin", "stats": stats(&services).await? }),
        Role::Patient => {
            let me = caller.user();
            let filter = appointments::ListFilter {
                status: Some("scheduled".into()),
                patient: Some(me),
                clinician: None,
                from: now,
                to: i64::MAX,
            };
            let next = appointments::list(db, &AppointmentScope::Own(me), &filter, None, 1).await.map_err(store)?;
            let team = assignments::team(db, me).await.map_err(store)?;
            serde_json::json!({
                "role": "patient",
                "patient_id": me,
                "next_appointment": next.first().map(appointment_json),
                "care_team": team,
            })
        }
        Role::Clinician => {
            let me = caller.user();
            let scope = super::patients::scope_of(caller);
            let patient_count = patients::count(db, &scope, &patients::ListFilter::default()).await.map_err(store)?;
            let tz = services.clinic.time_zone().clone();
            let today = jiff::Zoned::now().with_time_zone(tz).date();
            let day_start = |d: jiff::civil::Date| {
                d.to_zoned(services.clinic.time_zone().clone()).map(|z| z.timestamp().as_millisecond()).unwrap_or(now)
            };
            let start = day_start(today);
            let end = today.tomorrow().map(day_start).unwrap_or(start + DAY_MS);
            let mine = |from, to| appointments::ListFilter {
                status: Some("scheduled".into()),
                patient: None,
                clinician: Some(me),
                from,
                to,
            };
            let own = AppointmentScope::Doctor(me);
            let (todays, upcoming, seen) = tokio::try_join!(
                async { appointments::list(db, &own, &mine(start, end), None, 100).await.map_err(store) },
                async { appointments::list(db, &own, &mine(end, end + 14 * DAY_MS), None, 20).await.map_err(store) },
                async { appointments::recently_seen(db, me, now - 30 * DAY_MS, 10).await.map_err(store) },
            )?;
            let mut recent = Vec::new();
            for (patient, last) in seen {
                if let Some(p) = patients::get_read(db, patient).await.map_err(store)? {
                    recent.push(serde_json::json!({ "patient_id": p.id, "full_name": p.full_name, "mrn": p.mrn,
                        "last_seen": careport_actors::clinic::rfc3339(last) }));
                }
            }
            if !recent.is_empty() {
                services
                    .auth
                    .audit(vec![
                        caller
                            .ctx
                            .event("dashboard.read", outcome::SUCCESS)
                            .detail(format!("{} recent patients", recent.len())),
                    ])
                    .await?;
            }
            serde_json::json!({
                "role": "clinician",
                "patients": patient_count,
                "today": todays.iter().map(appointment_json).collect::<Vec<_>>(),
                "upcoming": upcoming.iter().map(appointment_json).collect::<Vec<_>>(),
                "recently_seen": recent,
            })
        }
    };
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(body))
}

/// Register the routes.
pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let r = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/v1/admin/stats").get(admin_stats)).service(r("/api/v1/dashboard").get(dashboard));
}
