//! Tokens: the web UI cookie and CSRF, attenuation, bad tokens, key rotation, policy loading.

use super::*;

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
