//! Single-use tokens sent by e-mail: verification and password-reset links, and invitations.
//! Only SHA-256 digests are stored; consuming one is a compare-and-set, so a link works once, and
//! it retires the account's other links of that purpose.

use careport_domain::time::now_ms;
use uuid::Uuid;

use crate::db::Db;
use crate::sql::Sql;
use crate::{exec, fetch};

/// What an e-mailed link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Verify,
    Reset,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Verify => "verify",
            Purpose::Reset => "reset",
        }
    }
}

/// An invitation as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvitationRow {
    pub token_hash: String,
    pub email: String,
    pub role: String,
    pub staff_role: Option<String>,
    pub department: Option<String>,
    pub invited_by: Uuid,
    pub created_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
}

static INSERT_LINK: Sql = Sql::new(
    "INSERT INTO email_tokens (token_hash, user_id, purpose, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
);
// A new link leaves the earlier ones working: retiring them would let anyone who can ask for a
// link to someone else's address spend, by racing, the link that person just received. Live
// links are bounded instead, by the mail limit per address and by this cap: beyond the newest
// `MAX_LIVE_LINKS`, the oldest are retired.
const MAX_LIVE_LINKS: i64 = 5;
static RETIRE_OLDEST_LINKS: Sql = Sql::new(
    "UPDATE email_tokens SET used_at = $3 WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL
     AND token_hash NOT IN (SELECT token_hash FROM email_tokens
       WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL ORDER BY created_at DESC, token_hash LIMIT $4)",
);
// Using a link retires the account's other links of that purpose: after a reset, no older reset
// link may set the password again.
static RETIRE_LINKS: Sql =
    Sql::new("UPDATE email_tokens SET used_at = $3 WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL");
static CONSUME_LINK: Sql = Sql::new(
    "UPDATE email_tokens SET used_at = $3 WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
);
static PEEK_LINK: Sql = Sql::new(
    "SELECT user_id FROM email_tokens WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
);
static LINK_USER: Sql = Sql::new("SELECT user_id FROM email_tokens WHERE token_hash = $1");
static INSERT_INVITE: Sql = Sql::new(
    "INSERT INTO invitations (token_hash, email, role, staff_role, department, invited_by, created_at, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
);
static FIND_INVITE: Sql = Sql::new(
    "SELECT token_hash, email, role, staff_role, department, invited_by, created_at, expires_at, accepted_at
     FROM invitations WHERE token_hash = $1",
);
static ACCEPT_INVITE: Sql = Sql::new(
    "UPDATE invitations SET accepted_at = $2 WHERE token_hash = $1 AND accepted_at IS NULL AND expires_at > $2",
);

/// Store a new link for `user_id`; earlier unused links of the same purpose keep working, except
/// those beyond the newest [`MAX_LIVE_LINKS`].
pub async fn issue(db: &Db, user_id: Uuid, purpose: Purpose, token_hash: &str, ttl_ms: i64) -> Result<(), sqlx::Error> {
    let now = now_ms();
    exec!(db.writer(), &RETIRE_OLDEST_LINKS, user_id, purpose.as_str(), now, MAX_LIVE_LINKS - 1)?;
    exec!(db.writer(), &INSERT_LINK, token_hash, user_id, purpose.as_str(), now, now + ttl_ms)?;
    Ok(())
}

/// Use a link once. Returns the account it was for, or `None` if it is unknown, expired,
/// already used or for another purpose.
pub async fn consume(db: &Db, purpose: Purpose, token_hash: &str) -> Result<Option<Uuid>, sqlx::Error> {
    let now = now_ms();
    if exec!(db.writer(), &CONSUME_LINK, token_hash, purpose.as_str(), now)? != 1 {
        return Ok(None);
    }
    let user = fetch!(db.writer(), (Uuid,), fetch_optional, &LINK_USER, token_hash)?.map(|(u,)| u);
    if let Some(user) = user {
        exec!(db.writer(), &RETIRE_LINKS, user, purpose.as_str(), now)?;
    }
    Ok(user)
}

/// The account a link is for, if it is still usable, without using it (so that a form can
/// be checked before the link is spent).
pub async fn peek(db: &Db, purpose: Purpose, token_hash: &str) -> Result<Option<Uuid>, sqlx::Error> {
    fetch!(db.writer(), (Uuid,), fetch_optional, &PEEK_LINK, token_hash, purpose.as_str(), now_ms())
        .map(|r| r.map(|(u,)| u))
}

/// A new invitation.
pub struct NewInvitation<'a> {
    pub token_hash: &'a str,
    pub email: &'a str,
    pub role: &'a str,
    pub staff_role: Option<&'a str>,
    pub department: Option<&'a str>,
    pub invited_by: Uuid,
    pub ttl_ms: i64,
}

pub async fn invite(db: &Db, inv: NewInvitation<'_>) -> Result<(), sqlx::Error> {
    let now = now_ms();
    exec!(
        db.writer(),
        &INSERT_INVITE,
        inv.token_hash,
        inv.email,
        inv.role,
        inv.staff_role,
        inv.department,
        inv.invited_by,
        now,
        now + inv.ttl_ms
    )?;
    Ok(())
}

/// An open invitation (not accepted, not expired) by its token digest.
pub async fn open_invitation(db: &Db, token_hash: &str) -> Result<Option<InvitationRow>, sqlx::Error> {
    let row = fetch!(db.writer(), InvitationRow, fetch_optional, &FIND_INVITE, token_hash)?;
    Ok(row.filter(|r| r.accepted_at.is_none() && r.expires_at > now_ms()))
}

/// Mark an invitation accepted; false if it was accepted meanwhile or expired.
pub async fn accept_invitation(db: &Db, token_hash: &str) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &ACCEPT_INVITE, token_hash, now_ms())? == 1)
}
