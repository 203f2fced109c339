//! Sharing a medical record beyond its care team, and taking it back for good: grants (create,
//! list, revoke), signed links (create), and erasing a patient's files (crypto-shredding).
//!
//! These live apart from [`super::records`] because each one changes who can open a file, not
//! the file: a grant wraps the record's data key for one more user, a link hands out its
//! maker's identity narrowed to reading one record, erasure destroys every wrap. Each is
//! audited in the record's patient's trail. A token narrowed by attenuation (itself perhaps a
//! link) makes neither grants nor links: both outlive it, and would turn a narrow token into a
//! wider or longer-lived one.

use std::time::{Duration, SystemTime};

use careport_domain::time::now_ms;
use careport_domain::{Code, Error};
use careport_store::vault as stored;
use serde::Serialize;
use uuid::Uuid;

use super::patients::invalid;
use super::records::{live_record, open_for};
use super::store_err;
use super::views::{Grant, rfc3339};
use crate::access::{ErasePatient, ShareDocument};
use crate::audit::{EventExt, outcome};
use crate::{Pass, Services};

/// The sharing operations.
pub struct Sharing<'a>(pub(crate) &'a Services);

/// What a grant asks for.
#[derive(Debug, Clone)]
pub struct GrantRequest {
    /// The user who may read the record.
    pub user_id: Uuid,
    /// Until when (RFC 3339), at most `vault.max_grant_days` ahead.
    pub expires_at: String,
    /// Why: required for every grant (shown in the record's grants and the audit trail).
    pub reason: Option<String>,
}

/// A signed link: the URL to send, and when it stops working.
#[derive(Debug, Clone, Serialize)]
pub struct SignedLink {
    pub url: String,
    pub expires_at: String,
}

/// What erasing a patient destroyed.
#[derive(Debug, Clone, Serialize)]
pub struct Erasure {
    /// Files that can no longer be opened.
    pub files: usize,
    /// Grants deleted with them.
    pub grants: u64,
}

/// The longest reason kept; longer ones are cut.
const MAX_REASON: usize = 500;

impl Sharing<'_> {
    /// Let one active user read the record until a time: its data key is wrapped with that
    /// user's key. The patient and the assigned doctors grant, administrators too (emergency
    /// access). Every grant needs a reason (422 `reason_required`): it is what the patient and
    /// an auditor read to know why someone outside the care team opened their file. A narrowed
    /// token grants nothing (403).
    pub async fn grant(&self, pass: Pass<ShareDocument>, req: GrantRequest) -> Result<Grant, Error> {
        self.0.access.check_may_grant(&pass)?;
        let (caller, id) = (pass.caller(), pass.id());
        let r = live_record(self.0, id).await?;
        let expires_at = crate::clinic::parse_instant("expires_at", &req.expires_at)?;
        let max_days = self.0.vault.config().max_grant_days;
        let now = now_ms();
        if expires_at <= now || expires_at > now + (max_days as i64) * 86_400_000 {
            return Err(invalid(format!("expires_at must be in the future and at most {max_days} days ahead.")));
        }
        let grantee = careport_store::users::find(&self.0.db, req.user_id).await.map_err(store_err)?;
        if !grantee.is_some_and(|u| u.is_active()) {
            return Err(invalid("user_id names no active user."));
        }
        let reason: Option<String> = req
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(MAX_REASON).collect());
        let Some(reason) = reason else {
            return Err(Error::with_message(
                Code::ReasonRequired,
                "Every grant needs a reason: say why this user may read the record.",
            ));
        };
        let g = self.0.vault.grant(&r, req.user_id, expires_at, Some(reason), caller.user()).await?;
        self.0
            .audit
            .one(
                caller
                    .ctx
                    .event("record.grant", outcome::SUCCESS)
                    .resource("document", id)
                    .patient(r.patient_id)
                    .detail(format!("grant {} to user {} until {}", g.id, g.grantee_id, rfc3339(g.expires_at))),
            )
            .await?;
        Ok(Grant::from(&g))
    }

    /// The record's grants, newest first, expired ones included. Who may read a patient's file
    /// is itself about the patient: one audit event per list, in the patient's trail.
    pub async fn grants(&self, pass: Pass<ShareDocument>) -> Result<Vec<Grant>, Error> {
        let (caller, id) = (pass.caller(), pass.id());
        let r = live_record(self.0, id).await?;
        let rows = stored::grants(&self.0.db, id).await.map_err(store_err)?;
        self.0
            .audit
            .one(
                caller
                    .ctx
                    .event("record.grant_list", outcome::SUCCESS)
                    .resource("document", id)
                    .patient(r.patient_id)
                    .detail(format!("{} grants", rows.len())),
            )
            .await?;
        Ok(rows.iter().map(Grant::from).collect())
    }

    /// Revoke a grant of the record: its wrap of the data key is deleted at once (404 if the
    /// record has no such grant).
    pub async fn revoke(&self, pass: Pass<ShareDocument>, grant: Uuid) -> Result<(), Error> {
        let (caller, id) = (pass.caller(), pass.id());
        let r = live_record(self.0, id).await?;
        let grantee = stored::delete_grant(&self.0.db, id, grant)
            .await
            .map_err(store_err)?
            .ok_or_else(|| Error::new(Code::NotFound))?;
        self.0
            .audit
            .one(
                caller
                    .ctx
                    .event("record.grant_revoke", outcome::SUCCESS)
                    .resource("document", id)
                    .patient(r.patient_id)
                    .detail(format!("grant {grant} of user {grantee}")),
            )
            .await
    }

    /// A link that reads this one record, and nothing else, for `expires_in` seconds (1 to
    /// `vault.max_link_secs`). Sharing by link never gives more than the maker has: they must
    /// open the record themselves (404 otherwise). A narrowed token makes none (403).
    pub async fn link(&self, pass: Pass<ShareDocument>, expires_in: u64) -> Result<SignedLink, Error> {
        let (caller, id) = (pass.caller(), pass.id());
        let max = self.0.vault.config().max_link_secs;
        if expires_in == 0 || expires_in > max {
            return Err(invalid(format!("expires_in must be 1 to {max} seconds.")));
        }
        let r = live_record(self.0, id).await?;
        open_for(self.0, caller, &r).await?;
        let (token, expires) = self.0.access.mint_link(&pass, Duration::from_secs(expires_in))?;
        let expires_ms =
            expires.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default();
        let expires_at = rfc3339(expires_ms);
        self.0
            .audit
            .one(
                caller
                    .ctx
                    .event("record.link_create", outcome::SUCCESS)
                    .resource("document", id)
                    .patient(r.patient_id)
                    .detail(format!("signed link until {expires_at}")),
            )
            .await?;
        let base = self.0.identity.public_url().trim_end_matches('/');
        Ok(SignedLink { url: format!("{base}/api/v1/records/{id}/content?link={token}"), expires_at })
    }

    /// Erase a patient's files for good (administrators; the patient's record must be deleted
    /// first, 409 `patient_not_deleted`): their key and every wrap of their files' data keys
    /// are destroyed, so nothing — this server, a backup of its store, a copy of its objects —
    /// can open them again.
    pub async fn erase_patient(&self, pass: Pass<ErasePatient>) -> Result<Erasure, Error> {
        let (caller, id) = (pass.caller(), pass.id());
        let p = careport_store::patients::get(&self.0.db, id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| Error::new(Code::NotFound))?;
        if p.deleted_at.is_none() {
            return Err(Error::new(Code::PatientNotDeleted));
        }
        let shredded = self.0.vault.erase_patient(id).await?;
        super::knowledge::forget_patient(self.0, id).await;
        // Their conversations were sealed with the key just destroyed; the rows go too.
        careport_store::chat::delete_all_of(&self.0.db, id).await.map_err(store_err)?;
        self.0
            .audit
            .one(
                caller
                    .ctx
                    .event("patient.erase", outcome::SUCCESS)
                    .resource("patient", id)
                    .patient(id)
                    .detail(format!("{} files, {} grants", shredded.files.len(), shredded.grants)),
            )
            .await?;
        Ok(Erasure { files: shredded.files.len(), grants: shredded.grants })
    }
}
