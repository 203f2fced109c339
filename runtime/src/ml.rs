//! Choosing and starting the embedding provider from the settings.

use std::sync::Arc;

use anyhow::Context;
use careport_ml::openai::OpenAiClient;
use careport_ml::{Embeddings, ProviderKind};

use crate::settings::Settings;

/// Start the configured embedding provider. A local model that cannot load is not an error
/// here: careport serves, `/readyz` shows the model down with the reason, and features that
/// need embeddings answer 503 `model_unavailable`.
pub async fn embeddings(settings: &Settings) -> anyhow::Result<Arc<Embeddings>> {
    let embeddings = match settings.ml.embedding_provider {
        ProviderKind::Off => Embeddings::off(),
        ProviderKind::Local => {
            let cfg = settings.ml.clone();
            let data_dir = settings.data_dir.clone();
            tokio::task::spawn_blocking(move || Embeddings::local(&cfg, &data_dir))
                .await
                .context("Failed to start the local embedder")?
        }
        ProviderKind::Openai => {
            if settings.llm.embedding_model.is_none() {
                anyhow::bail!("ml.embedding_provider = \"openai\" needs llm.embedding_model (and llm.base_url)");
            }
            let client = OpenAiClient::from_config(settings.llm.clone())
                .map_err(|e| anyhow::anyhow!("[llm]: {e}"))?
                .ok_or_else(|| anyhow::anyhow!("ml.embedding_provider = \"openai\" needs llm.base_url"))?;
            tracing::warn!("embeddings use an external server: text sent for embedding leaves this host");
            Embeddings::external(Arc::new(client))
        }
    };
    Ok(Arc::new(embeddings))
}

/// The tokenizer the knowledge base cuts chunks with: the configured local model's own when it
/// ships a `tokenizer.json` (MiniLM), else MiniLM's from the models directory (multilingual-e5
/// and external providers: MiniLM's 256-token window is the smaller, and XLM-R's pieces are no
/// more numerous for the same text, so the chunks fit either). `None` without either: chunks are
/// then counted by an approximation (words and CJK characters).
pub fn chunk_tokenizer(settings: &Settings) -> Option<Arc<dyn careport_ml::chunking::Tokens + Send + Sync>> {
    let models = settings.knowledge.models_dir.clone().unwrap_or_else(|| settings.data_dir.join("models"));
    let minilm = models.join("all-MiniLM-L6-v2");
    let configured = settings.ml.local.model_dir.clone().unwrap_or_else(|| minilm.clone());
    let dir = if configured.join("tokenizer.json").is_file() { configured } else { minilm };
    match careport_ml::minilm::chunk_tokenizer(&dir) {
        Ok(t) => Some(Arc::new(t)),
        Err(e) => {
            tracing::warn!(error = %e, "no tokenizer for the knowledge base's chunks: they are counted approximately");
            None
        }
    }
}

/// The assistant: `[chat]`, and the model of `[llm]` when an operator configured one with a
/// chat model (patient text leaves the host only then).
pub fn chat(settings: &Settings) -> anyhow::Result<careport_actors::chat::Chat> {
    let provider = match (&settings.llm.base_url, &settings.llm.chat_model) {
        (Some(_), Some(_)) => {
            let client = OpenAiClient::new(settings.llm.clone()).map_err(|e| anyhow::anyhow!("[llm]: {e}"))?;
            let endpoint = settings.llm.base_url.clone().unwrap_or_default();
            Some(careport_actors::chat::Provider { client, endpoint, redact_with: settings.llm.redact_with.clone() })
        }
        _ => None,
    };
    if let Some(p) = &provider {
        tracing::info!(endpoint = %p.endpoint, redact_with = ?p.redact_with, "chat answers with an external language model");
    }
    Ok(careport_actors::chat::Chat::new(settings.chat.clone(), provider))
}
