//! Delivery: sending one rendered notification to one destination.
//!
//! A sink makes exactly one attempt per call and classifies the outcome as delivered,
//! retryable or permanent. When to retry, and what is pending, belong to the outbox and
//! the delivery worker, not to this module. What a message looks like belongs to
//! [`crate::render`].
//!
//! Destination URLs, signing keys and extra header values are secrets. No reason,
//! log event or `Debug` output of this module contains them.

mod http;
mod slack;
mod webhook;

pub mod signature;

use std::fmt;
use std::io::Write;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::{SinkConfig, WebhookSinkConfig};
use crate::event::Event;
use crate::render;
use crate::secret::Secret;

pub use http::{CONNECT_TIMEOUT, USER_AGENT, http_client, parse_retry_after};
pub use slack::SLACK_TIMEOUT;

/// The unit the outbox hands a sink: the event and the rule credited for this sink.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub event: Event,
    /// Name of the first rule, in file order, that routed the event to this sink.
    pub rule: Option<String>,
}

/// The reason an attempt did not deliver.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth another attempt: connection errors, timeouts, 408, 425, 429 and 5xx.
    #[error("{reason}")]
    Retryable {
        reason: String,
        /// The receiver's own hint (`Retry-After`, Slack's `retry_after`), if it gave one.
        retry_after: Option<Duration>,
    },
    /// Another attempt would fail the same way: other 4xx, 3xx, or a rejected payload.
    #[error("{reason}")]
    Permanent { reason: String },
}

impl DeliveryError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, DeliveryError::Retryable { .. })
    }
}

/// One configured destination, ready to deliver. Clones share the HTTP connection pool.
#[derive(Clone)]
pub struct Sink {
    /// The name after `sinks.` in the configuration.
    name: String,
    target: Target,
}

#[derive(Clone)]
enum Target {
    Slack {
        webhook_url: Secret<Url>,
        client: reqwest::Client,
    },
    Webhook {
        config: WebhookSinkConfig,
        client: reqwest::Client,
    },
    Console,
    /// Prints the multi-line rendering of what Slack would show; used by `demo`.
    Terminal,
}

impl Sink {
    /// Creates the sink `[sinks.NAME]` describes. HTTP sinks send through `http`, which
    /// should be [`http_client`] outside tests.
    pub fn from_config(name: &str, config: &SinkConfig, http: reqwest::Client) -> Sink {
        let target = match config {
            SinkConfig::Slack(slack) => Target::Slack { webhook_url: slack.webhook_url.clone(), client: http },
            SinkConfig::Webhook(webhook) => Target::Webhook { config: webhook.clone(), client: http },
            SinkConfig::Console => Target::Console,
        };
        Sink { name: name.to_owned(), target }
    }

    /// Creates a sink that prints each notification as Slack would show it, for the demo.
    pub fn terminal(name: &str) -> Sink {
        Sink { name: name.to_owned(), target: Target::Terminal }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the configuration `type` of this sink: `slack`, `webhook` or `console`.
    pub fn kind(&self) -> &'static str {
        match self.target {
            Target::Slack { .. } => "slack",
            Target::Webhook { .. } => "webhook",
            Target::Console => "console",
            Target::Terminal => "terminal",
        }
    }

    /// Makes one delivery attempt of `n` and classifies its outcome.
    ///
    /// `now` is the attempt's time: webhooks send it as `webhook-timestamp` and sign it,
    /// and an HTTP-date `Retry-After` is measured from it. The console sink prints the
    /// one-line fallback and always succeeds.
    pub async fn deliver(&self, n: &Notification, now: SystemTime) -> Result<(), DeliveryError> {
        let outcome = match &self.target {
            Target::Slack { webhook_url, client } => {
                slack::deliver(client, webhook_url.expose(), SLACK_TIMEOUT, n, now).await
            }
            Target::Webhook { config, client } => webhook::deliver(client, &self.name, config, n, now).await,
            Target::Console => {
                print_console(&self.name, n);
                Ok(())
            }
            Target::Terminal => {
                println!("{}\n", crate::render::terminal::render(n));
                Ok(())
            }
        };

        if outcome.is_ok() {
            tracing::debug!(sink = %self.name, kind = self.kind(), event_id = %n.event.id, "delivered notification");
        }
        outcome
    }
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink").field("name", &self.name).field("kind", &self.kind()).finish_non_exhaustive()
    }
}

/// Prints the fallback line of `n` to stdout.
fn print_console(sink_name: &str, n: &Notification) {
    let line = render::text::fallback(n);
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        // N.B. a closed stdout is not worth a retry: the next line would fail the same way.
        tracing::warn!(sink = %sink_name, event_id = %n.event.id, error = %err, "failed to print notification");
    }
}

#[cfg(test)]
mod tests;
