//! Creating accounts: the rules every path shares (registration, invitations, administrators,
//! `careport user create`): the password rules, the profile rules (only clinicians have a
//! staff role, and each has one), the languages, and the argon2id hash.

use careport_domain::{Code, Email, Error, Role};
use careport_policy::StaffRole;
use careport_store::Db;
use careport_store::users::{self, CreateUserError, NewUser};
use uuid::Uuid;

pub use crate::identity::passwords::{Argon2Config, check_password, hash_password};

/// Languages the portal speaks (DESIGN §10), in display order.
pub const LANGUAGES: [&str; 6] = ["en", "ar", "zh", "fr", "hi", "es"];

/// A new account's fields.
pub struct NewAccount {
    pub email: Email,
    pub password: String,
    pub full_name: Option<String>,
    pub role: Role,
    pub staff_role: Option<StaffRole>,
    pub department: Option<String>,
    pub preferred_language: Option<String>,
    /// Accounts made by an operator or through an invitation need no verification e-mail.
    pub email_verified: bool,
    /// A patient's account takes the id of the one clinic record with this e-mail address that
    /// has no account yet. Only where the address is proven (verified before first login, or
    /// vouched for by an operator): otherwise anyone could claim a record by its address.
    pub link_record: bool,
}

/// Parse a staff role name.
pub fn parse_staff(s: Option<&str>) -> Option<StaffRole> {
    match s {
        Some("doctor") => Some(StaffRole::Doctor),
        Some("nurse") => Some(StaffRole::Nurse),
        _ => None,
    }
}

/// Check a language code.
pub fn check_language(language: &str) -> Result<(), Error> {
    if LANGUAGES.contains(&language) {
        return Ok(());
    }
    Err(Error::with_message(Code::InvalidValue, format!("preferred_language must be one of {}", LANGUAGES.join(", "))))
}

/// Only clinicians have a staff role, and every clinician has one; a department is a short
/// plain name (it travels in tokens).
pub fn check_profile(role: Role, staff: Option<StaffRole>, department: Option<&str>) -> Result<(), Error> {
    match (role, staff) {
        (Role::Clinician, None) => {
            return Err(Error::with_message(Code::InvalidValue, "A clinician needs a staff_role: doctor or nurse."));
        }
        (Role::Patient | Role::Admin, Some(_)) => {
            return Err(Error::with_message(Code::InvalidValue, "Only clinicians have a staff_role."));
        }
        _ => {}
    }
    if let Some(d) = department
        && (d.trim().is_empty() || d.len() > 128 || d.chars().any(|c| c.is_control() || c == '"' || c == '\\'))
    {
        return Err(Error::with_message(
            Code::InvalidValue,
            "department must be 1 to 128 characters, without quotes, backslashes or control characters.",
        ));
    }
    Ok(())
}

/// A department must be one of the clinic's (`GET /api/v1/departments`).
pub async fn check_department(db: &Db, department: Option<&str>) -> Result<(), Error> {
    let Some(d) = department else { return Ok(()) };
    match careport_store::reference::department_exists(db, d).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::with_message(
            Code::InvalidValue,
            "department must be the id of one of the clinic's departments (GET /api/v1/departments).",
        )),
        Err(e) => Err(Error::new(Code::StoreUnavailable).caused_by(e)),
    }
}

/// Create an account after checking every rule. A taken address is `email_taken` (409); the
/// registration route hides that, operators see it.
pub async fn create_account(db: &Db, cfg: &Argon2Config, acct: NewAccount) -> Result<Uuid, Error> {
    check_profile(acct.role, acct.staff_role, acct.department.as_deref())?;
    check_department(db, acct.department.as_deref()).await?;
    let language = acct.preferred_language.unwrap_or_else(|| "en".to_owned());
    check_language(&language)?;
    check_password(&acct.password, Some(acct.email.as_str()))?;
    let hash = hash_password(acct.password, cfg).await?;
    let link = if acct.role == Role::Patient && acct.link_record {
        careport_store::patients::unlinked_by_email(db, acct.email.as_str())
            .await
            .map_err(|e| Error::new(Code::StoreUnavailable).caused_by(e))?
    } else {
        None
    };
    let id = users::create(
        db,
        NewUser {
            id: link,
            email: &acct.email,
            role: acct.role,
            password_hash: &hash,
            full_name: acct.full_name.as_deref(),
            email_verified: acct.email_verified,
            staff_role: acct.staff_role.map(StaffRole::as_str),
            department: acct.department.as_deref(),
            preferred_language: &language,
        },
    )
    .await
    .map_err(|e| match e {
        CreateUserError::EmailTaken => Error::new(Code::EmailTaken),
        CreateUserError::Store(e) => Error::new(Code::StoreUnavailable).caused_by(e),
    })?;
    if link.is_some() {
        // The clinic is told once the address is proven, and confirms the link.
        careport_store::chart_links::record(db, id.0)
            .await
            .map_err(|e| Error::new(Code::StoreUnavailable).caused_by(e))?;
    }
    Ok(id.0)
}
