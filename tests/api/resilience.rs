//! A store that goes away while serving turns `/readyz` to 503; Redis going away only degrades
//! the node (every use of it falls back), and while it is gone the node still logs people in
//! and serves; both come back without a restart. The app reaches them through a TCP proxy that the
//! test cuts and restores.

use std::time::Duration;

use careport_tests::{Proxy, pg_admin_url, redis_url, spawn_app_with};
use secrecy::{ExposeSecret, SecretString};

/// Replace the host:port of `url` with the proxy's.
fn through(url: &str, proxy: &Proxy) -> String {
    let mut u = reqwest::Url::parse(url).expect("url");
    u.set_host(Some("127.0.0.1")).expect("host");
    u.set_port(Some(proxy.addr.port())).expect("port");
    u.to_string()
}

fn host_port(url: &str, default_port: u16) -> String {
    let u = reqwest::Url::parse(url).expect("url");
    format!("{}:{}", u.host_str().unwrap_or("127.0.0.1"), u.port().unwrap_or(default_port))
}

async fn wait_for_status(app: &careport_tests::TestApp, want: u16) -> serde_json::Value {
    wait_for(app, want, |_| true).await
}

/// Wait until `/readyz` answers `want` with a body that `ok` accepts.
async fn wait_for(
    app: &careport_tests::TestApp,
    want: u16,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = None;
    for _ in 0..60 {
        let res = app.get("/readyz").await;
        let status = res.status().as_u16();
        let body: serde_json::Value = res.json().await.expect("json");
        if status == want && ok(&body) {
            return body;
        }
        last = Some((status, body));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("/readyz never answered {want}; last: {last:?}");
}

#[actix_web::test]
async fn readyz_follows_the_store_going_away_and_coming_back() {
    let Some(_) = pg_admin_url() else {
        // An embedded SQLite file cannot go away over the network; this runs on PostgreSQL.
        careport_tests::skipping("CAREPORT_TEST_PG_URL", "this runs on PostgreSQL");
        return;
    };
    let tdb_probe = careport_tests::TestDb::new().await;
    let proxy = Proxy::start(host_port(&tdb_probe.url, 5432)).await;
    drop(tdb_probe);
    let app = spawn_app_with(
        |s| {
            let url = s.database.url.as_ref().expect("pg url").expose_secret().to_owned();
            s.database.url = Some(SecretString::from(through(&url, &proxy)));
            s.database.acquire_timeout_secs = 1;
        },
        Vec::new(),
    )
    .await;
    wait_for_status(&app, 200).await;
    proxy.cut().await;
    let body = wait_for_status(&app, 503).await;
    assert_eq!(body["status"], "down");
    assert_eq!(body["components"]["store"]["status"], "down", "{body}");
    proxy.restore();
    let body = wait_for_status(&app, 200).await;
    assert_eq!(body["components"]["store"]["status"], "ok", "{body}");
}

#[actix_web::test]
async fn redis_going_away_degrades_the_node_which_serves_on_and_recovers() {
    let Some(redis) = redis_url() else {
        careport_tests::skipping("CAREPORT_TEST_REDIS_URL", "this needs Redis");
        return;
    };
    let proxy = Proxy::start(host_port(&redis, 6379)).await;
    let app = spawn_app_with(|s| s.redis.url = Some(SecretString::from(through(&redis, &proxy))), Vec::new()).await;
    wait_for_status(&app, 200).await;
    let email = "degraded@example.org";
    app.create_user(email, careport_domain::Role::Patient, None, None).await;
    proxy.cut().await;
    let body = wait_for(&app, 200, |b| b["components"]["redis"]["status"] == "down").await;
    assert_eq!(body["status"], "degraded", "{body}");
    // Serving on: a login (its throttle counts on this node) and a read with the new token.
    let token = app.token(email).await;
    let res = app.get_as("/api/v1/auth/me", &token).await;
    assert_eq!(res.status().as_u16(), 200, "a signed-in read while Redis is away");
    proxy.restore();
    let body = wait_for(&app, 200, |b| b["components"]["redis"]["status"] == "ok").await;
    assert_eq!(body["components"]["redis"]["status"], "ok", "{body}");
    // The event bus resubscribes too.
    for _ in 0..40 {
        let body: serde_json::Value = app.get("/readyz").await.json().await.expect("json");
        if body["components"]["bus"]["status"] == "ok" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the event bus never resubscribed");
}

#[actix_web::test]
async fn events_published_on_one_node_reach_the_others_through_redis() {
    let Some(redis) = redis_url() else {
        careport_tests::skipping("CAREPORT_TEST_REDIS_URL", "this needs Redis");
        return;
    };
    let prefix = format!("careport-test-{}:", uuid::Uuid::new_v4().simple());
    let cfg = careport_store::RedisConfig {
        url: Some(SecretString::from(redis)),
        pool_size: 2,
        connect_timeout_ms: 2000,
        prefix,
    };
    let node_a = careport_store::Bus::new(careport_store::Redis::connect(&cfg).await.expect("redis a"));
    let node_b = careport_store::Bus::new(careport_store::Redis::connect(&cfg).await.expect("redis b"));
    for _ in 0..40 {
        if node_a.is_connected() && node_b.is_connected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut on_b = node_b.subscribe("revocations");
    let mut on_a = node_a.subscribe("revocations");
    node_a.publish("revocations", b"session-42").await.expect("publish");
    let got = tokio::time::timeout(Duration::from_secs(5), on_b.recv()).await.expect("in time").expect("event");
    assert_eq!(&*got, b"session-42");
    let echo = tokio::time::timeout(Duration::from_secs(5), on_a.recv()).await.expect("in time").expect("event");
    assert_eq!(&*echo, b"session-42", "the publishing node hears its own events too");
}
