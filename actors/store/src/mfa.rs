//! MFA rows beside the account: single-use recovery codes (SHA-256 digests) and the roles an
//! administrator has made MFA mandatory for. The TOTP secret itself lives on `users`, sealed.

use careport_domain::time::now_ms;
use uuid::Uuid;

use crate::db::Db;
use crate::sql::Sql;
use crate::{exec, fetch, scalar};

static DELETE_CODES: Sql = Sql::new("DELETE FROM mfa_recovery_codes WHERE user_id = $1");
static INSERT_CODE: Sql = Sql::new("INSERT INTO mfa_recovery_codes (user_id, code_hash) VALUES ($1, $2)");
static USE_CODE: Sql =
    Sql::new("UPDATE mfa_recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL");
static UNUSED_CODES: Sql = Sql::new("SELECT COUNT(*) FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL");
static REQUIRED_ROLES: Sql = Sql::new("SELECT role FROM mfa_required_roles ORDER BY role");
static REQUIRE_ROLE: Sql =
    Sql::new("INSERT INTO mfa_required_roles (role, set_at, set_by) VALUES ($1, $2, $3) ON CONFLICT (role) DO NOTHING");
static UNREQUIRE_ROLE: Sql = Sql::new("DELETE FROM mfa_required_roles WHERE role = $1");

/// Replace a user's recovery codes with these digests.
pub async fn set_recovery_codes(db: &Db, user_id: Uuid, digests: &[String]) -> Result<(), sqlx::Error> {
    exec!(db.writer(), &DELETE_CODES, user_id)?;
    for d in digests {
        exec!(db.writer(), &INSERT_CODE, user_id, d.as_str())?;
    }
    Ok(())
}

/// Forget a user's recovery codes (MFA disabled or reset).
pub async fn clear_recovery_codes(db: &Db, user_id: Uuid) -> Result<(), sqlx::Error> {
    exec!(db.writer(), &DELETE_CODES, user_id)?;
    Ok(())
}

/// Use a recovery code once; false if unknown or already used.
pub async fn use_recovery_code(db: &Db, user_id: Uuid, digest: &str) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &USE_CODE, user_id, digest, now_ms())? == 1)
}

/// Recovery codes left.
pub async fn unused_recovery_codes(db: &Db, user_id: Uuid) -> Result<i64, sqlx::Error> {
    scalar!(db.reader(), i64, fetch_one, &UNUSED_CODES, user_id)
}

/// Roles whose members must use MFA.
pub async fn required_roles(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    fetch!(db.writer(), (String,), fetch_all, &REQUIRED_ROLES).map(|v| v.into_iter().map(|(r,)| r).collect())
}

/// Make MFA mandatory (or not) for a role.
pub async fn set_role_required(db: &Db, role: &str, required: bool, by: Uuid) -> Result<(), sqlx::Error> {
    if required {
        exec!(db.writer(), &REQUIRE_ROLE, role, now_ms(), by)?;
    } else {
        exec!(db.writer(), &UNREQUIRE_ROLE, role)?;
    }
    Ok(())
}
