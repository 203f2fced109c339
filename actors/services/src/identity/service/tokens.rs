//! Tokens the identity service mints beyond login: signed links' tokens. Whether a link still
//! opens anything is an access decision ([`crate::access::links`]).

use std::time::SystemTime;

use careport_domain::Error;
use careport_policy::{Claims, Narrowing};
use uuid::Uuid;

use super::Identity;
use crate::identity::Caller;

impl Identity {
    /// The address users reach the portal at (no trailing slash).
    pub fn public_url(&self) -> &str {
        &self.inner.public_url
    }

    /// A signed link's token: the caller's identity, valid until `expires_at`, narrowed by an
    /// attenuation block to reading one resource. It has a session of its own, a UUIDv7 whose
    /// time is when the link was made (a link outlives the login that made it, not the caller's
    /// right to read: the policies still run with the caller's claims at each use, and
    /// [`crate::access::links`] refuses it once its maker changed or ended all sessions), and it
    /// is refused once its time is up.
    pub fn mint_link(&self, caller: &Caller, kind: &str, id: &str, expires_at: SystemTime) -> Result<String, Error> {
        let c = caller.token.claims();
        let claims = Claims {
            user: c.user,
            role: c.role,
            staff_role: c.staff_role,
            department: c.department.clone(),
            session: Uuid::now_v7(),
            expires_at,
            mfa_pending: false,
        };
        let minted =
            self.inner.keys.mint(&claims).map_err(|e| Error::internal(anyhow::anyhow!("minting a link: {e}")))?;
        let token = self.authenticate(&minted)?;
        careport_policy::attenuate(
            &token,
            &Narrowing {
                operations: Some(vec!["read".to_owned()]),
                resources: Some(vec![(kind.to_owned(), id.to_owned())]),
                expires_at: Some(expires_at),
            },
        )
        .map_err(|e| Error::internal(anyhow::anyhow!("attenuating a link: {e}")))
    }
}

impl Identity {
    /// The caller an operator's CLI command acts as: an administrator with no account (the nil
    /// id), for a few minutes, whose audit events name the CLI as their source. Commands such
    /// as `careport user create` and `careport records import` go through the same service
    /// operations, policies and audit events as the API; only someone who holds the server's
    /// keys (and so could do anything) can make this caller.
    pub fn operator_caller(&self) -> Result<Caller, Error> {
        let claims = Claims {
            user: Uuid::nil(),
            role: careport_domain::Role::Admin,
            staff_role: None,
            department: None,
            session: Uuid::now_v7(),
            expires_at: SystemTime::now() + std::time::Duration::from_secs(600),
            mfa_pending: false,
        };
        let mut caller = self.cli_caller(&claims)?;
        caller.ctx.actor_id = None;
        caller.ctx.actor_role = Some("operator".into());
        Ok(caller)
    }

    /// The caller `careport seed-demo` acts as for an account it has just made (a doctor who
    /// writes the demo's reports): that account's own rights, for a few minutes, its audit
    /// events naming the CLI as their source. Like [`Identity::operator_caller`], only a process
    /// holding the server's keys can make it; the policies decide what it may do.
    pub fn seeding_caller(
        &self,
        user: Uuid,
        role: careport_domain::Role,
        staff_role: Option<careport_policy::StaffRole>,
        department: Option<String>,
    ) -> Result<Caller, Error> {
        let claims = Claims {
            user,
            role,
            staff_role,
            department,
            session: Uuid::now_v7(),
            expires_at: SystemTime::now() + std::time::Duration::from_secs(600),
            mfa_pending: false,
        };
        self.cli_caller(&claims)
    }

    fn cli_caller(&self, claims: &Claims) -> Result<Caller, Error> {
        let minted = self.inner.keys.mint(claims).map_err(|e| Error::internal(anyhow::anyhow!("minting: {e}")))?;
        let token = self.authenticate(&minted)?;
        let client = crate::ClientInfo { ip: None, user_agent: Some("careport-cli".into()), request_id: None };
        Ok(Caller::new(token, &client))
    }
}
