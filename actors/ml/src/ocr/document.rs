//! Documents: what a file is, how many pages it has, and each page as text or as a raster.
//!
//! The format is sniffed from the file's first bytes, never from its name or a declared media
//! type (an upload can say anything). [`Document::open`] is cheap and refuses what should not
//! be read before any page is: an unknown format, an encrypted PDF, a damaged file, more pages
//! than the limit. [`Document::page`] does the work of one page, so that a document's pages are
//! decoded where and when they are read (a 50-page scan never sits in memory as fifty rasters):
//! - a PDF page with a text layer gives that text; one without (a scan) is rasterised at the
//!   limits' resolution, its size checked against the limits from the page's dimensions
//!   *before* any pixel is drawn;
//! - a TIFF gives frame `i` (reduced-resolution thumbnails are not pages);
//! - a PNG or JPEG is one page.
//!
//! Readers: `lopdf` for a PDF's structure and text layers, `hayro` (pure Rust) to rasterise
//! PDF pages and to decode JPEGs (its DCT decoder, through a one-image PDF made in memory),
//! `vello_cpu` (through hayro) for PNGs, `tiff` for TIFFs. Each is called behind a guard that
//! turns a panic inside it into [`OcrError::Malformed`]: a hostile file must not take a worker
//! thread down with it.

use std::io::Cursor;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use hayro::hayro_interpret::InterpreterSettings;
use hayro::hayro_syntax::object::Name;
use hayro::hayro_syntax::object::stream::{ImageColorSpace, ImageDecodeParams};
use hayro::hayro_syntax::{Pdf as HayroPdf, PdfData};
use hayro::vello_cpu::color::palette::css::WHITE;
use hayro::{PixmapSettings, RenderCache, RenderSettings};
use serde::Serialize;
use tiff::decoder::{Decoder as TiffDecoder, DecodingResult};
use tiff::{ColorType, tags::Tag};

use super::OcrError;
use super::raster::{Layout, Raster, area, to_grey};

/// What a document may be before it is refused. The defaults suit uploads to a clinical
/// portal: scans of letters, lab reports and forms.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentLimits {
    /// Pages in a document. Default 500.
    pub max_pages: usize,
    /// The longer side of a PDF page, in points (1/72 in). Default 14 400 (200 in): PDF's own
    /// maximum, far beyond any paper, so only absurd pages are refused on this.
    pub max_page_side_pt: f32,
    /// Pixels in one page raster (rasterised PDF page, TIFF frame, image). Default 80 million:
    /// an A3 page at 600 dpi (70 M) passes, a pixel bomb does not.
    pub max_page_pixels: u64,
    /// Resolution PDF pages without a text layer are rasterised at. Default 300 (what OCR
    /// reads best); 0 reads as the default.
    pub dpi: u32,
}

impl Default for DocumentLimits {
    fn default() -> Self {
        Self { max_pages: 500, max_page_side_pt: 14_400.0, max_page_pixels: 80_000_000, dpi: 300 }
    }
}

impl DocumentLimits {
    fn dpi(&self) -> u32 {
        if self.dpi == 0 { 300 } else { self.dpi }
    }
}

/// The formats OCR reads, as their first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentKind {
    Png,
    Jpeg,
    Tiff,
    Pdf,
}

impl DocumentKind {
    /// The format of `bytes` from their magic numbers; `None` for anything else.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if [b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"].iter().any(|m| bytes.starts_with(*m)) {
            Some(Self::Tiff)
        } else if bytes.get(..1024).unwrap_or(bytes).windows(5).any(|w| w == b"%PDF-") {
            // Readers accept a PDF header anywhere in the first kilobyte (some generators
            // write a preamble); so do we.
            Some(Self::Pdf)
        } else {
            None
        }
    }

    /// The format's media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Tiff => "image/tiff",
            Self::Pdf => "application/pdf",
        }
    }
}

/// One page, ready to read.
pub enum PageInput {
    /// A PDF page's own text: lines as the layer gives them, trailing spaces trimmed.
    TextLayer(String),
    /// A page image to recognise.
    Image(Raster),
}

// A page's text is a patient's: `Debug` says what the page is, not what it says.
impl std::fmt::Debug for PageInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TextLayer(text) => write!(f, "TextLayer({} chars)", text.chars().count()),
            Self::Image(raster) => f.debug_tuple("Image").field(raster).finish(),
        }
    }
}

/// An opened document: its bytes, its format and its page count, checked. `Send + Sync`:
/// threads read its pages side by side through `&Document`.
pub struct Document {
    bytes: Arc<[u8]>,
    kind: DocumentKind,
    pages: usize,
    limits: DocumentLimits,
    format: Format,
}

enum Format {
    /// PNG or JPEG: one page.
    Image,
    /// A TIFF: the IFD index of each page.
    Tiff(Vec<usize>),
    Pdf(Box<PdfParts>),
}

struct PdfParts {
    /// The structure and text layers.
    doc: lopdf::Document,
    /// Page object ids in page order.
    pages: Vec<lopdf::ObjectId>,
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document").field("kind", &self.kind).field("pages", &self.pages).finish_non_exhaustive()
    }
}

/// Run a third-party decoder on untrusted bytes: a panic inside it becomes a refusal of the
/// file, not a dead thread. (The panic's message still reaches the panic hook; decoders'
/// messages name their own state, not the document's text.)
fn guarded<T>(f: impl FnOnce() -> Result<T, OcrError>) -> Result<T, OcrError> {
    std::panic::catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(OcrError::Malformed("a decoder failed on this file".into())))
}

fn malformed(reason: &str) -> OcrError {
    OcrError::Malformed(reason.to_owned())
}

/// Decompressed size bound for one page's content when its text layer is read: a page's
/// drawing instructions are kilobytes; a bomb is refused.
const MAX_PAGE_CONTENT: usize = 64 * 1024 * 1024;

/// A page that draws images is a scan unless its text layer is at least this long (visible,
/// non-whitespace characters): a scanner's header, a stamp or a page number over a scanned
/// page is not the page's text.
const MIN_TEXT_OVER_IMAGES: usize = 200;

impl Document {
    /// Open `bytes`: sniff the format, count the pages, refuse what should not be read. Cheap:
    /// nothing is rasterised or recognised.
    pub fn open(bytes: Arc<[u8]>, limits: &DocumentLimits) -> Result<Document, OcrError> {
        let kind = DocumentKind::sniff(&bytes).ok_or(OcrError::NotAnImage)?;
        let format = guarded(|| match kind {
            DocumentKind::Png => png_size(&bytes).map(|_| Format::Image),
            DocumentKind::Jpeg => jpeg_info(&bytes).map(|_| Format::Image),
            DocumentKind::Tiff => tiff_pages(&bytes, limits).map(Format::Tiff),
            DocumentKind::Pdf => open_pdf(&bytes).map(|p| Format::Pdf(Box::new(p))),
        })?;
        let pages = match &format {
            Format::Image => 1,
            Format::Tiff(frames) => frames.len(),
            Format::Pdf(pdf) => pdf.pages.len(),
        };
        if pages == 0 {
            return Err(malformed("the document has no pages"));
        }
        if pages > limits.max_pages {
            return Err(OcrError::TooManyPages { pages, limit: limits.max_pages });
        }
        Ok(Document { bytes, kind, pages, limits: limits.clone(), format })
    }

    pub fn kind(&self) -> DocumentKind {
        self.kind
    }

    pub fn page_count(&self) -> usize {
        self.pages
    }

    /// Page `index` (0-based), as its text layer or as a raster to recognise. The work of one
    /// page: a scan is decoded or rasterised here, its size checked against the limits first
    /// ([`OcrError::PageTooLarge`]). An index past the last page is [`OcrError::Malformed`].
    pub fn page(&self, index: usize) -> Result<PageInput, OcrError> {
        if index >= self.pages {
            return Err(malformed("there is no such page"));
        }
        let number = index + 1;
        guarded(|| match &self.format {
            Format::Image => {
                let raster = match self.kind {
                    DocumentKind::Jpeg => decode_jpeg(&self.bytes, &self.limits)?,
                    _ => decode_png(&self.bytes, &self.limits)?,
                };
                Ok(PageInput::Image(raster))
            }
            Format::Tiff(frames) => {
                let ifd = frames.get(index).copied().ok_or_else(|| malformed("there is no such page"))?;
                decode_tiff_frame(&self.bytes, ifd, number, &self.limits).map(PageInput::Image)
            }
            Format::Pdf(pdf) => match pdf.text_layer(index) {
                Some(text) => Ok(PageInput::TextLayer(text)),
                None => pdf.rasterise(&self.bytes, index, &self.limits).map(PageInput::Image),
            },
        })
    }

    /// Page `index`'s text layer alone, never rasterised: `None` for a page without one (a
    /// scan) and for images. For readers that take text only (the knowledge base).
    pub fn page_text_layer(&self, index: usize) -> Result<Option<String>, OcrError> {
        if index >= self.pages {
            return Err(malformed("there is no such page"));
        }
        guarded(|| match &self.format {
            Format::Pdf(pdf) => Ok(pdf.text_layer(index)),
            Format::Image | Format::Tiff(_) => Ok(None),
        })
    }
}

// ---- PDF -----------------------------------------------------------------------------------

fn open_pdf(bytes: &[u8]) -> Result<PdfParts, OcrError> {
    let doc = match lopdf::Document::load_mem_with_options(bytes, lopdf::LoadOptions::default()) {
        Ok(doc) => doc,
        Err(lopdf::Error::Decryption(_) | lopdf::Error::InvalidPassword | lopdf::Error::AlreadyEncrypted) => {
            return Err(OcrError::Encrypted);
        }
        Err(_) => return Err(malformed("the PDF's structure could not be read")),
    };
    // Refused whether or not the empty password would open it: an encrypted PDF is one its
    // author meant to be opened deliberately, and the rasteriser does not read encrypted
    // content streams the same way; one rule, stated in the error.
    if doc.trailer.get(b"Encrypt").is_ok() || doc.encryption_state.is_some() {
        return Err(OcrError::Encrypted);
    }
    let pages: Vec<lopdf::ObjectId> = doc.page_iter().collect();
    // lopdf keeps a page whose object is missing or unreadable as a stand-in (a blank page,
    // as some viewers show it). A missing page is how a truncated upload looks: the file is
    // refused whole, so nobody reads a record with pages silently gone.
    if pages.iter().any(|&id| doc.get_dictionary(id).is_err()) {
        return Err(malformed("a page of the PDF is missing or damaged"));
    }
    Ok(PdfParts { doc, pages })
}

/// `Arc<[u8]>` as hayro takes shared bytes (it wants a sized `AsRef<[u8]>`).
struct Shared(Arc<[u8]>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl PdfParts {
    /// The page's text layer, when it has one that is the page's text: non-empty, decodable,
    /// and — on a page that draws images — long and visible (not a scanner's OCR layer, text
    /// rendering mode 3, nor a header over a scan). Otherwise `None`: the page is read from
    /// its image.
    fn text_layer(&self, index: usize) -> Option<String> {
        let number = u32::try_from(index + 1).ok()?;
        let id = *self.pages.get(index)?;
        // Chunks that fail to decode (a font without a usable encoding) are left out; the
        // rest of the page's text still counts.
        let raw: String =
            self.doc.extract_text_chunks_with_limit(&[number], MAX_PAGE_CONTENT).into_iter().flatten().collect();
        let text = tidy(&raw);
        let chars = text.chars().filter(|c| !c.is_whitespace()).count();
        if chars == 0 || !mostly_readable(&text) {
            return None;
        }
        // An error listing the images: assume there are some (the safer reading is OCR).
        let draws_images = self.doc.get_page_images(id).map(|images| !images.is_empty()).unwrap_or(true);
        if draws_images && (chars < MIN_TEXT_OVER_IMAGES || self.has_invisible_text(id)) {
            return None;
        }
        Some(text)
    }

    /// Whether the page's content sets text rendering mode 3 (invisible): the mark of a text
    /// layer laid over a scan by an earlier OCR, whose confidence we cannot know.
    fn has_invisible_text(&self, id: lopdf::ObjectId) -> bool {
        let Ok(content) = self.doc.get_page_content_with_limit(id, MAX_PAGE_CONTENT) else { return false };
        let Ok(content) = lopdf::content::Content::decode(&content) else { return false };
        content
            .operations
            .iter()
            .any(|op| op.operator == "Tr" && op.operands.first().and_then(|o| o.as_i64().ok()) == Some(3))
    }

    /// Rasterise page `index` at the limits' resolution, its size checked first.
    fn rasterise(&self, bytes: &Arc<[u8]>, index: usize, limits: &DocumentLimits) -> Result<Raster, OcrError> {
        // A rasteriser's view per page: it keeps what it decodes (objects, image streams) for its
        // life, so one shared by every page would grow with the pages read. Parsing the view is
        // lazy (the cross-reference table, then what the page asks for): milliseconds.
        let pdf = guarded(|| Ok(HayroPdf::new(PdfData::from(Arc::new(Shared(bytes.clone())))).ok()))
            .ok()
            .flatten()
            .ok_or_else(|| malformed("the PDF could not be rasterised"))?;
        let page = pdf.pages().get(index).ok_or_else(|| malformed("a page could not be rasterised"))?;
        let too_large = OcrError::PageTooLarge { page: index + 1 };
        let (width_pt, height_pt) = page.render_dimensions();
        if !(width_pt.is_finite() && height_pt.is_finite() && width_pt > 0.0 && height_pt > 0.0) {
            return Err(malformed("a page has no size"));
        }
        if width_pt.max(height_pt) > limits.max_page_side_pt {
            return Err(too_large);
        }
        let dpi = limits.dpi();
        // The pixel size, checked before anything is drawn (the renderer's canvas is also at
        // most 65 535 pixels a side).
        let pixels = |pt: f32| (f64::from(pt) * f64::from(dpi) / 72.0).round();
        let (width_px, height_px) = (pixels(width_pt), pixels(height_pt));
        if width_px > f64::from(u16::MAX)
            || height_px > f64::from(u16::MAX)
            || width_px * height_px > limits.max_page_pixels as f64
        {
            return Err(too_large);
        }
        if width_px < 1.0 || height_px < 1.0 {
            return Err(malformed("a page has no size"));
        }
        let pixmap = hayro::render(
            page,
            &RenderCache::new(),
            &InterpreterSettings::default(),
            &RenderSettings::default(),
            &PixmapSettings {
                x_scale: scale_to(width_pt, width_px as u64),
                y_scale: scale_to(height_pt, height_px as u64),
                bg_color: WHITE,
            },
        );
        let raster = to_grey(
            u32::from(pixmap.width()),
            u32::from(pixmap.height()),
            pixmap.data_as_u8_slice(),
            Layout::RgbaPremultiplied,
        )?;
        Ok(raster.with_dpi(Some(dpi)))
    }
}

/// The scale at which the renderer makes `pt` points exactly `px` pixels. It truncates
/// `pt × scale` in `f32`, so `px / pt` can land a hair short (432 pt at 300 dpi gave 1799
/// pixels): the scale is nudged up, an ulp at a time, until the product reaches `px`.
fn scale_to(pt: f32, px: u64) -> f32 {
    let mut scale = px as f32 / pt;
    for _ in 0..16 {
        if (pt * scale) as u64 >= px {
            break;
        }
        scale = f32::from_bits(scale.to_bits() + 1);
    }
    scale
}

/// A text layer as text: each line's trailing spaces trimmed, blank lines at either end
/// dropped, control characters other than line breaks and tabs removed.
fn tidy(raw: &str) -> String {
    let lines: Vec<String> = raw
        .lines()
        .map(|l| l.chars().filter(|c| !c.is_control() || *c == '\t').collect::<String>().trim_end().to_owned())
        .collect();
    let first = lines.iter().position(|l| !l.is_empty()).unwrap_or(lines.len());
    let last = lines.iter().rposition(|l| !l.is_empty()).map_or(first, |i| i + 1);
    lines.get(first..last).unwrap_or_default().join("\n")
}

/// Whether a text layer is text rather than the debris of a font without a usable encoding
/// (replacement characters, private-use glyph codes): at most one character in ten of those.
fn mostly_readable(text: &str) -> bool {
    let (mut all, mut junk) = (0usize, 0usize);
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        all += 1;
        if c == '\u{FFFD}' || ('\u{E000}'..='\u{F8FF}').contains(&c) {
            junk += 1;
        }
    }
    junk * 10 <= all
}

// ---- PNG -----------------------------------------------------------------------------------

/// A PNG's size from its header (the first chunk, IHDR), checked before any decoding.
fn png_size(bytes: &[u8]) -> Result<(u32, u32), OcrError> {
    let header = bytes.get(12..24).ok_or_else(|| malformed("the PNG is truncated"))?;
    if header.get(..4) != Some(b"IHDR") {
        return Err(malformed("the PNG has no header"));
    }
    let be = |b: &[u8]| b.try_into().map(u32::from_be_bytes).ok();
    let width = header.get(4..8).and_then(be).ok_or_else(|| malformed("the PNG is truncated"))?;
    let height = header.get(8..12).and_then(be).ok_or_else(|| malformed("the PNG is truncated"))?;
    if width == 0 || height == 0 {
        return Err(malformed("the PNG has no pixels"));
    }
    Ok((width, height))
}

/// The PNG's resolution from its `pHYs` chunk (pixels per metre), where it has one.
fn png_dpi(bytes: &[u8]) -> Option<u32> {
    let mut at = 8usize;
    loop {
        let length = u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize;
        let kind = bytes.get(at + 4..at + 8)?;
        if kind == b"IDAT" {
            return None;
        }
        if kind == b"pHYs" {
            let data = bytes.get(at + 8..at + 17)?;
            let per_metre = u32::from_be_bytes(data.get(..4)?.try_into().ok()?);
            return (data.get(8) == Some(&1)).then(|| plausible_dpi(f64::from(per_metre) * 0.0254)).flatten();
        }
        at = at.checked_add(length)?.checked_add(12)?;
    }
}

/// A resolution worth telling Tesseract: a scan's, between 50 and 2400 dpi. Anything else
/// (0, a screen's 72 written by an editor, nonsense) is better estimated from the text.
fn plausible_dpi(dpi: f64) -> Option<u32> {
    (75.0..=2400.0).contains(&dpi).then_some(dpi.round() as u32)
}

fn check_pixels(width: u32, height: u32, page: usize, limits: &DocumentLimits) -> Result<(), OcrError> {
    if u64::from(width) * u64::from(height) > limits.max_page_pixels {
        return Err(OcrError::PageTooLarge { page });
    }
    Ok(())
}

fn decode_png(bytes: &[u8], limits: &DocumentLimits) -> Result<Raster, OcrError> {
    let (width, height) = png_size(bytes)?;
    check_pixels(width, height, 1, limits)?;
    let pixmap = hayro::vello_cpu::Pixmap::from_png(Cursor::new(bytes))
        .map_err(|_| malformed("the PNG could not be decoded"))?;
    let raster = to_grey(
        u32::from(pixmap.width()),
        u32::from(pixmap.height()),
        pixmap.data_as_u8_slice(),
        Layout::RgbaPremultiplied,
    )?;
    Ok(raster.with_dpi(png_dpi(bytes)))
}

// ---- JPEG ----------------------------------------------------------------------------------

struct JpegInfo {
    width: u32,
    height: u32,
    components: u8,
    dpi: Option<u32>,
}

/// A JPEG's size and components from its frame header (SOF), and its resolution from the
/// JFIF header, walking the markers without decoding.
fn jpeg_info(bytes: &[u8]) -> Result<JpegInfo, OcrError> {
    let truncated = || malformed("the JPEG is truncated");
    let mut dpi = None;
    let mut at = 2usize;
    loop {
        // Markers are 0xFF then a code; extra 0xFF bytes before a code are fill.
        if *bytes.get(at).ok_or_else(truncated)? != 0xFF {
            return Err(malformed("the JPEG's markers are damaged"));
        }
        let mut code_at = at + 1;
        while bytes.get(code_at) == Some(&0xFF) {
            code_at += 1;
        }
        let code = *bytes.get(code_at).ok_or_else(truncated)?;
        if code == 0x01 || (0xD0..=0xD8).contains(&code) {
            // Markers without a segment.
            at = code_at + 1;
            continue;
        }
        if code == 0xDA || code == 0xD9 {
            return Err(malformed("the JPEG has no frame header"));
        }
        let length = usize::from(u16::from_be_bytes([
            *bytes.get(code_at + 1).ok_or_else(truncated)?,
            *bytes.get(code_at + 2).ok_or_else(truncated)?,
        ]));
        let segment = bytes.get(code_at + 3..code_at + 1 + length).ok_or_else(truncated)?;
        let is_frame = (0xC0..=0xCF).contains(&code) && ![0xC4, 0xC8, 0xCC].contains(&code);
        if is_frame {
            let height = u32::from(u16::from_be_bytes([
                *segment.get(1).ok_or_else(truncated)?,
                *segment.get(2).ok_or_else(truncated)?,
            ]));
            let width = u32::from(u16::from_be_bytes([
                *segment.get(3).ok_or_else(truncated)?,
                *segment.get(4).ok_or_else(truncated)?,
            ]));
            let components = *segment.get(5).ok_or_else(truncated)?;
            if width == 0 || height == 0 {
                return Err(malformed("the JPEG has no pixels"));
            }
            return Ok(JpegInfo { width, height, components, dpi });
        }
        if code == 0xE0 && segment.starts_with(b"JFIF\0") {
            let unit = segment.get(7).copied();
            let density = segment.get(8..10).map(|d| f64::from(u16::from_be_bytes([d[0], d[1]])));
            dpi = match (unit, density) {
                (Some(1), Some(d)) => plausible_dpi(d),
                (Some(2), Some(d)) => plausible_dpi(d * 2.54),
                _ => None,
            };
        }
        at = code_at + 1 + length;
    }
}

/// Decode a JPEG with hayro's DCT decoder: the JPEG becomes the one image of a one-page PDF
/// made here, and that image's stream is decoded (no rendering, no resampling).
fn decode_jpeg(bytes: &[u8], limits: &DocumentLimits) -> Result<Raster, OcrError> {
    let info = jpeg_info(bytes)?;
    check_pixels(info.width, info.height, 1, limits)?;
    let (colour_space, layout) = match info.components {
        1 => ("/DeviceGray", Layout::Grey),
        3 => ("/DeviceRGB", Layout::Rgb),
        4 => ("/DeviceCMYK", Layout::Cmyk),
        _ => return Err(malformed("the JPEG's colour model is not supported")),
    };
    let pdf = HayroPdf::new(image_pdf(bytes, info.width, info.height, colour_space))
        .map_err(|_| malformed("the JPEG could not be decoded"))?;
    let page = pdf.pages().first().ok_or_else(|| malformed("the JPEG could not be decoded"))?;
    let name = Name::new(b"Im0").ok_or_else(|| malformed("the JPEG could not be decoded"))?;
    let stream = page.resources().get_x_object(&name).ok_or_else(|| malformed("the JPEG could not be decoded"))?;
    let params = ImageDecodeParams {
        width: info.width,
        height: info.height,
        num_components: Some(info.components),
        bpc: Some(8),
        ..ImageDecodeParams::default()
    };
    let decoded = stream.decoded_image(&params).map_err(|_| malformed("the JPEG could not be decoded"))?;
    let (width, height, layout) = match &decoded.image_data {
        Some(data) => {
            let layout = match data.color_space {
                Some(ImageColorSpace::Gray) => Layout::Grey,
                Some(ImageColorSpace::Rgb) => Layout::Rgb,
                Some(ImageColorSpace::Cmyk) => Layout::Cmyk,
                _ => layout,
            };
            (data.width, data.height, layout)
        }
        None => (info.width, info.height, layout),
    };
    check_pixels(width, height, 1, limits)?;
    Ok(to_grey(width, height, &decoded.data, layout)?.with_dpi(info.dpi))
}

/// A one-page PDF whose page holds `jpeg` as image `/Im0`, with a correct cross-reference.
fn image_pdf(jpeg: &[u8], width: u32, height: u32, colour_space: &str) -> Vec<u8> {
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width} {height}] /Resources << /XObject << /Im0 4 0 R >> >> >>"
        ),
    ];
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    offsets.push(pdf.len());
    pdf.extend_from_slice(
        format!(
            "4 0 obj\n<< /Type /XObject /Subtype /Image /Width {width} /Height {height} /ColorSpace {colour_space} \
             /BitsPerComponent 8 /Filter /DCTDecode /Length {} >>\nstream\n",
            jpeg.len()
        )
        .as_bytes(),
    );
    pdf.extend_from_slice(jpeg);
    pdf.extend_from_slice(b"\nendstream\nendobj\n");
    let xref = pdf.len();
    pdf.extend_from_slice(b"xref\n0 5\n0000000000 65535 f \n");
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(format!("trailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n").as_bytes());
    pdf
}

// ---- TIFF ----------------------------------------------------------------------------------

fn tiff_decoder(bytes: &[u8]) -> Result<TiffDecoder<Cursor<&[u8]>>, OcrError> {
    TiffDecoder::new(Cursor::new(bytes)).map_err(|_| malformed("the TIFF's structure could not be read"))
}

/// The IFD index of each page of a TIFF: every image but reduced-resolution ones (thumbnails,
/// `NewSubfileType` bit 0). Counting stops past the limit: the error says how many were
/// found by then ("more than the limit"), not the file's full count.
fn tiff_pages(bytes: &[u8], limits: &DocumentLimits) -> Result<Vec<usize>, OcrError> {
    let mut decoder = tiff_decoder(bytes)?;
    let mut pages = Vec::new();
    let mut ifd = 0usize;
    loop {
        let subfile: u32 = decoder.find_tag_unsigned(Tag::NewSubfileType).ok().flatten().unwrap_or(0);
        if subfile & 1 == 0 {
            pages.push(ifd);
            if pages.len() > limits.max_pages {
                return Err(OcrError::TooManyPages { pages: pages.len(), limit: limits.max_pages });
            }
        }
        if !decoder.more_images() {
            return Ok(pages);
        }
        decoder.next_image().map_err(|_| malformed("a TIFF page's header could not be read"))?;
        ifd += 1;
    }
}

fn tiff_dpi(decoder: &mut TiffDecoder<Cursor<&[u8]>>) -> Option<u32> {
    // A RATIONAL: numerator and denominator.
    let resolution = match decoder.get_tag_u32_vec(Tag::XResolution).ok()?[..] {
        [numerator, denominator] if denominator > 0 => f64::from(numerator) / f64::from(denominator),
        _ => return None,
    };
    match decoder.find_tag_unsigned::<u16>(Tag::ResolutionUnit).ok().flatten().unwrap_or(2) {
        2 => plausible_dpi(resolution),
        3 => plausible_dpi(resolution * 2.54),
        _ => None,
    }
}

/// Decode TIFF image `ifd` (page `page`, 1-based) to grey, its size checked first.
fn decode_tiff_frame(bytes: &[u8], ifd: usize, page: usize, limits: &DocumentLimits) -> Result<Raster, OcrError> {
    let unreadable = || malformed("a TIFF page could not be decoded");
    let mut decoder = tiff_decoder(bytes)?;
    decoder.seek_to_image(ifd).map_err(|_| unreadable())?;
    let (width, height) = decoder.dimensions().map_err(|_| unreadable())?;
    if width == 0 || height == 0 {
        return Err(malformed("a TIFF page has no pixels"));
    }
    check_pixels(width, height, page, limits)?;
    let colour = decoder.colortype().map_err(|_| unreadable())?;
    let dpi = tiff_dpi(&mut decoder);
    let image = decoder.read_image().map_err(|_| unreadable())?;
    let unsupported = || malformed("the TIFF's colour model is not supported");
    let high_bytes = |v: &[u16]| v.iter().map(|s| (s >> 8) as u8).collect::<Vec<u8>>();
    let raster = match (colour, image) {
        (ColorType::Gray(8), DecodingResult::U8(v)) => to_grey(width, height, &v, Layout::Grey)?,
        (ColorType::Gray(16), DecodingResult::U16(v)) => to_grey(width, height, &high_bytes(&v), Layout::Grey)?,
        (ColorType::Gray(bits @ (1 | 2 | 4)), DecodingResult::U8(v)) => unpack_grey(width, height, bits, &v)?,
        (ColorType::GrayA(8), DecodingResult::U8(v)) => to_grey(width, height, &v, Layout::GreyAlpha)?,
        (ColorType::RGB(8), DecodingResult::U8(v)) => to_grey(width, height, &v, Layout::Rgb)?,
        (ColorType::RGB(16), DecodingResult::U16(v)) => to_grey(width, height, &high_bytes(&v), Layout::Rgb)?,
        (ColorType::RGBA(8), DecodingResult::U8(v)) => to_grey(width, height, &v, Layout::Rgba)?,
        (ColorType::RGBA(16), DecodingResult::U16(v)) => to_grey(width, height, &high_bytes(&v), Layout::Rgba)?,
        (ColorType::CMYK(8), DecodingResult::U8(v)) => to_grey(width, height, &v, Layout::Cmyk)?,
        // Y of YCbCr is the grey level itself (BT.601 luma): the chroma is not needed.
        (ColorType::YCbCr(8), DecodingResult::U8(v)) => {
            let n = area(width, height).ok_or_else(unreadable)?;
            let luma: Vec<u8> = v.chunks_exact(3).take(n).map(|p| p[0]).collect();
            to_grey(width, height, &luma, Layout::Grey)?
        }
        _ => return Err(unsupported()),
    };
    Ok(raster.with_dpi(dpi))
}

/// Grey samples of 1, 2 or 4 bits, each row starting on a byte, to 8-bit grey (black 0,
/// white 255; the decoder has already turned WhiteIsZero files the right way round).
fn unpack_grey(width: u32, height: u32, bits: u8, packed: &[u8]) -> Result<Raster, OcrError> {
    let row_bytes = (u64::from(width) * u64::from(bits)).div_ceil(8);
    let row_bytes = usize::try_from(row_bytes).map_err(|_| malformed("the image is too large"))?;
    let levels = (1u16 << bits) - 1;
    let per_byte = usize::from(8 / bits);
    let mut pixels = Vec::with_capacity(area(width, height).unwrap_or(0));
    for row in packed.chunks(row_bytes.max(1)).take(height as usize) {
        let samples = row.iter().flat_map(|&byte| {
            (0..per_byte).map(move |i| {
                let shift = 8 - usize::from(bits) * (i + 1);
                let value = u16::from(byte >> shift) & levels;
                (value * 255 / levels) as u8
            })
        });
        pixels.extend(samples.take(width as usize));
    }
    Raster::from_grey(width, height, pixels).map_err(|_| malformed("a TIFF page has fewer pixels than its size says"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_known_by_their_bytes() {
        assert_eq!(DocumentKind::sniff(b"\x89PNG\r\n\x1a\n...."), Some(DocumentKind::Png));
        assert_eq!(DocumentKind::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(DocumentKind::Jpeg));
        assert_eq!(DocumentKind::sniff(b"II*\0...."), Some(DocumentKind::Tiff));
        assert_eq!(DocumentKind::sniff(b"MM\0*...."), Some(DocumentKind::Tiff));
        assert_eq!(DocumentKind::sniff(b"%PDF-1.7\n"), Some(DocumentKind::Pdf));
        assert_eq!(DocumentKind::sniff(b"junk\r\n%PDF-1.4\n"), Some(DocumentKind::Pdf));
        assert_eq!(DocumentKind::sniff(b"GIF89a"), None);
        assert_eq!(DocumentKind::sniff(b""), None);
    }

    #[test]
    fn text_layers_are_tidied() {
        assert_eq!(tidy("\n\n  Line one  \nLine\u{0}two\n\n"), "  Line one\nLinetwo");
        assert_eq!(tidy(" \n \n"), "");
        assert!(mostly_readable("Haemoglobin 13.5"));
        assert!(!mostly_readable("\u{FFFD}\u{FFFD}\u{FFFD} ab"));
    }

    #[test]
    fn bits_unpack_to_grey_levels() {
        // Two rows of 3 one-bit pixels, each row padded to a byte: 101 / 010.
        let r = unpack_grey(3, 2, 1, &[0b1010_0000, 0b0100_0000]).expect("unpacked");
        assert_eq!(r.pixels(), &[255, 0, 255, 0, 255, 0]);
        let r = unpack_grey(2, 1, 4, &[0xF0]).expect("unpacked");
        assert_eq!(r.pixels(), &[255, 0]);
        assert!(unpack_grey(3, 3, 1, &[0xFF]).is_err());
    }

    #[test]
    fn jpeg_headers_are_read_without_decoding() {
        // SOI, JFIF APP0 (300 dpi), SOF0 of 640×480 with 3 components.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
        jpeg.extend_from_slice(b"JFIF\0\x01\x02\x01\x01\x2C\x01\x2C\0\0");
        jpeg.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, 0x01, 0xE0, 0x02, 0x80, 0x03]);
        jpeg.extend_from_slice(&[0; 9]);
        let info = jpeg_info(&jpeg).expect("header");
        assert_eq!((info.width, info.height, info.components, info.dpi), (640, 480, 3, Some(300)));
        assert!(matches!(jpeg_info(&jpeg[..8]), Err(OcrError::Malformed(_))));
        assert!(matches!(jpeg_info(&[0xFF, 0xD8, 0xFF, 0xDA, 0, 2]), Err(OcrError::Malformed(_))));
    }
}
