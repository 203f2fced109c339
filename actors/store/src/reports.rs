//! Diagnosis reports (#18), one row per version. The text arrives sealed (the service seals it
//! with the patient's key), so this module moves opaque bodies and the facts around them: the
//! chart, the state, who wrote and who signed, the digest signed. A signed version is never
//! changed here except to be marked `amended` when its successor is signed.

use uuid::Uuid;

use crate::db::Db;
use crate::sql::Sql;
use crate::{exec, fetch, transaction};

/// One version of a report as stored (its body sealed).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReportRow {
    pub id: Uuid,
    pub root_id: Uuid,
    pub previous_id: Option<Uuid>,
    pub version: i32,
    pub patient_id: Uuid,
    /// `imaging` or `pathology`: the record type of its PDF.
    pub kind: String,
    /// `draft`, `final` or `amended`.
    pub state: String,
    /// Sealed JSON: findings, impression, recommendations, ICD-10 codes.
    pub body: String,
    /// JSON array of the record ids it is about.
    pub record_ids: String,
    pub author_id: Uuid,
    pub signed_by: Option<Uuid>,
    pub signed_at: Option<i64>,
    pub digest: Option<String>,
    pub pdf_record_id: Option<Uuid>,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, root_id, previous_id, version, patient_id, kind, state, body, record_ids, author_id, signed_by, \
             signed_at, digest, pdf_record_id, created_at, updated_at FROM diagnosis_reports ",
            $tail
        )
    };
}

static INSERT: Sql = Sql::new(
    "INSERT INTO diagnosis_reports (id, root_id, previous_id, version, patient_id, kind, state, body, record_ids, \
     author_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'draft', $7, $8, $9, $10, $10)",
);
static GET: Sql = Sql::new(select!("WHERE id = $1"));
static VERSIONS: Sql = Sql::new(select!("WHERE root_id = $1 ORDER BY version"));
static FOR_PATIENT: Sql = Sql::new(select!("WHERE patient_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"));
static EDIT: Sql = Sql::new(
    "UPDATE diagnosis_reports SET body = $2, record_ids = $3, kind = $4, updated_at = $5 WHERE id = $1 AND state = 'draft'",
);
static SIGN: Sql = Sql::new(
    "UPDATE diagnosis_reports SET state = 'final', signed_by = $2, signed_at = $3, digest = $4, updated_at = $3
     WHERE id = $1 AND state = 'draft'",
);
static MARK_AMENDED: Sql =
    Sql::new("UPDATE diagnosis_reports SET state = 'amended', updated_at = $2 WHERE id = $1 AND state = 'final'");
static OPEN_DRAFT: Sql = Sql::new("SELECT COUNT(*) FROM diagnosis_reports WHERE root_id = $1 AND state = 'draft'");
static SET_PDF: Sql =
    Sql::new("UPDATE diagnosis_reports SET pdf_record_id = $2 WHERE id = $1 AND pdf_record_id IS NULL");

/// A version to store (as a draft).
pub struct NewReport<'a> {
    pub id: Uuid,
    pub root_id: Uuid,
    pub previous_id: Option<Uuid>,
    pub version: i32,
    pub patient_id: Uuid,
    pub kind: &'a str,
    pub body: &'a str,
    pub record_ids: &'a str,
    pub author_id: Uuid,
    pub at: i64,
}

/// Why an amendment could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum AmendError {
    /// The report already has a draft amendment (or another was stored at the same moment).
    #[error("the report already has a draft amendment")]
    DraftExists,
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

/// Store a draft: a new report, or (with `previous_id`) an amendment of a signed one. One draft
/// per report at a time: the unique (root, version) index refuses a second amendment of the
/// same version.
pub async fn insert(db: &Db, r: &NewReport<'_>) -> Result<(), AmendError> {
    if r.previous_id.is_some() && crate::scalar!(db.writer(), i64, fetch_one, &OPEN_DRAFT, r.root_id)? > 0 {
        return Err(AmendError::DraftExists);
    }
    exec!(
        db.writer(),
        &INSERT,
        r.id,
        r.root_id,
        r.previous_id,
        r.version,
        r.patient_id,
        r.kind,
        r.body,
        r.record_ids,
        r.author_id,
        r.at
    )
    .map(|_| ())
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => AmendError::DraftExists,
        other => AmendError::Store(other),
    })
}

/// One version.
pub async fn get(db: &Db, id: Uuid) -> Result<Option<ReportRow>, sqlx::Error> {
    fetch!(db.writer(), ReportRow, fetch_optional, &GET, id)
}

/// Every version of the report `root`, oldest first.
pub async fn versions(db: &Db, root: Uuid) -> Result<Vec<ReportRow>, sqlx::Error> {
    fetch!(db.reader(), ReportRow, fetch_all, &VERSIONS, root)
}

/// A chart's report versions, newest first, at most `limit`.
pub async fn for_patient(db: &Db, patient: Uuid, limit: i64) -> Result<Vec<ReportRow>, sqlx::Error> {
    fetch!(db.reader(), ReportRow, fetch_all, &FOR_PATIENT, patient, limit)
}

/// Change a draft: `false` if it is no longer a draft.
pub async fn edit(db: &Db, id: Uuid, body: &str, record_ids: &str, kind: &str, at: i64) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &EDIT, id, body, record_ids, kind, at)? == 1)
}

/// Sign a draft off (and mark the version it amends `amended`), in one transaction: `false` if
/// it is no longer a draft.
pub async fn sign(
    db: &Db,
    id: Uuid,
    previous: Option<Uuid>,
    by: Uuid,
    digest: &str,
    at: i64,
) -> Result<bool, sqlx::Error> {
    transaction!(db, |tx, dialect| {
        let signed = sqlx::query(SIGN.text(dialect))
            .bind(id)
            .bind(by)
            .bind(at)
            .bind(digest)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if signed && let Some(previous) = previous {
            sqlx::query(MARK_AMENDED.text(dialect)).bind(previous).bind(at).execute(&mut *tx).await?;
        }
        Ok(signed)
    })
}

/// Remember the record its PDF became (once).
pub async fn set_pdf(db: &Db, id: Uuid, record: Uuid) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &SET_PDF, id, record)? == 1)
}
