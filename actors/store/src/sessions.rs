//! Sessions and their refresh tokens (stored as SHA-256 digests only).
//!
//! A session is one login's family of refresh tokens. Rotation marks the presented token used
//! and stores its successor; a used token presented again is reuse, and the caller revokes
//! the family. Revocation is a timestamp, so every node can load "revoked since" at start.

use careport_domain::time::now_ms;
use uuid::Uuid;

use crate::db::Db;
use crate::sql::Sql;
use crate::{exec, fetch};

/// A session as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl SessionRow {
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// What a presented refresh token turned out to be.
#[derive(Debug)]
pub enum RefreshLookup {
    /// Unknown digest.
    Unknown,
    /// The current token of `session` (not yet used).
    Current(SessionRow),
    /// A token already rotated away: reuse.
    Used(SessionRow),
}

static INSERT_SESSION: Sql = Sql::new(
    "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, ip, user_agent)
     VALUES ($1, $2, $3, $3, $4, $5, $6)",
);
static INSERT_REFRESH: Sql =
    Sql::new("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)");
static LOOKUP_REFRESH: Sql = Sql::new("SELECT session_id, used_at FROM refresh_tokens WHERE token_hash = $1");
static BY_ID: Sql = Sql::new(
    "SELECT id, user_id, created_at, last_used_at, expires_at, revoked_at, revoked_reason, ip, user_agent
     FROM sessions WHERE id = $1",
);
static MARK_USED: Sql = Sql::new("UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL");
static TOUCH: Sql = Sql::new("UPDATE sessions SET last_used_at = $2 WHERE id = $1 AND revoked_at IS NULL");
static REVOKE: Sql =
    Sql::new("UPDATE sessions SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL");
static REVOKE_USER: Sql = Sql::new(
    "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 WHERE user_id = $1 AND revoked_at IS NULL AND id <> $4
     RETURNING id",
);
static ACTIVE_FOR_USER: Sql = Sql::new(
    "SELECT id, user_id, created_at, last_used_at, expires_at, revoked_at, revoked_reason, ip, user_agent
     FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC",
);
static ENDED_ALL_SINCE: Sql = Sql::new(
    "SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND revoked_at >= $2 AND revoked_reason IN ($3, $4, $5, $6, $7)",
);
static REVOKED_SINCE: Sql = Sql::new(
    "SELECT id, user_id, created_at, last_used_at, expires_at, revoked_at, revoked_reason, ip, user_agent
     FROM sessions WHERE revoked_at IS NOT NULL AND revoked_at >= $1",
);

/// Start a session with its first refresh token (by digest). Returns nothing new: the caller
/// chose both ids, so that a retry cannot make two.
pub async fn create(
    db: &Db,
    id: Uuid,
    user_id: Uuid,
    expires_at: i64,
    refresh_hash: &str,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    exec!(db.writer(), &INSERT_SESSION, id, user_id, now, expires_at, ip, user_agent)?;
    exec!(db.writer(), &INSERT_REFRESH, refresh_hash, id, now)?;
    Ok(())
}

/// Find the session a refresh token digest belongs to, and whether it was already used.
/// Reads the writer on SQLite, so that a rotation a moment ago is seen.
pub async fn lookup_refresh(db: &Db, refresh_hash: &str) -> Result<RefreshLookup, sqlx::Error> {
    let row = fetch!(db.writer(), (Uuid, Option<i64>), fetch_optional, &LOOKUP_REFRESH, refresh_hash)?;
    let Some((session_id, used_at)) = row else { return Ok(RefreshLookup::Unknown) };
    let Some(session) = get(db, session_id).await? else { return Ok(RefreshLookup::Unknown) };
    Ok(if used_at.is_some() { RefreshLookup::Used(session) } else { RefreshLookup::Current(session) })
}

/// Rotate: mark `old_hash` used and store `new_hash`. Returns false if `old_hash` was used
/// meanwhile (two refreshes racing: the loser is treated as reuse).
pub async fn rotate(db: &Db, session_id: Uuid, old_hash: &str, new_hash: &str) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    if exec!(db.writer(), &MARK_USED, old_hash, now)? != 1 {
        return Ok(false);
    }
    exec!(db.writer(), &INSERT_REFRESH, new_hash, session_id, now)?;
    exec!(db.writer(), &TOUCH, session_id, now)?;
    Ok(true)
}

/// A session by id.
pub async fn get(db: &Db, id: Uuid) -> Result<Option<SessionRow>, sqlx::Error> {
    fetch!(db.writer(), SessionRow, fetch_optional, &BY_ID, id)
}

/// Revoke one session; false if it was already revoked or does not exist.
pub async fn revoke(db: &Db, id: Uuid, reason: &str) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &REVOKE, id, now_ms(), reason)? == 1)
}

/// Revoke every session of a user except `keep` (the caller's own, on a password change);
/// returns the ids revoked.
pub async fn revoke_user(db: &Db, user_id: Uuid, reason: &str, keep: Option<Uuid>) -> Result<Vec<Uuid>, sqlx::Error> {
    let keep = keep.unwrap_or(Uuid::nil());
    let rows = fetch!(db.writer(), (Uuid,), fetch_all, &REVOKE_USER, user_id, now_ms(), reason, keep)?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// A user's live sessions, newest first.
pub async fn active_for_user(db: &Db, user_id: Uuid) -> Result<Vec<SessionRow>, sqlx::Error> {
    fetch!(db.reader(), SessionRow, fetch_all, &ACTIVE_FOR_USER, user_id, now_ms())
}

/// Why every session of a user was ended at once ([`revoke_user`]): what signed links made
/// before such an end stop working for (they are the maker's, like a session).
pub mod ended_all {
    pub const LOGOUT_ALL: &str = "logout (all sessions)";
    pub const PASSWORD_CHANGED: &str = "password changed";
    pub const PASSWORD_RESET: &str = "password reset";
    pub const ACCOUNT_CHANGED: &str = "account changed by an administrator";
    pub const MFA_RESET: &str = "MFA reset by an administrator";
    pub const ALL: [&str; 5] = [LOGOUT_ALL, PASSWORD_CHANGED, PASSWORD_RESET, ACCOUNT_CHANGED, MFA_RESET];
}

/// Whether the user's sessions were ended all at once (for one of [`ended_all::ALL`]) at or
/// after `since_ms`.
pub async fn ended_all_since(db: &Db, user_id: Uuid, since_ms: i64) -> Result<bool, sqlx::Error> {
    let [a, b, c, d, e] = ended_all::ALL;
    let n = crate::scalar!(db.writer(), i64, fetch_one, &ENDED_ALL_SINCE, user_id, since_ms, a, b, c, d, e)?;
    Ok(n > 0)
}

static SIGNED_IN_FROM: Sql =
    Sql::new("SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND ip = $2 AND created_at >= $3");

/// Whether `user_id` signed in from `ip` at or after `since_ms`: the login throttle slows such a
/// "usual client" down rather than lock it out.
pub async fn signed_in_from(db: &Db, user_id: Uuid, ip: &str, since_ms: i64) -> Result<bool, sqlx::Error> {
    let n = crate::scalar!(db.reader(), i64, fetch_one, &SIGNED_IN_FROM, user_id, ip, since_ms)?;
    Ok(n > 0)
}

/// Sessions revoked at or after `since_ms` (a node loads these at start and on a timer).
pub async fn revoked_since(db: &Db, since_ms: i64) -> Result<Vec<SessionRow>, sqlx::Error> {
    fetch!(db.reader(), SessionRow, fetch_all, &REVOKED_SINCE, since_ms)
}

static REVOKE_ROLE_WITHOUT_MFA: Sql = Sql::new(
    "UPDATE sessions SET revoked_at = $2, revoked_reason = $3
     WHERE revoked_at IS NULL
       AND user_id IN (SELECT id FROM users WHERE role = $1 AND mfa_enabled_at IS NULL)
     RETURNING id",
);

/// Revoke the live sessions of every member of `role` who has no MFA; returns their ids.
pub async fn revoke_role_without_mfa(db: &Db, role: &str, reason: &str) -> Result<Vec<Uuid>, sqlx::Error> {
    let rows = fetch!(db.writer(), (Uuid,), fetch_all, &REVOKE_ROLE_WITHOUT_MFA, role, now_ms(), reason)?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}
