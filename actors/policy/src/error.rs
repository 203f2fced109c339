//! The two error types: [`TokenError`] (the token cannot be trusted: HTTP 401) and
//! [`PolicyError`] (we could not decide or could not build: HTTP 500, never an allow).

use thiserror::Error;

/// Why a presented token is not accepted. Each variant is a distinct 401 code for the client:
/// `Malformed` and `BadSignature` mean "not ours or tampered", `UnknownKey` means "signed by a key
/// we retired" (log in again), `Expired` means "refresh".
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    /// Not base64url, not a Biscuit, or a block that does not deserialize.
    #[error("the token is malformed")]
    Malformed,
    /// The token names a root key id this node does not know (retired or never issued), or none.
    #[error("the token was signed by an unknown key (key id {0:?})")]
    UnknownKey(Option<u32>),
    /// A signature does not verify: forged, altered, or signed by another key under a known id.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// The signature is fine but the authority block does not hold the claims we mint
    /// (a token minted by something else with our key, or by an incompatible version).
    #[error("the token's claims are invalid: {0}")]
    InvalidClaims(&'static str),
    /// The token's expiry has passed (only [`crate::TokenCache::get_or_verify`] checks the clock;
    /// the policies check it again through the token's own `time` check).
    #[error("the token has expired")]
    Expired,
}

/// Failures of the policy machinery itself. None of them may ever be read as an allow.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    /// A policy file could not be read.
    #[error("cannot read policy file {file}: {message}")]
    Io { file: String, message: String },
    /// A policy file does not parse; `line` is 1-based.
    #[error("policy file {file}, line {line}: syntax error: {message}")]
    Syntax { file: String, line: usize, message: String },
    /// The policy files parsed but could not be loaded (e.g. an unbound parameter).
    #[error("policy file {file}: {message}")]
    Load { file: String, message: String },
    /// The Datalog run hit [`crate::PolicyLimits`] (facts, iterations or time).
    #[error("policy run limit reached: {0}")]
    RunLimit(String),
    /// Claims or a narrowing that cannot be put in a token.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Biscuit failed in a way that is neither a deny nor a limit.
    #[error("biscuit error: {0}")]
    Biscuit(String),
}

impl From<biscuit_auth::error::Token> for PolicyError {
    fn from(e: biscuit_auth::error::Token) -> Self {
        match e {
            biscuit_auth::error::Token::RunLimit(limit) => PolicyError::RunLimit(limit.to_string()),
            other => PolicyError::Biscuit(other.to_string()),
        }
    }
}
