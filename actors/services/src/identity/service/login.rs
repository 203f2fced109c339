//! Login (throttled, with the second factor), refresh rotation and reuse detection, revocation and logout.

use super::*;
use crate::access::{EndOwnSession, Pass};

impl Identity {
    pub(super) fn throttled(&self, locked: crate::identity::throttle::Locked) -> Error {
        Error::new(Code::TooManyAttempts).retry_after(u32::try_from(locked.retry_after_secs).unwrap_or(u32::MAX))
    }

    /// Log in. Unknown address and wrong password answer alike and take as long.
    pub async fn login(&self, client: &ClientInfo, req: Login) -> Result<TokenPair, Error> {
        let cfg = &self.inner.cfg;
        let email = Email::parse(&req.email).map_err(|_| Error::new(Code::InvalidCredentials))?;
        // Failures count per (account, client), per client, and per account (much higher): a
        // client is locked out of an account by its own failures, not by someone else's; the
        // account itself only after many failures from everywhere, and even then a correct
        // password with a valid second factor gets through (README: "Identity and access").
        let acct_key = Throttle::account_key(email.as_str());
        let ip = client.ip.as_deref().unwrap_or("unknown");
        let pair_key = Throttle::pair_key(email.as_str(), ip);
        let ip_key = Throttle::ip_key(ip);
        let mut ctx = client.context();
        let creds = users::credentials_by_email(&self.inner.db, &email).await.map_err(store_err)?;
        // A client the account signed in from lately is its owner's usual client: its failures
        // slow it down (a wait that doubles, bounded) instead of locking it out, so that
        // someone on the same shared address cannot lock the owner out. Asked for an unknown
        // address too (with no account), so that both answers take the same work.
        let since = now_ms() - i64::from(cfg.throttle.usual_client_days) * 86_400_000;
        let usual = cfg.throttle.usual_client_days > 0
            && sessions::signed_in_from(&self.inner.db, creds.as_ref().map_or(Uuid::nil(), |c| c.user.id), ip, since)
                .await
                .map_err(store_err)?;
        let slow_key = Throttle::slow_key(&pair_key);
        let client_key = if usual { &slow_key } else { &pair_key };
        if let Err(locked) = self.inner.throttle.check(&[client_key, &ip_key]).await {
            self.audit_best_effort(ctx.event("auth.login", outcome::DENIED).detail("throttled")).await;
            return Err(self.throttled(locked));
        }
        let account_locked = self.inner.throttle.check(&[&acct_key]).await.err();
        let password = req.password;
        let ok = passwords::verify_password(
            password.clone(),
            creds.as_ref().map(|c| c.password_hash.clone()),
            self.inner.dummy_hash.clone(),
        )
        .await?;
        let fail_keys =
            [(acct_key.as_str(), cfg.throttle.account_lock_failures), (ip_key.as_str(), cfg.throttle.ip_max_failures)];
        let count_failure = || async {
            if usual {
                self.inner.throttle.failed_slowly(&pair_key, cfg.throttle.account_max_failures).await;
            } else {
                self.inner.throttle.failed(&[(pair_key.as_str(), cfg.throttle.account_max_failures)]).await;
            }
            self.inner.throttle.failed(&fail_keys).await;
        };
        let creds = match (ok, creds) {
            (true, Some(c)) => c,
            (_, c) => {
                count_failure().await;
                ctx.actor_id = c.map(|c| c.user.id);
                self.audit_best_effort(ctx.event("auth.login", outcome::FAILURE).detail("bad credentials")).await;
                if let Some(locked) = account_locked {
                    return Err(self.throttled(locked));
                }
                return Err(Error::new(Code::InvalidCredentials));
            }
        };
        // The account is locked: only its owner's second factor opens it.
        if let Some(locked) = account_locked
            && creds.user.mfa_enabled_at.is_none()
        {
            self.audit_best_effort(ctx.event("auth.login", outcome::DENIED).detail("throttled")).await;
            return Err(self.throttled(locked));
        }
        let user = creds.user.clone();
        ctx.actor_id = Some(user.id);
        ctx.actor_role = Some(user.role.clone());
        if !user.is_active() {
            self.audit_best_effort(ctx.event("auth.login", outcome::DENIED).detail("account inactive")).await;
            return Err(Error::new(Code::AccountInactive));
        }
        if cfg.require_email_verification && user.role == "patient" && user.email_verified_at.is_none() {
            // No new link here: a login attempt should not send mail (anyone may attempt one).
            // `POST /auth/email/resend` does, on request, within the mail limits.
            self.audit_best_effort(ctx.event("auth.login", outcome::DENIED).detail("e-mail not verified")).await;
            return Err(Error::new(Code::EmailNotVerified));
        }
        if user.mfa_enabled_at.is_some()
            && let Err(e) = self.check_second_factor(&creds, req.totp.as_deref(), req.recovery_code.as_deref()).await
        {
            if e.code() == Code::MfaCodeInvalid {
                count_failure().await;
                self.audit_best_effort(ctx.event("auth.login", outcome::FAILURE).detail("bad second factor")).await;
            }
            return Err(e);
        }
        let mfa_pending = user.mfa_enabled_at.is_none() && self.mfa_required_for(&user.role).await?;
        if passwords::needs_rehash(&creds.password_hash, &cfg.argon2) {
            // Best effort: the login succeeds with the old hash either way.
            self.rehash(user.id, password);
        }
        self.inner.throttle.reset(&pair_key).await;
        self.inner.throttle.reset(&slow_key).await;
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
    pub(super) fn rehash(&self, user: Uuid, password: String) {
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

    pub(super) async fn mfa_required_for(&self, role: &str) -> Result<bool, Error> {
        Ok(mfa::required_roles(&self.inner.db).await.map_err(store_err)?.iter().any(|r| r == role))
    }

    /// Check a TOTP code (replay-protected) or a recovery code (single use).
    pub(super) async fn check_second_factor(
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

    pub(super) fn open_secret(&self, sealed: Option<&str>) -> Result<String, Error> {
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

    pub(super) async fn note_revoked(&self, ids: &[Uuid]) {
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
    pub async fn logout(&self, pass: &Pass<EndOwnSession>, all_sessions: bool) -> Result<(), Error> {
        let caller = pass.caller();
        if all_sessions {
            self.revoke_user(caller.user(), sessions::ended_all::LOGOUT_ALL, None).await?;
        } else {
            self.revoke_sessions(&[caller.session()], "logout").await?;
        }
        let action = if all_sessions { "auth.logout_all" } else { "auth.logout" };
        self.audit_best_effort(caller.ctx.event(action, outcome::SUCCESS).resource("session", caller.session())).await;
        Ok(())
    }
}
