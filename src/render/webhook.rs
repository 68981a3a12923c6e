//! The JSON body of a generic webhook request.
//!
//! The body is built from the notification alone, so every retry of a notification sends
//! the same bytes. Headers and signing belong to [`crate::sinks`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use crate::akua::{DraftStatus, TerminationReason};
use crate::event::{EventDetails, EventKind};
use crate::sinks::Notification;

/// The last second `humantime` can format as RFC 3339: 9999-12-31T23:59:59Z.
const LAST_FORMATTABLE_SECOND: i64 = 253_402_300_799;

/// The top level of the body. Field order is the wire order.
#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: EventKind,
    timestamp: String,
    data: Data<'a>,
}

#[derive(Serialize)]
struct Data<'a> {
    draft_id: &'a str,
    offer_id: &'a str,
    previous_status: Option<&'a DraftStatus>,
    status: Option<&'a DraftStatus>,
    termination_reason: Option<&'a TerminationReason>,
    rule: Option<&'a str>,
    draft: &'a Value,
    /// `changed_fields`, `stuck_for` and `install_error`, each only when the event has it.
    #[serde(flatten)]
    details: &'a EventDetails,
}

/// Serializes the webhook body: `type`, `timestamp` and `data` with `draft_id`,
/// `offer_id`, `previous_status`, `status`, `termination_reason`, `rule` and `draft`, in
/// that order. Absent values are JSON `null`. Kind-specific facts follow: `changed_fields`
/// (updated), `stuck_for` (stuck) and `install_error`, each only when present.
///
/// `timestamp` is `event.detected_at` in RFC 3339 UTC with whole seconds.
pub fn body(n: &Notification) -> Vec<u8> {
    let event = &n.event;
    let body = Body {
        kind: event.kind,
        timestamp: rfc3339(event.detected_at),
        data: Data {
            draft_id: &event.draft_id,
            offer_id: &event.offer_id,
            previous_status: event.previous_status.as_ref(),
            status: event.status.as_ref(),
            termination_reason: event.termination_reason.as_ref(),
            rule: n.rule.as_deref(),
            draft: &event.draft,
            details: &event.details,
        },
    };

    // N.B. serializing plain structs, strings and a `Value` into memory cannot fail.
    serde_json::to_vec(&body).expect("webhook body serializes")
}

/// Formats Unix seconds as RFC 3339 UTC.
///
/// N.B. `humantime` panics before 1970 and fails after 9999, so such values, which only a
/// wrong clock produces, are clamped to that range.
fn rfc3339(unix_secs: i64) -> String {
    let secs = unix_secs.clamp(0, LAST_FORMATTABLE_SECOND) as u64;
    let time: SystemTime = UNIX_EPOCH + Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::render::fixture;

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("body is JSON")
    }

    #[test]
    fn body_exact_shape() {
        let n = fixture::status_changed();
        let expected = json!({
            "type": "order_draft.status_changed",
            "timestamp": "2026-12-04T19:47:30Z",
            "data": {
                "draft_id": "odft_1",
                "offer_id": "offer_1",
                "previous_status": "payment",
                "status": "install",
                "termination_reason": null,
                "rule": "paid",
                "draft": n.event.draft.clone(),
            }
        });
        assert_eq!(parse(&body(&n)), expected);
    }

    #[test]
    fn body_key_order() {
        let value = parse(&body(&fixture::status_changed()));
        let top: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(top, ["type", "timestamp", "data"]);
        let data: Vec<&str> = value["data"].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(data, ["draft_id", "offer_id", "previous_status", "status", "termination_reason", "rule", "draft"]);
    }

    #[test]
    fn body_keeps_draft_key_order() {
        let value = parse(&body(&fixture::status_changed()));
        let keys: Vec<&str> = value["data"]["draft"].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["id", "offer_id", "status", "etag", "customer_email", "payment_completed", "created_at"]);
    }

    #[test]
    fn body_is_deterministic() {
        let n = fixture::terminated("install_failed");
        let first = body(&n);
        assert_eq!(body(&n.clone()), first);
        assert_eq!(body(&n), first);
    }

    #[test]
    fn body_created_nulls() {
        let value = parse(&body(&fixture::created()));
        assert_eq!(value["type"], "order_draft.created");
        assert_eq!(value["data"]["previous_status"], Value::Null);
        assert_eq!(value["data"]["rule"], Value::Null);
        assert_eq!(value["data"]["status"], "payment");
    }

    #[test]
    fn body_terminated_reason() {
        let value = parse(&body(&fixture::terminated("fraud_suspected")));
        assert_eq!(value["data"]["termination_reason"], "fraud_suspected");
        assert_eq!(value["data"]["status"], "terminated");
    }

    #[test]
    fn body_removed_status_null() {
        let mut n = fixture::status_changed();
        n.event.kind = EventKind::Removed;
        n.event.status = None;
        let value = parse(&body(&n));
        assert_eq!(value["type"], "order_draft.removed");
        assert_eq!(value["data"]["status"], Value::Null);
        assert_eq!(value["data"]["previous_status"], "payment");
        assert!(value["data"].get("install_error").is_none());
    }

    #[test]
    fn body_adds_kind_details() {
        let mut n = fixture::status_changed();
        n.event.kind = EventKind::Stuck;
        n.event.details.stuck_for = Some(3600);
        n.event.details.install_error = Some("helm failed".into());
        let value = parse(&body(&n));
        assert_eq!(value["data"]["stuck_for"], 3600);
        assert_eq!(value["data"]["install_error"], "helm failed");
        assert!(value["data"].get("changed_fields").is_none());
    }

    #[test]
    fn timestamp_clamps_bad_clock() {
        assert_eq!(rfc3339(-5), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
    }
}
