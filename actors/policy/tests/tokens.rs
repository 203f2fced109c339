//! Access tokens: minting and reading claims, expiry, MFA pending, keys and rotation, tampering,
//! attenuation blocks that try to add claims, and the verified-token cache.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use biscuit_auth::builder::BlockBuilder;
use careport_domain::Role;
use careport_policy::Decision::{Allow, Deny};
use careport_policy::{KeyPair, KeyRing, StaffRole, TokenCache, TokenError};
use common::*;
use uuid::Uuid;

#[test]
fn claims_survive_a_round_trip_through_a_token() {
    let r = ring();
    let mut c = nurse();
    c.mfa_pending = true;
    let t = token(&r, &c);
    let got = t.claims();
    assert_eq!(got.user, c.user);
    assert_eq!(got.role, Role::Clinician);
    assert_eq!(got.staff_role, Some(StaffRole::Nurse));
    assert_eq!(got.department.as_deref(), Some("cardiology"));
    assert_eq!(got.session, c.session);
    assert!(got.mfa_pending);
    // Biscuit dates are whole seconds.
    let d = c.expires_at.duration_since(got.expires_at).expect("truncated, not later");
    assert!(d < Duration::from_secs(1));
    assert!(!t.is_attenuated());
}

#[test]
fn a_staff_role_on_a_non_clinician_is_refused_at_mint() {
    let mut c = patient();
    c.staff_role = Some(StaffRole::Doctor);
    assert!(ring().mint(&c).is_err());
}

#[test]
fn a_department_with_a_quote_is_refused_at_mint() {
    let mut c = nurse();
    c.department = Some("card\"iology".into());
    assert!(ring().mint(&c).is_err());
}

#[test]
fn an_expired_token_is_denied() {
    let (r, p) = (ring(), policies());
    let mut c = admin();
    c.expires_at = SystemTime::now() - Duration::from_secs(60);
    let t = token(&r, &c);
    assert_eq!(decide(&p, &t, "read", "patient", "x", &[]), Deny);
    // A live token is denied once the clock passes its expiry.
    let live = token(&r, &admin());
    assert_eq!(decide(&p, &live, "read", "patient", "x", &[]), Allow);
    let later = SystemTime::now() + Duration::from_secs(3600);
    assert_eq!(decide_at(&p, &live, "read", "patient", "x", &[], later), Deny);
}

#[test]
fn a_token_with_mfa_pending_only_reaches_mfa() {
    let (r, p) = (ring(), policies());
    let mut c = admin();
    c.mfa_pending = true;
    let t = token(&r, &c);
    assert_eq!(decide(&p, &t, "manage", "mfa", &c.user.to_string(), &[]), Allow);
    assert_eq!(decide(&p, &t, "read", "patient", "x", &[]), Deny);
    assert_eq!(decide(&p, &t, "read", "user", &c.user.to_string(), &[]), Deny);
}

#[test]
fn a_token_signed_by_another_key_under_a_known_id_has_a_bad_signature() {
    let other = KeyRing::new(1, KeyPair::new(), vec![]);
    let s = other.mint(&doctor()).expect("mint");
    assert_eq!(ring().verify(&s).err(), Some(TokenError::BadSignature));
}

#[test]
fn a_token_signed_under_an_unknown_key_id_is_refused_as_unknown_key() {
    let other = KeyRing::new(7, KeyPair::new(), vec![]);
    let s = other.mint(&doctor()).expect("mint");
    assert_eq!(ring().verify(&s).err(), Some(TokenError::UnknownKey(Some(7))));
}

#[test]
fn garbled_tokens_are_malformed() {
    let r = ring();
    assert_eq!(r.verify("not a token!").err(), Some(TokenError::Malformed));
    assert_eq!(r.verify("").err(), Some(TokenError::Malformed));
    assert_eq!(r.verify("AAAAAAAA").err(), Some(TokenError::Malformed));
    let s = r.mint(&doctor()).expect("mint");
    assert_eq!(r.verify(&s[..s.len() / 2]).err(), Some(TokenError::Malformed));
}

#[test]
fn a_tampered_token_does_not_verify() {
    let r = ring();
    let s = r.mint(&doctor()).expect("mint");
    // Flip one character of the encoded signature area near the end.
    let mut bytes = s.into_bytes();
    let i = bytes.len() - 10;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(bytes).expect("ascii");
    let err = r.verify(&forged).expect_err("refused");
    assert!(matches!(err, TokenError::BadSignature | TokenError::Malformed), "{err:?}");
}

#[test]
fn a_token_from_the_old_key_verifies_after_rotation_until_the_old_key_is_retired() {
    let old = KeyPair::new();
    let old_public = old.public();
    let before = KeyRing::new(1, old, vec![]);
    let s = before.mint(&doctor()).expect("mint");

    let new = KeyPair::new();
    let new_public = new.public();
    let rotated = KeyRing::new(2, new, vec![(1, old_public)]);
    assert!(rotated.verify(&s).is_ok());
    assert_eq!(rotated.public_key(1), Some(old_public));
    assert_eq!(rotated.public_key(2), Some(new_public));
    let fresh = rotated.mint(&doctor()).expect("mint");
    assert_eq!(rotated.verify(&fresh).expect("verify").biscuit().root_key_id(), Some(2));

    let without_old = KeyRing::new(2, KeyPair::new(), vec![]);
    assert_eq!(without_old.verify(&s).err(), Some(TokenError::UnknownKey(Some(1))));
    assert_eq!(without_old.public_key(1), None);
}

#[test]
fn facts_in_an_attenuation_block_are_not_claims_and_grant_nothing() {
    let (r, p) = (ring(), policies());
    let c = nurse();
    let t = token(&r, &c);
    let block = BlockBuilder::new()
        .code(r#"role("admin"); user("00000000-0000-0000-0000-000000000000"); staff_role("doctor");"#)
        .expect("block");
    let s = t.biscuit().append(block).expect("append").to_base64().expect("encode");
    let t2 = r.verify(&s).expect("verify");
    assert!(t2.is_attenuated());
    assert_eq!(t2.claims().role, Role::Clinician);
    assert_eq!(t2.claims().user, c.user);
    assert_eq!(t2.claims().staff_role, Some(StaffRole::Nurse));
    assert_eq!(decide(&p, &t2, "read", "audit", "*", &[]), Deny);
    assert_eq!(decide(&p, &t2, "delete", "patient", "x", &[]), Deny);
    let pid = Uuid::new_v4();
    let facts = [careport_policy::StoreFact::Assigned {
        clinician: "00000000-0000-0000-0000-000000000000".parse().expect("uuid"),
        patient: pid,
    }];
    assert_eq!(decide(&p, &t2, "write", "patient", &pid.to_string(), &facts), Deny);
}

#[test]
fn the_cache_verifies_once_and_hands_out_the_same_token() {
    let r = ring();
    let cache = TokenCache::new(100);
    let s = r.mint(&doctor()).expect("mint");
    let now = SystemTime::now();
    let a = cache.get_or_verify(&r, &s, now).expect("verify");
    let b = cache.get_or_verify(&r, &s, now).expect("cached");
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(cache.len(), 1);
}

#[test]
fn the_cache_does_not_keep_failures_or_expired_tokens() {
    let r = ring();
    let cache = TokenCache::new(100);
    let now = SystemTime::now();
    assert_eq!(cache.get_or_verify(&r, "garbage", now).err(), Some(TokenError::Malformed));
    let mut c = doctor();
    c.expires_at = now - Duration::from_secs(5);
    let s = r.mint(&c).expect("mint");
    assert_eq!(cache.get_or_verify(&r, &s, now).err(), Some(TokenError::Expired));
    assert!(cache.is_empty());
    // A cached token that expires is dropped on the next lookup.
    let live = r.mint(&doctor()).expect("mint");
    cache.get_or_verify(&r, &live, now).expect("verify");
    let later = now + Duration::from_secs(3600);
    assert_eq!(cache.get_or_verify(&r, &live, later).err(), Some(TokenError::Expired));
    assert!(cache.is_empty());
}

#[test]
fn the_cache_forgets_a_revoked_session_or_user() {
    let r = ring();
    let cache = TokenCache::new(100);
    let now = SystemTime::now();
    let a = doctor();
    let mut a2 = a.clone();
    a2.session = Uuid::new_v4();
    let b = nurse();
    for c in [&a, &a2, &b] {
        cache.get_or_verify(&r, &r.mint(c).expect("mint"), now).expect("verify");
    }
    assert_eq!(cache.len(), 3);
    cache.forget_session(a.session);
    assert_eq!(cache.len(), 2);
    cache.forget_user(a.user);
    assert_eq!(cache.len(), 1);
    cache.forget_user(b.user);
    assert!(cache.is_empty());
}

#[test]
fn the_cache_stays_within_its_capacity() {
    let r = ring();
    let cache = TokenCache::new(10);
    let now = SystemTime::now();
    for _ in 0..25 {
        cache.get_or_verify(&r, &r.mint(&patient()).expect("mint"), now).expect("verify");
        assert!(cache.len() <= 10);
    }
}
