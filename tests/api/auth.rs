//! The identity flows end to end over HTTP: registration and verification, login, refresh
//! rotation and reuse, logout, passwords, throttling, MFA, invitations, cookies and CSRF,
//! attenuation, expiry, idle timeout, deactivation and key rotation.

use std::time::{Duration, SystemTime};

use careport_actors::auth::totp;
use careport_domain::Role;
use careport_policy::{Claims, KeyPair, KeyRing, StaffRole};
use careport_tests::{PASSWORD, TestApp, spawn_app, spawn_app_with};
use serde_json::{Value, json};
use uuid::Uuid;

fn unique(name: &str) -> String {
    format!("{name}-{}@example.org", &Uuid::new_v4().simple().to_string()[..8])
}

/// The link to `page` in an e-mail.
fn link(mail: &str, page: &str) -> String {
    let needle = format!("/{page}?token=");
    mail.lines()
        .map(str::trim)
        .find(|l| l.contains(&needle) && l.starts_with("http"))
        .unwrap_or_else(|| panic!("no {page} link in:\n{mail}"))
        .to_owned()
}

/// An `application/x-www-form-urlencoded` body, as a browser sends a form.
fn form<V: AsRef<str>>(pairs: &[(&str, V)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v.as_ref()))).collect::<Vec<_>>().join("&")
}

fn token_of(link: &str) -> String {
    link.split("token=").nth(1).expect("token").to_owned()
}

async fn code(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

async fn register(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/auth/register",
        None,
        &json!({"email": email, "password": password, "full_name": "Pat Patient"}),
    )
    .await
}

#[actix_web::test]
async fn a_patient_registers_verifies_the_address_and_logs_in() {
    let app = spawn_app().await;
    let email = unique("pat");
    let res = register(&app, &email, PASSWORD).await;
    assert_eq!(res.status(), 202);

    // Before verification, the right password still does not log in.
    let res = app.post_json("/api/v1/auth/login", None, &json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(code(res).await, (403, "email_not_verified".into()));

    let mail = app.email_to(&email).await;
    assert!(mail.contains("Subject: Verify your e-mail address"), "{mail}");
    let url = link(&mail, "verify-email");
    assert!(url.starts_with(&app.settings.public_url), "{url}");
    // The page behind the link shows a button and does not act by itself.
    let page = app.get(&format!("/verify-email?token={}", token_of(&url))).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("Verify my address"));
    let done = app
        .client
        .post(app.url("/verify-email"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", token_of(&url))]))
        .send()
        .await
        .expect("post form");
    assert_eq!(done.status(), 200);
    assert!(done.text().await.expect("html").contains("address is verified"));
    // The link works once.
    let again = app.post_json("/api/v1/auth/email/verify", None, &json!({"token": token_of(&url)})).await;
    assert_eq!(code(again).await, (400, "link_invalid".into()));

    let pair = app.login(&email).await;
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["expires_in"], 900);
    let me = app.get_as("/api/v1/auth/me", pair["access_token"].as_str().expect("token")).await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.expect("json");
    assert_eq!(me["email"], email);
    assert_eq!(me["role"], "patient");
    assert_eq!(me["email_verified"], true);
}

#[actix_web::test]
async fn registering_a_taken_address_answers_alike_and_tells_its_owner() {
    let app = spawn_app().await;
    let email = unique("taken");
    app.create_user(&email, Role::Patient, None, None).await;
    let fresh = register(&app, &unique("new"), PASSWORD).await;
    let taken = register(&app, &email, "another-long-phrase-77").await;
    assert_eq!(fresh.status(), taken.status());
    assert_eq!(fresh.text().await.expect("body"), taken.text().await.expect("body"));
    let notice = app.email_to(&email).await;
    assert!(notice.contains("already has one"), "{notice}");
}

#[actix_web::test]
async fn weak_passwords_are_refused_with_422_naming_the_rule_and_nothing_is_stored() {
    let app = spawn_app().await;
    let email = unique("weak");
    for (pw, expected) in [
        ("short", "password_too_short"),
        ("password1234", "password_too_common"),
        ("qwertyuiop123", "password_too_common"),
        (&format!("{}-secret", email.split('@').next().expect("local")) as &str, "password_contains_email"),
    ] {
        let res = register(&app, &email, pw).await;
        assert_eq!(code(res).await, (422, expected.to_owned()), "{pw}");
    }
    assert!(careport_store::users::count_by_role(&app.db).await.expect("count").is_empty());
}

#[actix_web::test]
async fn unknown_address_and_wrong_password_answer_the_same() {
    let app = spawn_app().await;
    let email = unique("known");
    app.create_user(&email, Role::Patient, None, None).await;
    let wrong =
        app.post_json("/api/v1/auth/login", None, &json!({"email": email, "password": "not-the-password-1"})).await;
    let unknown = app
        .post_json("/api/v1/auth/login", None, &json!({"email": unique("nobody"), "password": "not-the-password-1"}))
        .await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.status(), unknown.status());
    assert_eq!(wrong.text().await.expect("body"), unknown.text().await.expect("body"));
    // Forgot-password answers alike too.
    let a = app.post_json("/api/v1/auth/password/forgot", None, &json!({"email": email})).await;
    let b = app.post_json("/api/v1/auth/password/forgot", None, &json!({"email": unique("nobody")})).await;
    assert_eq!(a.status(), 202);
    assert_eq!(a.text().await.expect("body"), b.text().await.expect("body"));
}

#[actix_web::test]
async fn a_refresh_token_rotates_and_its_reuse_revokes_the_whole_session() {
    let app = spawn_app().await;
    let email = unique("rot");
    app.create_user(&email, Role::Patient, None, None).await;
    let first = app.login(&email).await;
    let r1 = first["refresh_token"].as_str().expect("r1");
    let second = app.post_json("/api/v1/auth/refresh", None, &json!({"refresh_token": r1})).await;
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.expect("json");
    let r2 = second["refresh_token"].as_str().expect("r2");
    let a2 = second["access_token"].as_str().expect("a2");
    assert_ne!(r1, r2);
    assert_eq!(app.get_as("/api/v1/auth/me", a2).await.status(), 200);

    // r1 again: reuse. The family is revoked: r2 and the access tokens stop working.
    let reuse = app.post_json("/api/v1/auth/refresh", None, &json!({"refresh_token": r1})).await;
    assert_eq!(code(reuse).await, (401, "refresh_token_reused".into()));
    let after = app.post_json("/api/v1/auth/refresh", None, &json!({"refresh_token": r2})).await;
    assert_eq!(after.status(), 401);
    assert_eq!(code(app.get_as("/api/v1/auth/me", a2).await).await, (401, "token_revoked".into()));
    let events = careport_store::audit::list(
        &app.db,
        &careport_store::audit::Filter { action: Some("auth.refresh_reuse".into()), limit: 10, ..Default::default() },
    )
    .await
    .expect("audit");
    assert_eq!(events.len(), 1, "the reuse is audited");
}

#[actix_web::test]
async fn logout_ends_one_session_and_logout_all_ends_every_one() {
    let app = spawn_app().await;
    let email = unique("out");
    app.create_user(&email, Role::Patient, None, None).await;
    let a = app.login(&email).await;
    let b = app.login(&email).await;
    let c = app.login(&email).await;
    let (ta, tb, tc) = (
        a["access_token"].as_str().expect("a"),
        b["access_token"].as_str().expect("b"),
        c["access_token"].as_str().expect("c"),
    );
    let res = app.post_json("/api/v1/auth/logout", Some(ta), &json!({})).await;
    assert_eq!(res.status(), 204);
    assert_eq!(code(app.get_as("/api/v1/auth/me", ta).await).await, (401, "token_revoked".into()));
    assert_eq!(app.get_as("/api/v1/auth/me", tb).await.status(), 200);
    let sessions: Value = app.get_as("/api/v1/auth/sessions", tb).await.json().await.expect("json");
    assert_eq!(sessions["sessions"].as_array().expect("list").len(), 2);

    let res = app.post_json("/api/v1/auth/logout", Some(tb), &json!({"all_sessions": true})).await;
    assert_eq!(res.status(), 204);
    assert_eq!(app.get_as("/api/v1/auth/me", tc).await.status(), 401);
    let refresh = app.post_json("/api/v1/auth/refresh", None, &json!({"refresh_token": c["refresh_token"]})).await;
    assert_eq!(refresh.status(), 401);
}

#[actix_web::test]
async fn changing_the_password_ends_the_other_sessions_and_keeps_this_one() {
    let app = spawn_app().await;
    let email = unique("chg");
    app.create_user(&email, Role::Patient, None, None).await;
    let here = app.login(&email).await;
    let there = app.login(&email).await;
    let t_here = here["access_token"].as_str().expect("here");
    let wrong = app
        .post_json(
            "/api/v1/auth/password/change",
            Some(t_here),
            &json!({"current_password": "nope-nope-nope-1", "new_password": "brand-new-lantern-88"}),
        )
        .await;
    assert_eq!(code(wrong).await, (422, "current_password_incorrect".into()));
    let res = app
        .post_json(
            "/api/v1/auth/password/change",
            Some(t_here),
            &json!({"current_password": PASSWORD, "new_password": "brand-new-lantern-88"}),
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(app.get_as("/api/v1/auth/me", t_here).await.status(), 200);
    assert_eq!(app.get_as("/api/v1/auth/me", there["access_token"].as_str().expect("there")).await.status(), 401);
    let old = app.post_json("/api/v1/auth/login", None, &json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(old.status(), 401);
    let new =
        app.post_json("/api/v1/auth/login", None, &json!({"email": email, "password": "brand-new-lantern-88"})).await;
    assert_eq!(new.status(), 200);
}

#[actix_web::test]
async fn a_reset_link_sets_a_new_password_once_and_a_weak_one_does_not_spend_it() {
    let app = spawn_app().await;
    let email = unique("reset");
    app.create_user(&email, Role::Patient, None, None).await;
    let session = app.login(&email).await;
    app.post_json("/api/v1/auth/password/forgot", None, &json!({"email": email})).await;
    let mail = app.email_to(&email).await;
    let token = token_of(&link(&mail, "reset-password"));
    let page = app.get(&format!("/reset-password?token={token}")).await;
    assert_eq!(page.status(), 200);

    let weak = app
        .post_json("/api/v1/auth/password/reset", None, &json!({"token": token, "new_password": "password1234"}))
        .await;
    assert_eq!(code(weak).await, (422, "password_too_common".into()));
    // The form page does the same work.
    let res = app
        .client
        .post(app.url("/reset-password"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", token.as_str()), ("password", "quiet-meadow-river-31")]))
        .send()
        .await
        .expect("form");
    assert_eq!(res.status(), 200);
    let again = app
        .post_json("/api/v1/auth/password/reset", None, &json!({"token": token, "new_password": "another-meadow-77"}))
        .await;
    assert_eq!(code(again).await, (400, "link_invalid".into()));
    // Every session ended; the new password works.
    assert_eq!(app.get_as("/api/v1/auth/me", session["access_token"].as_str().expect("t")).await.status(), 401);
    let ok =
        app.post_json("/api/v1/auth/login", None, &json!({"email": email, "password": "quiet-meadow-river-31"})).await;
    assert_eq!(ok.status(), 200);
}

#[actix_web::test]
async fn repeated_failures_lock_the_account_out_with_429_and_retry_after() {
    let app = spawn_app_with(|s| s.auth.throttle.account_max_failures = 3, Vec::new()).await;
    let email = unique("brute");
    app.create_user(&email, Role::Patient, None, None).await;
    for _ in 0..3 {
        let res = app
            .post_json("/api/v1/auth/login", None, &json!({"email": email, "password": "guess-guess-guess-1"}))
            .await;
        assert_eq!(res.status(), 401);
    }
    let res = app.post_json("/api/v1/auth/login", None, &json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(res.status(), 429, "locked even with the right password");
    let retry: u64 = res.headers()["retry-after"].to_str().expect("header").parse().expect("seconds");
    assert!(retry > 0 && retry <= 900, "{retry}");
    assert_eq!(code(res).await.1, "too_many_attempts");
}

fn current_code(secret: &str, offset_steps: i64) -> String {
    let raw = data_encoding::BASE32_NOPAD.decode(secret.as_bytes()).expect("base32");
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("time").as_secs() as i64;
    totp::code_at(&raw, totp::step_of(now) + offset_steps)
}

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
    let events = audit["events"].as_array().expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["resource_id"], nurse_id.to_string());
}

#[actix_web::test]
async fn an_invitation_link_creates_a_clinician_once() {
    let app = spawn_app().await;
    let admin = unique("admin");
    app.create_user(&admin, Role::Admin, None, None).await;
    let ta = app.login(&admin).await["access_token"].as_str().expect("t").to_owned();
    let doc = unique("doc");
    let res = app
        .post_json(
            "/api/v1/admin/invitations",
            Some(&ta),
            &json!({"email": doc, "role": "clinician", "staff_role": "doctor", "department": "oncology"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let token = token_of(&link(&app.email_to(&doc).await, "accept-invitation"));
    let page = app.get(&format!("/accept-invitation?token={token}")).await;
    assert!(page.text().await.expect("html").contains("new-password"));
    let res = app
        .client
        .post(app.url("/accept-invitation"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", token.as_str()), ("full_name", "Dr Who"), ("password", PASSWORD)]))
        .send()
        .await
        .expect("form");
    assert_eq!(res.status(), 200);
    let me: Value = app
        .get_as("/api/v1/auth/me", app.login(&doc).await["access_token"].as_str().expect("t"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        (me["role"].as_str(), me["staff_role"].as_str(), me["department"].as_str()),
        (Some("clinician"), Some("doctor"), Some("oncology"))
    );
    let again =
        app.post_json("/api/v1/auth/invitations/accept", None, &json!({"token": token, "password": PASSWORD})).await;
    assert_eq!(code(again).await, (400, "link_invalid".into()));
}

fn cookie_named<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
}

#[actix_web::test]
async fn the_web_ui_cookie_is_host_only_httponly_strict_and_writes_need_the_csrf_token() {
    let app = spawn_app().await;
    let email = unique("web");
    app.create_user(&email, Role::Patient, None, None).await;
    let res = app
        .post_json("/api/v1/auth/login", None, &json!({"email": email, "password": PASSWORD, "use_cookie": true}))
        .await;
    assert_eq!(res.status(), 200);
    let access = cookie_named(&res, "__Host-careport_access").expect("access cookie").to_owned();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(access.contains(attr), "{attr} missing: {access}");
    }
    assert!(!access.contains("Domain="), "__Host- cookies carry no Domain");
    let csrf_cookie = cookie_named(&res, "__Host-careport_csrf").expect("csrf cookie").to_owned();
    assert!(!csrf_cookie.contains("HttpOnly"), "the page's script reads it");
    let body: Value = res.json().await.expect("json");
    let csrf = body["csrf_token"].as_str().expect("csrf").to_owned();
    let pair = access.split(';').next().expect("pair").to_owned();

    let me = app.client.get(app.url("/api/v1/auth/me")).header("cookie", &pair).send().await.expect("me");
    assert_eq!(me.status(), 200, "reads work with the cookie alone");
    let no_csrf = app.client.post(app.url("/api/v1/auth/logout")).header("cookie", &pair).send().await.expect("logout");
    assert_eq!(code(no_csrf).await, (403, "csrf_rejected".into()));
    let wrong = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .header("cookie", &pair)
        .header("x-csrf-token", "AAAA")
        .send()
        .await
        .expect("logout");
    assert_eq!(wrong.status(), 403);
    let ok = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .header("cookie", &pair)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .expect("logout");
    assert_eq!(ok.status(), 204);
    assert!(cookie_named(&ok, "__Host-careport_access").expect("cleared").contains("Max-Age=0"));
}

#[actix_web::test]
async fn an_attenuated_token_does_what_was_asked_and_nothing_more() {
    let app = spawn_app().await;
    let email = unique("att");
    let id = app.create_user(&email, Role::Patient, None, None).await;
    let t = app.login(&email).await["access_token"].as_str().expect("t").to_owned();
    let res = app
        .post_json(
            "/api/v1/auth/tokens/attenuate",
            Some(&t),
            &json!({"operations": ["read"], "resources": [{"kind": "patient", "id": id.to_string()}], "expires_in": 2}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let narrow = res.json::<Value>().await.expect("json")["token"].as_str().expect("token").to_owned();
    assert_eq!(app.get_as(&format!("/api/v1/patients/{id}"), &narrow).await.status(), 200);
    assert_eq!(app.get_as(&format!("/api/v1/users/{id}"), &narrow).await.status(), 404, "another resource");
    assert_eq!(app.get_as("/api/v1/auth/me", &narrow).await.status(), 403, "another resource");
    let wider =
        app.post_json("/api/v1/auth/tokens/attenuate", Some(&narrow), &json!({"operations": ["read", "write"]})).await;
    assert_eq!(wider.status(), 200, "narrowing again is allowed…");
    let wider = wider.json::<Value>().await.expect("json")["token"].as_str().expect("t").to_owned();
    assert_eq!(app.get_as("/api/v1/auth/me", &wider).await.status(), 403, "…and never widens");
    let bad = app.post_json("/api/v1/auth/tokens/attenuate", Some(&t), &json!({"operations": ["fly"]})).await;
    assert_eq!(code(bad).await, (400, "invalid_value".into()));
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(app.get_as(&format!("/api/v1/patients/{id}"), &narrow).await.status(), 404, "after its expiry");
    assert_eq!(app.get_as(&format!("/api/v1/patients/{id}"), &t).await.status(), 200, "the original still works");
}

#[actix_web::test]
async fn malformed_expired_forged_and_foreign_tokens_get_401_with_codes() {
    let app = spawn_app().await;
    let email = unique("tok");
    let id = app.create_user(&email, Role::Patient, None, None).await;
    let claims = |expires_at| Claims {
        user: id,
        role: Role::Patient,
        staff_role: None,
        department: None,
        session: Uuid::now_v7(),
        expires_at,
        mfa_pending: false,
    };
    let good = app.key_ring().mint(&claims(SystemTime::now() + Duration::from_secs(60))).expect("mint");
    assert_eq!(app.get_as("/api/v1/auth/me", &good).await.status(), 200);
    let expired = app.key_ring().mint(&claims(SystemTime::now() - Duration::from_secs(60))).expect("mint");
    assert_eq!(code(app.get_as("/api/v1/auth/me", &expired).await).await, (401, "token_expired".into()));
    assert_eq!(code(app.get_as("/api/v1/auth/me", "not-a-token").await).await, (401, "token_malformed".into()));
    let mut forged = good.clone().into_bytes();
    let mid = forged.len() / 2;
    forged[mid] = if forged[mid] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("utf8");
    let (status, c) = code(app.get_as("/api/v1/auth/me", &forged).await).await;
    assert_eq!(status, 401);
    assert!(c == "token_invalid" || c == "token_malformed", "{c}");
    let foreign = KeyRing::new(app.settings.auth.tokens.key_id, KeyPair::new(), Vec::new())
        .mint(&claims(SystemTime::now() + Duration::from_secs(60)))
        .expect("mint");
    assert_eq!(code(app.get_as("/api/v1/auth/me", &foreign).await).await, (401, "token_invalid".into()));
    let none = app.get("/api/v1/auth/me").await;
    assert_eq!(code(none).await, (401, "unauthenticated".into()));
}

#[actix_web::test]
async fn after_key_rotation_old_tokens_verify_until_the_old_key_is_retired() {
    let old = KeyPair::new();
    let old_private = old.private().to_prefixed_string();
    let old_public = old.public().to_string();
    let app = spawn_app_with(
        move |s| {
            s.secrets.token_key = Some(old_private.clone().into());
        },
        Vec::new(),
    )
    .await;
    let email = unique("rot");
    let id = app.create_user(&email, Role::Patient, None, None).await;
    let token = app
        .key_ring()
        .mint(&Claims {
            user: id,
            role: Role::Patient,
            staff_role: None,
            department: None,
            session: Uuid::now_v7(),
            expires_at: SystemTime::now() + Duration::from_secs(600),
            mfa_pending: false,
        })
        .expect("mint");
    // A second node with the new key (id 2) that still lists the old public key.
    let db_url = app.settings.database.url.clone();
    let master = app.settings.secrets.master_key.clone();
    let data_dir = app.data_dir.clone();
    let rotated = spawn_app_with(
        move |s| {
            s.database.url = db_url.clone();
            s.secrets.master_key = master.clone();
            s.data_dir = data_dir.join("rotated");
            s.auth.tokens.key_id = 2;
            s.auth.tokens.previous_public_keys = vec![format!("1:{old_public}")];
        },
        Vec::new(),
    )
    .await;
    assert_eq!(rotated.get_as("/api/v1/auth/me", &token).await.status(), 200, "old token accepted");
    let fresh = rotated.login(&email).await;
    assert_eq!(
        app.get_as("/api/v1/auth/me", fresh["access_token"].as_str().expect("t")).await.status(),
        401,
        "the old node does not know key 2"
    );
    let retired = spawn_app_with(
        {
            let db_url = rotated.settings.database.url.clone();
            let master = rotated.settings.secrets.master_key.clone();
            let data_dir = rotated.data_dir.clone();
            move |s| {
                s.database.url = db_url.clone();
                s.secrets.master_key = master.clone();
                s.data_dir = data_dir.join("retired");
                s.auth.tokens.key_id = 2;
            }
        },
        Vec::new(),
    )
    .await;
    assert_eq!(code(retired.get_as("/api/v1/auth/me", &token).await).await, (401, "token_invalid".into()));
}

#[actix_web::test]
async fn an_idle_session_cannot_refresh_and_an_old_access_token_expires() {
    let app = spawn_app_with(
        |s| {
            s.auth.access_token_ttl_secs = 1;
            s.auth.idle_timeout_secs = 1;
        },
        Vec::new(),
    )
    .await;
    let email = unique("idle");
    app.create_user(&email, Role::Patient, None, None).await;
    let pair = app.login(&email).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(
        code(app.get_as("/api/v1/auth/me", pair["access_token"].as_str().expect("t")).await).await,
        (401, "token_expired".into())
    );
    let res = app.post_json("/api/v1/auth/refresh", None, &json!({"refresh_token": pair["refresh_token"]})).await;
    assert_eq!(code(res).await, (401, "session_expired".into()));
}

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
async fn a_logout_on_one_node_is_honoured_by_another_node() {
    let app = spawn_app().await;
    let email = unique("nodes");
    app.create_user(&email, Role::Patient, None, None).await;
    let other = {
        let url = app.settings.database.url.clone();
        let keys = (app.settings.secrets.master_key.clone(), app.settings.secrets.token_key.clone());
        let redis = (app.settings.redis.url.clone(), app.settings.redis.prefix.clone());
        let dir = app.data_dir.join("node2");
        spawn_app_with(
            move |s| {
                s.database.url = url.clone();
                s.secrets.master_key = keys.0.clone();
                s.secrets.token_key = keys.1.clone();
                s.redis.url = redis.0.clone();
                s.redis.prefix = redis.1.clone();
                s.data_dir = dir.clone();
            },
            Vec::new(),
        )
        .await
    };
    let t = app.login(&email).await["access_token"].as_str().expect("t").to_owned();
    assert_eq!(other.get_as("/api/v1/auth/me", &t).await.status(), 200, "node 2 caches the verified token");
    assert_eq!(app.post_json("/api/v1/auth/logout", Some(&t), &json!({})).await.status(), 204);
    // With Redis the event arrives within milliseconds; without, node 2's poll (5 s) finds it.
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    loop {
        if other.get_as("/api/v1/auth/me", &t).await.status() == 401 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "node 2 still accepts a revoked token");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_policy_file_with_a_syntax_error_stops_the_boot_naming_file_and_line() {
    let db = careport_tests::TestDb::new().await;
    let mut settings = careport_tests::test_settings(&db);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("good.datalog"), "allow if user($u), resource(\"user\", $u);\n").expect("write");
    std::fs::write(dir.path().join("broken.datalog"), "// a comment\n\nallow if user($u) resource(;\n").expect("write");
    settings.auth.policy_dir = Some(dir.path().to_owned());
    let err = match careport::startup::Application::build(settings).await {
        Ok(_) => panic!("a broken policy must stop the boot"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("broken.datalog") && err.contains("line 3"), "{err}");
}

#[actix_web::test]
async fn one_session_can_end_another_of_the_same_account_but_not_someone_elses() {
    let app = spawn_app().await;
    let (a, b) = (unique("a"), unique("b"));
    app.create_user(&a, Role::Patient, None, None).await;
    app.create_user(&b, Role::Patient, None, None).await;
    let phone = app.login(&a).await;
    let laptop = app.login(&a).await;
    let other = app.login(&b).await;
    let t_laptop = laptop["access_token"].as_str().expect("t");
    let list: Value = app.get_as("/api/v1/auth/sessions", t_laptop).await.json().await.expect("json");
    let sessions = list["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert!(sessions.iter().all(|s| s["ip"].as_str() == Some("127.0.0.1")));
    let phone_id =
        sessions.iter().find(|s| s["current"] == false).expect("phone")["id"].as_str().expect("id").to_owned();
    let other_id: Value =
        app.get_as("/api/v1/auth/me", other["access_token"].as_str().expect("t")).await.json().await.expect("json");
    let other_session = other_id["session_id"].as_str().expect("sid").to_owned();

    let res = app
        .client
        .delete(app.url(&format!("/api/v1/auth/sessions/{other_session}")))
        .bearer_auth(t_laptop)
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 404, "someone else's session is not there for you");
    assert_eq!(app.get_as("/api/v1/auth/me", other["access_token"].as_str().expect("t")).await.status(), 200);
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/auth/sessions/{phone_id}")))
        .bearer_auth(t_laptop)
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 204);
    assert_eq!(app.get_as("/api/v1/auth/me", phone["access_token"].as_str().expect("t")).await.status(), 401);
    assert_eq!(app.get_as("/api/v1/auth/me", t_laptop).await.status(), 200);
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
    let events = trail["events"].as_array().expect("events");
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
    assert_eq!(first["users"].as_array().expect("users").len(), 2);
    let after = first["next_after"].as_str().expect("cursor");
    let second: Value = app
        .get_as(&format!("/api/v1/admin/users?role=patient&limit=2&after={after}"), &ta)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(second["users"].as_array().expect("users").len(), 1);
    assert!(second["next_after"].is_null());
    assert!(first["users"][0].get("password_hash").is_none());

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
    let found = found["users"].as_array().expect("users");
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
    assert_eq!(inactive["users"].as_array().expect("users").len(), 1);
    let wild: Value = app.get_as("/api/v1/admin/users?email=%25", &ta).await.json().await.expect("json");
    assert!(wild["users"].as_array().expect("users").len() >= 5, "a % is taken literally, i.e. dropped");
    let bad = app.get_as("/api/v1/admin/users?status=sleeping", &ta).await;
    assert_eq!(code(bad).await, (400, "invalid_query".into()));
}

#[actix_web::test]
async fn a_weaker_stored_hash_is_upgraded_at_the_next_login() {
    let app = spawn_app_with(|s| s.auth.argon2.memory_kib = 2048, Vec::new()).await;
    let email = unique("old");
    // Stored with weaker parameters, as by an older configuration.
    let weak = careport_actors::accounts::hash_password(
        PASSWORD.to_owned(),
        &careport_actors::accounts::Argon2Config { memory_kib: 1024, iterations: 1, parallelism: 1 },
    )
    .await
    .expect("hash");
    let id = app.create_user(&email, Role::Patient, None, None).await;
    careport_store::users::set_password_hash(&app.db, id, &weak).await.expect("store");
    app.login(&email).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let creds = careport_store::users::credentials(&app.db, id).await.expect("read").expect("row");
        if creds.password_hash.contains("m=2048") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not upgraded: {}", creds.password_hash);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.login(&email).await;
}

#[actix_web::test]
async fn many_failures_from_one_address_lock_that_address_out_across_accounts() {
    let app = spawn_app_with(
        |s| {
            s.auth.throttle.ip_max_failures = 4;
            s.auth.throttle.account_max_failures = 100;
        },
        Vec::new(),
    )
    .await;
    let victim = unique("victim");
    app.create_user(&victim, Role::Patient, None, None).await;
    for i in 0..4 {
        let res = app
            .post_json(
                "/api/v1/auth/login",
                None,
                &json!({"email": unique(&format!("guess{i}")), "password": "guess-guess-guess-1"}),
            )
            .await;
        assert_eq!(res.status(), 401);
    }
    let res = app.post_json("/api/v1/auth/login", None, &json!({"email": victim, "password": PASSWORD})).await;
    assert_eq!(code(res).await, (429, "too_many_attempts".into()));
}

#[actix_web::test]
async fn behind_a_trusted_proxy_the_address_it_appended_is_the_one_throttled_and_audited() {
    let app = spawn_app_with(
        |s| {
            s.http.trust_forwarded_for = true;
            s.auth.throttle.ip_max_failures = 2;
            s.auth.throttle.account_max_failures = 100;
        },
        Vec::new(),
    )
    .await;
    let login = |fake: &'static str, real: &'static str| {
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", format!("{fake}, {real}"))
            .json(&json!({"email": unique("x"), "password": "guess-guess-guess-1"}))
            .send()
    };
    // A client rotating the address it claims does not escape: the proxy's entry counts.
    assert_eq!(login("10.0.0.1", "192.0.2.7").await.expect("send").status(), 401);
    assert_eq!(login("10.0.0.2", "192.0.2.7").await.expect("send").status(), 401);
    assert_eq!(login("10.0.0.3", "192.0.2.7").await.expect("send").status(), 429);
    assert_eq!(login("10.0.0.3", "192.0.2.8").await.expect("send").status(), 401, "another real address");
    let events =
        careport_store::audit::list(&app.db, &careport_store::audit::Filter { limit: 10, ..Default::default() })
            .await
            .expect("audit");
    assert!(events.iter().all(|e| e.ip.as_deref().is_some_and(|ip| ip.starts_with("192.0.2."))), "{events:?}");
}

#[actix_web::test]
async fn a_stolen_access_token_is_no_password_oracle() {
    let app = spawn_app_with(|s| s.auth.throttle.account_max_failures = 3, Vec::new()).await;
    let email = unique("stolen");
    app.create_user(&email, Role::Patient, None, None).await;
    let t = app.login(&email).await["access_token"].as_str().expect("t").to_owned();
    for _ in 0..3 {
        let res = app.post_json("/api/v1/auth/mfa/enrol", Some(&t), &json!({"password": "guess-guess-guess-1"})).await;
        assert_eq!(code(res).await, (422, "current_password_incorrect".into()));
    }
    let res = app.post_json("/api/v1/auth/mfa/enrol", Some(&t), &json!({"password": PASSWORD})).await;
    assert_eq!(code(res).await, (429, "too_many_attempts".into()), "locked, even with the right password");
}
