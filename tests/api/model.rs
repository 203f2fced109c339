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

#[actix_web::test]
async fn embeddings_of_another_model_are_named_for_re_embedding_not_mixed() {
    let tdb = careport_tests::TestDb::new().await;
    let db = tdb.connect().await;
    // Vectors from an earlier provider, and one from the model in use.
    for i in 0..3 {
        careport_store::embeddings::put(
            &db,
            "kb_chunk",
            &format!("c{i}"),
            "openai/text-embedding-3-small",
            &[0.5; 1536],
        )
        .await
        .expect("put");
    }
    careport_store::embeddings::put(&db, "kb_chunk", "c9", "local/all-MiniLM-L6-v2", &[0.1; 384]).await.expect("put");
    let spaces = careport_store::embeddings::spaces(&db).await.expect("spaces");
    assert_eq!(spaces.len(), 2, "{spaces:?}");
    db.close().await;

    let mut settings = careport_tests::test_settings(&tdb);
    settings.ml.embedding_provider = ProviderKind::Local;
    settings.ml.local.model_dir = Some(model_dir());
    let app = careport::Application::build(settings).await.expect("build");
    let stale = app.services().stale_embeddings.read().expect("lock").clone();
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert_eq!((stale[0].model.as_str(), stale[0].dim, stale[0].count), ("openai/text-embedding-3-small", 1536, 3));
    let stop = app.stop_handle();
    let port = app.port();
    let task = actix_web::rt::spawn(app.run_until_stopped());
    let body: Value =
        reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.expect("get").json().await.expect("json");
    assert_eq!(body["status"], "degraded", "{body}");
    let detail = body["components"]["embeddings"]["detail"].as_str().expect("detail");
    assert!(detail.contains("3 from openai/text-embedding-3-small (1536 dimensions)"), "{detail}");
    stop.stop();
    task.await.expect("task").expect("stop");
}
