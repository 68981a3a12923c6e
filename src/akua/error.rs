//! Errors from the Akua API, classified so callers can tell a retry from a fix.

use std::fmt;

/// The request an error belongs to: the endpoint, and the offer when one was listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestContext {
    /// Method and path template, such as `GET /order_drafts`.
    pub endpoint: &'static str,
    pub offer: Option<String>,
}

impl fmt::Display for RequestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.endpoint)?;
        if let Some(offer) = &self.offer {
            write!(f, " for offer {offer}")?;
        }
        Ok(())
    }
}

/// A failed Akua API request. The token never appears in any variant.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401 or 403: the token or the workspace context is not accepted.
    #[error("akua rejected the token with HTTP {status} on {context}: {message}; check akua.token and akua.context")]
    Unauthorized { status: u16, context: RequestContext, message: String },

    /// Any other non-2xx response, with the message read from Akua's error envelope.
    #[error("akua answered HTTP {status} on {context}: {message}")]
    Status { status: u16, context: RequestContext, message: String },

    /// The request did not complete: connection refused, DNS, TLS or timeout.
    #[error("request to akua failed on {context}: {detail}")]
    Transport { context: RequestContext, detail: String },

    /// A 2xx response whose body is not the documented shape.
    #[error("akua sent an invalid response on {context}: {detail}")]
    InvalidResponse { context: RequestContext, detail: String },

    /// The listing did not end within the page bound, or a cursor came back twice.
    #[error("akua listing on {context} did not end: {detail}")]
    RunawayListing { context: RequestContext, detail: String },
}

impl ApiError {
    /// Returns the HTTP status of the API's response, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Unauthorized { status, .. } | ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Returns whether the error names a problem with the token rather than the service.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, ApiError::Unauthorized { .. })
    }
}

/// The most of an unrecognised error body kept in a message, in characters.
const RAW_BODY_LIMIT: usize = 300;

/// Reads the human message out of an error body.
///
/// Akua documents `{"success": false, "errors": [{"code", "message"}], "result": {}}`, and
/// one older page shows `{"error": {"code", "message"}}`. Anything else is returned raw,
/// cut to [`RAW_BODY_LIMIT`] characters.
pub fn error_message(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let entries: Vec<&serde_json::Value> = match (value.get("errors"), value.get("error")) {
            (Some(serde_json::Value::Array(errors)), _) => errors.iter().collect(),
            (_, Some(error)) if error.is_object() => vec![error],
            _ => Vec::new(),
        };
        let messages: Vec<String> = entries.iter().filter_map(|entry| describe_entry(entry)).collect();
        if !messages.is_empty() {
            return messages.join("; ");
        }
    }

    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "empty response body".to_owned();
    }
    truncate_chars(text, RAW_BODY_LIMIT)
}

fn describe_entry(entry: &serde_json::Value) -> Option<String> {
    let message = entry.get("message")?.as_str()?;
    let message = truncate_chars(message, RAW_BODY_LIMIT);
    Some(match entry.get("code") {
        Some(code) if !code.is_null() => format!("{message} (code {code})"),
        _ => message,
    })
}

/// Cuts `text` to at most `limit` characters, marking a cut with `…`.
pub fn truncate_chars(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        None => text.to_owned(),
        Some((index, _)) => format!("{}…", &text[..index]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_reads_envelope() {
        let body =
            br#"{"success": false, "errors": [{"code": 10000, "message": "Authentication error"}], "result": {}}"#;
        assert_eq!(error_message(body), "Authentication error (code 10000)");
    }

    #[test]
    fn error_message_reads_older_shape() {
        let body = br#"{"error": {"code": "not_found", "message": "no such draft"}}"#;
        assert_eq!(error_message(body), r#"no such draft (code "not_found")"#);
    }

    #[test]
    fn error_message_falls_back_to_raw() {
        assert_eq!(error_message(b"<html>bad gateway</html>"), "<html>bad gateway</html>");
        assert_eq!(error_message(b""), "empty response body");
        let long = "é".repeat(400);
        let message = error_message(long.as_bytes());
        assert_eq!(message.chars().count(), RAW_BODY_LIMIT + 1);
        assert!(message.ends_with('…'));
    }

    #[test]
    fn unauthorized_names_offer_and_fix() {
        let error = ApiError::Unauthorized {
            status: 401,
            context: RequestContext { endpoint: "GET /order_drafts", offer: Some("offer_1".into()) },
            message: "bad token".into(),
        };
        let text = error.to_string();
        assert!(text.contains("401"), "{text}");
        assert!(text.contains("offer_1"), "{text}");
        assert!(text.contains("akua.token"), "{text}");
    }
}
