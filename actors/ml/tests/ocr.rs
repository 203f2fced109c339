//! OCR end to end on real files: page images (a committed fixture drawn with ImageMagick) and
//! the document fixtures of `scripts/make-ocr-fixtures.py` (PDFs with and without text
//! layers, a two-page TIFF, a JPEG, turned scans, an encrypted and a truncated PDF). PDFs that only a
//! test needs (many pages, absurd page sizes) are written here by `pdf_of`.
//!
//! What is checked: each kind page by page with the right source, text layers exactly, scans
//! by their words, orientation, the refusals (encrypted, damaged, too many pages, a page too
//! large — before it is drawn), that no damaged input panics, the text lines for TrOCR, and
//! the document's confidence.
//!
//! `cargo test -p careport-ml --test ocr -- --ignored --nocapture` prints the measurements
//! (pages per second, the engine cache), which are not asserted.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use careport_ml::ocr::{
    self, Document, DocumentKind, DocumentLimits, DocumentText, LineBox, OcrError, OcrLanguage, PageInput, PageResult,
    PageSource, Raster,
};

const LAB: &[u8] = include_bytes!("fixtures/lab-results.png");
const TEXT_LAYER: &[u8] = include_bytes!("fixtures/text-layer.pdf");
const SCANNED: &[u8] = include_bytes!("fixtures/scanned.pdf");
const MIXED: &[u8] = include_bytes!("fixtures/mixed.pdf");
const TIFF: &[u8] = include_bytes!("fixtures/scan-2p.tif");
const SCAN: &[u8] = include_bytes!("fixtures/scan.png");
const SCAN_JPEG: &[u8] = include_bytes!("fixtures/scan.jpg");
const SCAN_ROT90: &[u8] = include_bytes!("fixtures/scan-rot90.png");
const SCAN_ROT180: &[u8] = include_bytes!("fixtures/scan-rot180.png");
const ENCRYPTED: &[u8] = include_bytes!("fixtures/encrypted.pdf");
const TRUNCATED: &[u8] = include_bytes!("fixtures/truncated.pdf");

/// The text layer of `text-layer.pdf` (TEXT_PAGES in the fixture script).
const TEXT_PAGE_1: &str = "Careport Clinical Laboratory\nDischarge summary, ward 4B\n\
                           Diagnosis: community acquired pneumonia\nRésultats vérifiés à 14 h";
const TEXT_PAGE_2: &str =
    "Medication on discharge\nAmoxicillin 500 mg three times daily for 5 days\nFollow-up in clinic after two weeks";

fn open(bytes: &[u8]) -> Document {
    Document::open(Arc::from(bytes), &DocumentLimits::default()).expect("the document opens")
}

fn open_with(bytes: &[u8], limits: DocumentLimits) -> Result<Document, OcrError> {
    Document::open(Arc::from(bytes), &limits)
}

fn read(doc: &Document, index: usize) -> PageResult {
    let input = doc.page(index).expect("the page opens");
    ocr::read_page(index + 1, input, OcrLanguage::En).expect("the page reads")
}

fn raster(input: PageInput) -> Raster {
    match input {
        PageInput::Image(raster) => raster,
        PageInput::TextLayer(_) => panic!("expected a raster, got a text layer"),
    }
}

/// A PDF whose pages are `(content stream, width, height)` in points, Helvetica as `/F1`.
fn pdf_of(pages: &[(String, u32, u32)]) -> Vec<u8> {
    let mut objects = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        String::new(), // the page tree, once the kids are known
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_owned(),
    ];
    let mut kids = Vec::new();
    for (content, width, height) in pages {
        let page_id = objects.len() + 1;
        kids.push(format!("{page_id} 0 R"));
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width} {height}] \
             /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            page_id + 1
        ));
        objects.push(format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()));
    }
    objects[1] = format!("<< /Type /Pages /Kids [{}] /Count {} >>", kids.join(" "), kids.len());
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    out
}

/// A letter page of text in `lines`.
fn text_page(lines: &[String]) -> (String, u32, u32) {
    let content = lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("BT /F1 11 Tf 72 {} Td ({l}) Tj ET", 720 - 16 * i))
        .collect::<Vec<_>>()
        .join("\n");
    (content, 612, 792)
}

fn words(text: &str) -> BTreeSet<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

// ---- page images (the first version's tests, unchanged) -------------------------------------

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

// ---- documents, kind by kind ----------------------------------------------------------------

#[test]
fn documents_are_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Document>();
    // And pages of one document are read from several threads at once through `&Document`.
    let doc = open(TIFF);
    let texts: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..doc.page_count())
            .map(|i| {
                s.spawn({
                    let doc = &doc;
                    move || read(doc, i).text
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("the reader thread")).collect()
    });
    assert!(texts[0].contains("Haemoglobin 13.5 g/dL"), "{texts:?}");
    assert!(texts[1].contains("Sodium 139 mmol/L"), "{texts:?}");
}

#[test]
fn a_text_layer_pdf_is_read_exactly_without_ocr() {
    let doc = open(TEXT_LAYER);
    assert_eq!((doc.kind(), doc.page_count()), (DocumentKind::Pdf, 2));
    for (index, expected) in [TEXT_PAGE_1, TEXT_PAGE_2].into_iter().enumerate() {
        let PageInput::TextLayer(text) = doc.page(index).expect("page") else {
            panic!("page {index}: not a text layer")
        };
        assert_eq!(text, expected);
        let page = ocr::read_page(index + 1, PageInput::TextLayer(text), OcrLanguage::En).expect("read");
        assert_eq!((page.page, page.source, page.rotation), (index + 1, PageSource::TextLayer, 0));
        assert_eq!(page.confidence, 100.0);
        assert_eq!(page.text, expected);
    }
}

#[test]
fn a_scanned_pdf_is_rasterised_at_the_limits_resolution_and_read() {
    let doc = open(SCANNED);
    assert_eq!((doc.kind(), doc.page_count()), (DocumentKind::Pdf, 2));
    let first = raster(doc.page(0).expect("page"));
    // 6 × 4 in at 300 dpi.
    assert_eq!((first.width, first.height, first.dpi()), (1800, 1200, Some(300)));
    let page = ocr::read_page(1, PageInput::Image(first), OcrLanguage::En).expect("read");
    assert_eq!((page.page, page.source, page.rotation), (1, PageSource::Ocr, 0));
    assert!(page.text.contains("Haemoglobin 13.5 g/dL"), "{:?}", page.text);
    assert!(page.text.contains("Reviewed by the duty pathologist"), "{:?}", page.text);
    assert!(page.confidence > 80.0, "{}", page.confidence);
    let second = read(&doc, 1);
    assert!(second.text.contains("Potassium 4.1 mmol/L"), "{:?}", second.text);
    // A lower resolution is honoured.
    let low = open_with(SCANNED, DocumentLimits { dpi: 150, ..DocumentLimits::default() }).expect("opens");
    let half = raster(low.page(0).expect("page"));
    assert_eq!((half.width, half.height, half.dpi()), (900, 600, Some(150)));
}

#[test]
fn a_mixed_pdf_takes_each_page_from_where_its_text_is() {
    let doc = open(MIXED);
    assert_eq!(doc.page_count(), 2);
    let first = read(&doc, 0);
    assert_eq!(first.source, PageSource::TextLayer);
    assert_eq!(first.text, TEXT_PAGE_1);
    let second = read(&doc, 1);
    assert_eq!(second.source, PageSource::Ocr);
    assert!(second.text.contains("Haemoglobin"), "{:?}", second.text);
}

#[test]
fn a_tiff_is_read_frame_by_frame() {
    let doc = open(TIFF);
    assert_eq!((doc.kind(), doc.page_count()), (DocumentKind::Tiff, 2));
    let first = raster(doc.page(0).expect("frame 1"));
    assert_eq!((first.width, first.height, first.dpi()), (1800, 1200, Some(300)));
    let pages: Vec<PageResult> = (0..2).map(|i| read(&doc, i)).collect();
    assert!(pages.iter().all(|p| p.source == PageSource::Ocr));
    assert!(pages[0].text.contains("Platelets 250"), "{:?}", pages[0].text);
    assert!(pages[1].text.contains("Creatinine 78 umol/L"), "{:?}", pages[1].text);
    assert_eq!(pages[1].page, 2);
}

#[test]
fn a_png_is_one_page() {
    let doc = open(SCAN);
    assert_eq!((doc.kind(), doc.page_count()), (DocumentKind::Png, 1));
    let scan = raster(doc.page(0).expect("page"));
    // The fixture's pHYs chunk says 300 dpi.
    assert_eq!((scan.width, scan.height, scan.dpi()), (1800, 1200, Some(300)));
    assert!(doc.page(1).is_err(), "there is no second page");
}

#[test]
fn a_jpeg_is_one_page() {
    let doc = open(SCAN_JPEG);
    assert_eq!((doc.kind(), doc.page_count()), (DocumentKind::Jpeg, 1));
    let photo = raster(doc.page(0).expect("page"));
    // 6 × 4 in at 200 dpi, as its JFIF header says.
    assert_eq!((photo.width, photo.height, photo.dpi()), (1200, 800, Some(200)));
    let page = ocr::read_page(1, PageInput::Image(photo), OcrLanguage::En).expect("read");
    assert_eq!(page.source, PageSource::Ocr);
    assert!(page.text.contains("Haemoglobin 13.5 g/dL"), "{:?}", page.text);
    // The old single-image entry point reads it too.
    assert!(ocr::recognize(SCAN_JPEG, OcrLanguage::En).expect("read").text.contains("Platelets 250"));
}

// ---- orientation --------------------------------------------------------------------------

#[test]
fn a_turned_page_is_read_upright_and_says_how_it_was_turned() {
    let upright = read(&open(SCAN), 0);
    assert_eq!(upright.rotation, 0);
    assert!(upright.text.contains("Haemoglobin 13.5 g/dL"), "{:?}", upright.text);
    let upright_words = words(&upright.text);
    // scan-rot90 is the page turned 90° clockwise: a further 270° clockwise stands it up.
    for (bytes, rotation) in [(SCAN_ROT90, 270), (SCAN_ROT180, 180)] {
        let doc = open(bytes);
        let page = read(&doc, 0);
        assert_eq!(page.rotation, rotation, "{:?}", page.text);
        assert!(page.text.contains("Haemoglobin 13.5 g/dL"), "{rotation}: {:?}", page.text);
        assert!(page.text.contains("Reviewed by the duty pathologist"), "{rotation}: {:?}", page.text);
        let turned = words(&page.text);
        let shared = upright_words.intersection(&turned).count();
        assert!(shared * 10 >= upright_words.len() * 9, "{rotation}: {turned:?} against {upright_words:?}");
        // `rotation` is what turns the raster upright: exactly the upright scan.
        let stood_up = raster(doc.page(0).expect("page")).rotate(page.rotation);
        assert!(stood_up == raster(open(SCAN).page(0).expect("page")), "{rotation}: not the upright page");
    }
}

// ---- refusals --------------------------------------------------------------------------------

#[test]
fn an_encrypted_pdf_is_refused() {
    let err = open_with(ENCRYPTED, DocumentLimits::default()).expect_err("refused");
    assert!(matches!(err, OcrError::Encrypted), "{err}");
}

#[test]
fn a_truncated_pdf_or_garbage_is_refused() {
    let err = open_with(TRUNCATED, DocumentLimits::default()).expect_err("refused");
    assert!(matches!(err, OcrError::Malformed(_)), "{err}");
    let err = open_with(b"GIF89a\x01\x00", DocumentLimits::default()).expect_err("refused");
    assert!(matches!(err, OcrError::NotAnImage), "{err}");
    let err = open_with(b"", DocumentLimits::default()).expect_err("refused");
    assert!(matches!(err, OcrError::NotAnImage), "{err}");
    // The reason is the problem, not the content.
    assert!(!err.to_string().contains("Careport"));
}

#[test]
fn damaged_files_never_panic() {
    // Small renders keep the many rasterisations quick; the point is the parsers.
    let limits = DocumentLimits { dpi: 36, ..DocumentLimits::default() };
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut tried = 0;
    let mut attempt = |bytes: &[u8]| {
        tried += 1;
        match Document::open(Arc::from(bytes), &limits) {
            Ok(doc) => {
                for i in 0..doc.page_count().min(3) {
                    // Any answer will do, as long as it is an answer.
                    let _ = doc.page(i);
                }
            }
            Err(
                OcrError::NotAnImage
                | OcrError::Malformed(_)
                | OcrError::Encrypted
                | OcrError::TooManyPages { .. }
                | OcrError::PageTooLarge { .. },
            ) => {}
            Err(other) => panic!("unexpected refusal: {other}"),
        }
    };
    for file in [TEXT_LAYER, SCANNED, MIXED, TIFF, SCAN, SCAN_JPEG, ENCRYPTED] {
        // Every truncation point in 48 steps, and the first bytes one by one.
        for cut in (0..64).chain((1..48).map(|k| file.len() * k / 48)) {
            attempt(&file[..cut.min(file.len())]);
        }
        // Bytes overwritten with noise, here and there.
        for _ in 0..24 {
            let mut damaged = file.to_vec();
            for _ in 0..8 {
                let at = (next() as usize) % damaged.len();
                damaged[at] = next() as u8;
            }
            attempt(&damaged);
        }
    }
    // Magic numbers followed by noise.
    for magic in [&b"%PDF-1.7\n"[..], b"II*\0", b"MM\0*", b"\x89PNG\r\n\x1a\n", &[0xFF, 0xD8, 0xFF]] {
        for len in [0usize, 8, 100, 4000] {
            let mut bytes = magic.to_vec();
            bytes.extend((0..len).map(|_| next() as u8));
            attempt(&bytes);
        }
    }
    assert!(tried > 800, "{tried}");
}

#[test]
fn more_pages_than_the_limit_are_refused_before_any_is_read() {
    let pages: Vec<_> = (0..3).map(|i| text_page(&[format!("Page {i}")])).collect();
    let pdf = pdf_of(&pages);
    assert_eq!(open(&pdf).page_count(), 3);
    let err = open_with(&pdf, DocumentLimits { max_pages: 2, ..DocumentLimits::default() }).expect_err("refused");
    assert!(matches!(err, OcrError::TooManyPages { pages: 3, limit: 2 }), "{err}");
    let err = open_with(TIFF, DocumentLimits { max_pages: 1, ..DocumentLimits::default() }).expect_err("refused");
    assert!(matches!(err, OcrError::TooManyPages { limit: 1, .. }), "{err}");
}

#[test]
fn a_page_too_large_is_refused_before_it_is_drawn() {
    // A blank page (no text layer: it would be rasterised) of 20 000 pt a side: past the side
    // limit. And one of 14 000 pt, within it, whose raster would be 3.4 gigapixels.
    for side in [20_000, 14_000] {
        let pdf = pdf_of(&[(String::new(), side, side)]);
        let doc = open(&pdf);
        // Refused by its size, from the page's box: drawing 3.4 gigapixels would not end here.
        let err = doc.page(0).expect_err("refused");
        assert!(matches!(err, OcrError::PageTooLarge { page: 1 }), "{side}: {err}");
    }
    // Every kind is held to the pixel limit: these pages are 1800 × 1200 (the JPEG 1200 × 800).
    let small = DocumentLimits { max_page_pixels: 900_000, ..DocumentLimits::default() };
    for bytes in [SCANNED, TIFF, SCAN, SCAN_JPEG] {
        let doc = open_with(bytes, small.clone()).expect("opens: the size is checked per page");
        let err = doc.page(0).expect_err("refused");
        assert!(matches!(err, OcrError::PageTooLarge { page: 1 }), "{err}");
    }
    // A text layer is not drawn, so its page's size does not matter.
    let pdf = pdf_of(&[("BT /F1 12 Tf 72 72 Td (Big paper) Tj ET".to_owned(), 20_000, 20_000)]);
    assert!(matches!(open(&pdf).page(0), Ok(PageInput::TextLayer(t)) if t == "Big paper"));
}

// ---- TrOCR's lines, and the document -------------------------------------------------------

#[test]
fn layout_analysis_finds_the_text_lines() {
    let scan = raster(open(SCAN).page(0).expect("page"));
    let lines = ocr::line_boxes(&scan).expect("layout");
    // The page has 8 lines; a long line may be split, none may be missed.
    assert!((8..=12).contains(&lines.len()), "{lines:?}");
    assert!(lines.iter().all(|b| b.x + b.width <= scan.width && b.y + b.height <= scan.height));
    assert!(lines.iter().all(|b| b.height >= 20 && b.height < 120 && b.width > b.height), "{lines:?}");
    // Reading order: top to bottom.
    assert!(lines.windows(2).all(|w| w[0].y <= w[1].y), "{lines:?}");
    // A crop is the line, in RGB for TrOCR.
    let crop = scan.crop(&lines[2]);
    assert_eq!(crop.to_rgb8().len(), (crop.width * crop.height * 3) as usize);
    let blank = Raster::from_grey(300, 200, vec![255; 60_000]).expect("raster");
    assert_eq!(ocr::line_boxes(&blank).expect("layout"), Vec::<LineBox>::new());
}

#[test]
fn a_documents_confidence_is_its_pages_weighted_by_their_characters() {
    let doc = ocr::read_document(Arc::from(MIXED), OcrLanguage::En, &DocumentLimits::default()).expect("read");
    assert_eq!(
        doc.pages.iter().map(|p| (p.page, p.source)).collect::<Vec<_>>(),
        [(1, PageSource::TextLayer), (2, PageSource::Ocr)]
    );
    let chars = |p: &PageResult| p.text.chars().filter(|c| !c.is_whitespace()).count() as f32;
    let (a, b) = (&doc.pages[0], &doc.pages[1]);
    let expected = (a.confidence * chars(a) + b.confidence * chars(b)) / (chars(a) + chars(b));
    assert!((doc.mean_confidence - expected).abs() < 1e-3, "{} against {expected}", doc.mean_confidence);
    assert!(b.confidence < 100.0 && doc.mean_confidence < 100.0 && doc.mean_confidence > b.confidence);
    assert_eq!(doc.text, format!("{}\n\n{}", a.text, b.text));
    // Pages rebuilt from storage (no words) weigh the same.
    let rebuilt =
        DocumentText::from_pages(doc.pages.iter().map(|p| PageResult { words: vec![], ..p.clone() }).collect());
    assert_eq!(rebuilt.mean_confidence, doc.mean_confidence);
    // And as the API serialises it.
    let json = serde_json::to_value(&doc).expect("json");
    assert_eq!(json["pages"][0]["source"], "text-layer");
    assert_eq!(json["pages"][1]["source"], "ocr");
    assert!(json["pages"][0].get("words").is_none());
}

// ---- measurements (not asserted) -----------------------------------------------------------

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn measure_pages_per_second_and_the_engine_cache() {
    let limits = DocumentLimits::default();
    let rate = |name: &str, bytes: &[u8], rounds: usize| {
        let bytes: Arc<[u8]> = Arc::from(bytes);
        // One round first, so every pool thread has its engine (steady state).
        let pages = ocr::read_document(bytes.clone(), OcrLanguage::En, &limits).expect("read").pages.len();
        let started = Instant::now();
        for _ in 0..rounds {
            ocr::read_document(bytes.clone(), OcrLanguage::En, &limits).expect("read");
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{name}: {pages} pages × {rounds}: {:.1} pages/s ({:.1} ms a page)",
            (pages * rounds) as f64 / secs,
            secs * 1000.0 / (pages * rounds) as f64
        );
    };
    println!("rayon threads: {}", rayon::current_num_threads());
    rate("scanned.pdf (rasterise + OCR)", SCANNED, 3);
    let fifty: Vec<_> = (0..50)
        .map(|p| {
            text_page(
                &(0..40)
                    .map(|l| format!("Page {p} line {l}: Haemoglobin 13.5 g/dL, platelets 250"))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    rate("50-page text-layer PDF", &pdf_of(&fifty), 5);

    // The engine cache: a fresh thread's first page creates its engine, the next reuse it.
    let scan = raster(open(SCAN).page(0).expect("page"));
    let (mut cold, mut warm) = (Duration::ZERO, Duration::ZERO);
    let rounds = 3;
    for _ in 0..rounds {
        let (c, w) = std::thread::scope(|s| {
            s.spawn(|| {
                let t = Instant::now();
                ocr::read_page(1, PageInput::Image(scan.clone()), OcrLanguage::En).expect("read");
                let first = t.elapsed();
                let t = Instant::now();
                for _ in 0..3 {
                    ocr::read_page(1, PageInput::Image(scan.clone()), OcrLanguage::En).expect("read");
                }
                (first, t.elapsed() / 3)
            })
            .join()
            .expect("thread")
        });
        cold += c;
        warm += w;
    }
    let t = Instant::now();
    for _ in 0..rounds {
        ocr::check_languages(&[OcrLanguage::En]).expect("eng");
    }
    println!(
        "scan.png (1800×1200) on one thread: first page {:.0} ms (engine created), later pages {:.0} ms (cached); creating an eng engine alone: {:.0} ms",
        cold.as_secs_f64() * 1000.0 / rounds as f64,
        warm.as_secs_f64() * 1000.0 / rounds as f64,
        t.elapsed().as_secs_f64() * 1000.0 / rounds as f64,
    );
    let t = Instant::now();
    let boxes = ocr::line_boxes(&scan).expect("layout");
    println!("line_boxes: {} lines in {:.0} ms", boxes.len(), t.elapsed().as_secs_f64() * 1000.0);
    let doc = open(SCANNED);
    let t = Instant::now();
    let _ = doc.page(0).expect("page");
    println!("rasterising a 6×4 in scanned PDF page at 300 dpi: {:.0} ms", t.elapsed().as_secs_f64() * 1000.0);
}
