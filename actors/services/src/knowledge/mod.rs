//! The knowledge base (#15): the `[knowledge]` settings, the [`Knowledge`] service every node
//! holds (vector spaces, the embedders that fill and query them, the embedded index), and the
//! embedding jobs the queue runs.
//!
//! # How a document goes
//! 1. `door::knowledge` decides who may add it (the policies, with the new document's facts),
//!    reads its text ([`extract`]), and stores the document, a queue job and the row clients
//!    poll, in that order (the queue first, so a job a client is told about is always run).
//! 2. The `JobRunner` of some node claims the job and runs [`job::run`]: the text is cut into
//!    chunks with the embedding model's own tokenizer (`careport_ml::chunking`), the chunks are
//!    stored, then embedded in batches through the embedding pool. Each batch's vectors are
//!    committed and its progress published on the bus (`knowledge:<job>`), so a job resumed
//!    after a crash embeds only the chunks still without a vector, and every node's WebSocket
//!    clients hear it.
//! 3. Searches find the chunks at once: on PostgreSQL through pgvector (the vectors are rows),
//!    embedded through the in-process index, which the job feeds as it commits.
//!
//! # Vector spaces
//! Searches use the *active* space (`knowledge_spaces`). When the configured embedding model is
//! not the active one (an operator changed it), a reindex job embeds every chunk into the new
//! space while searches keep answering from the old one with the old model (loaded for queries
//! only, when it is a local model this node has); when every chunk has its new vector the new
//! space becomes active, the old vectors are dropped, and every node switches (bus event
//! `knowledge-space`). If the old model cannot be loaded, searches answer from the text arm
//! alone until the new space is complete, and say so (`mode: "text"`, `degraded: true`).

pub mod extract;
pub mod index;
pub mod job;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use careport_domain::Error;
use careport_ml::chunking::{ChunkConfig, Tokens};
use careport_ml::{EmbedError, EmbeddingProvider, Embeddings, LocalConfig};
use careport_store::knowledge as stored;
use careport_store::{Bus, Db};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use index::EmbeddedIndex;
pub use job::KnowledgeHandler;

/// The queue's `kind` of embedding jobs.
pub const KNOWLEDGE_JOB: &str = "knowledge";
/// The bus channel of one job's progress events: `knowledge:<job id>`.
pub fn events_channel(job: Uuid) -> String {
    format!("knowledge:{job}")
}
/// The bus channel that tells every node the active space changed.
pub const SPACE_CHANNEL: &str = "knowledge-space";

/// `[knowledge]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KnowledgeConfig {
    /// Tokens in a chunk (the model's window less its two special tokens).
    pub chunk_tokens: usize,
    /// Tokens shared by consecutive chunks of a section.
    pub overlap_tokens: usize,
    /// Chunks embedded in one batch (and committed together).
    pub batch: usize,
    /// Largest upload, in MiB.
    pub max_upload_mib: u64,
    /// Pages of a PDF read at most.
    pub max_pages: usize,
    /// Largest `k` a search may ask for.
    pub max_k: usize,
    /// Candidates each arm of a hybrid search brings to the fusion (at least `k`).
    pub candidates: usize,
    /// pgvector's `hnsw.ef_search` for searches (PostgreSQL).
    pub ef_search: i64,
    /// Attempts of a job that fails for a passing reason before it fails.
    pub max_attempts: i32,
    /// Where the old local models live, to answer queries in the old space during a model change:
    /// unset, `<data_dir>/models`.
    pub models_dir: Option<PathBuf>,
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        Self {
            chunk_tokens: 224,
            overlap_tokens: 32,
            batch: 32,
            max_upload_mib: 32,
            max_pages: 1_000,
            max_k: 50,
            candidates: 50,
            ef_search: 100,
            max_attempts: 5,
            models_dir: None,
        }
    }
}

/// Queue a reindex into `model`'s space: the queue row, then the row clients poll (the server's
/// runner picks it up; the CLI queues it this way too). A reindex already queued or running is
/// returned instead of a second.
pub async fn enqueue_reindex(db: &Db, model: &str, max_attempts: i32, by: Option<Uuid>) -> Result<Uuid, Error> {
    if let Some(active) = stored::active_reindex(db).await.map_err(Error::store)?.into_iter().next() {
        return Ok(active.id);
    }
    let job = Uuid::now_v7();
    stored::insert_job_queued(db, job, "reindex", KNOWLEDGE_JOB, max_attempts, model, by)
        .await
        .map_err(Error::store)?;
    Ok(job)
}

/// The `model` of jobs made while embeddings are off: documents are chunked for the full-text
/// arm only, and embedded when a model is turned on (the reindex at start).
pub const NO_MODEL: &str = "none";

/// Tokens counted without a tokenizer (no model installed): words, and each CJK character on
/// its own (scripts without spaces), so that chunks stay about the size a model would take.
pub struct ApproxTokens;

impl Tokens for ApproxTokens {
    fn offsets(&self, text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut start: Option<usize> = None;
        for (i, c) in text.char_indices() {
            let cjk = matches!(c as u32, 0x3040..=0x30ff | 0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xac00..=0xd7af | 0xf900..=0xfaff);
            if c.is_whitespace() || cjk {
                if let Some(s) = start.take() {
                    out.push((s, i));
                }
                if cjk {
                    out.push((i, i + c.len_utf8()));
                }
            } else if start.is_none() {
                start = Some(i);
            }
        }
        if let Some(s) = start {
            out.push((s, text.len()));
        }
        out
    }
}

/// The space searches use, and how its queries are embedded.
#[derive(Clone)]
pub struct ActiveSpace {
    pub model: String,
    pub dim: usize,
    /// `None`: the model that made the space is not available here (queries go to the text arm).
    pub embedder: Option<QueryEmbedder>,
}

/// What embeds queries for a space.
#[derive(Clone)]
pub enum QueryEmbedder {
    /// The configured provider (the usual case).
    Configured,
    /// An older local model, kept for queries while the new space is built.
    Older(Arc<dyn EmbeddingProvider>),
}

/// Counters for `/metrics` and the admin statistics.
#[derive(Default)]
pub struct KnowledgeCounters {
    pub searches: AtomicU64,
    pub search_micros: AtomicU64,
    pub chunks_embedded: AtomicU64,
}

/// The knowledge service: cheap to clone.
#[derive(Clone)]
pub struct Knowledge {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub db: Db,
    pub bus: Bus,
    pub embeddings: Arc<Embeddings>,
    pub config: KnowledgeConfig,
    pub local: LocalConfig,
    pub models_dir: PathBuf,
    pub tokenizer: Option<Arc<dyn Tokens + Send + Sync>>,
    pub active: RwLock<Option<ActiveSpace>>,
    pub index: RwLock<Option<Arc<EmbeddedIndex>>>,
    pub counters: KnowledgeCounters,
    /// Recent query vectors of the configured model.
    pub queries: QueryVectors,
    /// Whether this process serves (and so holds the embedded index).
    pub serving: std::sync::atomic::AtomicBool,
}

/// Query vectors kept at most (about 1.5 KiB each at 384 dimensions).
const MAX_QUERY_VECTORS: usize = 20_000;

/// Recent query vectors, by the SHA-256 of the model and the embedded text — never the text
/// itself: questions are patients' words, and nothing here should hold them after the request.
#[derive(Default)]
pub struct QueryVectors {
    kept: std::sync::Mutex<std::collections::HashMap<[u8; 32], Arc<Vec<f32>>>>,
}

impl QueryVectors {
    fn key(model: &str, input: &str) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(model.as_bytes());
        h.update([0]);
        h.update(input.as_bytes());
        h.finalize().into()
    }
}

/// The model id of the configured provider, or why there is none.
fn configured_model(embeddings: &Embeddings) -> Option<(String, usize)> {
    Some((embeddings.model_id()?.to_owned(), embeddings.dimension()?))
}

/// The text the model is given: E5 models were trained with `query: ` and `passage: ` prefixes.
pub fn prefixed(model: &str, text: &str, query: bool) -> String {
    if model.contains("e5") {
        format!("{}{text}", if query { "query: " } else { "passage: " })
    } else {
        text.to_owned()
    }
}

impl Knowledge {
    /// The service, before [`Knowledge::init`] has read the spaces.
    pub fn new(
        db: Db,
        bus: Bus,
        embeddings: Arc<Embeddings>,
        config: KnowledgeConfig,
        local: LocalConfig,
        data_dir: PathBuf,
        tokenizer: Option<Arc<dyn Tokens + Send + Sync>>,
    ) -> Self {
        let models_dir = config.models_dir.clone().unwrap_or_else(|| data_dir.join("models"));
        Self {
            inner: Arc::new(Inner {
                db,
                bus,
                embeddings,
                config,
                local,
                models_dir,
                tokenizer,
                active: RwLock::new(None),
                index: RwLock::new(None),
                counters: KnowledgeCounters::default(),
                queries: QueryVectors::default(),
                serving: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    pub fn config(&self) -> &KnowledgeConfig {
        &self.inner.config
    }

    pub fn counters(&self) -> &KnowledgeCounters {
        &self.inner.counters
    }

    /// What chunks are counted with: the model's tokenizer, or an approximation without one.
    pub fn tokens(&self) -> Arc<dyn Tokens + Send + Sync> {
        self.inner.tokenizer.clone().unwrap_or_else(|| Arc::new(ApproxTokens))
    }

    /// The chunker's settings.
    pub fn chunk_config(&self) -> ChunkConfig {
        ChunkConfig { max_tokens: self.inner.config.chunk_tokens, overlap_tokens: self.inner.config.overlap_tokens }
    }

    /// The configured model's id and dimension (`None`: embeddings are off or down).
    pub fn configured(&self) -> Option<(String, usize)> {
        configured_model(&self.inner.embeddings)
    }

    /// The space searches use now.
    pub fn active(&self) -> Option<ActiveSpace> {
        self.inner.active.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The embedded index, on SQLite.
    pub fn index(&self) -> Option<Arc<EmbeddedIndex>> {
        self.inner.index.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Read the spaces at start: a first start makes the configured model's space active; a
    /// changed model is recorded as building (the caller queues the reindex). A serving process
    /// on SQLite loads the embedded index. Returns whether a reindex is needed.
    pub async fn init(&self, serving: bool) -> Result<bool, Error> {
        self.inner.serving.store(serving, std::sync::atomic::Ordering::Relaxed);
        let db = &self.inner.db;
        let configured = self.configured();
        let active = stored::active_space(db).await.map_err(Error::store)?;
        let mut needs_reindex = false;
        // Chunks without a vector in the configured space (made while embeddings were off, or
        // by jobs that failed): a reindex fills them in.
        if let Some((model, _)) = &configured {
            let (total, done) = stored::coverage(db, model).await.map_err(Error::store)?;
            needs_reindex |= total > done;
        }
        let active = match (active, &configured) {
            (None, Some((model, dim))) => {
                stored::put_space(db, model, *dim as i32, "active").await.map_err(Error::store)?;
                stored::activate_space(db, model).await.map_err(Error::store)?;
                Some((model.clone(), *dim))
            }
            (None, None) => None,
            (Some(a), Some((model, dim))) if a.model != *model => {
                if stored::space(db, model).await.map_err(Error::store)?.is_none_or(|s| s.state != "building") {
                    stored::put_space(db, model, *dim as i32, "building").await.map_err(Error::store)?;
                }
                needs_reindex = true;
                Some((a.model, a.dim as usize))
            }
            (Some(a), _) => Some((a.model, a.dim as usize)),
        };
        if let Some((model, dim)) = &active {
            stored::ensure_pg_index(db, model, *dim).await.map_err(Error::store)?;
        }
        if let Some((model, dim)) = &configured {
            stored::ensure_pg_index(db, model, *dim).await.map_err(Error::store)?;
        }
        self.set_active(active).await?;
        Ok(needs_reindex)
    }

    /// Switch to the space now marked active in the store (after a reindex, or told by the bus).
    pub async fn reload_active(&self) -> Result<(), Error> {
        let active = stored::active_space(&self.inner.db).await.map_err(Error::store)?;
        self.set_active(active.map(|a| (a.model, a.dim as usize))).await
    }

    async fn set_active(&self, active: Option<(String, usize)>) -> Result<(), Error> {
        let Some((model, dim)) = active else {
            *self.inner.active.write().unwrap_or_else(|p| p.into_inner()) = None;
            return Ok(());
        };
        let embedder = match self.configured() {
            Some((m, _)) if m == model => Some(QueryEmbedder::Configured),
            _ => self.older_embedder(&model).await.map(QueryEmbedder::Older),
        };
        if embedder.is_none() {
            tracing::warn!(space = %model, "the model of the active knowledge space is not available: searches use full text until the reindex completes");
        }
        // The embedded index is a server's: a CLI command (no jobs, no searches) does not build it.
        if self.inner.db.backend() == careport_store::Backend::Sqlite && self.inner.serving.load(Ordering::Relaxed) {
            let index = EmbeddedIndex::load(&self.inner.db, &model, dim).await.map_err(Error::store)?;
            tracing::info!(space = %model, vectors = index.len(), "knowledge index loaded");
            *self.inner.index.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(index));
        }
        *self.inner.active.write().unwrap_or_else(|p| p.into_inner()) = Some(ActiveSpace { model, dim, embedder });
        Ok(())
    }

    /// A local model other than the configured one, for queries in its old space.
    async fn older_embedder(&self, model: &str) -> Option<Arc<dyn EmbeddingProvider>> {
        let name = model.strip_prefix("local/")?.to_owned();
        let dir = self.inner.models_dir.join(&name);
        if !dir.is_dir() {
            return None;
        }
        let mut cfg = self.inner.local.clone();
        cfg.model_dir = Some(dir.clone());
        cfg.threads = 1;
        let started = tokio::task::spawn_blocking(move || careport_ml::LocalEmbedder::start(dir, &cfg)).await.ok()?;
        if started.status().is_err() || started.model_id() != model {
            return None;
        }
        Some(Arc::new(started))
    }

    /// Embed passages for the configured model's space.
    pub async fn embed_passages(&self, model: &str, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let texts = texts.iter().map(|t| prefixed(model, t, false)).collect();
        self.inner.embeddings.embed(texts).await
    }

    /// Embed a query for `space`; `None` when its model is not available here.
    pub async fn embed_query(&self, space: &ActiveSpace, text: &str) -> Option<Result<Vec<f32>, EmbedError>> {
        let answer = match space.embedder.as_ref()? {
            QueryEmbedder::Configured => {
                return Some(
                    self.embed_queries(&[text]).await?.map(|mut v| v.pop().map(|q| q.to_vec()).unwrap_or_default()),
                );
            }
            QueryEmbedder::Older(p) => p.embed(vec![prefixed(&space.model, text, true)]).await,
        };
        Some(answer.and_then(|mut v| v.pop().ok_or_else(|| EmbedError::BadResponse("no vector".into()))))
    }

    /// Embed texts as queries with the configured model, each once: a vector made recently is
    /// kept (a chat answer's question serves its search and its suggestions; the suggestion
    /// bank's questions are embedded once). `None` when no model is configured.
    pub async fn embed_queries(&self, texts: &[&str]) -> Option<Result<Vec<Arc<Vec<f32>>>, EmbedError>> {
        let (model, _) = self.configured()?;
        let inputs: Vec<String> = texts.iter().map(|t| prefixed(&model, t, true)).collect();
        let keys: Vec<[u8; 32]> = inputs.iter().map(|i| QueryVectors::key(&model, i)).collect();
        let mut out: Vec<Option<Arc<Vec<f32>>>> = {
            let kept = self.inner.queries.kept.lock().unwrap_or_else(|p| p.into_inner());
            keys.iter().map(|k| kept.get(k).cloned()).collect()
        };
        let missing: Vec<usize> = (0..out.len()).filter(|&i| out[i].is_none()).collect();
        if !missing.is_empty() {
            let found = match self.inner.embeddings.embed(missing.iter().map(|&i| inputs[i].clone()).collect()).await {
                Ok(v) if v.len() == missing.len() => v,
                Ok(_) => return Some(Err(EmbedError::BadResponse("a vector per text was expected".into()))),
                Err(e) => return Some(Err(e)),
            };
            let mut kept = self.inner.queries.kept.lock().unwrap_or_else(|p| p.into_inner());
            if kept.len() + found.len() > MAX_QUERY_VECTORS {
                kept.clear();
            }
            for (&i, v) in missing.iter().zip(found) {
                let v = Arc::new(v);
                kept.insert(keys[i], Arc::clone(&v));
                out[i] = Some(v);
            }
        }
        Some(Ok(out.into_iter().flatten().collect()))
    }

    /// Note a search's time, for `/metrics`.
    pub fn record_search(&self, micros: u64) {
        self.inner.counters.searches.fetch_add(1, Ordering::Relaxed);
        self.inner.counters.search_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Follow space changes made by other nodes (a reindex that completed elsewhere).
    pub fn follow_spaces(&self) {
        let me = self.clone();
        let mut rx = self.inner.bus.subscribe(SPACE_CHANNEL);
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(_) => {
                        if let Err(e) = me.reload_active().await {
                            tracing::warn!(code = %e.code(), "the new knowledge space was not loaded");
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }
}
