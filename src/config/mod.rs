//! Configuration: the validated form of `draftwatch.toml`.
//!
//! This module turns one TOML file into a [`Config`] whose values already satisfy every
//! documented constraint, so the rest of the program never re-checks them. It does not
//! watch the file or apply a new configuration to a running process.

mod error;
mod fields;
mod interpolate;
mod load;
mod rule_section;
mod sink_section;
pub(crate) mod suggest;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

pub use error::ConfigError;
pub use load::{LoadedConfig, load, parse};

use crate::akua::DraftStatus;
use crate::rules::Rule;
use crate::secret::Secret;

/// The Akua base URL used when `akua.base_url` is absent.
pub const DEFAULT_BASE_URL: &str = "https://api.akua.dev/v1";

/// A whole, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub akua: AkuaConfig,
    pub poll: PollConfig,
    pub state: StateConfig,
    pub delivery: DeliveryConfig,
    /// Keyed by the name after `sinks.`; every rule's sinks are keys of this map.
    pub sinks: BTreeMap<String, SinkConfig>,
    /// The retry settings of each sink: `delivery` with the sink's own `retry_for` and
    /// `max_backoff` applied. Has exactly the keys of `sinks`.
    pub sink_delivery: BTreeMap<String, DeliveryConfig>,
    /// Non-empty, in file order.
    pub rules: Vec<Rule>,
    /// `[stuck]`: how long a draft may stay in a status before a stuck event. Every key is a
    /// documented non-terminal status and every duration is at least one second.
    pub stuck: BTreeMap<DraftStatus, Duration>,
    /// `None` means no HTTP server.
    pub server: Option<ServerConfig>,
}

/// `[akua]`: how to reach the API and what to list.
#[derive(Clone, Debug)]
pub struct AkuaConfig {
    /// An http or https URL without a query, and without a trailing slash so that paths
    /// can be appended as `{base_url}/order_drafts`. N.B. a URL with no path at all still
    /// prints as `https://host/`, because the `url` crate always keeps the root slash.
    pub base_url: Url,
    pub token: Secret<String>,
    /// Sent as the `akua-context` header; 1 to 53 characters when present.
    pub context: Option<String>,
    /// `None` means every offer from `GET /offers`. Never an empty list.
    pub offers: Option<Vec<String>>,
    /// 1..=100.
    pub page_size: u8,
    pub request_timeout: Duration,
}

/// `[poll]`: when to sweep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollConfig {
    /// At least one second.
    pub interval: Duration,
    /// Upper bound of a random extra delay added to each cycle; zero disables it.
    pub jitter: Duration,
    /// Whether the first listing of an offer reports its drafts as created.
    pub notify_existing: bool,
    pub mode: PollMode,
    /// In active mode, how often a full sweep runs anyway. Positive.
    pub full_every: Duration,
}

/// The set of drafts one sweep lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PollMode {
    /// Every draft of every offer, each cycle.
    #[default]
    Full,
    /// Only non-terminal drafts, one query per status and offer, plus a read by id of each
    /// known draft that left that set; a full sweep every `full_every`.
    Active,
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            interval: Duration::from_secs(30),
            jitter: Duration::ZERO,
            notify_existing: false,
            mode: PollMode::Full,
            full_every: Duration::from_secs(3600),
        }
    }
}

/// `[state]`: where the snapshot and the outbox live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateConfig {
    /// Relative paths are resolved against the working directory, not the config file's
    /// directory, so containers and systemd units can keep state in their working
    /// directory.
    pub path: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig { path: PathBuf::from("draftwatch-state") }
    }
}

/// `[server]`: the HTTP endpoint for probes, status and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Port 0 takes a free port from the system; the bound address is logged at start.
    pub listen: SocketAddr,
}

/// `[delivery]`: how long and how patiently notifications are retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Keep retrying a notification this long after it was created. Default 24 hours.
    pub retry_for: Duration,
    /// Maximum wait between two attempts. Default 10 minutes.
    pub max_backoff: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig { retry_for: Duration::from_secs(24 * 3600), max_backoff: Duration::from_secs(600) }
    }
}

/// One `[sinks.NAME]` table.
#[derive(Clone, Debug)]
pub enum SinkConfig {
    Slack(SlackSinkConfig),
    Webhook(WebhookSinkConfig),
    Console,
}

impl SinkConfig {
    /// Returns the `type` value that selects this sink kind.
    pub fn type_name(&self) -> &'static str {
        match self {
            SinkConfig::Slack(_) => "slack",
            SinkConfig::Webhook(_) => "webhook",
            SinkConfig::Console => "console",
        }
    }
}

/// A Slack incoming webhook.
#[derive(Clone, Debug)]
pub struct SlackSinkConfig {
    /// An http or https URL. Secret, because anyone holding it can post to the channel.
    pub webhook_url: Secret<Url>,
}

/// A generic webhook receiver.
#[derive(Clone, Debug)]
pub struct WebhookSinkConfig {
    /// An http or https URL; secret because it often embeds a token.
    pub url: Secret<Url>,
    /// The HMAC key, decoded from `whsec_<base64>`; 24 to 64 bytes.
    pub signing_key: Option<Secret<Vec<u8>>>,
    /// Extra headers. Names are lowercase valid header names other than `content-type`,
    /// `user-agent` and `webhook-*`; values are valid header values.
    pub headers: Vec<(String, Secret<String>)>,
    pub timeout: Duration,
}
