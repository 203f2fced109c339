//! Registration and e-mail verification.

use super::*;

impl Identity {
    pub(super) fn link(&self, page: &str, token: &str) -> String {
        format!("{}/{page}?token={token}", self.inner.public_url)
    }

    /// Create an account after checking the rules. Used by the CLI, administrators and
    /// invitations; registration goes through [`Identity::register`].
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
        self.limit_mail(client, email.as_str()).await?;
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
                // Linked by address only where the address must be proven before first login.
                link_record: self.inner.cfg.require_email_verification,
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

    pub(super) async fn send_verification(&self, user: Uuid, to: &str) -> Result<(), Error> {
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
    pub async fn resend_verification(&self, client: &ClientInfo, email: Email) -> Result<(), Error> {
        self.limit_mail(client, email.as_str()).await?;
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
        Ok(())
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
        if chart_links::mark_notified(&self.inner.db, user).await.map_err(store_err)? {
            self.audit_best_effort(
                ctx.event("patient.chart_linked", outcome::SUCCESS)
                    .resource("patient", user)
                    .patient(user)
                    .detail("linked at registration by a proven e-mail address; awaiting the clinic's confirmation"),
            )
            .await;
            self.tell_administrators_of_link(user).await;
        }
        Ok(())
    }

    /// Mail every active administrator that an account was linked to a chart the clinic
    /// registered: no name or address in the message (it leaves the host), only where to
    /// confirm it.
    async fn tell_administrators_of_link(&self, patient: Uuid) {
        let filter =
            users::ListFilter { role: Some(Role::Admin.as_str()), status: Some("active"), email_contains: None };
        let admins = match users::list(&self.inner.db, &filter, None, 200).await {
            Ok(admins) => admins,
            Err(e) => return tracing::warn!(error = %e, "could not list the administrators to tell of a linked chart"),
        };
        for admin in admins {
            let mail = Mail {
                to: admin.email.clone(),
                subject: "A patient account was linked to a chart: please confirm".into(),
                body: format!(
                    "An account was registered with, and proved, the e-mail address of a chart the clinic registered, \
                     and was linked to it (account and chart id {patient}).\n\nCheck that the account is the patient's \
                     and confirm the link: POST {}/api/v1/admin/users/{patient}/confirm-link. Until then, the account's \
                     reads of the chart appear in its access log like anyone else's.\n",
                    self.inner.public_url
                ),
            };
            if let Err(e) = self.inner.mailer.send(mail).await {
                tracing::warn!(error = ?e, "could not tell an administrator of a linked chart");
            }
        }
    }
}
