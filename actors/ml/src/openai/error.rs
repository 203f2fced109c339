//! Why a call to the OpenAI-compatible server failed, and which failures are worth a retry.
//!
//! Messages never carry the API key, the prompt or the model's answer: server error bodies
//! are reduced to their status, `type`, `code` and `param` (a server may echo the input in
//! its `message`), and decoding errors drop the values they quote.

use std::time::Duration;

use async_openai::error::OpenAIError;

use crate::EmbedError;

/// Why a chat or embedding request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Not configured, unreachable, refusing our credentials, or failing (5xx) after the
    /// retries.
    #[error("the language model provider is unavailable: {0}")]
    Unavailable(String),
    /// The server kept answering 429. `retry_after` is its `Retry-After`, when it sent one.
    #[error("the language model provider is rate limiting us")]
    RateLimited { retry_after: Option<Duration> },
    /// The server answered something unusable (not the OpenAI format, wrong count or
    /// dimension, a stream that stopped halfway).
    #[error("the language model provider answered badly: {0}")]
    BadResponse(String),
    /// The request was refused as invalid (4xx other than 429), or failed our own checks.
    #[error("{0}")]
    Invalid(String),
    /// No answer within `llm.timeout_secs`, after the retries.
    #[error("the language model provider did not answer in time")]
    Timeout,
}

impl From<ProviderError> for EmbedError {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::Unavailable(m) => EmbedError::Unavailable(m),
            ProviderError::RateLimited { retry_after } => EmbedError::Overloaded {
                retry_after_secs: retry_after.map_or(1, |d| u32::try_from(d.as_secs().max(1)).unwrap_or(u32::MAX)),
            },
            ProviderError::BadResponse(m) => EmbedError::BadResponse(m),
            ProviderError::Invalid(m) => EmbedError::Invalid(m),
            ProviderError::Timeout => EmbedError::Unavailable("the provider did not answer in time".into()),
        }
    }
}

/// A non-2xx answer, made by the transport before async-openai reads the body, so that the
/// `Retry-After` header survives (async-openai keeps only the body).
#[derive(Debug)]
pub(crate) struct HttpStatusError {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// `error.type`, `error.code` and `error.param` from an OpenAI-style error body.
    pub kind: Option<String>,
    pub code: Option<String>,
    pub param: Option<String>,
}

impl std::fmt::Display for HttpStatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        for (name, value) in [("type", &self.kind), ("code", &self.code), ("param", &self.param)] {
            if let Some(v) = value {
                write!(f, " {name}={}", short(v))?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for HttpStatusError {}

/// One failed attempt: what to report, and whether another attempt may succeed.
#[derive(Debug)]
pub(crate) struct Failure {
    pub error: ProviderError,
    pub retryable: bool,
    pub retry_after: Option<Duration>,
}

impl Failure {
    pub fn fatal(error: ProviderError) -> Self {
        Self { error, retryable: false, retry_after: None }
    }

    pub fn timeout() -> Self {
        Self { error: ProviderError::Timeout, retryable: true, retry_after: None }
    }
}

/// Classify an async-openai error: 429, 5xx, connection errors and timeouts are retryable.
pub(crate) fn classify(e: OpenAIError) -> Failure {
    match e {
        OpenAIError::Boxed(boxed) => match boxed.downcast::<HttpStatusError>() {
            Ok(status) => classify_status(*status),
            Err(other) => Failure::fatal(ProviderError::Unavailable(format!("the HTTP layer failed: {other}"))),
        },
        OpenAIError::Reqwest(e) => classify_reqwest(&e),
        OpenAIError::ApiError(api) => classify_status(HttpStatusError {
            status: api.status_code.as_u16(),
            retry_after: None,
            kind: api.api_error.r#type,
            code: api.api_error.code,
            param: api.api_error.param,
        }),
        OpenAIError::JSONDeserialize(e, _content) => {
            Failure::fatal(ProviderError::BadResponse(format!("the answer is not JSON ({})", describe_json_error(&e))))
        }
        OpenAIError::StreamError(e) => {
            Failure::fatal(ProviderError::Unavailable(format!("the event stream broke off: {}", stream_error_kind(&e))))
        }
        OpenAIError::InvalidArgument(m) => Failure::fatal(ProviderError::Invalid(m)),
        OpenAIError::FileSaveError(_) | OpenAIError::FileReadError(_) => {
            Failure::fatal(ProviderError::Invalid("file operations are not used by careport".into()))
        }
    }
}

fn classify_status(s: HttpStatusError) -> Failure {
    let described = s.to_string();
    match s.status {
        429 if s.kind.as_deref() == Some("insufficient_quota") || s.code.as_deref() == Some("insufficient_quota") => {
            Failure::fatal(ProviderError::Unavailable(format!("the account's quota is used up ({described})")))
        }
        429 => Failure {
            error: ProviderError::RateLimited { retry_after: s.retry_after },
            retryable: true,
            retry_after: s.retry_after,
        },
        500..=599 => Failure {
            error: ProviderError::Unavailable(format!("the server failed ({described})")),
            retryable: true,
            retry_after: s.retry_after,
        },
        401 | 403 => Failure::fatal(ProviderError::Unavailable(format!(
            "the server refused our credentials; check `llm.api_key` ({described})"
        ))),
        404 => Failure::fatal(ProviderError::Unavailable(format!(
            "the server does not know this path or model; check `llm.base_url` and the model \
             names ({described})"
        ))),
        _ => Failure::fatal(ProviderError::Invalid(format!("the server refused the request ({described})"))),
    }
}

fn classify_reqwest(e: &reqwest::Error) -> Failure {
    if e.is_timeout() {
        return Failure::timeout();
    }
    if e.is_builder() {
        return Failure::fatal(ProviderError::Invalid(format!("the request could not be built: {}", without_url(e))));
    }
    if e.is_decode() {
        return Failure::fatal(ProviderError::BadResponse(format!("the answer could not be read: {}", without_url(e))));
    }
    // Connect errors, resets while sending or reading: another attempt may get through.
    Failure {
        error: ProviderError::Unavailable(format!("could not reach the server: {}", without_url(e))),
        retryable: true,
        retry_after: None,
    }
}

/// The error chain of a reqwest error without the URL (it is configuration, not secret, but
/// it makes messages long) and without anything from the bodies.
fn without_url(e: &reqwest::Error) -> String {
    let mut out = String::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    if source.is_none() {
        return "request failed".into();
    }
    while let Some(s) = source {
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn stream_error_kind(e: &async_openai::error::StreamError) -> String {
    match e {
        async_openai::error::StreamError::EventStream(m) => short(m),
        async_openai::error::StreamError::UnknownEvent(_) => "an unknown event".into(),
    }
}

/// A serde error without the values it quotes: `invalid type: string "…", expected u32`
/// becomes `invalid type, expected u32`, since the quoted value may be the model's answer.
pub(crate) fn describe_json_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let cut = |prefix: &str| -> Option<String> {
        let rest = msg.strip_prefix(prefix)?;
        let expected = rest.find(", expected").map_or("", |i| &rest[i..]);
        Some(format!("{}{}", prefix.trim_end_matches(':'), expected))
    };
    cut("invalid type:")
        .or_else(|| cut("invalid value:"))
        .or_else(|| cut("invalid length"))
        .unwrap_or_else(|| short(&msg))
}

/// Bound a server-chosen string before it goes into a message.
fn short(s: &str) -> String {
    const MAX: usize = 120;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_errors_drop_the_quoted_value() {
        let e = serde_json::from_str::<u32>("\"the patient's diagnosis\"").expect_err("a string is not a u32");
        let described = describe_json_error(&e);
        assert!(!described.contains("diagnosis"), "{described}");
        assert!(described.starts_with("invalid type"), "{described}");
        assert!(described.contains("expected u32"), "{described}");
    }

    #[test]
    fn only_429_and_5xx_are_retried() {
        let status = |status| HttpStatusError { status, retry_after: None, kind: None, code: None, param: None };
        assert!(classify_status(status(429)).retryable);
        assert!(classify_status(status(500)).retryable);
        assert!(classify_status(status(503)).retryable);
        for s in [400, 401, 403, 404, 408, 413, 422] {
            assert!(!classify_status(status(s)).retryable, "{s}");
        }
        let quota = HttpStatusError { kind: Some("insufficient_quota".into()), ..status(429) };
        assert!(!classify_status(quota).retryable);
    }
}
