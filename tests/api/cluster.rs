//! Membership: a node lists itself and says who it is in `/metrics`; nodes on one Redis hear
//! one another, a stopping node says it is draining and then leaves the list, and
//! `careport cluster status`'s probe hears every node.

use std::time::Duration;

use careport_domain::Role;
use careport_tests::{TestApp, redis_url, spawn_app};
use serde_json::Value;

async fn admin_token(app: &TestApp) -> String {
    let email = format!("admin-{}@example.org", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    app.create_user(&email, Role::Admin, None, None).await;
    app.token(&email).await
}

async fn nodes(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, body) = app.send("GET", "/api/v1/admin/cluster", token, None).await;
    assert_eq!(status, 200, "{body}");
    body["nodes"].as_array().expect("nodes").clone()
}

#[actix_web::test]
async fn a_node_lists_itself_and_names_itself_in_metrics() {
    let app = spawn_app().await;
    let token = admin_token(&app).await;
    let list = nodes(&app, &token).await;
    let me = &list[0];
    assert_eq!(me["self"], true, "{me}");
    assert_eq!(me["state"], "ready", "{me}");
    assert_eq!(me["version"], env!("CARGO_PKG_VERSION"), "{me}");
    assert_eq!(me["backend"], app.services.store_backend(), "{me}");
    assert_eq!(me["node"].as_str(), Some(app.services.cluster.node()));
    assert_eq!(me["jobs_running"], 0, "{me}");
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    let line = format!(
        "careport_node_info{{node=\"{}\",version=\"{}\"}} 1",
        app.services.cluster.node(),
        env!("CARGO_PKG_VERSION")
    );
    assert!(metrics.contains(&line), "{line} not in /metrics");
    assert!(metrics.contains("careport_node_uptime_seconds "), "uptime in /metrics");
}

/// Two nodes on one store and one Redis: each lists the other; the second stopping is seen as
/// draining, then gone; a probe (what `careport cluster status` does) hears both.
#[actix_web::test]
async fn nodes_on_one_redis_hear_each_other_and_a_stopping_node_leaves() {
    let Some(_) = redis_url() else {
        careport_tests::skipping("CAREPORT_TEST_REDIS_URL", "nodes hear one another through Redis");
        return;
    };
    // Announce often, to watch nodes come and go (other tests keep the default: fewer heartbeats
    // in flight when a test's runtime ends and drops their store connections outside it).
    let app = careport_tests::spawn_app_with(|s| s.cluster.heartbeat_ms = 200, Vec::new()).await;
    let mut other = careport_tests::spawn_node_beside(&app, "node2", |s| {
        s.cluster.node_name = "second-node".into();
        s.cluster.heartbeat_ms = 200;
    })
    .await;
    assert_eq!(other.services.cluster.node(), "second-node", "cluster.node_name names the node");
    let token = admin_token(&app).await;
    let wait = |want: &'static str| {
        let (app, token) = (&app, &token);
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let list = nodes(app, token).await;
                let second = list.iter().find(|n| n["node"] == "second-node");
                let state = second.map_or("gone", |n| n["state"].as_str().unwrap_or("?"));
                if state == want {
                    return list;
                }
                assert!(std::time::Instant::now() < deadline, "the second node never became {want}: {list:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let list = wait("ready").await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["node"].as_str(), Some(app.services.cluster.node()), "this node first");
    assert_eq!(list[1]["self"], false);

    let redis = careport_store::Redis::connect(&app.settings.redis).await.expect("redis").expect("configured");
    let bus = careport_store::Bus::new(Some(redis));
    let heard = careport_actors::cluster::probe(&bus, Duration::from_millis(800)).await.expect("probe");
    let mut names: Vec<&str> = heard.iter().map(|n| n.node.as_str()).collect();
    names.sort_unstable();
    let mut want = vec![app.services.cluster.node(), "second-node"];
    want.sort_unstable();
    assert_eq!(names, want, "the probe hears every node");

    let stopping = async {
        other.stop().await;
    };
    let (_, list) = tokio::join!(stopping, wait("draining"));
    assert!(list.iter().any(|n| n["node"] == "second-node" && n["state"] == "draining"));
    wait("gone").await;
}
