//! Notifications for tests of the renderers and sinks.

use serde_json::json;

use crate::akua::{DraftStatus, TerminationReason};
use crate::event::{Event, EventKind};
use crate::sinks::Notification;

/// Builds a `payment → install` change of `odft_1` in `offer_1`, routed by the rule `paid`.
pub fn status_changed() -> Notification {
    let draft = json!({
        "id": "odft_1",
        "offer_id": "offer_1",
        "status": "install",
        "etag": "8",
        "customer_email": "buyer@example.com",
        "payment_completed": true,
        "created_at": 1_796_000_000,
    });
    let event = Event {
        id: "evt_0123456789abcdef0123456789abcdef".to_owned(),
        kind: EventKind::StatusChanged,
        draft_id: "odft_1".to_owned(),
        offer_id: "offer_1".to_owned(),
        previous_status: Some(DraftStatus::Payment),
        status: Some(DraftStatus::Install),
        termination_reason: None,
        customer_email: Some("buyer@example.com".to_owned()),
        detected_at: 1_796_413_650,
        previous_status_secs: Some(7_500),
        draft,
        details: Default::default(),
    };
    Notification { event, rule: Some("paid".to_owned()) }
}

/// Builds the same draft created directly in `payment`, routed by an unnamed rule.
pub fn created() -> Notification {
    let mut n = status_changed();
    n.event.kind = EventKind::Created;
    n.event.previous_status = None;
    n.event.status = Some(DraftStatus::Payment);
    n.event.previous_status_secs = None;
    n.event.customer_email = None;
    n.rule = None;
    n
}

/// Builds the draft terminated from `install` with `reason`.
pub fn terminated(reason: &str) -> Notification {
    let mut n = status_changed();
    n.event.previous_status = Some(DraftStatus::Install);
    n.event.status = Some(DraftStatus::Terminated);
    n.event.termination_reason = Some(TerminationReason::parse(reason));
    n.event.draft["status"] = json!("terminated");
    n.event.draft["termination_reason"] = json!(reason);
    n
}
