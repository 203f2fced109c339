//! Administration: accounts (list, create, change, MFA reset), invitations, the MFA policy and
//! the audit trail. The account flows themselves are identity's; this is the door to them, so
//! that each takes the administrator's pass and the side effects of a change (a patient
//! account's record, the directory's cache) happen in the same call.

use careport_domain::{Code, Error, Role};
use careport_store::audit::{self as trail, EventRow, Filter};
use careport_store::{patients, users};
use uuid::Uuid;

use super::page::{self, Page, PageRequest};
use super::store_err;
use crate::Services;
use crate::access::{ManageUsers, Pass, ReadAudit};
use crate::accounts::NewAccount;
use crate::audit::{EventExt, outcome};
use crate::identity::service::{Account, AccountChange, Invite};

/// The administration operations.
pub struct Admin<'a>(pub(crate) &'a Services);

/// What an account list asks for.
#[derive(Debug, Clone, Default)]
pub struct AccountQuery {
    pub role: Option<Role>,
    /// `active` or `inactive`.
    pub status: Option<String>,
    /// Part of the e-mail address.
    pub email: Option<String>,
    pub page: PageRequest,
}

/// What an audit-trail read asks for.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<Uuid>,
    pub patient: Option<Uuid>,
    pub action: Option<String>,
    /// Milliseconds since the epoch.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub page: PageRequest,
}

impl Admin<'_> {
    /// Accounts, a page at a time. The list holds patients' names and addresses: reading it is
    /// audited, and fails closed.
    pub async fn accounts(&self, pass: Pass<ManageUsers>, q: AccountQuery) -> Result<Page<Account>, Error> {
        let limit = q.page.limit()?;
        let after = page::decode_uuid(q.page.cursor.as_deref())?;
        if let Some(st) = q.status.as_deref()
            && !["active", "inactive"].contains(&st)
        {
            return Err(Error::with_message(Code::InvalidQuery, "status must be active or inactive."));
        }
        if q.email.as_deref().is_some_and(|e| e.chars().count() > 254) {
            return Err(Error::with_message(Code::InvalidQuery, "email must be at most 254 characters."));
        }
        let filter = users::ListFilter {
            role: q.role.map(Role::as_str),
            status: q.status.as_deref(),
            email_contains: q.email.as_deref().map(str::trim).filter(|e| !e.is_empty()),
        };
        let rows = users::list(&self.0.db, &filter, after, limit).await.map_err(store_err)?;
        let accounts: Vec<Account> = rows.into_iter().map(Account::from).collect();
        self.0
            .audit
            .one(pass.caller().ctx.event("admin.user_list", outcome::SUCCESS).detail(format!(
                "{} account(s), role filter {:?}",
                accounts.len(),
                q.role.map(Role::as_str)
            )))
            .await?;
        Ok(Page::of(accounts, limit, |u| u.id.to_string()))
    }

    /// Create an account (verified, linked to its clinic record when it is a patient's).
    pub async fn create_account(&self, pass: Pass<ManageUsers>, acct: NewAccount) -> Result<Account, Error> {
        self.0.identity.admin_create(pass.caller(), acct).await
    }

    /// Change an account's role, staff role, department or status. Its sessions end (their
    /// tokens carry the old facts); one that became a patient's gets its clinic record; the
    /// directory forgets what it cached of it.
    pub async fn update_account(
        &self,
        pass: Pass<ManageUsers>,
        id: Uuid,
        change: AccountChange,
    ) -> Result<Account, Error> {
        let account = self.0.identity.admin_update(pass.caller(), id, change).await?;
        if account.role == Role::Patient.as_str() {
            patients::ensure_for_account(&self.0.db, id).await.map_err(store_err)?;
        }
        self.0.clinic.forget_clinician(id).await;
        Ok(account)
    }

    /// Remove an account's MFA (it enrols again at next login if its role requires it).
    pub async fn reset_mfa(&self, pass: Pass<ManageUsers>, id: Uuid) -> Result<(), Error> {
        self.0.identity.admin_reset_mfa(pass.caller(), id).await
    }

    /// Confirm that an account linked at registration to a chart is the patient's: from now on
    /// its reads of the chart count as the patient's own (README: "Accounts and records").
    pub async fn confirm_chart_link(&self, pass: Pass<ManageUsers>, id: Uuid) -> Result<(), Error> {
        self.0.identity.admin_confirm_chart_link(pass.caller(), id).await
    }

    /// The roles that must use MFA.
    pub async fn mfa_policy(&self, _: Pass<ManageUsers>) -> Result<Vec<String>, Error> {
        self.0.identity.mfa_required_roles().await
    }

    /// Set the roles that must use MFA.
    pub async fn set_mfa_policy(&self, pass: Pass<ManageUsers>, roles: Vec<Role>) -> Result<Vec<String>, Error> {
        self.0.identity.set_mfa_required_roles(pass.caller(), roles).await
    }

    /// Invite a member of staff (or anyone) by e-mail.
    pub async fn invite(&self, pass: Pass<ManageUsers>, invite: Invite) -> Result<(), Error> {
        self.0.identity.invite(pass.caller(), invite).await
    }

    /// Verify the audit chain (`{events, intact, broken_at, why}`); the check is itself recorded.
    pub async fn verify_audit(&self, pass: Pass<ReadAudit>) -> Result<serde_json::Value, Error> {
        let v = self.0.audit.verify().await?;
        let detail = match &v.broken {
            None => format!("intact: {} event(s)", v.events),
            Some((seq, _)) => format!("broken at #{seq}"),
        };
        self.0.audit.one(pass.caller().ctx.event("audit.verify", outcome::SUCCESS).detail(detail)).await?;
        Ok(serde_json::json!({
            "events": v.events,
            "intact": v.broken.is_none(),
            "broken_at": v.broken.as_ref().map(|(s, _)| *s),
            "why": v.broken.map(|(_, w)| w),
        }))
    }

    /// The audit trail, newest first. Reading it is itself an access worth recording.
    pub async fn audit_trail(&self, pass: Pass<ReadAudit>, q: AuditQuery) -> Result<Page<EventRow>, Error> {
        let limit = q.page.limit()?;
        let before = page::decode_seq(q.page.cursor.as_deref())?;
        let filter =
            Filter { actor: q.actor, patient: q.patient, action: q.action, from: q.from, to: q.to, before, limit };
        let events = trail::list(&self.0.db, &filter).await.map_err(store_err)?;
        self.0
            .audit
            .one(pass.caller().ctx.event("audit.read", outcome::SUCCESS).detail(format!("{} event(s)", events.len())))
            .await?;
        Ok(Page::of(events, limit, |e| e.seq.to_string()))
    }
}
