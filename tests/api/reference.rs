//! The clinic's reference data: languages, departments, the cancer-type tree and its
//! administration; departments given to accounts must exist.

use careport_domain::Role;
use careport_policy::StaffRole;
use careport_tests::spawn_app;
use serde_json::{Value, json};
use uuid::Uuid;

fn unique(name: &str) -> String {
    format!("{name}-{}@example.org", &Uuid::new_v4().simple().to_string()[..8])
}

#[actix_web::test]
async fn the_seeded_reference_data_is_served_in_order() {
    let app = spawn_app().await;
    let langs: Value = app.get("/api/v1/languages").await.json().await.expect("json");
    let codes: Vec<&str> =
        langs["items"].as_array().expect("items").iter().map(|l| l["code"].as_str().expect("code")).collect();
    assert_eq!(codes, ["en", "ar", "zh", "fr", "hi", "es"]);

    let email = unique("pat");
    app.create_user(&email, Role::Patient, None, None).await;
    let t = app.login(&email).await["access_token"].as_str().expect("t").to_owned();
    let depts: Value = app.get_as("/api/v1/departments", &t).await.json().await.expect("json");
    assert!(depts["items"].as_array().expect("items").iter().any(|d| d["id"] == "oncology"));

    let tree: Value = app.get_as("/api/v1/cancer-types", &t).await.json().await.expect("json");
    let top = tree["items"].as_array().expect("items");
    assert_eq!(top.len(), 21);
    assert_eq!(top[0]["name"], "Breast");
    let uterine = top.iter().find(|c| c["id"] == "uterine").expect("uterine");
    assert_eq!(uterine["subtypes"].as_array().expect("subtypes").len(), 14);
    assert!(top.iter().all(|c| c["description"].as_str().is_some_and(|d| d.len() > 20)));

    let subs: Value = app.get_as("/api/v1/cancer-types/breast/subtypes", &t).await.json().await.expect("json");
    assert_eq!(subs["items"][0]["name"], "Invasive Ductal Carcinoma");
    assert_eq!(app.get_as("/api/v1/cancer-types/nope/subtypes", &t).await.status(), 404);
    let found: Value = app.get_as("/api/v1/cancer-types?q=sarcoma", &t).await.json().await.expect("json");
    assert!(found["items"].as_array().expect("items").iter().any(|c| c["id"] == "uterine-leiomyosarcoma-ulms"));
}

#[actix_web::test]
async fn an_admin_adds_renames_and_retires_cancer_types_and_bad_input_changes_nothing() {
    let app = spawn_app().await;
    let admin = unique("admin");
    app.create_user(&admin, Role::Admin, None, None).await;
    let t = app.login(&admin).await["access_token"].as_str().expect("t").to_owned();
    let add = |body: Value| {
        let (app, t) = (&app, t.clone());
        async move { app.post_json("/api/v1/admin/cancer-types", Some(&t), &body).await }
    };

    let res =
        add(json!({"parent_id": "lung", "name": "Small-cell carcinoma", "description": "A fast-growing lung cancer."}))
            .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.expect("json");
    assert_eq!(created["id"], "lung-small-cell-carcinoma");
    assert_eq!(
        add(json!({"parent_id": "lung", "name": "small-cell CARCINOMA", "description": "Again."})).await.status(),
        409
    );
    assert_eq!(
        add(json!({"parent_id": "uterine-uus", "name": "Third level", "description": "No."})).await.status(),
        400
    );
    assert_eq!(add(json!({"parent_id": "nope", "name": "Orphan", "description": "No."})).await.status(), 400);
    assert_eq!(add(json!({"name": "  ", "description": "No."})).await.status(), 400);

    let patch = |id: &str, body: Value| {
        app.client.patch(app.url(&format!("/api/v1/admin/cancer-types/{id}"))).bearer_auth(&t).json(&body).send()
    };
    let res = patch("lung-small-cell-carcinoma", json!({"name": "Small-cell lung carcinoma", "retired": true}))
        .await
        .expect("patch");
    assert_eq!(res.status(), 200);
    let tree: Value = app.get_as("/api/v1/cancer-types", &t).await.json().await.expect("json");
    let lung = tree["items"].as_array().expect("items").iter().find(|c| c["id"] == "lung").expect("lung").clone();
    assert!(lung["subtypes"].as_array().expect("subs").is_empty(), "retired types are not offered");
    let all: Value = app.get_as("/api/v1/cancer-types?include_retired=true", &t).await.json().await.expect("json");
    let lung = all["items"].as_array().expect("items").iter().find(|c| c["id"] == "lung").expect("lung").clone();
    assert_eq!(lung["subtypes"][0]["name"], "Small-cell lung carcinoma");
    assert_eq!(patch("nope", json!({"retired": true})).await.expect("patch").status(), 404);

    // Not for anyone else.
    let nurse = unique("nurse");
    app.create_user(&nurse, Role::Clinician, Some(StaffRole::Nurse), Some("oncology")).await;
    let tn = app.login(&nurse).await["access_token"].as_str().expect("t").to_owned();
    let res = app.post_json("/api/v1/admin/cancer-types", Some(&tn), &json!({"name": "X", "description": "Y"})).await;
    assert_eq!(res.status(), 403);
}

#[actix_web::test]
async fn an_unknown_department_is_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let admin = unique("admin");
    app.create_user(&admin, Role::Admin, None, None).await;
    let t = app.login(&admin).await["access_token"].as_str().expect("t").to_owned();
    let email = unique("doc");
    let res = app
        .post_json(
            "/api/v1/admin/users",
            Some(&t),
            &json!({"email": email, "password": "violet-otter-harbour-42", "role": "clinician", "staff_role": "doctor", "department": "astrology"}),
        )
        .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.expect("json");
    assert!(body["message"].as_str().expect("message").contains("department"));
    let users: Value = app.get_as("/api/v1/admin/users?role=clinician", &t).await.json().await.expect("json");
    assert!(users["items"].as_array().expect("users").is_empty());
}

/// The twenty-one record types are seeded, and free text finds its type with a score.
#[actix_web::test]
async fn record_types_are_seeded_and_free_text_is_matched_to_them() {
    let app = careport_tests::spawn_app().await;
    let email = format!("nurse-{}@example.org", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    app.create_user(
        &email,
        careport_domain::Role::Clinician,
        Some(careport_policy::StaffRole::Nurse),
        Some("oncology"),
    )
    .await;
    let token = app.login(&email).await["access_token"].as_str().expect("token").to_owned();
    let all: serde_json::Value = app.get_as("/api/v1/record-types", &token).await.json().await.expect("json");
    assert_eq!(all["items"].as_array().map(Vec::len), Some(21));
    for (q, want) in [
        ("lab result", "laboratory-results"),
        ("CT report", "radiology-reports"),
        ("discharge letter", "discharge-summaries"),
        ("chemo", "chemotherapy-records"),
        ("Pathology reprot", "pathology-reports"),
        ("DICOM", "medical-images"),
    ] {
        let res = app.get_as(&format!("/api/v1/record-types/match?q={}", q.replace(' ', "%20")), &token).await;
        assert_eq!(res.status(), 200);
        let v: serde_json::Value = res.json().await.expect("json");
        assert_eq!(v["items"][0]["id"], want, "{q}: {v}");
        assert!(v["items"][0]["score"].as_f64().unwrap_or(0.0) >= 0.3);
    }
    let res = app.get_as("/api/v1/record-types/match?q=", &token).await;
    assert_eq!(res.status(), 400);
    let none: serde_json::Value =
        app.get_as("/api/v1/record-types/match?q=zzzz%20qqqq", &token).await.json().await.expect("json");
    assert_eq!(none["items"], serde_json::json!([]));
}
