//! OCR: documents (PDF, multi-page TIFF, PNG, JPEG) read page by page, synchronously.
//!
//! This is the CPU side of OCR (DESIGN.md §6), in three parts:
//! - [`document`]: what a file is (sniffed from its bytes, never its name), its pages, and the
//!   limits that refuse a hostile file before any work: [`Document::open`] validates cheaply
//!   (no rasterising), [`Document::page`] gives one page as its PDF text layer or as a raster.
//! - [`engine`]: Tesseract in process — one engine per thread and language, kept for the
//!   thread's life — reading a raster with orientation detection, and the text-line boxes that
//!   the TrOCR (GPU) path reads line by line.
//! - [`raster`]: the page image itself (8-bit grey), with the crops, turns and conversions the
//!   engines need.
//!
//! Callers read pages where they like: [`Document`] is `Send + Sync`, so a pool's threads read
//! pages of one document side by side through `&Document`, each thread with its own engine.
//! [`read_document`] does exactly that on rayon's pool, for the CLI and benchmarks.
//!
//! Confidence comes from the engine, never from the text's length: per word (Tesseract's
//! 0–100), per page the mean of its words weighted by their length, per document the mean of
//! its pages weighted by their characters ([`weighted_confidence`] throughout). A PDF page's
//! own text layer has confidence 100: it is the text the document carries, read exactly, not a
//! recognition that could be wrong.
//!
//! Languages are the portal's six; a missing language pack is a clear error
//! ([`OcrError::LanguageMissing`]), checked by [`check_languages`] before any work, never
//! garbage text from a wrong model. Errors never carry document content: they name the
//! problem (a short, fixed reason), not what the page says.
//!
//! Threads: Tesseract uses OpenMP inside a page unless `OMP_THREAD_LIMIT=1` is set in the
//! process's environment. Pages in parallel with one thread each are faster (INFRA.md); setting
//! that variable is the process's business, not this library's.

use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

pub mod document;
pub mod engine;
pub mod raster;

pub use document::{Document, DocumentKind, DocumentLimits, PageInput};
pub use engine::line_boxes;
pub use raster::{LineBox, Raster};

/// The languages OCR reads, as the portal names them (ISO 639-1, `zh` for simplified Chinese).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OcrLanguage {
    En,
    Es,
    Fr,
    Ar,
    Zh,
    Hi,
}

impl OcrLanguage {
    pub const ALL: [OcrLanguage; 6] =
        [OcrLanguage::En, OcrLanguage::Es, OcrLanguage::Fr, OcrLanguage::Ar, OcrLanguage::Zh, OcrLanguage::Hi];

    /// The portal's code (`en`, `es`, ...).
    pub fn code(self) -> &'static str {
        match self {
            OcrLanguage::En => "en",
            OcrLanguage::Es => "es",
            OcrLanguage::Fr => "fr",
            OcrLanguage::Ar => "ar",
            OcrLanguage::Zh => "zh",
            OcrLanguage::Hi => "hi",
        }
    }

    /// Tesseract's name of the language pack.
    pub fn pack(self) -> &'static str {
        match self {
            OcrLanguage::En => "eng",
            OcrLanguage::Es => "spa",
            OcrLanguage::Fr => "fra",
            OcrLanguage::Ar => "ara",
            OcrLanguage::Zh => "chi_sim",
            OcrLanguage::Hi => "hin",
        }
    }

    /// The language of a portal code; `None` for any other.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.code() == code.trim().to_ascii_lowercase())
    }
}

/// Why a document or a page could not be read. The messages name the problem only: never a
/// word of the document (they reach logs and job records).
#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    /// The language pack is not installed (`tesseract-ocr-<pack>`).
    #[error("the Tesseract language pack `{0}` is not installed")]
    LanguageMissing(&'static str),
    /// The bytes are none of the formats OCR reads (PDF, PNG, JPEG, TIFF), judged by their
    /// content, never by a file name. (Named for its first use, single page images; it is the
    /// "unsupported format" of every entry point.)
    #[error("the file is not a document that OCR reads (PDF, PNG, JPEG or TIFF)")]
    NotAnImage,
    /// The PDF is encrypted: refused rather than read with a guessed or empty password.
    #[error("the PDF is encrypted; OCR does not read encrypted PDFs")]
    Encrypted,
    /// The file claims a format but its structure is broken (truncated, corrupt). The reason
    /// is a short fixed phrase, never the file's content.
    #[error("the file is damaged: {0}")]
    Malformed(String),
    /// More pages than the limit allows; refused before reading any.
    #[error("the document has {pages} pages, more than the limit of {limit}")]
    TooManyPages { pages: usize, limit: usize },
    /// A page (1-based) is larger than the limits allow, found before it was rasterised.
    #[error("page {page} is larger than the page size limit")]
    PageTooLarge { page: usize },
    /// The engine failed on this page.
    #[error("the OCR engine failed: {0}")]
    Engine(String),
}

/// One recognised word and the engine's confidence in it (0–100).
#[derive(Debug, Clone, Serialize)]
pub struct Word {
    pub text: String,
    pub confidence: f32,
}

/// A page's text and confidence.
#[derive(Debug, Clone, Serialize)]
pub struct PageText {
    pub text: String,
    /// The mean of the words' confidences weighted by their length (0–100); 0 with no words.
    pub confidence: f32,
    pub words: Vec<Word>,
}

/// The mean of `(confidence, weight)` pairs weighted by their weights (0 when there is nothing).
pub fn weighted_confidence(items: impl IntoIterator<Item = (f32, usize)>) -> f32 {
    let (sum, weight) = items.into_iter().fold((0.0f64, 0usize), |(s, w), (c, n)| (s + f64::from(c) * n as f64, w + n));
    if weight == 0 { 0.0 } else { (sum / weight as f64) as f32 }
}

impl PageText {
    /// How much the page's confidence counts in a document's: its words' characters.
    pub fn weight(&self) -> usize {
        self.words.iter().map(|w| w.text.chars().count()).sum()
    }
}

/// Where a page's text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PageSource {
    /// The PDF page's own text layer, taken as it is.
    TextLayer,
    /// Recognised from the page's image.
    Ocr,
}

/// One page read.
#[derive(Debug, Clone, Serialize)]
pub struct PageResult {
    /// 1-based.
    pub page: usize,
    pub text: String,
    /// 0–100: the engine's, weighted by word length; 100 for a text layer.
    pub confidence: f32,
    pub source: PageSource,
    /// Clockwise degrees (0, 90, 180 or 270) the page image was turned to stand upright before
    /// it was read: `raster.rotate(rotation)` is the page as it was read. 0 for a text layer
    /// and for a page whose orientation could not be decided (too little text): it was read
    /// as it came.
    pub rotation: u16,
    /// The words with their confidences; empty for a page rebuilt from storage.
    #[serde(skip)]
    pub words: Vec<Word>,
}

impl PageResult {
    /// How much the page counts in a document's confidence: its characters, whitespace aside.
    /// Taken from `text` (not `words`) so that a page rebuilt from storage weighs the same.
    pub fn weight(&self) -> usize {
        self.text.chars().filter(|c| !c.is_whitespace()).count()
    }
}

/// A document's text: its pages, and all of it.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentText {
    /// In page order.
    pub pages: Vec<PageResult>,
    /// The pages' texts in order, separated by a blank line (`"\n\n"`); pages without text are
    /// left out. A blank line rather than a form feed: this text is for people, search and
    /// embeddings, where a form feed is an odd character; page boundaries are in `pages`.
    pub text: String,
    /// The pages' confidences weighted by their characters ([`PageResult::weight`]), so a
    /// near-empty page counts for little and a blank one not at all.
    pub mean_confidence: f32,
}

impl DocumentText {
    pub fn from_pages(mut pages: Vec<PageResult>) -> Self {
        pages.sort_by_key(|p| p.page);
        let text = pages.iter().map(|p| p.text.trim()).filter(|t| !t.is_empty()).collect::<Vec<_>>().join("\n\n");
        let mean_confidence = weighted_confidence(pages.iter().map(|p| (p.confidence, p.weight())));
        Self { pages, text, mean_confidence }
    }
}

/// Read one page: a text layer as it is (confidence 100, source [`PageSource::TextLayer`]); an
/// image through Tesseract on this thread, with orientation detection
/// ([`engine::read_raster`]). `page` is the 1-based number the result carries.
pub fn read_page(page: usize, input: PageInput, language: OcrLanguage) -> Result<PageResult, OcrError> {
    match input {
        PageInput::TextLayer(text) => {
            // Confidence 100: the layer is the document's own text, read exactly; there is no
            // recognition to doubt. Each word carries the same, so that callers that weigh
            // words see the page as it is.
            let words = text.split_whitespace().map(|w| Word { text: w.to_owned(), confidence: 100.0 }).collect();
            Ok(PageResult { page, text, confidence: 100.0, source: PageSource::TextLayer, rotation: 0, words })
        }
        PageInput::Image(raster) => {
            let read = engine::read_raster(&raster, language)?;
            Ok(PageResult {
                page,
                text: read.text,
                confidence: read.confidence,
                source: PageSource::Ocr,
                rotation: read.rotation,
                words: read.words,
            })
        }
    }
}

/// Open `bytes` and read every page, in parallel on rayon's pool (each worker thread with its
/// own engine). For the CLI and benchmarks; the portal's job runner feeds pages to its own
/// workers instead. Fails on the first page that fails.
pub fn read_document(
    bytes: Arc<[u8]>,
    language: OcrLanguage,
    limits: &DocumentLimits,
) -> Result<DocumentText, OcrError> {
    let doc = Document::open(bytes, limits)?;
    let pages = (0..doc.page_count())
        .into_par_iter()
        .map(|i| doc.page(i).and_then(|input| read_page(i + 1, input, language)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(DocumentText::from_pages(pages))
}

/// Check that every language pack in `languages` is installed (at start, and before a job).
pub fn check_languages(languages: &[OcrLanguage]) -> Result<(), OcrError> {
    for &l in languages {
        engine::check_language(l)?;
    }
    Ok(())
}

/// Read one page image (PNG, JPEG, or the first page of a TIFF) in `language`, with
/// orientation detection. Anything else, a PDF included, is [`OcrError::NotAnImage`]: use
/// [`Document`] for documents.
pub fn recognize(image: &[u8], language: OcrLanguage) -> Result<PageText, OcrError> {
    match DocumentKind::sniff(image) {
        Some(DocumentKind::Png | DocumentKind::Jpeg | DocumentKind::Tiff) => {}
        Some(DocumentKind::Pdf) | None => return Err(OcrError::NotAnImage),
    }
    let doc = Document::open(Arc::from(image), &DocumentLimits::default())?;
    let PageInput::Image(raster) = doc.page(0)? else { return Err(OcrError::NotAnImage) };
    let read = engine::read_raster(&raster, language)?;
    Ok(PageText { text: read.text, confidence: read.confidence, words: read.words })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_confidence_is_the_length_weighted_mean_of_words() {
        // A long sure word outweighs a short unsure one.
        let c = weighted_confidence([(90.0, 10), (30.0, 2)]);
        assert!((c - 80.0).abs() < 1e-4, "{c}");
        assert_eq!(weighted_confidence([]), 0.0);
    }

    #[test]
    fn the_six_languages_map_to_their_packs() {
        assert_eq!(OcrLanguage::from_code("ZH").map(OcrLanguage::pack), Some("chi_sim"));
        assert!(OcrLanguage::from_code("de").is_none());
        assert_eq!(OcrLanguage::ALL.len(), 6);
    }

    fn page(n: usize, text: &str, confidence: f32) -> PageResult {
        PageResult { page: n, text: text.into(), confidence, source: PageSource::Ocr, rotation: 0, words: vec![] }
    }

    #[test]
    fn a_document_weighs_its_pages_by_their_characters_and_skips_blank_ones() {
        let doc =
            DocumentText::from_pages(vec![page(2, "bb bb", 50.0), page(1, "aaaa aaaa", 80.0), page(3, " \n", 0.0)]);
        assert_eq!(doc.pages.iter().map(|p| p.page).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(doc.text, "aaaa aaaa\n\nbb bb");
        assert!((doc.mean_confidence - 70.0).abs() < 1e-4, "{}", doc.mean_confidence);
    }

    #[test]
    fn page_sources_serialise_as_the_api_names_them() {
        let json = serde_json::to_string(&[PageSource::TextLayer, PageSource::Ocr]).unwrap_or_default();
        assert_eq!(json, r#"["text-layer","ocr"]"#);
    }
}
