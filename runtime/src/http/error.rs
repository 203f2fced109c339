//! Errors as HTTP responses: `{"code", "message"}` with the status of the code's kind.
//!
//! Internal causes are logged here, with the request's span, and never sent to the client.
//! The `match` on kinds has no `_` arm: a new kind forces a decision about its status.

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::{HttpRequest, HttpResponse, ResponseError, error};
use careport_domain::{Code, Error, ErrorKind};
use serde::Serialize;

/// The JSON body of every error response.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `not_found`.
    pub code: &'static str,
    /// A human-readable explanation, safe to show.
    pub message: String,
}

/// careport's error as an actix response.
pub struct ApiError(pub Error);

impl std::fmt::Debug for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl From<Code> for ApiError {
    fn from(code: Code) -> Self {
        Self(Error::new(code))
    }
}

impl ApiError {
    /// An actor did not answer: stopped or restarting.
    pub fn mailbox(e: actix::MailboxError) -> Self {
        Self(Error::new(Code::ServiceUnavailable).caused_by(anyhow::anyhow!("actor mailbox: {e}")).retry_after(1))
    }
}

pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
        ErrorKind::Gone => StatusCode::GONE,
        ErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(self.0.kind())
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(code = %self.0.code(), error = ?self.0, "request failed");
        } else if let Some(cause) = self.0.cause() {
            tracing::debug!(code = %self.0.code(), cause = %cause, "request rejected");
        }
        let mut res = HttpResponse::build(status)
            .json(ErrorBody { code: self.0.code().as_str(), message: self.0.message().to_owned() });
        if let Some(secs) = self.0.retry_after_seconds()
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            res.headers_mut().insert(RETRY_AFTER, v);
        }
        res
    }
}

/// Bad JSON bodies: say what is wrong with the document (serde's message names the field and
/// position), never echo the body.
pub fn json_error(err: error::JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let e = match &err {
        error::JsonPayloadError::OverflowKnownLength { .. } | error::JsonPayloadError::Overflow { .. } => {
            Error::new(Code::PayloadTooLarge)
        }
        error::JsonPayloadError::ContentType => {
            Error::with_message(Code::UnsupportedMediaType, "Send the body as application/json.")
        }
        error::JsonPayloadError::Deserialize(de) => Error::with_message(
            Code::InvalidJson,
            format!("The body is not valid for this endpoint: {}", sanitize(&de.to_string())),
        ),
        _ => Error::new(Code::InvalidJson),
    };
    ApiError(e).into()
}

pub fn query_error(err: error::QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError(Error::with_message(
        Code::InvalidQuery,
        format!("The query string is not valid: {}", sanitize(&err.to_string())),
    ))
    .into()
}

pub fn path_error(err: error::PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError(Error::with_message(
        Code::InvalidPath,
        format!("A path parameter is not valid: {}", sanitize(&err.to_string())),
    ))
    .into()
}

/// serde messages quote the offending value (`invalid type: string "…"`); keep the shape,
/// drop the quoted value, which may be personal data.
pub fn sanitize(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut in_quote = false;
    for c in msg.chars() {
        if c == '"' {
            if !in_quote {
                out.push_str("\"…");
            } else {
                out.push('"');
            }
            in_quote = !in_quote;
        } else if !in_quote {
            out.push(c);
        }
    }
    out
}

/// For routes that do not exist.
pub async fn route_not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError(Error::new(Code::RouteNotFound)))
}

/// For methods a resource does not answer.
pub async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError(Error::new(Code::MethodNotAllowed)))
}

#[cfg(test)]
mod tests {
    use super::{ApiError, sanitize};
    use actix_web::ResponseError;
    use careport_ml::EmbedError;

    #[actix_web::test]
    async fn embedding_failures_answer_503_with_a_code_and_retry_after_but_no_detail() {
        let cases = [
            (EmbedError::Unavailable("model directory /srv/secret/path does not exist".into()), "model_unavailable"),
            (EmbedError::Overloaded { retry_after_secs: 1 }, "model_overloaded"),
            (EmbedError::BadResponse("server said: patient Jane Doe".into()), "model_failed"),
        ];
        for (err, code) in cases {
            let res = ApiError(err.into()).error_response();
            assert_eq!(res.status(), 503);
            assert!(res.headers().contains_key("retry-after"), "{code}");
            let body = actix_web::body::to_bytes(res.into_body()).await.expect("body");
            let text = String::from_utf8_lossy(&body);
            assert!(text.contains(code), "{text}");
            assert!(!text.contains("/srv/secret") && !text.contains("Jane"), "{text}");
        }
        let res = ApiError(EmbedError::Disabled.into()).error_response();
        assert_eq!(res.status(), 503);
    }

    #[test]
    fn quoted_values_are_dropped_from_messages() {
        assert_eq!(
            sanitize("invalid type: string \"Jane Doe\", expected u32 at line 1 column 20"),
            "invalid type: string \"…\", expected u32 at line 1 column 20"
        );
    }
}
