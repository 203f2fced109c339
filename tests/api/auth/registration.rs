//! Registration, e-mail verification, the password rules and invitations.

use super::*;

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
