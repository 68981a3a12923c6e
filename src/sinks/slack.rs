//! Delivery to a Slack incoming webhook, and what Slack's error responses mean.
//!
//! Slack responds to a rejected message with a short error code as the body, such as
//! `no_service` with HTTP 404. Codes that mean the webhook or its channel is unusable are
//! permanent whatever the status, and the reason names the code.

use std::time::{Duration, SystemTime};

use reqwest::header::CONTENT_TYPE;
use serde_json::Value;
use url::Url;

use crate::render;
use crate::sinks::DeliveryError;
use crate::sinks::http::{self, Rejection};

const KIND: &str = "slack";

/// Total time one Slack request may take, from connecting to reading the response.
pub const SLACK_TIMEOUT: Duration = Duration::from_secs(15);

/// Error codes after which the same message can never be posted, with what they mean.
const PERMANENT_CODES: &[(&str, &str)] = &[
    ("invalid_payload", "Slack could not read the message"),
    ("channel_not_found", "the webhook's channel no longer exists; create a new webhook and update webhook_url"),
    ("channel_is_archived", "the webhook's channel is archived; unarchive it or update webhook_url"),
    ("no_service", "the incoming webhook is disabled or was removed; create a new one and update webhook_url"),
    ("invalid_token", "the webhook URL's token is not valid; create a new webhook and update webhook_url"),
    ("action_prohibited", "an admin restricted posting to the webhook's channel"),
];

/// Posts the Slack payload of `n` to `url`, once.
pub async fn deliver(
    client: &reqwest::Client,
    url: &Url,
    timeout: Duration,
    n: &crate::sinks::Notification,
    now: SystemTime,
) -> Result<(), DeliveryError> {
    // N.B. serializing a `Value` into memory cannot fail.
    let body = serde_json::to_vec(&render::slack::payload(n)).expect("slack payload serializes");
    let request = client.post(url.clone()).header(CONTENT_TYPE, "application/json").body(body);

    match http::send(KIND, url, request, timeout, now).await? {
        Ok(()) => Ok(()),
        Err(rejection) => Err(classify(rejection)),
    }
}

/// Classifies a non-2xx Slack response: a known permanent error code first, then the
/// status. A retryable response without `Retry-After` may carry `retry_after` in a JSON
/// body instead.
fn classify(rejection: Rejection) -> DeliveryError {
    let code = error_code(&rejection.body);
    if let Some((code, meaning)) = PERMANENT_CODES.iter().find(|(known, _)| Some(*known) == code.as_deref()) {
        let status = rejection.status;
        return http::permanent(format!("slack rejected the message with {code} (HTTP {status}): {meaning}"));
    }

    let body_hint = body_retry_after(&rejection.body);
    let mut err = http::classify_status(KIND, rejection);
    if let DeliveryError::Retryable { retry_after, .. } = &mut err {
        *retry_after = retry_after.or(body_hint);
    }
    err
}

/// Reads Slack's error code from a plain-text body (`no_service`) or a JSON body
/// (`{"ok": false, "error": "no_service"}`).
fn error_code(body: &str) -> Option<String> {
    let body = body.trim();
    if body.starts_with('{') {
        let value: Value = serde_json::from_str(body).ok()?;
        return value.get("error").and_then(Value::as_str).map(str::to_owned);
    }

    let is_code = !body.is_empty() && body.bytes().all(|byte| byte.is_ascii_lowercase() || byte == b'_');
    is_code.then(|| body.to_owned())
}

/// Reads `retry_after` (whole seconds) from a JSON body.
fn body_retry_after(body: &str) -> Option<Duration> {
    let value: Value = serde_json::from_str(body.trim()).ok()?;
    value.get("retry_after").and_then(Value::as_u64).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;

    use super::*;

    fn rejection(status: u16, body: &str, retry_after: Option<Duration>) -> Rejection {
        Rejection { status: StatusCode::from_u16(status).unwrap(), retry_after, body: body.to_owned() }
    }

    #[test]
    fn codes_are_permanent() {
        for (code, _) in PERMANENT_CODES {
            let err = classify(rejection(500, code, None));
            assert!(!err.is_retryable(), "{code}");
            assert!(err.to_string().contains(code), "{err}");
        }
    }

    #[test]
    fn json_error_code_read() {
        let err = classify(rejection(404, r#"{"ok":false,"error":"channel_not_found"}"#, None));
        assert!(err.to_string().starts_with("slack rejected the message with channel_not_found (HTTP 404 Not Found)"));
    }

    #[test]
    fn unknown_code_uses_status() {
        assert!(classify(rejection(500, "rollup_error", None)).is_retryable());
        assert!(!classify(rejection(400, "something_new", None)).is_retryable());
    }

    #[test]
    fn body_retry_after_hint() {
        let err = classify(rejection(429, r#"{"ok":false,"error":"ratelimited","retry_after":12}"#, None));
        assert_eq!(
            err,
            DeliveryError::Retryable { reason: err.to_string(), retry_after: Some(Duration::from_secs(12)) }
        );

        let header_first = classify(rejection(429, r#"{"retry_after":12}"#, Some(Duration::from_secs(3))));
        let DeliveryError::Retryable { retry_after, .. } = header_first else { panic!("429 is retryable") };
        assert_eq!(retry_after, Some(Duration::from_secs(3)));
    }
}
