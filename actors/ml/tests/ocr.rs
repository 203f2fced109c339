//! Tesseract in process on a real page image (a committed fixture drawn with ImageMagick):
//! the text, the engine's confidence, the six language packs, and bad input refused.

use careport_ml::ocr::{self, OcrError, OcrLanguage};

const LAB: &[u8] = include_bytes!("fixtures/lab-results.png");

#[test]
fn a_page_image_is_read_with_the_engines_confidence() {
    let page = ocr::recognize(LAB, OcrLanguage::En).expect("ocr");
    assert!(page.text.contains("Haemoglobin 13.5 g/dL"), "{:?}", page.text);
    assert!(page.text.contains("Platelets 250"), "{:?}", page.text);
    // From the engine: every word has its own, and the page's is their weighted mean.
    assert!(page.words.len() >= 6, "{:?}", page.words);
    assert!(page.words.iter().all(|w| (0.0..=100.0).contains(&w.confidence)));
    let word = |t: &str| page.words.iter().find(|w| w.text == t).map(|w| w.confidence);
    assert!(word("Haemoglobin").is_some_and(|c| c > 90.0), "{:?}", page.words);
    // The superscript in `x10^9/L` is what Tesseract misreads, and it says so: that word's
    // confidence is low, where a length-based "confidence" would call it fine.
    let unsure = page.words.iter().find(|w| w.text.starts_with("x10")).expect("the unit");
    assert!(unsure.confidence < 60.0 || unsure.text == "x10^9/L", "{unsure:?}");
    assert!(page.confidence > 70.0, "clean typed text reads with high confidence: {}", page.confidence);
    let expected = ocr::weighted_confidence(page.words.iter().map(|w| (w.confidence, w.text.chars().count())));
    assert!((page.confidence - expected).abs() < 1e-3);
}

#[test]
fn every_language_pack_the_portal_needs_is_installed() {
    ocr::check_languages(&OcrLanguage::ALL).expect("the six packs (.ci/run installs them)");
}

#[test]
fn bytes_that_are_no_image_are_refused_not_read() {
    let err = ocr::recognize(b"%PDF-1.7 not an image", OcrLanguage::En).expect_err("refused");
    assert!(matches!(err, OcrError::NotAnImage), "{err}");
}
