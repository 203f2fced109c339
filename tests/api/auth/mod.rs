//! The identity flows end to end over HTTP, one file per area: registration and verification, login, refresh
//! rotation and reuse, logout, passwords, throttling, MFA, invitations, cookies and CSRF,
//! attenuation, expiry, idle timeout, deactivation and key rotation.

mod admin;
mod login;
mod mfa;
mod registration;
mod sessions;
mod tokens;

use std::time::{Duration, SystemTime};

use careport_actors::identity::totp;
use careport_domain::Role;
use careport_policy::{Claims, KeyPair, KeyRing, StaffRole};
use careport_tests::{PASSWORD, TestApp, spawn_app, spawn_app_with};
use serde_json::{Value, json};
use uuid::Uuid;

pub(super) fn unique(name: &str) -> String {
    format!("{name}-{}@example.org", &Uuid::new_v4().simple().to_string()[..8])
}

/// The link to `page` in an e-mail.
pub(super) fn link(mail: &str, page: &str) -> String {
    let needle = format!("/{page}?token=");
    mail.lines()
        .map(str::trim)
        .find(|l| l.contains(&needle) && l.starts_with("http"))
        .unwrap_or_else(|| panic!("no {page} link in:\n{mail}"))
        .to_owned()
}

/// An `application/x-www-form-urlencoded` body, as a browser sends a form.
pub(super) fn form<V: AsRef<str>>(pairs: &[(&str, V)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v.as_ref()))).collect::<Vec<_>>().join("&")
}

pub(super) fn token_of(link: &str) -> String {
    link.split("token=").nth(1).expect("token").to_owned()
}

pub(super) async fn code(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

pub(super) async fn register(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/auth/register",
        None,
        &json!({"email": email, "password": password, "full_name": "Pat Patient"}),
    )
    .await
}

pub(super) fn current_code(secret: &str, offset_steps: i64) -> String {
    let raw = data_encoding::BASE32_NOPAD.decode(secret.as_bytes()).expect("base32");
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("time").as_secs() as i64;
    totp::code_at(&raw, totp::step_of(now) + offset_steps)
}

pub(super) fn cookie_named<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
}
