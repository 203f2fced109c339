//! careport's identity and authorization: Biscuit access tokens, the key ring that signs and
//! verifies them (with key ids, so keys rotate without logging everyone out), the per-node cache
//! of verified tokens, attenuation, and the Datalog policies in `policies/`.
//!
//! # Layout
//! - [`keys`]: [`KeyRing`], minting and verifying tokens; [`TokenError`] for 401s.
//! - [`claims`]: [`Claims`], what an access token says about its holder (authority block only).
//! - [`cache`]: [`TokenCache`], verified tokens by SHA-256 of the token string, until expiry.
//! - [`policies`]: [`Policies`] loaded from `policies/*.datalog`, [`Policies::authorize`].
//! - [`attenuate`]: [`attenuate`], narrowing a token (operations, resources, expiry).
//!
//! No actix, no HTTP, no SQL: the runtime maps [`TokenError`] to 401, [`Decision::Deny`] to 404
//! (or 403 for collection endpoints) and [`PolicyError`] to 500, and reads store facts itself.

pub mod attenuate;
pub mod cache;
pub mod claims;
mod compiled;
pub mod error;
pub mod keys;
pub mod policies;
mod time;

pub use attenuate::{Narrowing, attenuate};
pub use biscuit_auth::{KeyPair, PrivateKey, PublicKey};
pub use cache::TokenCache;
pub use claims::{Claims, StaffRole, VerifiedToken};
pub use error::{PolicyError, TokenError};
pub use keys::KeyRing;
pub use policies::{Decision, Policies, PolicyLimits, Request, Resource, StoreFact};

/// The operations the product asks about; attenuation refuses any other name.
pub const OPERATIONS: [&str; 7] = ["read", "write", "delete", "share", "manage", "list", "upload"];

/// The resource kinds the product asks about; attenuation refuses any other kind.
pub const RESOURCE_KINDS: [&str; 10] =
    ["patient", "document", "user", "session", "mfa", "audit", "embeddings", "users", "access_log", "reference"];
