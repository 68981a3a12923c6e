//! `draftwatch test-sink NAME`: one clearly marked sample notification to one sink.
//!
//! The sample goes through the same rendering and [`Sink::deliver`] as a real one, so a
//! success proves the URL, the secret and the receiver. It is marked as a test in every
//! form: the draft id [`TEST_DRAFT_ID`], the rule name and the fallback text carry
//! [`TEST_MARKER`]. Nothing is read from or written to the state directory, so this works
//! while `run` has it locked.

use std::time::SystemTime;

use serde_json::json;

use crate::akua::DraftStatus;
use crate::clock::{unix_ms, unix_secs};
use crate::config::Config;
use crate::config::suggest::closest;
use crate::event::{Event, EventKind, event_id};
use crate::render::{TEST_DRAFT_ID, TEST_MARKER};
use crate::sinks::{self, DeliveryError, Notification, Sink};

/// The offer id the sample names. Like the draft id, no Akua offer has it.
pub const TEST_OFFER_ID: &str = "offer_draftwatch_test";

/// The reason the sample could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum TestSinkError {
    #[error("no sink named `{name}` in the configuration{hint}")]
    UnknownSink { name: String, hint: String },
    #[error("sink `{name}` did not accept the test notification: {source}")]
    Rejected { name: String, source: DeliveryError },
}

/// Sends the sample to the sink `name` of `config`, once, without retrying.
pub async fn send(config: &Config, name: &str, now: SystemTime) -> Result<(), TestSinkError> {
    let Some(sink_config) = config.sinks.get(name) else {
        return Err(TestSinkError::UnknownSink { name: name.to_owned(), hint: sink_hint(config, name) });
    };
    let sink = Sink::from_config(name, sink_config, sinks::http_client());

    sink.deliver(&sample(now), now).await.map_err(|source| TestSinkError::Rejected { name: name.to_owned(), source })
}

/// Builds the sample: a draft that moved from payment to install. Its id changes with
/// every call, so a receiver that deduplicates on `webhook-id` shows each test.
pub fn sample(now: SystemTime) -> Notification {
    let millis = unix_ms(now).to_string();
    let kind = EventKind::StatusChanged;
    let event = Event {
        id: event_id(&[TEST_DRAFT_ID, kind.wire_name(), "test", &millis]),
        kind,
        draft_id: TEST_DRAFT_ID.to_owned(),
        offer_id: TEST_OFFER_ID.to_owned(),
        previous_status: Some(DraftStatus::Payment),
        status: Some(DraftStatus::Install),
        termination_reason: None,
        customer_email: None,
        detected_at: unix_secs(now),
        previous_status_secs: Some(60),
        draft: json!({
            "id": TEST_DRAFT_ID,
            "offer": TEST_OFFER_ID,
            "status": "install",
            "test": true,
            "note": TEST_MARKER,
        }),
        details: Default::default(),
    };
    Notification { event, rule: Some(TEST_MARKER.to_owned()) }
}

/// Returns `; did you mean `x`?`, or the list of configured sinks.
fn sink_hint(config: &Config, name: &str) -> String {
    let names: Vec<&str> = config.sinks.keys().map(String::as_str).collect();
    if names.is_empty() {
        return "; the configuration has no [sinks.NAME] tables".to_owned();
    }
    match closest(name, names.iter().copied()) {
        Some(close) => format!("; did you mean `{close}`?"),
        None => format!("; configured sinks: {}", names.join(", ")),
    }
}
