//! The local embedding service: a bounded queue in front of one batching thread that owns the
//! local model (MiniLM, or multilingual-e5-small when its directory holds that model) and a rayon
//! pool of `threads` threads for its matrix work.
//!
//! Concurrent requests are grouped: the thread takes the first waiting request, then keeps
//! collecting for up to `max_wait_ms` or until `max_batch` texts, whichever comes first, and
//! runs them as one batch. When `queue_capacity` requests are already waiting, new ones are
//! refused at once with [`EmbedError::Overloaded`] (the HTTP layer answers 503 with
//! `Retry-After`) rather than queueing without bound.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde::Deserialize;
use tokio::sync::oneshot;

use crate::e5::MultilingualE5;
use crate::minilm::{LoadError, MiniLm};
use crate::provider::{EmbedError, EmbeddingProvider};

/// The model id stored next to every vector the local MiniLM makes.
pub const LOCAL_MODEL_ID: &str = "local/all-MiniLM-L6-v2";
/// The model id of the local multilingual-e5-small (4-bit weights).
pub const LOCAL_E5_MODEL_ID: &str = "local/multilingual-e5-small-q4";

/// The local models: which one a directory holds is told by its files.
enum Model {
    MiniLm(Box<MiniLm>),
    E5(Box<MultilingualE5>),
}

impl Model {
    /// The id of the model a directory holds (or would hold: named for a failed load too).
    fn id_of(dir: &std::path::Path) -> &'static str {
        let named_e5 = dir.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains("e5"));
        if dir.join(crate::e5::MODEL_FILE).is_file() || named_e5 { LOCAL_E5_MODEL_ID } else { LOCAL_MODEL_ID }
    }

    fn load(dir: &std::path::Path) -> Result<Self, LoadError> {
        if Self::id_of(dir) == LOCAL_E5_MODEL_ID {
            MultilingualE5::load(dir).map(|m| Model::E5(Box::new(m)))
        } else {
            MiniLm::load(dir).map(|m| Model::MiniLm(Box::new(m)))
        }
    }

    fn dimension(&self) -> usize {
        match self {
            Model::MiniLm(m) => m.dimension(),
            Model::E5(m) => m.dimension(),
        }
    }

    fn embed(&self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
        match self {
            Model::MiniLm(m) => m.embed(texts),
            Model::E5(m) => m.embed(texts),
        }
    }
}

/// `[ml.local]` settings.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// Model directory (all-MiniLM-L6-v2 or multilingual-e5-small-q4, told apart by their files);
    /// unset: `<data_dir>/models/multilingual-e5-small-q4` (where setup installs it).
    pub model_dir: Option<PathBuf>,
    /// Threads for the model's matrix work.
    pub threads: usize,
    /// Most texts run in one batch.
    pub max_batch: usize,
    /// How long the first request of a batch waits for company, in milliseconds.
    pub max_wait_ms: u64,
    /// Requests allowed to wait; beyond this new requests are refused (503).
    pub queue_capacity: usize,
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct PoolStats {
    pub queued: AtomicUsize,
    pub batches: AtomicU64,
    pub texts: AtomicU64,
}

/// Vectors, one per text, or why not.
pub type Answer = Result<Vec<Vec<f32>>, EmbedError>;

struct Request {
    texts: Vec<String>,
    reply: oneshot::Sender<Answer>,
}

/// The local embedder: the model is loaded (or its failure recorded) at start.
pub struct LocalEmbedder {
    model_id: &'static str,
    tx: Option<SyncSender<Request>>,
    failure: Option<String>,
    dimension: usize,
    stats: Arc<PoolStats>,
}

impl LocalEmbedder {
    /// Load the model from `dir` and start the batching thread. Blocking (it reads ~90 MB):
    /// call it from a blocking context. A model that fails to load is not an error here: the
    /// embedder answers every request with [`EmbedError::Unavailable`] and [`Self::status`]
    /// says why, so the rest of careport keeps serving.
    pub fn start(dir: PathBuf, cfg: &LocalConfig) -> Self {
        let stats = Arc::new(PoolStats::default());
        let model_id = Model::id_of(&dir);
        let model = match Model::load(&dir) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "local embedding model unavailable");
                return Self { model_id, tx: None, failure: Some(e.to_string()), dimension: 384, stats };
            }
        };
        let dimension = model.dimension();
        let threads = cfg.threads.max(1);
        let pool =
            match rayon::ThreadPoolBuilder::new().num_threads(threads).thread_name(|i| format!("embed-{i}")).build() {
                Ok(p) => p,
                Err(e) => {
                    return Self {
                        model_id,
                        tx: None,
                        failure: Some(format!("could not start {threads} threads: {e}")),
                        dimension,
                        stats,
                    };
                }
            };
        let (tx, rx) = mpsc::sync_channel::<Request>(cfg.queue_capacity.max(1));
        let max_batch = cfg.max_batch.max(1);
        let max_wait = Duration::from_millis(cfg.max_wait_ms);
        let worker_stats = stats.clone();
        let spawned = std::thread::Builder::new()
            .name("embed-batcher".into())
            .spawn(move || batch_loop(model, pool, rx, max_batch, max_wait, worker_stats));
        match spawned {
            Ok(_) => Self { model_id, tx: Some(tx), failure: None, dimension, stats },
            Err(e) => Self {
                model_id,
                tx: None,
                failure: Some(format!("could not start the batching thread: {e}")),
                dimension,
                stats,
            },
        }
    }

    /// `Ok` when the model is loaded, else why not.
    pub fn status(&self) -> Result<(), String> {
        match &self.failure {
            None => Ok(()),
            Some(why) => Err(why.clone()),
        }
    }

    pub fn stats(&self) -> &PoolStats {
        &self.stats
    }

    /// Queue texts for embedding; refused at once when the queue is full.
    pub fn submit(&self, texts: Vec<String>) -> Result<oneshot::Receiver<Answer>, EmbedError> {
        let Some(tx) = &self.tx else {
            return Err(EmbedError::Unavailable(self.failure.clone().unwrap_or_default()));
        };
        let (reply, rx) = oneshot::channel();
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        match tx.try_send(Request { texts, reply }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                Err(EmbedError::Overloaded { retry_after_secs: 1 })
            }
            Err(TrySendError::Disconnected(_)) => {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                Err(EmbedError::Unavailable("the embedding thread stopped".into()))
            }
        }
    }
}

impl EmbeddingProvider for LocalEmbedder {
    fn model_id(&self) -> &str {
        self.model_id
    }

    fn dimension(&self) -> Option<usize> {
        Some(self.dimension)
    }

    fn embed(&self, texts: Vec<String>) -> BoxFuture<'static, Result<Vec<Vec<f32>>, EmbedError>> {
        let submitted = self.submit(texts);
        Box::pin(async move {
            let rx = submitted?;
            rx.await.map_err(|_| EmbedError::Unavailable("the embedding thread stopped".into()))?
        })
    }
}

fn batch_loop(
    model: Model,
    pool: rayon::ThreadPool,
    rx: mpsc::Receiver<Request>,
    max_batch: usize,
    max_wait: Duration,
    stats: Arc<PoolStats>,
) {
    while let Ok(first) = rx.recv() {
        let mut texts = first.texts.len();
        let mut batch = vec![first];
        let deadline = Instant::now() + max_wait;
        while texts < max_batch {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = if left.is_zero() {
                rx.try_recv().map_err(|_| RecvTimeoutError::Timeout)
            } else {
                rx.recv_timeout(left)
            };
            match next {
                Ok(req) => {
                    texts += req.texts.len();
                    batch.push(req);
                }
                Err(_) => break,
            }
        }
        stats.queued.fetch_sub(batch.len(), Ordering::Relaxed);
        run_batch(&model, &pool, batch, max_batch, &stats);
    }
    tracing::debug!("embedding thread stopped");
}

/// Run the requests' texts in chunks of `max_batch` and hand each request its vectors.
///
/// Texts are ordered by length before chunking, so each chunk pads to similar lengths (a
/// batch pads every text to its longest), then the vectors are put back in request order.
fn run_batch(model: &Model, pool: &rayon::ThreadPool, batch: Vec<Request>, max_batch: usize, stats: &PoolStats) {
    let all: Vec<&str> = batch.iter().flat_map(|r| r.texts.iter().map(String::as_str)).collect();
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.sort_by_key(|&i| all[i].len());
    let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); all.len()];
    let mut failure = None;
    for chunk in order.chunks(max_batch) {
        let texts: Vec<&str> = chunk.iter().map(|&i| all[i]).collect();
        // A panic inside the model must not kill the batching thread for good.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.install(|| model.embed(&texts))))
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the model panicked on this batch")));
        match result {
            Ok(v) => {
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stats.texts.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                for (&i, vector) in chunk.iter().zip(v) {
                    vectors[i] = vector;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "embedding batch failed");
                failure = Some(e.to_string());
                break;
            }
        }
    }
    let mut vectors = vectors.into_iter();
    for req in batch {
        let answer = match &failure {
            Some(why) => Err(EmbedError::BadResponse(why.clone())),
            None => Ok(vectors.by_ref().take(req.texts.len()).collect()),
        };
        // The caller may have gone away (client disconnected); nothing to do then.
        let _ = req.reply.send(answer);
    }
}
