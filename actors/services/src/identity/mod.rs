//! Identity: accounts, sessions with rotating refresh tokens, MFA, e-mail links, throttling,
//! revocation, and the tokens that say who a caller is. What a caller may do is decided in
//! [`crate::access`].
//!
//! [`Identity`] is shared by the HTTP handlers (cheap to clone). Hashing runs on the blocking pool;
//! everything else is a few store round trips. The [`AuthActor`](actor::AuthActor) keeps this
//! node's view of revoked sessions current (bus events and a poll of the store).
//!
//! Answers never say whether an e-mail address has an account: registration, login and
//! forgot-password answer alike, and take about as long, either way.

pub mod actor;
pub mod passwords;
pub mod revocation;
pub mod secret;
pub mod service;
pub mod throttle;
pub mod totp;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use careport_domain::Role;
use careport_policy::VerifiedToken;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use passwords::{Argon2Config, check_password, hash_password};
pub use service::{AuthDeps, Identity};
pub use throttle::ThrottleConfig;

use crate::audit;

/// `[auth]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub argon2: Argon2Config,
    /// Lifetime of an access token (Biscuit).
    pub access_token_ttl_secs: u64,
    /// A session not refreshed for this long ends (HIPAA automatic logoff).
    pub idle_timeout_secs: u64,
    /// A session ends this long after login, however active.
    pub session_max_age_secs: u64,
    /// Patients must verify their e-mail address before they can log in.
    pub require_email_verification: bool,
    pub verify_link_ttl_secs: u64,
    pub reset_link_ttl_secs: u64,
    pub invitation_ttl_secs: u64,
    /// The issuer shown in authenticator apps.
    pub mfa_issuer: String,
    pub throttle: ThrottleConfig,
    /// Run limits of the Datalog policies (`max_facts`, `max_iterations`, `max_time_ms`).
    #[serde(default, skip_serializing)]
    pub policy: careport_policy::PolicyLimits,
    pub tokens: TokenKeysConfig,
    /// Where `*.datalog` policies are read at start; unset: `./policies` when it exists, else
    /// the copies compiled into the binary.
    pub policy_dir: Option<std::path::PathBuf>,
}

/// `[auth.tokens]`: the id of the signing key, and the public keys of earlier ones that still
/// verify tokens until they are retired (rotation).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenKeysConfig {
    pub key_id: u32,
    /// `"<id>:ed25519/<hex public key>"` for each earlier key still accepted.
    #[serde(default)]
    pub previous_public_keys: Vec<String>,
}

impl AuthConfig {
    pub fn access_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl_secs)
    }

    /// Check the settings that must agree with each other.
    pub fn validate(&self) -> Result<(), String> {
        if self.access_token_ttl_secs == 0 || self.access_token_ttl_secs > 3600 {
            return Err("auth.access_token_ttl_secs must be between 1 and 3600".into());
        }
        if self.idle_timeout_secs < self.access_token_ttl_secs {
            return Err("auth.idle_timeout_secs must be at least auth.access_token_ttl_secs".into());
        }
        if self.session_max_age_secs < self.idle_timeout_secs {
            return Err("auth.session_max_age_secs must be at least auth.idle_timeout_secs".into());
        }
        if self.throttle.account_max_failures == 0 || self.throttle.ip_max_failures == 0 {
            return Err("auth.throttle limits must be greater than 0".into());
        }
        Ok(())
    }
}

/// An authenticated caller: the verified token and the request's audit context.
#[derive(Clone)]
pub struct Caller {
    pub token: Arc<VerifiedToken>,
    pub ctx: audit::Context,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller").field("user", &self.user()).field("role", &self.role()).finish_non_exhaustive()
    }
}

impl Caller {
    /// The caller a verified token stands for, with the request's side of its audit events.
    pub fn new(token: Arc<VerifiedToken>, client: &ClientInfo) -> Self {
        let mut ctx = client.context();
        ctx.actor_id = Some(token.claims().user);
        ctx.actor_role = Some(token.claims().role.as_str().to_owned());
        Self { token, ctx }
    }

    pub fn user(&self) -> Uuid {
        self.token.claims().user
    }
    pub fn role(&self) -> Role {
        self.token.claims().role
    }
    pub fn session(&self) -> Uuid {
        self.token.claims().session
    }
    pub fn expires_at(&self) -> SystemTime {
        self.token.expires_at()
    }
}

/// The client side of a request, for audit events and throttling.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl ClientInfo {
    pub fn context(&self) -> audit::Context {
        audit::Context {
            actor_id: None,
            actor_role: None,
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
            request_id: self.request_id.clone(),
        }
    }
}

pub(crate) use crate::door::store_err;
