//! Events: what draftwatch detected about one draft, and the id that names it everywhere.
//!
//! An event is produced by the diff, stored in the outbox with each sink it is routed to,
//! and rendered by the sinks. It carries everything a message needs, so rendering and
//! delivery never go back to the API or the snapshot.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::akua::{DraftStatus, TerminationReason};

/// The kinds of events draftwatch sends, with their wire names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventKind {
    /// A known draft's status differs from the snapshot.
    #[serde(rename = "order_draft.status_changed")]
    StatusChanged,
    /// A draft not in the snapshot appeared in an offer that is already baselined.
    #[serde(rename = "order_draft.created")]
    Created,
    /// A known draft is gone: absent from a complete listing and 404 when read by id.
    #[serde(rename = "order_draft.removed")]
    Removed,
    /// A draft has stayed in one status longer than its `[stuck]` threshold.
    #[serde(rename = "order_draft.stuck")]
    Stuck,
    /// The etag and a tracked field changed while the status did not.
    #[serde(rename = "order_draft.updated")]
    Updated,
}

impl EventKind {
    pub const ALL: &'static [EventKind] =
        &[EventKind::StatusChanged, EventKind::Created, EventKind::Removed, EventKind::Stuck, EventKind::Updated];

    /// Returns the full wire name, such as `order_draft.status_changed`.
    pub fn wire_name(self) -> &'static str {
        match self {
            EventKind::StatusChanged => "order_draft.status_changed",
            EventKind::Created => "order_draft.created",
            EventKind::Removed => "order_draft.removed",
            EventKind::Stuck => "order_draft.stuck",
            EventKind::Updated => "order_draft.updated",
        }
    }

    /// Returns the name used in `[[rules]] events`, which has no `order_draft.` prefix.
    pub fn short_name(self) -> &'static str {
        self.wire_name().trim_start_matches("order_draft.")
    }

    /// Reads a rule's event name, with or without the `order_draft.` prefix.
    pub fn from_short_name(name: &str) -> Option<EventKind> {
        let name = name.strip_prefix("order_draft.").unwrap_or(name);
        EventKind::ALL.iter().copied().find(|kind| kind.short_name() == name)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wire_name())
    }
}

/// One detected change of one draft.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `evt_` and 32 hex digits; see [`event_id`].
    pub id: String,
    pub kind: EventKind,
    pub draft_id: String,
    pub offer_id: String,
    /// The snapshot's status, or `None` for a draft seen for the first time and for a
    /// stuck event.
    pub previous_status: Option<DraftStatus>,
    /// The draft's status now, or `None` for a removed draft.
    pub status: Option<DraftStatus>,
    pub termination_reason: Option<TerminationReason>,
    pub customer_email: Option<String>,
    /// Unix seconds when draftwatch detected the change; the same on every retry.
    pub detected_at: i64,
    /// Whole seconds the draft spent in `previous_status`, measured from when draftwatch
    /// first saw it there. `None` for created events.
    pub previous_status_secs: Option<u64>,
    /// The draft object as the API returned it; for a removed draft, the last one seen.
    pub draft: Value,
    /// Facts only some kinds carry. Absent in outbox entries written by older builds.
    #[serde(default)]
    pub details: EventDetails,
}

/// The parts of an event that only some kinds have.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDetails {
    /// For `updated`: the tracked fields that changed, in [`crate::sweep::TRACKED_FIELDS`] order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_fields: Vec<String>,
    /// For `stuck`: whole seconds the draft has been in its status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck_for: Option<u64>,
    /// For events about a failed install: the install operation's error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_error: Option<String>,
}

/// Derives the event id: `evt_` and the first 32 hex digits of SHA-256 over the parts
/// joined with `\n`.
///
/// For status changes, updates and creations the parts are the draft id, the event's wire
/// name, the etag before (empty for a created draft) and the etag after. For `stuck` they
/// are the draft id, the wire name, the status and the Unix second the stay began; for
/// `removed`, the draft id, the wire name and the last etag. The id is therefore the same
/// at every sink, on every retry and after any restart.
pub fn event_id(parts: &[&str]) -> String {
    let digest = Sha256::digest(parts.join("\n").as_bytes());
    let mut id = String::with_capacity(36);
    id.push_str("evt_");
    id.push_str(&hex::encode(&digest[..16]));
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_id_matches_sha256_prefix() {
        // sha256("odft_1\norder_draft.status_changed\n1\n2"), computed with `sha256sum`.
        let id = event_id(&["odft_1", "order_draft.status_changed", "1", "2"]);
        assert_eq!(id.len(), 36);
        assert!(id.starts_with("evt_"));
        let expected = hex::encode(&Sha256::digest(b"odft_1\norder_draft.status_changed\n1\n2")[..16]);
        assert_eq!(id, format!("evt_{expected}"));
    }

    #[test]
    fn event_id_differs_by_etag() {
        let a = event_id(&["odft_1", "order_draft.status_changed", "1", "2"]);
        let b = event_id(&["odft_1", "order_draft.status_changed", "1", "3"]);
        assert_ne!(a, b);
    }

    #[test]
    fn event_kind_short_names() {
        assert_eq!(EventKind::from_short_name("status_changed"), Some(EventKind::StatusChanged));
        assert_eq!(EventKind::from_short_name("order_draft.created"), Some(EventKind::Created));
        assert_eq!(EventKind::from_short_name("deleted"), None);
    }
}
