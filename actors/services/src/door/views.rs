//! What operations return, shaped as the API shows it: ids, RFC 3339 times in UTC, nested
//! objects where a client expects them. Built from store rows here, so that every adapter
//! (HTTP, CLI, chat tools) shows the same thing and none of them needs the store's types.

use careport_domain::time::now_ms;
use careport_store::appointments::AppointmentRow;
use careport_store::assignments::TeamMember;
use careport_store::clinicians::{ClinicianRow, Exception};
use careport_store::images::ImageRow;
use careport_store::patients::PatientRow;
use careport_store::vault::{GrantRow, RecordRow};
use serde::Serialize;
use uuid::Uuid;

/// An instant as RFC 3339 in UTC (`2026-11-30T08:00:00Z`).
pub fn rfc3339(ms: i64) -> String {
    crate::clinic::rfc3339(ms)
}

/// A patient's emergency contact.
#[derive(Debug, Clone, Serialize)]
pub struct EmergencyContact {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub relation: Option<String>,
}

/// A patient's record.
#[derive(Debug, Clone, Serialize)]
pub struct Patient {
    pub id: Uuid,
    pub mrn: String,
    pub full_name: String,
    pub date_of_birth: Option<String>,
    pub sex: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub emergency_contact: EmergencyContact,
    pub preferred_language: String,
    pub department: Option<String>,
    pub has_account: bool,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
    /// Who treats the patient (single reads only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub care_team: Option<Vec<TeamMember>>,
}

impl From<&PatientRow> for Patient {
    fn from(p: &PatientRow) -> Self {
        Self {
            id: p.id,
            mrn: p.mrn.clone(),
            full_name: p.full_name.clone(),
            date_of_birth: p.date_of_birth.clone(),
            sex: p.sex.clone(),
            email: p.email.clone(),
            phone: p.phone.clone(),
            address: p.address.clone(),
            emergency_contact: EmergencyContact {
                name: p.emergency_contact_name.clone(),
                phone: p.emergency_contact_phone.clone(),
                relation: p.emergency_contact_relation.clone(),
            },
            preferred_language: p.preferred_language.clone(),
            department: p.department.clone(),
            has_account: p.account_status.is_some(),
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
            deleted_at: p.deleted_at.map(rfc3339),
            care_team: None,
        }
    }
}

/// An appointment.
#[derive(Debug, Clone, Serialize)]
pub struct Appointment {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub clinician_id: Uuid,
    pub starts_at: String,
    pub ends_at: String,
    pub status: String,
    pub reason: String,
    pub cancel_reason: Option<String>,
    pub booked_by: Option<Uuid>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&AppointmentRow> for Appointment {
    fn from(a: &AppointmentRow) -> Self {
        Self {
            id: a.id,
            patient_id: a.patient_id,
            clinician_id: a.clinician_id,
            starts_at: rfc3339(a.starts_at),
            ends_at: rfc3339(a.ends_at),
            status: a.status.clone(),
            reason: a.reason.clone(),
            cancel_reason: a.cancel_reason.clone(),
            booked_by: a.booked_by,
            created_at: rfc3339(a.created_at),
            updated_at: rfc3339(a.updated_at),
        }
    }
}

/// A medical record's metadata (its content is at `content_url`).
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub record_type: String,
    pub title: String,
    pub date: Option<String>,
    pub file_name: String,
    pub media_type: String,
    pub size: i64,
    pub sensitive: bool,
    pub uploaded_by: Uuid,
    pub created_at: String,
    pub deleted_at: Option<String>,
    pub content_url: String,
    /// On an upload's answer only: the OCR job that reads the new record automatically
    /// (`GET /api/v1/ocr/jobs/{id}` and its `/events`), when its type is read on upload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ocr_job_id: Option<Uuid>,
    /// A medical image's metadata and previews (records of type `medical-images` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
}

/// What careport read from a medical image, and where its previews are.
#[derive(Debug, Clone, Serialize)]
pub struct Image {
    /// `xray`, `mri`, `ct`, `ultrasound`, `mammography`, `pet` or `other`.
    pub kind: String,
    /// The DICOM modality (`CT`, `MR`, `CR`, …); none for a picture.
    pub modality: Option<String>,
    pub body_part: Option<String>,
    pub study_uid: Option<String>,
    pub series_uid: Option<String>,
    pub instance_uid: Option<String>,
    pub study_date: Option<String>,
    pub rows: Option<i64>,
    pub columns: Option<i64>,
    pub transfer_syntax: Option<String>,
    /// How the file's patient identifiers stood to the chart: `matched`, `absent` (it states
    /// none) or `overridden` (an administrator accepted a mismatch).
    pub identity: String,
    pub preview: PreviewState,
}

/// An image's previews: `pending` (being made), `ready`, `none` (nothing decodable: `reason`)
/// or `failed` (`reason`).
#[derive(Debug, Clone, Serialize)]
pub struct PreviewState {
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `GET` these once `status` is `ready`.
    pub thumb_url: String,
    pub web_url: String,
}

impl From<&ImageRow> for Image {
    fn from(i: &ImageRow) -> Self {
        Self {
            kind: i.kind.clone(),
            modality: i.modality.clone(),
            body_part: i.body_part.clone(),
            study_uid: i.study_uid.clone(),
            series_uid: i.series_uid.clone(),
            instance_uid: i.instance_uid.clone(),
            study_date: i.study_date.clone(),
            rows: i.rows_count,
            columns: i.columns_count,
            transfer_syntax: i.transfer_syntax.clone(),
            identity: i.identity.clone(),
            preview: PreviewState {
                status: i.preview.clone(),
                reason: i.preview_reason.clone(),
                thumb_url: format!("/api/v1/records/{}/preview?size=thumb", i.record_id),
                web_url: format!("/api/v1/records/{}/preview?size=web", i.record_id),
            },
        }
    }
}

impl From<&RecordRow> for Record {
    fn from(r: &RecordRow) -> Self {
        Self {
            id: r.id,
            patient_id: r.patient_id,
            record_type: r.record_type.clone(),
            title: r.title.clone(),
            date: r.clinical_date.clone(),
            file_name: r.file_name.clone(),
            media_type: r.media_type.clone(),
            size: r.size,
            sensitive: r.sensitive,
            uploaded_by: r.uploaded_by,
            created_at: rfc3339(r.created_at),
            deleted_at: r.deleted_at.map(rfc3339),
            content_url: format!("/api/v1/records/{}/content", r.id),
            ocr_job_id: None,
            image: None,
        }
    }
}

/// A grant of one record to one user.
#[derive(Debug, Clone, Serialize)]
pub struct Grant {
    pub id: Uuid,
    pub record_id: Uuid,
    pub user_id: Uuid,
    pub reason: Option<String>,
    pub expires_at: String,
    pub created_by: Uuid,
    pub created_at: String,
    pub active: bool,
}

impl From<&GrantRow> for Grant {
    fn from(g: &GrantRow) -> Self {
        Self {
            id: g.id,
            record_id: g.record_id,
            user_id: g.grantee_id,
            reason: g.reason.clone(),
            expires_at: rfc3339(g.expires_at),
            created_by: g.created_by,
            created_at: rfc3339(g.created_at),
            active: g.expires_at > now_ms(),
        }
    }
}

/// A clinician in the directory.
#[derive(Debug, Clone, Serialize)]
pub struct Clinician {
    pub id: Uuid,
    pub full_name: Option<String>,
    pub staff_role: Option<String>,
    pub department: Option<String>,
    pub bio: String,
    pub slot_minutes: i64,
    pub specializations: Vec<Specialization>,
    pub primary_specialization: Option<String>,
    /// Weekly hours, absences and the clinic's zone (single reads only).
    #[serde(flatten)]
    pub schedule: Option<Schedule>,
}

/// A clinician's week and absences, as one clinician's page shows them.
#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    pub working_hours: Vec<careport_store::clinicians::Hours>,
    pub exceptions: Vec<Absence>,
    pub time_zone: String,
}

impl Clinician {
    pub fn new(c: &ClinicianRow, specializations: Vec<Specialization>) -> Self {
        let primary = specializations.iter().find(|s| s.is_primary).map(|s| s.cancer_type_id.clone());
        Self {
            id: c.id,
            full_name: c.full_name.clone(),
            staff_role: c.staff_role.clone(),
            department: c.department.clone(),
            bio: c.bio.clone(),
            slot_minutes: c.slot_minutes,
            specializations,
            primary_specialization: primary,
            schedule: None,
        }
    }
}

/// A clinician's absence.
#[derive(Debug, Clone, Serialize)]
pub struct Absence {
    pub id: Uuid,
    pub starts_at: String,
    pub ends_at: String,
    pub kind: String,
    pub note: String,
    /// Scheduled appointments inside it (when it is added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appointments_inside: Option<usize>,
}

impl From<&Exception> for Absence {
    fn from(e: &Exception) -> Self {
        Self {
            id: e.id,
            starts_at: rfc3339(e.starts_at),
            ends_at: rfc3339(e.ends_at),
            kind: e.kind.clone(),
            note: e.note.clone(),
            appointments_inside: None,
        }
    }
}

/// A list without paging: `{"items": [...]}`.
#[derive(Debug, Clone, Serialize)]
pub struct Items<T> {
    pub items: Vec<T>,
}

impl<T> From<Vec<T>> for Items<T> {
    fn from(items: Vec<T>) -> Self {
        Self { items }
    }
}
pub use careport_store::clinicians::{Hours, Specialization};
