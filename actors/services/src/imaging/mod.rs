//! Medical images: reading what an uploaded image file is, whether it is the chart's patient's,
//! and making its previews. All but [`job`] is a pure library (no store, no actors, no async):
//! the upload operation (`door::images`) and the preview job call it.
//!
//! - [`dicom`]: DICOM (`.dcm`) files: the metadata careport keeps ([`dicom::read_metadata`]:
//!   modality and [`dicom::ImageKind`], body part, UIDs, study date, size, the patient
//!   identifiers in the file, transfer syntax) and the first frame of uncompressed pixel data
//!   as windowed grey pixels ([`dicom::decode_preview`]); a malformed file is refused with a
//!   reason that holds no patient data, and a compressed one has no preview.
//! - [`preview`]: the thumbnail (≤ 256 px) and web-sized (≤ 1024 px) PNG previews of a grey
//!   image, and of uploaded PNG, JPEG and TIFF files.
//! - [`identity`]: the file's patient identifiers against the chart's (the one rule).
//! - [`job`]: the preview job, run by the queue on nodes that run jobs.

pub mod dicom;
pub mod identity;
pub mod job;
pub mod preview;
