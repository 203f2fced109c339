//! Sessions: refresh rotation and reuse, logout, password change and reset, idle timeout, revocation across nodes.

use super::*;

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

/// Hole 1 of #21: someone who asks for a reset link for another person's address must not be
/// able to spend, by racing, the link that person has just received. A new link leaves the
/// earlier ones working until they expire (how many can exist is bounded by the per-address mail
/// limit and by a cap in the store); using any one of them retires the others.
#[actix_web::test]
async fn a_second_reset_request_leaves_the_first_link_working_and_using_one_retires_the_other() {
    let app = spawn_app().await;
    let email = unique("race");
    app.create_user(&email, Role::Patient, None, None).await;
    app.post_json("/api/v1/auth/password/forgot", None, &json!({"email": email})).await;
    app.emails_to_at_least(&email, 1).await;
    app.post_json("/api/v1/auth/password/forgot", None, &json!({"email": email})).await;
    let mails = app.emails_to_at_least(&email, 2).await;
    let first = token_of(&link(&mails[0], "reset-password"));
    let second = token_of(&link(&mails[1], "reset-password"));
    assert_ne!(first, second);

    let res = app
        .post_json(
            "/api/v1/auth/password/reset",
            None,
            &json!({"token": first, "new_password": "quiet-meadow-river-31"}),
        )
        .await;
    assert_eq!(res.status(), 204, "the earlier link still works after a second request");
    let res = app
        .post_json("/api/v1/auth/password/reset", None, &json!({"token": second, "new_password": "another-meadow-77"}))
        .await;
    assert_eq!(code(res).await, (400, "link_invalid".into()), "a reset retires the other links");
    let ok =
        app.post_json("/api/v1/auth/login", None, &json!({"email": email, "password": "quiet-meadow-river-31"})).await;
    assert_eq!(ok.status(), 200);
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
