//! Shared fixtures for the policy tests: a key ring from a fresh `KeyPair`, the real policy
//! files, and claims for each kind of user.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use careport_domain::Role;
use careport_policy::{
    Claims, Decision, KeyPair, KeyRing, Policies, PolicyLimits, Request, Resource, StaffRole, StoreFact, VerifiedToken,
};
use uuid::Uuid;

pub fn policies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

/// The shipped policies, with a time budget generous enough for a debug build on a loaded
/// machine: these tests check decisions (the 5 ms production budget once failed an attenuated
/// token's general-path run here under CI load). The budget itself is tested in `loading.rs`.
pub fn policies() -> Policies {
    let limits = PolicyLimits { max_time: Duration::from_secs(1), ..PolicyLimits::default() };
    Policies::load_dir(policies_dir()).expect("the policy files load").with_limits(limits)
}

pub fn ring() -> KeyRing {
    KeyRing::new(1, KeyPair::new(), vec![])
}

pub fn claims(role: Role, staff_role: Option<StaffRole>, department: Option<&str>) -> Claims {
    Claims {
        user: Uuid::new_v4(),
        role,
        staff_role,
        department: department.map(str::to_owned),
        session: Uuid::new_v4(),
        expires_at: SystemTime::now() + Duration::from_secs(900),
        mfa_pending: false,
    }
}

pub fn doctor() -> Claims {
    claims(Role::Clinician, Some(StaffRole::Doctor), Some("cardiology"))
}

pub fn nurse() -> Claims {
    claims(Role::Clinician, Some(StaffRole::Nurse), Some("cardiology"))
}

pub fn admin() -> Claims {
    claims(Role::Admin, None, None)
}

pub fn patient() -> Claims {
    claims(Role::Patient, None, None)
}

pub fn token(ring: &KeyRing, claims: &Claims) -> VerifiedToken {
    let s = ring.mint(claims).expect("mint");
    ring.verify(&s).expect("verify")
}

/// Decide one request now.
pub fn decide(p: &Policies, t: &VerifiedToken, op: &str, kind: &str, id: &str, facts: &[StoreFact]) -> Decision {
    decide_at(p, t, op, kind, id, facts, SystemTime::now())
}

pub fn decide_at(
    p: &Policies,
    t: &VerifiedToken,
    op: &str,
    kind: &str,
    id: &str,
    facts: &[StoreFact],
    now: SystemTime,
) -> Decision {
    let req = Request { operation: op, resource: Resource { kind, id }, now, facts };
    let decision = p.authorize(t, &req).expect("a decision");
    // Plain tokens take the compiled path; check that Biscuit's general path agrees.
    if p.files() == policies().files() {
        // A generous time limit: only the decisions are compared, and a debug build under load
        // can pass 5 ms on the general path.
        let general = general_policies().with_limits(PolicyLimits { max_time: Duration::from_secs(1), ..p.limits() });
        assert_eq!(general.authorize(t, &req).expect("a decision"), decision, "general path: {op} {kind} {id}");
    }
    decision
}

/// The real policy files plus one that restates `resource` facts as a rule: no change to any
/// decision, but it turns the compiled path off, so every request takes Biscuit's general path.
pub fn general_policies() -> Policies {
    let mut sources: Vec<(String, String)> = std::fs::read_dir(policies_dir())
        .expect("policies/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "datalog"))
        .map(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            (name, std::fs::read_to_string(&p).expect("read"))
        })
        .collect();
    sources.sort();
    sources.push(("zz_general_path.datalog".to_owned(), "resource($k, $id) <- resource($k, $id);".to_owned()));
    Policies::from_sources(sources).expect("load")
}
