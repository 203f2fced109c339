//! The clinic directory and scheduling over HTTP, one file per area: patients' records and care
//! teams ([`patients`]), hours, slots, booking and reminders ([`scheduling`]), statistics,
//! dashboards and the cache ([`administration`]). The shared clinic fixture is here.

mod administration;
mod patients;
mod scheduling;

use careport_domain::Role;
use careport_policy::StaffRole;
use careport_tests::{TestApp, spawn_app_with};
use jiff::ToSpan;
use serde_json::{Value, json};
use uuid::Uuid;

pub(super) fn unique(name: &str) -> String {
    format!("{name}-{}@example.org", &Uuid::new_v4().simple().to_string()[..8])
}

pub(super) async fn token(app: &TestApp, email: &str) -> String {
    app.token(email).await
}

pub(super) async fn send(app: &TestApp, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    app.send(method, path, token, body).await
}

/// A small clinic: an admin, an oncology doctor and nurse, a cardiology nurse, with tokens.
pub(super) struct Clinic {
    pub admin: String,
    pub doctor_id: Uuid,
    pub doctor: String,
    pub nurse: String,
    pub other_nurse: String,
}

pub(super) async fn clinic(app: &TestApp) -> Clinic {
    let (a, d, n, o) = (unique("admin"), unique("doc"), unique("nurse"), unique("nurse2"));
    app.create_user(&a, Role::Admin, None, None).await;
    let doctor_id = app.create_user(&d, Role::Clinician, Some(StaffRole::Doctor), Some("oncology")).await;
    app.create_user(&n, Role::Clinician, Some(StaffRole::Nurse), Some("oncology")).await;
    app.create_user(&o, Role::Clinician, Some(StaffRole::Nurse), Some("cardiology")).await;
    Clinic {
        admin: token(app, &a).await,
        doctor_id,
        doctor: token(app, &d).await,
        nurse: token(app, &n).await,
        other_nurse: token(app, &o).await,
    }
}

pub(super) async fn new_patient(app: &TestApp, as_token: &str, body: Value) -> Value {
    let (status, v) = send(app, "POST", "/api/v1/patients", as_token, Some(body)).await;
    assert_eq!(status, 201, "{v}");
    v
}

pub(super) async fn all_ids(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/patients?limit=2{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, v) = send(app, "GET", &path, token, None).await;
        assert_eq!(status, 200, "{v}");
        ids.extend(v["items"].as_array().expect("items").iter().map(|p| p["id"].as_str().expect("id").to_owned()));
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    ids
}

/// Next Monday in the clinic's zone, at least two days ahead.
pub(super) fn next_monday(tz: &jiff::tz::TimeZone) -> jiff::civil::Date {
    let mut d = jiff::Zoned::now().with_time_zone(tz.clone()).date().checked_add(2.days()).expect("date");
    while d.weekday() != jiff::civil::Weekday::Monday {
        d = d.tomorrow().expect("date");
    }
    d
}

pub(super) fn at(tz: &jiff::tz::TimeZone, d: jiff::civil::Date, h: i8, m: i8) -> String {
    d.at(h, m, 0, 0).to_zoned(tz.clone()).expect("zoned").timestamp().to_string()
}

/// A Paris clinic whose doctor works 09:00 to 12:00 every day, in 30-minute slots.
pub(super) async fn paris(workers: usize) -> (TestApp, Clinic, jiff::tz::TimeZone) {
    let app = spawn_app_with(
        |s| {
            s.clinic.time_zone = "Europe/Paris".into();
            s.http.workers = workers;
        },
        Vec::new(),
    )
    .await;
    let c = clinic(&app).await;
    let hours: Vec<Value> = (1..=7).map(|d| json!({"weekday": d, "start_minute": 540, "end_minute": 720})).collect();
    let (status, v) = send(
        &app,
        "PUT",
        &format!("/api/v1/clinicians/{}/hours", c.doctor_id),
        &c.doctor,
        Some(json!({"hours": hours})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    (app, c, jiff::tz::TimeZone::get("Europe/Paris").expect("tz"))
}
