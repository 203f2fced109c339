//! careport's inference engines.
//!
//! # Layout
//! - [`provider`]: the [`EmbeddingProvider`] interface the knowledge base and suggestions use,
//!   whatever computes the vectors.
//! - [`openai`]: the client for OpenAI-compatible servers (OpenAI, Azure, vLLM, Ollama,
//!   llama.cpp): embeddings, and chat with streaming and tool calls.
//!
//! Patient text stays on this host by default: the local embedder is the default provider, and
//! an external one is used only when an operator configures it.

pub mod openai;
pub mod provider;

pub use provider::{EmbedError, EmbeddingProvider};
