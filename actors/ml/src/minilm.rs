//! all-MiniLM-L6-v2 with candle: BERT, mean pooling over the attention mask, L2 normalisation,
//! 256-token truncation — the same vectors sentence-transformers computes (checked against
//! `actors/ml/tests/fixtures/minilm-reference.json`, copied from the reference shared with the Python stack, by a test).
//!
//! Loading reads `config.json`, `tokenizer.json` and `model.safetensors` from a model directory.
//! When the directory holds a `SHA256SUMS` file (the installer writes one), every file listed
//! there is verified first, so corrupt weights are refused instead of producing wrong vectors.
//! Everything here is synchronous CPU work: call it from a dedicated thread, never from an
//! async task (see [`crate::pool`]).

use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::Device;
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationParams};

use crate::bert::{Config, Embeddings, Encoder, mean_pool};

/// Longest input, in tokens, as sentence-transformers' `max_seq_length` for this model.
pub const MAX_TOKENS: usize = 256;
/// Files a model directory must hold.
pub const REQUIRED_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// Why a model could not be loaded: shown in `/readyz` and in the CLI.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("model directory {0} does not exist (run the setup step: scripts/install-model.sh)")]
    MissingDir(PathBuf),
    #[error("{0} is missing from the model directory")]
    MissingFile(String),
    #[error("{file} does not match its checksum in SHA256SUMS (corrupt or replaced weights)")]
    Checksum { file: String },
    #[error("{file} is not readable as a model file: {reason}")]
    Invalid { file: String, reason: String },
}

/// A loaded MiniLM sentence embedder.
pub struct MiniLm {
    embeddings: Embeddings,
    encoder: Encoder,
    tokenizer: Tokenizer,
}

impl MiniLm {
    /// Load from a model directory (verifying `SHA256SUMS` when present).
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        if !dir.is_dir() {
            return Err(LoadError::MissingDir(dir.to_owned()));
        }
        for f in REQUIRED_FILES {
            if !dir.join(f).is_file() {
                return Err(LoadError::MissingFile(f.to_owned()));
            }
        }
        verify_checksums(dir)?;
        let invalid =
            |file: &str, e: &dyn std::fmt::Display| LoadError::Invalid { file: file.to_owned(), reason: e.to_string() };

        let config_text = std::fs::read_to_string(dir.join("config.json")).map_err(|e| invalid("config.json", &e))?;
        let config: Config = serde_json::from_str(&config_text).map_err(|e| invalid("config.json", &e))?;

        let mut tokenizer =
            Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| invalid("tokenizer.json", &e))?;
        // The shipped tokenizer.json pads and truncates to a fixed 128; sentence-transformers
        // truncates at 256, and the encoder packs texts without padding (crate::bert).
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| invalid("tokenizer.json", &e))?;

        // A plain read rather than mmap: mmap is `unsafe` (the file could change under us) and
        // the workspace forbids unsafe code. The file is 87 MiB; loading takes well under a second.
        let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)
            .map_err(|e| invalid("model.safetensors", &e))?;
        let embeddings = Embeddings::load(&config, &tensors).map_err(|e| invalid("model.safetensors", &e))?;
        let encoder =
            Encoder::load(&config, &tensors, "encoder.layer").map_err(|e| invalid("model.safetensors", &e))?;
        Ok(Self { embeddings, encoder, tokenizer })
    }

    /// Length of the vectors (384 for MiniLM-L6).
    pub fn dimension(&self) -> usize {
        self.encoder.hidden()
    }

    /// Embed a batch: one unit-length vector per text, in order.
    pub fn embed(&self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings =
            self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        let (x, lens) = self.embeddings.forward(&ids, self.encoder.arch())?;
        let hidden = self.encoder.forward(x, &lens)?;
        Ok(mean_pool(&hidden, &lens, self.encoder.hidden()))
    }
}

/// Verify the files listed in `SHA256SUMS` (`<hex>  <file>` lines, as `sha256sum` writes).
fn verify_checksums(dir: &Path) -> Result<(), LoadError> {
    let sums = dir.join("SHA256SUMS");
    let Ok(text) = std::fs::read_to_string(&sums) else {
        return Ok(());
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.split_whitespace();
        let (Some(expected), Some(file)) = (parts.next(), parts.next()) else {
            return Err(LoadError::Invalid { file: "SHA256SUMS".into(), reason: format!("bad line `{line}`") });
        };
        let file = file.trim_start_matches('*');
        let path = dir.join(file);
        let actual = sha256_file(&path).map_err(|_| LoadError::MissingFile(file.to_owned()))?;
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(LoadError::Checksum { file: file.to_owned() });
        }
    }
    Ok(())
}

/// Hex SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// A model directory's tokenizer without padding or truncation: what the chunker counts tokens
/// with, so that chunks fit the model that embeds them.
pub fn chunk_tokenizer(dir: &Path) -> Result<Tokenizer, LoadError> {
    let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
        .map_err(|e| LoadError::Invalid { file: "tokenizer.json".into(), reason: e.to_string() })?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(None)
        .map_err(|e| LoadError::Invalid { file: "tokenizer.json".into(), reason: e.to_string() })?;
    Ok(tokenizer)
}
