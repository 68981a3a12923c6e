//! Delivery to a generic webhook receiver, signed per Standard Webhooks when a key is set.
//!
//! The body comes from [`render::webhook::body`] and is the same on every attempt. The
//! `webhook-timestamp` and `webhook-signature` headers are computed afresh for each
//! attempt, over exactly the bytes sent.

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use crate::config::WebhookSinkConfig;
use crate::render;
use crate::sinks::http;
use crate::sinks::signature::sign;
use crate::sinks::{DeliveryError, Notification};

const KIND: &str = "webhook";

/// Posts the webhook body of `n` to the configured URL, once.
pub async fn deliver(
    client: &reqwest::Client,
    sink_name: &str,
    config: &WebhookSinkConfig,
    n: &Notification,
    now: SystemTime,
) -> Result<(), DeliveryError> {
    let body = render::webhook::body(n);
    let headers = headers(sink_name, config, n, unix_secs(now), &body)?;

    let url = config.url.expose();
    let request = client.post(url.clone()).headers(headers).body(body);
    match http::send(KIND, url, request, config.timeout, now).await? {
        Ok(()) => Ok(()),
        Err(rejection) => Err(http::classify_status(KIND, rejection)),
    }
}

/// Builds the request headers: content type, `webhook-id`, `webhook-timestamp`, the
/// signature when a key is set, then the configured extra headers.
fn headers(
    sink_name: &str,
    config: &WebhookSinkConfig,
    n: &Notification,
    timestamp: i64,
    body: &[u8],
) -> Result<HeaderMap, DeliveryError> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));

    let id = HeaderValue::from_str(&n.event.id)
        .map_err(|_| http::permanent(format!("event id {:?} is not a valid webhook-id header value", n.event.id)))?;
    headers.insert(HeaderName::from_static("webhook-id"), id);
    headers.insert(HeaderName::from_static("webhook-timestamp"), HeaderValue::from(timestamp));

    if let Some(key) = &config.signing_key {
        let signature = sign(key.expose(), &n.event.id, timestamp, body);
        let mut value = HeaderValue::try_from(signature).expect("base64 is a valid header value");
        value.set_sensitive(true);
        headers.insert(HeaderName::from_static("webhook-signature"), value);
    }

    for (name, value) in &config.headers {
        let invalid = || {
            http::permanent(format!(
                "header {name:?} of sink {sink_name:?} has an invalid name or value; fix it in [sinks.{sink_name}] headers"
            ))
        };
        let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        let mut header_value = HeaderValue::from_str(value.expose()).map_err(|_| invalid())?;
        header_value.set_sensitive(true);
        headers.insert(header_name, header_value);
    }

    Ok(headers)
}

/// Returns whole Unix seconds, or 0 for a clock set before 1970.
fn unix_secs(now: SystemTime) -> i64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
}
