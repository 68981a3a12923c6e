//! The HTTP side of delivery: the shared client, one POST, and how a response or a
//! transport error is classified.
//!
//! Every destination URL is a secret, so no text built here may contain it. reqwest
//! errors embed the request URL, and this module strips it with `without_url` before
//! reading them. It also removes the URL from response bodies before quoting them.
//! Payloads, headers and what a sink-specific response body means are left to the sinks.

use std::error::Error as _;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use reqwest::header::RETRY_AFTER;
use reqwest::{RequestBuilder, Response, StatusCode, redirect};
use url::Url;

use crate::render::escape::{single_line, truncate_chars};
use crate::sinks::DeliveryError;

/// Sent with every request, as `draftwatch/<crate version>`.
pub const USER_AGENT: &str = concat!("draftwatch/", env!("CARGO_PKG_VERSION"));

/// How long the client waits for a TCP (and TLS) connection before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many bytes of an error response are read.
const BODY_READ_MAX: usize = 4096;

/// At most this many chars of an error response are quoted in a reason.
const EXCERPT_MAX: usize = 200;

/// Maximum length of a reason in chars, so a retried failure cannot grow the outbox without bound.
const REASON_MAX: usize = 500;

/// Returns the HTTP client that every sink shares.
///
/// The client is built on first use and cloned afterwards (a clone shares the connection
/// pool). It never follows redirects, sends [`USER_AGENT`] and gives up connecting after
/// [`CONNECT_TIMEOUT`]. Each sink sets its own total timeout per request. The client uses
/// the system proxy settings (`HTTPS_PROXY`, `NO_PROXY` and the like).
pub fn http_client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();

    CLIENT
        .get_or_init(|| {
            // N.B. building fails only on a broken TLS or system setup. No retry could fix
            // that, so this panics with the cause instead of returning an error.
            reqwest::Client::builder()
                .redirect(redirect::Policy::none())
                .user_agent(USER_AGENT)
                .connect_timeout(CONNECT_TIMEOUT)
                .build()
                .unwrap_or_else(|err| panic!("failed to build the HTTP client: {}", describe(&err.without_url())))
        })
        .clone()
}

/// A response that was not a 2xx, reduced to what classification needs.
#[derive(Debug)]
pub struct Rejection {
    pub status: StatusCode,
    /// The `Retry-After` header, already turned into a wait.
    pub retry_after: Option<Duration>,
    /// The start of the body as text, with the destination URL removed.
    pub body: String,
}

/// Sends one request with a total `timeout` and returns `Ok` for a 2xx response.
///
/// Any other response comes back as a [`Rejection`] for the sink to classify. A transport
/// error (connection failure, timeout, broken response) becomes a retryable
/// [`DeliveryError`] whose reason names `kind` but never `url`.
pub async fn send(
    kind: &str,
    url: &Url,
    request: RequestBuilder,
    timeout: Duration,
    now: SystemTime,
) -> Result<Result<(), Rejection>, DeliveryError> {
    let response = match request.timeout(timeout).send().await {
        Ok(response) => response,
        Err(err) => return Err(transport_error(kind, url, timeout, err)),
    };

    let status = response.status();
    if status.is_success() {
        return Ok(Ok(()));
    }

    let retry_after = response.headers().get(RETRY_AFTER).and_then(|value| value.to_str().ok());
    let retry_after = retry_after.and_then(|value| parse_retry_after(value, now));
    let body = read_excerpt(response, url).await;
    Ok(Err(Rejection { status, retry_after, body }))
}

/// Classifies a non-2xx response by its status alone.
///
/// 3xx is permanent, because redirects are not followed. 408, 425, 429 and 5xx are
/// retryable with the receiver's `Retry-After`, and every other status is permanent.
pub fn classify_status(kind: &str, rejection: Rejection) -> DeliveryError {
    let Rejection { status, retry_after, body } = rejection;
    let returned = returned(kind, status, &body);

    if status.is_redirection() {
        let reason = format!("{returned}; redirects are not followed, so set the sink's URL to the final address");
        return permanent(reason);
    }
    if is_retryable_status(status) {
        return DeliveryError::Retryable { reason: cap(returned), retry_after };
    }
    permanent(returned)
}

/// Returns whether another attempt may succeed after this status: 408, 425, 429 or 5xx.
pub fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 425 | 429) || status.is_server_error()
}

/// Formats `{kind} receiver returned HTTP {status}` and the body excerpt, if any.
pub fn returned(kind: &str, status: StatusCode, body: &str) -> String {
    if body.is_empty() {
        format!("{kind} receiver returned HTTP {status}")
    } else {
        format!("{kind} receiver returned HTTP {status}: {body}")
    }
}

pub fn permanent(reason: String) -> DeliveryError {
    DeliveryError::Permanent { reason: cap(reason) }
}

fn cap(reason: String) -> String {
    truncate_chars(&reason, REASON_MAX)
}

/// Reads a `Retry-After` value: delta seconds (`120`) or an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`), turned into a wait from `now`.
///
/// A date in the past gives a zero wait. Any other value returns `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        return value.parse().ok().map(Duration::from_secs);
    }

    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Turns a failed send into a retryable error naming what failed, without the URL.
fn transport_error(kind: &str, url: &Url, timeout: Duration, err: reqwest::Error) -> DeliveryError {
    let err = err.without_url();
    let reason = if err.is_timeout() {
        format!("{kind} request timed out after {}", humantime::format_duration(timeout))
    } else if err.is_connect() {
        format!("{kind} connection failed: {}", describe(&err))
    } else {
        format!("{kind} request failed: {}", describe(&err))
    };

    DeliveryError::Retryable { reason: cap(redact(&reason, url)), retry_after: None }
}

/// Joins an error and its sources with `: `.
fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // N.B. some layers repeat their source's message in their own.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    single_line(&text)
}

/// Reads at most [`BODY_READ_MAX`] bytes of `response` and returns them as one short
/// line: whitespace runs collapsed, control characters escaped, the URL removed.
async fn read_excerpt(mut response: Response, url: &Url) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < BODY_READ_MAX {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => break,
            // N.B. the status alone classifies the response, so a body that breaks off
            // is quoted as far as it arrived.
            Err(_) => break,
        }
    }
    bytes.truncate(BODY_READ_MAX);

    let text = String::from_utf8_lossy(&bytes);
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate_chars(&single_line(&redact(&collapsed, url)), EXCERPT_MAX)
}

/// Replaces the URL, and its path and query when they are not trivial, with `[redacted]`.
///
/// Webhook URLs usually carry their token in the path or the query, and a receiver may
/// echo either back in an error page.
pub fn redact(text: &str, url: &Url) -> String {
    let mut out = text.replace(url.as_str(), "[redacted]");
    let path = url.path();
    if path.len() > 1 {
        out = out.replace(path, "[redacted]");
    }
    if let Some(query) = url.query().filter(|query| !query.is_empty()) {
        out = out.replace(query, "[redacted]");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn retry_after_delta_seconds() {
        assert_eq!(parse_retry_after("7", at(0)), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 120 ", at(0)), Some(Duration::from_secs(120)));
    }

    #[test]
    fn retry_after_http_date() {
        // Wed, 21 Oct 2015 07:28:00 GMT is Unix second 1445412480.
        let value = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(parse_retry_after(value, at(1_445_412_480 - 90)), Some(Duration::from_secs(90)));
        assert_eq!(parse_retry_after(value, at(1_445_412_480 + 90)), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_rejects_garbage() {
        assert_eq!(parse_retry_after("soon", at(0)), None);
        assert_eq!(parse_retry_after("-5", at(0)), None);
        assert_eq!(parse_retry_after("", at(0)), None);
        assert_eq!(parse_retry_after("1.5", at(0)), None);
    }

    #[test]
    fn status_classes() {
        for code in [408, 425, 429, 500, 502, 503, 504, 599] {
            assert!(is_retryable_status(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [300, 301, 400, 401, 403, 404, 410, 413, 422] {
            assert!(!is_retryable_status(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }

    #[test]
    fn classify_redirect_is_permanent() {
        let rejection = Rejection { status: StatusCode::FOUND, retry_after: None, body: String::new() };
        let err = classify_status("webhook", rejection);
        assert!(!err.is_retryable());
        assert!(err.to_string().starts_with("webhook receiver returned HTTP 302 Found; redirects are not followed"));
    }

    #[test]
    fn redact_removes_url_parts() {
        let url = Url::parse("https://hooks.example.com/services/T0/B0/tok3n?key=abc123").unwrap();
        let text = format!("echo {} and /services/T0/B0/tok3n and key=abc123", url.as_str());
        let redacted = redact(&text, &url);
        assert!(!redacted.contains("tok3n"), "{redacted}");
        assert!(!redacted.contains("abc123"), "{redacted}");
    }

    #[test]
    fn user_agent_names_version() {
        assert_eq!(USER_AGENT, format!("draftwatch/{}", env!("CARGO_PKG_VERSION")));
    }
}
