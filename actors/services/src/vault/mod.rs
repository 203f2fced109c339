//! The document vault (DESIGN §5): sealing uploads as they stream in, opening downloads as they
//! stream out, the keys that wrap each file's data key, grants, crypto-shredding and the
//! janitor ([`FilesActor`]).
//!
//! # Keys
//! - Every file has its own random data key. Its content is sealed in Fernet frames bound to
//!   the file id (`careport-vault`), and the object is stored under that id (`Objects`: a local
//!   directory or S3).
//! - The data key is wrapped with the **patient's key** (the chart's key; a patient's account
//!   shares the chart's id, so it is also the patient's user key), and, for each grant, with
//!   the **grantee's key**. User keys are wrapped with the master key. Nothing is stored or
//!   logged unwrapped.
//! - Care-team access (the assigned doctor, the department's nurses) is a policy decision made
//!   at each request, then served through the chart's wrap. Wrapping every file for every
//!   clinician instead would mean re-wrapping a whole chart at every care-team change, and an
//!   unassigned clinician's wraps would keep opening files until someone cleaned them up.
//!   Anyone outside the care team — an administrator included, for emergency access — reads
//!   only through a grant, whose wrap is theirs, expires, and is deleted when revoked.
//! - Erasing a patient deletes their key and every wrap of their files: nothing can open them
//!   again, in the store or in any backup of it (backups of the key material aside).
//!
//! # Streams
//! Uploads are sealed in batches of about one frame on the blocking pool, and written as they
//! are sealed; downloads read, check and open the same way. Memory per transfer is a few
//! frames, whatever the file's size.

mod download;
pub mod files_actor;
pub mod sniff;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use careport_domain::time::now_ms;
use careport_domain::{Code, Error};
use careport_store::Db;
use careport_store::images::NewImage;
use careport_store::objects::Objects;
use careport_store::vault::{self as stored, FileRow, NewFile, NewGrant, NewRecord, RecordRow};
use careport_vault::{Key, MasterKey, VaultError, frames};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use sha2::Digest;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub use download::Download;
pub use files_actor::FilesActor;

/// `[vault]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// Plaintext bytes per sealed frame, in KiB (a download reads whole frames).
    pub frame_kib: usize,
    /// The largest file accepted, in MiB; a larger upload answers 413 before it is read.
    pub max_upload_mib: u64,
    /// An upload may take this long (the request timeout of other routes does not apply).
    pub upload_timeout_secs: u64,
    /// Signed links live at most this long.
    pub max_link_secs: u64,
    /// Grants last at most this many days.
    pub max_grant_days: u64,
    /// How often the janitor looks for orphans.
    pub janitor_interval_secs: u64,
    /// An object or temporary file no record points at is removed once it is this old (an
    /// upload in progress is younger).
    pub orphan_grace_secs: u64,
}

impl Default for VaultConfig {
    fn default() -> Self {
        Self {
            frame_kib: 1024,
            max_upload_mib: 512,
            upload_timeout_secs: 3600,
            max_link_secs: 86_400,
            max_grant_days: 90,
            janitor_interval_secs: 300,
            orphan_grace_secs: 3600,
        }
    }
}

/// The name of the audit chain's key in `system_keys`.
const AUDIT_CHAIN_KEY: &str = "audit-chain";

/// The vault service, shared by the HTTP handlers and the [`FilesActor`].
#[derive(Clone)]
pub struct Vault {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    objects: Objects,
    master: MasterKey,
    cfg: VaultConfig,
}

/// What an upload is about.
#[derive(Debug, Clone)]
pub struct UploadMeta {
    pub patient: Uuid,
    pub record_type: String,
    pub title: String,
    pub clinical_date: Option<String>,
    /// As the client sent it; sanitised here.
    pub file_name: String,
    pub sensitive: bool,
    pub uploaded_by: Uuid,
}

/// A check of a whole upload before it is committed: medical images, whose DICOM metadata and
/// patient identifiers decide whether the record may exist at all. The plaintext is kept in
/// memory for it, so it has a limit of its own.
pub struct Inspect {
    /// Larger files are refused (413) with this text.
    pub limit: u64,
    pub too_large: String,
    /// Given the sniffed media type and the whole file, on the blocking pool: the image row (and
    /// its preview job's attempts) to commit with the record, or the refusal.
    pub check: InspectFn,
}

/// An [`Inspect`]'s check: the sniffed media type and the whole file in, the image row and its
/// preview job's attempts out.
pub type InspectFn = Box<dyn FnOnce(&'static str, Bytes) -> Result<(NewImage, i32), Error> + Send>;

/// What an upload may carry beyond its metadata and body.
#[derive(Default)]
pub struct UploadWith {
    /// A check of the whole file before it is committed (medical images).
    pub inspect: Option<Inspect>,
    /// The uploader and their idempotency key: an upload of theirs with the same key within
    /// [`UPLOAD_KEY_TTL`] makes nothing new and answers the record the first one made.
    pub once: Option<(Uuid, String)>,
}

/// How long an upload's idempotency key is remembered.
pub const UPLOAD_KEY_TTL: Duration = Duration::from_secs(24 * 3600);

/// A committed upload.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub record: RecordRow,
    /// The patient already had this content: the record points at the stored file.
    pub duplicate: bool,
    /// The same uploader sent this idempotency key before: `record` is the one made then, and
    /// nothing new was kept.
    pub replayed: bool,
}

fn storage_err(e: std::io::Error) -> Error {
    Error::new(Code::ServiceUnavailable).caused_by(anyhow::anyhow!("object storage: {e}")).retry_after(1)
}

fn store_err(e: sqlx::Error) -> Error {
    Error::new(Code::StoreUnavailable).caused_by(e).retry_after(1)
}

fn integrity(e: VaultError) -> Error {
    Error::new(Code::IntegrityError).caused_by(e)
}

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::internal(anyhow::anyhow!("vault task failed: {e}"))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::internal(anyhow::anyhow!("vault task failed: {e}")))
}

/// A batch of an upload being sealed (its two halves) and hashed on the blocking pool.
type InFlight = (JoinHandle<Vec<u8>>, JoinHandle<Vec<u8>>, JoinHandle<sha2::Sha256>);

/// Plaintext gathered before each seal on the blocking pool.
const BATCH: usize = 1 << 20;

impl Vault {
    pub fn new(db: Db, objects: Objects, master: MasterKey, cfg: VaultConfig) -> Self {
        Self { inner: Arc::new(Inner { db, objects, master, cfg }) }
    }

    pub fn config(&self) -> &VaultConfig {
        &self.inner.cfg
    }

    /// `local` or `s3`.
    pub fn backend(&self) -> &'static str {
        self.inner.objects.kind()
    }

    pub fn max_upload_bytes(&self) -> u64 {
        self.inner.cfg.max_upload_mib.saturating_mul(1 << 20)
    }

    fn frame_size(&self) -> usize {
        self.inner.cfg.frame_kib.clamp(1, careport_vault::frames::MAX_FRAME >> 10) << 10
    }

    /// `owner`'s key; with `create`, made (and stored wrapped) on first need.
    async fn user_key(&self, owner: Uuid, create: bool) -> Result<Option<Key>, Error> {
        let db = &self.inner.db;
        let wrapped = match stored::key(db, owner).await.map_err(store_err)? {
            Some(w) => w,
            None if create => {
                let fresh = Key::generate();
                stored::insert_key(db, owner, &self.inner.master.wrap(&fresh)).await.map_err(store_err)?
            }
            None => return Ok(None),
        };
        let key = self.inner.master.unwrap(&wrapped).map_err(|e| {
            Error::internal(anyhow::anyhow!("a stored user key does not open with the master key: {e}"))
        })?;
        Ok(Some(key))
    }

    /// The box that seals small pieces of `owner`'s own data (chat messages and titles) with
    /// their user key; with `create`, the key is made on first need. `Erased` when the key is
    /// gone (and not to be made).
    pub async fn user_box(&self, owner: Uuid, create: bool) -> Result<UserBox, Error> {
        let key = self.user_key(owner, create).await?.ok_or_else(|| Error::new(Code::Erased))?;
        Ok(UserBox { key })
    }

    /// Seal `body` as a new record of `meta.patient`. Nothing is visible until the record is
    /// committed; a refused or broken upload leaves no record and no object (a crash leaves at
    /// most a temporary for the janitor).
    pub async fn upload<S, E>(&self, meta: UploadMeta, body: S) -> Result<Uploaded, Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        self.upload_with(meta, body, UploadWith::default()).await
    }

    /// [`Vault::upload`], the whole file handed to `with.inspect` (when given) after it is sealed
    /// and before anything is committed — its refusal leaves nothing behind, like any other —
    /// and the uploader's idempotency key (`with.once`) committed with the record.
    pub async fn upload_with<S, E>(&self, meta: UploadMeta, mut body: S, with: UploadWith) -> Result<Uploaded, Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let UploadWith { inspect, once } = with;
        let (max, inspect_too_large) = match &inspect {
            Some(i) => (self.max_upload_bytes().min(i.limit), Some(i.too_large.clone())),
            None => (self.max_upload_bytes(), None),
        };
        let too_large = || {
            let message = match &inspect_too_large {
                Some(text) if max < self.max_upload_bytes() => text.clone(),
                _ => format!("The file is larger than the limit of {} MiB.", self.inner.cfg.max_upload_mib),
            };
            Error::with_message(Code::PayloadTooLarge, message)
        };
        let interrupted = |e: E| {
            Error::with_message(Code::BadRequest, "The upload was interrupted.").caused_by(anyhow::anyhow!("{e}"))
        };
        // Decide what it is before anything is stored.
        let mut pending: Vec<u8> = Vec::new();
        let mut ended = false;
        while pending.len() < sniff::SNIFF_LEN {
            match body.next().await {
                Some(Ok(b)) => pending.extend_from_slice(&b),
                Some(Err(e)) => return Err(interrupted(e)),
                None => {
                    ended = true;
                    break;
                }
            }
            if pending.len() as u64 > max {
                return Err(too_large());
            }
        }
        if pending.is_empty() {
            return Err(Error::with_message(Code::InvalidValue, "The file is empty."));
        }
        let head = &pending[..pending.len().min(sniff::SNIFF_LEN)];
        let media_type = sniff::media_type(head, ended).ok_or_else(|| {
            Error::with_message(
                Code::UnsupportedMediaType,
                "Only PDF, PNG, JPEG, TIFF, DICOM and plain text files are accepted.",
            )
        })?;

        let file_id = Uuid::new_v4();
        let data_key = Key::generate();
        // The plaintext, kept for the inspection (bounded by its limit).
        let mut whole: Option<Vec<u8>> = inspect.as_ref().map(|_| Vec::new());
        let mut writer = self.inner.objects.writer(file_id).await.map_err(storage_err)?;
        let sealed = async {
            let frame = self.frame_size();
            let id = *file_id.as_bytes();
            let mut head = Vec::with_capacity(32);
            frames::header(id, frame, &mut head);
            writer.write_owned(head).await.map_err(storage_err)?;
            let mut hasher = Some(sha2::Sha256::new());
            let mut size = pending.len() as u64;
            let mut index = 0u64;
            // One batch is sealed — its two halves side by side, frames being independent — and
            // hashed while the next one arrives.
            let mut inflight: Option<InFlight> = None;
            let want = (2 * BATCH).max(2 * frame + 1);
            loop {
                while !ended && pending.len() < want {
                    match body.next().await {
                        Some(Ok(b)) => {
                            size += b.len() as u64;
                            if size > max {
                                return Err(too_large());
                            }
                            pending.extend_from_slice(&b);
                        }
                        Some(Err(e)) => return Err(interrupted(e)),
                        None => ended = true,
                    }
                }
                if let Some((first, second, hashed)) = inflight.take() {
                    let (first, second) = (first.await.map_err(join_err)?, second.await.map_err(join_err)?);
                    hasher = Some(hashed.await.map_err(join_err)?);
                    writer.write_owned(first).await.map_err(storage_err)?;
                    writer.write_owned(second).await.map_err(storage_err)?;
                }
                // Whole frames, keeping at least one byte back until the end: only the file's
                // final frame may be short, and it is marked as the last.
                let take = if ended { pending.len() } else { (pending.len() - 1) / frame * frame };
                let rest = pending.split_off(take);
                let batch = Bytes::from(std::mem::replace(&mut pending, rest));
                if let Some(whole) = whole.as_mut() {
                    whole.extend_from_slice(&batch);
                }
                let half = take / frame / 2 * frame;
                let (a, b) = (batch.slice(..half), batch.slice(half..));
                let (key_a, key_b) = (data_key.clone(), data_key.clone());
                let (index_a, index_b, last) = (index, index + (half / frame) as u64, ended);
                let seal = |key: Key, part: Bytes, at: u64, last: bool| {
                    tokio::task::spawn_blocking(move || {
                        let mut out = Vec::with_capacity(part.len() + part.len() / 8 + 256);
                        frames::seal_frames(&key, id, frame, at, &part, last, &mut out);
                        out
                    })
                };
                let first = seal(key_a, a, index_a, false);
                let second = seal(key_b, b, index_b, last);
                let mut h =
                    hasher.take().ok_or_else(|| Error::internal(anyhow::anyhow!("the hasher was not handed back")))?;
                let hashed = tokio::task::spawn_blocking(move || {
                    h.update(&batch);
                    h
                });
                index += (take / frame) as u64;
                if last {
                    let (first, second) = (first.await.map_err(join_err)?, second.await.map_err(join_err)?);
                    let digest: [u8; 32] = hashed.await.map_err(join_err)?.finalize().into();
                    writer.write_owned(first).await.map_err(storage_err)?;
                    writer.write_owned(second).await.map_err(storage_err)?;
                    return Ok((size, digest));
                }
                inflight = Some((first, second, hashed));
            }
        }
        .await;
        let inspected = match (sealed, inspect) {
            (Ok(v), Some(inspect)) => {
                let plain = Bytes::from(whole.take().unwrap_or_default());
                match blocking(move || (inspect.check)(media_type, plain)).await {
                    Ok(Ok(image)) => Ok((v, Some(image))),
                    Ok(Err(e)) | Err(e) => Err(e),
                }
            }
            (Ok(v), None) => Ok((v, None)),
            (Err(e), _) => Err(e),
        };
        let ((size, digest), image) = match inspected {
            Ok(v) => v,
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(error = %abort, "could not remove an aborted upload; the janitor will");
                }
                return Err(e);
            }
        };
        writer.commit().await.map_err(storage_err)?;

        let committed = async {
            let patient_key = self.user_key(meta.patient, true).await?.ok_or_else(|| Error::new(Code::Internal))?;
            let file = NewFile {
                id: file_id,
                patient_id: meta.patient,
                content_tag: patient_key.tag(&digest),
                wrapped_key: patient_key.wrap(&data_key),
                size: size as i64,
                frame_size: self.frame_size() as i32,
                media_type: media_type.to_owned(),
                backend: self.backend(),
            };
            let record = NewRecord {
                id: Uuid::now_v7(),
                patient_id: meta.patient,
                record_type: meta.record_type.clone(),
                title: meta.title.clone(),
                // An image without a clinical date of its own is dated by its study (one not in
                // the future).
                clinical_date: meta.clinical_date.clone().or_else(|| {
                    let today = jiff::Zoned::now().date().to_string();
                    image.as_ref().and_then(|(i, _)| i.study_date.clone()).filter(|d| *d <= today)
                }),
                once: once.map(|(user, key)| (user, key, now_ms() - UPLOAD_KEY_TTL.as_millis() as i64)),
                file_name: sniff::sanitize_name(&meta.file_name),
                sensitive: meta.sensitive,
                uploaded_by: meta.uploaded_by,
                image,
            };
            let done = match stored::commit_upload(&self.inner.db, &file, &record).await {
                Ok(done) => done,
                Err(sqlx::Error::RowNotFound) => {
                    // Refused before anything was written: the object is certainly unused.
                    self.delete_object(file_id).await;
                    return Err(Error::with_message(
                        Code::Conflict,
                        "The patient's record was deleted during the upload; nothing was kept.",
                    ));
                }
                // The commit may have reached the store even though its answer did not: the
                // object is left to the janitor, which deletes it only if no row names it.
                Err(e) => return Err(store_err(e)),
            };
            Ok::<_, Error>((record.id, done))
        }
        .await;
        let (record_id, done) = committed?;
        if done.duplicate {
            self.delete_object(file_id).await;
        }
        let record_id = done.replay.unwrap_or(record_id);
        let record = stored::record(&self.inner.db, record_id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| Error::internal(anyhow::anyhow!("a committed record is missing")))?;
        Ok(Uploaded { record, duplicate: done.duplicate, replayed: done.replay.is_some() })
    }

    async fn delete_object(&self, id: Uuid) {
        if let Err(e) = self.inner.objects.delete(id).await {
            tracing::warn!(error = %e, object = %id, "could not delete an unused object; the janitor will");
        }
    }

    /// The data key of `record` for a reader the policies let read the chart.
    pub async fn open_as_care_team(&self, record: &RecordRow) -> Result<Download, Error> {
        let file = self.file(record).await?;
        let wrapped = file.wrapped_key.as_deref().ok_or_else(|| Error::new(Code::Erased))?;
        let patient_key = self.user_key(file.patient_id, false).await?.ok_or_else(|| Error::new(Code::Erased))?;
        let key = patient_key.unwrap(wrapped).map_err(integrity)?;
        Ok(Download { vault: self.clone(), file, key })
    }

    /// The data key of `record` through one of `reader`'s live grants, if they have one.
    pub async fn open_by_grant(&self, record: &RecordRow, reader: Uuid) -> Result<Option<Download>, Error> {
        let wraps = stored::live_grant_keys(&self.inner.db, record.id, reader, now_ms()).await.map_err(store_err)?;
        if wraps.is_empty() {
            return Ok(None);
        }
        let Some(user_key) = self.user_key(reader, false).await? else { return Ok(None) };
        let file = self.file(record).await?;
        for wrapped in wraps {
            if let Ok(key) = user_key.unwrap(&wrapped) {
                return Ok(Some(Download { vault: self.clone(), file, key }));
            }
        }
        Ok(None)
    }

    /// Keep `text` (the record's OCR text) sealed with the record's data key, so that it is
    /// read, shared and shredded with the file.
    pub async fn store_ocr_text(&self, record: &RecordRow, text: &str) -> Result<(), Error> {
        let data = self.open_as_care_team(record).await?;
        let sealed = data.key.seal(text.as_bytes());
        stored::set_ocr_text(&self.inner.db, record.id, &sealed).await.map_err(store_err)?;
        Ok(())
    }

    async fn file(&self, record: &RecordRow) -> Result<FileRow, Error> {
        stored::file(&self.inner.db, record.file_id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| Error::internal(anyhow::anyhow!("a record's file row is missing")))
    }

    /// Grant `grantee` read access to `record` until `expires_at` (ms): the data key is wrapped
    /// with the grantee's key (made on first need).
    pub async fn grant(
        &self,
        record: &RecordRow,
        grantee: Uuid,
        expires_at: i64,
        reason: Option<String>,
        created_by: Uuid,
    ) -> Result<stored::GrantRow, Error> {
        let data = self.open_as_care_team(record).await?;
        let grantee_key = self.user_key(grantee, true).await?.ok_or_else(|| Error::new(Code::Internal))?;
        let grant = NewGrant {
            id: Uuid::now_v7(),
            record_id: record.id,
            file_id: record.file_id,
            grantee_id: grantee,
            wrapped_key: grantee_key.wrap(&data.key),
            reason,
            expires_at,
            created_by,
        };
        stored::insert_grant(&self.inner.db, &grant).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::Erased))
    }

    /// Crypto-shredding: the patient's key and every wrap of their files are deleted in one
    /// transaction, then their objects (best effort: an object left behind is unreadable, and
    /// the janitor does not need it to be gone).
    pub async fn erase_patient(&self, patient: Uuid) -> Result<stored::Shredded, Error> {
        let shredded = stored::shred_patient(&self.inner.db, patient).await.map_err(store_err)?;
        for id in &shredded.files {
            self.delete_object(*id).await;
        }
        Ok(shredded)
    }

    /// One janitor pass: temporaries of interrupted uploads, and committed objects that no file
    /// row names (a crash between storing an object and committing its record), once older
    /// than the grace period. Returns (temporaries, orphans) removed.
    pub async fn sweep(&self) -> Result<(usize, usize), Error> {
        let grace = Duration::from_secs(self.inner.cfg.orphan_grace_secs);
        let temporaries = self.inner.objects.sweep(grace).await.map_err(storage_err)?;
        stored::purge_upload_keys(&self.inner.db, now_ms() - UPLOAD_KEY_TTL.as_millis() as i64)
            .await
            .map_err(store_err)?;
        // An S3 object's time may be when its multipart upload began, not when it completed:
        // an orphan there must also be older than the longest an upload may take.
        let grace = match self.inner.objects.kind() {
            "s3" => grace.max(Duration::from_secs(self.inner.cfg.upload_timeout_secs + 60)),
            _ => grace,
        };
        let listed = self.inner.objects.list().await.map_err(storage_err)?;
        let known: std::collections::HashSet<Uuid> =
            stored::file_ids(&self.inner.db).await.map_err(store_err)?.into_iter().collect();
        let cutoff = std::time::SystemTime::now() - grace;
        let mut orphans = 0;
        for (id, modified) in listed {
            // Files whose patient was erased keep their row; their object may go too.
            if !known.contains(&id) && modified <= cutoff && self.inner.objects.delete(id).await.map_err(storage_err)? {
                orphans += 1;
            }
        }
        Ok((temporaries, orphans))
    }
}

/// The audit chain's key: kept in `system_keys`, wrapped by the master key. A store made before
/// the vault gets the key the chain always had (derived from the master key's text), stored
/// now, so the existing chain still verifies and later master-key rotations keep it.
pub async fn chain_key(
    db: &Db,
    master: &MasterKey,
    master_text: &str,
) -> Result<careport_store::audit::ChainKey, Error> {
    let wrapped = match stored::system_key(db, AUDIT_CHAIN_KEY).await.map_err(store_err)? {
        Some(w) => w,
        None => {
            let derived = careport_store::audit::ChainKey::from_master_key(master_text);
            let key = Key::from_raw(*derived.bytes());
            stored::insert_system_key(db, AUDIT_CHAIN_KEY, &master.wrap(&key)).await.map_err(store_err)?
        }
    };
    let key = master
        .unwrap(&wrapped)
        .map_err(|e| Error::internal(anyhow::anyhow!("the audit chain key does not open with the master key: {e}")))?;
    Ok(careport_store::audit::ChainKey::from_bytes(key.raw()))
}

/// Re-wrap every stored key (and re-seal every MFA secret) from `old` to `new`, in one
/// transaction: all or nothing. Files are not touched.
pub async fn rotate_master(db: &Db, old: &MasterKey, new: &MasterKey) -> Result<stored::Rotated, Error> {
    stored::rotate_master(db, |token| old.reseal(token, new)).await.map_err(|e| match e {
        stored::RotateError::Refused(what, _) => Error::with_message(
            Code::Conflict,
            format!("{what} does not open with the current master key: nothing was changed."),
        ),
        stored::RotateError::Store(e) => store_err(e),
    })
}

/// Seals and opens one user's small data with their key. `context` (the row a value belongs
/// to) is sealed with it and must be given again to open it, so a sealed value copied into
/// another row does not open there.
pub struct UserBox {
    key: Key,
}

impl UserBox {
    pub fn seal(&self, context: &str, data: &[u8]) -> String {
        let mut framed = Vec::with_capacity(context.len() + 1 + data.len());
        framed.extend_from_slice(context.as_bytes());
        framed.push(0);
        framed.extend_from_slice(data);
        self.key.seal(&framed)
    }

    /// `integrity_error` when it does not open with this key or belongs to another context.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, Error> {
        let framed = self.key.open(sealed).map_err(|_| Error::new(Code::IntegrityError))?;
        let n = context.len();
        if framed.len() <= n || &framed[..n] != context.as_bytes() || framed[n] != 0 {
            return Err(Error::new(Code::IntegrityError));
        }
        Ok(framed[n + 1..].to_vec())
    }
}
