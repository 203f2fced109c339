//! OCR of medical records (#14): the `[ocr]` settings, the [`Ocr`] service every node holds,
//! and the [`OcrSupervisor`] actor that runs the jobs on the nodes that serve.
//!
//! # How a job goes
//! 1. `door::ocr` decides who may ask (whoever may read the record) and queues the work: a row
//!    in the durable queue (`jobs`, kind [`OCR_JOB`]) and a row in `ocr_jobs`, in that order, so
//!    a job a client was told about always has the queue row that runs it.
//! 2. The `JobRunner` of some node claims the queue row and hands it to that node's
//!    [`OcrSupervisor`], which opens the file (the system's wrap of its key), splits it into
//!    pages ([`careport_ml::ocr::Document`]: a PDF page's text layer is taken as it is, other
//!    pages are rasterised) and sends the pages to its [`pool::OcrPool`]: one Tesseract per CPU
//!    worker thread, and the TrOCR worker when a GPU and weights are present. Whichever worker
//!    is free takes the next page, so pages of one document are read side by side.
//! 3. Each page is kept as it is read (sealed with the file's key), its progress published on
//!    the bus (every node's WebSocket clients hear it). A job resumed after a crash reads only
//!    the pages it had not kept.
//! 4. The document's text passes through the enabled `ocr-postprocess` plugins, in name order;
//!    a plugin that fails or times out is named on the result and the text before it is kept.
//! 5. The result (text, pages, confidences, annotations) is sealed with the file's key into the
//!    record and the job is done, in one transaction.
//!
//! Cancellation is a state in `ocr_jobs` that no later write of a worker can leave: a cancel
//! on any node stops the pages still queued on the node running the job (through the bus), and
//! the next page a worker finishes finds the job cancelled and is dropped.

mod job;
pub mod pool;
mod supervisor;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use careport_ml::ocr::{DocumentLimits, OcrLanguage};
use careport_store::{Bus, Db};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use job::{PluginRun, StoredPage, StoredText};
pub use supervisor::{OcrHandler, OcrSupervisor, Stats as StatsRequest, SupervisorStats};

/// The queue's `kind` of OCR jobs.
pub const OCR_JOB: &str = "ocr";
/// The bus channel of one job's progress events: `ocr:<job id>`.
pub fn events_channel(job: Uuid) -> String {
    format!("ocr:{job}")
}
/// The bus channel on which cancels reach the node running a job.
pub const CANCEL_CHANNEL: &str = "ocr-cancel";

/// `[ocr]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OcrConfig {
    /// Run OCR jobs on this node (a node that only serves the API may leave it to others).
    pub enabled: bool,
    /// CPU worker threads, each with its own Tesseract: pages read at once. 0 = one per core.
    pub workers: usize,
    /// Documents this node works on at once (their pages share the workers).
    pub concurrent_jobs: usize,
    /// Jobs queued or running in the whole cluster before a new request answers 503
    /// `ocr_overloaded` with `Retry-After`.
    pub max_queued: usize,
    /// Seconds a client told `ocr_overloaded` is asked to wait.
    pub retry_after_secs: u32,
    /// Rasterising resolution of PDF pages without a text layer.
    pub dpi: u32,
    /// Documents with more pages are refused (a "PDF bomb" is cheap to make).
    pub max_pages: usize,
    /// A PDF page whose longer side exceeds this many points (1/72 in) is refused unrendered.
    pub max_page_side_pt: f32,
    /// A page whose raster would exceed this many megapixels is refused unrendered.
    pub max_page_megapixels: u32,
    /// Files larger than this (MiB) are not read: the job fails with `ocr_file_too_large`.
    pub max_file_mib: u64,
    /// Attempts of a job that fails for a passing reason (the store was down) before it fails.
    pub max_attempts: i32,
    /// Record types read automatically after an upload (their PDFs and images): `["*"]` for
    /// every type, `[]` for none.
    pub auto_record_types: Vec<String>,
    /// The TrOCR weights (`config.json`, `model.safetensors`, `tokenizer.json`) for the GPU
    /// worker. It starts only in a build with the `cuda` feature, on a machine with a CUDA
    /// device, with this directory set; `/readyz` says which is missing.
    pub trocr_dir: Option<PathBuf>,
    /// Text lines the GPU worker reads in one batch.
    pub gpu_batch: usize,
}

impl Default for OcrConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            workers: 0,
            concurrent_jobs: 2,
            max_queued: 200,
            retry_after_secs: 30,
            dpi: 300,
            max_pages: 500,
            max_page_side_pt: 14_400.0,
            max_page_megapixels: 80,
            max_file_mib: 256,
            max_attempts: 3,
            auto_record_types: vec!["*".to_owned()],
            trocr_dir: None,
            gpu_batch: 16,
        }
    }
}

impl OcrConfig {
    /// The document limits the settings give.
    pub fn limits(&self) -> DocumentLimits {
        DocumentLimits {
            max_pages: self.max_pages,
            max_page_side_pt: self.max_page_side_pt,
            max_page_pixels: u64::from(self.max_page_megapixels) * 1_000_000,
            dpi: self.dpi,
        }
    }

    /// CPU worker threads to start.
    pub fn cpu_workers(&self) -> usize {
        if self.workers > 0 { self.workers } else { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) }
    }

    /// Whether uploads of `record_type` are read automatically.
    pub fn auto_for(&self, record_type: &str) -> bool {
        self.auto_record_types.iter().any(|t| t == "*" || t == record_type)
    }

    /// Check the settings (at start): a named error, not a worker that cannot run.
    pub fn check(&self) -> Result<(), String> {
        if self.concurrent_jobs == 0 || self.max_queued == 0 {
            return Err("ocr.concurrent_jobs and ocr.max_queued must be greater than 0".into());
        }
        if !(72..=1200).contains(&self.dpi) {
            return Err("ocr.dpi must be 72 to 1200".into());
        }
        if self.max_pages == 0 || self.max_file_mib == 0 || self.max_page_megapixels == 0 {
            return Err("ocr.max_pages, ocr.max_file_mib and ocr.max_page_megapixels must be greater than 0".into());
        }
        if self.max_attempts < 1 || self.gpu_batch == 0 {
            return Err("ocr.max_attempts and ocr.gpu_batch must be at least 1".into());
        }
        Ok(())
    }
}

/// Whether a file of this media type can be read.
pub fn readable(media_type: &str) -> bool {
    matches!(media_type, "application/pdf" | "image/png" | "image/jpeg" | "image/tiff")
}

/// Node-local counters for `/metrics` and the admin statistics.
#[derive(Debug, Default)]
pub struct OcrCounters {
    pub pages_ocr: AtomicU64,
    pub pages_text_layer: AtomicU64,
    pub pages_gpu: AtomicU64,
    /// Microseconds spent reading pages (all workers together).
    pub page_micros: AtomicU64,
    pub jobs_done: AtomicU64,
    pub jobs_failed: AtomicU64,
    pub jobs_cancelled: AtomicU64,
}

impl OcrCounters {
    pub fn get(v: &AtomicU64) -> u64 {
        v.load(Ordering::Relaxed)
    }
}

/// The OCR service of a node: what asking, reading and running jobs need. Cheap to clone.
#[derive(Clone)]
pub struct Ocr {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) db: Db,
    pub(crate) bus: Bus,
    pub(crate) vault: crate::vault::Vault,
    pub(crate) plugins: crate::plugins::Plugins,
    pub(crate) cfg: OcrConfig,
    /// Language packs found missing (Tesseract's names), once checked.
    pub(crate) missing: std::sync::OnceLock<Vec<&'static str>>,
    pub(crate) counters: OcrCounters,
}

impl Ocr {
    /// The language packs are checked on first need (a real engine per language, about half a
    /// second for the six), not at every start: a node that runs jobs checks them at once
    /// ([`Ocr::check_packs`]); one that only serves the API checks when first asked.
    pub fn new(db: Db, bus: Bus, vault: crate::vault::Vault, plugins: crate::plugins::Plugins, cfg: OcrConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                bus,
                vault,
                plugins,
                cfg,
                missing: std::sync::OnceLock::new(),
                counters: OcrCounters::default(),
            }),
        }
    }

    /// Check the six language packs now (once per process); a missing one is logged, named on
    /// `/readyz`, and asking for its language answers 503 `ocr_language_unavailable`, never
    /// garbage text.
    pub fn check_packs(&self) -> &[&'static str] {
        self.inner.missing.get_or_init(|| {
            let missing = OcrLanguage::ALL
                .into_iter()
                .filter(|l| careport_ml::ocr::check_languages(&[*l]).is_err())
                .map(OcrLanguage::pack)
                .collect::<Vec<_>>();
            if !missing.is_empty() {
                tracing::error!(missing = ?missing, "Tesseract language packs are missing; OCR in those languages is refused");
            }
            missing
        })
    }

    pub fn config(&self) -> &OcrConfig {
        &self.inner.cfg
    }

    /// Tesseract language packs that are not installed, checked on the blocking pool the first
    /// time (engines take a while to load; an async thread does not wait for them).
    pub async fn missing_packs(&self) -> Vec<&'static str> {
        if let Some(known) = self.inner.missing.get() {
            return known.clone();
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.check_packs().to_vec()).await.unwrap_or_default()
    }

    pub fn counters(&self) -> &OcrCounters {
        &self.inner.counters
    }

    /// Whether `language`'s pack is installed.
    pub async fn has_language(&self, language: OcrLanguage) -> bool {
        !self.missing_packs().await.contains(&language.pack())
    }
}
