//! Creating accounts: the rules the identity service will build on (password length, argon2id
//! parameters), shared by `careport user create` and, later, registration.
//!
//! Hashing costs ~20–30 ms of CPU and runs on Tokio's blocking pool, never on an async thread.

use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Params, Version};
use careport_domain::{Code, Email, Error, Role, UserId};
use careport_store::Db;
use careport_store::users::{self, CreateUserError, NewUser};
use serde::{Deserialize, Serialize};

/// Shortest accepted password (NIST SP 800-63B asks for at least 8; we ask for 12).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest accepted password: bounds the work an attacker can make argon2 do.
pub const MAX_PASSWORD_CHARS: usize = 256;

/// argon2id cost parameters (`[auth.argon2]`); the defaults are OWASP's minimum.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Argon2Config {
    /// Memory, in KiB (OWASP: at least 19456).
    pub memory_kib: u32,
    /// Passes over memory (OWASP: at least 2).
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Argon2Config {
    fn hasher(&self) -> Result<Argon2<'static>, Error> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| Error::internal(anyhow::anyhow!("invalid argon2 parameters: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Check a password against the length rules. Returns the error message for the caller.
pub fn check_password(password: &str) -> Result<(), Error> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(Error::with_message(
            Code::InvalidValue,
            format!("password must be at least {MIN_PASSWORD_CHARS} characters long"),
        ));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(Error::with_message(
            Code::InvalidValue,
            format!("password must be at most {MAX_PASSWORD_CHARS} characters long"),
        ));
    }
    Ok(())
}

/// Hash a password with argon2id on the blocking pool. The result is a PHC string.
pub async fn hash_password(password: String, cfg: &Argon2Config) -> Result<String, Error> {
    let hasher = cfg.hasher()?;
    tokio::task::spawn_blocking(move || {
        hasher
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| Error::internal(anyhow::anyhow!("argon2 failed: {e}")))
    })
    .await
    .map_err(Error::internal)?
}

/// A request to create an account.
pub struct CreateAccount {
    pub email: Email,
    pub role: Role,
    pub password: String,
    pub full_name: Option<String>,
    /// Accounts made by an operator need no verification e-mail.
    pub email_verified: bool,
}

/// Create an account after checking the password rules.
pub async fn create_account(db: &Db, cfg: &Argon2Config, req: CreateAccount) -> Result<UserId, Error> {
    check_password(&req.password)?;
    let hash = hash_password(req.password, cfg).await?;
    users::create(
        db,
        NewUser {
            email: &req.email,
            role: req.role,
            password_hash: &hash,
            full_name: req.full_name.as_deref(),
            email_verified: req.email_verified,
        },
    )
    .await
    .map_err(|e| match e {
        CreateUserError::EmailTaken => Error::new(Code::EmailTaken),
        CreateUserError::Store(e) => Error::new(Code::StoreUnavailable).caused_by(e),
    })
}
