//! DICOM files: what an uploaded `.dcm` says about itself, and its first frame as grey pixels.
//!
//! [`read_metadata`] reads a Part 10 file (128-byte preamble and `DICM`, or `DICM` first) with
//! dicom-rs (`dicom-object`) and returns the attributes careport keeps ([`DicomMeta`]): the
//! modality and the [`ImageKind`] it maps to, body part, study/series/instance UIDs, study date,
//! rows and columns, the patient identifiers the file carries (for the caller to compare with
//! the chart), the transfer syntax and whether the pixels can be previewed ([`PixelStatus`]).
//! [`decode_preview`] decodes the first frame of uncompressed pixel data into an 8-bit grey
//! raster, windowed as a viewer would show it; anything else is `Ok(None)` ("no preview").
//!
//! Untrusted input. Before dicom-rs builds anything, the file's structure is walked once
//! ([`check_structure`]): every declared length (file meta elements, data elements, sequences,
//! items, pixel fragments) must fit in the bytes that follow it, and nesting is bounded. The
//! parser sizes its buffers from those lengths, so a four-byte edit could otherwise make it
//! allocate gigabytes; and it recurses per nesting level. The parser then runs behind
//! `catch_unwind`. Whatever fails is [`DicomError::Malformed`] with a fixed reason that names
//! the structure, never a value from the file: reasons reach logs and API answers, values are
//! a patient's.

use std::borrow::Cow;
use std::cell::Cell;
use std::io::Read;
use std::panic::AssertUnwindSafe;
use std::str::FromStr;

use dicom_core::Tag;
use dicom_core::header::{HasLength, Header};
use dicom_core::value::{PrimitiveValue, Value};
use dicom_dictionary_std::tags;
use dicom_encoding::decode::Decode;
use dicom_encoding::decode::explicit_le::ExplicitVRLittleEndianDecoder;
use dicom_encoding::transfer_syntax::{Codec, Endianness, TransferSyntax, TransferSyntaxIndex};
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_parser::dataset::DataToken;
use dicom_parser::dataset::read::{DataSetReader, DataSetReaderOptions};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use serde::{Deserialize, Serialize};

use super::preview::Grey;

/// Implicit VR Little Endian: the default transfer syntax, uncompressed.
pub const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
/// Explicit VR Little Endian, uncompressed.
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// Explicit VR Big Endian (retired), uncompressed.
pub const EXPLICIT_VR_BE: &str = "1.2.840.10008.1.2.2";

/// Pixels in a frame [`decode_preview`] decodes: 80 million, as for OCR's page rasters (a
/// full-field mammogram is ~40 million).
pub const MAX_PREVIEW_PIXELS: u64 = 80_000_000;

/// Sequences and items nested inside one another (real files use a handful).
const MAX_DEPTH: usize = 32;

/// Why a file was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DicomError {
    /// Not a DICOM file, or a damaged one. The reason names the structure, never a value.
    #[error("malformed DICOM file: {0}")]
    Malformed(String),
    /// A well-formed file this reader does not read at all: a deflated data set, an unknown
    /// transfer syntax.
    #[error("unsupported DICOM file: {0}")]
    Unsupported(String),
    /// The first frame is larger than [`MAX_PREVIEW_PIXELS`].
    #[error("the image has {pixels} pixels, more than the {limit} a preview is made of")]
    TooLarge { pixels: u64, limit: u64 },
}

fn malformed(reason: &str) -> DicomError {
    DicomError::Malformed(reason.to_owned())
}

/// careport's kinds of medical image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    XRay,
    Mri,
    Ct,
    Ultrasound,
    Mammography,
    Pet,
    Other,
}

impl ImageKind {
    pub const ALL: [ImageKind; 7] = [
        ImageKind::XRay,
        ImageKind::Mri,
        ImageKind::Ct,
        ImageKind::Ultrasound,
        ImageKind::Mammography,
        ImageKind::Pet,
        ImageKind::Other,
    ];

    /// `"xray"`, `"mri"`, `"ct"`, `"ultrasound"`, `"mammography"`, `"pet"`, `"other"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::XRay => "xray",
            Self::Mri => "mri",
            Self::Ct => "ct",
            Self::Ultrasound => "ultrasound",
            Self::Mammography => "mammography",
            Self::Pet => "pet",
            Self::Other => "other",
        }
    }

    /// The kind a DICOM Modality (0008,0060) code stands for: CR, DX, RG, IO, PX, XA and RF
    /// are X-ray; MR, CT, US, MG, PT their own kinds; anything else (or nothing) is other.
    pub fn from_modality(modality: &str) -> ImageKind {
        match modality.trim().to_ascii_uppercase().as_str() {
            "CR" | "DX" | "RG" | "IO" | "PX" | "XA" | "RF" => Self::XRay,
            "MR" => Self::Mri,
            "CT" => Self::Ct,
            "US" => Self::Ultrasound,
            "MG" => Self::Mammography,
            "PT" => Self::Pet,
            _ => Self::Other,
        }
    }
}

impl std::fmt::Display for ImageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of [`ImageKind::as_str`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an image kind (xray, mri, ct, ultrasound, mammography, pet, other)")]
pub struct UnknownImageKind;

impl FromStr for ImageKind {
    type Err = UnknownImageKind;

    /// The lowercase names [`ImageKind::as_str`] gives (exactly).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or(UnknownImageKind)
    }
}

/// What the file's pixel data is, as far as previews go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PixelStatus {
    /// Uncompressed, in a layout [`decode_preview`] reads: one sample (MONOCHROME1/2) of 8 or
    /// 16 bits, or RGB of 8 bits.
    Native,
    /// Encapsulated (JPEG, JPEG 2000, RLE, …): no preview.
    Compressed,
    /// Uncompressed but in a layout not read (other photometric interpretations, 1, 12 or 32
    /// bits allocated, float pixels, missing or zero rows/columns): no preview.
    Unsupported,
    /// The file has no pixel data (a structured report, a presentation state, …).
    Absent,
}

/// The attributes careport keeps from a DICOM file. Text values are trimmed of DICOM's padding;
/// an empty value is `None`. Dates are `YYYY-MM-DD` (a value that is not a real date is `None`).
///
/// `patient_id`, `patient_name` and `patient_birth_date` are the patient's identifiers as the
/// file states them, for the caller to compare with the chart; `Debug` leaves them out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DicomMeta {
    /// Modality (0008,0060), e.g. `"CT"`, uppercase.
    pub modality: Option<String>,
    /// Body Part Examined (0018,0015), e.g. `"CHEST"`.
    pub body_part: Option<String>,
    /// Study Instance UID (0020,000D).
    pub study_instance_uid: Option<String>,
    /// Series Instance UID (0020,000E).
    pub series_instance_uid: Option<String>,
    /// SOP Instance UID (0008,0018). Required (type 1 in every object): a data set without
    /// one, an empty one or one cut short before it, is refused.
    pub sop_instance_uid: String,
    /// Study Date (0008,0020).
    pub study_date: Option<String>,
    /// Rows (0028,0010).
    pub rows: Option<u32>,
    /// Columns (0028,0011).
    pub columns: Option<u32>,
    /// Patient ID (0010,0020).
    pub patient_id: Option<String>,
    /// Patient's Name (0010,0010), in DICOM's form (`Family^Given^Middle^Prefix^Suffix`).
    pub patient_name: Option<String>,
    /// Patient's Birth Date (0010,0030).
    pub patient_birth_date: Option<String>,
    /// The transfer syntax UID (0002,0010).
    pub transfer_syntax: String,
    /// Whether [`decode_preview`] can make a preview, and if not, why.
    pub pixels: PixelStatus,
}

impl DicomMeta {
    /// The kind of image, from the modality.
    pub fn kind(&self) -> ImageKind {
        self.modality.as_deref().map_or(ImageKind::Other, ImageKind::from_modality)
    }

    /// Whether the pixel data is uncompressed in a layout [`decode_preview`] reads.
    pub fn natively_decodable(&self) -> bool {
        self.pixels == PixelStatus::Native
    }
}

// The patient's identifiers stay out of logs.
impl std::fmt::Debug for DicomMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DicomMeta")
            .field("modality", &self.modality)
            .field("body_part", &self.body_part)
            .field("study_instance_uid", &self.study_instance_uid)
            .field("series_instance_uid", &self.series_instance_uid)
            .field("sop_instance_uid", &self.sop_instance_uid)
            .field("study_date", &self.study_date)
            .field("rows", &self.rows)
            .field("columns", &self.columns)
            .field("transfer_syntax", &self.transfer_syntax)
            .field("pixels", &self.pixels)
            .finish_non_exhaustive()
    }
}

/// Read a DICOM file's metadata. The whole file's structure is checked (a file truncated in its
/// pixel data is refused too), but pixel data is not decoded.
pub fn read_metadata(bytes: &[u8]) -> Result<DicomMeta, DicomError> {
    guarded(|| {
        let checked = check_structure(bytes)?;
        let obj = parse(&checked, Some(tags::PIXEL_DATA))?;
        meta_of(&obj, &checked)
    })
}

/// The first frame of `bytes` as 8-bit grey, windowed for display: `Ok(None)` when `meta` (the
/// file's [`read_metadata`]) says its pixels are not [`PixelStatus::Native`].
///
/// Monochrome pixels go through the Modality rescale (Rescale Slope/Intercept) and then the
/// first VOI window (Window Center/Width, the standard's linear function) or, without one,
/// the frame's own minimum and maximum; MONOCHROME1 is inverted (its low values are white).
/// RGB is converted to grey (Rec. 601 luma). A frame over [`MAX_PREVIEW_PIXELS`] is
/// [`DicomError::TooLarge`]; pixel data shorter than the frame is malformed.
pub fn decode_preview(bytes: &[u8], meta: &DicomMeta) -> Result<Option<Grey>, DicomError> {
    if !meta.natively_decodable() {
        return Ok(None);
    }
    guarded(|| {
        let checked = check_structure(bytes)?;
        let obj = parse(&checked, None)?;
        decode_first_frame(&obj, checked.ts)
    })
}

/// Run dicom-rs on untrusted bytes: a panic inside it becomes a refusal of the file. (The
/// panic's message still reaches the panic hook; the parser's messages name its own state.)
fn guarded<T>(f: impl FnOnce() -> Result<T, DicomError>) -> Result<T, DicomError> {
    std::panic::catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(malformed("the DICOM parser failed on this file")))
}

// ---- structure -----------------------------------------------------------------------------

/// A file whose structure has been walked and found sound.
struct Checked<'a> {
    /// The file from `DICM` on (the preamble cut off).
    from_magic: &'a [u8],
    ts: &'static TransferSyntax,
    /// Where the top-level Pixel Data element is, if there is one.
    pixel_data: PixelData,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PixelData {
    None,
    Native,
    Encapsulated,
    /// Float or Double Float Pixel Data.
    Float,
}

/// A reader over a slice that counts what it has given out.
struct Counted<'a> {
    rest: &'a [u8],
    consumed: &'a Cell<usize>,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.rest.read(buf)?;
        self.consumed.set(self.consumed.get() + n);
        Ok(n)
    }
}

/// Walk the file's structure without building it: the magic code, the file meta group (as
/// dicom-object reads it), the transfer syntax, then every token of the data set (as dicom-rs's
/// data set reader gives them, so the walk follows the path the parser will take), checking each
/// declared length against the bytes left and the nesting depth.
fn check_structure(bytes: &[u8]) -> Result<Checked<'_>, DicomError> {
    let from_magic = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        &bytes[128..]
    } else if bytes.starts_with(b"DICM") {
        bytes
    } else {
        return Err(malformed("no DICM marker (not a DICOM Part 10 file)"));
    };
    let (ts_uid, data_set) = check_meta_group(&from_magic[4..])?;
    let ts = TransferSyntaxRegistry
        .get(&ts_uid)
        .ok_or_else(|| DicomError::Unsupported("an unknown transfer syntax".into()))?;
    if matches!(ts.codec(), Codec::Dataset(_)) {
        return Err(DicomError::Unsupported("a deflated data set".into()));
    }

    let consumed = Cell::new(0usize);
    let total = data_set.len();
    let reader = Counted { rest: data_set, consumed: &consumed };
    let mut tokens = DataSetReader::new_with_ts_options(reader, ts, DataSetReaderOptions::default())
        .map_err(|_| malformed("the data set could not be read"))?;
    let fits = |len: dicom_core::Length| match len.get() {
        Some(len) => len as usize <= total - consumed.get(),
        None => true,
    };
    let mut depth = 0usize;
    let mut pixel_data = PixelData::None;
    loop {
        let Some(token) = tokens.next() else { break };
        let token = token.map_err(|_| malformed("the data set could not be parsed"))?;
        match token {
            DataToken::ElementHeader(header) => {
                if !fits(header.length()) {
                    return Err(malformed("an element's length runs past the end of the file"));
                }
                if depth == 0 {
                    match header.tag() {
                        tags::PIXEL_DATA => pixel_data = PixelData::Native,
                        tags::FLOAT_PIXEL_DATA | tags::DOUBLE_FLOAT_PIXEL_DATA => pixel_data = PixelData::Float,
                        _ => {}
                    }
                }
            }
            DataToken::SequenceStart { len, .. } => {
                if !fits(len) {
                    return Err(malformed("a sequence's length runs past the end of the file"));
                }
                depth += 1;
            }
            DataToken::PixelSequenceStart => {
                if depth == 0 {
                    pixel_data = PixelData::Encapsulated;
                }
                depth += 1;
            }
            DataToken::ItemStart { len } => {
                if !fits(len) {
                    return Err(malformed("an item's length runs past the end of the file"));
                }
                depth += 1;
            }
            DataToken::ItemEnd | DataToken::SequenceEnd => depth = depth.saturating_sub(1),
            DataToken::PrimitiveValue(_) | DataToken::ItemValue(_) | DataToken::OffsetTable(_) => {}
        }
        if depth > MAX_DEPTH {
            return Err(malformed("sequences are nested too deeply"));
        }
    }
    // The reader takes the end of the input where a tag should start as the end of the data
    // set, at any depth: a file that stops inside a sequence (or inside encapsulated pixel
    // data, before its delimiter) has been cut short.
    if depth != 0 {
        return Err(malformed("the file ends inside a sequence (truncated)"));
    }
    Ok(Checked { from_magic, ts, pixel_data })
}

/// Walk the file meta group the way dicom-object's `FileMetaTable` reads it (Explicit VR Little
/// Endian, bounded by the group length element), checking each element's length. Returns the
/// transfer syntax UID and the bytes after the group.
fn check_meta_group(after_magic: &[u8]) -> Result<(String, &[u8]), DicomError> {
    let decoder = ExplicitVRLittleEndianDecoder::default();
    let mut cursor = after_magic;
    let bad = || malformed("the file meta group is damaged");
    let (header, _) = decoder.decode_header(&mut cursor).map_err(|_| bad())?;
    if header.tag() != Tag(0x0002, 0x0000) || header.length().get() != Some(4) || cursor.len() < 4 {
        return Err(bad());
    }
    let group_length = u32::from_le_bytes([cursor[0], cursor[1], cursor[2], cursor[3]]);
    cursor = &cursor[4..];
    let mut read = 0u32;
    let mut ts_uid = None;
    while read < group_length {
        let before = cursor.len();
        let (header, _) = decoder.decode_header(&mut cursor).map_err(|_| bad())?;
        let header_len = before - cursor.len();
        let len = header.length().get().ok_or_else(bad)?;
        if len as usize > cursor.len() {
            return Err(malformed("a file meta element's length runs past the end of the file"));
        }
        let (value, rest) = cursor.split_at(len as usize);
        if header.tag() == Tag(0x0002, 0x0010) {
            let uid = std::str::from_utf8(value).map_err(|_| bad())?;
            ts_uid = Some(uid.trim_end_matches(|c: char| c.is_whitespace() || c == '\0').to_owned());
        }
        cursor = rest;
        read = read.saturating_add(header_len as u32).saturating_add(len);
    }
    let ts_uid = ts_uid.ok_or_else(|| malformed("the file meta group has no transfer syntax"))?;
    Ok((ts_uid, cursor))
}

/// Build the object with dicom-object, after [`check_structure`] (up to `until`, exclusive).
fn parse(checked: &Checked<'_>, until: Option<Tag>) -> Result<DefaultDicomObject, DicomError> {
    let mut options = OpenFileOptions::new().read_preamble(ReadPreamble::Never);
    if let Some(tag) = until {
        options = options.read_until(tag);
    }
    options.from_reader(checked.from_magic).map_err(|_| malformed("the data set could not be parsed"))
}

// ---- metadata ------------------------------------------------------------------------------

fn meta_of(obj: &DefaultDicomObject, checked: &Checked<'_>) -> Result<DicomMeta, DicomError> {
    let sop_instance_uid = uid(obj, tags::SOP_INSTANCE_UID, "SOP Instance UID")?
        .ok_or_else(|| malformed("the data set has no SOP Instance UID"))?;
    let transfer_syntax = checked.ts.uid().trim_end_matches('\0').to_owned();
    let pixels = match checked.pixel_data {
        // An image's attributes without its pixels: a file cut short at an element boundary
        // (which the format cannot otherwise tell from a complete one).
        PixelData::None if obj.get(tags::ROWS).is_some() && obj.get(tags::COLUMNS).is_some() => {
            return Err(malformed("the file has image attributes but no pixel data (truncated)"));
        }
        PixelData::None => PixelStatus::Absent,
        PixelData::Float => PixelStatus::Unsupported,
        PixelData::Encapsulated => PixelStatus::Compressed,
        PixelData::Native if !is_native_ts(&transfer_syntax) => PixelStatus::Compressed,
        PixelData::Native => match Layout::of(obj) {
            Some(_) => PixelStatus::Native,
            None => PixelStatus::Unsupported,
        },
    };
    Ok(DicomMeta {
        modality: text(obj, tags::MODALITY).map(|m| m.to_ascii_uppercase()),
        body_part: text(obj, tags::BODY_PART_EXAMINED),
        study_instance_uid: uid(obj, tags::STUDY_INSTANCE_UID, "Study Instance UID")?,
        series_instance_uid: uid(obj, tags::SERIES_INSTANCE_UID, "Series Instance UID")?,
        sop_instance_uid,
        study_date: text(obj, tags::STUDY_DATE).and_then(|d| date(&d)),
        rows: int(obj, tags::ROWS),
        columns: int(obj, tags::COLUMNS),
        patient_id: text(obj, tags::PATIENT_ID),
        patient_name: text(obj, tags::PATIENT_NAME),
        patient_birth_date: text(obj, tags::PATIENT_BIRTH_DATE).and_then(|d| date(&d)),
        transfer_syntax,
        pixels,
    })
}

fn is_native_ts(uid: &str) -> bool {
    matches!(uid, IMPLICIT_VR_LE | EXPLICIT_VR_LE | EXPLICIT_VR_BE)
}

/// A primitive value as trimmed text; `None` when absent, empty or not text.
fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let element = obj.get(tag)?;
    if !matches!(element.value(), Value::Primitive(_)) {
        return None;
    }
    let value = element.to_str().ok()?;
    let trimmed = value.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

fn int(obj: &InMemDicomObject, tag: Tag) -> Option<u32> {
    let element = obj.get(tag)?;
    match element.value() {
        Value::Primitive(_) => element.to_int::<u32>().ok(),
        _ => None,
    }
}

fn floats(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    let element = obj.get(tag)?;
    match element.value() {
        Value::Primitive(_) => element.to_multi_float64().ok().filter(|v| v.iter().all(|f| f.is_finite())),
        _ => None,
    }
}

/// A UID attribute: `None` when absent or empty; malformed when present but not a UID.
fn uid(obj: &InMemDicomObject, tag: Tag, name: &str) -> Result<Option<String>, DicomError> {
    match text(obj, tag) {
        None => Ok(None),
        Some(value) if valid_uid(&value) => Ok(Some(value)),
        Some(_) => Err(DicomError::Malformed(format!("the {name} is not a valid UID"))),
    }
}

/// PS3.5 9.1: at most 64 characters, digits in dot-separated components.
fn valid_uid(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value.split('.').all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// A DA value (`YYYYMMDD`, or the old `YYYY.MM.DD`) as `YYYY-MM-DD`; `None` if it is not a
/// real date.
fn date(value: &str) -> Option<String> {
    let digits: String = value.chars().filter(|c| *c != '.').collect();
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i16 = digits[0..4].parse().ok()?;
    let month: i8 = digits[4..6].parse().ok()?;
    let day: i8 = digits[6..8].parse().ok()?;
    let date = jiff::civil::Date::new(year, month, day).ok()?;
    Some(date.strftime("%Y-%m-%d").to_string())
}

// ---- pixels --------------------------------------------------------------------------------

/// The image pixel module, as far as a preview needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Layout {
    rows: u32,
    columns: u32,
    colour: Colour,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Colour {
    /// One sample per pixel.
    Mono { inverted: bool, bytes: usize, bits_stored: u32, signed: bool },
    /// Three 8-bit samples per pixel; `planar`: all reds, then greens, then blues.
    Rgb { planar: bool },
}

impl Layout {
    /// The layout when it is one [`decode_preview`] reads; `None` otherwise.
    fn of(obj: &InMemDicomObject) -> Option<Layout> {
        let rows = int(obj, tags::ROWS).filter(|r| *r > 0)?;
        let columns = int(obj, tags::COLUMNS).filter(|c| *c > 0)?;
        let samples = int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
        let photometric = text(obj, tags::PHOTOMETRIC_INTERPRETATION)?.to_ascii_uppercase();
        let allocated = int(obj, tags::BITS_ALLOCATED)?;
        let stored = int(obj, tags::BITS_STORED).filter(|s| (1..=allocated).contains(s)).unwrap_or(allocated);
        let signed = int(obj, tags::PIXEL_REPRESENTATION) == Some(1);
        let colour = match (samples, photometric.as_str(), allocated) {
            (1, "MONOCHROME1" | "MONOCHROME2", 8 | 16) => Colour::Mono {
                inverted: photometric == "MONOCHROME1",
                bytes: allocated as usize / 8,
                bits_stored: stored,
                signed,
            },
            (3, "RGB", 8) => Colour::Rgb { planar: int(obj, tags::PLANAR_CONFIGURATION) == Some(1) },
            _ => return None,
        };
        Some(Layout { rows, columns, colour })
    }

    fn pixels(&self) -> u64 {
        u64::from(self.rows) * u64::from(self.columns)
    }

    /// Bytes in one frame.
    fn frame_bytes(&self) -> u64 {
        let per_pixel = match self.colour {
            Colour::Mono { bytes, .. } => bytes as u64,
            Colour::Rgb { .. } => 3,
        };
        self.pixels() * per_pixel
    }
}

fn decode_first_frame(obj: &DefaultDicomObject, ts: &TransferSyntax) -> Result<Option<Grey>, DicomError> {
    let Some(layout) = Layout::of(obj) else { return Ok(None) };
    if layout.pixels() > MAX_PREVIEW_PIXELS {
        return Err(DicomError::TooLarge { pixels: layout.pixels(), limit: MAX_PREVIEW_PIXELS });
    }
    let big_endian = ts.endianness() == Endianness::Big;
    let Some(element) = obj.get(tags::PIXEL_DATA) else { return Ok(None) };
    let raw: Cow<'_, [u8]> = match element.value() {
        Value::Primitive(PrimitiveValue::U8(bytes)) => Cow::Borrowed(&bytes[..]),
        Value::Primitive(PrimitiveValue::U16(words)) => {
            // OW: the parser has already put each word in native order; give the file's bytes
            // back so that 8- and 16-bit samples are read one way.
            Cow::Owned(words.iter().flat_map(|w| if big_endian { w.to_be_bytes() } else { w.to_le_bytes() }).collect())
        }
        Value::Primitive(PrimitiveValue::I16(words)) => {
            Cow::Owned(words.iter().flat_map(|w| if big_endian { w.to_be_bytes() } else { w.to_le_bytes() }).collect())
        }
        _ => return Ok(None),
    };
    let frame_len = usize::try_from(layout.frame_bytes()).map_err(|_| malformed("the image is too large"))?;
    let Some(frame) = raw.get(..frame_len) else {
        return Err(malformed("the pixel data is shorter than the image"));
    };
    let pixels = match layout.colour {
        Colour::Rgb { planar } => rgb_to_grey(frame, planar),
        Colour::Mono { inverted, bytes, bits_stored, signed } => {
            let samples: Vec<i32> = if bytes == 1 {
                frame.iter().map(|b| sample(u32::from(*b), bits_stored, signed)).collect()
            } else {
                frame
                    .chunks_exact(2)
                    .map(|p| {
                        let v = if big_endian {
                            u16::from_be_bytes([p[0], p[1]])
                        } else {
                            u16::from_le_bytes([p[0], p[1]])
                        };
                        sample(u32::from(v), bits_stored, signed)
                    })
                    .collect()
            };
            let slope = floats(obj, tags::RESCALE_SLOPE).and_then(|v| v.first().copied()).unwrap_or(1.0);
            let intercept = floats(obj, tags::RESCALE_INTERCEPT).and_then(|v| v.first().copied()).unwrap_or(0.0);
            let slope = if slope == 0.0 { 1.0 } else { slope };
            let window = floats(obj, tags::WINDOW_CENTER)
                .and_then(|c| c.first().copied())
                .zip(floats(obj, tags::WINDOW_WIDTH).and_then(|w| w.first().copied()))
                .filter(|(_, width)| *width >= 1.0);
            window_mono(&samples, slope, intercept, window, inverted)
        }
    };
    Ok(Grey::new(layout.columns, layout.rows, pixels))
}

/// A stored sample as its integer value: the low `bits_stored` bits, sign-extended when the
/// pixel representation is signed.
fn sample(raw: u32, bits_stored: u32, signed: bool) -> i32 {
    let bits = bits_stored.clamp(1, 16);
    let masked = raw & ((1u32 << bits) - 1);
    if signed && masked & (1 << (bits - 1)) != 0 { masked as i32 - (1i32 << bits) } else { masked as i32 }
}

/// Rescale, window (or stretch min–max) and invert, to 8 bits.
fn window_mono(samples: &[i32], slope: f64, intercept: f64, window: Option<(f64, f64)>, inverted: bool) -> Vec<u8> {
    let modality = |s: i32| f64::from(s) * slope + intercept;
    let to_byte: Box<dyn Fn(f64) -> u8> = match window {
        // PS3.3 C.11.2.1.2.1, the LINEAR function.
        Some((center, width)) => Box::new(move |x: f64| {
            let low = center - 0.5 - (width - 1.0) / 2.0;
            let high = center - 0.5 + (width - 1.0) / 2.0;
            if x <= low {
                0
            } else if x > high {
                255
            } else {
                (((x - (center - 0.5)) / (width - 1.0) + 0.5) * 255.0).round().clamp(0.0, 255.0) as u8
            }
        }),
        None => {
            let (lo, hi) = samples.iter().fold((i32::MAX, i32::MIN), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
            let (a, b) = (modality(lo), modality(hi));
            let (min, max) = (a.min(b), a.max(b));
            Box::new(
                move |x: f64| {
                    if max > min { ((x - min) / (max - min) * 255.0).round().clamp(0.0, 255.0) as u8 } else { 0 }
                },
            )
        }
    };
    // One lookup per distinct stored value: 16-bit samples have at most 65 536.
    let (lo, hi) = samples.iter().fold((i32::MAX, i32::MIN), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
    if lo > hi {
        return Vec::new();
    }
    let lut: Vec<u8> = (lo..=hi)
        .map(|s| {
            let v = to_byte(modality(s));
            if inverted { 255 - v } else { v }
        })
        .collect();
    samples.iter().map(|s| lut[(s - lo) as usize]).collect()
}

fn rgb_to_grey(frame: &[u8], planar: bool) -> Vec<u8> {
    let luma =
        |r: u8, g: u8, b: u8| ((299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b) + 500) / 1000) as u8;
    let n = frame.len() / 3;
    if planar {
        let (r, rest) = frame.split_at(n);
        let (g, b) = rest.split_at(n);
        r.iter().zip(g).zip(b).map(|((r, g), b)| luma(*r, *g, *b)).collect()
    } else {
        frame.chunks_exact(3).map(|p| luma(p[0], p[1], p[2])).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/dicom/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(path).expect("fixture")
    }

    const FIXTURES: [&str; 5] = ["ct_window.dcm", "cr_mono1.dcm", "us_rgb.dcm", "mr_be.dcm", "jpeg_dx.dcm"];
    const ROOT: &str = "1.2.826.0.1.3680043.8.498.77";

    fn preview_of(name: &str) -> Grey {
        let bytes = fixture(name);
        let meta = read_metadata(&bytes).expect("metadata");
        decode_preview(&bytes, &meta).expect("decoded").expect("a preview")
    }

    fn is_malformed(result: Result<DicomMeta, DicomError>) -> bool {
        matches!(result, Err(DicomError::Malformed(_)))
    }

    #[test]
    fn dicom_metadata_of_each_fixture() {
        let ct = read_metadata(&fixture("ct_window.dcm")).expect("CT");
        assert_eq!(
            ct,
            DicomMeta {
                modality: Some("CT".into()),
                body_part: Some("CHEST".into()),
                study_instance_uid: Some(format!("{ROOT}.1.1")),
                series_instance_uid: Some(format!("{ROOT}.1.2")),
                sop_instance_uid: format!("{ROOT}.1.3"),
                study_date: Some("2024-03-15".into()),
                rows: Some(48),
                columns: Some(64),
                patient_id: Some("P-123".into()),
                patient_name: Some("Doe^Jane".into()),
                patient_birth_date: Some("1970-01-01".into()),
                transfer_syntax: EXPLICIT_VR_LE.into(),
                pixels: PixelStatus::Native,
            }
        );
        assert_eq!(ct.kind(), ImageKind::Ct);
        assert!(ct.natively_decodable());
        // Debug leaves the patient out.
        let debug = format!("{ct:?}");
        assert!(
            debug.contains("CHEST") && !debug.contains("Doe") && !debug.contains("P-123") && !debug.contains("1970")
        );

        let cr = read_metadata(&fixture("cr_mono1.dcm")).expect("CR");
        assert_eq!(
            (cr.kind(), cr.modality.as_deref(), cr.body_part.as_deref()),
            (ImageKind::XRay, Some("CR"), Some("HAND"))
        );
        assert_eq!((cr.rows, cr.columns, cr.transfer_syntax.as_str()), (Some(30), Some(40), IMPLICIT_VR_LE));
        assert_eq!((cr.patient_id.as_deref(), cr.patient_name.as_deref()), (Some("P-456"), Some("Roe^John")));
        assert_eq!((cr.patient_birth_date, cr.study_date.as_deref()), (None, Some("2022-07-01")));
        assert_eq!(cr.pixels, PixelStatus::Native);

        let us = read_metadata(&fixture("us_rgb.dcm")).expect("US");
        assert_eq!((us.kind(), us.body_part.as_deref(), us.study_date.as_deref()), (ImageKind::Ultrasound, None, None));
        assert_eq!((us.rows, us.columns, us.pixels), (Some(24), Some(32), PixelStatus::Native));

        let mr = read_metadata(&fixture("mr_be.dcm")).expect("MR");
        assert_eq!((mr.kind(), mr.transfer_syntax.as_str()), (ImageKind::Mri, EXPLICIT_VR_BE));
        assert_eq!((mr.series_instance_uid.as_deref(), mr.sop_instance_uid.as_str()), (None, &*format!("{ROOT}.4.3")));
        assert_eq!((mr.patient_birth_date.as_deref(), mr.pixels), (Some("1985-12-24"), PixelStatus::Native));

        let dx = read_metadata(&fixture("jpeg_dx.dcm")).expect("DX");
        assert_eq!((dx.kind(), dx.transfer_syntax.as_str()), (ImageKind::XRay, "1.2.840.10008.1.2.4.50"));
        assert_eq!((dx.patient_id.as_deref(), dx.patient_name.as_deref()), (Some("P-123"), Some("Doe^Jane")));
        assert_eq!((dx.patient_birth_date.as_deref(), dx.body_part.as_deref()), (Some("1970-01-01"), Some("KNEE")));
        assert_eq!((dx.rows, dx.columns, dx.pixels), (Some(40), Some(48), PixelStatus::Compressed));
        assert!(!dx.natively_decodable());
    }

    #[test]
    fn dicom_image_kinds() {
        for kind in ImageKind::ALL {
            assert_eq!(kind.as_str().parse::<ImageKind>(), Ok(kind));
            assert_eq!(serde_json::to_string(&kind).expect("json"), format!("\"{kind}\""));
        }
        assert!("XRay".parse::<ImageKind>().is_err() && "".parse::<ImageKind>().is_err());
        for (modality, kind) in [
            ("CR", ImageKind::XRay),
            ("DX", ImageKind::XRay),
            ("mr", ImageKind::Mri),
            ("CT", ImageKind::Ct),
            ("US", ImageKind::Ultrasound),
            ("MG", ImageKind::Mammography),
            ("PT", ImageKind::Pet),
            ("NM", ImageKind::Other),
            ("", ImageKind::Other),
        ] {
            assert_eq!(ImageKind::from_modality(modality), kind, "{modality}");
        }
    }

    #[test]
    fn dicom_dates_and_uids() {
        assert_eq!(date("20240229").as_deref(), Some("2024-02-29"));
        assert_eq!(date("1970.01.01").as_deref(), Some("1970-01-01"));
        assert_eq!(date("20230229"), None);
        assert_eq!(date("2024"), None);
        assert_eq!(date("2024-01-01"), None);
        assert!(valid_uid("1.2.840.10008.1.2"));
        assert!(!valid_uid("1..2") && !valid_uid("1.2a") && !valid_uid("") && !valid_uid(&"1".repeat(65)));
    }

    #[test]
    fn dicom_preview_windows_the_ct() {
        let ct = preview_of("ct_window.dcm");
        assert_eq!((ct.width(), ct.height()), (64, 48));
        // Bone (HU 1000) is above the 40/400 window: white. Air (HU -1000) below it: black.
        // Soft tissue (HU 0) sits at (0 - 39.5) / 399 + 0.5 of the range.
        assert_eq!(ct.get(30, 20), Some(255));
        assert_eq!(ct.get(2, 2), Some(0));
        assert_eq!(ct.get(50, 40), Some(102));
    }

    #[test]
    fn dicom_preview_inverts_monochrome1() {
        let cr = preview_of("cr_mono1.dcm");
        assert_eq!((cr.width(), cr.height()), (40, 30));
        // No window: min–max; the square's low stored values are white in MONOCHROME1.
        assert_eq!(cr.get(20, 15), Some(255));
        assert_eq!(cr.get(2, 2), Some(0));
    }

    #[test]
    fn dicom_preview_of_rgb_and_big_endian() {
        let us = preview_of("us_rgb.dcm");
        assert_eq!((us.width(), us.height()), (32, 24));
        assert_eq!((us.get(10, 10), us.get(2, 2), us.get(25, 2)), (Some(255), Some(76), Some(0)));

        let mr = preview_of("mr_be.dcm");
        // A ramp of 100 per column through a 1000/2000 window.
        let row: Vec<u8> = (0..32).map(|x| mr.get(x, 5).expect("px")).collect();
        assert_eq!((row[0], row[10], row[20], row[31]), (0, 128, 255, 255));
        assert!(row.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn dicom_preview_none_when_compressed() {
        let bytes = fixture("jpeg_dx.dcm");
        let meta = read_metadata(&bytes).expect("DX");
        assert_eq!(decode_preview(&bytes, &meta), Ok(None));
    }

    #[test]
    fn dicom_previews_are_pngs_of_bounded_size() {
        let ct = preview_of("ct_window.dcm");
        let (thumb, web) = super::super::preview::previews(&ct);
        assert!(thumb.starts_with(b"\x89PNG") && web.starts_with(b"\x89PNG"));
        // Smaller than both bounds: kept at 64x48 (IHDR width and height).
        assert_eq!(&thumb[16..24], &[0, 0, 0, 64, 0, 0, 0, 48]);
    }

    #[test]
    fn dicom_refuses_malformed_files() {
        let ct = fixture("ct_window.dcm");
        // Truncated inside the pixel data, inside the meta group, right after the magic.
        for cut in [ct.len() - 100, ct.len() / 2, 200, 140, 132, 100, 0] {
            assert!(is_malformed(read_metadata(&ct[..cut])), "cut at {cut}");
        }
        // The marker, then garbage.
        let mut garbage = vec![0u8; 128];
        garbage.extend_from_slice(b"DICM");
        garbage.extend((0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        assert!(is_malformed(read_metadata(&garbage)));
        // Random bytes; text; a PNG.
        let random: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2_246_822_519) >> 11) as u8).collect();
        assert!(is_malformed(read_metadata(&random)));
        assert!(is_malformed(read_metadata(b"Patient: Doe^Jane, ID P-123")));
        assert!(is_malformed(read_metadata(b"\x89PNG\r\n\x1a\n")));
    }

    #[test]
    fn dicom_every_truncation_is_refused_or_has_no_pixels() {
        // DICOM has no end marker: a file cut exactly between two elements before its image
        // attributes reads as a complete object without pixel data (the caller refuses an image
        // upload without pixels). Every other cut is refused.
        for name in FIXTURES {
            let bytes = fixture(name);
            for cut in 0..bytes.len() {
                match read_metadata(&bytes[..cut]) {
                    Err(DicomError::Malformed(_)) => {}
                    Ok(meta) => assert_eq!(meta.pixels, PixelStatus::Absent, "{name} cut at {cut}"),
                    Err(other) => panic!("{name} cut at {cut}: {other}"),
                }
            }
        }
    }

    /// The offset of the top-level Pixel Data element's 4-byte length in an Explicit VR LE file.
    fn pixel_data_length_offset(bytes: &[u8]) -> usize {
        let at = bytes.windows(6).rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00, b'O', b'W']).expect("pixel data");
        at + 8
    }

    #[test]
    fn dicom_refuses_lengths_past_the_end_without_allocating_them() {
        let mut ct = fixture("ct_window.dcm");
        let at = pixel_data_length_offset(&ct);
        ct[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        assert_eq!(
            read_metadata(&ct),
            Err(DicomError::Malformed("an element's length runs past the end of the file".into()))
        );
        // The same in the file meta group (the transfer syntax's 2-byte length).
        let mut ct = fixture("ct_window.dcm");
        let ts = ct.windows(4).position(|w| w == [0x02, 0x00, 0x10, 0x00]).expect("ts");
        ct[ts + 6..ts + 8].copy_from_slice(&0xFFF0u16.to_le_bytes());
        assert!(is_malformed(read_metadata(&ct)));
    }

    #[test]
    fn dicom_refuses_deep_nesting() {
        let ct = fixture("ct_window.dcm");
        // The data set starts after the meta group: 132 + 12 + group length.
        let group_length = u32::from_le_bytes([ct[140], ct[141], ct[142], ct[143]]) as usize;
        let mut file = ct[..144 + group_length].to_vec();
        for _ in 0..100 {
            // (0008,1140) SQ, undefined length; an item of undefined length.
            file.extend_from_slice(&[0x08, 0x00, 0x40, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
            file.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        }
        assert_eq!(read_metadata(&file), Err(DicomError::Malformed("sequences are nested too deeply".into())));
    }

    #[test]
    fn dicom_requires_a_sop_instance_uid() {
        // cr_mono1 is Implicit VR LE; blank the data set's SOP Instance UID (the file meta
        // group's copy, which comes first, does not stand in for it).
        let mut cr = fixture("cr_mono1.dcm");
        let uid = format!("{ROOT}.2.3");
        let at = cr.windows(uid.len()).rposition(|w| w == uid.as_bytes()).expect("uid");
        cr[at..at + uid.len()].fill(b' ');
        assert_eq!(read_metadata(&cr), Err(DicomError::Malformed("the data set has no SOP Instance UID".into())));
        cr[at..at + 3].copy_from_slice(b"1.x");
        assert_eq!(read_metadata(&cr), Err(DicomError::Malformed("the SOP Instance UID is not a valid UID".into())));
    }

    #[test]
    fn dicom_too_large_is_refused_before_decoding() {
        let mut meta = read_metadata(&fixture("cr_mono1.dcm")).expect("CR");
        // The gate is the meta; one that claims native pixels for a compressed file still
        // gets no preview from the file itself.
        let jpeg = fixture("jpeg_dx.dcm");
        meta.pixels = PixelStatus::Native;
        assert_eq!(decode_preview(&jpeg, &meta), Ok(None));
        assert_eq!(
            decode_first_frame_of_size(10_000, 10_000),
            Err(DicomError::TooLarge { pixels: 100_000_000, limit: MAX_PREVIEW_PIXELS })
        );
    }

    /// A CT fixture whose Rows and Columns say `rows × columns`.
    fn decode_first_frame_of_size(rows: u16, columns: u16) -> Result<Option<Grey>, DicomError> {
        let mut ct = fixture("ct_window.dcm");
        for (tag, value) in [([0x28, 0x00, 0x10, 0x00], rows), ([0x28, 0x00, 0x11, 0x00], columns)] {
            let at = ct.windows(6).position(|w| w[..4] == tag && &w[4..] == b"US").expect("tag");
            ct[at + 8..at + 10].copy_from_slice(&value.to_le_bytes());
        }
        let meta = read_metadata(&ct)?;
        decode_preview(&ct, &meta)
    }

    #[test]
    fn dicom_short_pixel_data_is_malformed() {
        assert_eq!(
            decode_first_frame_of_size(100, 100),
            Err(DicomError::Malformed("the pixel data is shorter than the image".into()))
        );
    }

    /// Every outcome a mutated file may have: metadata (then a preview or none) or a refusal
    /// whose reason is a fixed sentence — never the guard's (a panic), never a patient's value.
    fn check_outcome(bytes: &[u8]) -> Result<(), TestCaseError> {
        let outcome = read_metadata(bytes).and_then(|meta| decode_preview(bytes, &meta).map(|_| ()));
        match outcome {
            Ok(()) | Err(DicomError::Unsupported(_)) | Err(DicomError::TooLarge { .. }) => Ok(()),
            Err(DicomError::Malformed(reason)) => {
                prop_assert_ne!(reason.as_str(), "the DICOM parser failed on this file");
                for private in ["Doe", "Jane", "Roe", "P-123", "P-456", "1970"] {
                    prop_assert!(!reason.contains(private), "{}", reason);
                }
                Ok(())
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn dicom_truncated_fixtures_never_panic(which in 0..FIXTURES.len(), cut in any::<prop::sample::Index>()) {
            let bytes = fixture(FIXTURES[which]);
            let cut = cut.index(bytes.len() + 1);
            check_outcome(&bytes[..cut])?;
        }

        #[test]
        fn dicom_mutated_fixtures_never_panic(
            which in 0..FIXTURES.len(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            big_length in prop::option::of(any::<prop::sample::Index>()),
        ) {
            let mut bytes = fixture(FIXTURES[which]);
            // Structure lives in the first 400 bytes of these small files; aim half the flips there.
            for (i, (at, value)) in flips.iter().enumerate() {
                let span = if i % 2 == 0 { bytes.len().min(400) } else { bytes.len() };
                let at = at.index(span);
                bytes[at] = *value;
            }
            if let Some(at) = big_length {
                let at = at.index(bytes.len() - 4);
                bytes[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
            }
            check_outcome(&bytes)?;
        }
    }
}
