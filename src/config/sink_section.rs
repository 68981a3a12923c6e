//! `[sinks.NAME]` tables: the destinations notifications go to.
//!
//! Each sink is checked against the keys of its `type`, and its retry settings are the
//! global `[delivery]` ones with the sink's own `retry_for` and `max_backoff` applied.
//! Whether a rule uses a sink is checked by the caller.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{HeaderName, HeaderValue};
use toml::Value;

use super::error::ConfigError;
use super::fields::{Section, Text, http_url, wrong_type};
use super::load::read_delivery;
use super::suggest;
use super::{DeliveryConfig, SinkConfig, SlackSinkConfig, WebhookSinkConfig};
use crate::secret::Secret;

const SINK_TYPES: &[&str] = &["slack", "webhook", "console"];
const SLACK_KEYS: &[&str] = &["type", "webhook_url", "webhook_url_file", "retry_for", "max_backoff"];
const WEBHOOK_KEYS: &[&str] =
    &["type", "url", "url_file", "secret", "secret_file", "headers", "timeout", "retry_for", "max_backoff"];
const CONSOLE_KEYS: &[&str] = &["type", "retry_for", "max_backoff"];

const DEFAULT_WEBHOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
const SECRET_PREFIX: &str = "whsec_";
/// Accepted signing key lengths in bytes, after base64 decoding.
const SIGNING_KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// Every configured sink with its effective retry settings; both maps have the same keys.
pub(super) struct Sinks {
    pub(super) sinks: BTreeMap<String, SinkConfig>,
    pub(super) delivery: BTreeMap<String, DeliveryConfig>,
}

/// Reads every `[sinks.NAME]` table; a missing `[sinks]` gives no sinks.
pub(super) fn read_sinks(root: &Section, global: &DeliveryConfig) -> Result<Sinks, ConfigError> {
    let mut sinks = Sinks { sinks: BTreeMap::new(), delivery: BTreeMap::new() };
    let Some(section) = root.table("sinks")? else {
        return Ok(sinks);
    };

    for (name, value) in section.table {
        let path = section.path.key(name);
        let is_valid_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !is_valid_name {
            let message = "invalid sink name; use letters, digits, `_` and `-` only, \
                           because outbox ids join the event id and the sink name with `:`";
            return Err(ConfigError::at(&path, message));
        }
        let Value::Table(table) = value else {
            return Err(wrong_type(&path, "a table, written as [sinks.NAME] with a `type`", value));
        };

        let sink = Section::new(path, table, section.ctx);
        let (config, delivery) = read_sink(&sink, global)?;
        sinks.sinks.insert(name.clone(), config);
        sinks.delivery.insert(name.clone(), delivery);
    }
    Ok(sinks)
}

fn read_sink(sink: &Section, global: &DeliveryConfig) -> Result<(SinkConfig, DeliveryConfig), ConfigError> {
    let Some(kind) = sink.string("type")? else {
        let message = format!("missing; set `type` to one of {}", suggest::list(SINK_TYPES));
        return Err(ConfigError::at(&sink.path.key("type"), message));
    };
    let keys = match kind.value.as_str() {
        "slack" => SLACK_KEYS,
        "webhook" => WEBHOOK_KEYS,
        "console" => CONSOLE_KEYS,
        _ => {
            let shown = sink.ctx.shown(&kind.path, &kind.value);
            let hint = suggest::hint(&kind.value, SINK_TYPES);
            return Err(ConfigError::at(&kind.path, format!("{shown} is not a sink type{hint}")));
        }
    };
    check_sink_keys(sink, &kind.value, keys)?;

    let delivery = read_delivery(sink, global)?;
    let config = match kind.value.as_str() {
        "slack" => SinkConfig::Slack(read_slack(sink)?),
        "webhook" => SinkConfig::Webhook(read_webhook(sink)?),
        _ => SinkConfig::Console,
    };
    Ok((config, delivery))
}

/// Rejects keys that the sink's type does not take, naming the type that does take them.
fn check_sink_keys(sink: &Section, kind: &str, keys: &[&str]) -> Result<(), ConfigError> {
    let Some(unknown) = sink.table.keys().find(|key| !keys.contains(&key.as_str())) else {
        return Ok(());
    };
    let path = sink.path.key(unknown);

    if let Some(close) = suggest::closest(unknown, keys.iter().copied()) {
        return Err(ConfigError::at(&path, format!("unknown key for a {kind} sink; did you mean `{close}`?")));
    }
    let owner = [("slack", SLACK_KEYS), ("webhook", WEBHOOK_KEYS)]
        .into_iter()
        .find(|(_, other_keys)| other_keys.contains(&unknown.as_str()));
    let message = match owner {
        Some((owner, _)) => format!("only {owner} sinks take this key, and this sink's type is `{kind}`"),
        None => format!("unknown key for a {kind} sink; expected one of {}", suggest::list(keys)),
    };
    Err(ConfigError::at(&path, message))
}

fn read_slack(sink: &Section) -> Result<SlackSinkConfig, ConfigError> {
    let text = sink.required_secret("webhook_url", "${SLACK_WEBHOOK_URL}")?;
    let webhook_url = http_url(sink.ctx, &text, true, "https://hooks.slack.com/services/...")?;
    Ok(SlackSinkConfig { webhook_url: Secret::new(webhook_url) })
}

fn read_webhook(sink: &Section) -> Result<WebhookSinkConfig, ConfigError> {
    let text = sink.required_secret("url", "https://ops.example.com/hooks/akua")?;
    let url = http_url(sink.ctx, &text, true, "https://ops.example.com/hooks/akua")?;

    let signing_key = sink.secret("secret")?.map(|secret| decode_signing_secret(&secret)).transpose()?;
    let headers = match sink.table("headers")? {
        Some(headers) => read_headers(&headers)?,
        None => Vec::new(),
    };
    let timeout = sink.positive_duration("timeout", "15s")?.unwrap_or(DEFAULT_WEBHOOK_TIMEOUT);

    Ok(WebhookSinkConfig { url: Secret::new(url), signing_key, headers, timeout })
}

/// Decodes a Standard Webhooks secret: `whsec_` and the standard base64 of the HMAC key.
fn decode_signing_secret(secret: &Text) -> Result<Secret<Vec<u8>>, ConfigError> {
    let fix = format!(
        "write `{SECRET_PREFIX}` followed by the standard base64 of {} to {} random bytes, \
         such as the output of `openssl rand -base64 32`",
        SIGNING_KEY_BYTES.start(),
        SIGNING_KEY_BYTES.end()
    );
    let not_shown = "(not shown, because it is secret)";

    let Some(encoded) = secret.value.strip_prefix(SECRET_PREFIX) else {
        let message = format!("the value {not_shown} does not start with `{SECRET_PREFIX}`; {fix}");
        return Err(ConfigError::at(&secret.path, message));
    };
    let Ok(key) = STANDARD.decode(encoded) else {
        let message = format!("the value {not_shown} is not valid standard base64 after `{SECRET_PREFIX}`; {fix}");
        return Err(ConfigError::at(&secret.path, message));
    };
    if !SIGNING_KEY_BYTES.contains(&key.len()) {
        let message = format!("the value {not_shown} decodes to {} bytes; {fix}", key.len());
        return Err(ConfigError::at(&secret.path, message));
    }
    Ok(Secret::new(key))
}

/// Reads extra webhook headers, rejecting names draftwatch or the HTTP client sets.
///
/// Names are returned in lowercase. Values are secrets, so no
/// error shows one.
fn read_headers(headers: &Section) -> Result<Vec<(String, Secret<String>)>, ConfigError> {
    let mut read: Vec<(String, Secret<String>)> = Vec::with_capacity(headers.table.len());
    for (name, value) in headers.table {
        let path = headers.path.key(name);
        let Ok(header_name) = HeaderName::from_bytes(name.as_bytes()) else {
            let message = "not a valid HTTP header name; use letters, digits and `-`, such as `X-Team`";
            return Err(ConfigError::at(&path, message));
        };
        let lowercase = header_name.as_str().to_owned();
        if is_reserved_header(&lowercase) {
            let message = "draftwatch sets this header itself (`content-type`, `user-agent`, `webhook-*`, \
                           and the HTTP client's `host` and `content-length`); remove it or use another name";
            return Err(ConfigError::at(&path, message));
        }
        if read.iter().any(|(existing, _)| *existing == lowercase) {
            let message = "names a header already set in this table (header names ignore case); keep one";
            return Err(ConfigError::at(&path, message));
        }

        let Value::String(text) = value else {
            return Err(wrong_type(&path, "a string", value));
        };
        if HeaderValue::from_str(text).is_err() {
            let message = "the value (not shown, because header values are secret) contains characters not allowed \
                           in an HTTP header, such as a line break; remove them";
            return Err(ConfigError::at(&path, message));
        }
        read.push((lowercase, Secret::new(text.clone())));
    }
    Ok(read)
}

fn is_reserved_header(lowercase: &str) -> bool {
    matches!(lowercase, "content-type" | "user-agent" | "host" | "content-length") || lowercase.starts_with("webhook-")
}
