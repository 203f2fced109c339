//! The embedding interface: local (candle MiniLM) or external (an OpenAI-compatible server).

use futures_util::future::BoxFuture;

/// Why texts could not be embedded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EmbedError {
    /// The model is not loaded (missing or corrupt weights) or the provider is unreachable.
    #[error("the embedding model is unavailable: {0}")]
    Unavailable(String),
    /// Too many requests are waiting; retry after the given number of seconds.
    #[error("the embedding queue is full")]
    Overloaded { retry_after_secs: u32 },
    /// The provider answered something unusable (wrong count or dimension).
    #[error("the embedding provider answered badly: {0}")]
    BadResponse(String),
    /// An operator turned embeddings off (`ml.embedding_provider = "off"`).
    #[error("embeddings are turned off")]
    Disabled,
    /// The request itself is invalid (empty batch, text too long for the provider).
    #[error("{0}")]
    Invalid(String),
}

/// Something that turns texts into vectors of one fixed space.
pub trait EmbeddingProvider: Send + Sync + 'static {
    /// Identifies the vector space: stored next to every embedding, so that vectors from two
    /// different models are never compared. For example `local/all-MiniLM-L6-v2` or
    /// `openai/text-embedding-3-small`.
    fn model_id(&self) -> &str;

    /// The dimension of the vectors, when known before the first call.
    fn dimension(&self) -> Option<usize>;

    /// Embed each text; the answer has one vector per text, in order.
    fn embed(&self, texts: Vec<String>) -> BoxFuture<'static, Result<Vec<Vec<f32>>, EmbedError>>;
}

impl From<EmbedError> for careport_domain::Error {
    /// Every embedding failure is a 503 with its own code; the reason (which may name a file
    /// path or a provider's answer) is kept as the internal cause, not shown to callers.
    fn from(e: EmbedError) -> Self {
        use careport_domain::{Code, Error};
        match &e {
            EmbedError::Unavailable(_) => {
                Error::new(Code::ModelUnavailable).caused_by(anyhow::anyhow!("{e}")).retry_after(30)
            }
            EmbedError::Overloaded { retry_after_secs } => {
                Error::new(Code::ModelOverloaded).retry_after(*retry_after_secs)
            }
            EmbedError::BadResponse(_) => {
                Error::new(Code::ModelFailed).caused_by(anyhow::anyhow!("{e}")).retry_after(5)
            }
            EmbedError::Disabled => Error::new(Code::ModelDisabled),
            EmbedError::Invalid(msg) => Error::with_message(Code::InvalidValue, msg.clone()),
        }
    }
}
