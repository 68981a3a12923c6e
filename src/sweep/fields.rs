//! The comparison of tracked fields between two reads of a draft, and the check whether
//! an install failure is new. Pure, like the rest of the diff.

use std::collections::BTreeMap;

use serde_json::Value;

use super::SnapshotEntry;
use crate::akua::{Draft, TerminationReason};

/// The fields whose change makes an `updated` event, in the order events list them.
pub const TRACKED_FIELDS: &[&str] = &[
    "payment_completed",
    "cluster_ready",
    "server_joined",
    "order.status",
    "delivery.status",
    "delivery.urls",
    "current_checkout_session",
    "termination_reason",
];

/// Returns the names of the tracked fields that differ between two draft objects, in
/// [`TRACKED_FIELDS`] order. A missing field and `null` are the same.
pub fn changed_fields(before: &Value, after: &Value) -> Vec<String> {
    let pointer = |value: &Value, path: &str| value.pointer(path).cloned().unwrap_or(Value::Null);
    let plain = [
        ("payment_completed", "/payment_completed"),
        ("cluster_ready", "/cluster_ready"),
        ("server_joined", "/server_joined"),
        ("order.status", "/order/status"),
        ("delivery.status", "/delivery/status"),
        ("current_checkout_session", "/current_checkout_session/id"),
        ("termination_reason", "/termination_reason"),
    ];

    TRACKED_FIELDS
        .iter()
        .filter(|&&name| match plain.iter().find(|(field, _)| *field == name) {
            Some((_, path)) => pointer(before, path) != pointer(after, path),
            None => url_states(before) != url_states(after),
        })
        .map(|name| (*name).to_owned())
        .collect()
}

/// Returns each delivery URL's `status` and `error`, keyed by `route_key`, else `url`.
/// Timestamps and other fields of a URL are left out on purpose.
fn url_states(draft: &Value) -> BTreeMap<String, (Value, Value)> {
    let urls = draft.pointer("/delivery/urls").and_then(Value::as_array);
    urls.into_iter()
        .flatten()
        .enumerate()
        .map(|(index, url)| {
            let key = ["route_key", "url"]
                .iter()
                .find_map(|field| url.get(*field).and_then(Value::as_str))
                .map_or_else(|| format!("#{index}"), str::to_owned);
            let field = |name: &str| url.get(name).cloned().unwrap_or(Value::Null);
            (key, (field("status"), field("error")))
        })
        .collect()
}

/// Returns the id of the install operation to read when `draft` shows an install failure
/// that `previous` did not: it terminated with `install_failed`, or its `delivery.status`
/// became `failed`.
pub fn new_install_failure(previous: Option<&SnapshotEntry>, draft: &Draft) -> Option<String> {
    if !shows_install_failure(draft.termination_reason.as_ref(), &draft.raw) {
        return None;
    }
    let failed_before = previous.is_some_and(|previous| match &previous.draft {
        Some(before) => shows_install_failure(previous.termination_reason.as_ref(), before),
        None => previous.termination_reason == Some(TerminationReason::InstallFailed),
    });
    if failed_before {
        return None;
    }
    ["/install_operation_id", "/delivery/install_operation_id"]
        .iter()
        .find_map(|path| draft.raw.pointer(path).and_then(Value::as_str))
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

fn shows_install_failure(reason: Option<&TerminationReason>, raw: &Value) -> bool {
    reason == Some(&TerminationReason::InstallFailed)
        || raw.pointer("/delivery/status").and_then(Value::as_str) == Some("failed")
}
