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

/// One raw HTTP/1.1 request, its path sent byte for byte (an HTTP client would resolve `..` and
/// `%2e%2e` segments before sending): the status and the whole answer, head and body.
async fn raw(address: &str, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = address.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(host).await.expect("connect");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let body = if method == "POST" { "{}" } else { "" };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(20), s.read_to_end(&mut answer))
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer within 20 s"))
        .expect("read");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("{path}: {answer}"));
    (status, answer)
}

/// No path segment reaches a file outside the set it names: a canary under the data directory
/// (a file, and a directory shaped like a plugin's) is never answered, whichever encoding of
/// `../` a segment carries, on the static files, the catalogues, the language switch, the
/// plugin administration and record ids; and nothing answers 5xx.
#[actix_web::test]
async fn no_path_segment_reaches_outside_its_set() {
    let c = crate::records::chart().await;
    let app = &c.app;
    let canary = format!("careport-canary-{}", uuid::Uuid::new_v4().simple());
    std::fs::create_dir_all(&app.data_dir).expect("data dir");
    std::fs::write(app.data_dir.join("canary.txt"), &canary).expect("canary");
    std::fs::write(app.data_dir.join("canary.json"), format!("{{\"messages\": {{\"x\": \"{canary}\"}}}}"))
        .expect("canary");
    let plugin = app.data_dir.join("canary-plugin");
    std::fs::create_dir_all(&plugin).expect("canary plugin");
    std::fs::write(plugin.join("plugin.toml"), format!("name = \"{canary}\"\n{canary}\n")).expect("manifest");
    for dir in ["plugins", "static", "vault"] {
        std::fs::create_dir_all(app.data_dir.join(dir)).expect("dir");
    }
    let record = c.upload_pdf(&c.doctor, c.patient_id, "Scan", &crate::records::pdf(5, 1200)).await;
    assert!(record["id"].is_string(), "{record}");

    let ups = [
        "..%2f",
        "..%2F",
        "%2e%2e/",
        "%2e%2e%2f",
        "%2E%2E%2F",
        "..%5c",
        "%2e%2e%5c",
        "..%255c",
        "..%252f",
        "%252e%252e%252f",
        "%25252e%25252e%25252f",
        "%c0%ae%c0%ae/",
        "..%c0%af",
        "../",
        ".%2e/",
        "%2e./",
    ];
    let mut segments = Vec::new();
    for up in ups {
        for depth in 1..=3 {
            for target in ["canary.txt", "canary.json", "canary-plugin", "canary"] {
                segments.push(format!("{}{target}", up.repeat(depth)));
            }
        }
    }
    let mut asked = 0;
    for seg in &segments {
        let gets = [
            format!("/static/{seg}"),
            format!("/api/v1/i18n/{seg}"),
            format!("/lang/{seg}"),
            format!("/lang/en?next=/{seg}"),
            format!("/api/v1/records/{seg}"),
            format!("/api/v1/records/{seg}/content"),
            format!("/api/v1/records/{seg}/text"),
            format!("/api/v1/patients/{seg}/records"),
        ];
        for path in gets {
            let (status, answer) = raw(&app.address, "GET", &path, Some(&c.doctor)).await;
            assert!(status < 500, "GET {path}: {answer}");
            assert!(!answer.contains(&canary), "GET {path} answered the canary: {answer}");
            asked += 1;
        }
        for action in ["enable", "disable", "reload", "call"] {
            let path = format!("/api/v1/admin/plugins/{seg}/{action}");
            let (status, answer) = raw(&app.address, "POST", &path, Some(&c.admin)).await;
            assert!(status < 500, "POST {path}: {answer}");
            assert!(!answer.contains(&canary), "POST {path} answered the canary: {answer}");
            asked += 1;
        }
    }
    assert!(asked > 1000, "{asked}");
    // The canaries are where they were (nothing moved or wrote beside them), and the plugin
    // administration still lists no plugin made of them.
    assert_eq!(std::fs::read_to_string(app.data_dir.join("canary.txt")).expect("canary"), canary);
    assert_eq!(std::fs::read_dir(&plugin).expect("dir").count(), 1, "nothing was written into the canary plugin");
    let (s, v) = c.send("GET", "/api/v1/admin/plugins", &c.admin, None).await;
    assert_eq!(s, 200, "{v}");
    assert!(!v.to_string().contains(&canary), "{v}");
}
