//! The audit trail: events for reads of patient data and denials, the patient's access log,
//! the admin listing, tamper evidence (edits and deletions are named) and failing closed.

use careport_domain::Role;
use careport_policy::StaffRole;
use careport_store::{Db, assignments, audit};
use careport_tests::{TestApp, spawn_app};
use serde_json::{Value, json};
use uuid::Uuid;

fn unique(name: &str) -> String {
    format!("{name}-{}@example.org", &Uuid::new_v4().simple().to_string()[..8])
}

async fn sql(db: &Db, statement: &str) {
    let q = sqlx::AssertSqlSafe(statement.to_owned());
    match db {
        Db::Sqlite { write, .. } => sqlx::query(q).execute(write).await.map(|_| ()),
        Db::Postgres(p) => sqlx::query(q).execute(p).await.map(|_| ()),
    }
    .expect(statement);
}

struct Ward {
    patient: Uuid,
    t_patient: String,
    t_doctor: String,
    t_admin: String,
    doctor: Uuid,
}

async fn ward(app: &TestApp) -> Ward {
    let (p, d, a) = (unique("pat"), unique("doc"), unique("adm"));
    let patient = app.create_user(&p, Role::Patient, None, None).await;
    let doctor = app.create_user(&d, Role::Clinician, Some(StaffRole::Doctor), Some("oncology")).await;
    app.create_user(&a, Role::Admin, None, None).await;
    assignments::assign(&app.db, doctor, patient, None, None).await.expect("assign");
    let tok = |v: Value| v["access_token"].as_str().expect("t").to_owned();
    Ward {
        patient,
        doctor,
        t_patient: tok(app.login(&p).await),
        t_doctor: tok(app.login(&d).await),
        t_admin: tok(app.login(&a).await),
    }
}

#[actix_web::test]
async fn a_patient_sees_who_opened_their_record_and_an_admin_can_filter_the_trail() {
    let app = spawn_app().await;
    let w = ward(&app).await;
    assert_eq!(app.get_as(&format!("/api/v1/patients/{}", w.patient), &w.t_doctor).await.status(), 200);
    // The patient's own reads are not "someone opened my record".
    assert_eq!(app.get_as(&format!("/api/v1/patients/{}", w.patient), &w.t_patient).await.status(), 200);
    let log: Value = app.get_as("/api/v1/me/access-log", &w.t_patient).await.json().await.expect("json");
    let entries = log["items"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{log}");
    assert_eq!(entries[0]["actor_id"], w.doctor.to_string());
    assert_eq!(entries[0]["actor_role"], "clinician");
    assert_eq!(entries[0]["action"], "patient.read");
    assert!(entries[0]["actor_name"].as_str().is_some());

    let url = format!("/api/v1/admin/audit?patient={}&action=patient.read", w.patient);
    let trail: Value = app.get_as(&url, &w.t_admin).await.json().await.expect("json");
    let events = trail["items"].as_array().expect("events");
    assert_eq!(events.len(), 2);
    for e in events {
        assert!(e["ip"].as_str().is_some_and(|ip| !ip.is_empty()), "{e}");
        assert!(e["request_id"].as_str().is_some_and(|r| !r.is_empty()), "{e}");
        assert_eq!(e["outcome"], "success");
    }
    let by_actor: Value = app
        .get_as(&format!("/api/v1/admin/audit?actor={}&limit=1", w.doctor), &w.t_admin)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(by_actor["items"].as_array().expect("events").len(), 1);
    assert!(by_actor["next_cursor"].as_str().is_some(), "paginated");
    // Not for anyone else.
    assert_eq!(app.get_as("/api/v1/admin/audit", &w.t_doctor).await.status(), 403);
}

#[actix_web::test]
async fn a_denied_read_answers_404_and_is_audited() {
    let app = spawn_app().await;
    let w = ward(&app).await;
    let other = app.create_user(&unique("other"), Role::Patient, None, None).await;
    assert_eq!(app.get_as(&format!("/api/v1/patients/{other}"), &w.t_doctor).await.status(), 404);
    assert_eq!(app.get_as(&format!("/api/v1/patients/{}", Uuid::now_v7()), &w.t_doctor).await.status(), 404, "alike");
    let denied = audit::list(&app.db, &audit::Filter { patient: Some(other), limit: 10, ..Default::default() })
        .await
        .expect("list");
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].outcome, "denied");
    assert_eq!(denied[0].actor_id, Some(w.doctor));
}

#[actix_web::test]
async fn verify_names_the_first_edited_or_deleted_event() {
    let app = spawn_app().await;
    let w = ward(&app).await;
    for _ in 0..3 {
        app.get_as(&format!("/api/v1/patients/{}", w.patient), &w.t_doctor).await;
    }
    let clean = audit::verify(&app.db, &app.chain_key()).await.expect("verify");
    assert!(clean.broken.is_none(), "{clean:?}");
    let n = clean.events;
    assert!(n >= 6, "{n}");

    // Edit an event in the middle: that event is named.
    sql(&app.db, "UPDATE audit_events SET outcome = 'denied' WHERE seq = 3").await;
    let edited = audit::verify(&app.db, &app.chain_key()).await.expect("verify");
    assert_eq!(edited.broken.as_ref().map(|b| b.0), Some(3), "{edited:?}");
    assert!(edited.broken.expect("broken").1.contains("altered"));
    sql(&app.db, "UPDATE audit_events SET outcome = 'success' WHERE seq = 3").await;
    assert!(audit::verify(&app.db, &app.chain_key()).await.expect("verify").broken.is_none(), "restored");
    // Without the key (a chain recomputed by whoever can only write the database), it fails.
    let other = audit::ChainKey::from_master_key("not-the-master-key");
    assert!(audit::verify(&app.db, &other).await.expect("verify").broken.is_some());

    // Delete one: the gap is named.
    sql(&app.db, "DELETE FROM audit_events WHERE seq = 4").await;
    let deleted = audit::verify(&app.db, &app.chain_key()).await.expect("verify");
    assert_eq!(deleted.broken.as_ref().map(|b| b.0), Some(4), "{deleted:?}");
    assert!(deleted.broken.expect("broken").1.contains("missing"));

    // Delete the newest: the head names what is missing.
    let app2 = spawn_app().await;
    let w2 = ward(&app2).await;
    app2.get_as(&format!("/api/v1/patients/{}", w2.patient), &w2.t_doctor).await;
    let total = audit::verify(&app2.db, &app2.chain_key()).await.expect("verify").events;
    sql(&app2.db, &format!("DELETE FROM audit_events WHERE seq = {total}")).await;
    let tail = audit::verify(&app2.db, &app2.chain_key()).await.expect("verify");
    assert_eq!(tail.broken.as_ref().map(|b| b.0), Some(total), "{tail:?}");

    // Roll the head back to the event before, as someone hiding the deletion would: without
    // the key, the head's MAC gives it away.
    sql(
        &app2.db,
        &format!(
            "UPDATE audit_head SET seq = {prev}, hash = (SELECT hash FROM audit_events WHERE seq = {prev})",
            prev = total - 1
        ),
    )
    .await;
    let rolled = audit::verify(&app2.db, &app2.chain_key()).await.expect("verify");
    assert!(rolled.broken.as_ref().is_some_and(|b| b.1.contains("head")), "{rolled:?}");
}

/// The group commit: many writers at once each get their event committed exactly once; a caller
/// that stops waiting (a client hanging up) after its event was queued neither stalls nor loses
/// anyone's event, its own included; the writer serves the next caller; the chain verifies.
#[actix_web::test]
async fn concurrent_writers_share_commits_and_one_that_gives_up_loses_nothing() {
    use careport_actors::audit::{Context, EventExt};
    let app = spawn_app().await;
    let ctx = Context::default();
    let action = format!("test.group.{}", Uuid::new_v4().simple());
    let mut waiting = Vec::new();
    for i in 0..200 {
        let (writer, event) = (app.services.audit.clone(), ctx.event(&action, "success").detail(i.to_string()));
        let write = async move { writer.one(event).await };
        if i % 3 == 0 {
            // Polled once (the event is queued), then dropped.
            let mut write = Box::pin(write);
            assert!(futures_util::poll!(&mut write).is_pending(), "a commit cannot finish within the first poll");
            drop(write);
        } else {
            waiting.push(tokio::spawn(write));
        }
    }
    for w in waiting {
        w.await.expect("join").expect("committed");
    }
    app.services.audit.one(ctx.event(&action, "success").detail("after")).await.expect("the writer serves again");
    let filter = audit::Filter { action: Some(action.clone()), limit: 1000, ..Default::default() };
    let rows = audit::list(&app.db, &filter).await.expect("list");
    let mut details: Vec<String> = rows.iter().filter_map(|r| r.detail.clone()).collect();
    details.sort();
    details.dedup();
    assert_eq!((rows.len(), details.len()), (201, 201), "every event once, the dropped callers' too");
    assert!(audit::verify(&app.db, &app.chain_key()).await.expect("verify").broken.is_none());
}

#[actix_web::test]
async fn when_the_audit_trail_cannot_be_written_a_read_of_patient_data_fails() {
    let app = spawn_app().await;
    let w = ward(&app).await;
    sql(&app.db, "ALTER TABLE audit_head RENAME TO audit_head_moved").await;
    let res = app.get_as(&format!("/api/v1/patients/{}", w.patient), &w.t_doctor).await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["code"], "audit_unavailable");
    assert!(body.get("full_name").is_none());
    sql(&app.db, "ALTER TABLE audit_head_moved RENAME TO audit_head").await;
    assert_eq!(app.get_as(&format!("/api/v1/patients/{}", w.patient), &w.t_doctor).await.status(), 200);
}

#[actix_web::test]
async fn a_malformed_id_answers_404_and_cannot_spoil_anyone_elses_audit_events() {
    let app = spawn_app().await;
    let w = ward(&app).await;
    // Percent-decoded NUL and other junk in a path id: 404, and the trail stays writable.
    for path in ["/api/v1/users/%00", "/api/v1/patients/%00abc", "/api/v1/patients/not-a-uuid"] {
        assert_eq!(app.get_as(path, &w.t_doctor).await.status(), 404, "{path}");
    }
    assert_eq!(app.get_as(&format!("/api/v1/patients/{}", w.patient), &w.t_doctor).await.status(), 200);
    assert!(audit::verify(&app.db, &app.chain_key()).await.expect("verify").broken.is_none());
    // A user agent with control characters is stored cleaned, and the chain still verifies.
    let res = app
        .client
        .get(app.url(&format!("/api/v1/patients/{}", w.patient)))
        .bearer_auth(&w.t_doctor)
        .header("user-agent", "evil\tagent")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
    assert!(audit::verify(&app.db, &app.chain_key()).await.expect("verify").broken.is_none());
}

/// Every read of patient data is audited, lists included: one event per list naming the
/// patients it returned (appointments, patients), a record's grants, and a clinician's start
/// page even when nobody was seen recently.
#[actix_web::test]
async fn every_read_of_patient_data_is_audited_lists_included() {
    let app = spawn_app().await;
    let w = ward(&app).await;
    let now = careport_domain::time::now_ms();
    let appointment = careport_store::appointments::AppointmentRow {
        id: Uuid::now_v7(),
        patient_id: w.patient,
        clinician_id: w.doctor,
        starts_at: now + 86_400_000,
        ends_at: now + 86_400_000 + 1_800_000,
        status: "scheduled".into(),
        reason: "follow-up".into(),
        cancel_reason: None,
        booked_by: None,
        created_at: now,
        updated_at: now,
    };
    careport_store::appointments::insert(app.services.store_handle(), &appointment).await.expect("appointment");
    let meta = careport_actors::vault::UploadMeta {
        patient: w.patient,
        record_type: "laboratory-results".into(),
        title: "Full blood count".into(),
        clinical_date: None,
        file_name: "fbc.pdf".into(),
        sensitive: false,
        uploaded_by: w.doctor,
    };
    let body = futures_util::stream::iter(vec![Ok::<_, std::convert::Infallible>(actix_web::web::Bytes::from_static(
        b"%PDF-1.7\nfull blood count",
    ))]);
    let record = app.services.vault.upload(meta, body).await.expect("record").record.id;

    for path in ["/api/v1/appointments", "/api/v1/patients", "/api/v1/dashboard"] {
        assert_eq!(app.get_as(path, &w.t_doctor).await.status(), 200, "{path}");
    }
    assert_eq!(app.get_as(&format!("/api/v1/records/{record}/grants"), &w.t_doctor).await.status(), 200);

    let filter = audit::Filter {
        actor: Some(w.doctor),
        patient: None,
        action: None,
        from: None,
        to: None,
        before: None,
        limit: 100,
    };
    let events = audit::list(&app.db, &filter).await.expect("trail");
    let find = |action: &str| {
        events.iter().find(|e| e.action == action && e.outcome == "success").unwrap_or_else(|| {
            panic!("no {action} event in {:?}", events.iter().map(|e| &e.action).collect::<Vec<_>>())
        })
    };
    let patient = w.patient.to_string();
    assert!(find("appointment.list").detail.as_deref().is_some_and(|d| d.contains(&patient)));
    assert!(find("patient.list").detail.as_deref().is_some_and(|d| d.contains(&patient)));
    assert_eq!(find("record.grant_list").patient_id, Some(w.patient));
    // Nobody seen recently, and still audited: the start page shows today's and upcoming
    // appointments, which name patients.
    assert!(find("dashboard.read").detail.as_deref().is_some_and(|d| d.contains(&patient)));
}

/// Fail closed on every audited read of a record: with the trail unwritable, its content (by
/// the doctor's token, by a signed link, by a range), the record itself, its text and a
/// knowledge search that would find that text all answer 503 `audit_unavailable` and not one
/// byte of what they would have served. Put back, the chain verifies: nothing half-written.
#[actix_web::test]
async fn when_the_audit_trail_cannot_be_written_no_record_byte_or_search_is_served() {
    let c = crate::knowledge::kb_chart().await;
    let content = crate::records::pdf(31, 3000);
    let r = c.upload_pdf(&c.doctor, c.patient_id, "Scan", &content).await;
    let id = r["id"].as_str().expect("id").to_owned();
    let record: Uuid = id.parse().expect("uuid");
    crate::ocr::give_text(&c.app, record).await;
    let (s, v) = c.send("POST", &format!("/api/v1/records/{id}/knowledge"), &c.doctor, None).await;
    assert_eq!(s, 201, "{v}");
    let job = v["job_id"].as_str().expect("job").to_owned();
    assert_eq!(crate::knowledge::finished_as(&c, &job, &c.doctor).await["status"], "done");
    let (s, v) =
        c.send("POST", &format!("/api/v1/records/{id}/links"), &c.doctor, Some(json!({"expires_in": 600}))).await;
    assert_eq!(s, 201, "{v}");
    let link = v["url"].as_str().expect("url").split("link=").nth(1).expect("token").to_owned();
    let by_link = c.app.url(&format!("/api/v1/records/{id}/content?link={link}"));
    let search = json!({"query": "haemoglobin level", "k": 5});

    // Everything is served while the trail is writable (so that a 503 below is the trail's).
    assert_eq!(c.content(&id, Some(&c.doctor), None).await.2, content);
    assert_eq!(c.content(&id, Some(&c.doctor), Some("bytes=0-99")).await.2, &content[..100]);
    assert_eq!(c.app.client.get(&by_link).send().await.expect("link").status(), 200);
    assert_eq!(c.send("GET", &format!("/api/v1/records/{id}"), &c.doctor, None).await.0, 200);
    assert_eq!(c.send("GET", &format!("/api/v1/records/{id}/text"), &c.doctor, None).await.0, 200);
    let (s, found) = c.send("POST", "/api/v1/knowledge/search", &c.doctor, Some(search.clone())).await;
    assert_eq!(s, 200, "{found}");
    assert!(found.to_string().contains("Haemoglobin"), "the search finds the record's text: {found}");

    sql(&c.app.db, "ALTER TABLE audit_head RENAME TO audit_head_moved").await;
    let refused = |what: &str, status: u16, body: &[u8]| {
        assert_eq!(status, 503, "{what}: {}", String::from_utf8_lossy(body));
        let v: Value = serde_json::from_slice(body).unwrap_or_else(|_| panic!("{what}: a JSON error, not content"));
        assert_eq!(v["code"], "audit_unavailable", "{what}: {v}");
        let text = String::from_utf8_lossy(body);
        assert!(!text.contains("Haemoglobin") && !text.contains("Scan"), "{what}: {text}");
        assert!(!body.windows(16).any(|w| content.windows(16).any(|c| c == w)), "{what}: file bytes sent");
    };
    let (s, _, body) = c.content(&id, Some(&c.doctor), None).await;
    refused("content", s, &body);
    let (s, _, body) = c.content(&id, Some(&c.doctor), Some("bytes=0-99")).await;
    refused("a range of the content", s, &body);
    let res = c.app.client.get(&by_link).send().await.expect("link");
    let s = res.status().as_u16();
    refused("content by signed link", s, &res.bytes().await.expect("body"));
    let res = c.app.client.get(&by_link).header("range", "bytes=100-199").send().await.expect("link");
    let s = res.status().as_u16();
    refused("a range by signed link", s, &res.bytes().await.expect("body"));
    for path in [format!("/api/v1/records/{id}"), format!("/api/v1/records/{id}/text")] {
        let res = c.app.client.get(c.app.url(&path)).bearer_auth(&c.doctor).send().await.expect("get");
        let s = res.status().as_u16();
        refused(&path, s, &res.bytes().await.expect("body"));
    }
    let res = c
        .app
        .client
        .post(c.app.url("/api/v1/knowledge/search"))
        .bearer_auth(&c.doctor)
        .json(&search)
        .send()
        .await
        .expect("search");
    let s = res.status().as_u16();
    refused("knowledge search", s, &res.bytes().await.expect("body"));

    sql(&c.app.db, "ALTER TABLE audit_head_moved RENAME TO audit_head").await;
    let verified = audit::verify(&c.app.db, &c.app.chain_key()).await.expect("verify");
    assert!(verified.broken.is_none(), "{verified:?}");
    assert_eq!(c.content(&id, Some(&c.doctor), None).await.2, content, "served again once the trail is back");
}
