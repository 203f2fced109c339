//! The policy files, rule by rule: the eight cases of the Oso demo this portal ports, then one
//! allow and one deny case for each remaining rule, with tokens minted here from `KeyPair::new()`.

mod common;

use careport_policy::Decision::{Allow, Deny};
use careport_policy::StoreFact;
use common::*;
use uuid::Uuid;

fn assigned(c: Uuid, p: Uuid) -> StoreFact {
    StoreFact::Assigned { clinician: c, patient: p }
}
fn dept(p: Uuid, d: &str) -> StoreFact {
    StoreFact::PatientDepartment { patient: p, department: d.to_owned() }
}
fn doc_of(doc: &str, p: Uuid) -> StoreFact {
    StoreFact::DocumentPatient { document: doc.to_owned(), patient: p }
}

// --- The Oso demo's eight cases -------------------------------------------------------------

#[test]
fn an_admin_may_read_write_and_delete_any_patient_but_reads_a_document_only_through_a_grant() {
    let (r, p) = (ring(), policies());
    let a = admin();
    let t = token(&r, &a);
    let pid = Uuid::new_v4();
    for op in ["read", "write", "delete", "upload"] {
        assert_eq!(decide(&p, &t, op, "patient", &pid.to_string(), &[]), Allow, "{op} patient");
    }
    let facts = [doc_of("doc-1", pid)];
    for (op, want) in [("read", Deny), ("write", Deny), ("delete", Allow), ("share", Allow)] {
        assert_eq!(decide(&p, &t, op, "document", "doc-1", &facts), want, "{op} document");
    }
    let granted = [
        doc_of("doc-1", pid),
        StoreFact::Grant { user: a.user, kind: "document".into(), id: "doc-1".into(), operation: "read".into() },
    ];
    assert_eq!(decide(&p, &t, "read", "document", "doc-1", &granted), Allow, "read through a grant");
}

#[test]
fn a_doctor_reads_and_writes_an_assigned_patient() {
    let (r, p) = (ring(), policies());
    let c = doctor();
    let t = token(&r, &c);
    let pid = Uuid::new_v4();
    let facts = [assigned(c.user, pid)];
    assert_eq!(decide(&p, &t, "read", "patient", &pid.to_string(), &facts), Allow);
    assert_eq!(decide(&p, &t, "write", "patient", &pid.to_string(), &facts), Allow);
}

#[test]
fn a_doctor_cannot_read_a_patient_assigned_to_another_doctor() {
    let (r, p) = (ring(), policies());
    let t = token(&r, &doctor());
    let pid = Uuid::new_v4();
    let facts = [assigned(Uuid::new_v4(), pid), dept(pid, "cardiology")];
    assert_eq!(decide(&p, &t, "read", "patient", &pid.to_string(), &facts), Deny);
    assert_eq!(decide(&p, &t, "write", "patient", &pid.to_string(), &facts), Deny);
}

#[test]
fn a_nurse_reads_a_patient_of_their_department() {
    let (r, p) = (ring(), policies());
    let t = token(&r, &nurse());
    let pid = Uuid::new_v4();
    assert_eq!(decide(&p, &t, "read", "patient", &pid.to_string(), &[dept(pid, "cardiology")]), Allow);
}

#[test]
fn a_nurse_cannot_write_a_patient_even_of_their_department() {
    let (r, p) = (ring(), policies());
    let t = token(&r, &nurse());
    let pid = Uuid::new_v4();
    assert_eq!(decide(&p, &t, "write", "patient", &pid.to_string(), &[dept(pid, "cardiology")]), Deny);
}

#[test]
fn a_nurse_cannot_read_a_patient_of_another_department() {
    let (r, p) = (ring(), policies());
    let t = token(&r, &nurse());
    let pid = Uuid::new_v4();
    assert_eq!(decide(&p, &t, "read", "patient", &pid.to_string(), &[dept(pid, "oncology")]), Deny);
}

#[test]
fn a_doctor_reads_and_shares_documents_of_their_patients_but_cannot_change_or_delete_them() {
    let (r, p) = (ring(), policies());
    let c = doctor();
    let t = token(&r, &c);
    let pid = Uuid::new_v4();
    let facts = [assigned(c.user, pid), doc_of("doc-1", pid)];
    assert_eq!(decide(&p, &t, "read", "document", "doc-1", &facts), Allow);
    assert_eq!(decide(&p, &t, "share", "document", "doc-1", &facts), Allow);
    assert_eq!(decide(&p, &t, "upload", "patient", &pid.to_string(), &facts), Allow);
    // A record is amended by a new upload, not rewritten; deleting is for its uploader and admins.
    assert_eq!(decide(&p, &t, "write", "document", "doc-1", &facts), Deny);
    assert_eq!(decide(&p, &t, "delete", "document", "doc-1", &facts), Deny);
    // And not the documents of somebody else's patient.
    let other = Uuid::new_v4();
    assert_eq!(decide(&p, &t, "read", "document", "doc-2", &[assigned(c.user, pid), doc_of("doc-2", other)]), Deny);
}

#[test]
fn a_nurse_reads_documents_of_department_patients_unless_sensitive_and_cannot_write_them() {
    let (r, p) = (ring(), policies());
    let t = token(&r, &nurse());
    let pid = Uuid::new_v4();
    let open = StoreFact::DocumentUnrestricted { document: "doc-1".into() };
    let facts = [dept(pid, "cardiology"), doc_of("doc-1", pid), open.clone()];
    assert_eq!(decide(&p, &t, "read", "document", "doc-1", &facts), Allow);
    assert_eq!(decide(&p, &t, "write", "document", "doc-1", &facts), Deny);
    assert_eq!(decide(&p, &t, "share", "document", "doc-1", &facts), Deny);
    let sensitive = [dept(pid, "cardiology"), doc_of("doc-1", pid)];
    assert_eq!(decide(&p, &t, "read", "document", "doc-1", &sensitive), Deny, "a sensitive record");
    let elsewhere = [dept(pid, "oncology"), doc_of("doc-1", pid), open];
    assert_eq!(decide(&p, &t, "read", "document", "doc-1", &elsewhere), Deny);
}

// --- Users, sessions, MFA -------------------------------------------------------------------

#[test]
fn a_user_reads_and_edits_their_own_user_record_but_not_anothers() {
    let (r, p) = (ring(), policies());
    let c = nurse();
    let t = token(&r, &c);
    assert_eq!(decide(&p, &t, "read", "user", &c.user.to_string(), &[]), Allow);
    assert_eq!(decide(&p, &t, "write", "user", &c.user.to_string(), &[]), Allow);
    assert_eq!(decide(&p, &t, "delete", "user", &c.user.to_string(), &[]), Deny);
    assert_eq!(decide(&p, &t, "read", "user", &Uuid::new_v4().to_string(), &[]), Deny);
}

#[test]
fn a_user_reads_and_deletes_their_own_sessions_only() {
    let (r, p) = (ring(), policies());
    let c = patient();
    let t = token(&r, &c);
    let own = [StoreFact::Owner { user: c.user, kind: "session".into(), id: "s1".into() }];
    assert_eq!(decide(&p, &t, "read", "session", "s1", &own), Allow);
    assert_eq!(decide(&p, &t, "delete", "session", "s1", &own), Allow);
    assert_eq!(decide(&p, &t, "share", "session", "s1", &own), Deny);
    let theirs = [StoreFact::Owner { user: Uuid::new_v4(), kind: "session".into(), id: "s2".into() }];
    assert_eq!(decide(&p, &t, "delete", "session", "s2", &theirs), Deny);
}

#[test]
fn a_user_manages_their_own_mfa_but_not_anothers() {
    let (r, p) = (ring(), policies());
    let c = doctor();
    let t = token(&r, &c);
    assert_eq!(decide(&p, &t, "manage", "mfa", &c.user.to_string(), &[]), Allow);
    assert_eq!(decide(&p, &t, "manage", "mfa", &Uuid::new_v4().to_string(), &[]), Deny);
}

// --- Ownership and grants -------------------------------------------------------------------

#[test]
fn an_owner_has_full_control_of_their_resource_and_none_of_others() {
    let (r, p) = (ring(), policies());
    let c = doctor();
    let t = token(&r, &c);
    let own = [StoreFact::Owner { user: c.user, kind: "document".into(), id: "doc-9".into() }];
    for op in ["read", "write", "delete", "share"] {
        assert_eq!(decide(&p, &t, op, "document", "doc-9", &own), Allow, "{op}");
    }
    assert_eq!(decide(&p, &t, "manage", "document", "doc-9", &own), Deny);
    assert_eq!(decide(&p, &t, "read", "document", "doc-10", &own), Deny);
}

#[test]
fn a_grant_allows_exactly_the_granted_operation() {
    let (r, p) = (ring(), policies());
    let c = patient();
    let t = token(&r, &c);
    let pid = Uuid::new_v4().to_string();
    let g = [StoreFact::Grant { user: c.user, kind: "patient".into(), id: pid.clone(), operation: "read".into() }];
    assert_eq!(decide(&p, &t, "read", "patient", &pid, &g), Allow);
    assert_eq!(decide(&p, &t, "write", "patient", &pid, &g), Deny);
    assert_eq!(decide(&p, &t, "read", "patient", &Uuid::new_v4().to_string(), &g), Deny);
}

// --- Admin-only families --------------------------------------------------------------------

#[test]
fn only_admins_manage_embeddings_read_the_audit_trail_and_manage_users() {
    let (r, p) = (ring(), policies());
    let a = token(&r, &admin());
    assert_eq!(decide(&p, &a, "manage", "embeddings", "*", &[]), Allow);
    assert_eq!(decide(&p, &a, "read", "audit", "*", &[]), Allow);
    assert_eq!(decide(&p, &a, "manage", "users", "*", &[]), Allow);
    for c in [doctor(), nurse(), patient()] {
        let t = token(&r, &c);
        // Even a stray owner or grant fact does not open an admin-only family.
        let stray = [
            StoreFact::Owner { user: c.user, kind: "audit".into(), id: "*".into() },
            StoreFact::Grant { user: c.user, kind: "users".into(), id: "*".into(), operation: "manage".into() },
        ];
        assert_eq!(decide(&p, &t, "manage", "embeddings", "*", &stray), Deny);
        assert_eq!(decide(&p, &t, "read", "audit", "*", &stray), Deny);
        assert_eq!(decide(&p, &t, "manage", "users", "*", &stray), Deny);
    }
}

// --- Patients ---------------------------------------------------------------------------------

#[test]
fn a_patient_reads_their_own_record_but_not_another_patients() {
    let (r, p) = (ring(), policies());
    let c = patient();
    let t = token(&r, &c);
    assert_eq!(decide(&p, &t, "read", "patient", &c.user.to_string(), &[]), Allow);
    // Writing is allowed (contact details only: the handler limits the fields); deleting is not.
    assert_eq!(decide(&p, &t, "delete", "patient", &c.user.to_string(), &[]), Deny);
    assert_eq!(decide(&p, &t, "read", "patient", &Uuid::new_v4().to_string(), &[]), Deny);
}

#[test]
fn a_patient_reads_their_own_documents_but_not_another_patients() {
    let (r, p) = (ring(), policies());
    let c = patient();
    let t = token(&r, &c);
    assert_eq!(decide(&p, &t, "read", "document", "d1", &[doc_of("d1", c.user)]), Allow);
    assert_eq!(decide(&p, &t, "write", "document", "d1", &[doc_of("d1", c.user)]), Deny);
    assert_eq!(decide(&p, &t, "read", "document", "d2", &[doc_of("d2", Uuid::new_v4())]), Deny);
}

#[test]
fn a_patient_reads_their_own_access_log_but_not_another_patients() {
    let (r, p) = (ring(), policies());
    let c = patient();
    let t = token(&r, &c);
    assert_eq!(decide(&p, &t, "read", "access_log", &c.user.to_string(), &[]), Allow);
    assert_eq!(decide(&p, &t, "read", "access_log", &Uuid::new_v4().to_string(), &[]), Deny);
}

#[test]
fn a_clinician_without_a_matching_rule_is_denied_by_default() {
    let (r, p) = (ring(), policies());
    let t = token(&r, &doctor());
    assert_eq!(decide(&p, &t, "read", "embeddings", "*", &[]), Deny);
    assert_eq!(decide(&p, &t, "delete", "patient", "*", &[]), Deny);
    assert_eq!(decide(&p, &t, "read", "stats", "*", &[]), Deny);
}

// --- The clinic directory and scheduling (clinic.datalog) ------------------------------------

fn appointment(a: Uuid, patient: Uuid, clinician: Uuid) -> StoreFact {
    StoreFact::Appointment { appointment: a, patient, clinician }
}

#[test]
fn a_patient_books_and_updates_their_own_record_but_not_another() {
    let (r, p) = (ring(), policies());
    let c = patient();
    let t = token(&r, &c);
    for op in ["book", "write"] {
        assert_eq!(decide(&p, &t, op, "patient", &c.user.to_string(), &[]), Allow, "{op}");
        assert_eq!(decide(&p, &t, op, "patient", &Uuid::new_v4().to_string(), &[]), Deny, "{op}");
    }
    assert_eq!(decide(&p, &t, "delete", "patient", &c.user.to_string(), &[]), Deny);
    assert_eq!(decide(&p, &t, "create", "patient", "*", &[]), Deny);
}

#[test]
fn clinicians_open_records_and_book_for_the_patients_they_may_see() {
    let (r, p) = (ring(), policies());
    let (d, n) = (doctor(), nurse());
    let (td, tn) = (token(&r, &d), token(&r, &n));
    let pid = Uuid::new_v4();
    assert_eq!(decide(&p, &td, "create", "patient", "*", &[]), Allow);
    assert_eq!(decide(&p, &tn, "create", "patient", "*", &[]), Allow);
    assert_eq!(decide(&p, &td, "book", "patient", &pid.to_string(), &[assigned(d.user, pid)]), Allow);
    assert_eq!(decide(&p, &td, "book", "patient", &pid.to_string(), &[assigned(Uuid::new_v4(), pid)]), Deny);
    assert_eq!(decide(&p, &tn, "book", "patient", &pid.to_string(), &[dept(pid, "cardiology")]), Allow);
    assert_eq!(decide(&p, &tn, "book", "patient", &pid.to_string(), &[dept(pid, "oncology")]), Deny);
    assert_eq!(decide(&p, &td, "assign", "patient", &pid.to_string(), &[assigned(d.user, pid)]), Deny);
}

#[test]
fn an_appointment_is_seen_by_its_patient_its_clinician_and_the_patients_care_team_only() {
    let (r, p) = (ring(), policies());
    let (pat, d, n) = (patient(), doctor(), nurse());
    let aid = Uuid::new_v4();
    let a = aid.to_string();
    let seen_by_doctor = [appointment(aid, pat.user, d.user)];
    for op in ["read", "write", "cancel"] {
        assert_eq!(decide(&p, &token(&r, &pat), op, "appointment", &a, &seen_by_doctor), Allow, "patient {op}");
        assert_eq!(decide(&p, &token(&r, &d), op, "appointment", &a, &seen_by_doctor), Allow, "clinician {op}");
    }
    let other = [appointment(aid, Uuid::new_v4(), Uuid::new_v4())];
    assert_eq!(decide(&p, &token(&r, &pat), "read", "appointment", &a, &other), Deny);
    assert_eq!(decide(&p, &token(&r, &d), "read", "appointment", &a, &other), Deny);
    assert_eq!(decide(&p, &token(&r, &n), "read", "appointment", &a, &other), Deny);
    let p2 = Uuid::new_v4();
    let team = [appointment(aid, p2, Uuid::new_v4()), assigned(d.user, p2), dept(p2, "cardiology")];
    assert_eq!(decide(&p, &token(&r, &d), "cancel", "appointment", &a, &team), Allow, "assigned doctor");
    assert_eq!(decide(&p, &token(&r, &n), "write", "appointment", &a, &team), Allow, "department nurse");
    assert_eq!(decide(&p, &token(&r, &n), "delete", "appointment", &a, &team), Deny, "no such operation");
}

#[test]
fn the_directory_is_read_by_everyone_and_changed_by_its_clinician() {
    let (r, p) = (ring(), policies());
    let d = doctor();
    let someone = doctor();
    for c in [patient(), nurse(), doctor()] {
        assert_eq!(decide(&p, &token(&r, &c), "read", "clinician", &d.user.to_string(), &[]), Allow);
    }
    assert_eq!(decide(&p, &token(&r, &d), "write", "clinician", &d.user.to_string(), &[]), Allow);
    assert_eq!(decide(&p, &token(&r, &someone), "write", "clinician", &d.user.to_string(), &[]), Deny);
    assert_eq!(decide(&p, &token(&r, &patient()), "write", "clinician", &d.user.to_string(), &[]), Deny);
}
