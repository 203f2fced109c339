//! List scopes: whose patients and appointments a caller's lists show.
//!
//! The single-resource rules are the policies (`patients.datalog`, `clinic.datalog`); a list
//! cannot ask the policies row by row at the speed a list needs, so its scope is this Rust
//! reading of the same rules, turned into SQL by the store. The two are kept equal by the
//! visibility property test (`tests/api/visibility.rs`), which checks on both backends that for
//! every caller of a generated clinic a list returns exactly the ids the single read allows.
//! A rule changed in the policies is changed here too, or that test fails.

use careport_domain::Role;
use careport_policy::StaffRole;
use careport_store::{appointments, knowledge, patients};

use crate::identity::Caller;

/// Whose patient records `caller` may list: a patient their own, a doctor their assigned
/// patients, a nurse their department's, an administrator everyone.
pub fn patients(caller: &Caller) -> patients::Scope {
    let claims = caller.token.claims();
    if claims.mfa_pending {
        return patients::Scope::Nothing;
    }
    match (claims.role, claims.staff_role) {
        (Role::Admin, _) => patients::Scope::All,
        (Role::Patient, _) => patients::Scope::Own(claims.user),
        (Role::Clinician, Some(StaffRole::Doctor)) => patients::Scope::Assigned(claims.user),
        (Role::Clinician, Some(StaffRole::Nurse)) => {
            claims.department.clone().map(patients::Scope::Department).unwrap_or(patients::Scope::Nothing)
        }
        (Role::Clinician, None) => patients::Scope::Nothing,
    }
}

/// Whose appointments `caller` may list: a patient's own; a doctor's own and their assigned
/// patients'; a nurse's own and their department's; all for an administrator.
pub fn appointments(caller: &Caller) -> appointments::Scope {
    let claims = caller.token.claims();
    if claims.mfa_pending {
        return appointments::Scope::Nothing;
    }
    match (claims.role, claims.staff_role, &claims.department) {
        (Role::Admin, _, _) => appointments::Scope::All,
        (Role::Patient, _, _) => appointments::Scope::Own(claims.user),
        (Role::Clinician, Some(StaffRole::Doctor), _) => appointments::Scope::Doctor(claims.user),
        (Role::Clinician, Some(StaffRole::Nurse), Some(d)) => appointments::Scope::Nurse(claims.user, d.clone()),
        (Role::Clinician, Some(StaffRole::Nurse), None) => appointments::Scope::Nurse(claims.user, String::new()),
        (Role::Clinician, None, _) => appointments::Scope::Nothing,
    }
}

/// Whether `caller` sees soft-deleted patient records (and may ask lists to include them):
/// administrators only. Everyone else is told a deleted record does not exist.
pub fn sees_deleted(caller: &Caller) -> bool {
    caller.role() == Role::Admin && !caller.token.claims().mfa_pending
}

/// Which knowledge documents `caller` finds (searches, the document list, reading one), before
/// the filters they ask for:
/// - curated documents by audience: patients `patient` and `all`, staff every audience;
/// - restricted ones only within their department: a clinician's own, a patient's (their
///   record's and their care team's); restricted documents of no department are for staff;
///   administrators see every curated document;
/// - a patient's own records opted in: only by whoever may read the record now (the reading of
///   `documents.datalog` in `knowledge::readable_records`), so revoking a grant, changing a care
///   team or deleting the record hides its text from the next search.
pub async fn knowledge(
    db: &careport_store::Db,
    caller: &Caller,
) -> Result<knowledge::DocFilter, careport_domain::Error> {
    let claims = caller.token.claims();
    let mut f = knowledge::DocFilter::default();
    if claims.mfa_pending {
        return Ok(f);
    }
    let me = claims.user;
    let err = careport_domain::Error::store;
    let (mode, department) = match (claims.role, claims.staff_role) {
        (Role::Admin, _) => {
            f.all_documents = true;
            ("none", String::new())
        }
        (Role::Patient, _) => {
            f.audiences = vec!["patient".into(), "all".into()];
            f.restricted_departments = knowledge::patient_departments(db, me).await.map_err(err)?;
            ("self", String::new())
        }
        (Role::Clinician, staff) => {
            f.audiences = vec!["patient".into(), "clinician".into(), "all".into()];
            f.restricted_departments = claims.department.clone().into_iter().collect();
            f.restricted_without_department = true;
            match staff {
                Some(StaffRole::Doctor) => ("assigned", String::new()),
                Some(StaffRole::Nurse) => ("department", claims.department.clone().unwrap_or_default()),
                None => ("none", String::new()),
            }
        }
    };
    f.records = knowledge::readable_records(db, mode, me, &department).await.map_err(err)?;
    Ok(f)
}
