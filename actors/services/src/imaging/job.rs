//! The preview job (`imaging.preview`): made for every image upload in the upload's own
//! transaction, it opens the file with the chart's wrap (as OCR does), decodes the first frame
//! on the blocking pool, and stores the thumbnail and the web-sized PNG sealed with the file's
//! data key — or records why there is none (compressed DICOM pixel data, a layout not decoded,
//! a frame too large), which is an answer, not a failure.

use careport_domain::{Code, Error};
use careport_store::images::{self as stored, PREVIEW_JOB};
use careport_store::{Db, Job};
use futures_util::future::BoxFuture;
use serde::Deserialize;
use uuid::Uuid;

use super::dicom::{self, DicomError, PixelStatus};
use super::preview;
use crate::jobs::{JobError, JobHandler};
use crate::vault::Vault;

/// The largest file a preview is made of: the decoder holds the whole file (a DICOM file's
/// pixel data may sit anywhere in it).
pub const MAX_PREVIEW_FILE: u64 = 1 << 30;

#[derive(Deserialize)]
struct Payload {
    record_id: Uuid,
}

/// The queue's handler of preview jobs.
pub struct PreviewHandler {
    db: Db,
    vault: Vault,
}

impl PreviewHandler {
    pub fn new(db: Db, vault: Vault) -> Self {
        Self { db, vault }
    }
}

impl JobHandler for PreviewHandler {
    fn kind(&self) -> &'static str {
        PREVIEW_JOB
    }

    fn run(&self, job: Job) -> BoxFuture<'static, Result<(), JobError>> {
        let (db, vault) = (self.db.clone(), self.vault.clone());
        Box::pin(async move { run(db, vault, job).await })
    }
}

/// What decoding gave.
enum Made {
    Previews(Vec<u8>, Vec<u8>),
    /// `none` with a reason: nothing to decode.
    Nothing(String),
}

fn retry(e: impl std::fmt::Display) -> JobError {
    JobError::Retry(format!("store: {e}"))
}

async fn run(db: Db, vault: Vault, job: Job) -> Result<(), JobError> {
    let Ok(payload) = serde_json::from_str::<Payload>(&job.payload) else {
        return Err(JobError::Permanent("bad payload".into()));
    };
    let id = payload.record_id;
    let Some(image) = stored::get(&db, id).await.map_err(retry)? else {
        return Err(JobError::Permanent("no image row".into()));
    };
    if image.preview != "pending" {
        return Ok(());
    }
    let Some(record) = careport_store::vault::record(&db, id).await.map_err(retry)? else {
        return Err(JobError::Permanent("no record".into()));
    };
    let file = match vault.open_as_care_team(&record).await {
        Ok(file) => file,
        Err(e) if e.code() == Code::Erased => {
            stored::set_no_preview(&db, id, "failed", "the file was erased").await.map_err(retry)?;
            return Ok(());
        }
        Err(e) => return Err(JobError::Retry(e.code().as_str().to_owned())),
    };
    if file.size() > MAX_PREVIEW_FILE {
        let reason = format!("the file is larger than {} MiB, the most a preview is made of", MAX_PREVIEW_FILE >> 20);
        stored::set_no_preview(&db, id, "none", &reason).await.map_err(retry)?;
        return Ok(());
    }
    let bytes = file.clone().read_all(MAX_PREVIEW_FILE).await.map_err(|e| JobError::Retry(e.code().as_str().into()))?;
    let media_type = record.media_type.clone();
    let made = tokio::task::spawn_blocking(move || make(&bytes, &media_type))
        .await
        .map_err(|e| JobError::Retry(format!("the decoder stopped: {e}")))?;
    match made {
        Ok(Made::Previews(thumb, web)) => {
            let (thumb, web) = (file.seal_bytes(&thumb), file.seal_bytes(&web));
            stored::set_ready(&db, id, &thumb, &web).await.map_err(retry)?;
        }
        Ok(Made::Nothing(reason)) => {
            stored::set_no_preview(&db, id, "none", &reason).await.map_err(retry)?;
        }
        Err(reason) => {
            stored::set_no_preview(&db, id, "failed", &reason).await.map_err(retry)?;
        }
    }
    Ok(())
}

/// Decode `bytes` into previews. The reasons name formats and limits, never a value of the file.
fn make(bytes: &[u8], media_type: &str) -> Result<Made, String> {
    if media_type != "application/dicom" {
        return Ok(match preview::previews_of_image(bytes, media_type) {
            Some((thumb, web)) => Made::Previews(thumb, web),
            None => Made::Nothing("the picture could not be decoded".into()),
        });
    }
    let meta = dicom::read_metadata(bytes).map_err(|e| e.to_string())?;
    match dicom::decode_preview(bytes, &meta) {
        Ok(Some(grey)) => {
            let (thumb, web) = preview::previews(&grey);
            Ok(Made::Previews(thumb, web))
        }
        Ok(None) => Ok(Made::Nothing(no_pixels(&meta))),
        Err(DicomError::TooLarge { pixels, limit }) => Ok(Made::Nothing(format!(
            "the first frame has {pixels} pixels, more than the {limit} a preview is made of"
        ))),
        Err(e) => Err(e.to_string()),
    }
}

/// Why a DICOM file's pixels are not decoded.
pub fn no_pixels(meta: &dicom::DicomMeta) -> String {
    match meta.pixels {
        PixelStatus::Native => "the pixel data could not be decoded".into(),
        PixelStatus::Compressed => {
            format!(
                "the pixel data is compressed (transfer syntax {}); download the file to view it",
                meta.transfer_syntax
            )
        }
        PixelStatus::Unsupported => "the pixel data is in a layout careport does not decode".into(),
        PixelStatus::Absent => "the file has no pixel data".into(),
    }
}

/// The error a reader gets for a record with no preview to give.
pub fn no_preview(status: &str, reason: Option<&str>) -> Error {
    match status {
        "pending" => Error::new(Code::PreviewNotReady),
        _ => Error::with_message(
            Code::NoPreview,
            format!("This image has no preview: {}.", reason.unwrap_or("it could not be made")),
        ),
    }
}
