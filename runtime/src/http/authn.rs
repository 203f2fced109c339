//! Authentication and authorization at the HTTP edge: the `Authorized<Op>` extractor.
//!
//! A handler that touches anything but public routes takes `Authorized<SomeOperation>`; the
//! extractor finds the token (`Authorization: Bearer`, or the `__Host-careport_access` cookie
//! of the web UI), verifies it (signature, expiry, revocation), checks CSRF for
//! cookie-authenticated writes, and runs the policies for the operation's resource before the
//! handler runs. A handler cannot skip it: without the extractor it has no [`Caller`].
//!
//! A denial on a resource instance (a path id) answers 404; on a collection or admin family, 403.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::{Method, header};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponseBuilder, web};
use careport_actors::{Caller, ClientInfo, Services};
use careport_domain::{Code, Error};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tracing_actix_web::RequestId;

use super::error::ApiError;

/// The web UI's cookies. `__Host-` binds them to this exact origin, Secure, path `/`.
pub const ACCESS_COOKIE: &str = "__Host-careport_access";
pub const REFRESH_COOKIE: &str = "__Host-careport_refresh";
/// Readable by the page's script, which echoes it in `X-CSRF-Token` on writes.
pub const CSRF_COOKIE: &str = "__Host-careport_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// `[http] trust_forwarded_for`, shared with the extractors.
#[derive(Clone, Copy, Debug)]
pub struct ClientConfig {
    pub trust_forwarded_for: bool,
}

/// Where the id of the resource comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The caller's own user id (`/me`, MFA, password change).
    OwnUser,
    /// The caller's current session.
    OwnSession,
    /// A collection or family (`*`): denial answers 403.
    Family,
    /// A path parameter: a resource instance; denial answers 404.
    Path(&'static str),
}

/// An operation a route performs: what the policies are asked.
pub trait Operation: 'static {
    const OPERATION: &'static str;
    const KIND: &'static str;
    const TARGET: Target;
}

macro_rules! operations {
    ($($(#[$doc:meta])* $name:ident => $op:literal on $kind:literal at $target:expr;)*) => {
        $(
            $(#[$doc])*
            pub struct $name;
            impl Operation for $name {
                const OPERATION: &'static str = $op;
                const KIND: &'static str = $kind;
                const TARGET: Target = $target;
            }
        )*
    };
}

operations! {
    /// Read one's own account.
    ReadSelf => "read" on "user" at Target::OwnUser;
    /// Change one's own account (password).
    WriteSelf => "write" on "user" at Target::OwnUser;
    /// End one's own current session.
    EndOwnSession => "delete" on "session" at Target::OwnSession;
    /// End one of one's sessions by id.
    DeleteSession => "delete" on "session" at Target::Path("id");
    /// Enrol, confirm or disable one's MFA.
    ManageOwnMfa => "manage" on "mfa" at Target::OwnUser;
    /// Read a user record by id.
    ReadUser => "read" on "user" at Target::Path("id");
    /// Read a patient (their record summary).
    ReadPatient => "read" on "patient" at Target::Path("id");
    /// Read one's own access log (patients).
    ReadOwnAccessLog => "read" on "access_log" at Target::OwnUser;
    /// Manage accounts, invitations and the MFA policy (administrators).
    ManageUsers => "manage" on "users" at Target::Family;
    /// Read the audit trail (administrators).
    ReadAudit => "read" on "audit" at Target::Family;
    /// Read the clinic's reference data (departments, cancer types).
    ReadReference => "read" on "reference" at Target::Family;
    /// Change the clinic's reference data (administrators).
    ManageReference => "manage" on "reference" at Target::Family;
    /// List patients (each caller sees those they may read).
    ListPatients => "list" on "patient" at Target::Family;
    /// Open a new patient record.
    CreatePatient => "create" on "patient" at Target::Family;
    /// Update a patient record.
    WritePatient => "write" on "patient" at Target::Path("id");
    /// Soft-delete a patient record.
    DeletePatient => "delete" on "patient" at Target::Path("id");
    /// Restore a soft-deleted patient record.
    RestorePatient => "restore" on "patient" at Target::Path("id");
    /// Change a patient's care team.
    AssignPatient => "assign" on "patient" at Target::Path("id");
    /// Book an appointment for a patient.
    BookForPatient => "book" on "patient" at Target::Path("id");
    /// Read the clinician directory.
    ListClinicians => "read" on "clinician" at Target::Family;
    /// Read a clinician's profile, hours and slots.
    ReadClinician => "read" on "clinician" at Target::Path("id");
    /// Change a clinician's profile, hours or absences.
    WriteClinician => "write" on "clinician" at Target::Path("id");
    /// List appointments (each caller sees those they may read).
    ListAppointments => "list" on "appointment" at Target::Family;
    /// Read an appointment.
    ReadAppointment => "read" on "appointment" at Target::Path("id");
    /// Reschedule an appointment or record its outcome.
    WriteAppointment => "write" on "appointment" at Target::Path("id");
    /// Cancel an appointment.
    CancelAppointment => "cancel" on "appointment" at Target::Path("id");
    /// Read the clinic's statistics (administrators).
    ReadStats => "read" on "stats" at Target::Family;
    /// List, upload, enable, disable and reload plugins (administrators).
    ManagePlugins => "manage" on "plugins" at Target::Family;
    /// Upload a file into a patient's chart.
    UploadToPatient => "upload" on "patient" at Target::Path("id");
    /// Read a medical record (its metadata and content).
    ReadDocument => "read" on "document" at Target::Path("id");
    /// Soft-delete a medical record.
    DeleteDocument => "delete" on "document" at Target::Path("id");
    /// Grant access to a medical record, or make a signed link to it.
    ShareDocument => "share" on "document" at Target::Path("id");
    /// Erase a patient's files (crypto-shredding; administrators).
    ErasePatient => "erase" on "patient" at Target::Path("id");
}

/// A caller authorized for `O`. The resource id the decision was about is in `resource_id`.
pub struct Authorized<O: Operation> {
    pub caller: Caller,
    pub resource_id: String,
    _op: PhantomData<O>,
}

/// A caller whose token is valid, with no resource decision: only for minting a narrower
/// token (attenuation cannot widen anything, so it needs no policy decision).
pub struct Authenticated {
    pub caller: Caller,
}

fn services(req: &HttpRequest) -> Result<web::Data<Services>, ApiError> {
    req.app_data::<web::Data<Services>>()
        .cloned()
        .ok_or_else(|| ApiError(Error::internal(anyhow::anyhow!("Services missing from app data"))))
}

/// The client's address, user agent and request id.
pub fn client_info(req: &HttpRequest) -> ClientInfo {
    let trust = req.app_data::<web::Data<ClientConfig>>().is_some_and(|c| c.trust_forwarded_for);
    // Behind our own proxy, the address it appended last: entries before it (and any
    // `Forwarded` header) come from the client and could be anything.
    let forwarded = trust
        .then(|| req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok()))
        .flatten()
        .and_then(|v| v.rsplit(',').next())
        .map(|v| v.trim().to_owned())
        .filter(|v| v.parse::<std::net::IpAddr>().is_ok());
    let ip = forwarded.or_else(|| req.peer_addr().map(|a| a.ip().to_string()));
    let user_agent =
        req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(256).collect());
    let request_id = req.extensions().get::<RequestId>().map(|id| id.to_string());
    ClientInfo { ip, user_agent, request_id }
}

/// The presented token and whether it came from the cookie.
fn presented_token(req: &HttpRequest) -> Result<(String, bool), Error> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| Error::new(Code::TokenMalformed))?;
        let (scheme, token) = value.split_once(' ').ok_or_else(|| Error::new(Code::TokenMalformed))?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(Error::new(Code::TokenMalformed));
        }
        return Ok((token.trim().to_owned(), false));
    }
    if let Some(c) = req.cookie(ACCESS_COOKIE) {
        return Ok((c.value().to_owned(), true));
    }
    Err(Error::new(Code::Unauthenticated))
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The CSRF token of a session: HMAC-SHA256 of the session id under a key derived from the
/// token signing key. Bound to the session, so a value planted from elsewhere does not match.
pub fn csrf_token(services: &Services, session: uuid::Uuid) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(services.auth.csrf_key()) else { return String::new() };
    mac.update(session.as_bytes());
    data_encoding::BASE64URL_NOPAD.encode(&mac.finalize().into_bytes())
}

/// Check the `X-CSRF-Token` header of a cookie-authenticated write.
pub fn check_csrf(req: &HttpRequest, services: &Services, session: uuid::Uuid) -> Result<(), Error> {
    let Some(presented) = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) else {
        return Err(Error::new(Code::CsrfRejected));
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(services.auth.csrf_key()) else {
        return Err(Error::new(Code::CsrfRejected));
    };
    mac.update(session.as_bytes());
    let Ok(bytes) = data_encoding::BASE64URL_NOPAD.decode(presented.trim().as_bytes()) else {
        return Err(Error::new(Code::CsrfRejected));
    };
    // verify_slice compares in constant time.
    mac.verify_slice(&bytes).map_err(|_| Error::new(Code::CsrfRejected))
}

async fn authenticate(req: &HttpRequest) -> Result<(web::Data<Services>, Caller), ApiError> {
    let services = services(req)?;
    let (raw, via_cookie) = presented_token(req)?;
    let token = services.auth.authenticate(&raw)?;
    let claims = token.claims();
    if via_cookie && !is_safe(req.method()) {
        check_csrf(req, &services, claims.session)?;
    }
    let mut ctx = client_info(req).context();
    ctx.actor_id = Some(claims.user);
    ctx.actor_role = Some(claims.role.as_str().to_owned());
    Ok((services.clone(), Caller { token, ctx }))
}

impl<O: Operation> FromRequest for Authorized<O> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let (services, caller) = authenticate(&req).await?;
            let (id, hide) = match O::TARGET {
                Target::OwnUser => (caller.user().to_string(), false),
                Target::OwnSession => (caller.session().to_string(), false),
                Target::Family => ("*".to_owned(), false),
                // Every resource id is a UUID: anything else names nothing (404), and only the
                // canonical form reaches the policies and the audit trail.
                Target::Path(name) => {
                    let raw = req.match_info().get(name).unwrap_or_default();
                    let id = uuid::Uuid::parse_str(raw).map_err(|_| Error::new(Code::NotFound))?;
                    (id.to_string(), true)
                }
            };
            if O::TARGET == Target::OwnSession && !caller.token.is_attenuated() {
                // Ending one's own session needs only one's own, unnarrowed token; an account
                // that must still enrol MFA can log out too.
                return Ok(Self { caller, resource_id: id, _op: PhantomData });
            }
            services.auth.authorize(&caller, O::OPERATION, O::KIND, &id, hide).await?;
            Ok(Self { caller, resource_id: id, _op: PhantomData })
        })
    }
}

/// A patient read authorized with the facts of the record it loaded: the record and its care
/// team come from one query, and the `assigned` and `patient_department` facts are taken from
/// them, so the hot read `GET /api/v1/patients/{id}` costs one store round trip before its
/// audit event. The decision is the one `Authorized<ReadPatient>` makes.
pub struct AuthorizedPatientRead {
    pub services: web::Data<Services>,
    pub caller: Caller,
    pub id: uuid::Uuid,
    /// The record and its team (`None`: no such record).
    pub loaded: Option<(careport_store::patients::PatientRow, Vec<careport_store::assignments::TeamMember>)>,
}

impl FromRequest for AuthorizedPatientRead {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let (services, caller) = authenticate(&req).await?;
            let raw = req.match_info().get("id").unwrap_or_default();
            let id = uuid::Uuid::parse_str(raw).map_err(|_| Error::new(Code::NotFound))?;
            let loaded = careport_store::patients::get_with_team(&services.db, id)
                .await
                .map_err(|e| Error::new(Code::StoreUnavailable).caused_by(e).retry_after(1))?;
            let mut facts = Vec::new();
            if let Some((p, team)) = &loaded {
                let mut departments: Vec<&str> = Vec::new();
                for m in team {
                    facts.push(careport_policy::StoreFact::Assigned { clinician: m.clinician_id, patient: id });
                    departments.extend(m.department.as_deref());
                }
                departments.extend(p.department.as_deref());
                departments.sort_unstable();
                departments.dedup();
                facts.extend(
                    departments.into_iter().map(|d| careport_policy::StoreFact::PatientDepartment {
                        patient: id,
                        department: d.to_owned(),
                    }),
                );
            }
            services.auth.authorize_with_facts(&caller, "read", "patient", &id.to_string(), true, &facts).await?;
            Ok(Self { services, caller, id, loaded })
        })
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let (_, caller) = authenticate(&req).await?;
            Ok(Self { caller })
        })
    }
}

/// The client side of a request, for public routes (login, register).
pub struct Client(pub ClientInfo);

impl FromRequest for Client {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(Ok(Client(client_info(req))))
    }
}

/// Set the web UI's cookies for a session.
pub fn set_session_cookies(
    res: &mut HttpResponseBuilder,
    access: &str,
    access_ttl_secs: u64,
    refresh: &str,
    session_ttl_secs: u64,
    csrf: &str,
) {
    let cookie = |name: &'static str, value: String, ttl: u64, http_only: bool| {
        Cookie::build(name, value)
            .path("/")
            .secure(true)
            .http_only(http_only)
            .same_site(SameSite::Strict)
            .max_age(CookieDuration::seconds(i64::try_from(ttl).unwrap_or(i64::MAX)))
            .finish()
    };
    res.cookie(cookie(ACCESS_COOKIE, access.to_owned(), access_ttl_secs, true));
    res.cookie(cookie(REFRESH_COOKIE, refresh.to_owned(), session_ttl_secs, true));
    res.cookie(cookie(CSRF_COOKIE, csrf.to_owned(), session_ttl_secs, false));
}

/// Remove the web UI's cookies.
pub fn clear_session_cookies(res: &mut HttpResponseBuilder) {
    for name in [ACCESS_COOKIE, REFRESH_COOKIE, CSRF_COOKIE] {
        let mut c = Cookie::build(name, "").path("/").secure(true).same_site(SameSite::Strict).finish();
        c.make_removal();
        res.cookie(c);
    }
}

/// A JSON body read after authorization. Actix runs a handler's extractors together, so a
/// `web::Json` that fails would answer 400 before `Authorized` could answer 401/403/404 — and
/// tell an unauthorized caller about the body's rules. This extractor never fails; the handler
/// parses the body once it holds an `Authorized`.
pub struct JsonBody {
    bytes: Result<web::Bytes, Error>,
    is_json: bool,
}

impl JsonBody {
    /// Parse the body as `T` (400 `invalid_json`, 415 when not `application/json`).
    pub fn parse<T: serde::de::DeserializeOwned>(self) -> Result<T, ApiError> {
        let bytes = self.bytes?;
        if !self.is_json {
            return Err(Error::with_message(Code::UnsupportedMediaType, "Send the body as application/json.").into());
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::with_message(
                Code::InvalidJson,
                format!("The body is not valid for this endpoint: {}", super::error::sanitize(&e.to_string())),
            )
            .into()
        })
    }

    /// Like [`JsonBody::parse`], but an empty body is `None`.
    pub fn parse_optional<T: serde::de::DeserializeOwned>(self) -> Result<Option<T>, ApiError> {
        match &self.bytes {
            Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(None),
            _ => self.parse().map(Some),
        }
    }
}

impl FromRequest for JsonBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || m.ends_with("+json")
            })
            .unwrap_or(false);
        let fut = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = fut.await.map_err(|e| {
                if e.as_response_error().status_code() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
                    Error::new(Code::PayloadTooLarge)
                } else {
                    Error::new(Code::BadRequest)
                }
            });
            Ok(JsonBody { bytes, is_json })
        })
    }
}

/// Parse a query string after authorization (see [`JsonBody`] for why).
pub fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string()).map(web::Query::into_inner).map_err(|e| {
        Error::with_message(
            Code::InvalidQuery,
            format!("The query string is not valid: {}", super::error::sanitize(&e.to_string())),
        )
        .into()
    })
}
