//! `/api/v1/auth/*`: registration, login, refresh, logout, passwords, e-mail verification,
//! sessions, MFA, invitations and token attenuation.

use std::time::{Duration, SystemTime};

use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::Services;
use careport_actors::identity::service::{Login, epoch_secs};
use careport_domain::{Code, Email, Error};
use careport_policy::Narrowing;
use serde::Deserialize;
use utoipa::ToSchema;

use super::authn::{
    Authenticated, Authorized, Client, DeleteSession, EndOwnSession, JsonBody, ListOwnSessions, ManageOwnMfa,
    REFRESH_COOKIE, ReadSelf, WriteSelf, check_csrf, clear_session_cookies, csrf_token, set_session_cookies,
};
use super::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

fn email(raw: &str) -> std::result::Result<Email, Error> {
    Email::parse(raw)
}

/// `POST /api/v1/auth/register`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    pub email: String,
    pub password: String,
    pub full_name: Option<String>,
    /// en, ar, zh, fr, hi or es.
    pub preferred_language: Option<String>,
}

fn accepted(message: &str) -> HttpResponse {
    HttpResponse::Accepted().json(serde_json::json!({ "message": message }))
}

/// Register as a patient. Answers 202 alike whether or not the address already has an account
/// (its owner gets an e-mail either way).
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterBody,
    responses((status = 202, description = "Check your e-mail"), (status = 422, description = "Password rule broken", body = super::error::ErrorBody),
        (status = 429, description = "Too many requests for this address or from this client (`Retry-After`)", body = super::error::ErrorBody)))]
pub async fn register(
    services: web::Data<Services>,
    client: Client,
    body: web::Json<RegisterBody>,
) -> Result<HttpResponse> {
    let body = body.into_inner();
    let email = email(&body.email)?;
    let name = body.full_name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if name.as_ref().is_some_and(|n| n.chars().count() > 200) {
        return Err(Error::with_message(Code::InvalidValue, "full_name must be at most 200 characters.").into());
    }
    services.identity.register(&client.0, email, body.password, name, body.preferred_language).await?;
    Ok(accepted("If the address can receive mail, a message is on its way: follow its link to verify your address."))
}

/// `POST /api/v1/auth/login`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub email: String,
    pub password: String,
    /// The current code of the authenticator app, when MFA is on.
    pub totp: Option<String>,
    /// A single-use recovery code instead of `totp`.
    pub recovery_code: Option<String>,
    /// Web UI: also set `__Host-` cookies (HttpOnly, Secure, SameSite=Strict) and return a CSRF token.
    #[serde(default)]
    pub use_cookie: bool,
}

/// Log in: `{access_token, refresh_token, token_type, expires_in}`.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, description = "Tokens"), (status = 401, description = "Wrong credentials or second factor", body = super::error::ErrorBody),
        (status = 429, description = "Too many failed attempts", body = super::error::ErrorBody)))]
pub async fn login(services: web::Data<Services>, client: Client, body: web::Json<LoginBody>) -> Result<HttpResponse> {
    let body = body.into_inner();
    let pair = services
        .identity
        .login(
            &client.0,
            Login { email: body.email, password: body.password, totp: body.totp, recovery_code: body.recovery_code },
        )
        .await?;
    Ok(token_response(&services, pair, body.use_cookie))
}

fn token_response(
    services: &Services,
    pair: careport_actors::identity::service::TokenPair,
    cookie: bool,
) -> HttpResponse {
    let mut res = HttpResponse::Ok();
    res.insert_header(("cache-control", "no-store"));
    let mut body = serde_json::to_value(&pair).unwrap_or_default();
    if cookie {
        let csrf = csrf_token(services, pair.session);
        set_session_cookies(
            &mut res,
            &pair.access_token,
            pair.expires_in,
            &pair.refresh_token,
            services.identity.config().session_max_age_secs,
            &csrf,
        );
        body["csrf_token"] = serde_json::Value::String(csrf);
    }
    res.json(body)
}

/// `POST /api/v1/auth/refresh`.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    /// Omit to use the refresh cookie (web UI; then `X-CSRF-Token` is required).
    pub refresh_token: Option<String>,
}

/// Rotate the refresh token and get a new access token. A refresh token works once: presenting
/// a used one revokes the whole session.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshBody,
    responses((status = 200, description = "New tokens"), (status = 401, description = "Invalid, reused or idle", body = super::error::ErrorBody)))]
pub async fn refresh(
    req: HttpRequest,
    services: web::Data<Services>,
    client: Client,
    body: Option<web::Json<RefreshBody>>,
) -> Result<HttpResponse> {
    let from_body = body.and_then(|b| b.into_inner().refresh_token);
    let (token, cookie) = match from_body {
        Some(t) => (t, false),
        None => {
            let c = req.cookie(REFRESH_COOKIE).ok_or_else(|| Error::new(Code::RefreshTokenInvalid))?;
            let token = c.value().to_owned();
            let session = services
                .identity
                .session_of_refresh(&token)
                .await?
                .ok_or_else(|| Error::new(Code::RefreshTokenInvalid))?;
            check_csrf(&req, &services, session)?;
            (token, true)
        }
    };
    let pair = services.identity.refresh(&client.0, &token).await?;
    Ok(token_response(&services, pair, cookie))
}

/// `POST /api/v1/auth/logout`.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LogoutBody {
    /// End every session of the account, on every device.
    #[serde(default)]
    pub all_sessions: bool,
}

/// End this session (or all of them). Takes effect at once on every node.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = LogoutBody,
    responses((status = 204, description = "Logged out")), security(("bearer" = [])))]
pub async fn logout(
    auth: Authorized<EndOwnSession>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let all = body.parse_optional::<LogoutBody>()?.map(|b| b.all_sessions).unwrap_or(false);
    services.identity.logout(&auth.pass, all).await?;
    let mut res = HttpResponse::NoContent();
    clear_session_cookies(&mut res);
    Ok(res.finish())
}

/// The caller's account.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, description = "The account")), security(("bearer" = [])))]
pub async fn me(auth: Authorized<ReadSelf>, services: web::Data<Services>) -> Result<HttpResponse> {
    let account = services.identity.me(&auth.pass).await?;
    let mut body = serde_json::to_value(account).unwrap_or_default();
    body["session_id"] = serde_json::Value::String(auth.caller().session().to_string());
    body["token_expires_at"] = serde_json::Value::from(epoch_secs(auth.caller().expires_at()));
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(body))
}

/// `POST /api/v1/auth/password/change`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordBody {
    pub current_password: String,
    pub new_password: String,
}

/// Change the password; every other session ends at once.
#[utoipa::path(post, path = "/api/v1/auth/password/change", tag = "auth", request_body = ChangePasswordBody,
    responses((status = 204, description = "Changed"), (status = 422, description = "Wrong current password or weak new one", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn change_password(
    auth: Authorized<WriteSelf>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let body = body.parse::<ChangePasswordBody>()?;
    services.identity.change_password(&auth.pass, body.current_password, body.new_password).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/v1/auth/password/forgot` and `POST /api/v1/auth/email/resend`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailBody {
    pub email: String,
}

/// Ask for a password-reset link. Answers 202 alike whether or not the address has an account.
#[utoipa::path(post, path = "/api/v1/auth/password/forgot", tag = "auth", request_body = EmailBody,
    responses((status = 202, description = "If the account exists, a link was sent"),
        (status = 429, description = "Too many requests for this address or from this client (`Retry-After`)", body = super::error::ErrorBody)))]
pub async fn forgot_password(
    services: web::Data<Services>,
    client: Client,
    body: web::Json<EmailBody>,
) -> Result<HttpResponse> {
    let email = email(&body.email)?;
    services.identity.forgot_password(&client.0, email).await?;
    Ok(accepted("If an account uses this address, a reset link is on its way."))
}

/// Send a new verification link. Answers 202 alike whether or not the address has an account.
#[utoipa::path(post, path = "/api/v1/auth/email/resend", tag = "auth", request_body = EmailBody,
    responses((status = 202, description = "If the account needs it, a link was sent"),
        (status = 429, description = "Too many requests for this address or from this client (`Retry-After`)", body = super::error::ErrorBody)))]
pub async fn resend_verification(
    services: web::Data<Services>,
    client: Client,
    body: web::Json<EmailBody>,
) -> Result<HttpResponse> {
    let email = email(&body.email)?;
    services.identity.resend_verification(&client.0, email).await?;
    Ok(accepted("If an unverified account uses this address, a new link is on its way."))
}

/// `POST /api/v1/auth/password/reset`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordBody {
    pub token: String,
    pub new_password: String,
}

/// Set a new password with the link's token; every session of the account ends.
#[utoipa::path(post, path = "/api/v1/auth/password/reset", tag = "auth", request_body = ResetPasswordBody,
    responses((status = 204, description = "Password set"), (status = 400, description = "Link invalid, expired or used", body = super::error::ErrorBody)))]
pub async fn reset_password(
    services: web::Data<Services>,
    client: Client,
    body: web::Json<ResetPasswordBody>,
) -> Result<HttpResponse> {
    let body = body.into_inner();
    services.identity.reset_password(&client.0, &body.token, body.new_password).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/v1/auth/email/verify`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    pub token: String,
}

/// Verify the e-mail address with the link's token.
#[utoipa::path(post, path = "/api/v1/auth/email/verify", tag = "auth", request_body = TokenBody,
    responses((status = 204, description = "Verified"), (status = 400, description = "Link invalid, expired or used", body = super::error::ErrorBody)))]
pub async fn verify_email(
    services: web::Data<Services>,
    client: Client,
    body: web::Json<TokenBody>,
) -> Result<HttpResponse> {
    services.identity.verify_email(&client.0, &body.token).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's live sessions.
#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "auth",
    responses((status = 200, description = "Sessions, newest first")), security(("bearer" = [])))]
pub async fn list_sessions(auth: Authorized<ListOwnSessions>, services: web::Data<Services>) -> Result<HttpResponse> {
    let sessions = services.identity.sessions(&auth.pass).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "sessions": sessions })))
}

/// End one of the caller's sessions (another device). Another user's session answers 404.
#[utoipa::path(delete, path = "/api/v1/auth/sessions/{id}", tag = "auth", params(("id" = Uuid, Path, description = "Session id")),
    responses((status = 204, description = "Ended"), (status = 404, description = "No such session of yours", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_session(auth: Authorized<DeleteSession>, services: web::Data<Services>) -> Result<HttpResponse> {
    services.identity.end_session(&auth.pass).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/v1/auth/mfa/enrol`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    pub password: String,
}

/// Start MFA enrolment: returns the secret and an `otpauth://` URI for the authenticator app.
#[utoipa::path(post, path = "/api/v1/auth/mfa/enrol", tag = "auth", request_body = PasswordBody,
    responses((status = 200, description = "Secret and URI, shown once"), (status = 409, description = "Already enabled", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn mfa_enrol(
    auth: Authorized<ManageOwnMfa>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let e = services.identity.mfa_enrol(&auth.pass, body.parse::<PasswordBody>()?.password).await?;
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(e))
}

/// `POST /api/v1/auth/mfa/confirm`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    pub code: String,
}

/// Confirm enrolment with a first code; returns ten single-use recovery codes (shown once).
#[utoipa::path(post, path = "/api/v1/auth/mfa/confirm", tag = "auth", request_body = CodeBody,
    responses((status = 200, description = "Recovery codes"), (status = 401, description = "Wrong code", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn mfa_confirm(
    auth: Authorized<ManageOwnMfa>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let body = body.parse::<CodeBody>()?;
    let codes = services.identity.mfa_confirm(&auth.pass, &body.code).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(serde_json::json!({ "recovery_codes": codes })))
}

/// `POST /api/v1/auth/mfa/disable` and `/mfa/recovery-codes`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordCodeBody {
    pub password: String,
    pub code: String,
}

/// Turn MFA off (password and a current code). Refused where the role requires MFA.
#[utoipa::path(post, path = "/api/v1/auth/mfa/disable", tag = "auth", request_body = PasswordCodeBody,
    responses((status = 204, description = "Disabled")), security(("bearer" = [])))]
pub async fn mfa_disable(
    auth: Authorized<ManageOwnMfa>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let body = body.parse::<PasswordCodeBody>()?;
    services.identity.mfa_disable(&auth.pass, body.password, &body.code).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Replace the recovery codes (password and a current code).
#[utoipa::path(post, path = "/api/v1/auth/mfa/recovery-codes", tag = "auth", request_body = PasswordCodeBody,
    responses((status = 200, description = "New recovery codes")), security(("bearer" = [])))]
pub async fn mfa_recovery_codes(
    auth: Authorized<ManageOwnMfa>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let body = body.parse::<PasswordCodeBody>()?;
    let codes = services.identity.mfa_recovery_codes(&auth.pass, body.password, &body.code).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(serde_json::json!({ "recovery_codes": codes })))
}

/// `POST /api/v1/auth/invitations/accept`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitationBody {
    pub token: String,
    pub full_name: Option<String>,
    pub password: String,
}

/// Accept an invitation: creates the clinician or administrator account.
#[utoipa::path(post, path = "/api/v1/auth/invitations/accept", tag = "auth", request_body = AcceptInvitationBody,
    responses((status = 201, description = "Account created"), (status = 400, description = "Link invalid, expired or used", body = super::error::ErrorBody)))]
pub async fn accept_invitation(
    services: web::Data<Services>,
    client: Client,
    body: web::Json<AcceptInvitationBody>,
) -> Result<HttpResponse> {
    let body = body.into_inner();
    let account = services.identity.accept_invitation(&client.0, &body.token, body.full_name, body.password).await?;
    Ok(HttpResponse::Created().json(account))
}

/// `POST /api/v1/auth/tokens/attenuate`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttenuateBody {
    /// Only these operations (read, write, delete, share, manage, list).
    pub operations: Option<Vec<String>>,
    /// Only these resources.
    pub resources: Option<Vec<ResourceRef>>,
    /// Seconds from now; never beyond the caller's own token.
    pub expires_in: Option<u64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceRef {
    pub kind: String,
    pub id: String,
}

/// A token narrowed to the operations, resources and expiry asked for; never wider than the
/// caller's. Hand it on (a caregiver, an integrator); it cannot be refreshed.
#[utoipa::path(post, path = "/api/v1/auth/tokens/attenuate", tag = "auth", request_body = AttenuateBody,
    responses((status = 200, description = "The narrowed token"), (status = 400, description = "Unknown operation or kind", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn attenuate(auth: Authenticated, services: web::Data<Services>, body: JsonBody) -> Result<HttpResponse> {
    let body = body.parse::<AttenuateBody>()?;
    if body.operations.is_none() && body.resources.is_none() && body.expires_in.is_none() {
        return Err(
            Error::with_message(Code::InvalidValue, "Give operations, resources or expires_in to narrow to.").into()
        );
    }
    let own = auth.caller.expires_at();
    // Never beyond the caller's own token (and no overflow for absurd values).
    let expires_at =
        body.expires_in.map(|s| SystemTime::now().checked_add(Duration::from_secs(s)).map_or(own, |t| t.min(own)));
    let narrowing = Narrowing {
        operations: body.operations,
        resources: body.resources.map(|r| r.into_iter().map(|r| (r.kind, r.id)).collect()),
        expires_at,
    };
    let token = services.identity.attenuate(&auth.caller, &narrowing).await?;
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(serde_json::json!({
        "token": token,
        "token_type": "Bearer",
        "expires_at": epoch_secs(expires_at.unwrap_or(own)),
    })))
}

/// Register the routes.
pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let r = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/v1/auth/register").post(register))
        .service(r("/api/v1/auth/login").post(login))
        .service(r("/api/v1/auth/refresh").post(refresh))
        .service(r("/api/v1/auth/logout").post(logout))
        .service(r("/api/v1/auth/me").get(me))
        .service(r("/api/v1/auth/password/change").post(change_password))
        .service(r("/api/v1/auth/password/forgot").post(forgot_password))
        .service(r("/api/v1/auth/password/reset").post(reset_password))
        .service(r("/api/v1/auth/email/verify").post(verify_email))
        .service(r("/api/v1/auth/email/resend").post(resend_verification))
        .service(r("/api/v1/auth/sessions").get(list_sessions))
        .service(r("/api/v1/auth/sessions/{id}").delete(delete_session))
        .service(r("/api/v1/auth/mfa/enrol").post(mfa_enrol))
        .service(r("/api/v1/auth/mfa/confirm").post(mfa_confirm))
        .service(r("/api/v1/auth/mfa/disable").post(mfa_disable))
        .service(r("/api/v1/auth/mfa/recovery-codes").post(mfa_recovery_codes))
        .service(r("/api/v1/auth/invitations/accept").post(accept_invitation))
        .service(r("/api/v1/auth/tokens/attenuate").post(attenuate));
}
