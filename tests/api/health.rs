//! Liveness, readiness, metrics, OpenAPI and the error shape.

use careport_tests::spawn_app;
use serde_json::Value;

#[actix_web::test]
async fn healthz_answers_ok_with_a_request_id() {
    let app = spawn_app().await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    let id = res.headers().get("x-request-id").expect("request id").to_str().expect("ascii").to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let other = app.get("/healthz").await;
    assert_ne!(other.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some(id.as_str()));
    assert_eq!(res.text().await.expect("body"), "ok");
}

#[actix_web::test]
async fn readyz_reports_every_component() {
    let app = spawn_app().await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["status"], "ok", "{body}");
    let store = &body["components"]["store"];
    assert_eq!(store["status"], "ok");
    assert_eq!(store["detail"], app.test_db.backend.as_str());
    assert_eq!(body["components"]["actor.jobs"]["status"], "ok", "{body}");
    if careport_tests::redis_url().is_some() {
        assert_eq!(body["components"]["redis"]["status"], "ok", "{body}");
    } else {
        assert!(body["components"].get("redis").is_none(), "{body}");
    }
}

#[actix_web::test]
async fn unknown_routes_and_methods_answer_json_errors() {
    let app = spawn_app().await;
    let res = app.get("/no/such/route?ssn=123-45-6789").await;
    assert_eq!(res.status(), 404);
    assert!(res.headers().contains_key("x-request-id"));
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["code"], "route_not_found");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));

    let res = app.client.post(app.url("/healthz")).send().await.expect("post");
    assert_eq!(res.status(), 405);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["code"], "method_not_allowed");
}

#[actix_web::test]
async fn metrics_count_requests_by_route_pattern_never_by_path() {
    let app = spawn_app().await;
    app.get("/healthz").await;
    app.get("/no-such-page/123-45-6789").await;
    let text = app.get("/metrics").await.text().await.expect("metrics");
    assert!(text.contains(r#"careport_http_requests_total{method="GET",route="/healthz",status="200"} 1"#), "{text}");
    assert!(text.contains(r#"route="unmatched""#), "{text}");
    assert!(!text.contains("123-45-6789"), "a raw path leaked into metrics");
    assert!(text.contains("careport_http_request_duration_seconds_bucket"), "{text}");
    assert!(text.contains(r#"careport_actor_mailbox_depth{actor="jobs"}"#), "{text}");
    assert!(text.contains(r#"careport_jobs{state="queued"} 0"#), "{text}");
    assert!(text.contains(r#"careport_db_connections{state="open"}"#), "{text}");
}

#[actix_web::test]
async fn openapi_document_lists_the_operations_routes_and_error_codes() {
    let app = spawn_app().await;
    let res = app.get("/api/openapi.json").await;
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.expect("json");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{doc}");
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} missing");
    }
    let description = doc["info"]["description"].as_str().expect("description");
    assert!(description.contains("`route_not_found` | 404"), "{description}");
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

#[actix_web::test]
async fn api_docs_page_is_served_from_the_binary_without_a_cdn() {
    let app = spawn_app().await;
    let res = app.get("/api/docs/").await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.expect("html");
    assert!(html.to_lowercase().contains("swagger"), "{html}");
    assert!(!html.contains("https://"), "the docs page loads something from the internet: {html}");
    let js = app.get("/api/docs/swagger-ui-bundle.js").await;
    assert_eq!(js.status(), 200);
    assert!(js.bytes().await.expect("js").len() > 100_000, "the bundle is vendored");
    let init = app.get("/api/docs/swagger-initializer.js").await.text().await.expect("init");
    assert!(init.contains("/api/openapi.json"), "{init}");
}
