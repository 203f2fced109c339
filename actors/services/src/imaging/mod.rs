//! Medical images: reading what an uploaded image file is and making its previews. A pure
//! library (no store, no actors, no async): the upload operation and the preview job call it.
//!
//! - [`dicom`]: DICOM (`.dcm`) files: the metadata careport keeps ([`dicom::read_metadata`]:
//!   modality and [`dicom::ImageKind`], body part, UIDs, study date, size, the patient
//!   identifiers in the file, transfer syntax) and the first frame of uncompressed pixel data
//!   as windowed grey pixels ([`dicom::decode_preview`]); a malformed file is refused with a
//!   reason that holds no patient data, and a compressed one has no preview.
//! - [`preview`]: the thumbnail (≤ 256 px) and web-sized (≤ 1024 px) PNG previews of a grey
//!   image, and of uploaded PNG, JPEG and TIFF files.

pub mod dicom;
pub mod preview;
