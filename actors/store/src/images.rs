//! Medical images (#18): what careport read from an image record — kind, DICOM modality, body
//! part, study/series/instance UIDs, study date, size, how the file's patient identifiers stood to
//! the chart — and its previews, sealed by the service with the file's data key (this module
//! moves opaque Fernet tokens, as for OCR text).
//!
//! The row is written in the upload's own transaction ([`crate::vault::commit_upload`]), with
//! the job that makes the previews, so an acknowledged image never lacks either.

use careport_domain::time::now_ms;
use uuid::Uuid;

use crate::db::Db;
use crate::sql::Sql;
use crate::{exec, fetch};

/// The job kind that makes an image's previews; its payload is `{"record_id": …}`.
pub const PREVIEW_JOB: &str = "imaging.preview";

/// What an upload read from an image, before it is committed.
#[derive(Debug, Clone, Default)]
pub struct NewImage {
    /// `xray`, `mri`, `ct`, `ultrasound`, `mammography`, `pet` or `other`.
    pub kind: String,
    pub modality: Option<String>,
    pub body_part: Option<String>,
    pub study_uid: Option<String>,
    pub series_uid: Option<String>,
    pub instance_uid: Option<String>,
    /// `YYYY-MM-DD`.
    pub study_date: Option<String>,
    pub rows: Option<i64>,
    pub columns: Option<i64>,
    pub transfer_syntax: Option<String>,
    /// `matched`, `absent` or `overridden`.
    pub identity: String,
    /// `pending` (a job is queued with the row) or `none` (nothing to decode: `preview_reason`).
    pub preview: String,
    pub preview_reason: Option<String>,
}

/// An image's row, without its previews.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ImageRow {
    pub record_id: Uuid,
    pub patient_id: Uuid,
    pub kind: String,
    pub modality: Option<String>,
    pub body_part: Option<String>,
    pub study_uid: Option<String>,
    pub series_uid: Option<String>,
    pub instance_uid: Option<String>,
    pub study_date: Option<String>,
    pub rows_count: Option<i64>,
    pub columns_count: Option<i64>,
    pub transfer_syntax: Option<String>,
    pub identity: String,
    /// `pending`, `ready`, `none` or `failed`.
    pub preview: String,
    pub preview_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The two sizes of preview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewSize {
    /// At most 256 × 256.
    Thumb,
    /// At most 1024 × 1024.
    Web,
}

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT record_id, patient_id, kind, modality, body_part, study_uid, series_uid, instance_uid, study_date, \
             rows_count, columns_count, transfer_syntax, identity, preview, preview_reason, created_at, updated_at \
             FROM record_images ",
            $tail
        )
    };
}

pub(crate) static INSERT: Sql = Sql::new(
    "INSERT INTO record_images (record_id, patient_id, kind, modality, body_part, study_uid, series_uid, instance_uid,
       study_date, rows_count, columns_count, transfer_syntax, identity, preview, preview_reason, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16)",
);
static GET: Sql = Sql::new(select!("WHERE record_id = $1"));
static IN_RANGE: Sql =
    Sql::new(select!("WHERE patient_id = $1 AND record_id >= $2 AND record_id <= $3 ORDER BY record_id DESC"));
static SET_READY: Sql = Sql::new(
    "UPDATE record_images SET preview = 'ready', preview_reason = NULL, thumb = $2, web = $3, updated_at = $4
     WHERE record_id = $1",
);
static SET_NONE: Sql = Sql::new(
    "UPDATE record_images SET preview = $2, preview_reason = $3, thumb = NULL, web = NULL, updated_at = $4
     WHERE record_id = $1",
);
static THUMB: Sql = Sql::new("SELECT thumb FROM record_images WHERE record_id = $1");
static WEB: Sql = Sql::new("SELECT web FROM record_images WHERE record_id = $1");

/// One image's row.
pub async fn get(db: &Db, record: Uuid) -> Result<Option<ImageRow>, sqlx::Error> {
    fetch!(db.writer(), ImageRow, fetch_optional, &GET, record)
}

/// The image rows of `patient` among the records `first..=last` (ids are time-ordered): one
/// query for a page of a chart's list.
pub async fn in_range(db: &Db, patient: Uuid, first: Uuid, last: Uuid) -> Result<Vec<ImageRow>, sqlx::Error> {
    fetch!(db.reader(), ImageRow, fetch_all, &IN_RANGE, patient, first.min(last), first.max(last))
}

/// The previews are made: both sealed PNGs.
pub async fn set_ready(db: &Db, record: Uuid, thumb: &str, web: &str) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &SET_READY, record, thumb, web, now_ms())? == 1)
}

/// No preview: `status` is `none` (nothing decodable) or `failed`, `reason` says why (no
/// patient data: a transfer syntax, a layout, a decoder's error class).
pub async fn set_no_preview(db: &Db, record: Uuid, status: &str, reason: &str) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &SET_NONE, record, status, reason, now_ms())? == 1)
}

/// A sealed preview, if it was made.
pub async fn preview(db: &Db, record: Uuid, size: PreviewSize) -> Result<Option<String>, sqlx::Error> {
    let sql = match size {
        PreviewSize::Thumb => &THUMB,
        PreviewSize::Web => &WEB,
    };
    Ok(crate::scalar!(db.writer(), Option<String>, fetch_optional, sql, record)?.flatten())
}
