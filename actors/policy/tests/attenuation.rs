//! Attenuated tokens: they can still do what was asked and nothing more, and narrowing an
//! attenuated token narrows further.

mod common;

use std::time::{Duration, SystemTime};

use careport_policy::Decision::{Allow, Deny};
use careport_policy::{Narrowing, StoreFact, attenuate};
use common::*;
use uuid::Uuid;

#[test]
fn an_attenuated_token_does_what_was_asked_and_nothing_more() {
    let (r, p) = (ring(), policies());
    let c = doctor();
    let t = token(&r, &c);
    let (p1, p2) = (Uuid::new_v4(), Uuid::new_v4());
    let facts = [
        StoreFact::Assigned { clinician: c.user, patient: p1 },
        StoreFact::Assigned { clinician: c.user, patient: p2 },
    ];
    let now = SystemTime::now();
    let n = Narrowing {
        operations: Some(vec!["read".into()]),
        resources: Some(vec![("patient".into(), p1.to_string())]),
        expires_at: Some(now + Duration::from_secs(600)),
    };
    let narrowed = r.verify(&attenuate(&t, &n).expect("attenuate")).expect("verify");
    assert_eq!(narrowed.claims(), t.claims());

    assert_eq!(decide_at(&p, &narrowed, "read", "patient", &p1.to_string(), &facts, now), Allow);
    assert_eq!(decide_at(&p, &narrowed, "write", "patient", &p1.to_string(), &facts, now), Deny);
    assert_eq!(decide_at(&p, &narrowed, "read", "patient", &p2.to_string(), &facts, now), Deny);
    let after = now + Duration::from_secs(700);
    assert_eq!(decide_at(&p, &narrowed, "read", "patient", &p1.to_string(), &facts, after), Deny);
    // The original token still can.
    assert_eq!(decide_at(&p, &t, "write", "patient", &p2.to_string(), &facts, after), Allow);
}

#[test]
fn attenuating_an_attenuated_token_narrows_further() {
    let (r, p) = (ring(), policies());
    let t = token(&r, &admin());
    let first = Narrowing {
        operations: Some(vec!["read".into(), "write".into()]),
        resources: Some(vec![("patient".into(), "d1".into()), ("patient".into(), "d2".into())]),
        expires_at: None,
    };
    let once = r.verify(&attenuate(&t, &first).expect("attenuate")).expect("verify");
    assert_eq!(decide(&p, &once, "write", "patient", "d2", &[]), Allow);
    let second = Narrowing { operations: Some(vec!["read".into()]), resources: None, expires_at: None };
    let twice = r.verify(&attenuate(&once, &second).expect("attenuate")).expect("verify");
    assert_eq!(decide(&p, &twice, "read", "patient", "d2", &[]), Allow);
    assert_eq!(decide(&p, &twice, "write", "patient", "d2", &[]), Deny);
    // A wider second block cannot undo the first.
    let wider = Narrowing { operations: Some(vec!["delete".into()]), resources: None, expires_at: None };
    let widened = r.verify(&attenuate(&once, &wider).expect("attenuate")).expect("verify");
    assert_eq!(decide(&p, &widened, "delete", "patient", "d1", &[]), Deny);
    assert_eq!(decide(&p, &widened, "read", "patient", "d3", &[]), Deny);
}

#[test]
fn an_expiry_beyond_the_tokens_own_is_clamped() {
    let (r, p) = (ring(), policies());
    let t = token(&r, &admin());
    let n = Narrowing { expires_at: Some(SystemTime::now() + Duration::from_secs(86_400)), ..Narrowing::default() };
    let a = r.verify(&attenuate(&t, &n).expect("attenuate")).expect("verify");
    let beyond = t.expires_at() + Duration::from_secs(2);
    assert_eq!(decide_at(&p, &a, "read", "patient", "x", &[], beyond), Deny);
    assert_eq!(decide(&p, &a, "read", "patient", "x", &[]), Allow);
}

#[test]
fn empty_lists_and_unknown_names_are_refused() {
    let t = token(&ring(), &admin());
    let bad = [
        Narrowing { operations: Some(vec![]), ..Narrowing::default() },
        Narrowing { resources: Some(vec![]), ..Narrowing::default() },
        Narrowing { operations: Some(vec!["read".into(), "obliterate".into()]), ..Narrowing::default() },
        Narrowing { resources: Some(vec![("planet".into(), "x".into())]), ..Narrowing::default() },
    ];
    for n in bad {
        assert!(attenuate(&t, &n).is_err(), "{n:?}");
    }
}

#[test]
fn resource_ids_with_datalog_syntax_are_data_not_code() {
    let (r, p) = (ring(), policies());
    let t = token(&r, &admin());
    let id = "x\"); allow if true; //";
    let n = Narrowing { resources: Some(vec![("patient".into(), id.into())]), ..Narrowing::default() };
    let a = r.verify(&attenuate(&t, &n).expect("attenuate")).expect("verify");
    assert_eq!(decide(&p, &a, "read", "patient", id, &[]), Allow);
    assert_eq!(decide(&p, &a, "read", "patient", "x", &[]), Deny);
}
