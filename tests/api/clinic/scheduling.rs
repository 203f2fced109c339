//! Clinicians' hours and absences, free slots, booking rules, the double-booking race and
//! reminders.

use careport_domain::Role;
use careport_store::sql::Sql;
use careport_tests::spawn_app_with;
use jiff::ToSpan;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{at, clinic, new_patient, next_monday, paris, send, token, unique};

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

    // Above, a loser may have been refused by the service's check (the winner had committed) or
    // by the store. The guard that decides a true race is the store's unique index: eight
    // inserts of one slot that all skip the check, at once — one is stored, seven are SlotTaken.
    let starts_at = at(&tz, monday, 11, 0).parse::<jiff::Timestamp>().expect("ts").as_millisecond();
    let inserts = patients.iter().map(|p| {
        let db = app.db.clone();
        let row = careport_store::appointments::AppointmentRow {
            id: Uuid::now_v7(),
            patient_id: p.parse().expect("uuid"),
            clinician_id: c.doctor_id,
            starts_at,
            ends_at: starts_at + 30 * 60_000,
            status: "scheduled".into(),
            reason: String::new(),
            cancel_reason: None,
            booked_by: None,
            created_at: starts_at,
            updated_at: starts_at,
        };
        async move { careport_store::appointments::insert(&db, &row).await }
    });
    let results = futures_util::future::join_all(inserts).await;
    let stored = results.iter().filter(|r| r.is_ok()).count();
    let taken = results.iter().filter(|r| matches!(r, Err(careport_store::appointments::BookError::SlotTaken))).count();
    assert_eq!((stored, taken), (1, 7), "the unique index decides the race");
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

    // Make the first reminder due now: the app's own job runner claims it and the patient gets
    // an e-mail (the handler is the one the server registers, run the way it runs in production).
    static DUE_NOW: Sql = Sql::new("UPDATE jobs SET run_at = $2 WHERE id = $1");
    static STATE: Sql = Sql::new("SELECT state FROM jobs WHERE id = $1");
    let run_now = |id: i64| {
        let db = app.db.clone();
        async move {
            careport_store::exec!(db.writer(), &DUE_NOW, id, careport_domain::time::now_ms()).expect("due now");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                let state = careport_store::scalar!(db.reader(), String, fetch_one, &STATE, id).expect("state");
                if state == "done" {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "the runner did not finish reminder {id}: {state}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    run_now(jobs[0].0).await;
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
    run_now(jobs[1].0).await;
    assert_eq!(app.emails_to_at_least(&email, 1).await.len(), 1, "no reminder for a cancelled appointment");
}

/// A patient cannot take every free slot: at most `clinic.max_open_per_clinician` scheduled
/// future appointments with one clinician (and `max_open_total` in all) when booking for
/// themself, and `bookings_per_hour` requests; the care team books past the limit.
#[actix_web::test]
async fn a_patient_booking_for_themself_holds_a_limited_number_of_appointments() {
    let (app, c, tz) = paris(1).await;
    let monday = next_monday(&tz);
    let email = unique("pat");
    let patient_id = app.create_user(&email, Role::Patient, None, None).await;
    let patient = token(&app, &email).await;
    let book = format!("/api/v1/patients/{patient_id}/appointments");
    let body = |h: i8, m: i8| Some(json!({"clinician_id": c.doctor_id, "starts_at": at(&tz, monday, h, m)}));
    for (h, m) in [(9, 0), (9, 30), (10, 0)] {
        let (s, v) = send(&app, "POST", &book, &patient, body(h, m)).await;
        assert_eq!(s, 201, "{h}:{m}: {v}");
    }
    let (s, v) = send(&app, "POST", &book, &patient, body(10, 30)).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("too_many_appointments")), "the fourth: {v}");
    let (_, list) = send(&app, "GET", "/api/v1/appointments", &patient, None).await;
    assert_eq!(list["items"].as_array().expect("items").len(), 3, "the refused booking stored nothing");
    // Staff book what care needs (an administrator here; the doctor is not this patient's).
    let (s, v) = send(&app, "POST", &book, &c.admin, body(10, 30)).await;
    assert_eq!(s, 201, "{v}");
}

/// Booking requests of a patient for themself are rate-limited: 429 with `Retry-After`.
#[actix_web::test]
async fn a_patient_s_booking_requests_are_rate_limited() {
    let app = careport_tests::spawn_app_with(|s| s.clinic.bookings_per_hour = 2, Vec::new()).await;
    let c = super::clinic(&app).await;
    let email = unique("pat");
    let patient_id = app.create_user(&email, Role::Patient, None, None).await;
    let patient = token(&app, &email).await;
    let book = app.url(&format!("/api/v1/patients/{patient_id}/appointments"));
    let body = json!({"clinician_id": c.doctor_id, "starts_at": "2020-01-01T09:00:00Z"});
    for _ in 0..2 {
        let res = app.client.post(&book).bearer_auth(&patient).json(&body).send().await.expect("send");
        assert_eq!(res.status(), 422, "in the past, but counted");
    }
    let res = app.client.post(&book).bearer_auth(&patient).json(&body).send().await.expect("send");
    assert_eq!(res.status(), 429);
    assert!(res.headers().get("retry-after").is_some(), "Retry-After is sent");
    let v: Value = res.json().await.expect("json");
    assert_eq!(v["code"], "too_many_requests");
}
