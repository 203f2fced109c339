//! What an answer contains, for the cells whose status was the expected one: a list holds what
//! its caller may see and nothing else (a status alone would pass a list that shows everyone
//! everything), a read returns the resource asked for, a download its bytes — and a download by
//! signed link is audited as one.

use std::collections::BTreeSet;

use serde_json::Value;
use uuid::Uuid;

use super::callers::Who;
use super::targets::{CONTENT, Variant, record_of};
use super::world::{Person, World};

fn ids(v: &Value, key: &str) -> BTreeSet<String> {
    v["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|i| i[key].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// `want` ⊆ `got`, and `got` ∩ `never` = ∅.
fn holds(got: &BTreeSet<String>, want: &[Uuid], never: &[Uuid]) -> Result<(), String> {
    let missing: Vec<_> = want.iter().filter(|id| !got.contains(&id.to_string())).collect();
    let extra: Vec<_> = never.iter().filter(|id| got.contains(&id.to_string())).collect();
    if missing.is_empty() && extra.is_empty() { Ok(()) } else { Err(format!("lacks {missing:?}, shows {extra:?}")) }
}

/// Check the answer of a cell that got its expected status `status`.
pub async fn check(
    w: &World,
    (method, path, variant): (&str, &str, Variant),
    who: Who,
    subject: Option<&Person>,
    status: u16,
    body: &[u8],
) -> Result<(), String> {
    if !(200..300).contains(&status) {
        return Ok(());
    }
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let (p, like) = (w.patient.id, who.like());
    // Who sees the patient (the same rule as reading them), by role and relation.
    let sees_patient = matches!(like, Who::PatientSelf | Who::DoctorAssigned | Who::NurseSameDept | Who::Admin);
    match (method, path, variant) {
        ("get", "/api/v1/patients", _) => {
            let got = ids(&v, "id");
            match like {
                Who::PatientSelf if got != BTreeSet::from([p.to_string()]) => Err(format!("a patient sees {got:?}")),
                Who::PatientOther if got != BTreeSet::from([w.other_patient.id.to_string()]) => {
                    Err(format!("a patient sees {got:?}"))
                }
                _ if sees_patient => holds(&got, &[p], &[w.gone_patient.id]),
                _ => holds(&got, &[], &[p, w.gone_patient.id]),
            }
        }
        ("get", "/api/v1/appointments", _) => {
            let got = ids(&v, "id");
            match like {
                Who::PatientOther if !got.is_empty() => Err(format!("another patient sees {got:?}")),
                _ if sees_patient => holds(&got, &[w.appointment], &[]),
                _ => holds(&got, &[], &[w.appointment]),
            }
        }
        ("get", "/api/v1/patients/{id}/records", _) => {
            let got = ids(&v, "id");
            let all = [w.record, w.sensitive, w.uploaded];
            // A way into one record (a grant, a link, a token narrowed to it) lists that one.
            if matches!(who, Who::GrantHolder | Who::LinkBearer | Who::NarrowedSharer) {
                return holds(&got, &[w.record], &[w.sensitive, w.uploaded]);
            }
            match like {
                // A narrowed token reads the patient, not their records.
                Who::Attenuated => holds(&got, &[], &all),
                Who::NurseSameDept => holds(&got, &[w.record, w.uploaded], &[w.sensitive]),
                // Administrators see what is granted to them: nothing here.
                Who::Admin => holds(&got, &[], &all),
                _ => holds(&got, &all, &[]),
            }
        }
        ("get", "/api/v1/records/{id}/grants", _) => {
            let got = ids(&v, "id");
            let ours = [w.grant, w.lapsed_grant];
            if record_of(w, who) == w.record { holds(&got, &ours, &[]) } else { holds(&got, &[], &ours) }
        }
        ("get", "/api/v1/admin/users", _) => {
            let got = ids(&v, "id");
            let want: BTreeSet<String> = w.people().iter().map(|p| p.id.to_string()).collect();
            if got == want { Ok(()) } else { Err(format!("the setup's accounts are {want:?}, listed {got:?}")) }
        }
        ("get", "/api/v1/admin/audit", _) => {
            let items = v["items"].as_array().cloned().unwrap_or_default();
            let others = items.iter().filter(|e| e["patient_id"].as_str() != Some(&p.to_string())).count();
            if items.is_empty() || others > 0 {
                Err(format!("{} events, {others} about someone else", items.len()))
            } else {
                Ok(())
            }
        }
        ("get", "/api/v1/me/access-log", _) => {
            let got = ids(&v, "resource_id");
            if like == Who::PatientSelf {
                holds(&got, &[w.record], &[])
            } else {
                holds(&got, &[], &[p, w.record, w.sensitive, w.uploaded, w.appointment])
            }
        }
        ("get", "/api/v1/patients/{id}/care-team", _) => holds(&ids(&v, "clinician_id"), &[w.doctor.id], &[]),
        ("get", "/api/v1/clinicians", _) => holds(&ids(&v, "id"), &[w.doctor.id], &[]),
        ("get", "/api/v1/patients/{id}" | "/api/v1/users/{id}", _) => same(&v["id"], p),
        ("get", "/api/v1/auth/me", _) => same(&v["id"], subject.map(|s| s.id).unwrap_or_default()),
        ("get", "/api/v1/appointments/{id}", _) => same(&v["id"], w.appointment),
        ("get", "/api/v1/records/{id}", _) => same(&v["id"], record_of(w, who)),
        ("get", "/api/v1/dashboard", _) => {
            let (role, me) = subject.map(|s| (s.role.as_str(), s.id.to_string())).unwrap_or_default();
            match v["role"].as_str() {
                Some(r) if r == role && (r != "patient" || v["patient_id"] == me) => Ok(()),
                _ => Err(format!("the dashboard of a {role}: {v}")),
            }
        }
        ("get", CONTENT, _) => {
            if record_of(w, who) == w.record && body != w.content.as_slice() {
                return Err(format!("{} bytes, not the record's", body.len()));
            }
            if matches!(who, Who::LinkQuery | Who::LinkBearer) { signed_link_audited(w).await } else { Ok(()) }
        }
        _ => Ok(()),
    }
}

fn same(got: &Value, want: Uuid) -> Result<(), String> {
    if got.as_str() == Some(&want.to_string()) { Ok(()) } else { Err(format!("returned {got}, not {want}")) }
}

/// The newest download of the record is audited as made by signed link.
async fn signed_link_audited(w: &World) -> Result<(), String> {
    let filter = careport_store::audit::Filter {
        action: Some("record.download".into()),
        patient: Some(w.patient.id),
        limit: 1,
        ..Default::default()
    };
    let events =
        careport_store::audit::list(w.app.services.store_handle(), &filter).await.map_err(|e| e.to_string())?;
    match events.first() {
        Some(e) if e.detail.as_deref().is_some_and(|d| d.contains("by signed link")) => Ok(()),
        Some(e) => Err(format!("the download is audited as {:?}, not by signed link", e.detail)),
        None => Err("the download is not audited".to_owned()),
    }
}
