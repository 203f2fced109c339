//! The clinic's statistics (administrators) and each role's start page: a clinician's
//! patients and appointments, a patient's next appointment and care team, an administrator's
//! statistics.
//!
//! The start page is its own resource (`dashboard`), not "one's own profile": it returns
//! patients' names, record numbers and visit reasons, so a token narrowed to reading its own
//! profile does not open it. Every start page that shows patient data is audited.

use careport_domain::time::now_ms;
use careport_domain::{Error, Role};
use careport_store::appointments::{self, Scope as AppointmentScope};
use careport_store::assignments::TeamMember;
use careport_store::{assignments, patients, users};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::store_err;
use super::views::{Appointment, rfc3339};
use crate::Services;
use crate::access::{Pass, ReadDashboard, ReadStats, scope};
use crate::audit::{EventExt, outcome};

const DAY_MS: i64 = 86_400_000;
const WEEK_MS: i64 = 7 * DAY_MS;

/// The start pages and statistics.
pub struct Dashboard<'a>(pub(crate) &'a Services);

/// A patient a clinician saw recently.
#[derive(Debug, Clone, Serialize)]
pub struct SeenPatient {
    pub patient_id: Uuid,
    pub full_name: String,
    pub mrn: String,
    pub last_seen: String,
}

/// A role's start page.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum StartPage {
    Admin { stats: Value },
    Patient { patient_id: Uuid, next_appointment: Option<Appointment>, care_team: Vec<TeamMember> },
    Clinician { patients: i64, today: Vec<Appointment>, upcoming: Vec<Appointment>, recently_seen: Vec<SeenPatient> },
}

impl Dashboard<'_> {
    /// Counts: accounts by role, patients by department and by cancer type, appointments by
    /// status and by week (weeks start Monday 00:00 UTC; eight weeks back, four ahead). No
    /// patient data.
    pub async fn stats(&self, _: Pass<ReadStats>) -> Result<Value, Error> {
        self.counts().await
    }

    async fn counts(&self) -> Result<Value, Error> {
        let db = &self.0.db;
        let now = now_ms();
        let (roles, departments, types, statuses, weeks) = tokio::try_join!(
            async { users::count_by_role(db).await.map_err(store_err) },
            async { patients::count_by_department(db).await.map_err(store_err) },
            async { patients::count_by_cancer_type(db).await.map_err(store_err) },
            async { appointments::count_by_status(db).await.map_err(store_err) },
            async { appointments::count_by_week(db, now - 8 * WEEK_MS, now + 4 * WEEK_MS).await.map_err(store_err) },
        )?;
        let mut by_week: Vec<Value> = Vec::new();
        for (week, status, n) in weeks {
            let start = rfc3339(week);
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

    /// The caller's start page, by role.
    pub async fn start_page(&self, pass: Pass<ReadDashboard>) -> Result<StartPage, Error> {
        let caller = pass.caller();
        let db = &self.0.db;
        let now = now_ms();
        let me = caller.user();
        let page = match caller.role() {
            Role::Admin => return Ok(StartPage::Admin { stats: self.counts().await? }),
            Role::Patient => {
                let filter = appointments::ListFilter {
                    status: Some("scheduled".into()),
                    patient: Some(me),
                    clinician: None,
                    from: now,
                    to: i64::MAX,
                };
                let next =
                    appointments::list(db, &AppointmentScope::Own(me), &filter, None, 1).await.map_err(store_err)?;
                let care_team = assignments::team(db, me).await.map_err(store_err)?;
                StartPage::Patient { patient_id: me, next_appointment: next.first().map(Appointment::from), care_team }
            }
            Role::Clinician => {
                let patient_count = patients::count(db, &scope::patients(caller), &patients::ListFilter::default())
                    .await
                    .map_err(store_err)?;
                let tz = self.0.clinic.time_zone().clone();
                let today = jiff::Zoned::now().with_time_zone(tz.clone()).date();
                let day_start = |d: jiff::civil::Date| {
                    d.to_zoned(tz.clone()).map(|z| z.timestamp().as_millisecond()).unwrap_or(now)
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
                    async { appointments::list(db, &own, &mine(start, end), None, 100).await.map_err(store_err) },
                    async {
                        appointments::list(db, &own, &mine(end, end + 14 * DAY_MS), None, 20).await.map_err(store_err)
                    },
                    async { appointments::recently_seen(db, me, now - 30 * DAY_MS, 10).await.map_err(store_err) },
                )?;
                let mut recent = Vec::new();
                for (patient, last) in seen {
                    if let Some(p) = patients::get_read(db, patient).await.map_err(store_err)? {
                        recent.push(SeenPatient {
                            patient_id: p.id,
                            full_name: p.full_name,
                            mrn: p.mrn,
                            last_seen: rfc3339(last),
                        });
                    }
                }
                StartPage::Clinician {
                    patients: patient_count,
                    today: todays.iter().map(Appointment::from).collect(),
                    upcoming: upcoming.iter().map(Appointment::from).collect(),
                    recently_seen: recent,
                }
            }
        };
        // Every start page with patient data is audited, naming whose data it shows.
        let shown: Vec<String> = match &page {
            StartPage::Patient { patient_id, .. } => vec![patient_id.to_string()],
            StartPage::Clinician { today, upcoming, recently_seen, .. } => {
                let mut ids: Vec<String> = today
                    .iter()
                    .chain(upcoming)
                    .map(|a| a.patient_id.to_string())
                    .chain(recently_seen.iter().map(|p| p.patient_id.to_string()))
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                ids
            }
            StartPage::Admin { .. } => Vec::new(),
        };
        let mut event =
            caller.ctx.event("dashboard.read", outcome::SUCCESS).detail(format!("patients: {}", shown.join(",")));
        if let StartPage::Patient { patient_id, .. } = &page {
            event = event.patient(*patient_id);
        }
        self.0.audit.one(event).await?;
        Ok(page)
    }
}
