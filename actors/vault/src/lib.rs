//! Envelope encryption for careport's document vault (DESIGN §5).
//!
//! - Every file has its own random **data key**. Its content is sealed as a sequence of
//!   **Fernet frames** of a fixed plaintext size ([`frames`]). Each frame is bound to the file
//!   id, its index and whether it is the last, so reordering, dropping, truncating or splicing
//!   frames from another file is detected. Sealing and opening stream: memory does not grow with
//!   the file.
//! - Data keys are **wrapped** (Fernet-encrypted) with a user's key for each user who may read
//!   the file; user keys are wrapped with the master key ([`keys`]). No key is ever kept or
//!   shown unwrapped outside this crate's types, which zero their bytes when dropped.
//!
//! This crate holds no I/O and no store: the files actor streams through it.

pub mod frames;
pub mod keys;
mod token;

pub use frames::{Opener, Sealer};
pub use keys::{Key, MasterKey};

/// Why sealing or opening failed. Messages never contain key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// A frame failed authentication, or was out of place: the content was changed.
    #[error("the encrypted content fails its integrity check (frame {0})")]
    Integrity(u64),
    /// The content ended before its final frame.
    #[error("the encrypted content is truncated")]
    Truncated,
    /// Not a careport vault stream, or another version.
    #[error("not a careport vault stream")]
    Format,
    /// A wrapped key did not open with the given key.
    #[error("the key does not open this wrapped key")]
    Unwrap,
    #[error("invalid key material")]
    BadKey,
}
