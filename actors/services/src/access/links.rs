//! Signed links and other narrowed tokens: one check, however the token is presented.
//!
//! A signed link is its maker's identity narrowed to reading one record until a time. It can
//! arrive as `?link=` on the content route or as `Authorization: Bearer` anywhere; both ways
//! reach [`Access::check_narrowed`], so a link stops working the moment its maker is
//! deactivated, changes role, staff role or department, or has all their sessions ended (log
//! out everywhere, a password change or reset, an administrator's change or MFA reset) after
//! the link was made. The same holds for any token narrowed by attenuation: it is never more
//! durable than the account that made it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use careport_domain::{Code, Error};
use careport_policy::VerifiedToken;
use careport_store::{sessions, users};
use uuid::Uuid;

use super::{Access, Pass, ReadDocument, ShareDocument};
use crate::door::store_err;
use crate::identity::{Caller, ClientInfo};

/// When a token's session began, from its UUIDv7 (a link's own session is made with the link;
/// a narrowed login token keeps its login's). `None` for an id that is not a v7.
fn session_started_ms(session: Uuid) -> Option<i64> {
    let (secs, nanos) = session.get_timestamp()?.to_unix();
    i64::try_from(secs).ok().map(|s| s * 1000 + i64::from(nanos / 1_000_000))
}

impl Access {
    /// Refuse a narrowed token (a signed link, or an attenuated login token) whose maker's
    /// account has changed since it was made: inactive, another role, staff role or department,
    /// or every session ended at once after the token's session began. A token that is not
    /// narrowed passes untouched (its session's revocation already covers all of this).
    pub async fn check_narrowed(&self, token: &VerifiedToken) -> Result<(), Error> {
        if !token.is_attenuated() {
            return Ok(());
        }
        let claims = token.claims();
        let maker = users::find(self.db(), claims.user).await.map_err(store_err)?;
        let unchanged = maker.is_some_and(|u| {
            u.is_active()
                && u.role == claims.role.as_str()
                && u.staff_role.as_deref() == claims.staff_role.map(|r| r.as_str())
                && u.department == claims.department
        });
        if !unchanged {
            return Err(Error::new(Code::TokenRevoked));
        }
        // A session id that is not a v7 carries no time: treat it as made at the epoch, so any
        // wholesale end of the maker's sessions refuses it.
        let since = session_started_ms(claims.session).unwrap_or(0);
        if sessions::ended_all_since(self.db(), claims.user, since).await.map_err(store_err)? {
            return Err(Error::new(Code::TokenRevoked));
        }
        Ok(())
    }

    /// The caller a signed link presented as `?link=` stands for, with the pass to read
    /// `record`: its maker, narrowed to reading one record, while the link has not expired and
    /// [`Access::check_narrowed`] accepts it. The policies then decide as for any request: a
    /// maker who may no longer read the record no longer opens it by link.
    pub async fn link_pass(
        &self,
        token: Arc<VerifiedToken>,
        client: &ClientInfo,
        record: Uuid,
    ) -> Result<Pass<ReadDocument>, Error> {
        if !token.is_attenuated() {
            // A link is always narrowed; a plain access token does not belong in a URL.
            return Err(Error::new(Code::TokenInvalid));
        }
        self.check_narrowed(&token).await?;
        let caller = Caller::new(token, client);
        self.pass::<ReadDocument>(caller, Some(record)).await
    }

    /// Mint a signed link for a record the pass holder may share and read themself, valid for
    /// `ttl`. A narrowed token (itself perhaps a link) makes none: a link carries its maker's
    /// whole identity and must not turn a narrow token into a wider or longer-lived one.
    pub(crate) fn mint_link(&self, pass: &Pass<ShareDocument>, ttl: Duration) -> Result<(String, SystemTime), Error> {
        if pass.caller().token.is_attenuated() {
            return Err(Error::with_message(
                Code::Forbidden,
                "A narrowed token cannot make links; use your own session.",
            ));
        }
        let expires = SystemTime::now() + ttl;
        let token = self.inner.identity.mint_link(pass.caller(), "document", &pass.id().to_string(), expires)?;
        Ok((token, expires))
    }

    /// Whether the pass holder's token may create grants: not a narrowed one, for the same
    /// reason as links (a grant outlives the token that made it).
    pub(crate) fn check_may_grant(&self, pass: &Pass<ShareDocument>) -> Result<(), Error> {
        if pass.caller().token.is_attenuated() {
            return Err(Error::with_message(
                Code::Forbidden,
                "A narrowed token cannot grant access; use your own session.",
            ));
        }
        Ok(())
    }
}
