//! Authentication and authorization at the HTTP edge: the `Authorized<Op>` extractor.
//!
//! A handler that touches anything but public routes takes `Authorized<SomeOperation>`; the
//! extractor finds the token (`Authorization: Bearer`, or the `__Host-careport_access` cookie
//! of the web UI), verifies it (signature, expiry, revocation), checks CSRF for
//! cookie-authenticated writes, refuses a narrowed token whose maker changed, and asks the
//! access service for the operation's [`Pass`] before the handler runs (so a caller who may not
//! act is refused before the body is read). The handler hands the pass to one service
//! operation (`careport_actors::door`), which does the rest. The operations themselves are
//! listed in `careport_actors::access::operations`.
//!
//! A denial on a resource instance (a path id) answers 404; on a collection or admin family, 403.

use std::future::Future;
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

pub use careport_actors::access::operations::*;

/// A caller authorized for `O`: the pass the access service made. For an operation on one
/// resource, the pass carries the path's `{id}`, parsed.
pub struct Authorized<O: Operation> {
    pub pass: Pass<O>,
}

impl<O: Operation> Authorized<O> {
    pub fn caller(&self) -> &Caller {
        self.pass.caller()
    }
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
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(services.identity.csrf_key()) else { return String::new() };
    mac.update(session.as_bytes());
    data_encoding::BASE64URL_NOPAD.encode(&mac.finalize().into_bytes())
}

/// Check the `X-CSRF-Token` header of a cookie-authenticated write.
pub fn check_csrf(req: &HttpRequest, services: &Services, session: uuid::Uuid) -> Result<(), Error> {
    let Some(presented) = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) else {
        return Err(Error::new(Code::CsrfRejected));
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(services.identity.csrf_key()) else {
        return Err(Error::new(Code::CsrfRejected));
    };
    mac.update(session.as_bytes());
    let Ok(bytes) = data_encoding::BASE64URL_NOPAD.decode(presented.trim().as_bytes()) else {
        return Err(Error::new(Code::CsrfRejected));
    };
    // verify_slice compares in constant time.
    mac.verify_slice(&bytes).map_err(|_| Error::new(Code::CsrfRejected))
}

pub(crate) async fn authenticate(req: &HttpRequest) -> Result<(web::Data<Services>, Caller), ApiError> {
    let services = services(req)?;
    let (raw, via_cookie) = presented_token(req)?;
    let token = services.identity.authenticate(&raw)?;
    // A narrowed token (a signed link presented as a bearer token among them) takes the same
    // checks however it arrives.
    services.access.check_narrowed(&token).await?;
    if via_cookie && !is_safe(req.method()) {
        check_csrf(req, &services, token.claims().session)?;
    }
    let caller = Caller::new(token, &client_info(req));
    Ok((services.clone(), caller))
}

/// A path parameter that names a resource: a UUID, or nothing (404). Only the canonical form
/// reaches the policies and the audit trail.
pub fn path_id(req: &HttpRequest, name: &str) -> Result<uuid::Uuid, Error> {
    uuid::Uuid::parse_str(req.match_info().get(name).unwrap_or_default()).map_err(|_| Error::new(Code::NotFound))
}

/// The caller behind a request's token (no decision yet), for operations that decide with
/// the rows they load (`GET /patients/{id}`).
pub struct Authenticated {
    pub caller: Caller,
}

impl<O: Operation> FromRequest for Authorized<O> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let (services, caller) = authenticate(&req).await?;
            let id = match O::TARGET {
                Target::Instance => Some(path_id(&req, "id")?),
                _ => None,
            };
            let pass = services.access.pass::<O>(caller, id).await?;
            Ok(Self { pass })
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

/// A socket opened with the web UI's cookie must come from the portal's own pages: browsers
/// send cookies on cross-site WebSocket handshakes where SameSite allows, and a WebSocket has no
/// CSRF header, so the `Origin` must be the portal's (`public_url`). A bearer token is not sent
/// by browsers on their own, so it needs no such check.
pub fn check_origin(req: &HttpRequest, services: &Services) -> Result<(), Error> {
    if req.headers().contains_key(header::AUTHORIZATION) {
        return Ok(());
    }
    let Some(origin) = req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok()) else { return Ok(()) };
    let ours = services.identity.public_url().trim_end_matches('/');
    let ours_origin = ours.split('/').take(3).collect::<Vec<_>>().join("/");
    let origin = origin.trim_end_matches('/');
    if origin.eq_ignore_ascii_case(&ours_origin) {
        return Ok(());
    }
    // Same origin as the request itself: the page was served by this very address (a node
    // reached directly, `localhost` on a workstation). A browser sets `Host` itself, so a page
    // on another site cannot make the two agree.
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    let authority = origin.split_once("://").map(|(_, a)| a).unwrap_or_default();
    if !host.is_empty() && authority.eq_ignore_ascii_case(host) { Ok(()) } else { Err(Error::new(Code::CsrfRejected)) }
}
