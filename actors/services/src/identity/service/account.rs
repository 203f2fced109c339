//! The caller's own account: profile, sessions, password change and reset.

use super::*;
use crate::access::{DeleteSession, ListOwnSessions, Pass, ReadSelf, WriteSelf};

impl Identity {
    /// The caller's own account.
    pub async fn me(&self, pass: &Pass<ReadSelf>) -> Result<Account, Error> {
        self.account(pass.id()).await
    }

    /// An account by id (for the operations that decided who may read it).
    pub async fn account(&self, id: Uuid) -> Result<Account, Error> {
        let u = users::find(&self.inner.db, id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
        Ok(u.into())
    }

    /// The caller's live sessions.
    pub async fn sessions(&self, pass: &Pass<ListOwnSessions>) -> Result<Vec<SessionInfo>, Error> {
        let caller = pass.caller();
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
    pub async fn end_session(&self, pass: &Pass<DeleteSession>) -> Result<(), Error> {
        let (caller, id) = (pass.caller(), pass.id());
        match sessions::get(&self.inner.db, id).await.map_err(store_err)? {
            Some(s) if s.user_id == caller.user() => {}
            _ => return Err(Error::new(Code::NotFound)),
        }
        self.revoke_sessions(&[id], "ended by its owner").await?;
        self.audit_best_effort(caller.ctx.event("auth.session_end", outcome::SUCCESS).resource("session", id)).await;
        Ok(())
    }

    /// Change the caller's password; every other session ends.
    pub async fn change_password(&self, pass: &Pass<WriteSelf>, current: String, new: String) -> Result<(), Error> {
        let caller = pass.caller();
        let db = &self.inner.db;
        let creds = users::credentials(db, caller.user())
            .await
            .map_err(store_err)?
            .ok_or_else(|| Error::new(Code::NotFound))?;
        passwords::check_password(&new, Some(&creds.user.email))?;
        self.reauthenticate(caller, current).await?;
        let hash = passwords::hash_password(new, &self.inner.cfg.argon2).await?;
        users::set_password(db, caller.user(), &hash).await.map_err(store_err)?;
        let revoked =
            self.revoke_user(caller.user(), sessions::ended_all::PASSWORD_CHANGED, Some(caller.session())).await?;
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

    pub(super) fn notify(&self, to: String, subject: &str, body: String) {
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
    pub async fn forgot_password(&self, client: &ClientInfo, email: Email) -> Result<(), Error> {
        self.limit_mail(client, email.as_str()).await?;
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
        Ok(())
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
        self.revoke_user(user, sessions::ended_all::PASSWORD_RESET, None).await?;
        self.inner.throttle.reset(&Throttle::account_key(&row.email)).await;
        let mut ctx = client.context();
        ctx.actor_id = Some(user);
        self.audit_best_effort(ctx.event("auth.password_reset", outcome::SUCCESS)).await;
        Ok(())
    }
}
