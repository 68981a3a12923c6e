//! Delivery: sending one rendered notification to one destination.
//!
//! A sink makes exactly one attempt per call and classifies the outcome as delivered,
//! retryable or permanent. When to retry, and what is pending, belong to the outbox and
//! the delivery worker, not to this module.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// What the outbox hands a sink: the event and the rule credited for this sink.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub event: Event,
    /// Name of the first rule, in file order, that routed the event to this sink.
    pub rule: Option<String>,
}

/// Why an attempt did not deliver.
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
