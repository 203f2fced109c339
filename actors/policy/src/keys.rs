//! The key ring: the current signing key with its id, and the public keys of previous ids that
//! still verify. Rotation is: add a new current key, keep the old one as previous until every
//! token it signed has expired (15 minutes for access tokens), then drop it.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;

use biscuit_auth::error::{Format, Token};
use biscuit_auth::{Biscuit, KeyPair, PublicKey};
use sha2::{Digest, Sha256};

use crate::{Claims, PolicyError, TokenError, VerifiedToken};

/// Signs access tokens with the current key (its id goes into the token as the root key id) and
/// verifies tokens by choosing the public key for the id the token names.
pub struct KeyRing {
    current_id: u32,
    current: KeyPair,
    public: HashMap<u32, PublicKey>,
}

impl fmt::Debug for KeyRing {
    // The private key stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<_> = self.public.keys().collect();
        ids.sort();
        f.debug_struct("KeyRing").field("current_id", &self.current_id).field("known_ids", &ids).finish()
    }
}

impl KeyRing {
    /// `previous` holds retired-but-still-valid keys. An entry with `current_id` is ignored: the
    /// current key's own public key always wins.
    pub fn new(current_id: u32, current: KeyPair, previous: Vec<(u32, PublicKey)>) -> KeyRing {
        let mut public: HashMap<u32, PublicKey> = previous.into_iter().collect();
        public.insert(current_id, current.public());
        KeyRing { current_id, current, public }
    }

    pub fn current_id(&self) -> u32 {
        self.current_id
    }

    /// The public key that verifies tokens with this root key id, if the ring knows it.
    pub fn public_key(&self, id: u32) -> Option<PublicKey> {
        self.public.get(&id).copied()
    }

    /// Mint an access token (base64url) for `claims`, signed by the current key.
    pub fn mint(&self, claims: &Claims) -> Result<String, PolicyError> {
        let token = claims.to_builder()?.root_key_id(self.current_id).build(&self.current)?;
        Ok(token.to_base64()?)
    }

    /// Parse a token, verify every block's signature with the key its root key id names, and read
    /// the claims from the authority block. Does not look at the clock: expiry is enforced by the
    /// token's own check when the policies run (and by [`crate::TokenCache::get_or_verify`]).
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let asked: Cell<Option<Option<u32>>> = Cell::new(None);
        let chosen = |id: Option<u32>| {
            asked.set(Some(id));
            id.and_then(|id| self.public.get(&id).copied()).ok_or(Format::UnknownPublicKey)
        };
        let biscuit = Biscuit::from_base64(token.trim(), chosen).map_err(|e| match e {
            Token::Format(Format::UnknownPublicKey) => TokenError::UnknownKey(asked.get().flatten()),
            Token::Format(Format::Signature(_) | Format::SealedSignature | Format::InvalidSignatureSize(_)) => {
                TokenError::BadSignature
            }
            // Anything else failed before a key was chosen (base64, protobuf, block format) or is
            // a structurally broken block: the token is not something we could have issued.
            _ => TokenError::Malformed,
        })?;
        VerifiedToken::new(biscuit, digest(token))
    }
}

/// SHA-256 of the token string: the cache key, so that the cache never holds bearer tokens.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}
