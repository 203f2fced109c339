//! The local embedder against sentence-transformers' own vectors, and its failure modes.
//!
//! Needs the model installed by `scripts/install-model.sh`; `.ci/run` does that and sets
//! `CAREPORT_TEST_MODEL_DIR`.

use std::path::Path;

use careport_ml::minilm::{LoadError, MiniLm};
use common::{cosine, model_dir};

mod common;

#[derive(serde::Deserialize)]
struct Reference {
    sentences: Vec<String>,
    embeddings: Vec<Vec<f32>>,
}

fn reference() -> Reference {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm-reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture")
}

#[test]
fn vectors_reproduce_sentence_transformers() {
    let model = MiniLm::load(&model_dir()).expect("load");
    let r = reference();
    assert_eq!(r.sentences.len(), 5);
    let texts: Vec<&str> = r.sentences.iter().map(String::as_str).collect();
    let got = model.embed(&texts).expect("embed");
    assert_eq!(got.len(), 5);
    for (i, (g, want)) in got.iter().zip(&r.embeddings).enumerate() {
        assert_eq!(g.len(), 384);
        let c = cosine(g, want);
        assert!(c >= 0.999, "sentence {i}: cosine {c}");
        let norm: f32 = g.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "unit length: {norm}");
    }
    // Paraphrases are close, unrelated sentences are not: the space means something.
    assert!(cosine(&got[0], &got[1]) > cosine(&got[0], &got[2]) + 0.3);
}

#[test]
fn a_text_embeds_the_same_alone_and_padded_in_a_batch() {
    let model = MiniLm::load(&model_dir()).expect("load");
    let short = "Fever since yesterday.";
    let long = "The patient was admitted through the emergency department with a three day history of productive cough, fever and shortness of breath on exertion.";
    let alone = model.embed(&[short]).expect("alone");
    let batched = model.embed(&[long, short]).expect("batched");
    assert!(cosine(&alone[0], &batched[1]) > 0.9999, "padding changed the vector");
}

#[test]
fn inputs_are_truncated_at_256_tokens() {
    let model = MiniLm::load(&model_dir()).expect("load");
    let base = "word ".repeat(300);
    let a = format!("{base} the ending is about chest pain");
    let b = format!("{base} a completely different ending about billing");
    let v = model.embed(&[&a, &b]).expect("embed");
    assert!(cosine(&v[0], &v[1]) > 0.9999, "text past 256 tokens must not count");
}

#[test]
fn a_missing_model_directory_or_file_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    match MiniLm::load(&dir.path().join("nope")) {
        Err(LoadError::MissingDir(_)) => {}
        other => panic!("{:?}", other.err()),
    }
    std::fs::write(dir.path().join("config.json"), "{}").expect("write");
    match MiniLm::load(dir.path()) {
        Err(LoadError::MissingFile(f)) => assert_eq!(f, "tokenizer.json"),
        other => panic!("{:?}", other.err()),
    }
}

fn copy_model(to: &Path) {
    for f in ["config.json", "tokenizer.json", "model.safetensors", "SHA256SUMS"] {
        let from = model_dir().join(f);
        if from.exists() {
            std::fs::copy(&from, to.join(f)).expect("copy");
        }
    }
}

#[test]
fn corrupt_weights_are_refused_by_their_checksum() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_model(dir.path());
    assert!(dir.path().join("SHA256SUMS").exists(), "the installer writes SHA256SUMS");
    let weights = dir.path().join("model.safetensors");
    let mut bytes = std::fs::read(&weights).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&weights, &bytes).expect("write");
    match MiniLm::load(dir.path()) {
        Err(LoadError::Checksum { file }) => assert_eq!(file, "model.safetensors"),
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn truncated_weights_without_checksums_are_refused_as_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_model(dir.path());
    std::fs::remove_file(dir.path().join("SHA256SUMS")).expect("rm");
    let weights = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&weights).expect("read");
    std::fs::write(&weights, &bytes[..bytes.len() / 3]).expect("truncate");
    match MiniLm::load(dir.path()) {
        Err(LoadError::Invalid { file, .. }) => assert_eq!(file, "model.safetensors"),
        other => panic!("{:?}", other.err()),
    }
}
