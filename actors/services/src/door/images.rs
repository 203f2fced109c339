//! Medical images (#18): records of type `medical-images`, a DICOM file or a picture (PNG, JPEG,
//! TIFF). This module owns what is particular to them; everything else — who may upload, read,
//! share, delete; the sealed file; the audit of each read — is the records' own.
//!
//! - On upload ([`inspector`]), the whole file is read before anything is committed: a DICOM
//!   file's metadata (modality and kind, body part, UIDs, study date, size) is kept with the
//!   record, and its patient identifiers must be the chart's ([`crate::imaging::identity`]) or
//!   the upload is refused (409 `patient_mismatch`, nothing kept) — unless an administrator asks
//!   to override (`override_identity`), which the policies decide and the trail records with
//!   the fields that differed. The image row and its preview job commit with the record.
//! - [`Images::list`]: the chart's images (`?modality=&from=&to=`), exactly the records the
//!   caller may open, with their metadata.
//! - [`Images::preview`]: a thumbnail or web-sized PNG, opened with the file's key through the
//!   caller's own wrap, audited like a download.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use careport_domain::{Code, Error};
use careport_store::images::{self as stored, ImageRow, NewImage, PreviewSize};
use careport_store::patients::PatientRow;
use uuid::Uuid;

use super::page::{Page, PageRequest};
use super::records::{RecordQuery, live_record, open_for};
use super::store_err;
use super::views::{Image, Record};
use crate::access::ReadDocument;
use crate::audit::{EventExt, outcome};
use crate::imaging::dicom::{self, ImageKind, PixelStatus};
use crate::imaging::identity::{self, ChartIdentity, FileIdentity, Identity};
use crate::imaging::job::{MAX_PREVIEW_FILE, no_pixels, no_preview};
use crate::vault::Inspect;
use crate::{Caller, Pass, Services};

/// The record type of medical images.
pub const IMAGE_RECORD_TYPE: &str = "medical-images";

/// Attempts of an image's preview job.
const PREVIEW_ATTEMPTS: i32 = 3;

/// Medical image operations.
pub struct Images<'a>(pub(crate) &'a Services);

/// What a chart's image list asks for.
#[derive(Debug, Clone, Default)]
pub struct ImageQuery {
    /// A kind (`xray`, `mri`, `ct`, `ultrasound`, `mammography`, `pet`, `other`) or a DICOM
    /// modality code (`CT`, `MR`, `CR`, `DX`, …).
    pub modality: Option<String>,
    /// Clinical (study) dates from and to, inclusive, `YYYY-MM-DD`.
    pub from: Option<String>,
    pub to: Option<String>,
    pub page: PageRequest,
}

/// How an image upload's identity check came out, for its audit event.
pub(crate) type Outcome = Arc<Mutex<Option<Identity>>>;

/// The check an image upload's whole file goes through before it is committed: a DICOM file's
/// metadata and patient identifiers, or a picture's kind. `kind` is the uploader's
/// `image_kind` (pictures; a DICOM file's modality decides its own); `override_identity` was
/// decided by the policies before the body was read.
pub(crate) fn inspector(patient: &PatientRow, kind: ImageKind, override_identity: bool, outcome: Outcome) -> Inspect {
    let chart = ChartIdentity {
        mrn: patient.mrn.clone(),
        full_name: patient.full_name.clone(),
        date_of_birth: patient.date_of_birth.clone(),
    };
    let check = move |media_type: &'static str, bytes: Bytes| -> Result<(NewImage, i32), Error> {
        let image = match media_type {
            "application/dicom" => dicom_image(&bytes, &chart, override_identity, &outcome)?,
            "image/png" | "image/jpeg" | "image/tiff" => NewImage {
                kind: kind.as_str().to_owned(),
                identity: "absent".into(),
                preview: "pending".into(),
                ..NewImage::default()
            },
            _ => {
                return Err(Error::with_message(
                    Code::UnsupportedMediaType,
                    "Medical images are DICOM, PNG, JPEG or TIFF files; upload other files as another record type.",
                ));
            }
        };
        Ok((image, PREVIEW_ATTEMPTS))
    };
    Inspect {
        limit: MAX_PREVIEW_FILE,
        too_large: format!("A medical image may be at most {} MiB.", MAX_PREVIEW_FILE >> 20),
        check: Box::new(check),
    }
}

fn dicom_image(
    bytes: &[u8],
    chart: &ChartIdentity,
    override_identity: bool,
    outcome: &Outcome,
) -> Result<NewImage, Error> {
    let meta = dicom::read_metadata(bytes).map_err(|e| {
        Error::with_message(Code::InvalidValue, format!("The DICOM file could not be read: {e}. Nothing was kept."))
    })?;
    if meta.pixels == PixelStatus::Absent {
        return Err(Error::with_message(
            Code::InvalidValue,
            "The DICOM file holds no image (a structured report or presentation state); upload it as another record type.",
        ));
    }
    let file = FileIdentity {
        patient_id: meta.patient_id.clone(),
        patient_name: meta.patient_name.clone(),
        birth_date: meta.patient_birth_date.clone(),
    };
    let compared = identity::compare(&file, chart);
    let identity = match &compared {
        Identity::Matched => "matched",
        Identity::Absent => "absent",
        Identity::Mismatch(_) if override_identity => "overridden",
        Identity::Mismatch(fields) => {
            return Err(Error::with_message(
                Code::PatientMismatch,
                format!(
                    "The file's patient identifiers ({}) do not match this chart; nothing was kept. Check the file, \
                     or ask an administrator to override.",
                    fields.join(", ")
                ),
            ));
        }
    };
    if let Ok(mut seen) = outcome.lock() {
        *seen = Some(compared);
    }
    let (preview, preview_reason) =
        if meta.natively_decodable() { ("pending", None) } else { ("none", Some(no_pixels(&meta))) };
    Ok(NewImage {
        kind: meta.kind().as_str().to_owned(),
        modality: meta.modality.clone(),
        body_part: meta.body_part.clone(),
        study_uid: meta.study_instance_uid.clone(),
        series_uid: meta.series_instance_uid.clone(),
        instance_uid: Some(meta.sop_instance_uid.clone()),
        study_date: meta.study_date.clone(),
        rows: meta.rows.map(i64::from),
        columns: meta.columns.map(i64::from),
        transfer_syntax: Some(meta.transfer_syntax.clone()),
        identity: identity.into(),
        preview: preview.into(),
        preview_reason,
    })
}

/// The audit detail of an image upload's identity check (field names only).
pub(crate) fn identity_detail(outcome: &Outcome) -> Option<String> {
    match outcome.lock().ok()?.as_ref()? {
        Identity::Mismatch(fields) => Some(format!("identity overridden ({})", fields.join(", "))),
        _ => None,
    }
}

/// A list's `modality`: a kind's name as it is, anything else as a DICOM code (uppercase).
fn modality_filter(v: Option<&str>) -> Result<Option<String>, Error> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else { return Ok(None) };
    if v.len() > 16 || !v.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Error::with_message(
            Code::InvalidQuery,
            "modality is a kind (xray, mri, ct, ultrasound, mammography, pet, other) or a DICOM modality code.",
        ));
    }
    Ok(Some(if v.parse::<ImageKind>().is_ok() { v.to_owned() } else { v.to_ascii_uppercase() }))
}

/// Attach the image rows of a page of `patient`'s records (one query for the page).
pub(crate) async fn attach(services: &Services, patient: Uuid, items: &mut [Record]) -> Result<(), Error> {
    let ids: Vec<Uuid> = items.iter().filter(|r| r.record_type == IMAGE_RECORD_TYPE).map(|r| r.id).collect();
    let (Some(first), Some(last)) = (ids.iter().min(), ids.iter().max()) else { return Ok(()) };
    let rows = stored::in_range(&services.db, patient, *first, *last).await.map_err(store_err)?;
    for item in items.iter_mut() {
        if let Some(row) = rows.iter().find(|i| i.record_id == item.id) {
            item.image = Some(Image::from(row));
        }
    }
    Ok(())
}

/// One record's image row, if it is an image.
pub(crate) async fn image_of(services: &Services, record: &Record) -> Result<Option<ImageRow>, Error> {
    if record.record_type != IMAGE_RECORD_TYPE {
        return Ok(None);
    }
    stored::get(&services.db, record.id).await.map_err(store_err)
}

impl Images<'_> {
    /// The chart's images that the caller may open, newest first: the chart's record list (the
    /// same decisions, the same audit event) of type `medical-images`, with their metadata.
    pub async fn list(&self, caller: Caller, patient: Uuid, q: ImageQuery) -> Result<Page<Record>, Error> {
        let query = RecordQuery {
            record_type: Some(IMAGE_RECORD_TYPE.to_owned()),
            from: q.from,
            to: q.to,
            q: None,
            modality: modality_filter(q.modality.as_deref())?,
            page: q.page,
        };
        self.0.records().list(caller, patient, query).await
    }

    /// A preview of an image the pass may read: `size` is `thumb` or `web`. 404 `no_preview` for
    /// a record that is not an image or an image without one (its reason in the message), 404
    /// `preview_not_ready` while its job runs. Audited (failing closed) like a download.
    pub async fn preview(&self, pass: Pass<ReadDocument>, size: &str) -> Result<Vec<u8>, Error> {
        let size = match size {
            "thumb" => PreviewSize::Thumb,
            "web" => PreviewSize::Web,
            _ => return Err(Error::with_message(Code::InvalidQuery, "size is thumb or web.")),
        };
        let (caller, id) = (pass.caller(), pass.id());
        let r = live_record(self.0, id).await?;
        let file = open_for(self.0, caller, &r).await?;
        let Some(image) = stored::get(&self.0.db, id).await.map_err(store_err)? else {
            return Err(Error::with_message(Code::NoPreview, "Only medical images have previews."));
        };
        if image.preview != "ready" {
            return Err(no_preview(&image.preview, image.preview_reason.as_deref()));
        }
        let sealed =
            stored::preview(&self.0.db, id, size).await.map_err(store_err)?.ok_or_else(|| no_preview("none", None))?;
        let png = file.open_bytes(&sealed)?;
        let which = if size == PreviewSize::Thumb { "thumb" } else { "web" };
        self.0
            .audit
            .one(
                caller
                    .ctx
                    .event("record.preview", outcome::SUCCESS)
                    .resource("document", id)
                    .patient(r.patient_id)
                    .detail(which),
            )
            .await?;
        Ok(png)
    }
}
