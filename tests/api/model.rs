//! The embedding model as the running app shows it: readiness, metrics, and no silent fallback.

use careport_ml::{EmbedError, ProviderKind};
use careport_tests::{model_dir, spawn_app_with};
use serde_json::Value;

#[actix_web::test]
async fn readyz_shows_the_local_model_ready() {
    let app = spawn_app_with(
        |s| {
            s.ml.embedding_provider = ProviderKind::Local;
            s.ml.local.model_dir = Some(model_dir());
        },
        Vec::new(),
    )
    .await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["components"]["model"]["status"], "ok");
    assert_eq!(body["components"]["model"]["detail"], "local/all-MiniLM-L6-v2 (384 dimensions)");

    let vectors = app.services_embed(vec!["chest pain".into(), "shortness of breath".into()]).await.expect("embed");
    assert_eq!(vectors.len(), 2);
    assert_eq!(vectors[0].len(), 384);
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(metrics.contains("careport_embedding_texts_total 2"), "{metrics}");
    assert!(metrics.contains("careport_embedding_queue_depth 0"), "{metrics}");
}

#[actix_web::test]
async fn missing_weights_show_the_model_down_with_the_reason_and_refuse_work() {
    let app = spawn_app_with(
        |s| {
            s.ml.embedding_provider = ProviderKind::Local;
            s.ml.local.model_dir = Some(s.data_dir.join("no-model-here"));
        },
        Vec::new(),
    )
    .await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200, "the portal still serves without the model");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["components"]["model"]["status"], "down");
    let detail = body["components"]["model"]["detail"].as_str().expect("detail");
    assert!(detail.contains("does not exist") && detail.contains("install-model"), "{detail}");
    match app.services_embed(vec!["text".into()]).await {
        Err(EmbedError::Unavailable(why)) => assert_eq!(why, detail),
        other => panic!("no silent fallback: {other:?}"),
    }
}

#[actix_web::test]
async fn embeddings_turned_off_are_reported_as_disabled() {
    let app = spawn_app_with(|s| s.ml.embedding_provider = ProviderKind::Off, Vec::new()).await;
    let body: Value = app.get("/readyz").await.json().await.expect("json");
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["components"]["model"]["status"], "disabled");
    assert!(matches!(app.services_embed(vec!["x".into()]).await, Err(EmbedError::Disabled)));
}
