//! Tesseract, in process: text and the engine's own confidence from a page image.
//!
//! This is the CPU engine of OCR (DESIGN.md §6). It reads one page per call, on the calling
//! thread (Tesseract's API is not shared between threads: a worker makes its own engine), so
//! that pages of a document run side by side on a pool's threads. Confidence comes from the
//! engine, never from the text's length: per word (Tesseract's 0–100), per page as the mean of
//! its words weighted by their length, per document as the mean of its pages weighted the same
//! way.
//!
//! Languages are the portal's six; a missing language pack is a clear error
//! ([`OcrError::LanguageMissing`]), checked by [`check_languages`] before any work, never
//! garbage text from a wrong model.
//!
//! Not yet here (issue #14, left visibly): PDFs (text layers and rasterising), multi-page TIFF
//! beyond the first page, orientation detection, the job supervisor and the GPU (TrOCR) path.

use serde::Serialize;

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

/// Why a page could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    /// The language pack is not installed (`tesseract-ocr-<pack>`).
    #[error("the Tesseract language pack `{0}` is not installed")]
    LanguageMissing(&'static str),
    /// The bytes are not an image Tesseract's image library reads (PNG, JPEG, TIFF).
    #[error("the file is not an image that OCR reads (PNG, JPEG or TIFF)")]
    NotAnImage,
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

/// Check that every language pack in `languages` is installed (at start, and before a job).
pub fn check_languages(languages: &[OcrLanguage]) -> Result<(), OcrError> {
    for &l in languages {
        tesseract::Tesseract::new(None, Some(l.pack())).map_err(|_| OcrError::LanguageMissing(l.pack()))?;
    }
    Ok(())
}

/// Read one page image (PNG, JPEG, or the first page of a TIFF) in `language`.
pub fn recognize(image: &[u8], language: OcrLanguage) -> Result<PageText, OcrError> {
    let engine = tesseract::Tesseract::new(None, Some(language.pack()))
        .map_err(|_| OcrError::LanguageMissing(language.pack()))?;
    let mut engine = engine.set_image_from_mem(image).map_err(|_| OcrError::NotAnImage)?;
    engine = engine.recognize().map_err(|e| OcrError::Engine(e.to_string()))?;
    let text = engine.get_text().map_err(|e| OcrError::Engine(e.to_string()))?;
    let tsv = engine.get_tsv_text(0).map_err(|e| OcrError::Engine(e.to_string()))?;
    let words = words_of_tsv(&tsv);
    let confidence = weighted_confidence(words.iter().map(|w| (w.confidence, w.text.chars().count())));
    Ok(PageText { text: text.trim_end().to_owned(), confidence, words })
}

/// The words of Tesseract's TSV output: rows of level 5 with a confidence (a row of `-1` is a
/// block, paragraph or line, not a word).
fn words_of_tsv(tsv: &str) -> Vec<Word> {
    tsv.lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() < 12 || cols[0] != "5" {
                return None;
            }
            let confidence: f32 = cols[10].trim().parse().ok()?;
            let text = cols[11].trim();
            (confidence >= 0.0 && !text.is_empty()).then(|| Word { text: text.to_owned(), confidence })
        })
        .collect()
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
    fn only_word_rows_of_the_tsv_count() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
                   4\t1\t1\t1\t1\t0\t0\t0\t10\t10\t-1\t\n\
                   5\t1\t1\t1\t1\t1\t0\t0\t10\t10\t96.5\tHaemoglobin\n\
                   5\t1\t1\t1\t1\t2\t0\t0\t10\t10\t-1\t \n\
                   5\t1\t1\t1\t1\t3\t0\t0\t10\t10\t88\t13.5";
        let words = words_of_tsv(tsv);
        assert_eq!(words.len(), 2);
        assert_eq!(words[0].text, "Haemoglobin");
        assert!((words[1].confidence - 88.0).abs() < 1e-4);
    }

    #[test]
    fn the_six_languages_map_to_their_packs() {
        assert_eq!(OcrLanguage::from_code("ZH").map(OcrLanguage::pack), Some("chi_sim"));
        assert!(OcrLanguage::from_code("de").is_none());
        assert_eq!(OcrLanguage::ALL.len(), 6);
    }
}
