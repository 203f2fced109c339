//! The vault's rows: wrapped keys (users' and the system's), sealed files, medical records and
//! their grants. Nothing here sees a key unwrapped: wrapping and unwrapping are the vault
//! service's (`careport-vault`), and this module stores and returns Fernet tokens only.
//!
//! - [`key`]/[`insert_key`]: a user's key, wrapped by the master key; created on first need.
//! - [`commit_upload`]: a new record and, unless this patient already has the same content,
//!   its file — in one transaction, so an upload is visible only once both are committed.
//! - [`shred_patient`]: crypto-shredding — the patient's key and every wrap of their files go.
//! - [`rotate_master`]: every wrapped key and sealed MFA secret re-wrapped in one transaction.

use careport_domain::time::now_ms;
use uuid::Uuid;

use crate::db::Db;
use crate::sql::Sql;
use crate::{exec, fetch, scalar, transaction};

static KEY: Sql = Sql::new("SELECT wrapped FROM vault_keys WHERE owner_id = $1");
static INSERT_KEY: Sql = Sql::new(
    "INSERT INTO vault_keys (owner_id, wrapped, created_at) VALUES ($1, $2, $3) ON CONFLICT (owner_id) DO NOTHING",
);
static SYSTEM_KEY: Sql = Sql::new("SELECT wrapped FROM system_keys WHERE name = $1");
static INSERT_SYSTEM_KEY: Sql =
    Sql::new("INSERT INTO system_keys (name, wrapped, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING");

/// A user's key, wrapped by the master key; `None` if the user has none yet (or was erased).
pub async fn key(db: &Db, owner: Uuid) -> Result<Option<String>, sqlx::Error> {
    scalar!(db.writer(), String, fetch_optional, &KEY, owner)
}

/// Store a user's first key and return the one stored: when two requests create a key for the
/// same user at once, both end up with the first one written.
pub async fn insert_key(db: &Db, owner: Uuid, wrapped: &str) -> Result<String, sqlx::Error> {
    exec!(db.writer(), &INSERT_KEY, owner, wrapped, now_ms())?;
    scalar!(db.writer(), String, fetch_one, &KEY, owner)
}

/// A named system key, wrapped by the master key.
pub async fn system_key(db: &Db, name: &str) -> Result<Option<String>, sqlx::Error> {
    scalar!(db.writer(), String, fetch_optional, &SYSTEM_KEY, name)
}

/// Store a named system key unless one exists; returns the one stored.
pub async fn insert_system_key(db: &Db, name: &str, wrapped: &str) -> Result<String, sqlx::Error> {
    exec!(db.writer(), &INSERT_SYSTEM_KEY, name, wrapped, now_ms())?;
    scalar!(db.writer(), String, fetch_one, &SYSTEM_KEY, name)
}

/// What [`rotate_master`] re-wrapped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rotated {
    pub user_keys: u64,
    pub system_keys: u64,
    pub mfa_secrets: u64,
}

/// Re-wrap, in one transaction, every user key, every system key and every sealed MFA secret
/// with `rewrap` (old master → new master). The first value `rewrap` refuses aborts the whole
/// rotation: nothing changes. Files and their data keys are not touched.
pub async fn rotate_master<E>(db: &Db, rewrap: impl Fn(&str) -> Result<String, E>) -> Result<Rotated, RotateError<E>> {
    static USERS: Sql = Sql::new("SELECT owner_id, wrapped FROM vault_keys");
    static SET_USER: Sql = Sql::new("UPDATE vault_keys SET wrapped = $2 WHERE owner_id = $1");
    static SYSTEM: Sql = Sql::new("SELECT name, wrapped FROM system_keys");
    static SET_SYSTEM: Sql = Sql::new("UPDATE system_keys SET wrapped = $2 WHERE name = $1");
    static MFA: Sql = Sql::new("SELECT id, mfa_secret FROM users WHERE mfa_secret IS NOT NULL");
    static SET_MFA: Sql = Sql::new("UPDATE users SET mfa_secret = $2 WHERE id = $1");
    let mut done = Rotated::default();
    transaction!(db, |tx, dialect| {
        let users: Vec<(Uuid, String)> = sqlx::query_as(USERS.text(dialect)).fetch_all(&mut *tx).await?;
        for (owner, wrapped) in users {
            let new = rewrap(&wrapped).map_err(|e| RotateError::Refused(format!("user key {owner}"), e))?;
            sqlx::query(SET_USER.text(dialect)).bind(owner).bind(new).execute(&mut *tx).await?;
            done.user_keys += 1;
        }
        let system: Vec<(String, String)> = sqlx::query_as(SYSTEM.text(dialect)).fetch_all(&mut *tx).await?;
        for (name, wrapped) in system {
            let new = rewrap(&wrapped).map_err(|e| RotateError::Refused(format!("system key {name}"), e))?;
            sqlx::query(SET_SYSTEM.text(dialect)).bind(name).bind(new).execute(&mut *tx).await?;
            done.system_keys += 1;
        }
        let mfa: Vec<(Uuid, String)> = sqlx::query_as(MFA.text(dialect)).fetch_all(&mut *tx).await?;
        for (user, sealed) in mfa {
            let new = rewrap(&sealed).map_err(|e| RotateError::Refused(format!("MFA secret of user {user}"), e))?;
            sqlx::query(SET_MFA.text(dialect)).bind(user).bind(new).execute(&mut *tx).await?;
            done.mfa_secrets += 1;
        }
        Ok::<_, RotateError<E>>(done)
    })
}

/// Why [`rotate_master`] changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum RotateError<E> {
    #[error("{0} does not open with the current master key")]
    Refused(String, E),
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

/// A sealed file.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FileRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    /// The data key wrapped by the patient's key; `None` once the patient was erased.
    pub wrapped_key: Option<String>,
    pub size: i64,
    pub frame_size: i32,
    pub media_type: String,
    pub backend: String,
}

/// A file just sealed and stored, not yet committed to the store.
#[derive(Debug, Clone)]
pub struct NewFile {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub content_tag: String,
    pub wrapped_key: String,
    pub size: i64,
    pub frame_size: i32,
    pub media_type: String,
    pub backend: &'static str,
}

/// A medical record, with what the list and the download need of its file.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct RecordRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub record_type: String,
    pub title: String,
    pub clinical_date: Option<String>,
    pub file_id: Uuid,
    pub file_name: String,
    pub sensitive: bool,
    pub uploaded_by: Uuid,
    pub created_at: i64,
    pub deleted_at: Option<i64>,
    pub size: i64,
    pub media_type: String,
}

/// The record part of an upload.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub record_type: String,
    pub title: String,
    pub clinical_date: Option<String>,
    pub file_name: String,
    pub sensitive: bool,
    pub uploaded_by: Uuid,
    /// What was read from a medical image: its row is written with the record, and, when its
    /// preview is `pending`, the job that makes it (with these attempts at most).
    pub image: Option<(crate::images::NewImage, i32)>,
    /// The uploader's idempotency key, kept with the record; an upload of the same user with
    /// the same key since `.2` (ms) commits nothing and names the earlier record instead.
    pub once: Option<(Uuid, String, i64)>,
}

/// A statement reading [`RecordRow`]s: the columns and the join, then `$rest`.
macro_rules! select_records {
    ($rest:literal) => {
        concat!(
            "SELECT r.id, r.patient_id, r.record_type, r.title, r.clinical_date, r.file_id, r.file_name,
               r.sensitive, r.uploaded_by, r.created_at, r.deleted_at, f.size, f.media_type
             FROM medical_records r JOIN vault_files f ON f.id = r.file_id ",
            $rest
        )
    };
}

static PATIENT_OPEN: Sql = Sql::new("SELECT COUNT(*) FROM patients WHERE id = $1 AND deleted_at IS NULL");
static INSERT_FILE: Sql = Sql::new(
    "INSERT INTO vault_files (id, patient_id, content_tag, wrapped_key, size, frame_size, media_type, backend, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (patient_id, content_tag) DO NOTHING",
);
static FILE_BY_TAG: Sql = Sql::new("SELECT id FROM vault_files WHERE patient_id = $1 AND content_tag = $2");
static INSERT_RECORD: Sql = Sql::new(
    "INSERT INTO medical_records (id, patient_id, record_type, title, title_search, clinical_date, file_id, file_name,
       sensitive, uploaded_by, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
);
static FILE: Sql = Sql::new(
    "SELECT id, patient_id, wrapped_key, size, frame_size, media_type, backend FROM vault_files WHERE id = $1",
);

/// The outcome of [`commit_upload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The file the record points at.
    pub file_id: Uuid,
    /// The patient already had this content: the new object is not used and may be deleted.
    pub duplicate: bool,
    /// The upload was made before under the same idempotency key: nothing was committed, and
    /// this is the record it made (the new object is not used).
    pub replay: Option<Uuid>,
}

static KEY_OF: Sql =
    Sql::new("SELECT record_id FROM upload_keys WHERE user_id = $1 AND idem_key = $2 AND created_at >= $3");
static INSERT_KEY_OF: Sql =
    Sql::new("INSERT INTO upload_keys (user_id, idem_key, record_id, created_at) VALUES ($1, $2, $3, $4)");

/// The record an upload of `user` with idempotency key `key` made since `since` (ms), if any.
pub async fn upload_key(db: &Db, user: Uuid, key: &str, since: i64) -> Result<Option<Uuid>, sqlx::Error> {
    scalar!(db.writer(), Uuid, fetch_optional, &KEY_OF, user, key, since)
}

/// Forget idempotency keys older than `before` (ms); how many went.
pub async fn purge_upload_keys(db: &Db, before: i64) -> Result<u64, sqlx::Error> {
    static PURGE: Sql = Sql::new("DELETE FROM upload_keys WHERE created_at < $1");
    exec!(db.writer(), &PURGE, before)
}

/// Commit an upload: the file (unless the patient already has the same content, found by its
/// tag), the record and, for an image, its row and preview job, in one transaction. Before this,
/// nothing of the upload is visible.
pub async fn commit_upload(db: &Db, file: &NewFile, record: &NewRecord) -> Result<Committed, sqlx::Error> {
    let now = now_ms();
    transaction!(db, |tx, dialect| {
        // A patient deleted (and perhaps erased) while the upload streamed gets no new file.
        let open: i64 =
            sqlx::query_scalar(PATIENT_OPEN.text(dialect)).bind(file.patient_id).fetch_one(&mut *tx).await?;
        if open == 0 {
            return Err(sqlx::Error::RowNotFound);
        }
        if let Some((user, key, since)) = &record.once {
            let earlier: Option<Uuid> = sqlx::query_scalar(KEY_OF.text(dialect))
                .bind(user)
                .bind(key)
                .bind(since)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(earlier) = earlier {
                return Ok(Committed { file_id: file.id, duplicate: true, replay: Some(earlier) });
            }
        }
        sqlx::query(INSERT_FILE.text(dialect))
            .bind(file.id)
            .bind(file.patient_id)
            .bind(&file.content_tag)
            .bind(&file.wrapped_key)
            .bind(file.size)
            .bind(file.frame_size)
            .bind(&file.media_type)
            .bind(file.backend)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let file_id: Uuid = sqlx::query_scalar(FILE_BY_TAG.text(dialect))
            .bind(file.patient_id)
            .bind(&file.content_tag)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(INSERT_RECORD.text(dialect))
            .bind(record.id)
            .bind(record.patient_id)
            .bind(&record.record_type)
            .bind(&record.title)
            .bind(record.title.to_lowercase())
            .bind(&record.clinical_date)
            .bind(file_id)
            .bind(&record.file_name)
            .bind(record.sensitive)
            .bind(record.uploaded_by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if let Some((user, key, _)) = &record.once {
            sqlx::query(INSERT_KEY_OF.text(dialect))
                .bind(user)
                .bind(key)
                .bind(record.id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        if let Some((image, attempts)) = &record.image {
            sqlx::query(crate::images::INSERT.text(dialect))
                .bind(record.id)
                .bind(record.patient_id)
                .bind(&image.kind)
                .bind(&image.modality)
                .bind(&image.body_part)
                .bind(&image.study_uid)
                .bind(&image.series_uid)
                .bind(&image.instance_uid)
                .bind(&image.study_date)
                .bind(image.rows)
                .bind(image.columns)
                .bind(&image.transfer_syntax)
                .bind(&image.identity)
                .bind(&image.preview)
                .bind(&image.preview_reason)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if image.preview == "pending" {
                let payload = serde_json::json!({ "record_id": record.id }).to_string();
                sqlx::query(crate::jobs::ENQUEUE.text(dialect))
                    .bind(crate::images::PREVIEW_JOB)
                    .bind(payload)
                    .bind(0i32)
                    .bind((*attempts).max(1))
                    .bind(now)
                    .bind(None::<String>)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
            }
        }
        Ok::<_, sqlx::Error>(Committed { file_id, duplicate: file_id != file.id, replay: None })
    })
}

/// A sealed file's row.
pub async fn file(db: &Db, id: Uuid) -> Result<Option<FileRow>, sqlx::Error> {
    fetch!(db.writer(), FileRow, fetch_optional, &FILE, id)
}

/// A record, deleted or not.
pub async fn record(db: &Db, id: Uuid) -> Result<Option<RecordRow>, sqlx::Error> {
    static GET: Sql = Sql::new(select_records!("WHERE r.id = $1"));
    fetch!(db.writer(), RecordRow, fetch_optional, &GET, id)
}

/// A record that is not deleted, of a patient record that is not deleted either: what anyone
/// may still open (a deleted patient's chart is closed until it is restored).
pub async fn live_record(db: &Db, id: Uuid) -> Result<Option<RecordRow>, sqlx::Error> {
    static GET: Sql = Sql::new(select_records!(
        "JOIN patients p ON p.id = r.patient_id WHERE r.id = $1 AND r.deleted_at IS NULL AND p.deleted_at IS NULL"
    ));
    fetch!(db.writer(), RecordRow, fetch_optional, &GET, id)
}

/// Filters of a patient's record list.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    pub record_type: Option<String>,
    /// Clinical dates from and to (`YYYY-MM-DD`, inclusive).
    pub from: Option<String>,
    pub to: Option<String>,
    /// Text in the title, any case.
    pub text: Option<String>,
    /// Images of this kind (`ct`, …) or DICOM modality (`CT`, …) only.
    pub modality: Option<String>,
    pub include_deleted: bool,
}

/// A page of a patient's records, newest first (ids are time-ordered UUIDv7), before `before`.
pub async fn records(
    db: &Db,
    patient: Uuid,
    f: &RecordFilter,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<RecordRow>, sqlx::Error> {
    static LIST: Sql = Sql::new(select_records!(
        "WHERE r.patient_id = $1 AND ($2 OR r.deleted_at IS NULL)
           AND ($3 = '' OR r.record_type = $3)
           AND ($4 = '' OR r.clinical_date >= $4) AND ($5 = '' OR r.clinical_date <= $5)
           AND ($6 = '' OR r.title_search LIKE $6)
           AND r.id < $7
           AND ($9 = '' OR EXISTS (SELECT 1 FROM record_images i
                                   WHERE i.record_id = r.id AND (i.kind = $9 OR i.modality = $9)))
         ORDER BY r.id DESC LIMIT $8"
    ));
    let text = f.text.as_deref().map(crate::sql::contains_pattern).unwrap_or_default();
    fetch!(
        db.reader(),
        RecordRow,
        fetch_all,
        &LIST,
        patient,
        f.include_deleted,
        f.record_type.clone().unwrap_or_default(),
        f.from.clone().unwrap_or_default(),
        f.to.clone().unwrap_or_default(),
        text,
        before.unwrap_or(Uuid::max()),
        limit,
        f.modality.clone().unwrap_or_default()
    )
}

/// Soft-delete a record; false if it was already deleted or does not exist.
pub async fn delete_record(db: &Db, id: Uuid, actor: Uuid) -> Result<bool, sqlx::Error> {
    static DELETE: Sql =
        Sql::new("UPDATE medical_records SET deleted_at = $2, deleted_by = $3 WHERE id = $1 AND deleted_at IS NULL");
    Ok(exec!(db.writer(), &DELETE, id, now_ms(), actor)? == 1)
}

/// Store a record's OCR text, sealed with its file's data key (OCR writes it, #6).
pub async fn set_ocr_text(db: &Db, record: Uuid, sealed: &str) -> Result<bool, sqlx::Error> {
    static SET: Sql = Sql::new("UPDATE medical_records SET ocr_text = $2 WHERE id = $1");
    Ok(exec!(db.writer(), &SET, record, sealed)? == 1)
}

/// A record's sealed OCR text, if it has one.
pub async fn ocr_text(db: &Db, record: Uuid) -> Result<Option<String>, sqlx::Error> {
    static GET: Sql = Sql::new("SELECT ocr_text FROM medical_records WHERE id = $1");
    Ok(scalar!(db.writer(), Option<String>, fetch_optional, &GET, record)?.flatten())
}

/// A grant of one record to one user.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct GrantRow {
    pub id: Uuid,
    pub record_id: Uuid,
    pub grantee_id: Uuid,
    pub reason: Option<String>,
    pub expires_at: i64,
    pub created_by: Uuid,
    pub created_at: i64,
}

/// A new grant, with the data key wrapped for the grantee.
#[derive(Debug, Clone)]
pub struct NewGrant {
    pub id: Uuid,
    pub record_id: Uuid,
    pub file_id: Uuid,
    pub grantee_id: Uuid,
    pub wrapped_key: String,
    pub reason: Option<String>,
    pub expires_at: i64,
    pub created_by: Uuid,
}

/// Store a grant; `None` if the file was erased meanwhile.
pub async fn insert_grant(db: &Db, g: &NewGrant) -> Result<Option<GrantRow>, sqlx::Error> {
    // Only while the file still has its wrap: a patient erased meanwhile gets no new wrap.
    static INSERT: Sql = Sql::new(
        "INSERT INTO record_grants (id, record_id, file_id, grantee_id, wrapped_key, reason, expires_at, created_by, created_at)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE EXISTS
           (SELECT 1 FROM vault_files WHERE id = $3 AND wrapped_key IS NOT NULL)",
    );
    let now = now_ms();
    let inserted = exec!(
        db.writer(),
        &INSERT,
        g.id,
        g.record_id,
        g.file_id,
        g.grantee_id,
        &g.wrapped_key,
        &g.reason,
        g.expires_at,
        g.created_by,
        now
    )?;
    if inserted == 0 {
        return Ok(None);
    }
    Ok(Some(GrantRow {
        id: g.id,
        record_id: g.record_id,
        grantee_id: g.grantee_id,
        reason: g.reason.clone(),
        expires_at: g.expires_at,
        created_by: g.created_by,
        created_at: now,
    }))
}

/// Remove a grant, and with it the wrapped key; `None` if the record has no such grant.
pub async fn delete_grant(db: &Db, record: Uuid, grant: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    static GRANTEE: Sql = Sql::new("SELECT grantee_id FROM record_grants WHERE id = $1 AND record_id = $2");
    static DELETE: Sql = Sql::new("DELETE FROM record_grants WHERE id = $1 AND record_id = $2");
    let grantee = scalar!(db.writer(), Uuid, fetch_optional, &GRANTEE, grant, record)?;
    if grantee.is_some() && exec!(db.writer(), &DELETE, grant, record)? == 1 {
        return Ok(grantee);
    }
    Ok(None)
}

/// The grants of a record, newest first (expired ones included, for the record's history).
pub async fn grants(db: &Db, record: Uuid) -> Result<Vec<GrantRow>, sqlx::Error> {
    static LIST: Sql = Sql::new(
        "SELECT id, record_id, grantee_id, reason, expires_at, created_by, created_at FROM record_grants
         WHERE record_id = $1 ORDER BY created_at DESC, id",
    );
    fetch!(db.reader(), GrantRow, fetch_all, &LIST, record)
}

/// The wrapped data keys of `user`'s grants on `record` that have not expired at `now`.
pub async fn live_grant_keys(db: &Db, record: Uuid, user: Uuid, now: i64) -> Result<Vec<String>, sqlx::Error> {
    static LIVE: Sql = Sql::new(
        "SELECT wrapped_key FROM record_grants WHERE record_id = $1 AND grantee_id = $2 AND expires_at > $3
         ORDER BY expires_at DESC",
    );
    scalar!(db.writer(), String, fetch_all, &LIVE, record, user, now)
}

/// What [`shred_patient`] destroyed.
#[derive(Debug, Clone, Default)]
pub struct Shredded {
    pub key_deleted: bool,
    pub files: Vec<Uuid>,
    pub grants: u64,
}

/// Crypto-shredding: delete the patient's key, the wraps of every file of theirs (their own and
/// every grant's) and the duplicate tags, in one transaction. The sealed objects stay
/// unreadable; the caller may delete them.
pub async fn shred_patient(db: &Db, patient: Uuid) -> Result<Shredded, sqlx::Error> {
    static FILES: Sql = Sql::new("SELECT id FROM vault_files WHERE patient_id = $1");
    static GRANTS: Sql =
        Sql::new("DELETE FROM record_grants WHERE file_id IN (SELECT id FROM vault_files WHERE patient_id = $1)");
    static FILES_WRAPS: Sql =
        Sql::new("UPDATE vault_files SET wrapped_key = NULL, content_tag = NULL WHERE patient_id = $1");
    static KEY: Sql = Sql::new("DELETE FROM vault_keys WHERE owner_id = $1");
    transaction!(db, |tx, dialect| {
        let files: Vec<Uuid> = sqlx::query_scalar(FILES.text(dialect)).bind(patient).fetch_all(&mut *tx).await?;
        let grants = sqlx::query(GRANTS.text(dialect)).bind(patient).execute(&mut *tx).await?.rows_affected();
        sqlx::query(FILES_WRAPS.text(dialect)).bind(patient).execute(&mut *tx).await?;
        let key = sqlx::query(KEY.text(dialect)).bind(patient).execute(&mut *tx).await?.rows_affected();
        Ok::<_, sqlx::Error>(Shredded { key_deleted: key == 1, files, grants })
    })
}

/// Every file id in the store (the janitor compares them with the stored objects).
pub async fn file_ids(db: &Db) -> Result<Vec<Uuid>, sqlx::Error> {
    static IDS: Sql = Sql::new("SELECT id FROM vault_files ORDER BY id");
    scalar!(db.reader(), Uuid, fetch_all, &IDS)
}
