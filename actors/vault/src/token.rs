//! Fernet tokens in their raw (binary) form, written and read in place.
//!
//! A frame is a Fernet token (version `0x80`, timestamp, IV, AES-128-CBC ciphertext with PKCS#7
//! padding, HMAC-SHA256 over all of it, keyed by the signing half of the key) — the format of
//! the spec, so any Fernet implementation opens a frame once it is base64-encoded (a test shows
//! it). The `fernet` crate works on base64 text and fresh buffers; a 1 MiB frame through it
//! costs two base64 passes and several copies. Here the plaintext is encrypted where it lies in
//! the output buffer and opened into a reused one: the same bytes, about twice as fast.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::Mac;

type Encryptor = cbc::Encryptor<aes::Aes128>;
type Decryptor = cbc::Decryptor<aes::Aes128>;
type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Version, timestamp and IV.
pub(crate) const PREFIX: usize = 1 + 8 + 16;
/// The HMAC at the end.
pub(crate) const TAG: usize = 32;

fn mac(signing: &[u8]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(signing).unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"))
}

/// Append to `out` a token sealing what `write_plain` appends (the plaintext is written
/// straight into the token's ciphertext area, then encrypted in place).
pub(crate) fn seal_with(key: &[u8; 32], out: &mut Vec<u8>, write_plain: impl FnOnce(&mut Vec<u8>)) {
    let (signing, encryption) = key.split_at(16);
    let start = out.len();
    let iv: [u8; 16] = rand::random();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    out.push(0x80);
    out.extend_from_slice(&now.to_be_bytes());
    out.extend_from_slice(&iv);
    let body = out.len();
    write_plain(out);
    let plain_len = out.len() - body;
    out.resize(body + (plain_len / 16 + 1) * 16, 0);
    Encryptor::new(encryption.into(), &iv.into())
        .encrypt_padded_mut::<Pkcs7>(&mut out[body..], plain_len)
        .unwrap_or_else(|_| unreachable!("the buffer holds the padded plaintext"));
    let mut m = mac(signing);
    m.update(&out[start..]);
    out.extend_from_slice(&m.finalize().into_bytes());
}

/// Whether `token` is shaped like a token and its HMAC is right (no decryption).
pub(crate) fn verify(signing: &[u8], token: &[u8]) -> bool {
    if token.len() < PREFIX + 16 + TAG || !(token.len() - PREFIX - TAG).is_multiple_of(16) || token[0] != 0x80 {
        return false;
    }
    let (signed, tag) = token.split_at(token.len() - TAG);
    let mut m = mac(signing);
    m.update(signed);
    // verify_slice compares in constant time.
    m.verify_slice(tag).is_ok()
}

/// Open `token` into `plain` (cleared first); false if it does not authenticate or unpad.
pub(crate) fn open_into(key: &[u8; 32], token: &[u8], plain: &mut Vec<u8>) -> bool {
    let (signing, encryption) = key.split_at(16);
    if !verify(signing, token) {
        return false;
    }
    let iv: [u8; 16] = token[9..PREFIX].try_into().unwrap_or([0; 16]);
    let ciphertext = &token[PREFIX..token.len() - TAG];
    plain.clear();
    plain.resize(ciphertext.len(), 0);
    match Decryptor::new(encryption.into(), &iv.into()).decrypt_padded_b2b_mut::<Pkcs7>(ciphertext, plain) {
        Ok(opened) => {
            let n = opened.len();
            plain.truncate(n);
            true
        }
        Err(_) => false,
    }
}

/// The first 32 bytes of the plaintext of `token` (already verified), decrypted alone: enough
/// to read a frame's binding (file id, index, last flag) without opening the frame.
pub(crate) fn open_head(key: &[u8; 32], token: &[u8]) -> Option<[u8; 32]> {
    use aes::cipher::generic_array::GenericArray;
    let (_, encryption) = key.split_at(16);
    if token.len() < PREFIX + 32 + TAG {
        return None;
    }
    let iv: [u8; 16] = token[9..PREFIX].try_into().ok()?;
    let mut head = [0u8; 32];
    head.copy_from_slice(&token[PREFIX..PREFIX + 32]);
    let mut decryptor = Decryptor::new(encryption.into(), &iv.into());
    let (first, second) = head.split_at_mut(16);
    decryptor.decrypt_block_mut(GenericArray::from_mut_slice(first));
    decryptor.decrypt_block_mut(GenericArray::from_mut_slice(second));
    Some(head)
}
