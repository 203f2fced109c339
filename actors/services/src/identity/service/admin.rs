//! Administration of accounts: listing, creation, changes, MFA reset and policy, invitations.

use super::*;

impl Identity {
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
        // No one grants what they do not hold: only an administrator makes an administrator
        // (the route is administrators' already; this holds even if a policy is loosened).
        if role == Role::Admin && current_role != Role::Admin && caller.role() != Role::Admin {
            return Err(Error::with_message(Code::Forbidden, "Only an administrator can grant the admin role."));
        }
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
            let ended = self.revoke_user(id, sessions::ended_all::ACCOUNT_CHANGED, None).await?;
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
        self.revoke_user(id, sessions::ended_all::MFA_RESET, None).await?;
        self.audit(vec![caller.ctx.event("admin.mfa_reset", outcome::SUCCESS).resource("mfa", id)]).await
    }

    /// Confirm that the account linked at registration to the chart of the same id is the
    /// patient's (audited). 404 when there is no such link waiting.
    pub async fn admin_confirm_chart_link(&self, caller: &Caller, id: Uuid) -> Result<(), Error> {
        if !chart_links::confirm(&self.inner.db, id, caller.user()).await.map_err(store_err)? {
            return Err(Error::new(Code::NotFound));
        }
        self.audit(vec![
            caller.ctx.event("admin.chart_link_confirmed", outcome::SUCCESS).resource("patient", id).patient(id),
        ])
        .await
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
                link_record: false,
            })
            .await?;
        let mut ctx = client.context();
        ctx.actor_id = Some(id);
        self.audit(vec![ctx.event("auth.invitation_accepted", outcome::SUCCESS).resource("user", id)]).await?;
        self.account(id).await
    }
}
