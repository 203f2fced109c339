//! The identity flows: register, login, refresh, logout, passwords, e-mail verification,
//! sessions, MFA, invitations and administration of accounts, and the authorization check that
//! every request passes through.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use careport_domain::time::now_ms;
use careport_domain::{Code, Email, Error, Role};
use careport_policy::{
    Claims, Decision, KeyPair, KeyRing, Narrowing, Policies, PrivateKey, PublicKey, Request, Resource, StaffRole,
    StoreFact, TokenCache, TokenError, VerifiedToken,
};
use careport_store::audit::NewEvent;
use careport_store::auth_links::{self, NewInvitation, Purpose};
use careport_store::sessions::{self, RefreshLookup};
use careport_store::users::{self, Credentials, UserRow};
use careport_store::{Bus, Db, Redis, assignments, mfa};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use uuid::Uuid;

use super::revocation::{self, Revocations};
use super::throttle::Throttle;
use super::{AuthConfig, Caller, ClientInfo, passwords, secret, store_err, totp};
use crate::Handle;
use crate::accounts::{self, NewAccount, check_profile, parse_staff};
use crate::audit::{Append, AuditActor, EventExt, outcome};
use crate::mail::{Mail, Mailer};

/// What [`Auth`] is built from.
pub struct AuthDeps {
    pub db: Db,
    pub bus: Bus,
    pub redis: Option<Redis>,
    pub audit: Handle<AuditActor>,
    pub mailer: Arc<Mailer>,
    pub policies: Policies,
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
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    bus: Bus,
    audit: Handle<AuditActor>,
    mailer: Arc<Mailer>,
    policies: Policies,
    cfg: AuthConfig,
    keys: KeyRing,
    cache: TokenCache,
    throttle: Throttle,
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
}

impl From<UserRow> for Account {
    fn from(u: UserRow) -> Self {
        Self {
            id: u.id,
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

impl Auth {
    /// Build the service: key ring, dummy hash, throttle.
    pub async fn new(deps: AuthDeps) -> Result<Self, Error> {
        let keys = key_ring(&deps.token_key, &deps.config.tokens)
            .map_err(|e| Error::internal(anyhow::anyhow!("auth keys: {e}")))?;
        let fernet = fernet::Fernet::new(deps.master_key.expose_secret())
            .ok_or_else(|| Error::internal(anyhow::anyhow!("the master key is not a Fernet key")))?;
        let dummy_hash = passwords::dummy_hash(&deps.config.argon2).await?;
        let throttle = Throttle::new(deps.config.throttle.clone(), deps.redis.clone());
        let policies = deps.policies.with_limits(deps.config.policy);
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
                policies,
                keys,
                cache: TokenCache::default(),
                throttle,
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

    // ----- audit -------------------------------------------------------------------------

    /// Append events and wait for the commit (fail closed).
    pub async fn audit(&self, events: Vec<NewEvent>) -> Result<(), Error> {
        self.inner.audit.send(Append(events)).await.map_err(|e| {
            Error::new(Code::AuditUnavailable).caused_by(anyhow::anyhow!("audit actor: {e}")).retry_after(5)
        })?
    }

    /// Append an event whose loss must not change the answer (a failed login is still a
    /// failed login), logging if it cannot be written.
    pub async fn audit_best_effort(&self, event: NewEvent) {
        if let Err(e) = self.audit(vec![event]).await {
            tracing::error!(error = ?e, "could not write an audit event");
        }
    }

    // ----- tokens and authorization ------------------------------------------------------

    /// Verify an access token: signature (cached per node), expiry, revocation.
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

    /// Decide whether `caller` may do `operation` on `(kind, id)`. A denial is audited and
    /// answers 404 when `hide` (a resource instance: its existence is not told) or 403.
    pub async fn authorize(
        &self,
        caller: &Caller,
        operation: &str,
        kind: &str,
        id: &str,
        hide: bool,
    ) -> Result<(), Error> {
        let claims = caller.token.claims();
        if claims.mfa_pending && kind != "mfa" {
            return Err(Error::new(Code::MfaEnrolmentRequired));
        }
        let facts = self.facts_for(caller, kind, id).await?;
        let req = Request { operation, resource: Resource { kind, id }, now: SystemTime::now(), facts: &facts };
        let decision = self
            .inner
            .policies
            .authorize(&caller.token, &req)
            .map_err(|e| Error::internal(anyhow::anyhow!("policy evaluation failed: {e}")))?;
        if decision == Decision::Allow {
            return Ok(());
        }
        let mut event = caller.ctx.event(&format!("{kind}.{operation}"), outcome::DENIED).resource(kind, id);
        if let Some(p) = patient_of(kind, id) {
            event = event.patient(p);
        }
        self.audit_best_effort(event).await;
        Err(Error::new(if hide { Code::NotFound } else { Code::Forbidden }))
    }

    /// The store facts a decision about `(kind, id)` needs, and no more.
    async fn facts_for(&self, caller: &Caller, kind: &str, id: &str) -> Result<Vec<StoreFact>, Error> {
        let db = &self.inner.db;
        let mut facts = Vec::new();
        match kind {
            "patient" | "access_log" => {
                let Ok(patient) = Uuid::parse_str(id) else { return Ok(facts) };
                for (clinician, dept) in assignments::care_team(db, patient).await.map_err(store_err)? {
                    facts.push(StoreFact::Assigned { clinician, patient });
                    if let Some(department) = dept {
                        facts.push(StoreFact::PatientDepartment { patient, department });
                    }
                }
            }
            "session" => {
                let Ok(sid) = Uuid::parse_str(id) else { return Ok(facts) };
                // The token itself proves its own session; other sessions are looked up.
                if sid == caller.session() {
                    facts.push(StoreFact::Owner { user: caller.user(), kind: "session".into(), id: id.to_owned() });
                } else if let Some(s) = sessions::get(db, sid).await.map_err(store_err)?
                    && s.user_id == caller.user()
                {
                    facts.push(StoreFact::Owner { user: s.user_id, kind: "session".into(), id: id.to_owned() });
                }
            }
            _ => {}
        }
        Ok(facts)
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

    /// A token narrowed as asked; never wider than the caller's.
    pub fn attenuate(&self, caller: &Caller, narrowing: &Narrowing) -> Result<String, Error> {
        careport_policy::attenuate(&caller.token, narrowing).map_err(|e| match e {
            careport_policy::PolicyError::Invalid(m) => Error::with_message(Code::InvalidValue, m),
            other => Error::internal(anyhow::anyhow!("attenuation: {other}")),
        })
    }

    // ----- registration and e-mail -------------------------------------------------------

    fn link(&self, page: &str, token: &str) -> String {
        format!("{}/{page}?token={token}", self.inner.public_url)
    }

    /// Create an account after checking the rules. Used by the CLI, administrators and
    /// invitations; registration goes through [`Auth::register`].
    pub async fn create_account(&self, acct: NewAccount) -> Result<Uuid, Error> {
        accounts::create_account(&self.inner.db, &self.inner.cfg.argon2, acct).await
    }

    /// Patient self-registration. Answers the same whether or not the address has an account:
    /// a new address gets a verification link, a taken one a notice to its owner.
    pub async fn register(
        &self,
        client: &ClientInfo,
        email: Email,
        password: String,
        full_name: Option<String>,
        language: Option<String>,
    ) -> Result<(), Error> {
        // Rules first: they depend only on the input, so they leak nothing.
        passwords::check_password(&password, Some(email.as_str()))?;
        if let Some(l) = &language {
            accounts::check_language(l)?;
        }
        let created = self
            .create_account(NewAccount {
                email: email.clone(),
                password,
                full_name,
                role: Role::Patient,
                staff_role: None,
                department: None,
                preferred_language: language,
                email_verified: false,
            })
            .await;
        let ctx = client.context();
        match created {
            Ok(id) => {
                let this = self.clone();
                let to = email.as_str().to_owned();
                // Audited and mailed in the background: the answer must take as long as for a
                // taken address, which waits for neither.
                tokio::spawn(async move {
                    this.audit_best_effort(ctx.event("auth.register", outcome::SUCCESS).resource("user", id)).await;
                    if let Err(e) = this.send_verification(id, &to).await {
                        tracing::warn!(error = ?e, "could not send the verification e-mail");
                    }
                });
                Ok(())
            }
            Err(e) if e.code() == Code::EmailTaken => {
                let this = self.clone();
                let to = email.as_str().to_owned();
                tokio::spawn(async move {
                    let mail = Mail {
                        to,
                        subject: "Someone tried to register with your e-mail address".into(),
                        body: format!(
                            "Someone (perhaps you) tried to create a careport account with this address, \
                             which already has one.\n\nIf it was you, log in, or reset your password at {}/forgot-password.\n\
                             If it was not you, you can ignore this message.\n",
                            this.inner.public_url
                        ),
                    };
                    if let Err(e) = this.inner.mailer.send(mail).await {
                        tracing::warn!(error = ?e, "could not send the duplicate-registration notice");
                    }
                });
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn send_verification(&self, user: Uuid, to: &str) -> Result<(), Error> {
        let token = secret::new_token();
        auth_links::issue(
            &self.inner.db,
            user,
            Purpose::Verify,
            &secret::digest(&token),
            secs_ms(self.inner.cfg.verify_link_ttl_secs),
        )
        .await
        .map_err(store_err)?;
        let hours = self.inner.cfg.verify_link_ttl_secs / 3600;
        self.inner
            .mailer
            .send(Mail {
                to: to.to_owned(),
                subject: "Verify your e-mail address for careport".into(),
                body: format!(
                    "Welcome to careport.\n\nTo verify your e-mail address, open this link (valid for {hours} hours):\n\n{}\n\n\
                     If you did not create an account, ignore this message.\n",
                    self.link("verify-email", &token)
                ),
            })
            .await
    }

    /// Send a new verification link (answers alike whether or not the address has an account).
    pub async fn resend_verification(&self, email: Email) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Ok(Some(u)) = users::find_by_email(&this.inner.db, &email).await
                && u.email_verified_at.is_none()
                && u.is_active()
                && let Err(e) = this.send_verification(u.id, email.as_str()).await
            {
                tracing::warn!(error = ?e, "could not send the verification e-mail");
            }
        });
    }

    /// Use a verification link.
    pub async fn verify_email(&self, client: &ClientInfo, token: &str) -> Result<(), Error> {
        let user = auth_links::consume(&self.inner.db, Purpose::Verify, &secret::digest(token))
            .await
            .map_err(store_err)?
            .ok_or_else(|| Error::new(Code::LinkInvalid))?;
        users::set_verified(&self.inner.db, user).await.map_err(store_err)?;
        let mut ctx = client.context();
        ctx.actor_id = Some(user);
        self.audit_best_effort(ctx.event("auth.email_verified", outcome::SUCCESS).resource("user", user)).await;
        Ok(())
    }

    // ----- login, refresh, logout --------------------------------------------------------

    fn throttled(&self, locked: super::throttle::Locked) -> Error {
        Error::new(Code::TooManyAttempts).retry_after(u32::try_from(locked.retry_after_secs).unwrap_or(u32::MAX))
    }

    /// Log in. Unknown address and wrong password answer alike and take as long.
    pub async fn login(&self, client: &ClientInfo, req: Login) -> Result<TokenPair, Error> {
        let cfg = &self.inner.cfg;
        let email = Email::parse(&req.email).map_err(|_| Error::new(Code::InvalidCredentials))?;
        let acct_key = Throttle::account_key(email.as_str());
        let ip_key = Throttle::ip_key(client.ip.as_deref().unwrap_or("unknown"));
        let mut ctx = client.context();
        if let Err(locked) = self.inner.throttle.check(&[&acct_key, &ip_key]).await {
            self.audit_best_effort(ctx.event("auth.login", outcome::DENIED).detail("throttled")).await;
            return Err(self.throttled(locked));
        }
        let creds = users::credentials_by_email(&self.inner.db, &email).await.map_err(store_err)?;
        let password = req.password;
        let ok = passwords::verify_password(
            password.clone(),
            creds.as_ref().map(|c| c.password_hash.clone()),
            self.inner.dummy_hash.clone(),
        )
        .await?;
        let fail_keys =
            [(acct_key.as_str(), cfg.throttle.account_max_failures), (ip_key.as_str(), cfg.throttle.ip_max_failures)];
        let creds = match (ok, creds) {
            (true, Some(c)) => c,
            (_, c) => {
                self.inner.throttle.failed(&fail_keys).await;
                ctx.actor_id = c.map(|c| c.user.id);
                self.audit_best_effort(ctx.event("auth.login", outcome::FAILURE).detail("bad credentials")).await;
                return Err(Error::new(Code::InvalidCredentials));
            }
        };
        let user = creds.user.clone();
        ctx.actor_id = Some(user.id);
        ctx.actor_role = Some(user.role.clone());
        if !user.is_active() {
            self.audit_best_effort(ctx.event("auth.login", outcome::DENIED).detail("account inactive")).await;
            return Err(Error::new(Code::AccountInactive));
        }
        if cfg.require_email_verification && user.role == "patient" && user.email_verified_at.is_none() {
            // No new link here: each one retires the previous, and a login attempt should not
            // send mail. `POST /auth/email/resend` does, on request.
            self.audit_best_effort(ctx.event("auth.login", outcome::DENIED).detail("e-mail not verified")).await;
            return Err(Error::new(Code::EmailNotVerified));
        }
        if user.mfa_enabled_at.is_some()
            && let Err(e) = self.check_second_factor(&creds, req.totp.as_deref(), req.recovery_code.as_deref()).await
        {
            if e.code() == Code::MfaCodeInvalid {
                self.inner.throttle.failed(&fail_keys).await;
                self.audit_best_effort(ctx.event("auth.login", outcome::FAILURE).detail("bad second factor")).await;
            }
            return Err(e);
        }
        let mfa_pending = user.mfa_enabled_at.is_none() && self.mfa_required_for(&user.role).await?;
        if passwords::needs_rehash(&creds.password_hash, &cfg.argon2) {
            // Best effort: the login succeeds with the old hash either way.
            self.rehash(user.id, password);
        }
        self.inner.throttle.reset(&acct_key).await;
        let session = Uuid::now_v7();
        let refresh = secret::new_token();
        sessions::create(
            &self.inner.db,
            session,
            user.id,
            now_ms() + secs_ms(cfg.session_max_age_secs),
            &secret::digest(&refresh),
            client.ip.as_deref(),
            client.user_agent.as_deref().map(|ua| truncate(ua, 256)),
        )
        .await
        .map_err(store_err)?;
        let (access, ttl) = self.mint(&user, session, mfa_pending)?;
        self.audit_best_effort(ctx.event("auth.login", outcome::SUCCESS).resource("session", session)).await;
        Ok(TokenPair {
            access_token: access,
            refresh_token: refresh,
            token_type: "Bearer",
            expires_in: ttl,
            mfa_enrolment_required: mfa_pending,
            session,
        })
    }

    /// Re-hash a password with the configured (stronger) parameters, in the background.
    fn rehash(&self, user: Uuid, password: String) {
        let this = self.clone();
        tokio::spawn(async move {
            match passwords::hash_password(password, &this.inner.cfg.argon2).await {
                Ok(hash) => {
                    if let Err(e) = users::set_password_hash(&this.inner.db, user, &hash).await {
                        tracing::warn!(error = %e, "could not store an upgraded password hash");
                    }
                }
                Err(e) => tracing::warn!(error = ?e, "could not upgrade a password hash"),
            }
        });
    }

    async fn mfa_required_for(&self, role: &str) -> Result<bool, Error> {
        Ok(mfa::required_roles(&self.inner.db).await.map_err(store_err)?.iter().any(|r| r == role))
    }

    /// Check a TOTP code (replay-protected) or a recovery code (single use).
    async fn check_second_factor(
        &self,
        creds: &Credentials,
        code: Option<&str>,
        recovery: Option<&str>,
    ) -> Result<(), Error> {
        let db = &self.inner.db;
        let user = creds.user.id;
        if let Some(rc) = recovery.filter(|r| !r.trim().is_empty()) {
            let digest = secret::digest(&secret::normalise_recovery_code(rc));
            if mfa::use_recovery_code(db, user, &digest).await.map_err(store_err)? {
                return Ok(());
            }
            return Err(Error::new(Code::MfaCodeInvalid));
        }
        let Some(code) = code.filter(|c| !c.trim().is_empty()) else { return Err(Error::new(Code::MfaRequired)) };
        let secret = self.open_secret(creds.mfa_secret.as_deref())?;
        let step = totp::matching_step(&secret, code, unix_secs()).ok_or_else(|| Error::new(Code::MfaCodeInvalid))?;
        if creds.mfa_last_step.is_some_and(|last| step <= last) {
            return Err(Error::new(Code::MfaCodeInvalid));
        }
        if !users::advance_mfa_step(db, user, step).await.map_err(store_err)? {
            return Err(Error::new(Code::MfaCodeInvalid));
        }
        Ok(())
    }

    fn open_secret(&self, sealed: Option<&str>) -> Result<String, Error> {
        let sealed = sealed.ok_or_else(|| Error::new(Code::MfaNotEnabled))?;
        let bytes = self
            .inner
            .fernet
            .decrypt(sealed)
            .map_err(|_| Error::internal(anyhow::anyhow!("the MFA secret does not open with the master key")))?;
        String::from_utf8(bytes).map_err(|_| Error::internal(anyhow::anyhow!("the MFA secret is not text")))
    }

    /// Rotate a refresh token. Reuse of a rotated token revokes the whole session.
    pub async fn refresh(&self, client: &ClientInfo, refresh_token: &str) -> Result<TokenPair, Error> {
        let db = &self.inner.db;
        let cfg = &self.inner.cfg;
        let digest = secret::digest(refresh_token.trim());
        let mut ctx = client.context();
        let session = match sessions::lookup_refresh(db, &digest).await.map_err(store_err)? {
            RefreshLookup::Unknown => return Err(Error::new(Code::RefreshTokenInvalid)),
            RefreshLookup::Used(s) => {
                ctx.actor_id = Some(s.user_id);
                self.revoke_sessions(&[s.id], "refresh token reuse").await?;
                self.audit_best_effort(
                    ctx.event("auth.refresh_reuse", outcome::DENIED)
                        .resource("session", s.id)
                        .detail("session revoked"),
                )
                .await;
                return Err(Error::new(Code::RefreshTokenReused));
            }
            RefreshLookup::Current(s) => s,
        };
        ctx.actor_id = Some(session.user_id);
        if session.is_revoked() {
            return Err(Error::new(Code::TokenRevoked));
        }
        let now = now_ms();
        if now >= session.expires_at {
            return Err(Error::new(Code::SessionExpired));
        }
        if now - session.last_used_at > secs_ms(cfg.idle_timeout_secs) {
            self.revoke_sessions(&[session.id], "idle timeout").await?;
            self.audit_best_effort(ctx.event("auth.session_idle", outcome::DENIED).resource("session", session.id))
                .await;
            return Err(Error::new(Code::SessionExpired));
        }
        let user =
            users::find(db, session.user_id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::TokenRevoked))?;
        if !user.is_active() {
            self.revoke_sessions(&[session.id], "account inactive").await?;
            return Err(Error::new(Code::AccountInactive));
        }
        let next = secret::new_token();
        if !sessions::rotate(db, session.id, &digest, &secret::digest(&next)).await.map_err(store_err)? {
            // Another refresh with the same token won the race: treat this one as reuse.
            self.revoke_sessions(&[session.id], "refresh token reuse").await?;
            self.audit_best_effort(ctx.event("auth.refresh_reuse", outcome::DENIED).resource("session", session.id))
                .await;
            return Err(Error::new(Code::RefreshTokenReused));
        }
        let mfa_pending = user.mfa_enabled_at.is_none() && self.mfa_required_for(&user.role).await?;
        let (access, ttl) = self.mint(&user, session.id, mfa_pending)?;
        ctx.actor_role = Some(user.role.clone());
        self.audit_best_effort(ctx.event("auth.refresh", outcome::SUCCESS).resource("session", session.id)).await;
        Ok(TokenPair {
            access_token: access,
            refresh_token: next,
            token_type: "Bearer",
            expires_in: ttl,
            mfa_enrolment_required: mfa_pending,
            session: session.id,
        })
    }

    /// Revoke sessions (already or now revoked in the store): locally at once, and on every
    /// other node through the bus.
    pub async fn revoke_sessions(&self, ids: &[Uuid], reason: &str) -> Result<(), Error> {
        for id in ids {
            sessions::revoke(&self.inner.db, *id, reason).await.map_err(store_err)?;
        }
        self.note_revoked(ids).await;
        Ok(())
    }

    async fn note_revoked(&self, ids: &[Uuid]) {
        if ids.is_empty() {
            return;
        }
        self.inner.revocations.insert(ids.iter().copied(), now_ms());
        for id in ids {
            self.inner.cache.forget_session(*id);
        }
        let payload = serde_json::to_vec(ids).unwrap_or_default();
        if let Err(e) = self.inner.bus.publish(revocation::CHANNEL, &payload).await {
            // The other nodes will see it in the store within their poll interval.
            tracing::warn!(error = %e, "could not broadcast a revocation");
        }
    }

    /// Revoke every session of a user (except `keep`).
    pub async fn revoke_user(&self, user: Uuid, reason: &str, keep: Option<Uuid>) -> Result<usize, Error> {
        let ids = sessions::revoke_user(&self.inner.db, user, reason, keep).await.map_err(store_err)?;
        self.note_revoked(&ids).await;
        self.inner.cache.forget_user(user);
        Ok(ids.len())
    }

    /// Log out this session, or all of the caller's sessions.
    pub async fn logout(&self, caller: &Caller, all_sessions: bool) -> Result<(), Error> {
        if all_sessions {
            self.revoke_user(caller.user(), "logout (all sessions)", None).await?;
        } else {
            self.revoke_sessions(&[caller.session()], "logout").await?;
        }
        let action = if all_sessions { "auth.logout_all" } else { "auth.logout" };
        self.audit_best_effort(caller.ctx.event(action, outcome::SUCCESS).resource("session", caller.session())).await;
        Ok(())
    }

    // ----- the caller's own account ------------------------------------------------------

    pub async fn account(&self, id: Uuid) -> Result<Account, Error> {
        let u = users::find(&self.inner.db, id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
        Ok(u.into())
    }

    /// The caller's live sessions.
    pub async fn sessions(&self, caller: &Caller) -> Result<Vec<SessionInfo>, Error> {
        let rows = sessions::active_for_user(&self.inner.db, caller.user()).await.map_err(store_err)?;
        Ok(rows
            .into_iter()
            .map(|s| SessionInfo {
                current: s.id == caller.session(),
                id: s.id,
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                expires_at: s.expires_at,
                ip: s.ip,
                user_agent: s.user_agent,
            })
            .collect())
    }

    /// End one of the caller's sessions (authorized by the caller: owner only).
    pub async fn end_session(&self, caller: &Caller, id: Uuid) -> Result<(), Error> {
        match sessions::get(&self.inner.db, id).await.map_err(store_err)? {
            Some(s) if s.user_id == caller.user() => {}
            _ => return Err(Error::new(Code::NotFound)),
        }
        self.revoke_sessions(&[id], "ended by its owner").await?;
        self.audit_best_effort(caller.ctx.event("auth.session_end", outcome::SUCCESS).resource("session", id)).await;
        Ok(())
    }

    /// Change the caller's password; every other session ends.
    pub async fn change_password(&self, caller: &Caller, current: String, new: String) -> Result<(), Error> {
        let db = &self.inner.db;
        let creds = users::credentials(db, caller.user())
            .await
            .map_err(store_err)?
            .ok_or_else(|| Error::new(Code::NotFound))?;
        passwords::check_password(&new, Some(&creds.user.email))?;
        self.reauthenticate(caller, current).await?;
        let hash = passwords::hash_password(new, &self.inner.cfg.argon2).await?;
        users::set_password(db, caller.user(), &hash).await.map_err(store_err)?;
        let revoked = self.revoke_user(caller.user(), "password changed", Some(caller.session())).await?;
        self.audit_best_effort(
            caller
                .ctx
                .event("auth.password_change", outcome::SUCCESS)
                .detail(format!("{revoked} other session(s) ended")),
        )
        .await;
        self.notify(
            creds.user.email.clone(),
            "Your careport password was changed",
            "Your careport password was just changed, and your other sessions were signed out.\n\n\
             If this was not you, reset your password at once and contact your clinic.\n"
                .to_owned(),
        );
        Ok(())
    }

    fn notify(&self, to: String, subject: &str, body: String) {
        let this = self.clone();
        let subject = subject.to_owned();
        tokio::spawn(async move {
            if let Err(e) = this.inner.mailer.send(Mail { to, subject, body }).await {
                tracing::warn!(error = ?e, "could not send a notice");
            }
        });
    }

    /// Send a reset link if the address has an active account. Answers at once, alike either
    /// way: the lookup and the mail happen in the background.
    pub async fn forgot_password(&self, client: &ClientInfo, email: Email) {
        let this = self.clone();
        let ctx = client.context();
        tokio::spawn(async move {
            let Ok(Some(u)) = users::find_by_email(&this.inner.db, &email).await else { return };
            if !u.is_active() {
                return;
            }
            let token = secret::new_token();
            let ttl = this.inner.cfg.reset_link_ttl_secs;
            if let Err(e) =
                auth_links::issue(&this.inner.db, u.id, Purpose::Reset, &secret::digest(&token), secs_ms(ttl)).await
            {
                tracing::warn!(error = %e, "could not store a reset link");
                return;
            }
            let mut ctx = ctx;
            ctx.actor_id = Some(u.id);
            this.audit_best_effort(ctx.event("auth.password_reset_requested", outcome::SUCCESS)).await;
            let mail = Mail {
                to: u.email,
                subject: "Reset your careport password".into(),
                body: format!(
                    "To choose a new password, open this link (valid for {} minutes):\n\n{}\n\n\
                     If you did not ask for this, ignore this message: your password stays as it is.\n",
                    ttl / 60,
                    this.link("reset-password", &token)
                ),
            };
            if let Err(e) = this.inner.mailer.send(mail).await {
                tracing::warn!(error = ?e, "could not send the reset e-mail");
            }
        });
    }

    /// Set a new password with a reset link; every session ends.
    pub async fn reset_password(&self, client: &ClientInfo, token: &str, new: String) -> Result<(), Error> {
        let db = &self.inner.db;
        let digest = secret::digest(token.trim());
        let user = auth_links::peek(db, Purpose::Reset, &digest)
            .await
            .map_err(store_err)?
            .ok_or_else(|| Error::new(Code::LinkInvalid))?;
        let row = users::find(db, user).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::LinkInvalid))?;
        // Check the rules before spending the link, so a weak password can be corrected.
        passwords::check_password(&new, Some(&row.email))?;
        let hash = passwords::hash_password(new, &self.inner.cfg.argon2).await?;
        if auth_links::consume(db, Purpose::Reset, &digest).await.map_err(store_err)?.is_none() {
            return Err(Error::new(Code::LinkInvalid));
        }
        users::set_password(db, user, &hash).await.map_err(store_err)?;
        // The link proved control of the mailbox.
        users::set_verified(db, user).await.map_err(store_err)?;
        self.revoke_user(user, "password reset", None).await?;
        self.inner.throttle.reset(&Throttle::account_key(&row.email)).await;
        let mut ctx = client.context();
        ctx.actor_id = Some(user);
        self.audit_best_effort(ctx.event("auth.password_reset", outcome::SUCCESS)).await;
        Ok(())
    }

    // ----- MFA ---------------------------------------------------------------------------

    /// Start enrolment: a new secret, shown once, sealed in the store until confirmed.
    pub async fn mfa_enrol(&self, caller: &Caller, password: String) -> Result<Enrolment, Error> {
        let creds = self.reauthenticate(caller, password).await?;
        if creds.user.mfa_enabled_at.is_some() {
            return Err(Error::new(Code::MfaAlreadyEnabled));
        }
        let secret_b32 = totp::generate_secret();
        let sealed = self.inner.fernet.encrypt(secret_b32.as_bytes());
        users::set_mfa_pending(&self.inner.db, caller.user(), &sealed).await.map_err(store_err)?;
        self.audit(vec![caller.ctx.event("mfa.enrol_started", outcome::SUCCESS).resource("mfa", caller.user())])
            .await?;
        Ok(Enrolment {
            otpauth_uri: totp::provisioning_uri(&secret_b32, &self.inner.cfg.mfa_issuer, &creds.user.email),
            secret: secret_b32,
        })
    }

    /// Confirm enrolment with a first code; returns the ten recovery codes (shown once).
    pub async fn mfa_confirm(&self, caller: &Caller, code: &str) -> Result<Vec<String>, Error> {
        let db = &self.inner.db;
        let creds = users::credentials(db, caller.user())
            .await
            .map_err(store_err)?
            .ok_or_else(|| Error::new(Code::NotFound))?;
        if creds.user.mfa_enabled_at.is_some() {
            return Err(Error::new(Code::MfaAlreadyEnabled));
        }
        let secret_b32 = self.open_secret(creds.mfa_secret.as_deref())?;
        let key = Throttle::account_key(&creds.user.email);
        if let Err(locked) = self.inner.throttle.check(&[&key]).await {
            return Err(self.throttled(locked));
        }
        let Some(step) = totp::matching_step(&secret_b32, code, unix_secs()) else {
            self.inner.throttle.failed(&[(&key, self.inner.cfg.throttle.account_max_failures)]).await;
            return Err(Error::new(Code::MfaCodeInvalid));
        };
        if !users::enable_mfa(db, caller.user(), step).await.map_err(store_err)? {
            return Err(Error::new(Code::MfaNotEnabled));
        }
        let codes = self.new_recovery_codes(caller.user()).await?;
        self.audit(vec![caller.ctx.event("mfa.enabled", outcome::SUCCESS).resource("mfa", caller.user())]).await?;
        self.notify(
            creds.user.email,
            "Two-step verification is on for your careport account",
            "Two-step verification (an authenticator app) was turned on for your careport account.\n\n\
             If this was not you, contact your clinic at once.\n"
                .to_owned(),
        );
        Ok(codes)
    }

    async fn new_recovery_codes(&self, user: Uuid) -> Result<Vec<String>, Error> {
        let codes = secret::recovery_codes();
        let digests: Vec<String> = codes.iter().map(|c| secret::digest(&secret::normalise_recovery_code(c))).collect();
        mfa::set_recovery_codes(&self.inner.db, user, &digests).await.map_err(store_err)?;
        Ok(codes)
    }

    /// Replace the recovery codes (password and a current code required).
    pub async fn mfa_recovery_codes(
        &self,
        caller: &Caller,
        password: String,
        code: &str,
    ) -> Result<Vec<String>, Error> {
        let creds = self.reauthenticate(caller, password).await?;
        if creds.user.mfa_enabled_at.is_none() {
            return Err(Error::new(Code::MfaNotEnabled));
        }
        self.check_code_throttled(&creds, code).await?;
        let codes = self.new_recovery_codes(caller.user()).await?;
        self.audit(vec![
            caller.ctx.event("mfa.recovery_codes_replaced", outcome::SUCCESS).resource("mfa", caller.user()),
        ])
        .await?;
        Ok(codes)
    }

    /// Turn MFA off (password and a current code required; refused where the role requires it).
    pub async fn mfa_disable(&self, caller: &Caller, password: String, code: &str) -> Result<(), Error> {
        let creds = self.reauthenticate(caller, password).await?;
        if creds.user.mfa_enabled_at.is_none() {
            return Err(Error::new(Code::MfaNotEnabled));
        }
        if self.mfa_required_for(&creds.user.role).await? {
            return Err(Error::with_message(Code::Forbidden, "Your role requires MFA; it cannot be turned off."));
        }
        self.check_code_throttled(&creds, code).await?;
        users::clear_mfa(&self.inner.db, caller.user()).await.map_err(store_err)?;
        mfa::clear_recovery_codes(&self.inner.db, caller.user()).await.map_err(store_err)?;
        self.audit(vec![caller.ctx.event("mfa.disabled", outcome::SUCCESS).resource("mfa", caller.user())]).await?;
        Ok(())
    }

    async fn reauthenticate(&self, caller: &Caller, password: String) -> Result<Credentials, Error> {
        let creds = users::credentials(&self.inner.db, caller.user())
            .await
            .map_err(store_err)?
            .ok_or_else(|| Error::new(Code::NotFound))?;
        // Throttled like login: a stolen access token must not become a password oracle.
        let key = Throttle::account_key(&creds.user.email);
        if let Err(locked) = self.inner.throttle.check(&[&key]).await {
            return Err(self.throttled(locked));
        }
        if !passwords::verify_password(password, Some(creds.password_hash.clone()), self.inner.dummy_hash.clone())
            .await?
        {
            self.inner.throttle.failed(&[(&key, self.inner.cfg.throttle.account_max_failures)]).await;
            self.audit_best_effort(caller.ctx.event("auth.reauthenticate", outcome::FAILURE)).await;
            return Err(Error::new(Code::CurrentPasswordIncorrect));
        }
        Ok(creds)
    }

    /// A second-factor check outside login, counted against the account's throttle.
    async fn check_code_throttled(&self, creds: &Credentials, code: &str) -> Result<(), Error> {
        let key = Throttle::account_key(&creds.user.email);
        if let Err(locked) = self.inner.throttle.check(&[&key]).await {
            return Err(self.throttled(locked));
        }
        let res = self.check_second_factor(creds, Some(code), None).await;
        if res.as_ref().is_err_and(|e| matches!(e.code(), Code::MfaCodeInvalid | Code::MfaRequired)) {
            self.inner.throttle.failed(&[(&key, self.inner.cfg.throttle.account_max_failures)]).await;
        }
        res
    }

    // ----- administration ----------------------------------------------------------------

    /// Accounts, a page at a time.
    pub async fn list_accounts(
        &self,
        filter: &users::ListFilter<'_>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Account>, Error> {
        let rows = users::list(&self.inner.db, filter, after, limit.clamp(1, 200)).await.map_err(store_err)?;
        Ok(rows.into_iter().map(Account::from).collect())
    }

    /// Create an account as an administrator (audited).
    pub async fn admin_create(&self, caller: &Caller, acct: NewAccount) -> Result<Account, Error> {
        let role = acct.role;
        let id = self.create_account(acct).await?;
        self.audit(vec![
            caller.ctx.event("admin.user_create", outcome::SUCCESS).resource("user", id).detail(format!("role={role}")),
        ])
        .await?;
        self.account(id).await
    }

    /// Change role, staff role, department or status; sessions of the account end (their
    /// tokens carry the old facts).
    pub async fn admin_update(&self, caller: &Caller, id: Uuid, change: AccountChange) -> Result<Account, Error> {
        let db = &self.inner.db;
        let current = users::find(db, id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
        let current_role = Role::from_str(&current.role)?;
        if id == caller.user() && (change.active == Some(false) || change.role.is_some_and(|r| r != Role::Admin)) {
            return Err(Error::with_message(Code::Conflict, "Administrators cannot demote or deactivate themselves."));
        }
        let role = change.role.unwrap_or(current_role);
        let staff = match change.staff_role {
            Some(s) => s,
            None if role == Role::Clinician => parse_staff(current.staff_role.as_deref()),
            None => None,
        };
        let department = change.department.unwrap_or(current.department.clone());
        check_profile(role, staff, department.as_deref())?;
        accounts::check_department(db, department.as_deref()).await?;
        let mut details = Vec::new();
        let profile_changed = role != current_role
            || staff.map(StaffRole::as_str) != current.staff_role.as_deref()
            || department != current.department;
        if profile_changed {
            users::set_profile(db, id, role, staff.map(StaffRole::as_str), department.as_deref())
                .await
                .map_err(store_err)?;
            details.push(format!(
                "role {}→{role}, staff_role {:?}→{:?}, department changed: {}",
                current.role,
                current.staff_role,
                staff.map(StaffRole::as_str),
                department != current.department
            ));
        }
        if let Some(active) = change.active
            && active != current.is_active()
        {
            users::set_active(db, id, active).await.map_err(store_err)?;
            details.push(if active { "activated".into() } else { "deactivated".into() });
        }
        if !details.is_empty() {
            let ended = self.revoke_user(id, "account changed by an administrator", None).await?;
            self.audit(vec![
                caller
                    .ctx
                    .event("admin.user_update", outcome::SUCCESS)
                    .resource("user", id)
                    .detail(format!("{}; {ended} session(s) ended", details.join("; "))),
            ])
            .await?;
        }
        self.account(id).await
    }

    /// Reset a user's MFA (they enrol again); audited; their sessions end.
    pub async fn admin_reset_mfa(&self, caller: &Caller, id: Uuid) -> Result<(), Error> {
        let db = &self.inner.db;
        users::find(db, id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
        users::clear_mfa(db, id).await.map_err(store_err)?;
        mfa::clear_recovery_codes(db, id).await.map_err(store_err)?;
        self.revoke_user(id, "MFA reset by an administrator", None).await?;
        self.audit(vec![caller.ctx.event("admin.mfa_reset", outcome::SUCCESS).resource("mfa", id)]).await
    }

    /// Roles that must use MFA.
    pub async fn mfa_required_roles(&self) -> Result<Vec<String>, Error> {
        mfa::required_roles(&self.inner.db).await.map_err(store_err)
    }

    /// Set the roles that must use MFA (audited).
    pub async fn set_mfa_required_roles(&self, caller: &Caller, roles: Vec<Role>) -> Result<Vec<String>, Error> {
        let db = &self.inner.db;
        for role in Role::ALL {
            mfa::set_role_required(db, role.as_str(), roles.contains(&role), caller.user()).await.map_err(store_err)?;
        }
        let now = self.mfa_required_roles().await?;
        // Members without MFA hold full tokens: end their sessions so that their next login
        // gives them the enrolment-only token at once, not in 15 minutes.
        let mut ended = 0;
        for role in &now {
            let ids = sessions::revoke_role_without_mfa(db, role, "MFA became required").await.map_err(store_err)?;
            ended += ids.len();
            self.note_revoked(&ids).await;
        }
        self.audit(vec![
            caller
                .ctx
                .event("admin.mfa_policy", outcome::SUCCESS)
                .detail(format!("required for: {now:?}; {ended} session(s) without MFA ended")),
        ])
        .await?;
        Ok(now)
    }

    /// Invite a clinician or administrator by e-mail (single-use link).
    pub async fn invite(&self, caller: &Caller, inv: Invite) -> Result<(), Error> {
        if inv.role == Role::Patient {
            return Err(Error::with_message(
                Code::InvalidValue,
                "Patients register themselves; invite clinicians and admins.",
            ));
        }
        check_profile(inv.role, inv.staff_role, inv.department.as_deref())?;
        accounts::check_department(&self.inner.db, inv.department.as_deref()).await?;
        let token = secret::new_token();
        let ttl = self.inner.cfg.invitation_ttl_secs;
        auth_links::invite(
            &self.inner.db,
            NewInvitation {
                token_hash: &secret::digest(&token),
                email: inv.email.as_str(),
                role: inv.role.as_str(),
                staff_role: inv.staff_role.map(StaffRole::as_str),
                department: inv.department.as_deref(),
                invited_by: caller.user(),
                ttl_ms: secs_ms(ttl),
            },
        )
        .await
        .map_err(store_err)?;
        self.audit(vec![
            caller
                .ctx
                .event("admin.invite", outcome::SUCCESS)
                .resource("users", "*")
                .detail(format!("role={}", inv.role)),
        ])
        .await?;
        self.inner
            .mailer
            .send(Mail {
                to: inv.email.as_str().to_owned(),
                subject: "You are invited to careport".into(),
                body: format!(
                    "You have been invited to careport as {}.\n\nTo accept and choose your password, open this link \
                     (valid for {} days, once):\n\n{}\n",
                    inv.role,
                    ttl / 86_400,
                    self.link("accept-invitation", &token)
                ),
            })
            .await
    }

    /// Accept an invitation: the account is created with the invited role.
    pub async fn accept_invitation(
        &self,
        client: &ClientInfo,
        token: &str,
        full_name: Option<String>,
        password: String,
    ) -> Result<Account, Error> {
        let db = &self.inner.db;
        let digest = secret::digest(token.trim());
        let inv = auth_links::open_invitation(db, &digest)
            .await
            .map_err(store_err)?
            .ok_or_else(|| Error::new(Code::LinkInvalid))?;
        let email = Email::parse(&inv.email)?;
        passwords::check_password(&password, Some(email.as_str()))?;
        if !auth_links::accept_invitation(db, &digest).await.map_err(store_err)? {
            return Err(Error::new(Code::LinkInvalid));
        }
        let role = Role::from_str(&inv.role)?;
        let id = self
            .create_account(NewAccount {
                email,
                password,
                full_name,
                role,
                staff_role: parse_staff(inv.staff_role.as_deref()),
                department: inv.department,
                preferred_language: None,
                email_verified: true,
            })
            .await?;
        let mut ctx = client.context();
        ctx.actor_id = Some(id);
        self.audit(vec![ctx.event("auth.invitation_accepted", outcome::SUCCESS).resource("user", id)]).await?;
        self.account(id).await
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

/// The patient an event is about, for the patient's access log.
pub fn patient_of(kind: &str, id: &str) -> Option<Uuid> {
    match kind {
        "patient" | "access_log" => Uuid::parse_str(id).ok(),
        _ => None,
    }
}

/// Seconds since the epoch of a `SystemTime`, for responses.
pub fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
