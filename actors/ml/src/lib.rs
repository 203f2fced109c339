//! careport's inference engines.
//!
//! # Layout
//! - [`provider`]: the [`EmbeddingProvider`] interface the knowledge base and suggestions use,
//!   whatever computes the vectors.
//! - [`minilm`]: all-MiniLM-L6-v2 (synchronous CPU work) on [`bert`], our encoder for
//!   sentence vectors: packed batches without padding, candle's matrix products.
//! - [`pool`]: the local embedding service — bounded queue, dynamic batching, its own threads.
//! - [`embeddings`]: the provider chosen by the settings (local, external or off), as one handle.
//! - [`ocr`]: documents (images, multi-page TIFF, PDFs) read page by page: text layers as they
//!   are, scans through Tesseract in process with the engine's own confidence.
//! - [`trocr`]: TrOCR (candle) on text-line crops, for the GPU worker.
//! - [`openai`]: the client for OpenAI-compatible servers (OpenAI, Azure, vLLM, Ollama,
//!   llama.cpp): embeddings, and chat with streaming and tool calls.
//!
//! Patient text stays on this host by default: the local embedder is the default provider, and
//! an external one is used only when an operator configures it.

pub mod bert;
pub mod chunking;
pub mod e5;
pub mod embeddings;
pub mod html;
pub mod index;
pub mod minilm;
pub mod ocr;
pub mod openai;
pub mod pool;
pub mod provider;
pub mod trocr;

pub use embeddings::{Embeddings, MlConfig, ModelStatus, ProviderKind};
pub use pool::{LOCAL_E5_MODEL_ID, LOCAL_MODEL_ID, LocalConfig, LocalEmbedder};
pub use provider::{EmbedError, EmbeddingProvider};
