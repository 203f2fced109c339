//! `[llm]` settings for an OpenAI-compatible server, and their validation.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::error::ProviderError;

/// Default request timeout: a chat answer may take a while to start on a small local server.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;
/// Default number of retries after the first attempt.
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// Default first backoff delay; it doubles with each retry.
pub const DEFAULT_BACKOFF_BASE_MS: u64 = 500;
/// Default number of requests in flight at once.
pub const DEFAULT_MAX_CONCURRENCY: usize = 8;

/// `[llm]` settings: an OpenAI-compatible server (OpenAI, Azure OpenAI, vLLM, Ollama,
/// llama.cpp) for embeddings and chat.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiConfig {
    /// The API root that `/embeddings` and `/chat/completions` are appended to, for example
    /// `https://api.openai.com/v1`, `http://127.0.0.1:11434/v1` (Ollama),
    /// `http://127.0.0.1:8000/v1` (vLLM), `https://RESOURCE.openai.azure.com/openai/v1` (Azure).
    /// No credentials and no query string: the key goes in `api_key`. Unset: no external
    /// provider (embeddings stay local, chat answers are built from retrieved passages).
    pub base_url: Option<String>,
    /// Sent as `Authorization: Bearer <key>` (or `api-key: <key>` with `api_version`).
    /// Unset: no credential header, as local servers expect. Never logged.
    pub api_key: Option<SecretString>,
    /// Model (Azure: deployment) for `/embeddings`, e.g. `text-embedding-3-small`. Unset: this
    /// provider cannot embed.
    pub embedding_model: Option<String>,
    /// Model (Azure: deployment) for `/chat/completions`, e.g. `gpt-4o-mini`. Unset: this
    /// provider cannot chat.
    pub chat_model: Option<String>,
    /// Seconds one attempt may take: the whole answer, or for a streamed answer the wait for
    /// its start and then for each next piece.
    pub timeout_secs: u64,
    /// Retries after the first attempt, on 429, 5xx, connection errors and timeouts only.
    pub max_retries: u32,
    /// First retry delay in milliseconds; it doubles with each retry (capped at 30 s, ±20 %
    /// jitter). A `Retry-After` from the server is honoured when it is longer.
    pub backoff_base_ms: u64,
    /// Requests in flight at once; more wait for a free slot. A streamed answer holds its slot
    /// until it ends.
    pub max_concurrency: usize,
    /// Azure OpenAI's deployment API (`…/openai/deployments/NAME`): when set, each request
    /// carries `?api-version=` and the key goes in an `api-key` header. Leave unset for
    /// Azure's `/openai/v1` API and for every other server.
    pub api_version: Option<String>,
    /// Plugins (by name) that every message and tool result passes through before it is sent
    /// to the chat model, in order, e.g. `["redact-phi"]`. careport (not this client) runs
    /// them; one that is missing or fails means nothing is sent.
    #[serde(default)]
    pub redact_with: Vec<String>,
}

impl OpenAiConfig {
    /// Settings for `base_url` with no key, no models and the default limits.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: Some(base_url.into()),
            api_key: None,
            embedding_model: None,
            chat_model: None,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            max_retries: DEFAULT_MAX_RETRIES,
            backoff_base_ms: DEFAULT_BACKOFF_BASE_MS,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            api_version: None,
            redact_with: Vec::new(),
        }
    }

    /// The per-attempt timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// Check the values that would make every request fail, naming the key at fault.
    pub(crate) fn validate(&self) -> Result<reqwest::Url, ProviderError> {
        let Some(base_url) = &self.base_url else {
            return Err(ProviderError::Invalid("`llm.base_url` is not set".into()));
        };
        let url = reqwest::Url::parse(base_url)
            .map_err(|e| ProviderError::Invalid(format!("`llm.base_url` is not a valid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ProviderError::Invalid(format!(
                "`llm.base_url` must start with http:// or https://, not `{}://`",
                url.scheme()
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ProviderError::Invalid(
                "`llm.base_url` must not carry credentials; set `llm.api_key` instead".into(),
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ProviderError::Invalid(
                "`llm.base_url` must not have a query or fragment; for Azure set `llm.api_version`".into(),
            ));
        }
        if self.timeout_secs == 0 {
            return Err(ProviderError::Invalid("`llm.timeout_secs` must be at least 1".into()));
        }
        if self.max_concurrency == 0 {
            return Err(ProviderError::Invalid("`llm.max_concurrency` must be at least 1".into()));
        }
        for (key, model) in [("llm.embedding_model", &self.embedding_model), ("llm.chat_model", &self.chat_model)] {
            if model.as_deref().is_some_and(|m| m.trim().is_empty()) {
                return Err(ProviderError::Invalid(format!("`{key}` is empty; remove it or name a model")));
            }
        }
        Ok(url)
    }
}

impl std::fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[REDACTED]"))
            .field("embedding_model", &self.embedding_model)
            .field("chat_model", &self.chat_model)
            .field("timeout_secs", &self.timeout_secs)
            .field("max_retries", &self.max_retries)
            .field("backoff_base_ms", &self.backoff_base_ms)
            .field("max_concurrency", &self.max_concurrency)
            .field("api_version", &self.api_version)
            .field("redact_with", &self.redact_with)
            .finish()
    }
}
