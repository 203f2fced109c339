//! Account rows. The identity service owns the rules (password policy, verification, MFA);
//! this module only reads and writes rows.

use careport_domain::time::now_ms;
use careport_domain::{Email, Role, UserId};
use uuid::Uuid;

use crate::db::Db;
use crate::sql::Sql;
use crate::{exec, fetch, scalar};

/// An account as stored (without its password hash or MFA secret).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub role: String,
    pub full_name: Option<String>,
    pub status: String,
    pub email_verified_at: Option<i64>,
    pub created_at: i64,
    pub staff_role: Option<String>,
    pub department: Option<String>,
    pub preferred_language: String,
    pub mfa_enabled_at: Option<i64>,
}

impl UserRow {
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

/// What login needs: the row, its password hash and MFA state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Credentials {
    #[sqlx(flatten)]
    pub user: UserRow,
    pub password_hash: String,
    pub mfa_secret: Option<String>,
    pub mfa_last_step: Option<i64>,
}

/// A new account. `password_hash` is a PHC string (argon2id), never a password.
pub struct NewUser<'a> {
    /// The id to use: a patient's existing record to link the account to. New id if `None`.
    pub id: Option<Uuid>,
    pub email: &'a Email,
    pub role: Role,
    pub password_hash: &'a str,
    pub full_name: Option<&'a str>,
    pub email_verified: bool,
    pub staff_role: Option<&'a str>,
    pub department: Option<&'a str>,
    pub preferred_language: &'a str,
}

/// Why an account could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("An account with this e-mail address already exists.")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

static INSERT: Sql = Sql::new(
    "INSERT INTO users (id, email, role, password_hash, full_name, status, email_verified_at, created_at, updated_at,
                        staff_role, department, preferred_language, password_changed_at)
     VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $7, $8, $9, $10, $7)",
);
static BY_EMAIL: Sql = Sql::new(
    "SELECT id, email, role, full_name, status, email_verified_at, created_at, staff_role, department,
            preferred_language, mfa_enabled_at FROM users WHERE email = $1",
);
static BY_ID: Sql = Sql::new(
    "SELECT id, email, role, full_name, status, email_verified_at, created_at, staff_role, department,
            preferred_language, mfa_enabled_at FROM users WHERE id = $1",
);
static CREDENTIALS_BY_EMAIL: Sql = Sql::new(
    "SELECT id, email, role, full_name, status, email_verified_at, created_at, staff_role, department,
            preferred_language, mfa_enabled_at, password_hash, mfa_secret, mfa_last_step FROM users WHERE email = $1",
);
static CREDENTIALS_BY_ID: Sql = Sql::new(
    "SELECT id, email, role, full_name, status, email_verified_at, created_at, staff_role, department,
            preferred_language, mfa_enabled_at, password_hash, mfa_secret, mfa_last_step FROM users WHERE id = $1",
);
static LIST: Sql = Sql::new(
    "SELECT id, email, role, full_name, status, email_verified_at, created_at, staff_role, department,
            preferred_language, mfa_enabled_at FROM users
     WHERE (CAST($1 AS TEXT) IS NULL OR role = $1) AND id > $2
       AND (CAST($4 AS TEXT) IS NULL OR status = $4) AND (CAST($5 AS TEXT) IS NULL OR email LIKE $5)
     ORDER BY id LIMIT $3",
);

/// Filters of [`list`].
#[derive(Debug, Clone, Default)]
pub struct ListFilter<'a> {
    pub role: Option<&'a str>,
    /// `active` or `inactive`.
    pub status: Option<&'a str>,
    /// Part of the e-mail address (case-insensitive; addresses are stored lower-case).
    pub email_contains: Option<&'a str>,
}
static COUNT_BY_ROLE: Sql = Sql::new("SELECT role, COUNT(*) FROM users GROUP BY role");
static SET_PASSWORD: Sql =
    Sql::new("UPDATE users SET password_hash = $2, password_changed_at = $3, updated_at = $3 WHERE id = $1");
static SET_VERIFIED: Sql =
    Sql::new("UPDATE users SET email_verified_at = COALESCE(email_verified_at, $2), updated_at = $2 WHERE id = $1");
static SET_STATUS: Sql = Sql::new("UPDATE users SET status = $2, updated_at = $3 WHERE id = $1");
static SET_PROFILE: Sql =
    Sql::new("UPDATE users SET role = $2, staff_role = $3, department = $4, updated_at = $5 WHERE id = $1");
static SET_MFA_PENDING: Sql = Sql::new(
    "UPDATE users SET mfa_secret = $2, mfa_enabled_at = NULL, mfa_last_step = NULL, updated_at = $3 WHERE id = $1",
);
static ENABLE_MFA: Sql = Sql::new(
    "UPDATE users SET mfa_enabled_at = $2, mfa_last_step = $3, updated_at = $2 WHERE id = $1 AND mfa_secret IS NOT NULL",
);
static CLEAR_MFA: Sql = Sql::new(
    "UPDATE users SET mfa_secret = NULL, mfa_enabled_at = NULL, mfa_last_step = NULL, updated_at = $2 WHERE id = $1",
);
// Compare-and-set: a step is accepted once, even by two nodes racing on the same code.
static ADVANCE_STEP: Sql =
    Sql::new("UPDATE users SET mfa_last_step = $2 WHERE id = $1 AND (mfa_last_step IS NULL OR mfa_last_step < $2)");

static INSERT_PATIENT_RECORD: Sql = Sql::new(
    "INSERT INTO patients (id, mrn, full_name, sex, email, preferred_language, search_text, created_at, updated_at)
     VALUES ($1, $2, $3, 'unknown', $4, $5, $6, $7, $7) ON CONFLICT (id) DO NOTHING",
);

/// Create an account; a taken e-mail address is [`CreateUserError::EmailTaken`]. A patient's
/// account gets its record (`patients`) in the same transaction, unless it links to one.
pub async fn create(db: &Db, user: NewUser<'_>) -> Result<UserId, CreateUserError> {
    let id = user.id.map(UserId).unwrap_or_default();
    let now = now_ms();
    let verified = user.email_verified.then_some(now);
    // In an async block: a `?` inside the transaction ends the block, not this function, so a
    // unique violation is seen below.
    let res: Result<(), sqlx::Error> = async {
        crate::transaction!(db, |tx, dialect| {
            sqlx::query(INSERT.text(dialect))
                .bind(id.0)
                .bind(user.email.as_str())
                .bind(user.role.as_str())
                .bind(user.password_hash)
                .bind(user.full_name)
                .bind(verified)
                .bind(now)
                .bind(user.staff_role)
                .bind(user.department)
                .bind(user.preferred_language)
                .execute(&mut *tx)
                .await?;
            if user.role == Role::Patient {
                let mrn = crate::patients::generate_mrn();
                let name = user.full_name.unwrap_or_default();
                sqlx::query(INSERT_PATIENT_RECORD.text(dialect))
                    .bind(id.0)
                    .bind(mrn.as_str())
                    .bind(name)
                    .bind(user.email.as_str())
                    .bind(user.preferred_language)
                    .bind(crate::patients::search_text(name, &mrn))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(())
        })
    }
    .await;
    match res {
        Ok(()) => Ok(id),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(CreateUserError::EmailTaken),
        Err(e) => Err(e.into()),
    }
}

/// Look an account up by its (normalised) e-mail address.
pub async fn find_by_email(db: &Db, email: &Email) -> Result<Option<UserRow>, sqlx::Error> {
    fetch!(db.reader(), UserRow, fetch_optional, &BY_EMAIL, email.as_str())
}

/// Look an account up by id.
pub async fn find(db: &Db, id: Uuid) -> Result<Option<UserRow>, sqlx::Error> {
    fetch!(db.reader(), UserRow, fetch_optional, &BY_ID, id)
}

/// The row with its password hash and MFA secret (login, password change, MFA).
pub async fn credentials_by_email(db: &Db, email: &Email) -> Result<Option<Credentials>, sqlx::Error> {
    fetch!(db.reader(), Credentials, fetch_optional, &CREDENTIALS_BY_EMAIL, email.as_str())
}

/// The row with its password hash and MFA secret, by id. Reads the writer on SQLite so that a
/// step just accepted is seen.
pub async fn credentials(db: &Db, id: Uuid) -> Result<Option<Credentials>, sqlx::Error> {
    fetch!(db.writer(), Credentials, fetch_optional, &CREDENTIALS_BY_ID, id)
}

/// A page of accounts ordered by id (UUIDv7: creation order), after `after`.
pub async fn list(db: &Db, f: &ListFilter<'_>, after: Option<Uuid>, limit: i64) -> Result<Vec<UserRow>, sqlx::Error> {
    let after = after.unwrap_or(Uuid::nil());
    // LIKE wildcards in the search text are taken literally: they are dropped.
    let pattern = f.email_contains.map(|t| {
        let t: String = t.to_lowercase().chars().filter(|c| !matches!(c, '%' | '_' | '\\')).collect();
        format!("%{t}%")
    });
    fetch!(db.reader(), UserRow, fetch_all, &LIST, f.role, after, limit, f.status, pattern)
}

/// Number of accounts per role.
pub async fn count_by_role(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    fetch!(db.reader(), (String, i64), fetch_all, &COUNT_BY_ROLE)
}

/// Replace the password hash.
pub async fn set_password(db: &Db, id: Uuid, password_hash: &str) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &SET_PASSWORD, id, password_hash, now_ms())? == 1)
}

/// Replace the hash of the same password (parameters upgraded at login).
pub async fn set_password_hash(db: &Db, id: Uuid, password_hash: &str) -> Result<bool, sqlx::Error> {
    static SET_HASH: Sql = Sql::new("UPDATE users SET password_hash = $2 WHERE id = $1");
    Ok(exec!(db.writer(), &SET_HASH, id, password_hash)? == 1)
}

/// Mark the e-mail address verified (idempotent).
pub async fn set_verified(db: &Db, id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &SET_VERIFIED, id, now_ms())? == 1)
}

/// Activate or deactivate an account.
pub async fn set_active(db: &Db, id: Uuid, active: bool) -> Result<bool, sqlx::Error> {
    let status = if active { "active" } else { "inactive" };
    Ok(exec!(db.writer(), &SET_STATUS, id, status, now_ms())? == 1)
}

/// Change role, staff role and department together (they are checked together).
pub async fn set_profile(
    db: &Db,
    id: Uuid,
    role: Role,
    staff_role: Option<&str>,
    department: Option<&str>,
) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &SET_PROFILE, id, role.as_str(), staff_role, department, now_ms())? == 1)
}

/// Store a sealed TOTP secret awaiting confirmation (MFA stays off until confirmed).
pub async fn set_mfa_pending(db: &Db, id: Uuid, sealed_secret: &str) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &SET_MFA_PENDING, id, sealed_secret, now_ms())? == 1)
}

/// Turn MFA on, recording the step of the confirming code as used.
pub async fn enable_mfa(db: &Db, id: Uuid, step: i64) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &ENABLE_MFA, id, now_ms(), step)? == 1)
}

/// Turn MFA off and forget the secret.
pub async fn clear_mfa(db: &Db, id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &CLEAR_MFA, id, now_ms())? == 1)
}

/// Record TOTP step `step` as used; false if it (or a later one) already was: a replay.
pub async fn advance_mfa_step(db: &Db, id: Uuid, step: i64) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &ADVANCE_STEP, id, step)? == 1)
}

/// Accounts that exist at all (for first-run checks).
pub async fn count(db: &Db) -> Result<i64, sqlx::Error> {
    static COUNT: Sql = Sql::new("SELECT COUNT(*) FROM users");
    scalar!(db.reader(), i64, fetch_one, &COUNT)
}
