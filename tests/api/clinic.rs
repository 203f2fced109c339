//! The clinic directory and scheduling over HTTP: patients' records (validation, visibility,
//! pagination, soft delete), account linking, care teams, clinicians' hours and absences, free
//! slots, booking rules, the double-booking race, reminders, statistics and dashboards.

use std::sync::Arc;

use careport_actors::JobHandler;
use careport_domain::Role;
use careport_policy::StaffRole;
use careport_store::sql::Sql;
use careport_tests::{TestApp, spawn_app, spawn_app_with};
use jiff::ToSpan;
use serde_json::{Value, json};
use uuid::Uuid;

fn unique(name: &str) -> String {
    format!("{name}-{}@example.org", &Uuid::new_v4().simple().to_string()[..8])
}

async fn token(app: &TestApp, email: &str) -> String {
    app.login(email).await["access_token"].as_str().expect("token").to_owned()
}

async fn send(app: &TestApp, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let url = app.url(path);
    let mut req = match method {
        "GET" => app.client.get(url),
        "POST" => app.client.post(url),
        "PATCH" => app.client.patch(url),
        "PUT" => app.client.put(url),
        "DELETE" => app.client.delete(url),
        m => panic!("method {m}"),
    };
    req = req.bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A small clinic: an admin, an oncology doctor and nurse, a cardiology nurse, with tokens.
struct Clinic {
    admin: String,
    doctor_id: Uuid,
    doctor: String,
    nurse: String,
    other_nurse: String,
}

async fn clinic(app: &TestApp) -> Clinic {
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

async fn new_patient(app: &TestApp, as_token: &str, body: Value) -> Value {
    let (status, v) = send(app, "POST", "/api/v1/patients", as_token, Some(body)).await;
    assert_eq!(status, 201, "{v}");
    v
}

async fn all_ids(app: &TestApp, token: &str, query: &str) -> Vec<String> {
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

#[actix_web::test]
async fn patient_records_are_validated_and_each_caller_lists_only_their_own() {
    let app = spawn_app().await;
    let c = clinic(&app).await;
    // A doctor who opens a record is on its care team; a nurse's record is in her department.
    let ada = new_patient(
        &app,
        &c.doctor,
        json!({"full_name": "Ada Lovelace", "date_of_birth": "1975-12-10", "sex": "female",
               "phone": "+44 20 7946 0000", "emergency_contact": {"name": "Ann", "phone": "020 7946 0001", "relation": "sister"}}),
    )
    .await;
    assert!(ada["mrn"].as_str().expect("mrn").starts_with("CP"), "{ada}");
    assert_eq!(ada["emergency_contact"]["relation"], "sister");
    let ben = new_patient(&app, &c.nurse, json!({"full_name": "Ben Okri", "mrn": "H-0001"})).await;
    assert_eq!(ben["department"], "oncology");
    let cyd = new_patient(&app, &c.admin, json!({"full_name": "Cyd Charisse", "department": "cardiology"})).await;

    // Bad input: a clear code, and nothing stored.
    let before = all_ids(&app, &c.admin, "").await.len();
    for (body, code) in [
        (json!({"full_name": "X", "date_of_birth": "2999-01-01"}), "invalid_value"),
        (json!({"full_name": "X", "date_of_birth": "10/12/1975"}), "invalid_value"),
        (json!({"full_name": "X", "sex": "robot"}), "invalid_value"),
        (json!({"full_name": "X", "department": "astrology"}), "invalid_value"),
        (json!({"full_name": "X", "phone": "call me"}), "invalid_value"),
        (json!({"full_name": "X", "favourite_colour": "blue"}), "invalid_value"),
        (json!({"date_of_birth": "1975-12-10"}), "invalid_value"),
        (json!({"full_name": "X", "mrn": "H-0001"}), "mrn_taken"),
    ] {
        let (status, v) = send(&app, "POST", "/api/v1/patients", &c.doctor, Some(body.clone())).await;
        assert_eq!(v["code"], code, "{body} -> {status} {v}");
        assert!(status == 400 || status == 409, "{body} -> {status}");
    }
    assert_eq!(all_ids(&app, &c.admin, "").await.len(), before, "a refused record was stored");

    // Visibility: admin all (paged by two), doctor assigned, nurses by department.
    let id = |v: &Value| v["id"].as_str().expect("id").to_owned();
    let admin_sees = all_ids(&app, &c.admin, "").await;
    for p in [&ada, &ben, &cyd] {
        assert!(admin_sees.contains(&id(p)));
    }
    assert_eq!(all_ids(&app, &c.doctor, "").await, vec![id(&ada)]);
    assert_eq!(all_ids(&app, &c.nurse, "").await, vec![id(&ada), id(&ben)], "oncology: the doctor's and her own");
    assert_eq!(all_ids(&app, &c.other_nurse, "").await, vec![id(&cyd)]);
    assert_eq!(all_ids(&app, &c.admin, "&q=okri").await, vec![id(&ben)]);
    assert_eq!(all_ids(&app, &c.admin, "&q=h-0001").await, vec![id(&ben)]);
    assert_eq!(all_ids(&app, &c.admin, "&department=cardiology").await, vec![id(&cyd)]);
    let (status, v) = send(&app, "GET", "/api/v1/patients?cursor=!!", &c.admin, None).await;
    assert_eq!((status, v["code"].as_str()), (400, Some("invalid_query")));
    let (status, _) = send(&app, "GET", "/api/v1/patients?include_deleted=true", &c.nurse, None).await;
    assert_eq!(status, 403);
    // Reading another department's record: 404, as if it did not exist.
    let (status, _) = send(&app, "GET", &format!("/api/v1/patients/{}", id(&cyd)), &c.nurse, None).await;
    assert_eq!(status, 404);
    let (status, v) = send(&app, "GET", &format!("/api/v1/patients/{}", id(&ada)), &c.nurse, None).await;
    assert_eq!(status, 200);
    assert_eq!(v["care_team"][0]["clinician_id"], c.doctor_id.to_string());
}

#[actix_web::test]
async fn registering_with_a_records_address_links_the_account_to_it() {
    let app = spawn_app().await;
    let c = clinic(&app).await;
    let email = unique("linked");
    let record = new_patient(&app, &c.doctor, json!({"full_name": "Grace Hopper", "email": email})).await;
    let res = app
        .post_json("/api/v1/auth/register", None, &json!({"email": email, "password": careport_tests::PASSWORD}))
        .await;
    assert_eq!(res.status(), 202);
    let mail = app.email_to(&email).await;
    let token_line = mail.lines().find(|l| l.contains("/verify-email?token=")).expect("link").trim().to_owned();
    let verify_token = token_line.split("token=").nth(1).expect("token");
    let res = app.post_json("/api/v1/auth/email/verify", None, &json!({"token": verify_token})).await;
    assert!(res.status().is_success(), "{}", res.status());
    let patient = token(&app, &email).await;
    let (_, me) = send(&app, "GET", "/api/v1/auth/me", &patient, None).await;
    assert_eq!(me["patient_id"], record["id"], "{me}");
    let (status, mine) =
        send(&app, "GET", &format!("/api/v1/patients/{}", record["id"].as_str().expect("id")), &patient, None).await;
    assert_eq!(status, 200);
    assert_eq!(mine["full_name"], "Grace Hopper");
    assert_eq!(mine["has_account"], true);

    // A patient changes their contact details, and nothing else.
    let path = format!("/api/v1/patients/{}", record["id"].as_str().expect("id"));
    let (status, v) = send(&app, "PATCH", &path, &patient, Some(json!({"phone": "555 0100", "address": null}))).await;
    assert_eq!((status, v["phone"].as_str()), (200, Some("555 0100")), "{v}");
    let (status, v) = send(&app, "PATCH", &path, &patient, Some(json!({"full_name": "Someone Else"}))).await;
    assert_eq!((status, v["code"].as_str()), (403, Some("forbidden")));
    let (_, v) = send(&app, "GET", &path, &patient, None).await;
    assert_eq!(v["full_name"], "Grace Hopper");

    // A self-registered patient gets a record of their own under their account's id.
    let solo = unique("solo");
    let solo_id = app.create_user(&solo, Role::Patient, None, None).await;
    let t = token(&app, &solo).await;
    let (_, me) = send(&app, "GET", "/api/v1/auth/me", &t, None).await;
    assert_eq!(me["patient_id"], solo_id.to_string());
    let (status, _) = send(&app, "GET", &format!("/api/v1/patients/{solo_id}"), &t, None).await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn a_deleted_record_is_hidden_until_restored_and_both_are_audited() {
    let app = spawn_app().await;
    let c = clinic(&app).await;
    let p = new_patient(&app, &c.doctor, json!({"full_name": "Hedy Lamarr"})).await;
    let pid = p["id"].as_str().expect("id");
    let path = format!("/api/v1/patients/{pid}");
    let (status, _) = send(&app, "DELETE", &path, &c.doctor, None).await;
    assert_eq!(status, 404, "only administrators delete");
    let (status, _) = send(&app, "DELETE", &path, &c.admin, None).await;
    assert_eq!(status, 204);
    let (status, _) = send(&app, "GET", &path, &c.doctor, None).await;
    assert_eq!(status, 404);
    assert!(all_ids(&app, &c.doctor, "").await.is_empty());
    let (_, v) = send(&app, "GET", &path, &c.admin, None).await;
    assert!(v["deleted_at"].is_string(), "{v}");
    assert!(!all_ids(&app, &c.admin, "").await.contains(&pid.to_owned()));
    assert!(all_ids(&app, &c.admin, "&include_deleted=true").await.contains(&pid.to_owned()));
    let (status, v) = send(&app, "POST", &format!("{path}/restore"), &c.admin, None).await;
    assert_eq!((status, v["deleted_at"].is_null()), (200, true));
    let (status, _) = send(&app, "GET", &path, &c.doctor, None).await;
    assert_eq!(status, 200);
    let (_, trail) = send(&app, "GET", &format!("/api/v1/admin/audit?patient={pid}&limit=50"), &c.admin, None).await;
    let actions: Vec<&str> =
        trail["items"].as_array().expect("events").iter().filter_map(|e| e["action"].as_str()).collect();
    for a in ["patient.create", "patient.delete", "patient.restore", "patient.read"] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
}

#[actix_web::test]
async fn assignments_name_a_subtype_and_keep_their_history() {
    let app = spawn_app().await;
    let c = clinic(&app).await;
    let d2 = unique("doc2");
    let doctor2_id = app.create_user(&d2, Role::Clinician, Some(StaffRole::Doctor), Some("cardiology")).await;
    let doctor2 = token(&app, &d2).await;
    let p = new_patient(&app, &c.admin, json!({"full_name": "Marie Curie"})).await;
    let pid = p["id"].as_str().expect("id");
    let assign = format!("/api/v1/patients/{pid}/assignments");
    let (status, v) =
        send(&app, "POST", &assign, &c.admin, Some(json!({"clinician_id": doctor2_id, "cancer_type_id": "uterine"})))
            .await;
    assert_eq!((status, v["code"].as_str()), (422, Some("subtype_required")));
    let (status, _) = send(&app, "GET", &format!("/api/v1/patients/{pid}"), &doctor2, None).await;
    assert_eq!(status, 404, "a refused assignment gives no access");
    let (status, v) = send(
        &app,
        "POST",
        &assign,
        &c.admin,
        Some(json!({"clinician_id": doctor2_id, "cancer_type_id": "no-such-type"})),
    )
    .await;
    assert_eq!((status, v["code"].as_str()), (400, Some("invalid_value")));
    let (status, v) = send(
        &app,
        "POST",
        &assign,
        &c.doctor,
        Some(json!({"clinician_id": doctor2_id, "cancer_type_id": "uterine-leiomyosarcoma-ulms"})),
    )
    .await;
    assert_eq!(status, 404, "doctors do not assign: {v}");

    let (status, v) = send(
        &app,
        "POST",
        &assign,
        &c.admin,
        Some(json!({"clinician_id": doctor2_id, "cancer_type_id": "uterine-leiomyosarcoma-ulms"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (status, _) = send(&app, "GET", &format!("/api/v1/patients/{pid}"), &doctor2, None).await;
    assert_eq!(status, 200, "assigned now");
    let (status, _) = send(
        &app,
        "POST",
        &assign,
        &c.admin,
        Some(json!({"clinician_id": doctor2_id, "cancer_type_id": "uterine-lg-ess"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, team) = send(&app, "GET", &format!("/api/v1/patients/{pid}/care-team"), &doctor2, None).await;
    assert_eq!(status, 200);
    assert_eq!(team["items"][0]["cancer_type_id"], "uterine-lg-ess", "{team}");
    let (status, _) = send(&app, "DELETE", &format!("{assign}/{doctor2_id}"), &c.admin, None).await;
    assert_eq!(status, 204);
    let (status, _) = send(&app, "GET", &format!("/api/v1/patients/{pid}"), &doctor2, None).await;
    assert_eq!(status, 404, "the assignment ended");
    let (_, team) = send(&app, "GET", &format!("/api/v1/patients/{pid}/care-team?history=true"), &c.admin, None).await;
    let actions: Vec<&str> =
        team["history"].as_array().expect("history").iter().filter_map(|h| h["action"].as_str()).collect();
    assert_eq!(actions, vec!["assigned", "changed", "ended"]);
    assert!(team["items"].as_array().expect("items").is_empty());
    let _ = c.doctor_id;
}

/// Next Monday in the clinic's zone, at least two days ahead.
fn next_monday(tz: &jiff::tz::TimeZone) -> jiff::civil::Date {
    let mut d = jiff::Zoned::now().with_time_zone(tz.clone()).date().checked_add(2.days()).expect("date");
    while d.weekday() != jiff::civil::Weekday::Monday {
        d = d.tomorrow().expect("date");
    }
    d
}

fn at(tz: &jiff::tz::TimeZone, d: jiff::civil::Date, h: i8, m: i8) -> String {
    d.at(h, m, 0, 0).to_zoned(tz.clone()).expect("zoned").timestamp().to_string()
}

/// A Paris clinic whose doctor works 09:00 to 12:00 every day, in 30-minute slots.
async fn paris(workers: usize) -> (TestApp, Clinic, jiff::tz::TimeZone) {
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

#[actix_web::test]
async fn free_slots_follow_local_hours_minus_absences_and_bookings() {
    let (app, c, tz) = paris(1).await;
    let hours = format!("/api/v1/clinicians/{}/hours", c.doctor_id);
    let (status, v) = send(&app, "PUT", &hours, &c.doctor, Some(json!({"hours": [
        {"weekday": 1, "start_minute": 540, "end_minute": 720}, {"weekday": 1, "start_minute": 700, "end_minute": 800}]}))).await;
    assert_eq!((status, v["code"].as_str()), (422, Some("hours_overlap")));
    let (_, v) = send(&app, "GET", &format!("/api/v1/clinicians/{}", c.doctor_id), &c.nurse, None).await;
    assert_eq!(v["working_hours"].as_array().expect("hours").len(), 7, "refused hours changed nothing: {v}");
    let (status, _) = send(&app, "PUT", &hours, &c.nurse, Some(json!({"hours": []}))).await;
    assert_eq!(status, 404, "a nurse does not change a doctor's hours");

    let monday = next_monday(&tz);
    let slots_path = format!(
        "/api/v1/clinicians/{}/slots?from={}&to={}",
        c.doctor_id,
        at(&tz, monday, 0, 0),
        at(&tz, monday.tomorrow().expect("d"), 0, 0)
    );
    let (status, v) = send(&app, "GET", &slots_path, &c.nurse, None).await;
    assert_eq!(status, 200, "{v}");
    let starts: Vec<&str> =
        v["items"].as_array().expect("items").iter().filter_map(|s| s["starts_at"].as_str()).collect();
    assert_eq!(starts.len(), 6);
    assert_eq!(starts[0], at(&tz, monday, 9, 0), "09:00 in Paris");

    let (status, v) = send(
        &app,
        "POST",
        &format!("/api/v1/clinicians/{}/exceptions", c.doctor_id),
        &c.doctor,
        Some(json!({"starts_at": at(&tz, monday, 10, 0), "ends_at": at(&tz, monday, 11, 0), "kind": "training"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let p = new_patient(&app, &c.doctor, json!({"full_name": "Alan Turing"})).await;
    let (status, v) = send(
        &app,
        "POST",
        &format!("/api/v1/patients/{}/appointments", p["id"].as_str().expect("id")),
        &c.doctor,
        Some(json!({"clinician_id": c.doctor_id, "starts_at": at(&tz, monday, 9, 0), "reason": "first visit"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (_, v) = send(&app, "GET", &slots_path, &c.nurse, None).await;
    let starts: Vec<&str> =
        v["items"].as_array().expect("items").iter().filter_map(|s| s["starts_at"].as_str()).collect();
    assert_eq!(starts, vec![at(&tz, monday, 9, 30), at(&tz, monday, 11, 0), at(&tz, monday, 11, 30)]);

    // The directory filters: by specialization, and by a day with a free slot.
    let (status, _) = send(
        &app,
        "PATCH",
        &format!("/api/v1/clinicians/{}", c.doctor_id),
        &c.doctor,
        Some(json!({"specializations": [{"cancer_type_id": "uterine-leiomyosarcoma-ulms", "is_primary": true}]})),
    )
    .await;
    assert_eq!(status, 400, "a subtype is not a specialization");
    let (status, v) = send(&app, "PATCH", &format!("/api/v1/clinicians/{}", c.doctor_id), &c.doctor,
        Some(json!({"bio": "Sarcoma surgeon", "specializations": [{"cancer_type_id": "uterine", "is_primary": true}, {"cancer_type_id": "breast"}]}))).await;
    assert_eq!((status, v["primary_specialization"].as_str()), (200, Some("uterine")), "{v}");
    let (_, v) = send(&app, "GET", "/api/v1/clinicians?specialization=uterine", &c.nurse, None).await;
    let ids: Vec<&str> = v["items"].as_array().expect("items").iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids, vec![c.doctor_id.to_string()]);
    let (_, v) = send(&app, "GET", &format!("/api/v1/clinicians?available={monday}"), &c.nurse, None).await;
    let ids: Vec<&str> = v["items"].as_array().expect("items").iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids, vec![c.doctor_id.to_string()], "only the doctor has hours");
}

#[actix_web::test]
async fn booking_refuses_bad_times_and_moves_and_cancels_as_asked() {
    let (app, c, tz) = paris(1).await;
    let monday = next_monday(&tz);
    let email = unique("pat");
    let patient_id = app.create_user(&email, Role::Patient, None, None).await;
    let patient = token(&app, &email).await;
    let book = format!("/api/v1/patients/{patient_id}/appointments");
    let try_book = |start: String| {
        let app = &app;
        let book = book.clone();
        let patient = patient.clone();
        let doctor = c.doctor_id;
        async move { send(app, "POST", &book, &patient, Some(json!({"clinician_id": doctor, "starts_at": start}))).await }
    };
    let yesterday = jiff::Timestamp::now().checked_sub(24.hours()).expect("t").to_string();
    for (start, status, code) in [
        (yesterday, 422, "in_the_past"),
        (at(&tz, monday, 13, 0), 422, "outside_working_hours"),
        (at(&tz, monday, 9, 10), 422, "outside_working_hours"),
        ("next monday".to_owned(), 400, "invalid_value"),
    ] {
        let (s, v) = try_book(start.clone()).await;
        assert_eq!((s, v["code"].as_str()), (status, Some(code)), "{start}: {v}");
    }
    let (status, v) = send(
        &app,
        "POST",
        &format!("/api/v1/clinicians/{}/exceptions", c.doctor_id),
        &c.doctor,
        Some(json!({"starts_at": at(&tz, monday, 11, 0), "ends_at": at(&tz, monday, 12, 0), "kind": "leave"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (s, v) = try_book(at(&tz, monday, 11, 30)).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("clinician_unavailable")));
    let (s, v) = send(
        &app,
        "POST",
        &book,
        &patient,
        Some(json!({"clinician_id": Uuid::now_v7(), "starts_at": at(&tz, monday, 9, 0)})),
    )
    .await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_value")), "an unknown clinician: {v}");
    let (_, list) = send(&app, "GET", "/api/v1/appointments", &patient, None).await;
    assert!(list["items"].as_array().expect("items").is_empty(), "refused bookings stored nothing");

    let (s, first) = try_book(at(&tz, monday, 9, 0)).await;
    assert_eq!(s, 201, "{first}");
    assert_eq!(first["status"], "scheduled");
    // Someone else's record: not found.
    let other = app.create_user(&unique("other"), Role::Patient, None, None).await;
    let (s, _) = send(
        &app,
        "POST",
        &format!("/api/v1/patients/{other}/appointments"),
        &patient,
        Some(json!({"clinician_id": c.doctor_id, "starts_at": at(&tz, monday, 10, 0)})),
    )
    .await;
    assert_eq!(s, 404);
    // The admin books the 09:30 slot for the other patient; moving onto it is refused.
    let (s, _) = send(
        &app,
        "POST",
        &format!("/api/v1/patients/{other}/appointments"),
        &c.admin,
        Some(json!({"clinician_id": c.doctor_id, "starts_at": at(&tz, monday, 9, 30)})),
    )
    .await;
    assert_eq!(s, 201);
    let appt = format!("/api/v1/appointments/{}", first["id"].as_str().expect("id"));
    let (s, v) = send(&app, "PATCH", &appt, &patient, Some(json!({"starts_at": at(&tz, monday, 9, 30)}))).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("slot_taken")));
    let (s, v) = send(&app, "PATCH", &appt, &patient, Some(json!({"starts_at": at(&tz, monday, 10, 0)}))).await;
    assert_eq!((s, v["starts_at"].as_str()), (200, Some(at(&tz, monday, 10, 0).as_str())), "{v}");
    let (s, v) = send(&app, "PATCH", &appt, &c.doctor, Some(json!({"status": "completed"}))).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("conflict")), "not started yet");
    let (s, _) = send(&app, "PATCH", &appt, &patient, Some(json!({"status": "no_show"}))).await;
    assert_eq!(s, 403);
    let (s, v) = send(&app, "POST", &format!("{appt}/cancel"), &patient, Some(json!({"reason": ""}))).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_value")));
    let (s, v) =
        send(&app, "POST", &format!("{appt}/cancel"), &patient, Some(json!({"reason": "feeling better"}))).await;
    assert_eq!(
        (s, v["status"].as_str(), v["cancel_reason"].as_str()),
        (200, Some("cancelled"), Some("feeling better"))
    );
    let (s, v) = send(&app, "POST", &format!("{appt}/cancel"), &patient, Some(json!({"reason": "again"}))).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("appointment_not_scheduled")));
    // The slot is free again.
    let (s, _) = try_book(at(&tz, monday, 10, 0)).await;
    assert_eq!(s, 201);

    // Lists: the patient sees their own two; the other nurse (cardiology) sees none.
    let (_, mine) = send(&app, "GET", "/api/v1/appointments?limit=1", &patient, None).await;
    assert_eq!(mine["items"].as_array().expect("items").len(), 1);
    let cursor = mine["next_cursor"].as_str().expect("next page").to_owned();
    let (_, page2) = send(&app, "GET", &format!("/api/v1/appointments?limit=1&cursor={cursor}"), &patient, None).await;
    assert_eq!(page2["items"].as_array().expect("items").len(), 1);
    assert_ne!(page2["items"][0]["id"], mine["items"][0]["id"]);
    let (_, theirs) = send(&app, "GET", "/api/v1/appointments", &c.other_nurse, None).await;
    assert!(theirs["items"].as_array().expect("items").is_empty());
    let (_, all) = send(&app, "GET", "/api/v1/appointments?status=scheduled", &c.admin, None).await;
    assert_eq!(all["items"].as_array().expect("items").len(), 2);
}

#[actix_web::test]
async fn two_bookings_of_one_slot_at_the_same_moment_exactly_one_succeeds() {
    let (app, c, tz) = paris(4).await;
    let monday = next_monday(&tz);
    let mut patients = Vec::new();
    for i in 0..8 {
        let p = new_patient(&app, &c.admin, json!({"full_name": format!("Racer {i}")})).await;
        patients.push(p["id"].as_str().expect("id").to_owned());
    }
    for (h, m) in [(9, 0), (9, 30), (10, 0)] {
        let start = at(&tz, monday, h, m);
        let attempts = patients.iter().map(|p| {
            let app = &app;
            let admin = c.admin.clone();
            let body = json!({"clinician_id": c.doctor_id, "starts_at": start});
            async move { send(app, "POST", &format!("/api/v1/patients/{p}/appointments"), &admin, Some(body)).await }
        });
        let results = futures_util::future::join_all(attempts).await;
        let won = results.iter().filter(|(s, _)| *s == 201).count();
        let lost = results.iter().filter(|(s, v)| *s == 409 && v["code"] == "slot_taken").count();
        assert_eq!((won, lost), (1, 7), "{start}: {results:?}");
    }
    let (_, all) = send(&app, "GET", "/api/v1/appointments?status=scheduled", &c.admin, None).await;
    assert_eq!(all["items"].as_array().expect("items").len(), 3);
}

#[actix_web::test]
async fn reminders_are_queued_as_durable_jobs_and_skip_cancelled_appointments() {
    let app = spawn_app_with(
        |s| {
            s.clinic.time_zone = "Europe/Paris".into();
            s.clinic.reminder_hours_before = vec![24, 2];
        },
        Vec::new(),
    )
    .await;
    let c = clinic(&app).await;
    let hours: Vec<Value> = (1..=7).map(|d| json!({"weekday": d, "start_minute": 540, "end_minute": 720})).collect();
    send(&app, "PUT", &format!("/api/v1/clinicians/{}/hours", c.doctor_id), &c.doctor, Some(json!({"hours": hours})))
        .await;
    let tz = jiff::tz::TimeZone::get("Europe/Paris").expect("tz");
    let monday = next_monday(&tz);
    let email = unique("remind");
    let pid = app.create_user(&email, Role::Patient, None, None).await;
    let patient = token(&app, &email).await;
    let (s, appt) = send(
        &app,
        "POST",
        &format!("/api/v1/patients/{pid}/appointments"),
        &patient,
        Some(
            json!({"clinician_id": c.doctor_id, "starts_at": at(&tz, monday, 9, 0), "reason": "chemotherapy cycle 2"}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{appt}");
    let start: jiff::Timestamp = appt["starts_at"].as_str().expect("start").parse().expect("ts");
    let start = start.as_millisecond();

    static JOBS: Sql =
        Sql::new("SELECT id, payload, run_at FROM jobs WHERE kind = 'appointment.reminder' ORDER BY run_at");
    let jobs: Vec<(i64, String, i64)> =
        careport_store::fetch!(app.db.reader(), (i64, String, i64), fetch_all, &JOBS).expect("jobs");
    let run_at: Vec<i64> = jobs.iter().map(|j| j.2).collect();
    assert_eq!(run_at, vec![start - 24 * 3_600_000, start - 2 * 3_600_000]);
    assert!(!jobs[0].1.contains("chemotherapy"), "no visit reason in the queue");

    // Run the reminder now, as the runner will at its hour: the patient gets an e-mail.
    let mailer =
        Arc::new(careport_actors::mail::Mailer::new(&app.settings.mail, app.data_dir.join("outbox")).expect("mailer"));
    let handler = careport_actors::clinic::ReminderHandler::new(
        app.db.clone(),
        mailer,
        tz.clone(),
        app.settings.public_url.clone(),
    );
    let job = |payload: &str| careport_store::Job {
        id: jobs[0].0,
        kind: "appointment.reminder".into(),
        payload: payload.to_owned(),
        state: "running".into(),
        priority: 0,
        attempts: 1,
        max_attempts: 5,
        run_at: 0,
        lease_owner: None,
        lease_until: None,
        last_error: None,
        created_at: 0,
        finished_at: None,
    };
    handler.run(job(&jobs[0].1)).await.expect("reminder");
    let mail = app.email_to(&email).await;
    assert!(mail.contains("Appointment reminder") && mail.contains("09:00"), "{mail}");
    assert!(!mail.contains("chemotherapy"), "the reason stays out of e-mail");

    // Cancelled: the second reminder sends nothing.
    let (s, _) = send(
        &app,
        "POST",
        &format!("/api/v1/appointments/{}/cancel", appt["id"].as_str().expect("id")),
        &patient,
        Some(json!({"reason": "moved away"})),
    )
    .await;
    assert_eq!(s, 200);
    handler.run(job(&jobs[1].1)).await.expect("reminder");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.emails_to_at_least(&email, 1).await.len(), 1, "no reminder for a cancelled appointment");
}

#[actix_web::test]
async fn statistics_and_each_roles_dashboard() {
    let (app, c, tz) = paris(1).await;
    let monday = next_monday(&tz);
    let email = unique("dash");
    let pid = app.create_user(&email, Role::Patient, None, None).await;
    let patient = token(&app, &email).await;
    send(
        &app,
        "POST",
        &format!("/api/v1/patients/{pid}/assignments"),
        &c.admin,
        Some(json!({"clinician_id": c.doctor_id, "cancer_type_id": "uterine-leiomyosarcoma-ulms"})),
    )
    .await;
    let (s, _) = send(
        &app,
        "POST",
        &format!("/api/v1/patients/{pid}/appointments"),
        &patient,
        Some(json!({"clinician_id": c.doctor_id, "starts_at": at(&tz, monday, 11, 0)})),
    )
    .await;
    assert_eq!(s, 201);

    let (s, stats) = send(&app, "GET", "/api/v1/admin/stats", &c.admin, None).await;
    assert_eq!(s, 200, "{stats}");
    assert_eq!(stats["users_by_role"]["clinician"], 3);
    assert_eq!(stats["appointments_by_status"]["scheduled"], 1);
    let by_type = stats["patients_by_cancer_type"].as_array().expect("types");
    assert!(
        by_type.iter().any(|t| t["cancer_type_id"] == "uterine-leiomyosarcoma-ulms" && t["patients"] == 1),
        "{stats}"
    );
    let weeks = stats["appointments_by_week"].as_array().expect("weeks");
    assert_eq!(weeks.iter().map(|w| w["by_status"]["scheduled"].as_i64().unwrap_or(0)).sum::<i64>(), 1);
    let (s, _) = send(&app, "GET", "/api/v1/admin/stats", &c.doctor, None).await;
    assert_eq!(s, 403);

    let (_, d) = send(&app, "GET", "/api/v1/dashboard", &patient, None).await;
    assert_eq!(d["role"], "patient");
    assert_eq!(d["next_appointment"]["starts_at"], at(&tz, monday, 11, 0));
    assert_eq!(d["care_team"][0]["clinician_id"], c.doctor_id.to_string());
    let (_, d) = send(&app, "GET", "/api/v1/dashboard", &c.doctor, None).await;
    assert_eq!((d["role"].as_str(), d["patients"].as_i64()), (Some("clinician"), Some(1)), "{d}");
    assert_eq!(
        d["upcoming"].as_array().map(Vec::len).unwrap_or(0) + d["today"].as_array().map(Vec::len).unwrap_or(0),
        1
    );
    let (_, d) = send(&app, "GET", "/api/v1/dashboard", &c.admin, None).await;
    assert_eq!(d["stats"]["appointments_by_status"]["scheduled"], 1);
}

#[actix_web::test]
async fn cached_reads_are_never_stale_after_a_write() {
    let (app, c, tz) = paris(1).await;
    let monday = next_monday(&tz);
    let slots = format!(
        "/api/v1/clinicians/{}/slots?from={}&to={}",
        c.doctor_id,
        at(&tz, monday, 0, 0),
        at(&tz, monday.tomorrow().expect("d"), 0, 0)
    );
    let count = |v: &Value| v["items"].as_array().map(Vec::len).unwrap_or(0);
    // Read twice (the second from the cache when Redis is on), write, read again.
    for _ in 0..2 {
        let (_, v) = send(&app, "GET", &slots, &c.nurse, None).await;
        assert_eq!(count(&v), 6);
    }
    let (s, _) = send(
        &app,
        "PUT",
        &format!("/api/v1/clinicians/{}/hours", c.doctor_id),
        &c.doctor,
        Some(json!({"hours": [{"weekday": 1, "start_minute": 540, "end_minute": 600}]})),
    )
    .await;
    assert_eq!(s, 200);
    let (_, v) = send(&app, "GET", &slots, &c.nurse, None).await;
    assert_eq!(count(&v), 2, "new hours at once: {v}");
    for _ in 0..2 {
        let (_, v) = send(&app, "GET", &format!("/api/v1/clinicians/{}", c.doctor_id), &c.nurse, None).await;
        assert_eq!(v["slot_minutes"], 30);
    }
    send(&app, "PATCH", &format!("/api/v1/clinicians/{}", c.doctor_id), &c.doctor, Some(json!({"slot_minutes": 20})))
        .await;
    let (_, v) = send(&app, "GET", &format!("/api/v1/clinicians/{}", c.doctor_id), &c.nurse, None).await;
    assert_eq!(v["slot_minutes"], 20);
    let (_, v) = send(&app, "GET", &slots, &c.nurse, None).await;
    assert_eq!(count(&v), 3, "20-minute slots from 09:00 to 10:00");

    let (_, tree) = send(&app, "GET", "/api/v1/cancer-types", &c.nurse, None).await;
    assert!(tree.to_string().contains("Uterine"));
    let (s, _) =
        send(&app, "PATCH", "/api/v1/admin/cancer-types/uterine", &c.admin, Some(json!({"name": "Uterine cancers"})))
            .await;
    assert_eq!(s, 200);
    let (_, tree) = send(&app, "GET", "/api/v1/cancer-types", &c.nurse, None).await;
    assert!(tree.to_string().contains("Uterine cancers"), "renamed at once");

    // With Redis, the reads above went through the cache.
    if let Some(url) = careport_tests::redis_url() {
        let client = redis::Client::open(url).expect("redis");
        let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
        let pattern = format!("{}cache:*", app.settings.redis.prefix);
        let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(&mut conn).await.expect("keys");
        assert!(keys.iter().any(|k| k.contains(":cancer_types:active")), "{keys:?}");
        assert!(keys.iter().any(|k| k.ends_with(":hours")), "{keys:?}");
    }
}
