//! careport's inference engines.
//!
//! # Layout
//! - [`provider`]: the [`EmbeddingProvider`] interface the knowledge base and suggestions use,
//!   whatever computes the vectors.
//!
//! Patient text stays on this host by default: the local embedder is the default provider, and
//! an external one is used only when an operator configures it.

pub mod provider;

pub use provider::{EmbedError, EmbeddingProvider};
