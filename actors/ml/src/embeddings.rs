//! The configured embedding provider, chosen once at start: the local MiniLM (the default),
//! an external OpenAI-compatible server, or off. Whatever the choice, callers see one
//! [`Embeddings`] handle, and a provider that is down says so — there is no silent fallback to
//! another model or to lexical matching, which would mix vector spaces or mislead search.

use std::path::Path;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::pool::{LocalConfig, LocalEmbedder};
use crate::provider::{EmbedError, EmbeddingProvider};

/// The directory name (under `<data_dir>/models`) of the default local model.
pub const DEFAULT_LOCAL_MODEL: &str = "multilingual-e5-small-q4";

/// `[ml]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MlConfig {
    /// `local` (MiniLM on this host), `openai` (the `[llm]` server's embedding model) or `off`.
    pub embedding_provider: ProviderKind,
    pub local: LocalConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Local,
    Openai,
    Off,
}

/// The state of the embedding provider, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelStatus {
    Ready(String),
    Down(String),
    Off,
}

/// The embedding provider in use, and its state.
pub struct Embeddings {
    provider: Option<Arc<dyn EmbeddingProvider>>,
    local: Option<Arc<LocalEmbedder>>,
    down: Option<String>,
}

impl Embeddings {
    /// Embeddings turned off.
    pub fn off() -> Self {
        Self { provider: None, local: None, down: None }
    }

    /// The local model from `cfg.local.model_dir`, or the default,
    /// `<data_dir>/models/multilingual-e5-small-q4` (multilingual-e5-small: the knowledge base's
    /// questions and documents are in six languages; README "Knowledge base" has the measurement
    /// that chose it). Blocking: it reads the weights.
    pub fn local(cfg: &MlConfig, data_dir: &Path) -> Self {
        let dir = cfg.local.model_dir.clone().unwrap_or_else(|| data_dir.join("models").join(DEFAULT_LOCAL_MODEL));
        let local = Arc::new(LocalEmbedder::start(dir, &cfg.local));
        let down = local.status().err();
        Self { provider: Some(local.clone()), local: Some(local), down }
    }

    /// An external provider (already constructed).
    pub fn external(provider: Arc<dyn EmbeddingProvider>) -> Self {
        Self { provider: Some(provider), local: None, down: None }
    }

    pub fn status(&self) -> ModelStatus {
        match (&self.provider, &self.down) {
            (None, _) => ModelStatus::Off,
            (Some(_), Some(why)) => ModelStatus::Down(why.clone()),
            (Some(p), None) => ModelStatus::Ready(match p.dimension() {
                Some(d) => format!("{} ({d} dimensions)", p.model_id()),
                None => p.model_id().to_owned(),
            }),
        }
    }

    /// The id of the vector space in use, if any.
    pub fn model_id(&self) -> Option<&str> {
        self.provider.as_ref().map(|p| p.model_id())
    }

    pub fn dimension(&self) -> Option<usize> {
        self.provider.as_ref().and_then(|p| p.dimension())
    }

    /// The local embedder's counters, when the local provider is in use.
    pub fn local_stats(&self) -> Option<&crate::pool::PoolStats> {
        self.local.as_deref().map(LocalEmbedder::stats)
    }

    /// Embed texts with the configured provider.
    pub fn embed(&self, texts: Vec<String>) -> BoxFuture<'static, Result<Vec<Vec<f32>>, EmbedError>> {
        match &self.provider {
            None => Box::pin(async { Err(EmbedError::Disabled) }),
            Some(p) => p.embed(texts),
        }
    }
}
