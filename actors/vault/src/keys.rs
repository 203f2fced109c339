//! Keys: data keys (one per file), user keys (one per user) and the master key, all Fernet keys
//! (32 random bytes). A key is wrapped by encrypting its bytes, as a Fernet token, with the key
//! above it. `Key` zeroes its bytes on drop and never prints them.

use fernet::Fernet;
use zeroize::Zeroizing;

use crate::VaultError;

/// A Fernet key: a file's data key, or a user's key. A clone zeroes its bytes on drop too.
#[derive(Clone)]
pub struct Key {
    bytes: Zeroizing<[u8; 32]>,
    fernet: Fernet,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A fresh random key.
    pub fn generate() -> Self {
        let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(rand::random());
        Self::from_bytes(&bytes[..]).unwrap_or_else(|_| unreachable!("32 bytes always make a Fernet key"))
    }

    fn from_bytes(raw: &[u8]) -> Result<Self, VaultError> {
        let bytes: [u8; 32] = raw.try_into().map_err(|_| VaultError::BadKey)?;
        let b64 = Zeroizing::new(data_encoding::BASE64URL.encode(&bytes));
        let fernet = Fernet::new(&b64).ok_or(VaultError::BadKey)?;
        Ok(Self { bytes: Zeroizing::new(bytes), fernet })
    }

    /// A key given as Fernet's text form (URL-safe base64 of 32 bytes), as the master key is
    /// configured.
    pub fn from_text(text: &str) -> Result<Self, VaultError> {
        let raw =
            Zeroizing::new(data_encoding::BASE64URL.decode(text.trim().as_bytes()).map_err(|_| VaultError::BadKey)?);
        Self::from_bytes(&raw)
    }

    /// A key made of these 32 bytes (a system key kept elsewhere, such as the audit chain's).
    pub fn from_raw(bytes: [u8; 32]) -> Self {
        let bytes = Zeroizing::new(bytes);
        Self::from_bytes(&bytes[..]).unwrap_or_else(|_| unreachable!("32 bytes always make a Fernet key"))
    }

    /// `data` sealed with this key as one Fernet token (a record's OCR text, under its file's
    /// data key).
    pub fn seal(&self, data: &[u8]) -> String {
        self.fernet.encrypt(data)
    }

    /// The data inside a token [`Key::seal`] made with this key.
    pub fn open(&self, token: &str) -> Result<Vec<u8>, VaultError> {
        self.fernet.decrypt(token).map_err(|_| VaultError::Integrity(0))
    }

    /// The raw bytes, for a system key that is used outside the vault (the audit chain key).
    pub fn raw(&self) -> [u8; 32] {
        *self.bytes
    }

    /// `other`, wrapped with this key (a Fernet token: safe to store).
    pub fn wrap(&self, other: &Key) -> String {
        self.fernet.encrypt(&other.bytes[..])
    }

    /// The key inside `wrapped`, if this key wrapped it.
    pub fn unwrap(&self, wrapped: &str) -> Result<Key, VaultError> {
        let raw = Zeroizing::new(self.fernet.decrypt(wrapped).map_err(|_| VaultError::Unwrap)?);
        Self::from_bytes(&raw)
    }

    pub(crate) fn fernet(&self) -> &Fernet {
        &self.fernet
    }

    /// The key's bytes: signing half, then encryption half (Fernet's layout).
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// A tag of `data` under this key (HMAC-SHA256, hex): equal data gives equal tags under one
    /// key, and tags under different keys say nothing about each other. The vault tags a file's
    /// SHA-256 with its patient's key to find duplicates within that patient only.
    pub fn tag(&self, data: &[u8]) -> String {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.bytes[..])
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(b"careport-vault-tag-v1");
        mac.update(data);
        data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes())
    }
}

/// The master key from configuration: it wraps user keys and nothing else.
#[derive(Debug)]
pub struct MasterKey(pub Key);

impl MasterKey {
    pub fn from_text(text: &str) -> Result<Self, VaultError> {
        Key::from_text(text).map(Self)
    }

    /// Wrap a user key for storage.
    pub fn wrap(&self, user_key: &Key) -> String {
        self.0.wrap(user_key)
    }

    /// Unwrap a stored user key.
    pub fn unwrap(&self, wrapped: &str) -> Result<Key, VaultError> {
        self.0.unwrap(wrapped)
    }

    /// Re-seal any token this master key sealed (a wrapped key, a sealed MFA secret) under
    /// `new`; the plaintext lives only in zeroed memory meanwhile.
    pub fn reseal(&self, token: &str, new: &MasterKey) -> Result<String, VaultError> {
        let plain = Zeroizing::new(self.0.fernet.decrypt(token).map_err(|_| VaultError::Unwrap)?);
        Ok(new.0.fernet.encrypt(&plain))
    }

    /// Re-wrap a stored user key under `new` (master key rotation: files are not touched).
    pub fn rewrap(&self, wrapped: &str, new: &MasterKey) -> Result<String, VaultError> {
        Ok(new.wrap(&self.unwrap(wrapped)?))
    }
}
