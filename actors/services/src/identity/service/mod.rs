//! The identity flows: register, login, refresh, logout, passwords, e-mail verification,
//! sessions, MFA, invitations, administration of accounts, and the tokens (access tokens and
//! signed links' tokens). The flows live in one file per area. Who may do what is not decided
//! here but in [`crate::access`]; events are written through [`crate::audit::Audit`].

mod account;
mod admin;
mod login;
mod mfa_flows;
mod registration;
mod tokens;

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use careport_domain::time::now_ms;
use careport_domain::{Code, Email, Error, Role};
use careport_policy::{
    Claims, KeyPair, KeyRing, Narrowing, PrivateKey, PublicKey, StaffRole, TokenCache, TokenError, VerifiedToken,
};
use careport_store::audit::NewEvent;
use careport_store::auth_links::{self, NewInvitation, Purpose};
use careport_store::chart_links;
use careport_store::sessions::{self, RefreshLookup};
use careport_store::users::{self, Credentials, UserRow};
use careport_store::{Bus, Db, Redis, mfa};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use uuid::Uuid;

use super::revocation::{self, Revocations};
use super::throttle::Throttle;
use super::{AuthConfig, Caller, ClientInfo, passwords, secret, store_err, totp};
use crate::accounts::{self, NewAccount, check_profile, parse_staff};
use crate::audit::{Audit, EventExt, outcome};
use crate::mail::{Mail, Mailer};

/// What [`Identity`] is built from.
pub struct AuthDeps {
    pub db: Db,
    pub bus: Bus,
    pub redis: Option<Redis>,
    pub audit: Audit,
    pub mailer: Arc<Mailer>,
    pub config: AuthConfig,
    /// Biscuit root key (`ed25519-private/<hex>`).
    pub token_key: SecretString,
    /// Fernet master key: seals TOTP secrets.
    pub master_key: SecretString,
    /// Where links in e-mails point.
    pub public_url: String,
}

/// The identity service. Cheap to clone.
#[derive(Clone)]
pub struct Identity {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    bus: Bus,
    audit: Audit,
    mailer: Arc<Mailer>,
    cfg: AuthConfig,
    keys: KeyRing,
    cache: TokenCache,
    throttle: Throttle,
    /// Requests that send mail to an address (register, forgot, resend), per hour.
    mail_throttle: Throttle,
    revocations: Revocations,
    fernet: fernet::Fernet,
    dummy_hash: Arc<str>,
    public_url: String,
    csrf_key: [u8; 32],
}

/// Tokens handed out at login and refresh.
#[derive(Debug, Clone, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The account's role requires MFA and it has none yet: the access token reaches only the
    /// MFA enrolment routes until enrolment is confirmed and the token refreshed.
    pub mfa_enrolment_required: bool,
    /// The session the tokens belong to (for the web UI's CSRF token; not sent as such).
    #[serde(skip)]
    pub session: Uuid,
}

/// A login request.
pub struct Login {
    pub email: String,
    pub password: String,
    pub totp: Option<String>,
    pub recovery_code: Option<String>,
}

/// An account as shown to its owner or an administrator.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub id: Uuid,
    pub email: String,
    pub role: String,
    pub staff_role: Option<String>,
    pub department: Option<String>,
    pub full_name: Option<String>,
    pub preferred_language: String,
    pub active: bool,
    pub email_verified: bool,
    pub mfa_enabled: bool,
    pub created_at: i64,
    /// A patient's record id (`/api/v1/patients/{id}`): every patient account has its record,
    /// under the account's own id.
    pub patient_id: Option<Uuid>,
}

impl From<UserRow> for Account {
    fn from(u: UserRow) -> Self {
        Self {
            id: u.id,
            patient_id: (u.role == "patient").then_some(u.id),
            active: u.is_active(),
            email_verified: u.email_verified_at.is_some(),
            mfa_enabled: u.mfa_enabled_at.is_some(),
            email: u.email,
            role: u.role,
            staff_role: u.staff_role,
            department: u.department,
            full_name: u.full_name,
            preferred_language: u.preferred_language,
            created_at: u.created_at,
        }
    }
}

/// A session as its owner sees it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionInfo {
    pub id: Uuid,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub current: bool,
}

/// MFA enrolment: shown once.
#[derive(Debug, Clone, Serialize)]
pub struct Enrolment {
    pub secret: String,
    pub otpauth_uri: String,
}

/// Changes an administrator makes to an account.
#[derive(Debug, Default)]
pub struct AccountChange {
    pub role: Option<Role>,
    pub staff_role: Option<Option<StaffRole>>,
    pub department: Option<Option<String>>,
    pub active: Option<bool>,
}

/// An invitation request.
pub struct Invite {
    pub email: Email,
    pub role: Role,
    pub staff_role: Option<StaffRole>,
    pub department: Option<String>,
}

fn unix_secs() -> i64 {
    now_ms() / 1000
}

fn secs_ms(s: u64) -> i64 {
    i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Build the key ring from the root key and `[auth.tokens]`.
pub fn key_ring(token_key: &SecretString, cfg: &super::TokenKeysConfig) -> Result<KeyRing, String> {
    let private =
        PrivateKey::from_str(token_key.expose_secret()).map_err(|_| "the token key is not valid".to_owned())?;
    let mut previous = Vec::new();
    for entry in &cfg.previous_public_keys {
        let (id, key) = entry
            .split_once(':')
            .ok_or_else(|| format!("auth.tokens.previous_public_keys: `{entry}` is not `<id>:ed25519/<hex>`"))?;
        let id: u32 =
            id.trim().parse().map_err(|_| format!("auth.tokens.previous_public_keys: bad id in `{entry}`"))?;
        if id == cfg.key_id {
            return Err(format!("auth.tokens.previous_public_keys: id {id} is the current key id"));
        }
        let key = PublicKey::from_str(key.trim())
            .map_err(|_| format!("auth.tokens.previous_public_keys: bad public key for id {id}"))?;
        previous.push((id, key));
    }
    Ok(KeyRing::new(cfg.key_id, KeyPair::from(&private), previous))
}

fn token_error(e: TokenError) -> Error {
    match e {
        TokenError::Malformed | TokenError::InvalidClaims(_) => Error::new(Code::TokenMalformed),
        TokenError::UnknownKey(_) | TokenError::BadSignature => Error::new(Code::TokenInvalid),
        TokenError::Expired => Error::new(Code::TokenExpired),
    }
}

impl Identity {
    /// Build the service: key ring, dummy hash, throttle.
    pub async fn new(deps: AuthDeps) -> Result<Self, Error> {
        let keys = key_ring(&deps.token_key, &deps.config.tokens)
            .map_err(|e| Error::internal(anyhow::anyhow!("auth keys: {e}")))?;
        let fernet = fernet::Fernet::new(deps.master_key.expose_secret())
            .ok_or_else(|| Error::internal(anyhow::anyhow!("the master key is not a Fernet key")))?;
        let dummy_hash = passwords::dummy_hash(&deps.config.argon2).await?;
        let throttle = Throttle::new(deps.config.throttle.clone(), deps.redis.clone());
        let mail_throttle = Throttle::new(
            super::throttle::ThrottleConfig { window_secs: 3600, lockout_secs: 3600, ..deps.config.throttle.clone() },
            deps.redis.clone(),
        );
        // The CSRF key is derived, not stored: a new token key makes old CSRF values invalid.
        let csrf_key: [u8; 32] = {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update(b"careport-csrf-v1");
            h.update(deps.token_key.expose_secret().as_bytes());
            h.finalize().into()
        };
        Ok(Self {
            inner: Arc::new(Inner {
                db: deps.db,
                bus: deps.bus,
                audit: deps.audit,
                mailer: deps.mailer,
                keys,
                cache: TokenCache::default(),
                throttle,
                mail_throttle,
                revocations: Revocations::default(),
                fernet,
                dummy_hash,
                public_url: deps.public_url.trim_end_matches('/').to_owned(),
                cfg: deps.config,
                csrf_key,
            }),
        })
    }

    pub fn config(&self) -> &AuthConfig {
        &self.inner.cfg
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn mailer(&self) -> &Mailer {
        &self.inner.mailer
    }

    pub fn revocations(&self) -> &Revocations {
        &self.inner.revocations
    }

    pub fn token_cache(&self) -> &TokenCache {
        &self.inner.cache
    }

    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    /// The key CSRF tokens are derived with.
    pub fn csrf_key(&self) -> &[u8] {
        &self.inner.csrf_key
    }

    /// The session a refresh token belongs to, if any (the cookie refresh checks CSRF against
    /// it before rotating).
    pub async fn session_of_refresh(&self, refresh_token: &str) -> Result<Option<Uuid>, Error> {
        let digest = secret::digest(refresh_token.trim());
        Ok(match sessions::lookup_refresh(&self.inner.db, &digest).await.map_err(store_err)? {
            RefreshLookup::Current(s) | RefreshLookup::Used(s) => Some(s.id),
            RefreshLookup::Unknown => None,
        })
    }

    // ----- tokens -------------------------------------------------------------------------

    /// Verify an access token: signature (cached per node), expiry, revocation.
    /// Count a request that sends mail to `email` from `client` (register, forgot, resend):
    /// 429 with `Retry-After` past `auth.throttle.mail_per_address_per_hour` for the address or
    /// `mail_per_client_per_hour` for the client. Every request counts, whether or not the
    /// address has an account, so the answer tells nothing about it; and a victim's fresh link
    /// can be replaced by someone else's request only that many times an hour.
    pub(crate) async fn limit_mail(&self, client: &ClientInfo, email: &str) -> Result<(), Error> {
        let cfg = &self.inner.cfg.throttle;
        let to = format!("mail-to:{}", &secret::digest(&email.to_lowercase())[..32]);
        let from = format!("mail-from:{}", client.ip.as_deref().unwrap_or("unknown"));
        if let Err(locked) = self.inner.mail_throttle.check(&[&to, &from]).await {
            let secs = u32::try_from(locked.retry_after_secs).unwrap_or(u32::MAX);
            return Err(Error::with_message(
                Code::TooManyRequests,
                "Too many requests for this address or from this client; retry later.",
            )
            .retry_after(secs));
        }
        let limits =
            [(to.as_str(), cfg.mail_per_address_per_hour.max(1)), (from.as_str(), cfg.mail_per_client_per_hour.max(1))];
        self.inner.mail_throttle.failed(&limits).await;
        Ok(())
    }

    pub fn authenticate(&self, raw: &str) -> Result<Arc<VerifiedToken>, Error> {
        let token =
            self.inner.cache.get_or_verify(&self.inner.keys, raw.trim(), SystemTime::now()).map_err(token_error)?;
        if self.inner.revocations.is_revoked(token.claims().session) {
            return Err(Error::new(Code::TokenRevoked));
        }
        Ok(token)
    }

    /// Load the revocations whose tokens may still be alive (at start, before serving).
    pub async fn load_recent_revocations(&self) -> Result<usize, Error> {
        let since = now_ms() - (self.inner.cfg.access_token_ttl_secs as i64 + 60) * 1000;
        let rows = sessions::revoked_since(&self.inner.db, since).await.map_err(store_err)?;
        for s in &rows {
            self.inner.revocations.insert([s.id], s.revoked_at.unwrap_or(since));
        }
        Ok(rows.len())
    }

    fn mint(&self, user: &UserRow, session: Uuid, mfa_pending: bool) -> Result<(String, u64), Error> {
        let role =
            Role::from_str(&user.role).map_err(|_| Error::internal(anyhow::anyhow!("stored role is invalid")))?;
        let ttl = self.inner.cfg.access_token_ttl_secs;
        let claims = Claims {
            user: user.id,
            role,
            staff_role: if role == Role::Clinician { parse_staff(user.staff_role.as_deref()) } else { None },
            department: user.department.clone(),
            session,
            expires_at: SystemTime::now() + Duration::from_secs(ttl),
            mfa_pending,
        };
        let token = self.inner.keys.mint(&claims).map_err(|e| Error::internal(anyhow::anyhow!("minting: {e}")))?;
        Ok((token, ttl))
    }

    /// A token narrowed as asked; never wider than the caller's. An account that must still
    /// enrol MFA makes none (its token reaches only the MFA routes). Audited.
    pub async fn attenuate(&self, caller: &Caller, narrowing: &Narrowing) -> Result<String, Error> {
        if caller.token.claims().mfa_pending {
            return Err(Error::new(Code::MfaEnrolmentRequired));
        }
        let token = careport_policy::attenuate(&caller.token, narrowing).map_err(|e| match e {
            careport_policy::PolicyError::Invalid(m) => Error::with_message(Code::InvalidValue, m),
            other => Error::internal(anyhow::anyhow!("attenuation: {other}")),
        })?;
        self.audit_best_effort(caller.ctx.event("auth.token_attenuated", outcome::SUCCESS)).await;
        Ok(token)
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Seconds since the epoch of a `SystemTime`, for responses.
pub fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Identity {
    /// Append events and wait for the commit (fail closed).
    pub(super) async fn audit(&self, events: Vec<NewEvent>) -> Result<(), Error> {
        self.inner.audit.write(events).await
    }

    /// Append an event whose loss must not change the answer.
    pub(super) async fn audit_best_effort(&self, event: NewEvent) {
        self.inner.audit.best_effort(event).await
    }
}
