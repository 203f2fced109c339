//! TOTP (RFC 6238): HMAC-SHA1, 30-second steps, 6 digits, a 160-bit secret in base32, as
//! every authenticator app expects. A code is accepted for the current step and one step
//! either side (clock drift); the caller records the step it matched and refuses that step or
//! an earlier one afterwards, so a code cannot be replayed within its window.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Seconds per step.
pub const STEP_SECS: i64 = 30;
const DIGITS: u32 = 6;

/// A new random secret, base32 without padding (what the app is given).
pub fn generate_secret() -> String {
    let bytes: [u8; 20] = rand::random();
    data_encoding::BASE32_NOPAD.encode(&bytes)
}

/// The `otpauth://` URI that authenticator apps read from a QR code.
pub fn provisioning_uri(secret_b32: &str, issuer: &str, account: &str) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret_b32}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(issuer),
        enc(account),
        enc(issuer)
    )
}

/// The code for `step` (RFC 4226 dynamic truncation).
pub fn code_at(secret: &[u8], step: i64) -> String {
    // HMAC accepts keys of any length; the error case cannot happen.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else { return String::new() };
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let bin = u32::from_be_bytes([digest[offset] & 0x7f, digest[offset + 1], digest[offset + 2], digest[offset + 3]]);
    format!("{:0width$}", bin % 10u32.pow(DIGITS), width = DIGITS as usize)
}

/// The step a unix time (seconds) falls in.
pub fn step_of(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// If `code` matches the step of `unix_secs` or one either side, the step it matched.
pub fn matching_step(secret_b32: &str, code: &str, unix_secs: i64) -> Option<i64> {
    let code = code.trim().replace(' ', "");
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secret = data_encoding::BASE32_NOPAD.decode(secret_b32.as_bytes()).ok()?;
    let now = step_of(unix_secs);
    // Compare every candidate, not stopping early, so timing does not say which one matched.
    let mut found = None;
    for step in [now - 1, now, now + 1] {
        let expected = code_at(&secret, step);
        if constant_eq(expected.as_bytes(), code.as_bytes()) {
            found = found.or(Some(step));
        }
    }
    found
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows (8 digits there; the last 6 are ours).
    #[test]
    fn matches_the_rfc_test_vectors() {
        let secret = b"12345678901234567890";
        for (t, expected8) in [
            (59i64, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
        ] {
            assert_eq!(code_at(secret, step_of(t)), &expected8[2..], "t={t}");
        }
    }

    #[test]
    fn accepts_one_step_of_drift_and_no_more() {
        let secret = generate_secret();
        let raw = data_encoding::BASE32_NOPAD.decode(secret.as_bytes()).expect("base32");
        let t = 1_700_000_000;
        let now = step_of(t);
        assert_eq!(matching_step(&secret, &code_at(&raw, now), t), Some(now));
        assert_eq!(matching_step(&secret, &code_at(&raw, now - 1), t), Some(now - 1));
        assert_eq!(matching_step(&secret, &code_at(&raw, now + 1), t), Some(now + 1));
        assert_eq!(matching_step(&secret, &code_at(&raw, now - 3), t), None);
        assert_eq!(matching_step(&secret, "12345", t), None);
        assert_eq!(matching_step(&secret, "abcdef", t), None);
    }

    #[test]
    fn the_uri_names_issuer_and_account() {
        let uri = provisioning_uri("ABC", "careport", "ada@example.org");
        assert!(uri.starts_with("otpauth://totp/careport:ada@example.org?secret=ABC&issuer=careport"), "{uri}");
    }
}
