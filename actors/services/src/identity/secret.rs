//! Opaque secrets handed to users (refresh tokens, e-mail links, recovery codes) and the
//! SHA-256 digests that are all the store keeps of them. These secrets are 256-bit random, so a
//! fast hash is right: there is nothing to brute-force.

use sha2::{Digest, Sha256};

/// A new random token: 32 bytes, URL-safe base64 without padding (43 characters).
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    data_encoding::BASE64URL_NOPAD.encode(&bytes)
}

/// The hex SHA-256 of a token, as stored and looked up.
pub fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Ten recovery codes, `xxxxx-xxxxx` in lower-case base32 (50 bits each).
pub fn recovery_codes() -> Vec<String> {
    (0..10)
        .map(|_| {
            let bytes: [u8; 10] = rand::random();
            let s = data_encoding::BASE32_NOPAD.encode(&bytes).to_lowercase();
            format!("{}-{}", &s[..5], &s[5..10])
        })
        .collect()
}

/// A recovery code as typed (any case, with or without the dash), normalised for hashing.
pub fn normalise_recovery_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_digests_stable() {
        let a = new_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, new_token());
        assert_eq!(digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn recovery_codes_normalise() {
        let codes = recovery_codes();
        assert_eq!(codes.len(), 10);
        let c = &codes[0];
        assert_eq!(normalise_recovery_code(&c.to_uppercase()), c.replace('-', ""));
    }
}
