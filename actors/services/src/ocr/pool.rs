//! The OCR workers: threads that read pages, fed from one queue.
//!
//! Tesseract is synchronous, CPU-bound and not shared between threads, so each CPU worker is an
//! OS thread of its own with its own engines (the OCR layer keeps one per thread and language).
//! The GPU worker, when it runs, is one more thread on the same queue: whichever worker is free
//! takes the next page, which is how pages are routed by availability — a fast GPU simply takes
//! more of them. A page is opened (rasterised) by the worker that reads it, so a document's
//! pages are held in memory only while they are being read: a 50-page scan costs the workers'
//! pages, not fifty rasters.
//!
//! A worker never dies of a page: a panic inside a read is caught, reported as the page's error,
//! and the thread takes the next page.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use careport_ml::ocr::{self, Document, OcrError, OcrLanguage, PageInput, PageResult};

/// Which engine read a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The page's own text layer: nothing was recognised.
    TextLayer,
    Tesseract,
    TrOcr,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::TextLayer => "text-layer",
            Engine::Tesseract => "tesseract",
            Engine::TrOcr => "trocr",
        }
    }
}

/// One page to read.
pub struct PageTask {
    pub doc: Arc<Document>,
    /// 0-based.
    pub index: usize,
    pub language: OcrLanguage,
    /// Set when the job is cancelled: the page is skipped unread.
    pub cancelled: Arc<AtomicBool>,
    pub reply: tokio::sync::mpsc::UnboundedSender<PageOutcome>,
}

/// What became of a page.
pub struct PageOutcome {
    pub index: usize,
    pub result: Result<PageResult, OcrError>,
    pub engine: Engine,
    pub elapsed: Duration,
}

/// The state of the GPU worker, for `/readyz` and the admin statistics.
#[derive(Debug, Clone)]
pub enum GpuState {
    Running,
    /// Why it is off (no `cuda` feature, no device, no weights).
    Off(String),
}

/// The worker threads and their queue. Cheap to clone.
#[derive(Clone)]
pub struct OcrPool {
    tx: mpsc::Sender<PageTask>,
    cpu_workers: usize,
    gpu: GpuState,
    busy: Arc<AtomicUsize>,
    queued: Arc<AtomicUsize>,
}

impl std::fmt::Debug for OcrPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcrPool").field("cpu_workers", &self.cpu_workers).field("gpu", &self.gpu).finish()
    }
}

impl OcrPool {
    /// Start `cpu_workers` Tesseract threads and, when it can run, the TrOCR thread. The
    /// threads end when the last handle of the pool is dropped.
    pub fn start(cpu_workers: usize, trocr_dir: Option<&std::path::Path>, gpu_batch: usize) -> Self {
        let (tx, rx) = mpsc::channel::<PageTask>();
        let rx = Arc::new(Mutex::new(rx));
        let busy = Arc::new(AtomicUsize::new(0));
        let queued = Arc::new(AtomicUsize::new(0));
        for i in 0..cpu_workers.max(1) {
            let (rx, busy, queued) = (rx.clone(), busy.clone(), queued.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("ocr-cpu-{i}"))
                .spawn(move || work(&rx, &busy, &queued, read_cpu));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start an OCR worker thread");
            }
        }
        let gpu = start_gpu(trocr_dir, gpu_batch, &rx, &busy, &queued);
        match &gpu {
            GpuState::Running => tracing::info!(cpu_workers, "OCR workers started, with the TrOCR GPU worker"),
            GpuState::Off(why) => tracing::info!(cpu_workers, gpu = %why, "OCR workers started; the GPU worker is off"),
        }
        Self { tx, cpu_workers: cpu_workers.max(1), gpu, busy, queued }
    }

    /// Queue a page. `false`: the workers are gone (the pool is shutting down).
    pub fn submit(&self, task: PageTask) -> bool {
        self.queued.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(task).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    pub fn cpu_workers(&self) -> usize {
        self.cpu_workers
    }

    pub fn gpu(&self) -> &GpuState {
        &self.gpu
    }

    /// Pages being read now.
    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    /// Pages waiting for a worker.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

/// A worker's loop: take the next page, read it unless its job was cancelled, answer.
fn work(
    rx: &Mutex<mpsc::Receiver<PageTask>>,
    busy: &AtomicUsize,
    queued: &AtomicUsize,
    read: impl Fn(&PageTask) -> (Result<PageResult, OcrError>, Engine),
) {
    loop {
        // The lock is held only while waiting for the next task: one waiter at a time, the
        // others queue on the lock, and each task goes to exactly one worker.
        let task = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(task) = task else { return };
        queued.fetch_sub(1, Ordering::Relaxed);
        if task.cancelled.load(Ordering::Relaxed) {
            continue;
        }
        busy.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let (result, engine) = std::panic::catch_unwind(AssertUnwindSafe(|| read(&task)))
            .unwrap_or_else(|_| (Err(OcrError::Engine("the page reader panicked".into())), Engine::Tesseract));
        busy.fetch_sub(1, Ordering::Relaxed);
        let _ = task.reply.send(PageOutcome { index: task.index, result, engine, elapsed: started.elapsed() });
    }
}

/// Read a page on a CPU worker: its text layer, or Tesseract (with orientation detection).
fn read_cpu(task: &PageTask) -> (Result<PageResult, OcrError>, Engine) {
    match task.doc.page(task.index) {
        Ok(input @ PageInput::TextLayer(_)) => {
            (ocr::read_page(task.index + 1, input, task.language), Engine::TextLayer)
        }
        Ok(input) => (ocr::read_page(task.index + 1, input, task.language), Engine::Tesseract),
        Err(e) => (Err(e), Engine::Tesseract),
    }
}

/// Start the TrOCR worker if it can run here, or say why not.
fn start_gpu(
    trocr_dir: Option<&std::path::Path>,
    batch: usize,
    rx: &Arc<Mutex<mpsc::Receiver<PageTask>>>,
    busy: &Arc<AtomicUsize>,
    queued: &Arc<AtomicUsize>,
) -> GpuState {
    let (device, dir) = match careport_ml::trocr::availability(trocr_dir) {
        Ok(found) => found,
        Err(why) => return GpuState::Off(why),
    };
    let model = match careport_ml::trocr::TrOcr::load(&dir, &device) {
        Ok(m) => Arc::new(m),
        Err(e) => return GpuState::Off(format!("the TrOCR weights did not load: {e}")),
    };
    let (rx, busy, queued) = (rx.clone(), busy.clone(), queued.clone());
    let spawned = std::thread::Builder::new()
        .name("ocr-gpu".into())
        .spawn(move || work(&rx, &busy, &queued, |task| read_gpu(&model, batch, task)));
    match spawned {
        Ok(_) => GpuState::Running,
        Err(e) => GpuState::Off(format!("could not start the GPU worker thread: {e}")),
    }
}

/// Read a page on the GPU worker: Tesseract's layout analysis finds the text lines, TrOCR
/// reads each line (it reads single lines, never whole pages). A page without lines found, or
/// whose lines TrOCR cannot read, is read by Tesseract on this thread instead.
pub fn read_gpu(
    model: &careport_ml::trocr::TrOcr,
    batch: usize,
    task: &PageTask,
) -> (Result<PageResult, OcrError>, Engine) {
    let input = match task.doc.page(task.index) {
        Ok(input) => input,
        Err(e) => return (Err(e), Engine::TrOcr),
    };
    let raster = match input {
        PageInput::Image(raster) => raster,
        text @ PageInput::TextLayer(_) => {
            return (ocr::read_page(task.index + 1, text, task.language), Engine::TextLayer);
        }
    };
    match read_lines(model, batch, task.index + 1, &raster) {
        Ok(Some(page)) => (Ok(page), Engine::TrOcr),
        Ok(None) => (ocr::read_page(task.index + 1, PageInput::Image(raster), task.language), Engine::Tesseract),
        Err(e) => {
            tracing::warn!(error = %e, "TrOCR failed on a page; Tesseract reads it");
            (ocr::read_page(task.index + 1, PageInput::Image(raster), task.language), Engine::Tesseract)
        }
    }
}

/// The page's lines through TrOCR; `None` when layout analysis finds no line.
fn read_lines(
    model: &careport_ml::trocr::TrOcr,
    batch: usize,
    page: usize,
    raster: &ocr::Raster,
) -> Result<Option<PageResult>, String> {
    let boxes = ocr::line_boxes(raster).map_err(|e| e.to_string())?;
    if boxes.is_empty() {
        return Ok(None);
    }
    let lines: Vec<careport_ml::trocr::LineImage> = boxes
        .iter()
        .map(|b| {
            let crop = raster.crop(b);
            careport_ml::trocr::LineImage { width: crop.width, height: crop.height, rgb: crop.to_rgb8() }
        })
        .collect();
    let read = model.read_lines(&lines, batch).map_err(|e| e.to_string())?;
    let text = read.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n");
    let confidence = ocr::weighted_confidence(read.iter().map(|l| (l.confidence, l.text.chars().count())));
    Ok(Some(PageResult { page, text, confidence, source: ocr::PageSource::Ocr, rotation: 0, words: Vec::new() }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use careport_ml::ocr::DocumentLimits;
    use careport_ml::trocr::{LineImage, TrOcr};

    /// TrOCR reads the page's text lines, each cropped out of the page, never the page whole: on
    /// a scanned page of several lines the GPU path answers, line for line, what the model reads
    /// from the line crops Tesseract's layout analysis finds (the tiny random model is
    /// deterministic, so the same crops give the same words), one output line per crop.
    #[test]
    fn trocr_reads_line_crops_not_the_page() {
        let scan: &[u8] = include_bytes!("../../../ml/tests/fixtures/scan.png");
        let doc = Arc::new(Document::open(Arc::from(scan), &DocumentLimits::default()).expect("the scan opens"));
        let raster = match doc.page(0).expect("page") {
            PageInput::Image(r) => r,
            PageInput::TextLayer(_) => panic!("a scan has no text layer"),
        };
        let boxes = ocr::line_boxes(&raster).expect("layout analysis");
        assert!(boxes.len() >= 2, "the scan has several lines: {}", boxes.len());
        let model = TrOcr::tiny_random(11, &candle_core::Device::Cpu).expect("the tiny model builds");
        let crops: Vec<LineImage> = boxes
            .iter()
            .map(|b| {
                let c = raster.crop(b);
                LineImage { width: c.width, height: c.height, rgb: c.to_rgb8() }
            })
            .collect();
        let expected: Vec<String> = model.read_lines(&crops, 4).expect("lines").into_iter().map(|l| l.text).collect();

        let (reply, _replies) = tokio::sync::mpsc::unbounded_channel();
        let task = PageTask { doc, index: 0, language: OcrLanguage::En, cancelled: Arc::default(), reply };
        let (result, engine) = read_gpu(&model, 4, &task);
        assert_eq!(engine, Engine::TrOcr);
        let page = result.expect("read");
        assert_eq!(page.text.split('\n').collect::<Vec<_>>(), expected, "one reading per line crop, in order");
        assert_eq!(page.page, 1);
    }
}
