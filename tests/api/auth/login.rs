//! Login: answers that do not tell whether an account exists, throttling, hash upgrades.

use super::*;

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

/// `register`, `password/forgot` and `email/resend` send mail: each address and each client may
/// cause only so many an hour (429 with `Retry-After` past it), counted whether or not the
/// address has an account — so a known and an unknown address are refused alike, and nobody can
/// keep replacing a victim's fresh reset link.
#[actix_web::test]
async fn requests_that_send_mail_are_limited_per_address_and_per_client_alike_for_every_address() {
    let app = spawn_app_with(
        |s| {
            s.auth.throttle.mail_per_address_per_hour = 2;
            s.auth.throttle.mail_per_client_per_hour = 4;
        },
        Vec::new(),
    )
    .await;
    let known = unique("known");
    app.create_user(&known, Role::Patient, None, None).await;
    let unknown = unique("nobody");
    for email in [&known, &unknown] {
        for path in ["/api/v1/auth/password/forgot", "/api/v1/auth/email/resend"] {
            let res = app.post_json(path, None, &json!({"email": email})).await;
            assert_eq!(res.status(), 202, "{path}");
        }
        let res = app.post_json("/api/v1/auth/password/forgot", None, &json!({"email": email})).await;
        assert_eq!(res.status(), 429, "the third for one address");
        assert!(res.headers().get("retry-after").is_some());
        let v: Value = res.json().await.expect("json");
        assert_eq!(v["code"], "too_many_requests", "alike for a known and an unknown address: {v}");
    }
    // Four requests from this client counted so far: a new address is refused too (the client's
    // limit).
    let res = app.post_json("/api/v1/auth/password/forgot", None, &json!({"email": unique("third")})).await;
    assert_eq!(res.status(), 429, "the client's limit");
    let res = register(&app, &unique("newcomer"), PASSWORD).await;
    assert_eq!(res.status(), 429, "registration counts too");
}

/// Lockout is no weapon (OWASP ASVS V2.2): failures from one client lock that client out of the
/// account, not its owner elsewhere; many failures from everywhere lock the account, and even
/// then its owner's correct password with a valid second factor gets through. Without a second
/// factor the locked account waits like before.
#[actix_web::test]
async fn someone_else_s_failures_do_not_lock_the_owner_out_and_a_second_factor_opens_a_locked_account() {
    let app = spawn_app_with(
        |s| {
            s.http.trust_forwarded_for = true;
            s.auth.throttle.account_max_failures = 3;
            s.auth.throttle.account_lock_failures = 6;
            s.auth.throttle.ip_max_failures = 100;
        },
        Vec::new(),
    )
    .await;
    let login = |from: &'static str, email: String, password: &'static str, totp: Option<String>| {
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", from)
            .json(&json!({"email": email, "password": password, "totp": totp}))
            .send()
    };
    let owner = unique("owner");
    app.create_user(&owner, Role::Patient, None, None).await;
    let plain = unique("plain");
    app.create_user(&plain, Role::Patient, None, None).await;

    // The owner enrols a second factor.
    let res = login("192.0.2.10", owner.clone(), PASSWORD, None).await.expect("send");
    assert_eq!(res.status(), 200);
    let t = res.json::<Value>().await.expect("json")["access_token"].as_str().expect("token").to_owned();
    let enrol: Value = app
        .post_json("/api/v1/auth/mfa/enrol", Some(&t), &json!({"password": PASSWORD}))
        .await
        .json()
        .await
        .expect("json");
    let secret = enrol["secret"].as_str().expect("secret").to_owned();
    // The previous step's code confirms; the current one is left for the login (a code is used once).
    let res = app.post_json("/api/v1/auth/mfa/confirm", Some(&t), &json!({"code": current_code(&secret, -1)})).await;
    assert_eq!(res.status(), 200);

    for account in [&owner, &plain] {
        // An attacker fails three times from one address: that address is locked out of it …
        for _ in 0..3 {
            let res = login("198.51.100.1", account.clone(), "guess-guess-guess-1", None).await.expect("send");
            assert_eq!(res.status(), 401);
        }
        let res = login("198.51.100.1", account.clone(), PASSWORD, None).await.expect("send");
        assert_eq!(res.status(), 429, "the attacker's address is locked out of this account");
        // … and three more times from another: six in all, the account's own limit.
        for _ in 0..3 {
            let res = login("198.51.100.2", account.clone(), "guess-guess-guess-1", None).await.expect("send");
            assert_eq!(res.status(), 401);
        }
    }
    // The account without a second factor waits, even with its password from a new address.
    let res = login("192.0.2.20", plain.clone(), PASSWORD, None).await.expect("send");
    assert_eq!(code(res).await, (429, "too_many_attempts".into()));
    // The owner's password and a valid code open the locked account.
    let res = login("192.0.2.10", owner.clone(), PASSWORD, Some(current_code(&secret, 0))).await.expect("send");
    assert_eq!(res.status(), 200, "the second factor gets through");
}

/// Hole 2 of #21: someone sharing the owner's address (a hospital's or a family's connection)
/// fails on the owner's account. That address is the owner's usual client (they signed in from
/// it), so it is slowed down — 2 s, then doubling — rather than locked out for the lockout time,
/// and the owner's correct password gets through once the short wait is over. A client the
/// account never signed in from is still locked out for `lockout_secs`.
#[actix_web::test]
async fn failures_from_the_owner_s_usual_address_slow_it_down_instead_of_locking_the_owner_out() {
    let app = spawn_app_with(
        |s| {
            s.http.trust_forwarded_for = true;
            s.auth.throttle.account_max_failures = 3;
            s.auth.throttle.ip_max_failures = 100;
        },
        Vec::new(),
    )
    .await;
    let login = |from: &'static str, email: String, password: &'static str| {
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", from)
            .json(&json!({"email": email, "password": password}))
            .send()
    };
    let owner = unique("owner");
    app.create_user(&owner, Role::Patient, None, None).await;
    assert_eq!(login("192.0.2.30", owner.clone(), PASSWORD).await.expect("send").status(), 200);

    for from in ["192.0.2.30", "198.51.100.9"] {
        for _ in 0..3 {
            let res = login(from, owner.clone(), "guess-guess-guess-1").await.expect("send");
            assert_eq!(res.status(), 401);
        }
        let res = login(from, owner.clone(), PASSWORD).await.expect("send");
        assert_eq!(res.status(), 429);
        let wait: u64 = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        if from == "192.0.2.30" {
            assert!((1..=2).contains(&wait), "the usual address waits two seconds ({wait} s)");
            tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
            let res = login(from, owner.clone(), PASSWORD).await.expect("send");
            assert_eq!(res.status(), 200, "after the short wait, the owner's password gets through");
        } else {
            assert!(wait > 60, "an address the account never used is locked out ({wait} s)");
        }
    }
}
