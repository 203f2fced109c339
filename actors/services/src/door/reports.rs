//! Diagnosis reports (#18): a doctor writes a report about a patient — findings, impression,
//! recommendations, ICD-10 codes, optionally the records it is about — as a draft; a doctor signs
//! it off (`final`: immutable from then on); a signed report is amended by a new version that
//! points to it, and when that version is signed the previous one becomes `amended` and stays
//! readable. Who sees which version is the policies' (`policies/reports.datalog`): a patient only
//! signed versions of their own chart; this module asks them for every version it shows, so a
//! list never shows what a single read would refuse.
//!
//! The text is sealed with the patient's key (erasure shreds it); the SHA-256 of the text as
//! signed goes into the audit trail at sign-off, so a later change of the row would show.

use careport_domain::time::now_ms;
use careport_domain::{Code, Error};
use careport_store::reports::{self, AmendError, NewReport, ReportRow};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::records::live_record;
use super::store_err;
use super::views::{Record, rfc3339};
use crate::access::{ListReports, Pass, ReadReport, WriteReport, WriteReports};
use crate::audit::{EventExt, outcome};
use crate::vault::UploadMeta;
use crate::{Caller, Services};

/// The report operations.
pub struct Reports<'a>(pub(crate) &'a Services);

/// A report's text, as written and as sealed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReportText {
    pub findings: String,
    pub impression: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendations: Option<String>,
    pub icd10: Vec<String>,
}

/// A new report or a draft's new content.
#[derive(Debug, Clone, Default)]
pub struct ReportInput {
    pub text: ReportText,
    /// Records of the same chart it is about.
    pub record_ids: Vec<Uuid>,
    /// `imaging` (default) or `pathology`: the record type its PDF becomes.
    pub kind: Option<String>,
}

/// A change to a draft: what is given replaces what was there.
#[derive(Debug, Clone, Default)]
pub struct ReportChange {
    pub findings: Option<String>,
    pub impression: Option<String>,
    pub recommendations: Option<Option<String>>,
    pub icd10: Option<Vec<String>>,
    pub record_ids: Option<Vec<Uuid>>,
    pub kind: Option<String>,
}

/// One version of a report as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub id: Uuid,
    /// The report across its versions (the first version's id).
    pub report_id: Uuid,
    pub version: i32,
    /// The version this one amends.
    pub previous_id: Option<Uuid>,
    pub patient_id: Uuid,
    pub kind: String,
    /// `draft`, `final` or `amended`.
    pub state: String,
    pub findings: String,
    pub impression: String,
    pub recommendations: Option<String>,
    pub icd10: Vec<String>,
    pub record_ids: Vec<Uuid>,
    pub author_id: Uuid,
    pub signed_by: Option<Uuid>,
    pub signed_at: Option<String>,
    /// SHA-256 of the text as signed (hex).
    pub digest: Option<String>,
    /// The record its PDF became, once exported.
    pub pdf_record_id: Option<Uuid>,
    pub created_at: String,
    pub updated_at: String,
}

/// A version with the versions of the same report the caller may read, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct ReportWithHistory {
    #[serde(flatten)]
    pub report: Report,
    pub versions: Vec<Report>,
}

const MAX_TEXT: usize = 20_000;

/// An ICD-10 code as written in a report: a letter, two characters (digits, or a digit and a
/// letter for the extensions some editions use), optionally a dot and one to four more
/// (`C34.32`, `C50.911`, `Z85.3`). Upper-cased; refused otherwise.
pub fn icd10(code: &str) -> Result<String, Error> {
    let c = code.trim().to_ascii_uppercase();
    let b = c.as_bytes();
    let (head, tail) = c.split_once('.').map_or((c.as_str(), None), |(h, t)| (h, Some(t)));
    let ok = head.len() == 3
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_digit()
        && (b[2].is_ascii_digit() || b[2].is_ascii_uppercase())
        && tail.is_none_or(|t| {
            (1..=4).contains(&t.len()) && t.bytes().all(|x| x.is_ascii_digit() || x.is_ascii_uppercase())
        });
    if ok {
        Ok(c)
    } else {
        Err(Error::with_message(
            Code::InvalidValue,
            format!(
                "icd10 codes are written like C34.32 (a letter, two characters, optionally a dot and 1 to 4 more); {:?} is not.",
                code.chars().take(16).collect::<String>()
            ),
        ))
    }
}

fn field(name: &str, v: &str, required: bool) -> Result<String, Error> {
    let v = v.trim();
    if (required && v.is_empty())
        || v.chars().count() > MAX_TEXT
        || v.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Error::with_message(
            Code::InvalidValue,
            format!("{name} must be {} to {MAX_TEXT} characters of text.", if required { 1 } else { 0 }),
        ));
    }
    Ok(v.to_owned())
}

fn checked(text: ReportText) -> Result<ReportText, Error> {
    let mut codes = Vec::new();
    for c in &text.icd10 {
        let c = icd10(c)?;
        if !codes.contains(&c) {
            codes.push(c);
        }
    }
    if codes.len() > 50 {
        return Err(Error::with_message(Code::InvalidValue, "A report names at most 50 ICD-10 codes."));
    }
    Ok(ReportText {
        findings: field("findings", &text.findings, true)?,
        impression: field("impression", &text.impression, true)?,
        recommendations: text
            .recommendations
            .as_deref()
            .map(|r| field("recommendations", r, false))
            .transpose()?
            .filter(|r| !r.is_empty()),
        icd10: codes,
    })
}

fn kind_of(kind: Option<&str>) -> Result<&'static str, Error> {
    match kind.unwrap_or("imaging") {
        "imaging" => Ok("imaging"),
        "pathology" => Ok("pathology"),
        _ => Err(Error::with_message(Code::InvalidValue, "kind must be imaging or pathology.")),
    }
}

/// 409 `amendment_pending` for a second draft of one report; a store failure otherwise.
fn amend_err(e: AmendError) -> Error {
    match e {
        AmendError::DraftExists => Error::new(Code::AmendmentPending),
        AmendError::Store(e) => store_err(e),
    }
}

/// SHA-256 (hex) of a report's text as it is sealed: what a signature covers.
pub fn digest(text: &ReportText) -> String {
    let bytes = serde_json::to_vec(text).unwrap_or_default();
    data_encoding::HEXLOWER.encode(&Sha256::digest(&bytes))
}

impl Reports<'_> {
    fn context(id: Uuid) -> String {
        format!("report:{id}")
    }

    async fn seal(&self, patient: Uuid, id: Uuid, text: &ReportText) -> Result<String, Error> {
        let b = self.0.vault.user_box(patient, true).await?;
        Ok(b.seal(&Self::context(id), &serde_json::to_vec(text).map_err(Error::internal)?))
    }

    async fn open(&self, r: &ReportRow) -> Result<ReportText, Error> {
        let b = self.0.vault.user_box(r.patient_id, false).await?;
        let bytes = b.open(&Self::context(r.id), &r.body)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::new(Code::IntegrityError).caused_by(e))
    }

    async fn view(&self, r: &ReportRow) -> Result<Report, Error> {
        let text = self.open(r).await?;
        Ok(Report {
            id: r.id,
            report_id: r.root_id,
            version: r.version,
            previous_id: r.previous_id,
            patient_id: r.patient_id,
            kind: r.kind.clone(),
            state: r.state.clone(),
            findings: text.findings,
            impression: text.impression,
            recommendations: text.recommendations,
            icd10: text.icd10,
            record_ids: serde_json::from_str(&r.record_ids).unwrap_or_default(),
            author_id: r.author_id,
            signed_by: r.signed_by,
            signed_at: r.signed_at.map(rfc3339),
            digest: r.digest.clone(),
            pdf_record_id: r.pdf_record_id,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
        })
    }

    async fn load(&self, id: Uuid) -> Result<ReportRow, Error> {
        let r = reports::get(&self.0.db, id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
        super::patients::live_chart(self.0, r.patient_id).await?;
        Ok(r)
    }

    /// The records a report names must be live records of its own chart.
    async fn check_records(&self, patient: Uuid, ids: &[Uuid]) -> Result<String, Error> {
        if ids.len() > 50 {
            return Err(Error::with_message(Code::InvalidValue, "A report is about at most 50 records."));
        }
        for id in ids {
            let ok = matches!(live_record(self.0, *id).await, Ok(r) if r.patient_id == patient);
            if !ok {
                return Err(Error::with_message(
                    Code::InvalidValue,
                    "record_ids must name records of this patient's chart.",
                ));
            }
        }
        serde_json::to_string(ids).map_err(Error::internal)
    }

    async fn audit(&self, caller: &Caller, action: &str, r: &ReportRow, detail: Option<String>) -> Result<(), Error> {
        let mut e = caller.ctx.event(action, outcome::SUCCESS).resource("report", r.id).patient(r.patient_id);
        if let Some(d) = detail {
            e = e.detail(d);
        }
        self.0.audit.one(e).await
    }

    /// Write a new report (a draft) into a chart.
    pub async fn create(&self, pass: Pass<WriteReports>, input: ReportInput) -> Result<Report, Error> {
        let patient = pass.id();
        let text = checked(input.text)?;
        let kind = kind_of(input.kind.as_deref())?;
        super::patients::live_chart(self.0, patient).await?;
        let records = self.check_records(patient, &input.record_ids).await?;
        let id = Uuid::now_v7();
        let body = self.seal(patient, id, &text).await?;
        let new = NewReport {
            id,
            root_id: id,
            previous_id: None,
            version: 1,
            patient_id: patient,
            kind,
            body: &body,
            record_ids: &records,
            author_id: pass.caller().user(),
            at: now_ms(),
        };
        reports::insert(&self.0.db, &new).await.map_err(amend_err)?;
        let row = self.load(id).await?;
        self.audit(pass.caller(), "report.create", &row, None).await?;
        self.view(&row).await
    }

    /// One version, with the versions of the same report the caller may read (a patient: the
    /// signed ones). Audited as a read of the patient's data.
    pub async fn get(&self, pass: Pass<ReadReport>) -> Result<ReportWithHistory, Error> {
        let row = self.load(pass.id()).await?;
        let caller = pass.caller();
        let mut versions = Vec::new();
        for v in reports::versions(&self.0.db, row.root_id).await.map_err(store_err)? {
            if v.id == row.id || self.0.access.allows::<ReadReport>(caller, Some(v.id)).await {
                versions.push(v);
            }
        }
        self.audit(caller, "report.read", &row, None).await?;
        let mut shown = Vec::with_capacity(versions.len());
        for v in &versions {
            shown.push(self.view(v).await?);
        }
        Ok(ReportWithHistory { report: self.view(&row).await?, versions: shown })
    }

    /// A chart's reports: the newest version of each that the caller may read (a patient: the
    /// newest signed one), newest first. Audited as one read of the chart.
    pub async fn list(&self, pass: Pass<ListReports>) -> Result<Vec<Report>, Error> {
        let patient = pass.id();
        super::patients::live_chart(self.0, patient).await?;
        let caller = pass.caller();
        let mut seen = std::collections::HashSet::new();
        let mut rows = Vec::new();
        // Newest version first: the first readable one of each report is the one shown.
        let mut all = reports::for_patient(&self.0.db, patient, 5_000).await.map_err(store_err)?;
        all.sort_by_key(|r| (std::cmp::Reverse(r.created_at), std::cmp::Reverse(r.version)));
        for r in all {
            if seen.contains(&r.root_id) {
                continue;
            }
            if self.0.access.allows::<ReadReport>(caller, Some(r.id)).await {
                seen.insert(r.root_id);
                rows.push(r);
            }
        }
        self.0
            .audit
            .one(caller.ctx.event("report.list", outcome::SUCCESS).resource("reports", patient).patient(patient))
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.view(r).await?);
        }
        Ok(out)
    }

    /// Change a draft; a signed report answers 409 `report_final` and stays as it is.
    pub async fn edit(&self, pass: Pass<WriteReport>, change: ReportChange) -> Result<Report, Error> {
        let row = self.load(pass.id()).await?;
        if row.state != "draft" {
            return Err(Error::new(Code::ReportFinal));
        }
        let mut text = self.open(&row).await?;
        if let Some(f) = change.findings {
            text.findings = f;
        }
        if let Some(i) = change.impression {
            text.impression = i;
        }
        if let Some(r) = change.recommendations {
            text.recommendations = r;
        }
        if let Some(c) = change.icd10 {
            text.icd10 = c;
        }
        let text = checked(text)?;
        let kind = kind_of(change.kind.as_deref().or(Some(row.kind.as_str())))?;
        let records = match change.record_ids {
            Some(ids) => self.check_records(row.patient_id, &ids).await?,
            None => row.record_ids.clone(),
        };
        let body = self.seal(row.patient_id, row.id, &text).await?;
        if !reports::edit(&self.0.db, row.id, &body, &records, kind, now_ms()).await.map_err(store_err)? {
            return Err(Error::new(Code::ReportFinal));
        }
        let row = self.load(row.id).await?;
        self.audit(pass.caller(), "report.edit", &row, None).await?;
        self.view(&row).await
    }

    /// Sign a draft off: it becomes `final` (and the version it amends `amended`). Who may is the
    /// clinic's `clinic.report_sign_off`: the author, or a second reader (another doctor of the
    /// care team). The digest of the signed text goes into the audit trail.
    pub async fn finalize(&self, pass: Pass<WriteReport>) -> Result<Report, Error> {
        let row = self.load(pass.id()).await?;
        if row.state != "draft" {
            return Err(Error::new(Code::ReportFinal));
        }
        let by = pass.caller().user();
        if self.0.clinic.config().report_sign_off == "second_reader" && by == row.author_id {
            return Err(Error::new(Code::SecondReaderRequired));
        }
        let text = self.open(&row).await?;
        let digest = digest(&text);
        let at = now_ms();
        if !reports::sign(&self.0.db, row.id, row.previous_id, by, &digest, at).await.map_err(store_err)? {
            return Err(Error::new(Code::ReportFinal));
        }
        let row = self.load(row.id).await?;
        let detail = format!("version {} signed; sha256 {digest}", row.version);
        self.audit(pass.caller(), "report.finalize", &row, Some(detail)).await?;
        self.view(&row).await
    }

    /// Amend a signed report: a new draft version pointing to it, with the text given. The signed
    /// version is unchanged until the amendment is signed. 409 `report_not_final` for a draft or
    /// a version already amended, `amendment_pending` when an amendment is being written.
    pub async fn amend(&self, pass: Pass<WriteReport>, input: ReportInput) -> Result<Report, Error> {
        let row = self.load(pass.id()).await?;
        if row.state != "final" {
            return Err(Error::new(Code::ReportNotFinal));
        }
        let text = checked(input.text)?;
        let kind = kind_of(input.kind.as_deref().or(Some(row.kind.as_str())))?;
        let records = if input.record_ids.is_empty() {
            row.record_ids.clone()
        } else {
            self.check_records(row.patient_id, &input.record_ids).await?
        };
        let id = Uuid::now_v7();
        let body = self.seal(row.patient_id, id, &text).await?;
        let new = NewReport {
            id,
            root_id: row.root_id,
            previous_id: Some(row.id),
            version: row.version + 1,
            patient_id: row.patient_id,
            kind,
            body: &body,
            record_ids: &records,
            author_id: pass.caller().user(),
            at: now_ms(),
        };
        reports::insert(&self.0.db, &new).await.map_err(amend_err)?;
        let created = self.load(id).await?;
        self.audit(pass.caller(), "report.amend", &created, Some(format!("amends version {}", row.version))).await?;
        self.view(&created).await
    }

    /// A signed report as a PDF (made here, in process) stored as a record of the chart, of type
    /// "Imaging Reports" or "Pathology Reports" by the report's kind. Once per version: a second
    /// export answers the same record.
    pub async fn export(&self, pass: Pass<WriteReport>) -> Result<Record, Error> {
        let row = self.load(pass.id()).await?;
        if row.state == "draft" {
            return Err(Error::new(Code::ReportNotFinal));
        }
        if let Some(existing) = row.pdf_record_id {
            return Ok(Record::from(&live_record(self.0, existing).await?));
        }
        let view = self.view(&row).await?;
        let patient = careport_store::patients::get(&self.0.db, row.patient_id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| Error::new(Code::NotFound))?;
        let pdf = super::report_pdf::render(&view, &patient.full_name, &patient.mrn);
        let record_type = if row.kind == "pathology" { "pathology-reports" } else { "imaging-reports" };
        let date = row
            .signed_at
            .and_then(|t| jiff::Timestamp::from_millisecond(t).ok())
            .map(|t| t.to_zoned(self.0.clinic.time_zone().clone()).date().to_string());
        let meta = UploadMeta {
            patient: row.patient_id,
            record_type: record_type.to_owned(),
            title: format!(
                "{} report, version {}",
                if row.kind == "pathology" { "Pathology" } else { "Imaging" },
                row.version
            ),
            clinical_date: date,
            file_name: format!("report-{}-v{}.pdf", row.root_id, row.version),
            sensitive: false,
            uploaded_by: pass.caller().user(),
        };
        let body = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(pdf))]);
        let uploaded = self.0.vault.upload(meta, body).await?;
        reports::set_pdf(&self.0.db, row.id, uploaded.record.id).await.map_err(store_err)?;
        self.0
            .audit
            .one(
                pass.caller()
                    .ctx
                    .event("report.export", outcome::SUCCESS)
                    .resource("report", row.id)
                    .patient(row.patient_id)
                    .detail(format!("record {}", uploaded.record.id)),
            )
            .await?;
        Ok(Record::from(&uploaded.record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icd10_codes_are_checked_in_format() {
        for ok in ["C34.32", "c50.911", "Z85.3", "C34", "S72.001A", "U07.1"] {
            assert!(icd10(ok).is_ok(), "{ok}");
        }
        assert_eq!(icd10(" c34.32 ").expect("ok"), "C34.32");
        for bad in ["", "C3", "34.32", "C34.", "C34.12345", "C34-32", "CC4.1", "C34.3 2", "C\u{0}4"] {
            assert!(icd10(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_digest_covers_every_field() {
        let a = ReportText {
            findings: "f".into(),
            impression: "i".into(),
            recommendations: None,
            icd10: vec!["C34.32".into()],
        };
        let mut b = a.clone();
        b.icd10 = vec!["C34.31".into()];
        assert_ne!(digest(&a), digest(&b));
        assert_eq!(digest(&a), digest(&a.clone()));
        assert_eq!(digest(&a).len(), 64);
    }
}
