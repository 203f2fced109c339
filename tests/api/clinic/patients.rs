//! Patients' records (validation, visibility, pagination, soft delete), account linking and
//! care teams.

use careport_domain::Role;
use careport_policy::StaffRole;
use careport_tests::spawn_app;
use serde_json::{Value, json};

use super::{all_ids, clinic, new_patient, send, token, unique};

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
    let boss = unique("boss");
    app.create_user(&boss, Role::Admin, None, None).await;
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

    // The clinic is told (no name, no address in the message) and confirms the link. Until then
    // the account's own reads of the chart are in the access log like anyone else's — it may be
    // someone who got hold of a mistyped address; after it they count as the patient's.
    let notice = app.email_to(&boss).await;
    assert!(notice.contains("confirm-link"), "{notice}");
    assert!(!notice.contains("Grace") && !notice.contains(&email), "{notice}");
    let own_reads =
        |log: &Value| log["items"].as_array().expect("items").iter().filter(|e| e["actor_id"] == record["id"]).count();
    let (status, log) = send(&app, "GET", "/api/v1/me/access-log?limit=200", &patient, None).await;
    assert_eq!(status, 200, "{log}");
    let before = own_reads(&log);
    assert!(before >= 2, "the unconfirmed account's reads are listed: {log}");
    let confirm = format!("/api/v1/admin/users/{}/confirm-link", record["id"].as_str().expect("id"));
    let (status, _) = send(&app, "POST", &confirm, &patient, None).await;
    assert_eq!(status, 403, "only administrators confirm");
    let (status, _) = send(&app, "POST", &confirm, &c.admin, None).await;
    assert_eq!(status, 204);
    let (status, _) = send(&app, "POST", &confirm, &c.admin, None).await;
    assert_eq!(status, 404, "nothing left to confirm");
    let (status, _) = send(&app, "GET", &path, &patient, None).await;
    assert_eq!(status, 200);
    let (_, log) = send(&app, "GET", "/api/v1/me/access-log?limit=200", &patient, None).await;
    // One more: the first reading of this log, made before the confirmation, is listed too.
    assert_eq!(own_reads(&log), before + 1, "reads after the confirmation are the patient's own: {log}");
    let (_, trail) = send(
        &app,
        "GET",
        &format!("/api/v1/admin/audit?patient={}&limit=100", record["id"].as_str().expect("id")),
        &c.admin,
        None,
    )
    .await;
    let actions: Vec<&str> =
        trail["items"].as_array().expect("events").iter().filter_map(|e| e["action"].as_str()).collect();
    for a in ["patient.chart_linked", "admin.chart_link_confirmed"] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }

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

/// Whoever verifies a chart's address at registration is linked to it: on a chart without an
/// account, only an administrator changes the address (a clinician gets 403 and nothing
/// changes), and the change is audited with the field's name.
#[actix_web::test]
async fn only_an_administrator_changes_the_address_of_a_chart_without_an_account() {
    let app = spawn_app().await;
    let c = clinic(&app).await;
    let first = unique("first");
    let record = new_patient(&app, &c.doctor, json!({"full_name": "Ada Lovelace", "email": first})).await;
    let path = format!("/api/v1/patients/{}", record["id"].as_str().expect("id"));
    let taker = unique("taker");
    let (status, v) = send(&app, "PATCH", &path, &c.doctor, Some(json!({"email": taker}))).await;
    assert_eq!((status, v["code"].as_str()), (403, Some("forbidden")), "{v}");
    let (_, now) = send(&app, "GET", &path, &c.admin, None).await;
    assert_eq!(now["email"], first.as_str(), "nothing changed");
    // Other fields stay the care team's to change.
    let (status, v) = send(&app, "PATCH", &path, &c.doctor, Some(json!({"phone": "555 0101"}))).await;
    assert_eq!(status, 200, "{v}");
    let second = unique("second");
    let (status, v) = send(&app, "PATCH", &path, &c.admin, Some(json!({"email": second}))).await;
    assert_eq!((status, v["email"].as_str()), (200, Some(second.as_str())), "{v}");
    let events = careport_store::audit::list(
        &app.db,
        &careport_store::audit::Filter { action: Some("patient.update".into()), limit: 10, ..Default::default() },
    )
    .await
    .expect("audit");
    assert!(events.iter().any(|e| e.detail.as_deref().is_some_and(|d| d.contains("email"))), "{events:?}");
}
