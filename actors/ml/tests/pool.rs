//! The local embedding service: batching, back-pressure, and no silent fallback.

mod common;

use careport_ml::{EmbedError, EmbeddingProvider, LocalConfig, LocalEmbedder};
use common::{cosine, model_dir};

fn cfg(queue_capacity: usize, max_wait_ms: u64) -> LocalConfig {
    LocalConfig { model_dir: None, threads: 1, max_batch: 32, max_wait_ms, queue_capacity }
}

#[tokio::test]
async fn concurrent_requests_are_batched_and_each_gets_its_own_vectors() {
    let embedder = std::sync::Arc::new(LocalEmbedder::start(model_dir(), &cfg(64, 20)));
    assert!(embedder.status().is_ok());
    let texts: Vec<String> =
        (0..16).map(|i| format!("Patient {i} reports pain in the left knee after a fall.")).collect();
    let direct = careport_ml::minilm::MiniLm::load(&model_dir()).expect("load");
    let mut handles = Vec::new();
    for t in texts.clone() {
        let e = embedder.clone();
        handles.push(tokio::spawn(async move { e.embed(vec![t]).await }));
    }
    for (h, t) in handles.into_iter().zip(&texts) {
        let got = h.await.expect("task").expect("embed");
        let want = direct.embed(&[t.as_str()]).expect("direct");
        assert!(cosine(&got[0], &want[0]) > 0.9999, "{t}");
    }
    let batches = embedder.stats().batches.load(std::sync::atomic::Ordering::Relaxed);
    assert!(batches < 16, "16 concurrent requests ran as {batches} batches");
    assert_eq!(embedder.model_id(), "local/all-MiniLM-L6-v2");
    assert_eq!(embedder.dimension(), Some(384));
}

#[tokio::test]
async fn a_full_queue_refuses_at_once_with_retry_after() {
    let embedder = LocalEmbedder::start(model_dir(), &cfg(2, 0));
    let long: Vec<String> = (0..64).map(|i| format!("{i} {}", "a fairly long clinical sentence ".repeat(20))).collect();
    let mut accepted = Vec::new();
    let mut refused = 0;
    for _ in 0..12 {
        match embedder.submit(long.clone()) {
            Ok(rx) => accepted.push(rx),
            Err(EmbedError::Overloaded { retry_after_secs }) => {
                assert!(retry_after_secs >= 1);
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused > 0, "the queue of 2 never filled");
    for rx in accepted {
        assert_eq!(rx.await.expect("reply").expect("vectors").len(), 64, "accepted work is done");
    }
}

#[tokio::test]
async fn without_weights_every_request_is_unavailable_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let embedder = LocalEmbedder::start(dir.path().join("missing"), &cfg(4, 0));
    let why = embedder.status().expect_err("no model");
    assert!(why.contains("does not exist"), "{why}");
    match embedder.embed(vec!["text".into()]).await {
        Err(EmbedError::Unavailable(reason)) => assert_eq!(reason, why),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_mixed_length_request_gets_its_vectors_back_in_order() {
    let embedder = LocalEmbedder::start(model_dir(), &cfg(4, 0));
    let direct = careport_ml::minilm::MiniLm::load(&model_dir()).expect("load");
    let texts: Vec<String> = vec![
        "A long sentence about the patient's history of hypertension, diabetes and two prior admissions.".into(),
        "Short.".into(),
        "Medium length note about a knee.".into(),
        "Tiny".into(),
    ];
    let got = embedder.embed(texts.clone()).await.expect("embed");
    for (g, t) in got.iter().zip(&texts) {
        let want = direct.embed(&[t.as_str()]).expect("direct");
        assert!(cosine(g, &want[0]) > 0.9999, "{t}");
    }
}
