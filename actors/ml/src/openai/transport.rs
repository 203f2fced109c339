//! The HTTP layer under async-openai: the reqwest client, the headers and
//! query each request carries, the service that turns a non-2xx answer into an error that
//! keeps `Retry-After`, and the retry loop with exponential backoff.
//!
//! async-openai's own retry layer is replaced (installing a service replaces it), so that
//! retries follow `llm.max_retries` and `llm.backoff_base_ms` and happen in one place.

use std::future::Future;
use std::time::Duration;

use async_openai::config::Config;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::config::OpenAiConfig;
use super::error::{Failure, HttpStatusError, ProviderError};

/// Longest backoff between two attempts, whatever `backoff_base_ms` and the attempt number.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Longest `Retry-After` we wait out; a server asking for more gets `RateLimited` at once
/// rather than a request that hangs for minutes holding a concurrency slot.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Most bytes of an error body read to find its `type` and `code`.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The headers and query string every request carries (async-openai's `Config`).
pub(crate) struct WireConfig {
    base_url: String,
    headers: HeaderMap,
    query: Vec<(&'static str, String)>,
    /// async-openai's `Config` must hand out a key; we keep ours in `headers`, marked
    /// sensitive so that reqwest and hyper never print it.
    api_key: SecretString,
}

impl WireConfig {
    pub fn new(cfg: &OpenAiConfig, base_url: &str) -> Result<Self, ProviderError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = &cfg.api_key {
            let (name, value) = match cfg.api_version {
                Some(_) => (HeaderName::from_static("api-key"), key.expose_secret().to_owned()),
                None => (AUTHORIZATION, format!("Bearer {}", key.expose_secret())),
            };
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                ProviderError::Invalid("`llm.api_key` holds characters that cannot go in an HTTP header".into())
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let query = cfg.api_version.iter().map(|v| ("api-version", v.clone())).collect();
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            headers,
            query,
            api_key: SecretString::from(String::new()),
        })
    }
}

impl Config for WireConfig {
    fn headers(&self) -> HeaderMap {
        self.headers.clone()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    fn query(&self) -> Vec<(&str, &str)> {
        self.query.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    fn api_base(&self) -> &str {
        &self.base_url
    }

    fn api_key(&self) -> &SecretString {
        &self.api_key
    }
}

/// The reqwest client: connect timeout, a user agent, and TLS by rustls with its default
/// provider (aws-lc-rs) and the system's trusted roots (rustls-platform-verifier). No
/// process-wide provider has to be installed first: with reqwest's `rustls-no-provider`
/// (to use ring) every reqwest client in the process, ours or not, would panic until one is.
pub(crate) fn http_client(cfg: &OpenAiConfig) -> Result<reqwest::Client, ProviderError> {
    reqwest::Client::builder()
        .connect_timeout(cfg.timeout())
        .user_agent(concat!("careport/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ProviderError::Unavailable(format!("could not set up HTTP and TLS: {e}")))
}

/// Send one request; a non-2xx answer becomes an [`HttpStatusError`] (boxed in
/// `OpenAIError::Boxed`) carrying the status, `Retry-After` and the error body's `type`,
/// `code` and `param`.
pub(crate) async fn send(http: reqwest::Client, factory: HttpRequestFactory) -> Result<reqwest::Response, OpenAIError> {
    let request = factory.build().await?;
    let response = http.execute(request).await?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = retry_after(response.headers());
    let body = read_bounded(response, MAX_ERROR_BODY).await;
    let api = serde_json::from_slice::<ErrorBody>(&body).ok().map(|b| b.error);
    let (kind, code, param) = api.map_or((None, None, None), |e| (e.r#type, e.code.map(code_string), e.param));
    Err(OpenAIError::Boxed(Box::new(HttpStatusError { status: status.as_u16(), retry_after, kind, code, param })))
}

/// `{"error": {"type": …, "code": …, "param": …}}`, leniently: servers differ in the code's
/// type, and the `message` is left out on purpose.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorFields,
}

#[derive(Deserialize)]
struct ErrorFields {
    #[serde(default)]
    r#type: Option<String>,
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    param: Option<String>,
}

fn code_string(v: serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

async fn read_bounded(mut response: reqwest::Response, max: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < max {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(max);
    body
}

/// `Retry-After` in seconds (the HTTP-date form is rare from these servers and ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    value
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
        .or_else(|| value.parse::<f64>().ok().and_then(|s| Duration::try_from_secs_f64(s).ok()))
}

/// Retry policy: how many retries, how long to wait, and how long one attempt may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retry {
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub timeout: Duration,
}

impl Retry {
    /// The delay before retry number `retry` (0 for the first): base·2^retry with ±20 %
    /// jitter, capped at [`MAX_BACKOFF`]; at least the server's `Retry-After`.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self.backoff_base.saturating_mul(2u32.saturating_pow(retry)).min(MAX_BACKOFF);
        let jittered = exp.mul_f64(rand::random_range(0.8..=1.2)).min(MAX_BACKOFF);
        retry_after.map_or(jittered, |ra| ra.max(jittered))
    }

    /// Run `attempt` until it succeeds, fails for good, or the retries are spent. Each
    /// attempt is bounded by the timeout.
    pub async fn run<T, F, Fut>(&self, what: &'static str, mut attempt: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut retry = 0;
        loop {
            let failure = match tokio::time::timeout(self.timeout, attempt()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(failure)) => failure,
                Err(_elapsed) => Failure::timeout(),
            };
            if !failure.retryable || retry >= self.max_retries {
                return Err(failure.error);
            }
            if failure.retry_after.is_some_and(|ra| ra > MAX_RETRY_AFTER) {
                return Err(failure.error);
            }
            let delay = self.delay(retry, failure.retry_after);
            tracing::warn!(
                request = what,
                retry = retry + 1,
                of = self.max_retries,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %failure.error,
                "retrying the language model provider"
            );
            tokio::time::sleep(delay).await;
            retry += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let retry =
            Retry { max_retries: 10, backoff_base: Duration::from_millis(100), timeout: Duration::from_secs(1) };
        for _ in 0..50 {
            let first = retry.delay(0, None);
            assert!(first >= Duration::from_millis(80) && first <= Duration::from_millis(120));
            let third = retry.delay(2, None);
            assert!(third >= Duration::from_millis(320) && third <= Duration::from_millis(480));
            assert!(retry.delay(30, None) <= MAX_BACKOFF);
        }
        assert!(retry.delay(0, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
    }

    #[test]
    fn retry_after_reads_seconds() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("0.5"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(500)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), None);
    }
}
