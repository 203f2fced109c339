//! MFA: enrolment, codes that cannot be replayed, recovery codes, an MFA policy per role.

use super::*;

#[actix_web::test]
async fn mfa_enrols_then_requires_a_code_that_cannot_be_replayed_and_recovery_codes_work_once() {
    let app = spawn_app().await;
    let email = unique("mfa");
    app.create_user(&email, Role::Patient, None, None).await;
    let pair = app.login(&email).await;
    let t = pair["access_token"].as_str().expect("t");
    let enrol: Value = app
        .post_json("/api/v1/auth/mfa/enrol", Some(t), &json!({"password": PASSWORD}))
        .await
        .json()
        .await
        .expect("json");
    let secret = enrol["secret"].as_str().expect("secret").to_owned();
    assert!(enrol["otpauth_uri"].as_str().expect("uri").starts_with("otpauth://totp/careport:"));
    let bad = app.post_json("/api/v1/auth/mfa/confirm", Some(t), &json!({"code": "000000"})).await;
    assert_eq!(bad.status(), 401);
    // Confirm with the previous step's code, so that the current one is still unused.
    let confirm = app.post_json("/api/v1/auth/mfa/confirm", Some(t), &json!({"code": current_code(&secret, -1)})).await;
    assert_eq!(confirm.status(), 200);
    let codes: Value = confirm.json().await.expect("json");
    let recovery: Vec<String> =
        codes["recovery_codes"].as_array().expect("codes").iter().map(|c| c.as_str().expect("s").to_owned()).collect();
    assert_eq!(recovery.len(), 10);

    let without = app.post_json("/api/v1/auth/login", None, &json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(code(without).await, (401, "mfa_required".into()));
    let now_code = current_code(&secret, 0);
    let with = app
        .post_json("/api/v1/auth/login", None, &json!({"email": email, "password": PASSWORD, "totp": now_code}))
        .await;
    assert_eq!(with.status(), 200);
    let replay = app
        .post_json("/api/v1/auth/login", None, &json!({"email": email, "password": PASSWORD, "totp": now_code}))
        .await;
    assert_eq!(code(replay).await, (401, "mfa_code_invalid".into()));

    let rc = recovery[0].to_uppercase();
    let by_recovery = app
        .post_json("/api/v1/auth/login", None, &json!({"email": email, "password": PASSWORD, "recovery_code": rc}))
        .await;
    assert_eq!(by_recovery.status(), 200);
    let again = app
        .post_json("/api/v1/auth/login", None, &json!({"email": email, "password": PASSWORD, "recovery_code": rc}))
        .await;
    assert_eq!(code(again).await, (401, "mfa_code_invalid".into()));
}

#[actix_web::test]
async fn an_admin_requires_mfa_for_a_role_and_resets_a_users_mfa_with_an_audit_event() {
    let app = spawn_app().await;
    let admin = unique("admin");
    let nurse = unique("nurse");
    app.create_user(&admin, Role::Admin, None, None).await;
    let nurse_id = app.create_user(&nurse, Role::Clinician, Some(StaffRole::Nurse), Some("oncology")).await;
    let ta = app.login(&admin).await["access_token"].as_str().expect("t").to_owned();
    let before = app.login(&nurse).await["access_token"].as_str().expect("t").to_owned();
    let res = app
        .client
        .put(app.url("/api/v1/admin/mfa-policy"))
        .bearer_auth(&ta)
        .json(&json!({"required_roles": ["clinician"]}))
        .send()
        .await
        .expect("put");
    assert_eq!(res.status(), 200);

    assert_eq!(app.get_as("/api/v1/auth/me", &before).await.status(), 401, "full tokens without MFA end at once");
    let pending = app.login(&nurse).await;
    assert_eq!(pending["mfa_enrolment_required"], true);
    let out = app.post_json("/api/v1/auth/logout", pending["access_token"].as_str(), &json!({})).await;
    assert_eq!(out.status(), 204, "an account that must enrol can still log out");
    let pair = app.login(&nurse).await;
    assert_eq!(pair["mfa_enrolment_required"], true);
    let tn = pair["access_token"].as_str().expect("t");
    assert_eq!(code(app.get_as("/api/v1/auth/me", tn).await).await, (403, "mfa_enrolment_required".into()));
    let enrol = app.post_json("/api/v1/auth/mfa/enrol", Some(tn), &json!({"password": PASSWORD})).await;
    assert_eq!(enrol.status(), 200, "enrolment stays open");
    let secret = enrol.json::<Value>().await.expect("json")["secret"].as_str().expect("s").to_owned();
    let ok = app.post_json("/api/v1/auth/mfa/confirm", Some(tn), &json!({"code": current_code(&secret, 0)})).await;
    assert_eq!(ok.status(), 200);
    // A refresh now gives a full token.
    let full = app.post_json("/api/v1/auth/refresh", None, &json!({"refresh_token": pair["refresh_token"]})).await;
    let full: Value = full.json().await.expect("json");
    assert_eq!(full["mfa_enrolment_required"], false);
    assert_eq!(app.get_as("/api/v1/auth/me", full["access_token"].as_str().expect("t")).await.status(), 200);

    let reset = app.post_json(&format!("/api/v1/admin/users/{nurse_id}/mfa/reset"), Some(&ta), &json!({})).await;
    assert_eq!(reset.status(), 204);
    assert_eq!(
        app.get_as("/api/v1/auth/me", full["access_token"].as_str().expect("t")).await.status(),
        401,
        "sessions ended"
    );
    let audit: Value = app.get_as("/api/v1/admin/audit?action=admin.mfa_reset", &ta).await.json().await.expect("json");
    let events = audit["items"].as_array().expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["resource_id"], nurse_id.to_string());
}
