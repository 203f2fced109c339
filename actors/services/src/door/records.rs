//! Medical records: uploading a file into a patient's chart, the chart's list, one record's
//! metadata, its content (download) and soft delete.
//!
//! These operations own everything about a record but the wire: which record types exist, the
//! checks of an upload's metadata, whether the chart is open, who opens a file through which
//! wrap of its key, and the audit event of every upload (refused ones too), list, read and
//! download. Adapters keep only their transport: the HTTP one parses multipart forms and
//! `Range` headers and sets the response headers; it hands the body to [`PendingUpload::store`]
//! as a stream and streams [`Transfer::body`] back, so neither side holds a whole file.
//!
//! A download is two steps so that an adapter can answer 416 from the file's size before
//! anything is checked or audited: [`Records::content`] opens the file (deciding, and auditing
//! an erased file), then [`Content::send`] checks the frames of the range before the first byte
//! leaves, writes the success event and hands back the stream.

use std::pin::Pin;

use bytes::Bytes;
use careport_domain::{Code, Error, Role};
use careport_store::patients;
use careport_store::vault::{self as stored, RecordFilter, RecordRow};
use futures_util::Stream;
use uuid::Uuid;

use std::sync::Arc;

use super::images;
use super::page::{self, Page, PageRequest};
use super::patients::{invalid, visible};
use super::store_err;
use super::views::{Image, Record};
use crate::access::{
    DeleteDocument, Operation, OverrideImageIdentity, ReadDocument, ReadPatient, UploadToPatient, scope,
};
use crate::audit::{EventExt, outcome};
use crate::imaging::dicom::ImageKind;
use crate::vault::{Download, Inspect, UPLOAD_KEY_TTL, UploadMeta, UploadWith};
use crate::{Caller, ClientInfo, Pass, Services};

/// The medical record operations.
pub struct Records<'a>(pub(crate) &'a Services);

/// An upload's metadata, as the client sent it (checked by [`PendingUpload::store`]).
#[derive(Debug, Clone, Default)]
pub struct UploadFields {
    /// A record type id (`GET /api/v1/record-types`).
    pub record_type: Option<String>,
    /// 1 to 200 characters.
    pub title: Option<String>,
    /// The clinical date, `YYYY-MM-DD`, not in the future.
    pub date: Option<String>,
    /// The file's name, shown when it is downloaded; sanitised by the vault.
    pub file_name: Option<String>,
    /// Hide the record from the department's nurses.
    pub sensitive: Option<bool>,
    /// A picture's kind of image (`medical-images` records; a DICOM file's modality decides its
    /// own): `xray`, `mri`, `ct`, `ultrasound`, `mammography`, `pet` or `other` (the default).
    pub image_kind: Option<String>,
    /// Accept a DICOM file whose patient identifiers do not match the chart (administrators).
    pub override_identity: Option<bool>,
}

/// What a chart's list asks for.
#[derive(Debug, Clone, Default)]
pub struct RecordQuery {
    /// Only this record type.
    pub record_type: Option<String>,
    /// Clinical dates from and to (inclusive, `YYYY-MM-DD`).
    pub from: Option<String>,
    pub to: Option<String>,
    /// Text in the title, any case.
    pub q: Option<String>,
    /// Images of this kind or DICOM modality (`door::images` checks and normalises it).
    pub modality: Option<String>,
    pub page: PageRequest,
}

/// How the reader's token stands to its maker, for the download's audit event: a reader may
/// hand a link or a narrowed token to someone else, so the trail says which one opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// The reader's own login token.
    Own,
    /// A signed link (`POST /records/{id}/links`), whether it came as `?link=` or as a bearer
    /// token: an attenuated token whose session is not a login session (a link's session is
    /// made with the link and never stored).
    SignedLink,
    /// A login token narrowed by attenuation (`POST /auth/tokens/attenuate`): its session is a
    /// login session.
    NarrowedToken,
}

/// A declared body may exceed the file limit by this much: a form's framing around the file.
/// The file itself is measured as it streams.
const FRAMING_SLACK: u64 = 64 << 10;

/// Pages of a chart's list read at most this many rounds of rows the caller may not open before
/// handing back a short page with a cursor.
const LIST_ROUNDS: usize = 20;

/// The record `id` if it and its patient's record are not deleted (else 404 to everyone).
pub(crate) async fn live_record(services: &Services, id: Uuid) -> Result<RecordRow, Error> {
    stored::live_record(&services.db, id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))
}

/// Open `r` for `caller`: through the chart's wrap when the policies let them read it as the
/// patient or the care team, otherwise through a live grant of theirs. Administrators always
/// go through a grant: emergency access must leave a grant (with its reason) behind.
pub(crate) async fn open_for(services: &Services, caller: &Caller, r: &RecordRow) -> Result<Download, Error> {
    let care_team = services.access.document_facts(caller, r, false).await?;
    if caller.role() != Role::Admin
        && services.access.permits(
            caller,
            ReadDocument::OPERATION,
            ReadDocument::KIND,
            &r.id.to_string(),
            &care_team,
        )?
    {
        return services.vault.open_as_care_team(r).await;
    }
    services.vault.open_by_grant(r, caller.user()).await?.ok_or_else(|| Error::new(Code::NotFound))
}

/// Whether `caller` holds a signed link, a narrowed login token or their own. Only an
/// attenuated token costs a look-up: the sessions table holds login sessions only, and never
/// deletes a row, so an attenuated token whose session is not there is a link.
async fn presented(services: &Services, caller: &Caller) -> Result<Presented, Error> {
    if !caller.token.is_attenuated() {
        return Ok(Presented::Own);
    }
    let login = careport_store::sessions::get(&services.db, caller.session()).await.map_err(store_err)?;
    Ok(if login.is_some() { Presented::NarrowedToken } else { Presented::SignedLink })
}

/// A `YYYY-MM-DD` date that is not in the future.
fn clinical_date(s: &str) -> Result<String, Error> {
    let bad = || invalid("date must be a date written YYYY-MM-DD, not in the future.");
    let d: jiff::civil::Date = s.parse().map_err(|_| bad())?;
    if s.len() != 10 || d > jiff::Zoned::now().date() || d.year() < 1880 {
        return Err(bad());
    }
    Ok(d.to_string())
}

/// Check an upload's metadata against the clinic's record types and the field rules.
async fn check_meta(services: &Services, f: UploadFields, patient: Uuid, by: Uuid) -> Result<UploadMeta, Error> {
    let record_type = f.record_type.as_deref().map(str::trim).filter(|s| !s.is_empty()).ok_or_else(|| {
        invalid("record_type is required (GET /api/v1/record-types lists them; /match finds one from free text).")
    })?;
    let types = careport_store::record_types::all(&services.db).await.map_err(store_err)?;
    if !types.iter().any(|t| t.id == record_type) {
        return Err(invalid("record_type names no record type (GET /api/v1/record-types lists them)."));
    }
    let title = f.title.as_deref().map(str::trim).unwrap_or_default();
    if title.is_empty() || title.chars().count() > 200 || title.chars().any(char::is_control) {
        return Err(invalid("title is required: 1 to 200 characters, no control characters."));
    }
    let clinical_date = match f.date.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(clinical_date(s)?),
    };
    Ok(UploadMeta {
        patient,
        record_type: record_type.to_owned(),
        title: title.to_owned(),
        clinical_date,
        file_name: f.file_name.unwrap_or_default(),
        sensitive: f.sensitive.unwrap_or(false),
        uploaded_by: by,
    })
}

/// The check of an image upload's whole file (`medical-images` records), decided before the
/// body is read: the picture's kind, and whether the caller may override a patient mismatch
/// (the policies' `override` on `image_identity`; refused with 403, audited).
async fn image_check(
    services: &Services,
    caller: &Caller,
    patient: Uuid,
    f: &UploadFields,
    outcome: images::Outcome,
) -> Result<Option<Inspect>, Error> {
    let is_image = f.record_type.as_deref().map(str::trim) == Some(images::IMAGE_RECORD_TYPE);
    if !is_image {
        if f.image_kind.is_some() || f.override_identity.is_some() {
            return Err(invalid("image_kind and override_identity are for records of type medical-images."));
        }
        return Ok(None);
    }
    let kind = match f.image_kind.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
        None => ImageKind::Other,
        Some(k) => k
            .parse::<ImageKind>()
            .map_err(|_| invalid("image_kind is one of xray, mri, ct, ultrasound, mammography, pet, other."))?,
    };
    let override_identity = f.override_identity.unwrap_or(false);
    if override_identity {
        services.access.pass::<OverrideImageIdentity>(caller.clone(), None).await?;
    }
    let chart =
        patients::get(&services.db, patient).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
    Ok(Some(images::inspector(&chart, kind, override_identity, outcome)))
}

/// A list filter's date (`YYYY-MM-DD`), normalised.
fn filter_date(field: &str, v: Option<&str>) -> Result<Option<String>, Error> {
    v.map(|s| {
        s.parse::<jiff::civil::Date>()
            .map(|d| d.to_string())
            .map_err(|_| Error::with_message(Code::InvalidQuery, format!("{field} must be YYYY-MM-DD.")))
    })
    .transpose()
}

impl<'a> Records<'a> {
    /// The most an upload's body may hold, a form's framing included: what an adapter reads of
    /// a body it does not keep (a replayed upload's) before it lets the connection go.
    pub fn body_limit(&self) -> u64 {
        self.0.vault.max_upload_bytes().saturating_add(FRAMING_SLACK)
    }

    /// Begin an upload into the pass's chart, before its body is read: the chart must be open
    /// (404 if the caller does not see it, 409 if it is deleted), and a declared length beyond
    /// the limit (with room for a form's framing) is refused unread (413, audited).
    pub async fn start_upload(
        &self,
        pass: Pass<UploadToPatient>,
        declared_len: Option<u64>,
    ) -> Result<PendingUpload<'a>, Error> {
        let p = visible(self.0, pass.caller(), pass.id()).await?;
        if p.deleted_at.is_some() {
            return Err(Error::with_message(Code::Conflict, "The patient's record is deleted; restore it first."));
        }
        let pending = PendingUpload { services: self.0, pass, once: None };
        let max = self.0.vault.max_upload_bytes();
        if declared_len.is_some_and(|n| n > max.saturating_add(FRAMING_SLACK)) {
            let too_large = Error::with_message(
                Code::PayloadTooLarge,
                format!("The file is larger than the limit of {} MiB.", self.0.vault.config().max_upload_mib),
            );
            return Err(pending.refuse(too_large).await);
        }
        Ok(pending)
    }

    /// The records of the chart that the caller may open, newest first, one audit event naming
    /// the patient and the count: exactly the records `GET /records/{id}` opens for them (the
    /// visibility property test holds the two together). A nurse does not see records marked
    /// sensitive; an administrator sees those granted to them; someone who may not read the
    /// chart but holds grants on some of its records sees those records, and no one else learns
    /// that the chart exists (404, audited as a refused read of the patient). A deleted
    /// patient's records do not open, so their chart lists none.
    pub async fn list(&self, caller: Caller, patient: Uuid, q: RecordQuery) -> Result<Page<Record>, Error> {
        let caller = &caller;
        let record = patients::get(&self.0.db, patient).await.map_err(store_err)?;
        let chart = self.0.access.chart_facts(patient).await?;
        let reads_chart = record.is_some()
            && self.0.access.permits(
                caller,
                ReadPatient::OPERATION,
                ReadPatient::KIND,
                &patient.to_string(),
                &chart,
            )?;
        let deleted = record.as_ref().is_some_and(|p| p.deleted_at.is_some());
        if !reads_chart || (deleted && !scope::sees_deleted(caller)) {
            // Only records granted to the caller can still show; with none, the chart is not
            // theirs to know of.
            if deleted || !self.any_readable(caller, patient, &chart).await? {
                self.0.access.pass::<ReadPatient>(caller.clone(), Some(patient)).await?;
                return Err(Error::new(Code::NotFound));
            }
        }
        let limit = q.page.limit()?;
        let mut before = page::decode_uuid(q.page.cursor.as_deref())?;
        let filter = RecordFilter {
            record_type: q.record_type,
            from: filter_date("from", q.from.as_deref())?,
            to: filter_date("to", q.to.as_deref())?,
            text: q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(|t| t.chars().take(100).collect()),
            modality: q.modality,
            include_deleted: false,
        };
        // The page holds only what the caller may open: each row is asked of the policies (a
        // nurse's sensitive rows, an administrator's ungranted ones drop out), reading on until
        // the page is full or the chart ends. The chart's care-team facts are loaded once.
        let mut items: Vec<RecordRow> = Vec::new();
        if deleted {
            return self.listed(caller, patient, items, None).await;
        }
        let mut next = None;
        for round in 0..LIST_ROUNDS {
            let rows = stored::records(&self.0.db, patient, &filter, before, limit + 1).await.map_err(store_err)?;
            let more = rows.len() as i64 > limit;
            let mut full = false;
            for r in rows.into_iter().take(limit as usize) {
                before = Some(r.id);
                if self.opens(caller, &r, &chart).await? {
                    items.push(r);
                    if items.len() as i64 == limit {
                        full = true;
                        break;
                    }
                }
            }
            if full {
                next = items.last().map(|r| r.id);
                break;
            }
            if !more {
                break;
            }
            if round == LIST_ROUNDS - 1 {
                // A short page, but the chart goes on: the client continues from here.
                next = before;
            }
        }
        self.listed(caller, patient, items, next).await
    }

    /// Audit a chart list (fail closed) and shape its page.
    async fn listed(
        &self,
        caller: &Caller,
        patient: Uuid,
        items: Vec<RecordRow>,
        next: Option<Uuid>,
    ) -> Result<Page<Record>, Error> {
        self.0
            .audit
            .one(
                caller
                    .ctx
                    .event("record.list", outcome::SUCCESS)
                    .resource("patient", patient)
                    .patient(patient)
                    .detail(format!("{} records", items.len())),
            )
            .await?;
        let mut items: Vec<Record> = items.iter().map(Record::from).collect();
        super::images::attach(self.0, patient, &mut items).await?;
        Ok(Page { items, next_cursor: next.map(|id| page::encode(&id.to_string())) })
    }

    /// Whether `r` opens for `caller` (the single read's decision, asked without auditing), with
    /// its chart's care-team facts already loaded.
    async fn opens(&self, caller: &Caller, r: &RecordRow, chart: &[careport_policy::StoreFact]) -> Result<bool, Error> {
        let facts = self.0.access.record_facts(caller, r, chart, true).await?;
        self.0.access.permits(caller, ReadDocument::OPERATION, ReadDocument::KIND, &r.id.to_string(), &facts)
    }

    /// Whether any live record of the chart opens for `caller` (through a grant, when they may
    /// not read the chart itself).
    async fn any_readable(
        &self,
        caller: &Caller,
        patient: Uuid,
        chart: &[careport_policy::StoreFact],
    ) -> Result<bool, Error> {
        let filter = RecordFilter::default();
        let mut before = None;
        loop {
            let rows = stored::records(&self.0.db, patient, &filter, before, 200).await.map_err(store_err)?;
            let more = rows.len() == 200;
            for r in &rows {
                before = Some(r.id);
                if self.opens(caller, r, chart).await? {
                    return Ok(true);
                }
            }
            if !more {
                return Ok(false);
            }
        }
    }

    /// One record's metadata.
    pub async fn read(&self, pass: Pass<ReadDocument>) -> Result<Record, Error> {
        let (caller, id) = (pass.caller(), pass.id());
        let r = live_record(self.0, id).await?;
        // Fail closed: no audit event, no data.
        self.0
            .audit
            .one(caller.ctx.event("record.view", outcome::SUCCESS).resource("document", id).patient(r.patient_id))
            .await?;
        let mut record = Record::from(&r);
        record.image = super::images::image_of(self.0, &record).await?.as_ref().map(Image::from);
        Ok(record)
    }

    /// Soft-delete a record (administrators, and its uploader): it leaves the chart and its
    /// content can no longer be read; the sealed file stays for the retention period.
    pub async fn delete(&self, pass: Pass<DeleteDocument>) -> Result<(), Error> {
        let (caller, id) = (pass.caller(), pass.id());
        let r = live_record(self.0, id).await?;
        if !stored::delete_record(&self.0.db, id, caller.user()).await.map_err(store_err)? {
            return Err(Error::new(Code::NotFound));
        }
        super::knowledge::forget_record(self.0, id).await;
        self.0
            .audit
            .one(caller.ctx.event("record.delete", outcome::SUCCESS).resource("document", id).patient(r.patient_id))
            .await
    }

    /// The pass a signed link presented as `?link=` gives to read record `id`: the link is
    /// authenticated like any token, then [`crate::access::Access::link_pass`] decides (a link
    /// is narrowed by construction, its maker unchanged, the policies still allow the maker to
    /// read the record). A refused link is audited as a denied download, without the token.
    pub async fn link_pass(&self, link: &str, client: &ClientInfo, id: Uuid) -> Result<Pass<ReadDocument>, Error> {
        let decided = match self.0.identity.authenticate(link) {
            Ok(token) => self.0.access.link_pass(token, client, id).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &decided {
            // The denial's own audit cannot fail the answer: the link is refused either way.
            self.0
                .audit
                .best_effort(
                    client
                        .context()
                        .event("record.download", outcome::DENIED)
                        .resource("document", id)
                        .detail(format!("signed link refused: {}", e.code().as_str())),
                )
                .await;
        }
        decided
    }

    /// Open a record's content for the pass holder (the record and its chart live, a key that
    /// opens it: 404 otherwise, 410 `erased` — audited — once its patient's keys were
    /// destroyed). Nothing is checked or sent yet: see [`Content::send`].
    pub async fn content(&self, pass: Pass<ReadDocument>) -> Result<Content<'a>, Error> {
        let r = live_record(self.0, pass.id()).await?;
        let caller = pass.caller();
        let download = match open_for(self.0, caller, &r).await {
            Ok(d) => d,
            Err(e) if e.code() == Code::Erased => {
                self.0.audit.one(download_event(caller, &r, outcome::FAILURE, "erased")).await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let presented = presented(self.0, caller).await?;
        Ok(Content { services: self.0, record: Record::from(&r), row: r, pass, download, presented })
    }
}

/// A download's audit event.
fn download_event(
    caller: &Caller,
    r: &RecordRow,
    result: &str,
    detail: impl Into<String>,
) -> careport_store::audit::NewEvent {
    caller.ctx.event("record.download", result).resource("document", r.id).patient(r.patient_id).detail(detail)
}

/// An upload whose chart was found open, waiting for its metadata and body. Taken by value by
/// [`PendingUpload::store`] and [`PendingUpload::refuse`], so that each upload writes exactly
/// one audit event: its success or its refusal.
pub struct PendingUpload<'a> {
    services: &'a Services,
    pass: Pass<UploadToPatient>,
    /// The caller's idempotency key, once [`PendingUpload::once`] found it unused.
    once: Option<String>,
}

/// What [`PendingUpload::once`] found.
pub enum Once<'a> {
    /// No upload of the caller's had this key: go on with this one.
    Fresh(PendingUpload<'a>),
    /// The caller made this record with this key within a day: it is the answer again, and the
    /// body need not be read.
    Replayed(Box<Record>),
}

impl<'a> PendingUpload<'a> {
    /// Give the upload the caller's idempotency key (the `Idempotency-Key` header: 1 to 200
    /// visible ASCII characters). A client that lost the answer to an upload sends it again with
    /// the same key and gets the record the first one made — audited as a replay — instead of a
    /// second record; the same key for another chart is 409. Checked again in the upload's own
    /// transaction, so two sends racing each other still make one record.
    pub async fn once(mut self, key: Option<String>) -> Result<Once<'a>, Error> {
        let Some(key) = key else { return Ok(Once::Fresh(self)) };
        if key.is_empty() || key.len() > 200 || !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(self.refuse(invalid("Idempotency-Key must be 1 to 200 visible ASCII characters.")).await);
        }
        let since = careport_domain::time::now_ms() - UPLOAD_KEY_TTL.as_millis() as i64;
        let user = self.pass.caller().user();
        let earlier = match stored::upload_key(&self.services.db, user, &key, since).await {
            Ok(earlier) => earlier,
            Err(e) => return Err(self.refuse(store_err(e)).await),
        };
        match earlier {
            None => {
                self.once = Some(key);
                Ok(Once::Fresh(self))
            }
            Some(id) => match self.replay(id).await {
                Ok(record) => Ok(Once::Replayed(Box::new(record))),
                Err(e) => Err(self.refuse(e).await),
            },
        }
    }

    /// The record an earlier upload with the same key made, audited as a replay.
    async fn replay(&self, id: Uuid) -> Result<Record, Error> {
        let services = self.services;
        let (caller, patient) = (self.pass.caller(), self.pass.id());
        let r = stored::record(&services.db, id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
        if r.patient_id != patient {
            return Err(Error::with_message(
                Code::Conflict,
                "This Idempotency-Key was used for an upload into another chart; use a new key for a new upload.",
            ));
        }
        if r.deleted_at.is_some() {
            return Err(Error::with_message(
                Code::Conflict,
                "The record this Idempotency-Key made was deleted since; use a new key to upload again.",
            ));
        }
        let event = caller
            .ctx
            .event("record.upload", outcome::SUCCESS)
            .resource("document", r.id)
            .patient(patient)
            .detail("replayed: the same Idempotency-Key");
        services.audit.one(event).await?;
        let mut record = Record::from(&r);
        record.image = images::image_of(services, &record).await?.as_ref().map(Image::from);
        Ok(record)
    }

    /// Check the metadata, seal the body as it streams (415 from its first bytes if it is not
    /// an accepted type, 413 past the limit) and commit the record. A refusal is audited with
    /// its code; a success with the size and type.
    pub async fn store<S, E>(self, fields: UploadFields, body: S) -> Result<Record, Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let services = self.services;
        let (caller, patient) = (self.pass.caller(), self.pass.id());
        let identity: images::Outcome = Arc::default();
        let stored = match image_check(services, caller, patient, &fields, identity.clone()).await {
            Ok(inspect) => match check_meta(services, fields, patient, caller.user()).await {
                Ok(meta) => {
                    let once = self.once.clone().map(|key| (caller.user(), key));
                    services.vault.upload_with(meta, body, UploadWith { inspect, once }).await
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let uploaded = match stored {
            Ok(u) => u,
            Err(e) => return Err(self.refuse(e).await),
        };
        let r = &uploaded.record;
        if uploaded.replayed {
            // Another send with the same key committed first (the two raced): its record.
            return self.replay(r.id).await;
        }
        services
            .audit
            .one(
                caller.ctx.event("record.upload", outcome::SUCCESS).resource("document", r.id).patient(patient).detail(
                    match images::identity_detail(&identity) {
                        Some(overridden) => format!("{} bytes, {}, {overridden}", r.size, r.media_type),
                        None => format!("{} bytes, {}", r.size, r.media_type),
                    },
                ),
            )
            .await?;
        let ocr_job_id = super::ocr::after_upload(services, r, caller.user()).await;
        let mut record = Record { ocr_job_id, ..Record::from(r) };
        record.image = images::image_of(services, &record).await?.as_ref().map(Image::from);
        Ok(record)
    }

    /// Refuse the upload for a reason found outside (a malformed form, a bad query string):
    /// audited with its code only — no name, no content — and handed back.
    pub async fn refuse(self, e: Error) -> Error {
        let patient = self.pass.id();
        let event = self
            .pass
            .caller()
            .ctx
            .event("record.upload", outcome::FAILURE)
            .resource("patient", patient)
            .patient(patient)
            .detail(e.code().as_str());
        self.services.audit.best_effort(event).await;
        e
    }
}

/// A record's content opened for one reader, before anything is checked or sent.
pub struct Content<'a> {
    services: &'a Services,
    /// The record's metadata: its media type and sanitised file name head the response.
    pub record: Record,
    row: RecordRow,
    pass: Pass<ReadDocument>,
    download: Download,
    presented: Presented,
}

/// The plaintext of a range, streaming: frames are opened a batch ahead of the reader. A frame
/// changed after [`Content::send`] checked it ends the stream with an error (audited).
pub type Body = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// A download under way.
pub struct Transfer {
    /// The first and last bytes sent (inclusive), and the file's size.
    pub start: u64,
    pub end: u64,
    pub size: u64,
    pub body: Body,
}

impl Content<'_> {
    /// The file's size in bytes (for the adapter's range handling).
    pub fn size(&self) -> u64 {
        self.download.size()
    }

    /// How the reader's token came (what the audit event will say).
    pub fn presented(&self) -> Presented {
        self.presented
    }

    /// Send bytes `start..=end` (`None`: the whole file). The frames of the range are checked
    /// first, so a tampered file is refused (500 `integrity_error`, audited) before the first
    /// byte; then the download is audited — failing closed: no event, no content — naming the
    /// range and whether a signed link or a narrowed token opened it.
    pub async fn send(self, range: Option<(u64, u64)>) -> Result<Transfer, Error> {
        let size = self.size();
        let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
        if start > end || end >= size {
            return Err(Error::new(Code::RangeNotSatisfiable));
        }
        let (caller, r) = (self.pass.caller(), &self.row);
        if let Err(e) = self.download.verify(start, end).await {
            if e.code() == Code::IntegrityError {
                tracing::error!(record = %r.id, file = %r.file_id, "a stored file failed its integrity check");
                self.services.audit.one(download_event(caller, r, outcome::FAILURE, "integrity_error")).await?;
            }
            return Err(e);
        }
        let part = match range {
            Some((a, b)) => format!("bytes {a}-{b}"),
            None => "whole file".to_owned(),
        };
        let detail = match self.presented {
            Presented::Own => part,
            Presented::SignedLink => format!("{part} by signed link"),
            Presented::NarrowedToken => format!("{part} by narrowed token"),
        };
        self.services.audit.one(download_event(caller, r, outcome::SUCCESS, detail)).await?;
        let on_broken = {
            let audit = self.services.audit.clone();
            let event = download_event(caller, r, outcome::FAILURE, "integrity_error during the transfer");
            move || {
                tracing::error!("a stored file failed its integrity check during a download; the transfer was cut");
                // Called on the transfer's own task, outside actix's local set: a plain tokio task.
                tokio::spawn(async move { audit.best_effort(event).await });
            }
        };
        let body = self.download.stream(start, end, on_broken).await?;
        Ok(Transfer { start, end, size, body: Box::pin(body) })
    }
}
