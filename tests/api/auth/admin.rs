//! Administration of accounts: deactivation, role changes, listing and search.

use super::*;

#[actix_web::test]
async fn deactivating_an_account_ends_its_sessions_at_once() {
    let app = spawn_app().await;
    let admin = unique("admin");
    let user = unique("user");
    app.create_user(&admin, Role::Admin, None, None).await;
    let uid = app.create_user(&user, Role::Patient, None, None).await;
    let ta = app.login(&admin).await["access_token"].as_str().expect("t").to_owned();
    let tu = app.login(&user).await["access_token"].as_str().expect("t").to_owned();
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/admin/users/{uid}")))
        .bearer_auth(&ta)
        .json(&json!({"active": false}))
        .send()
        .await
        .expect("patch");
    assert_eq!(res.status(), 200);
    assert_eq!(app.get_as("/api/v1/auth/me", &tu).await.status(), 401);
    let login = app.post_json("/api/v1/auth/login", None, &json!({"email": user, "password": PASSWORD})).await;
    assert_eq!(code(login).await, (403, "account_inactive".into()));
}

#[actix_web::test]
async fn a_role_change_is_audited_and_ends_the_sessions_that_carry_the_old_role() {
    let app = spawn_app().await;
    let (admin, user) = (unique("admin"), unique("nurse"));
    app.create_user(&admin, Role::Admin, None, None).await;
    let uid = app.create_user(&user, Role::Clinician, Some(StaffRole::Nurse), Some("oncology")).await;
    let ta = app.login(&admin).await["access_token"].as_str().expect("t").to_owned();
    let tu = app.login(&user).await["access_token"].as_str().expect("t").to_owned();
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/admin/users/{uid}")))
        .bearer_auth(&ta)
        .json(&json!({"staff_role": "doctor", "department": "cardiology"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(res.status(), 200);
    let account: Value = res.json().await.expect("json");
    assert_eq!((account["staff_role"].as_str(), account["department"].as_str()), (Some("doctor"), Some("cardiology")));
    assert_eq!(app.get_as("/api/v1/auth/me", &tu).await.status(), 401, "the old token carried the old facts");
    let bad = app.get_as("/api/v1/admin/audit?actor=not-a-uuid", &ta).await;
    assert_eq!(code(bad).await, (400, "invalid_query".into()));
    let trail: Value =
        app.get_as("/api/v1/admin/audit?action=admin.user_update", &ta).await.json().await.expect("json");
    let events = trail["items"].as_array().expect("events");
    assert_eq!(events.len(), 1);
    assert!(events[0]["detail"].as_str().expect("detail").contains("staff_role"), "{}", events[0]);
    // Invalid changes change nothing.
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/admin/users/{uid}")))
        .bearer_auth(&ta)
        .json(&json!({"staff_role": null}))
        .send()
        .await
        .expect("patch");
    assert_eq!(code(res).await, (400, "invalid_value".into()), "a clinician needs a staff role");
    let me: Value = app
        .get_as("/api/v1/auth/me", app.login(&user).await["access_token"].as_str().expect("t"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!((me["role"].as_str(), me["staff_role"].as_str()), (Some("clinician"), Some("doctor")));
}

#[actix_web::test]
async fn an_admin_lists_accounts_a_page_at_a_time() {
    let app = spawn_app().await;
    let admin = unique("admin");
    app.create_user(&admin, Role::Admin, None, None).await;
    for i in 0..3 {
        app.create_user(&unique(&format!("p{i}")), Role::Patient, None, None).await;
    }
    let ta = app.login(&admin).await["access_token"].as_str().expect("t").to_owned();
    let first: Value = app.get_as("/api/v1/admin/users?role=patient&limit=2", &ta).await.json().await.expect("json");
    assert_eq!(first["items"].as_array().expect("users").len(), 2);
    let after = first["next_cursor"].as_str().expect("cursor");
    let second: Value = app
        .get_as(&format!("/api/v1/admin/users?role=patient&limit=2&cursor={after}"), &ta)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(second["items"].as_array().expect("users").len(), 1);
    assert!(second["next_cursor"].is_null());
    assert!(first["items"][0].get("password_hash").is_none());

    // Search by part of the address and by status.
    let needle = unique("needle");
    let nid = app.create_user(&needle, Role::Clinician, Some(StaffRole::Doctor), Some("oncology")).await;
    let part = &needle[..needle.find('@').expect("@")];
    let found: Value = app
        .get_as(&format!("/api/v1/admin/users?email={}", part.to_uppercase()), &ta)
        .await
        .json()
        .await
        .expect("json");
    let found = found["items"].as_array().expect("users");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], nid.to_string());
    app.client
        .patch(app.url(&format!("/api/v1/admin/users/{nid}")))
        .bearer_auth(&ta)
        .json(&json!({"active": false}))
        .send()
        .await
        .expect("patch");
    let inactive: Value = app.get_as("/api/v1/admin/users?status=inactive", &ta).await.json().await.expect("json");
    assert_eq!(inactive["items"].as_array().expect("users").len(), 1);
    let wild: Value = app.get_as("/api/v1/admin/users?email=%25", &ta).await.json().await.expect("json");
    assert!(wild["items"].as_array().expect("users").len() >= 5, "a % is taken literally, i.e. dropped");
    let bad = app.get_as("/api/v1/admin/users?status=sleeping", &ta).await;
    assert_eq!(code(bad).await, (400, "invalid_query".into()));
}
