//! Request middleware: the root tracing span, a request id on every response, metrics by route
//! pattern and the per-request timeout.
//!
//! The root span records method, route *pattern*, status and request id — never the path
//! (it can hold ids), the query string or a body.

use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error as ActixError, HttpMessage, web};
use careport_domain::{Code, Error};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};

use super::error::ApiError;
use crate::metrics::Metrics;

/// The route label of requests that matched no route (keeps label cardinality bounded).
const UNMATCHED: &str = "unmatched";
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Per-request limits, shared as app data.
#[derive(Clone, Copy)]
pub struct RequestLimits {
    pub timeout: Duration,
    /// For file transfers, which take as long as the file needs (`vault.upload_timeout_secs`).
    pub upload_timeout: Duration,
}

/// The routes that move files: an upload's body, and a download's check of every frame before
/// its first byte, take as long as the file needs (`vault.upload_timeout_secs`).
const FILE_ROUTES: [(&str, &str); 2] =
    [("POST", "/api/v1/patients/{id}/records"), ("GET", "/api/v1/records/{id}/content")];

/// careport's root span: no path, no query string.
pub struct CareportRootSpan;

impl RootSpanBuilder for CareportRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let route = request.match_pattern().unwrap_or_else(|| UNMATCHED.to_owned());
        let request_id = request.extensions().get::<RequestId>().copied().map(|id| id.to_string()).unwrap_or_default();
        tracing::info_span!(
            "http",
            method = %request.method(),
            route = %route,
            request_id = %request_id,
            status = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, ActixError>) {
        let status = match outcome {
            Ok(res) => res.status().as_u16(),
            Err(e) => e.as_response_error().status_code().as_u16(),
        };
        span.record("status", status);
    }
}

/// Time the request, bound it by the configured timeout, count it, stamp the request id, and
/// turn an error into a response.
pub async fn observe(req: ServiceRequest, next: Next<BoxBody>) -> Result<ServiceResponse<BoxBody>, ActixError> {
    let started = Instant::now();
    // No clone of the request may be held here: routing needs it unshared (actix panics).
    let method = req.method().as_str().to_owned();
    let route = req.match_pattern().unwrap_or_else(|| UNMATCHED.to_owned());
    let request_id = req.extensions().get::<RequestId>().copied();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let limits = req.app_data::<web::Data<RequestLimits>>().map(|l| *l.get_ref());
    let count = |status: StatusCode, elapsed: Duration| {
        if let Some(m) = &metrics {
            m.http_requests.with_label_values(&[method.as_str(), route.as_str(), status.as_str()]).inc();
            m.http_latency.with_label_values(&[method.as_str(), route.as_str()]).observe(elapsed.as_secs_f64());
        }
    };

    let outcome = match limits {
        Some(l) => match tokio::time::timeout(
            if FILE_ROUTES.contains(&(method.as_str(), route.as_str())) { l.upload_timeout } else { l.timeout },
            next.call(req),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => {
                // The handler is dropped; actix renders the error as JSON at the top.
                count(StatusCode::GATEWAY_TIMEOUT, started.elapsed());
                tracing::warn!(status = 504, "request timed out");
                return Err(ApiError(Error::new(Code::RequestTimeout)).into());
            }
        },
        None => next.call(req).await,
    };
    // Handler errors are already responses; an `Err` here comes from a middleware.
    let mut res = outcome?;
    if let Some(id) = request_id
        && let Ok(v) = HeaderValue::from_str(&id.to_string())
    {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    let elapsed = started.elapsed();
    let status = res.status();
    count(status, elapsed);
    let span = Span::current();
    span.record("latency_ms", elapsed.as_secs_f64() * 1000.0);
    if status.is_server_error() {
        tracing::warn!(status = status.as_u16(), "request finished");
    } else {
        tracing::info!(status = status.as_u16(), "request finished");
    }
    Ok(res)
}
