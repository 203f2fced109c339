//! `careport seed-demo`'s second part: what hangs off the first charts — a medical image each
//! (a generated DICOM file with the chart's own identifiers, so its identity check matches and
//! its previews are made by the server's job), diagnosis reports in each state (draft, signed,
//! amended) written by the patient's doctor, and bills in each status.
//!
//! Unlike the fixture of [`crate::seed`], this goes through the door: images, reports and bills
//! are sealed, decided and audited exactly as through the API, by the operator (uploads, bills)
//! and by each patient's own doctor ([`careport_actors::identity::Identity::seeding_caller`]).

use anyhow::Context;
use careport_actors::Services;
use careport_actors::access::{SettleBill, UploadToPatient, WriteBilling, WriteReport, WriteReports};
use careport_actors::door::billing::NewBill;
use careport_actors::door::records::UploadFields;
use careport_actors::door::reports::{ReportInput, ReportText};
use careport_domain::Role;
use careport_policy::StaffRole;
use careport_store::patients::PatientRow;
use uuid::Uuid;

/// A chart the demo adds to, and the doctor assigned to it.
#[derive(Debug, Clone, Copy)]
pub struct DemoChart {
    pub patient: Uuid,
    pub doctor: Uuid,
}

/// How many charts get images, reports and bills.
pub const CHARTS: usize = 6;

const STUDIES: [(&str, &str, &str); 3] = [
    ("CT", "CHEST", "1.2.840.10008.5.1.4.1.1.2"),
    ("CR", "CHEST", "1.2.840.10008.5.1.4.1.1.1"),
    ("MR", "BRAIN", "1.2.840.10008.5.1.4.1.1.4"),
];

const FINDINGS: [(&str, &str, &str); 3] = [
    (
        "A 1.8 cm spiculated nodule in the right upper lobe. No mediastinal lymphadenopathy.",
        "Suspicious for a primary lung malignancy.",
        "R91.1",
    ),
    (
        "Clear lungs. Heart size within normal limits. No pleural effusion.",
        "No acute cardiopulmonary abnormality.",
        "Z09",
    ),
    ("A 9 mm enhancing lesion in the left frontal lobe with mild surrounding oedema.", "Likely metastasis.", "C79.31"),
];

/// Add images, reports and bills to `charts` (at most [`CHARTS`]). Returns what was made.
pub async fn seed(services: &Services, charts: &[DemoChart]) -> anyhow::Result<(usize, usize, usize)> {
    let operator = services.identity.operator_caller().context("operator")?;
    let today = jiff::Zoned::now().date();
    let (mut images, mut reports, mut bills) = (0, 0, 0);
    for (i, chart) in charts.iter().take(CHARTS).enumerate() {
        let patient =
            careport_store::patients::get(services.store_handle(), chart.patient).await?.context("patient")?;
        let doctor = careport_store::users::find(services.store_handle(), chart.doctor).await?.context("doctor")?;

        // An image of the study, dated a week apart each.
        let (modality, body_part, sop_class) = STUDIES[i % STUDIES.len()];
        let study_date = today.checked_sub(jiff::Span::new().days(7 * (i as i64 + 1)))?;
        let dicom = demo_dicom(&patient, modality, body_part, sop_class, &study_date.strftime("%Y%m%d").to_string());
        let fields = UploadFields {
            record_type: Some("medical-images".into()),
            title: Some(format!("{modality} {}", body_part.to_lowercase())),
            file_name: Some(format!("{}.dcm", modality.to_lowercase())),
            ..UploadFields::default()
        };
        let size = dicom.len() as u64;
        let body = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(bytes::Bytes::from(dicom))]);
        let pass = services.access.pass::<UploadToPatient>(operator.clone(), Some(chart.patient)).await?;
        let image = services.records().start_upload(pass, Some(size)).await?.store(fields, body).await?;
        images += 1;

        // A report about it, by the patient's doctor: a draft, a signed one, or one amended.
        let author = services.identity.seeding_caller(
            doctor.id,
            Role::Clinician,
            Some(StaffRole::Doctor),
            doctor.department.clone(),
        )?;
        let (findings, impression, code) = FINDINGS[i % FINDINGS.len()];
        let input = |impression: &str| ReportInput {
            text: ReportText {
                findings: findings.into(),
                impression: impression.into(),
                recommendations: Some("Discuss at the multidisciplinary meeting.".into()),
                icd10: vec![code.into()],
            },
            record_ids: vec![image.id],
            kind: None,
        };
        let pass = services.access.pass::<WriteReports>(author.clone(), Some(chart.patient)).await?;
        let draft = services.reports().create(pass, input(impression)).await?;
        reports += 1;
        if i % 3 != 0 {
            let pass = services.access.pass::<WriteReport>(author.clone(), Some(draft.id)).await?;
            services.reports().finalize(pass).await?;
        }
        if i % 3 == 2 {
            let pass = services.access.pass::<WriteReport>(author.clone(), Some(draft.id)).await?;
            let amendment =
                services.reports().amend(pass, input(&format!("{impression} Compared with the prior study."))).await?;
            let pass = services.access.pass::<WriteReport>(author.clone(), Some(amendment.id)).await?;
            services.reports().finalize(pass).await?;
            reports += 1;
        }

        // Bills: unpaid, paid, overdue and cancelled.
        let day = |offset: i64| today.checked_add(jiff::Span::new().days(offset)).map(|d| d.to_string());
        let items = [
            ("CONS-01", "Specialist consultation", 1, 18_000, day(30)?, None),
            ("IMG-CT", "Imaging study", 1, 42_500, day(14)?, Some("pay")),
            ("LAB-PANEL", "Laboratory panel", 2, 3_250, day(-10)?, None),
            ("ADM-FEE", "Administrative fee", 1, 1_500, day(20)?, Some("cancel")),
        ];
        for (code, description, quantity, unit_price, due_date, then) in items {
            let new = NewBill {
                service_code: code.into(),
                description: description.into(),
                quantity,
                unit_price,
                tax_rate: None,
                due_date,
                status: None,
                appointment_id: None,
                record_id: (code == "IMG-CT").then_some(image.id),
                report_id: None,
            };
            let pass = services.access.pass::<WriteBilling>(operator.clone(), Some(chart.patient)).await?;
            let bill = services.billing().create(pass, new).await?;
            bills += 1;
            match then {
                Some("pay") => {
                    let pass = services.access.pass::<SettleBill>(operator.clone(), Some(bill.id)).await?;
                    services.billing().pay(pass).await?;
                }
                Some(_) => {
                    let pass = services.access.pass::<SettleBill>(operator.clone(), Some(bill.id)).await?;
                    services.billing().cancel(pass).await?;
                }
                None => {}
            }
        }
    }
    Ok((images, reports, bills))
}

/// A small DICOM file (Explicit VR Little Endian, 256 × 256, 8-bit MONOCHROME2) of a generated
/// study — an oval body with two darker fields and a brighter spine — stating the chart's own
/// identifiers, so that the upload's identity check matches (an empty MRN, name or birth date is
/// left out: a de-identified file).
pub fn demo_dicom(patient: &PatientRow, modality: &str, body_part: &str, sop_class: &str, study_date: &str) -> Vec<u8> {
    const SIDE: u16 = 256;
    let uid = || format!("2.25.{}", Uuid::new_v4().as_u128());
    let (instance, study, series) = (uid(), uid(), uid());
    let mut name_parts: Vec<&str> = patient.full_name.split_whitespace().collect();
    let family = name_parts.pop().unwrap_or_default();
    let dicom_name = format!("{family}^{}", name_parts.join(" "));
    let birth = patient.date_of_birth.as_deref().map(|d| d.replace('-', "")).unwrap_or_default();

    let mut meta = Vec::new();
    element(&mut meta, 0x0002, 0x0001, b"OB", &[0, 1]);
    element(&mut meta, 0x0002, 0x0002, b"UI", sop_class.as_bytes());
    element(&mut meta, 0x0002, 0x0003, b"UI", instance.as_bytes());
    element(&mut meta, 0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1");
    element(&mut meta, 0x0002, 0x0012, b"UI", b"2.25.302619347061524399145476364353281716993");
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    element(&mut out, 0x0002, 0x0000, b"UL", &(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta);

    let us = |v: u16| v.to_le_bytes();
    // Names are UTF-8 (ISO_IR 192): "Lucía Fernández" is written as it is.
    element(&mut out, 0x0008, 0x0005, b"CS", b"ISO_IR 192");
    element(&mut out, 0x0008, 0x0016, b"UI", sop_class.as_bytes());
    element(&mut out, 0x0008, 0x0018, b"UI", instance.as_bytes());
    element(&mut out, 0x0008, 0x0020, b"DA", study_date.as_bytes());
    element(&mut out, 0x0008, 0x0060, b"CS", modality.as_bytes());
    if !patient.full_name.trim().is_empty() {
        element(&mut out, 0x0010, 0x0010, b"PN", dicom_name.as_bytes());
    }
    if !patient.mrn.trim().is_empty() {
        element(&mut out, 0x0010, 0x0020, b"LO", patient.mrn.as_bytes());
    }
    if !birth.is_empty() {
        element(&mut out, 0x0010, 0x0030, b"DA", birth.as_bytes());
    }
    element(&mut out, 0x0018, 0x0015, b"CS", body_part.as_bytes());
    element(&mut out, 0x0020, 0x000D, b"UI", study.as_bytes());
    element(&mut out, 0x0020, 0x000E, b"UI", series.as_bytes());
    element(&mut out, 0x0028, 0x0002, b"US", &us(1));
    element(&mut out, 0x0028, 0x0004, b"CS", b"MONOCHROME2");
    element(&mut out, 0x0028, 0x0010, b"US", &us(SIDE));
    element(&mut out, 0x0028, 0x0011, b"US", &us(SIDE));
    element(&mut out, 0x0028, 0x0100, b"US", &us(8));
    element(&mut out, 0x0028, 0x0101, b"US", &us(8));
    element(&mut out, 0x0028, 0x0102, b"US", &us(7));
    element(&mut out, 0x0028, 0x0103, b"US", &us(0));
    let mut pixels = Vec::with_capacity(usize::from(SIDE) * usize::from(SIDE));
    for y in 0..SIDE {
        for x in 0..SIDE {
            let (fx, fy) = (f32::from(x) / f32::from(SIDE) - 0.5, f32::from(y) / f32::from(SIDE) - 0.5);
            let body = (fx / 0.42).powi(2) + (fy / 0.47).powi(2) < 1.0;
            let field = |cx: f32| ((fx - cx) / 0.14).powi(2) + (fy / 0.3).powi(2) < 1.0;
            let spine = fx.abs() < 0.03;
            let value = match (body, field(-0.18) || field(0.18), spine) {
                (false, _, _) => 8,
                (true, _, true) => 230,
                (true, true, false) => 60 + ((fy + 0.5) * 40.0) as u8,
                (true, false, false) => 150,
            };
            pixels.push(value);
        }
    }
    element(&mut out, 0x7FE0, 0x0010, b"OB", &pixels);
    out
}

/// One explicit-VR little-endian element, its value padded to an even length (UIDs with NUL,
/// text with a space).
fn element(out: &mut Vec<u8>, group: u16, tag: u16, vr: &[u8; 2], value: &[u8]) {
    let mut value = value.to_vec();
    if value.len() % 2 == 1 {
        value.push(if vr == b"UI" || vr == b"OB" { 0 } else { b' ' });
    }
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(vr);
    if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(&value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use careport_actors::imaging::dicom::{PixelStatus, decode_preview, read_metadata};
    use careport_actors::imaging::identity::{ChartIdentity, FileIdentity, Identity, compare};

    #[test]
    fn the_demo_dicom_file_reads_back_with_the_chart_s_identifiers_and_decodes() {
        let patient = PatientRow {
            id: Uuid::now_v7(),
            mrn: "MRN-77".into(),
            full_name: "Lucía Fernández".into(),
            date_of_birth: Some("1958-02-03".into()),
            sex: "female".into(),
            email: None,
            phone: None,
            address: None,
            emergency_contact_name: None,
            emergency_contact_phone: None,
            emergency_contact_relation: None,
            preferred_language: "es".into(),
            department: None,
            created_at: 0,
            updated_at: 0,
            deleted_at: None,
            account_status: None,
        };
        let bytes = demo_dicom(&patient, "CT", "CHEST", STUDIES[0].2, "20261101");
        let meta = read_metadata(&bytes).expect("reads");
        assert_eq!((meta.modality.as_deref(), meta.body_part.as_deref()), (Some("CT"), Some("CHEST")));
        assert_eq!((meta.rows, meta.columns, meta.pixels), (Some(256), Some(256), PixelStatus::Native));
        assert_eq!(meta.study_date.as_deref(), Some("2026-11-01"));
        let file = FileIdentity {
            patient_id: meta.patient_id.clone(),
            patient_name: meta.patient_name.clone(),
            birth_date: meta.patient_birth_date.clone(),
        };
        let chart = ChartIdentity {
            mrn: patient.mrn.clone(),
            full_name: patient.full_name.clone(),
            date_of_birth: patient.date_of_birth.clone(),
        };
        assert_eq!(compare(&file, &chart), Identity::Matched);
        let grey = decode_preview(&bytes, &meta).expect("decodes").expect("native pixels");
        assert_eq!((grey.width(), grey.height()), (256, 256));
    }
}
