//! `/api/v1/admin/*`: accounts, invitations, the MFA policy and the audit trail
//! (administrators only; everyone else gets 403).

use std::str::FromStr;

use actix_web::{HttpResponse, web};
use careport_actors::Services;
use careport_actors::accounts::{NewAccount, parse_staff};
use careport_actors::door::PageRequest;
use careport_actors::door::admin::{AccountQuery, AuditQuery as TrailQuery};
use careport_actors::identity::service::{AccountChange, Invite};
use careport_domain::{Code, Email, Error, Role};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::authn::{Authorized, JsonBody, ManageUsers, ReadAudit};
use super::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

fn role(s: &str) -> std::result::Result<Role, Error> {
    Role::from_str(s)
}

fn staff(s: Option<&str>) -> std::result::Result<Option<careport_policy::StaffRole>, Error> {
    match s {
        None => Ok(None),
        Some(v) => parse_staff(Some(v))
            .map(Some)
            .ok_or_else(|| Error::with_message(Code::InvalidValue, "staff_role must be doctor or nurse.")),
    }
}

/// `GET /api/v1/admin/users` query.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// patient, clinician or admin.
    pub role: Option<String>,
    /// active or inactive.
    pub status: Option<String>,
    /// Part of the e-mail address.
    pub email: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 200 (default 50).
    pub limit: Option<i64>,
}

/// Accounts, a page at a time.
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", params(ListQuery),
    responses((status = 200, description = "Accounts and the cursor of the next page")), security(("bearer" = [])))]
pub async fn list_users(
    auth: Authorized<ManageUsers>,
    services: web::Data<Services>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse> {
    let q: ListQuery = super::authn::query(&req)?;
    let query = AccountQuery {
        role: q.role.as_deref().map(role).transpose()?,
        status: q.status,
        email: q.email,
        page: PageRequest { limit: q.limit, cursor: q.cursor },
    };
    Ok(HttpResponse::Ok().json(services.admin().accounts(auth.pass, query).await?))
}

/// `POST /api/v1/admin/users`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    pub email: String,
    pub password: String,
    pub full_name: Option<String>,
    pub role: String,
    pub staff_role: Option<String>,
    pub department: Option<String>,
    pub preferred_language: Option<String>,
}

/// Create an account (any role). The address is taken as verified.
#[utoipa::path(post, path = "/api/v1/admin/users", tag = "admin", request_body = CreateUserBody,
    responses((status = 201, description = "Created"), (status = 409, description = "Address taken", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_user(
    auth: Authorized<ManageUsers>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b = body.parse::<CreateUserBody>()?;
    let acct = NewAccount {
        email: Email::parse(&b.email)?,
        password: b.password,
        full_name: b.full_name,
        role: role(&b.role)?,
        staff_role: staff(b.staff_role.as_deref())?,
        department: b.department,
        preferred_language: b.preferred_language,
        email_verified: true,
        link_record: true,
    };
    Ok(HttpResponse::Created().json(services.admin().create_account(auth.pass, acct).await?))
}

/// `PATCH /api/v1/admin/users/{id}`: absent fields stay; `null` clears department or staff role.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserBody {
    pub role: Option<String>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub staff_role: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub department: Option<Option<String>>,
    pub active: Option<bool>,
}

/// `null` as `Some(None)`, absent as `None` (with `#[serde(default)]`).
pub(super) mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

/// Change role, staff role, department or status. The account's sessions end at once (their
/// tokens carry the old facts); the change is audited.
#[utoipa::path(patch, path = "/api/v1/admin/users/{id}", tag = "admin", request_body = UpdateUserBody,
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "The account"), (status = 404, description = "No such account", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_user(
    auth: Authorized<ManageUsers>,
    services: web::Data<Services>,
    id: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let id = Uuid::parse_str(&id).map_err(|_| Error::new(Code::NotFound))?;
    let b = body.parse::<UpdateUserBody>()?;
    let change = AccountChange {
        role: b.role.as_deref().map(role).transpose()?,
        staff_role: match b.staff_role {
            None => None,
            Some(s) => Some(staff(s.as_deref())?),
        },
        department: b.department,
        active: b.active,
    };
    Ok(HttpResponse::Ok().json(services.admin().update_account(auth.pass, id, change).await?))
}

/// Reset a user's MFA: they must enrol again; their sessions end; audited.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/mfa/reset", tag = "admin", params(("id" = Uuid, Path, description = "User id")),
    responses((status = 204, description = "Reset")), security(("bearer" = [])))]
pub async fn reset_mfa(
    auth: Authorized<ManageUsers>,
    services: web::Data<Services>,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let id = Uuid::parse_str(&id).map_err(|_| Error::new(Code::NotFound))?;
    services.admin().reset_mfa(auth.pass, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Confirm that the account linked at registration to the chart of the same id is the patient's:
/// its reads of the chart then count as the patient's own. Audited; 404 when no link waits.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/confirm-link", tag = "admin", params(("id" = Uuid, Path, description = "User id (the chart's id)")),
    responses((status = 204, description = "Confirmed")), security(("bearer" = [])))]
pub async fn confirm_chart_link(
    auth: Authorized<ManageUsers>,
    services: web::Data<Services>,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let id = Uuid::parse_str(&id).map_err(|_| Error::new(Code::NotFound))?;
    services.admin().confirm_chart_link(auth.pass, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `PUT /api/v1/admin/mfa-policy`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaPolicyBody {
    /// Roles whose members must use MFA.
    pub required_roles: Vec<String>,
}

/// The roles that must use MFA.
#[utoipa::path(get, path = "/api/v1/admin/mfa-policy", tag = "admin",
    responses((status = 200, description = "Roles that must use MFA")), security(("bearer" = [])))]
pub async fn get_mfa_policy(auth: Authorized<ManageUsers>, services: web::Data<Services>) -> Result<HttpResponse> {
    let roles = services.admin().mfa_policy(auth.pass).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "required_roles": roles })))
}

/// Set the roles that must use MFA. Members without MFA can then only enrol until they do.
#[utoipa::path(put, path = "/api/v1/admin/mfa-policy", tag = "admin", request_body = MfaPolicyBody,
    responses((status = 200, description = "Roles that must use MFA")), security(("bearer" = [])))]
pub async fn put_mfa_policy(
    auth: Authorized<ManageUsers>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let roles = body
        .parse::<MfaPolicyBody>()?
        .required_roles
        .iter()
        .map(|r| role(r))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let now = services.admin().set_mfa_policy(auth.pass, roles).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "required_roles": now })))
}

/// `POST /api/v1/admin/invitations`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    pub email: String,
    /// clinician or admin.
    pub role: String,
    pub staff_role: Option<String>,
    pub department: Option<String>,
}

/// Invite a clinician or administrator: a single-use link goes to the address.
#[utoipa::path(post, path = "/api/v1/admin/invitations", tag = "admin", request_body = InviteBody,
    responses((status = 202, description = "Invitation sent")), security(("bearer" = [])))]
pub async fn invite(
    auth: Authorized<ManageUsers>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b = body.parse::<InviteBody>()?;
    let inv = Invite {
        email: Email::parse(&b.email)?,
        role: role(&b.role)?,
        staff_role: staff(b.staff_role.as_deref())?,
        department: b.department,
    };
    services.admin().invite(auth.pass, inv).await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "message": "Invitation sent." })))
}

/// `GET /api/v1/admin/audit` query. Times are milliseconds since the epoch.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub actor: Option<Uuid>,
    pub patient: Option<Uuid>,
    pub action: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 200 (default 50).
    pub limit: Option<i64>,
}

/// The audit trail, newest first, filtered and paginated.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin", params(AuditQuery),
    responses((status = 200, description = "Events and the cursor of the next page")), security(("bearer" = [])))]
pub async fn audit(
    auth: Authorized<ReadAudit>,
    services: web::Data<Services>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse> {
    let q: AuditQuery = super::authn::query(&req)?;
    let query = TrailQuery {
        actor: q.actor,
        patient: q.patient,
        action: q.action,
        from: q.from,
        to: q.to,
        page: PageRequest { limit: q.limit, cursor: q.cursor },
    };
    Ok(HttpResponse::Ok().json(services.admin().audit_trail(auth.pass, query).await?))
}

/// Register the routes.
pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let r = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/v1/admin/users").get(list_users).post(create_user))
        .service(r("/api/v1/admin/users/{id}").patch(update_user))
        .service(r("/api/v1/admin/users/{id}/mfa/reset").post(reset_mfa))
        .service(r("/api/v1/admin/users/{id}/confirm-link").post(confirm_chart_link))
        .service(r("/api/v1/admin/mfa-policy").get(get_mfa_policy).put(put_mfa_policy))
        .service(r("/api/v1/admin/invitations").post(invite))
        .service(r("/api/v1/admin/audit").get(audit));
}
