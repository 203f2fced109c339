//! MFA: TOTP enrolment, confirmation, recovery codes, disabling.

use super::*;
use crate::access::{ManageOwnMfa, Pass};

impl Identity {
    /// Start enrolment: a new secret, shown once, sealed in the store until confirmed.
    pub async fn mfa_enrol(&self, pass: &Pass<ManageOwnMfa>, password: String) -> Result<Enrolment, Error> {
        let caller = pass.caller();
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
    pub async fn mfa_confirm(&self, pass: &Pass<ManageOwnMfa>, code: &str) -> Result<Vec<String>, Error> {
        let caller = pass.caller();
        let db = &self.inner.db;
        let creds = users::credentials(db, caller.user())
            .await
            .map_err(store_err)?
            .ok_or_else(|| Error::new(Code::NotFound))?;
        if creds.user.mfa_enabled_at.is_some() {
            return Err(Error::new(Code::MfaAlreadyEnabled));
        }
        let secret_b32 = self.open_secret(creds.mfa_secret.as_deref())?;
        let key = Throttle::signed_in_key(creds.user.id);
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

    pub(super) async fn new_recovery_codes(&self, user: Uuid) -> Result<Vec<String>, Error> {
        let codes = secret::recovery_codes();
        let digests: Vec<String> = codes.iter().map(|c| secret::digest(&secret::normalise_recovery_code(c))).collect();
        mfa::set_recovery_codes(&self.inner.db, user, &digests).await.map_err(store_err)?;
        Ok(codes)
    }

    /// Replace the recovery codes (password and a current code required).
    pub async fn mfa_recovery_codes(
        &self,
        pass: &Pass<ManageOwnMfa>,
        password: String,
        code: &str,
    ) -> Result<Vec<String>, Error> {
        let caller = pass.caller();
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
    pub async fn mfa_disable(&self, pass: &Pass<ManageOwnMfa>, password: String, code: &str) -> Result<(), Error> {
        let caller = pass.caller();
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

    pub(super) async fn reauthenticate(&self, caller: &Caller, password: String) -> Result<Credentials, Error> {
        let creds = users::credentials(&self.inner.db, caller.user())
            .await
            .map_err(store_err)?
            .ok_or_else(|| Error::new(Code::NotFound))?;
        // Throttled like login: a stolen access token must not become a password oracle.
        let key = Throttle::signed_in_key(creds.user.id);
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
    pub(super) async fn check_code_throttled(&self, creds: &Credentials, code: &str) -> Result<(), Error> {
        let key = Throttle::signed_in_key(creds.user.id);
        if let Err(locked) = self.inner.throttle.check(&[&key]).await {
            return Err(self.throttled(locked));
        }
        let res = self.check_second_factor(creds, Some(code), None).await;
        if res.as_ref().is_err_and(|e| matches!(e.code(), Code::MfaCodeInvalid | Code::MfaRequired)) {
            self.inner.throttle.failed(&[(&key, self.inner.cfg.throttle.account_max_failures)]).await;
        }
        res
    }
}
