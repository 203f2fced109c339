//! The store facts a decision needs, and no more: a patient's care team and departments, an
//! appointment's parties, a medical record's chart, sensitivity and the caller's grants on it,
//! a session's owner, a chat session's owner. The policies read them as `assigned`, `patient_department`,
//! `appointment`, `document_patient`, `document_unrestricted`, `grant` and `owner`.

use careport_domain::Error;
use careport_domain::time::now_ms;
use careport_policy::StoreFact;
use careport_store::assignments::TeamMember;
use careport_store::patients::PatientRow;
use careport_store::vault::RecordRow;
use careport_store::{Db, appointments, assignments, sessions};
use uuid::Uuid;

use super::Access;
use crate::door::store_err;
use crate::identity::Caller;

/// The facts a decision about `(kind, id)` needs.
pub(super) async fn facts_for(access: &Access, caller: &Caller, kind: &str, id: &str) -> Result<Vec<StoreFact>, Error> {
    let db = access.db();
    let mut facts = Vec::new();
    match kind {
        "patient" | "access_log" => {
            let Ok(patient) = Uuid::parse_str(id) else { return Ok(facts) };
            patient_facts(db, patient, &mut facts).await?;
        }
        "appointment" => {
            let Ok(aid) = Uuid::parse_str(id) else { return Ok(facts) };
            let Some(a) = appointments::get(db, aid).await.map_err(store_err)? else { return Ok(facts) };
            facts.push(StoreFact::Appointment { appointment: aid, patient: a.patient_id, clinician: a.clinician_id });
            patient_facts(db, a.patient_id, &mut facts).await?;
        }
        "document" => {
            let Ok(rid) = Uuid::parse_str(id) else { return Ok(facts) };
            let Some(r) = careport_store::vault::record(db, rid).await.map_err(store_err)? else {
                return Ok(facts);
            };
            // A deleted record is nobody's to open: no facts, so only the families that need
            // none (administrators' delete and share) can reach it, and they 404 on it.
            if r.deleted_at.is_none() {
                facts = access.document_facts(caller, &r, true).await?;
            }
        }
        "session" => {
            let Ok(sid) = Uuid::parse_str(id) else { return Ok(facts) };
            // The token itself proves its own session; other sessions are looked up.
            if sid == caller.session() {
                facts.push(StoreFact::Owner { user: caller.user(), kind: "session".into(), id: id.to_owned() });
            } else if let Some(s) = sessions::get(db, sid).await.map_err(store_err)?
                && s.user_id == caller.user()
            {
                facts.push(StoreFact::Owner { user: s.user_id, kind: "session".into(), id: id.to_owned() });
            }
        }
        "reports" | "workflow" | "billing" => {
            // A chart's reports, workflow or account: the patient's care team decides.
            let Ok(patient) = Uuid::parse_str(id) else { return Ok(facts) };
            patient_facts(db, patient, &mut facts).await?;
        }
        "report" => {
            let Ok(rid) = Uuid::parse_str(id) else { return Ok(facts) };
            if let Some(r) = careport_store::reports::get(db, rid).await.map_err(store_err)? {
                facts.push(StoreFact::Chart { kind: "report".into(), id: id.to_owned(), patient: r.patient_id });
                if r.state != "draft" {
                    facts.push(StoreFact::ReportFinal { report: id.to_owned() });
                }
                patient_facts(db, r.patient_id, &mut facts).await?;
            }
        }
        "order" => {
            let Ok(oid) = Uuid::parse_str(id) else { return Ok(facts) };
            if let Some(o) = careport_store::workflow::get(db, oid).await.map_err(store_err)? {
                facts.push(StoreFact::Chart { kind: "order".into(), id: id.to_owned(), patient: o.patient_id });
                patient_facts(db, o.patient_id, &mut facts).await?;
            }
        }
        "bill" => {
            let Ok(bid) = Uuid::parse_str(id) else { return Ok(facts) };
            if let Some(patient) = careport_store::billing::patient_of(db, bid).await.map_err(store_err)? {
                facts.push(StoreFact::Chart { kind: "bill".into(), id: id.to_owned(), patient });
            }
        }
        "chat_session" => {
            let Ok(sid) = Uuid::parse_str(id) else { return Ok(facts) };
            if let Some(owner) = careport_store::chat::owner(db, sid).await.map_err(store_err)? {
                facts.push(StoreFact::Owner { user: owner, kind: "chat_session".into(), id: id.to_owned() });
            }
        }
        _ => {}
    }
    Ok(facts)
}

/// `assigned` and `patient_department` facts of one patient.
pub(crate) async fn patient_facts(db: &Db, patient: Uuid, facts: &mut Vec<StoreFact>) -> Result<(), Error> {
    let mut departments: Vec<String> = Vec::new();
    for (clinician, dept) in assignments::care_team(db, patient).await.map_err(store_err)? {
        if let Some(clinician) = clinician {
            facts.push(StoreFact::Assigned { clinician, patient });
        }
        if let Some(d) = dept
            && !departments.contains(&d)
        {
            departments.push(d);
        }
    }
    facts.extend(departments.into_iter().map(|department| StoreFact::PatientDepartment { patient, department }));
    Ok(())
}

/// The same facts as [`patient_facts`], from a record and its care team already loaded (the hot
/// read `GET /patients/{id}` loads both in one query).
pub(crate) fn patient_facts_of(p: &PatientRow, team: &[TeamMember]) -> Vec<StoreFact> {
    let mut facts = Vec::new();
    let mut departments: Vec<&str> = Vec::new();
    for m in team {
        facts.push(StoreFact::Assigned { clinician: m.clinician_id, patient: p.id });
        departments.extend(m.department.as_deref());
    }
    departments.extend(p.department.as_deref());
    departments.sort_unstable();
    departments.dedup();
    facts.extend(
        departments.into_iter().map(|d| StoreFact::PatientDepartment { patient: p.id, department: d.to_owned() }),
    );
    facts
}

impl Access {
    /// The facts about a medical record: its chart and the chart's care team, whether nurses may
    /// read it, and — with `grants` — the caller's live grants on it (the uploader may delete).
    pub(crate) async fn document_facts(
        &self,
        caller: &Caller,
        record: &RecordRow,
        grants: bool,
    ) -> Result<Vec<StoreFact>, Error> {
        let chart = self.chart_facts(record.patient_id).await?;
        self.record_facts(caller, record, &chart, grants).await
    }

    /// The care-team facts of a chart (`assigned`, `patient_department`), to reuse for each of
    /// its records with [`Access::record_facts`].
    pub(crate) async fn chart_facts(&self, patient: Uuid) -> Result<Vec<StoreFact>, Error> {
        let mut facts = Vec::new();
        patient_facts(self.db(), patient, &mut facts).await?;
        Ok(facts)
    }

    /// [`Access::document_facts`] with the chart's facts already at hand.
    pub(crate) async fn record_facts(
        &self,
        caller: &Caller,
        record: &RecordRow,
        chart: &[StoreFact],
        grants: bool,
    ) -> Result<Vec<StoreFact>, Error> {
        let id = record.id.to_string();
        let mut facts = vec![StoreFact::DocumentPatient { document: id.clone(), patient: record.patient_id }];
        if !record.sensitive {
            facts.push(StoreFact::DocumentUnrestricted { document: id.clone() });
        }
        facts.extend_from_slice(chart);
        if grants {
            let live = careport_store::vault::live_grant_keys(self.db(), record.id, caller.user(), now_ms())
                .await
                .map_err(store_err)?;
            let grant = |operation: &str| StoreFact::Grant {
                user: caller.user(),
                kind: "document".into(),
                id: id.clone(),
                operation: operation.into(),
            };
            if !live.is_empty() {
                facts.push(grant("read"));
            }
            if record.uploaded_by == caller.user() {
                facts.push(grant("delete"));
            }
        }
        Ok(facts)
    }
}
