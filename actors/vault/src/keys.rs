//! Keys: data keys (one per file), user keys (one per user) and the master key, all Fernet keys
//! (32 random bytes). A key is wrapped by encrypting its bytes, as a Fernet token, with the key
//! above it. `Key` zeroes its bytes on drop and never prints them.

use fernet::Fernet;
use zeroize::Zeroizing;

use crate::VaultError;

/// A Fernet key: a file's data key, or a user's key.
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

    /// Re-wrap a stored user key under `new` (master key rotation: files are not touched).
    pub fn rewrap(&self, wrapped: &str, new: &MasterKey) -> Result<String, VaultError> {
        Ok(new.wrap(&self.unwrap(wrapped)?))
    }
}
