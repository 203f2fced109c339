//! Tesseract in process: a page raster to words with the engine's confidences, the page's
//! orientation, and the text-line boxes for the TrOCR path.
//!
//! Engines are kept, one per thread and language, for the thread's life. Creating one loads
//! the language's model (tens of milliseconds, more for `chi_sim`); the first page a thread
//! reads in a language pays it, the others reuse the engine with a new image. Tesseract's API
//! is not shared between threads, which is why the cache is a `thread_local!`: a pool's
//! threads each grow their own, and pages run side by side. Memory: one model per language a
//! thread has read (about 15–40 MB each).
//!
//! Orientation: a page is first read as it came (mode 3); one that reads badly (an upside-down
//! page's "words" are noise) is read again with Tesseract's own detection (OSD, the `osd`
//! pack), in the same pass as that second reading: page-segmentation mode 1 ("automatic, with orientation and
//! script detection"), in which layout analysis classifies a sample of the page's characters
//! in each of the four orientations and turns the text blocks upright before recognition when
//! one orientation clearly wins; when none does (too little text), the page is read as it
//! came. The angle found is read back from the hOCR output (`textangle` of the lines).
//! Why this and not `TessBaseAPIDetectOrientationScript` followed by our own turn of the
//! pixels and a second read: that call is reachable only through raw FFI, and the workspace
//! forbids `unsafe` code; the `tesseract` crates wrap no OSD call (psm 0's result comes out
//! only through `GetOsdText`, also unwrapped). Mode 1 reaches the same detector safely, and
//! reads the page once instead of twice.
//!
//! Pixels go to Tesseract as they are (`SetImage` with raw grey bytes, which it copies), not
//! re-encoded to an image file.

use std::cell::RefCell;
use std::ffi::CString;

use tesseract::PageSegMode;
use tesseract::plumbing::TessBaseApi;
use tesseract::plumbing::tesseract_sys::TessPageIteratorLevel_RIL_TEXTLINE;

use super::raster::{LineBox, Raster};
use super::{OcrError, OcrLanguage, Word, weighted_confidence};

/// The language whose engine does layout analysis alone ([`line_boxes`]): layout does not
/// depend on the language, and `eng` is installed with Tesseract itself.
const LAYOUT_LANGUAGE: OcrLanguage = OcrLanguage::En;

/// Rasters smaller than this on a side hold no text Tesseract can read (its own minimum is
/// 10 pixels); they read as empty rather than reaching the engine.
const MIN_SIDE: u32 = 10;

thread_local! {
    /// This thread's engines, at most one per language (six at most: a linear search).
    static ENGINES: RefCell<Vec<(OcrLanguage, TessBaseApi)>> = const { RefCell::new(Vec::new()) };
}

/// A page as the engine read it.
#[derive(Debug, Clone)]
pub struct Recognized {
    pub text: String,
    /// The words' confidences weighted by their length (0–100); 0 with no words.
    pub confidence: f32,
    pub words: Vec<Word>,
    /// Clockwise degrees the page was turned to read it (0, 90, 180, 270).
    pub rotation: u16,
}

/// A new engine for `language`, its model loaded.
fn new_engine(language: OcrLanguage) -> Result<TessBaseApi, OcrError> {
    let missing = || OcrError::LanguageMissing(language.pack());
    let pack = CString::new(language.pack()).map_err(|_| missing())?;
    let mut api = TessBaseApi::create();
    api.init_2(None, Some(&pack)).map_err(|_| missing())?;
    Ok(api)
}

/// Whether `language`'s pack loads. Creates a throwaway engine (not this thread's cached
/// one: a check at start should not pin a model in memory on the checking thread).
pub(crate) fn check_language(language: OcrLanguage) -> Result<(), OcrError> {
    new_engine(language).map(drop)
}

/// Run `f` with this thread's engine for `language`, creating it on first use. An engine that
/// failed is dropped rather than trusted with the next page.
fn with_engine<T>(
    language: OcrLanguage,
    f: impl FnOnce(&mut TessBaseApi) -> Result<T, OcrError>,
) -> Result<T, OcrError> {
    ENGINES.with(|cell| {
        let mut engines = cell
            .try_borrow_mut()
            .map_err(|_| OcrError::Engine("the engine is already in use on this thread".into()))?;
        let index = match engines.iter().position(|(l, _)| *l == language) {
            Some(i) => i,
            None => {
                engines.push((language, new_engine(language)?));
                engines.len() - 1
            }
        };
        let Some((_, api)) = engines.get_mut(index) else {
            return Err(OcrError::Engine("the engine cache lost an engine".into()));
        };
        let result = f(api);
        if result.is_err() {
            engines.swap_remove(index);
        }
        result
    })
}

/// Give `raster` to `api` (Tesseract copies the pixels), with its resolution where known.
fn set_raster(api: &mut TessBaseApi, raster: &Raster) -> Result<(), OcrError> {
    let too_large = || OcrError::Engine("the image is too large for the engine".into());
    let width = i32::try_from(raster.width).map_err(|_| too_large())?;
    let height = i32::try_from(raster.height).map_err(|_| too_large())?;
    api.set_image(raster.pixels(), width, height, 1, width).map_err(|e| OcrError::Engine(e.to_string()))?;
    if let Some(dpi) = raster.dpi().and_then(|d| i32::try_from(d).ok()) {
        api.set_source_resolution(dpi);
    }
    Ok(())
}

fn readable(raster: &Raster) -> Result<bool, OcrError> {
    if !raster.is_consistent() {
        return Err(OcrError::Engine("the raster's size does not match its pixels".into()));
    }
    Ok(raster.width >= MIN_SIDE && raster.height >= MIN_SIDE)
}

/// A first read whose confidence is below this is read again with orientation detection.
/// Upright typed pages read at 85–95; a page upside down reads at about 30 (its "words" are
/// noise). A page turned 90° reads well in the first pass (layout analysis finds vertical
/// lines and reads them), but only orientation detection says which way it was turned: its
/// lines standing on end send it to the second read too.
const READ_AGAIN_WITH_OSD_BELOW: f32 = 70.0;

/// How much lower a sideways page's second read may score and still be kept (it names the
/// page's turn; the first read's text of such a page is about as good, not better).
const SIDEWAYS_MARGIN: f32 = 5.0;

/// Read `raster` in `language` on this thread's engine, turning it upright when it was scanned
/// upside down or sideways.
///
/// The page is first read as it came (page-segmentation mode 3, what a Python service runs);
/// only a page that reads badly, or whose lines stand on end, is read again in mode 1, whose orientation detection costs
/// about 60 % more per page — paid by every page if done always, by the few that need it
/// this way. The better of the two reads (by the engine's confidence) is kept.
pub fn read_raster(raster: &Raster, language: OcrLanguage) -> Result<Recognized, OcrError> {
    if !readable(raster)? {
        return Ok(Recognized { text: String::new(), confidence: 0.0, words: Vec::new(), rotation: 0 });
    }
    with_engine(language, |api| {
        let (first, on_end) = recognize_in(api, raster, PageSegMode::PsmAuto)?;
        if first.words.is_empty() || (first.confidence >= READ_AGAIN_WITH_OSD_BELOW && !on_end) {
            return Ok(first);
        }
        let (turned, _) = recognize_in(api, raster, PageSegMode::PsmAutoOsd)?;
        // A sideways page read about as well both times: the second read knows its turn.
        let margin = if on_end { SIDEWAYS_MARGIN } else { 0.0 };
        Ok(if turned.confidence + margin > first.confidence { turned } else { first })
    })
}

/// One read of `raster` in page-segmentation `mode`, and whether its lines stand on end.
///
/// Mode 3 (the first read) renders the TSV only: text, words, confidences and line boxes all
/// come from it, and mode 3 never turns a page. Mode 1 adds the hOCR, whose `textangle` names
/// the turn it made; it also renders Tesseract's own text. (Each renderer walks every word of
/// the page again: the first read, which every page pays, walks them once.)
fn recognize_in(api: &mut TessBaseApi, raster: &Raster, mode: PageSegMode) -> Result<(Recognized, bool), OcrError> {
    let failed = |what: &str| OcrError::Engine(format!("Tesseract failed to {what}"));
    api.set_page_seg_mode(mode.as_tess_page_seg_mode());
    set_raster(api, raster)?;
    api.recognize().map_err(|_| failed("recognise the page"))?;
    let tsv = api.get_tsv_text(0).map_err(|_| failed("give the words"))?.as_ref().to_string_lossy().into_owned();
    let words = words_of_tsv(&tsv);
    let confidence = weighted_confidence(words.iter().map(|w| (w.confidence, w.text.chars().count())));
    if mode == PageSegMode::PsmAuto {
        let read = Recognized { text: text_of_tsv(&tsv), confidence, words, rotation: 0 };
        return Ok((read, sideways_in_tsv(&tsv)));
    }
    let text = api.get_utf8_text().map_err(|_| failed("give the text"))?.as_ref().to_string_lossy().into_owned();
    let hocr = api.get_hocr_text(0).map_err(|_| failed("give the layout"))?.as_ref().to_string_lossy().into_owned();
    let read = Recognized { text: text.trim_end().to_owned(), confidence, words, rotation: rotation_of_hocr(&hocr) };
    Ok((read, false))
}

/// The page's text from the TSV, laid out as Tesseract lays its own: a line per line, a blank
/// line between paragraphs.
fn text_of_tsv(tsv: &str) -> String {
    let mut out = String::new();
    let mut last: Option<(&str, &str, &str)> = None;
    for row in tsv.lines() {
        let cols: Vec<&str> = row.split('\t').collect();
        if cols.len() < 12 || cols[0] != "5" {
            continue;
        }
        let word = cols[11].trim();
        if word.is_empty() {
            continue;
        }
        let (block, par, line) = (cols[2], cols[3], cols[4]);
        match last {
            Some((b, p, l)) if (b, p, l) == (block, par, line) => out.push(' '),
            Some((b, p, _)) if (b, p) == (block, par) => out.push('\n'),
            Some(_) => out.push_str("\n\n"),
            None => {}
        }
        out.push_str(word);
        last = Some((block, par, line));
    }
    out
}

/// Whether most of the page's lines stand on end (a box at least twice as tall as wide): a
/// page scanned sideways, which mode 3 reads but whose turn only orientation detection names.
/// From the TSV's line rows (level 4: `left top width height`).
fn sideways_in_tsv(tsv: &str) -> bool {
    let (mut lines, mut tall) = (0usize, 0usize);
    for row in tsv.lines() {
        let cols: Vec<&str> = row.split('\t').collect();
        if cols.len() < 10 || cols[0] != "4" {
            continue;
        }
        let (Ok(width), Ok(height)) = (cols[8].parse::<u32>(), cols[9].parse::<u32>()) else { continue };
        lines += 1;
        if height > width.saturating_mul(2) {
            tall += 1;
        }
    }
    tall * 2 > lines
}

/// The text lines of `raster`, in reading order, by Tesseract's layout analysis alone (no
/// recognition: a few tens of milliseconds a page). For the TrOCR path, which reads single
/// lines. The raster is analysed as it is: turn it upright first where needed
/// ([`Raster::rotate`]). An empty list when the page has no text.
pub fn line_boxes(raster: &Raster) -> Result<Vec<LineBox>, OcrError> {
    if !readable(raster)? {
        return Ok(Vec::new());
    }
    with_engine(LAYOUT_LANGUAGE, |api| {
        // Mode 3 (automatic, no OSD): boxes for the raster as given.
        api.set_page_seg_mode(PageSegMode::PsmAuto.as_tess_page_seg_mode());
        set_raster(api, raster)?;
        // No lines at all comes back as null: an empty page, not a failure.
        let Ok(boxa) = api.get_component_images_1(TessPageIteratorLevel_RIL_TEXTLINE, 1) else {
            return Ok(Vec::new());
        };
        let mut lines = Vec::new();
        for i in 0..boxa.get_count() {
            let Some(b) = boxa.get_box_copied(i) else { continue };
            let (mut x, mut y, mut w, mut h) = (0, 0, 0, 0);
            b.get_geometry(Some(&mut x), Some(&mut y), Some(&mut w), Some(&mut h));
            if let Some(line) = clamp_box(raster, x, y, w, h) {
                lines.push(line);
            }
        }
        Ok(lines)
    })
}

/// A box from Tesseract's signed geometry, inside the raster; `None` when empty.
fn clamp_box(raster: &Raster, x: i32, y: i32, w: i32, h: i32) -> Option<LineBox> {
    let x0 = u32::try_from(x.max(0)).ok()?.min(raster.width);
    let y0 = u32::try_from(y.max(0)).ok()?.min(raster.height);
    let x1 = u32::try_from(x.saturating_add(w).max(0)).ok()?.min(raster.width);
    let y1 = u32::try_from(y.saturating_add(h).max(0)).ok()?.min(raster.height);
    (x1 > x0 && y1 > y0).then_some(LineBox { x: x0, y: y0, width: x1 - x0, height: y1 - y0 })
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

/// The page's orientation from Tesseract's hOCR: each line of a block that layout analysis
/// turned carries `textangle A` (A = 90, 180, 270), where A is also the clockwise turn that
/// made it upright; an upright line carries none. The page's is the angle most of its lines
/// have (ties to upright: when in doubt, the page was read as it came).
fn rotation_of_hocr(hocr: &str) -> u16 {
    const LINE_CLASSES: [&str; 4] = ["'ocr_line'", "'ocr_header'", "'ocr_caption'", "'ocr_textfloat'"];
    let mut votes = [0usize; 4];
    for element in hocr.split("<span class=").skip(1) {
        if !LINE_CLASSES.iter().any(|c| element.starts_with(c)) {
            continue;
        }
        // The element's title is in its opening tag, before the first `>`.
        let tag = element.split('>').next().unwrap_or("");
        let angle = tag
            .split(';')
            .find_map(|part| part.trim().strip_prefix("textangle "))
            .and_then(|a| a.trim().trim_end_matches('"').parse::<u16>().ok())
            .unwrap_or(0);
        if let Some(v) = votes.get_mut(usize::from(angle % 360 / 90)) {
            *v += 1;
        }
    }
    let mut best = 0;
    for (i, &v) in votes.iter().enumerate() {
        if v > votes[best] {
            best = i;
        }
    }
    (best as u16) * 90
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_text_is_laid_out_by_lines_and_paragraphs_and_tall_lines_mean_a_sideways_page() {
        let row = |level: u8, block: u8, par: u8, line: u8, w: u32, h: u32, text: &str| {
            format!("{level}\t1\t{block}\t{par}\t{line}\t1\t0\t0\t{w}\t{h}\t90\t{text}\n")
        };
        let tsv = [
            row(4, 1, 1, 1, 400, 40, ""),
            row(5, 1, 1, 1, 100, 40, "Full"),
            row(5, 1, 1, 1, 100, 40, "blood"),
            row(4, 1, 1, 2, 400, 40, ""),
            row(5, 1, 1, 2, 100, 40, "count"),
            row(4, 1, 2, 1, 400, 40, ""),
            row(5, 1, 2, 1, 100, 40, "Reviewed"),
        ]
        .concat();
        assert_eq!(text_of_tsv(&tsv), "Full blood\ncount\n\nReviewed");
        assert!(!sideways_in_tsv(&tsv));
        let on_end =
            [row(4, 1, 1, 1, 40, 400, ""), row(4, 1, 1, 2, 40, 380, ""), row(4, 1, 1, 3, 400, 40, "")].concat();
        assert!(sideways_in_tsv(&on_end));
        assert!(!sideways_in_tsv(""));
    }

    #[test]
    fn the_orientation_is_the_angle_most_lines_carry() {
        let line = |angle: Option<u16>| {
            let angle = angle.map(|a| format!("; textangle {a}")).unwrap_or_default();
            format!(
                "<span class='ocr_line' id='line_1_1' title=\"bbox 1 2 3 4{angle}; x_size 52\"><span class='ocrx_word' title='bbox 1 2 3 4; x_wconf 96'>w</span></span>"
            )
        };
        let page = |lines: &[Option<u16>]| lines.iter().map(|a| line(*a)).collect::<String>();
        assert_eq!(rotation_of_hocr(&page(&[None, None])), 0);
        assert_eq!(rotation_of_hocr(&page(&[Some(270), Some(270), None])), 270);
        assert_eq!(rotation_of_hocr(&page(&[Some(180)])), 180);
        assert_eq!(rotation_of_hocr(&page(&[Some(90), None])), 0, "a tie reads as it came");
        assert_eq!(rotation_of_hocr(""), 0);
        // Headers are lines too.
        assert_eq!(rotation_of_hocr("<span class='ocr_header' title=\"bbox 0 0 1 1; textangle 90\">"), 90);
    }

    #[test]
    fn boxes_are_clamped_to_the_raster() {
        let r = Raster::from_grey(100, 50, vec![255; 5000]).expect("raster");
        assert_eq!(clamp_box(&r, -5, 10, 20, 10), Some(LineBox { x: 0, y: 10, width: 15, height: 10 }));
        assert_eq!(clamp_box(&r, 90, 40, 50, 50), Some(LineBox { x: 90, y: 40, width: 10, height: 10 }));
        assert_eq!(clamp_box(&r, 200, 0, 5, 5), None);
        assert_eq!(clamp_box(&r, i32::MAX, i32::MAX, i32::MAX, i32::MAX), None);
    }
}
