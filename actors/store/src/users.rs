//! Account rows. The identity service owns the rules (password policy, verification, MFA);
//! this module only reads and writes rows.

use careport_domain::time::now_ms;
use careport_domain::{Email, Role, UserId};
use uuid::Uuid;

use crate::db::Db;
use crate::sql::Sql;
use crate::{exec, fetch};

/// An account as stored (without its password hash).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub role: String,
    pub full_name: Option<String>,
    pub status: String,
    pub email_verified_at: Option<i64>,
    pub created_at: i64,
}

/// A new account. `password_hash` is a PHC string (argon2id), never a password.
pub struct NewUser<'a> {
    pub email: &'a Email,
    pub role: Role,
    pub password_hash: &'a str,
    pub full_name: Option<&'a str>,
    pub email_verified: bool,
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
    "INSERT INTO users (id, email, role, password_hash, full_name, status, email_verified_at, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $7)",
);
static BY_EMAIL: Sql =
    Sql::new("SELECT id, email, role, full_name, status, email_verified_at, created_at FROM users WHERE email = $1");
static COUNT_BY_ROLE: Sql = Sql::new("SELECT role, COUNT(*) FROM users GROUP BY role");

/// Create an account; a taken e-mail address is [`CreateUserError::EmailTaken`].
pub async fn create(db: &Db, user: NewUser<'_>) -> Result<UserId, CreateUserError> {
    let id = UserId::new();
    let now = now_ms();
    let verified = user.email_verified.then_some(now);
    let res = exec!(
        db.writer(),
        &INSERT,
        id.0,
        user.email.as_str(),
        user.role.as_str(),
        user.password_hash,
        user.full_name,
        verified,
        now
    );
    match res {
        Ok(_) => Ok(id),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(CreateUserError::EmailTaken),
        Err(e) => Err(e.into()),
    }
}

/// Look an account up by its (normalised) e-mail address.
pub async fn find_by_email(db: &Db, email: &Email) -> Result<Option<UserRow>, sqlx::Error> {
    fetch!(db.reader(), UserRow, fetch_optional, &BY_EMAIL, email.as_str())
}

/// Number of accounts per role.
pub async fn count_by_role(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    fetch!(db.reader(), (String, i64), fetch_all, &COUNT_BY_ROLE)
}
