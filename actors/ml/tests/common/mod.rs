//! Helpers shared by the model tests.

use std::path::{Path, PathBuf};

/// The installed model: `CAREPORT_TEST_MODEL_DIR`, or `data/models/all-MiniLM-L6-v2` in the
/// checkout (where `scripts/install-model.sh` puts it by default).
pub fn model_dir() -> PathBuf {
    let dir = std::env::var("CAREPORT_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/models/all-MiniLM-L6-v2"));
    assert!(
        dir.join("model.safetensors").is_file(),
        "the MiniLM model is not installed at {}: run `bash scripts/install-model.sh` (or set CAREPORT_TEST_MODEL_DIR)",
        dir.display()
    );
    dir
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}
