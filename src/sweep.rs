//! The diff: from the snapshot and a fresh listing to snapshot writes and events.
//!
//! Everything here is pure. It reads no clock (the caller passes `now`), touches no store
//! and sends nothing, which is what lets the property and unit tests cover it exhaustively.
//! Deciding whether a listing is complete enough to diff is the caller's job.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::akua::{Draft, DraftStatus, TerminationReason};
use crate::event::{Event, EventKind, event_id};

/// What the snapshot remembers of one draft.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEntry {
    pub etag: String,
    pub status: DraftStatus,
    pub termination_reason: Option<TerminationReason>,
    pub offer_id: String,
    /// Unix seconds of the sweep that first listed the draft.
    pub first_seen: i64,
    /// Unix seconds since when draftwatch has seen the draft in `status`.
    pub status_since: i64,
}

/// What the diff decided for one listed draft.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DraftDiff {
    /// The new snapshot entry, or `None` when the etag and status are unchanged and
    /// nothing needs to be written.
    pub write: Option<SnapshotEntry>,
    pub event: Option<Event>,
}

/// Diffs one listed draft against its snapshot entry.
///
/// `announce_new` says whether a draft missing from the snapshot is reported as created
/// (the offer is baselined, or `notify_existing` is on) or silently recorded.
pub fn diff_draft(previous: Option<&SnapshotEntry>, draft: &Draft, now: i64, announce_new: bool) -> DraftDiff {
    let Some(previous) = previous else {
        let write = SnapshotEntry {
            etag: draft.etag.clone(),
            status: draft.status.clone(),
            termination_reason: draft.termination_reason.clone(),
            offer_id: draft.offer_id.clone(),
            first_seen: now,
            status_since: now,
        };
        let event = announce_new.then(|| new_event(EventKind::Created, None, "", draft, now, None));
        return DraftDiff { write: Some(write), event };
    };

    if previous.etag == draft.etag && previous.status == draft.status {
        return DraftDiff::default();
    }

    let status_changed = previous.status != draft.status;
    let write = SnapshotEntry {
        etag: draft.etag.clone(),
        status: draft.status.clone(),
        termination_reason: draft.termination_reason.clone(),
        offer_id: previous.offer_id.clone(),
        first_seen: previous.first_seen,
        status_since: if status_changed { now } else { previous.status_since },
    };
    if !status_changed {
        return DraftDiff { write: Some(write), event: None };
    }

    let stay = u64::try_from(now.saturating_sub(previous.status_since)).unwrap_or(0);
    let event =
        new_event(EventKind::StatusChanged, Some(previous.status.clone()), &previous.etag, draft, now, Some(stay));
    DraftDiff { write: Some(write), event: Some(event) }
}

fn new_event(
    kind: EventKind,
    previous_status: Option<DraftStatus>,
    previous_etag: &str,
    draft: &Draft,
    now: i64,
    previous_status_secs: Option<u64>,
) -> Event {
    Event {
        id: event_id(&[&draft.id, kind.wire_name(), previous_etag, &draft.etag]),
        kind,
        draft_id: draft.id.clone(),
        offer_id: draft.offer_id.clone(),
        previous_status,
        status: draft.status.clone(),
        termination_reason: draft.termination_reason.clone(),
        customer_email: draft.customer_email.clone(),
        detected_at: now,
        previous_status_secs,
        draft: draft.raw.clone(),
    }
}

/// Keeps one copy of each draft id, in first-listed order.
///
/// A listing without a consistency promise can return a draft twice when rows move
/// between pages. The copy with the greater `updated_at` wins, and on a tie the one listed
/// later, which is the fresher read.
pub fn deduplicate(drafts: Vec<Draft>) -> Vec<Draft> {
    let mut index: HashMap<String, usize> = HashMap::with_capacity(drafts.len());
    let mut unique: Vec<Draft> = Vec::with_capacity(drafts.len());
    for draft in drafts {
        match index.get(&draft.id) {
            Some(&position) => {
                if draft.updated_at.unwrap_or(i64::MIN) >= unique[position].updated_at.unwrap_or(i64::MIN) {
                    unique[position] = draft;
                }
            }
            None => {
                index.insert(draft.id.clone(), unique.len());
                unique.push(draft);
            }
        }
    }
    unique
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn draft(id: &str, status: &str, etag: &str) -> Draft {
        Draft::from_value(json!({"id": id, "offer_id": "offer_1", "status": status, "etag": etag})).unwrap()
    }

    fn entry(status: DraftStatus, etag: &str, since: i64) -> SnapshotEntry {
        SnapshotEntry {
            etag: etag.into(),
            status,
            termination_reason: None,
            offer_id: "offer_1".into(),
            first_seen: 100,
            status_since: since,
        }
    }

    #[test]
    fn diff_baseline_is_silent() {
        let diff = diff_draft(None, &draft("odft_1", "payment", "1"), 500, false);
        let write = diff.write.unwrap();
        assert_eq!(write.first_seen, 500);
        assert_eq!(write.status_since, 500);
        assert!(diff.event.is_none());
    }

    #[test]
    fn diff_new_draft_announced() {
        let diff = diff_draft(None, &draft("odft_1", "terminated", "1"), 500, true);
        let event = diff.event.unwrap();
        assert_eq!(event.kind, EventKind::Created);
        assert_eq!(event.previous_status, None);
        assert_eq!(event.id, event_id(&["odft_1", "order_draft.created", "", "1"]));
    }

    #[test]
    fn diff_unchanged_writes_nothing() {
        let previous = entry(DraftStatus::Payment, "1", 100);
        assert_eq!(diff_draft(Some(&previous), &draft("odft_1", "payment", "1"), 500, true), DraftDiff::default());
    }

    #[test]
    fn diff_etag_only_is_silent() {
        let previous = entry(DraftStatus::Payment, "1", 100);
        let diff = diff_draft(Some(&previous), &draft("odft_1", "payment", "2"), 500, true);
        assert!(diff.event.is_none());
        let write = diff.write.unwrap();
        assert_eq!(write.etag, "2");
        assert_eq!(write.status_since, 100, "an etag change does not restart the stay");
    }

    #[test]
    fn diff_status_change_event() {
        let previous = entry(DraftStatus::Payment, "1", 100);
        let diff = diff_draft(Some(&previous), &draft("odft_1", "install", "2"), 460, false);
        let event = diff.event.unwrap();
        assert_eq!(event.kind, EventKind::StatusChanged);
        assert_eq!(event.previous_status, Some(DraftStatus::Payment));
        assert_eq!(event.status, DraftStatus::Install);
        assert_eq!(event.previous_status_secs, Some(360));
        assert_eq!(event.id, event_id(&["odft_1", "order_draft.status_changed", "1", "2"]));
        let write = diff.write.unwrap();
        assert_eq!(write.status_since, 460);
        assert_eq!(write.first_seen, 100);
    }

    #[test]
    fn diff_unknown_status_flows() {
        let previous = entry(DraftStatus::Install, "1", 100);
        let diff = diff_draft(Some(&previous), &draft("odft_1", "rolling_back", "2"), 200, false);
        assert_eq!(diff.event.unwrap().status, DraftStatus::Other("rolling_back".into()));
    }

    #[test]
    fn deduplicate_prefers_newer_copy() {
        let older =
            Draft::from_value(json!({"id": "a", "offer_id": "o", "status": "payment", "etag": "1", "updated_at": 10}))
                .unwrap();
        let newer =
            Draft::from_value(json!({"id": "a", "offer_id": "o", "status": "install", "etag": "2", "updated_at": 20}))
                .unwrap();
        let other = draft("b", "done", "1");
        let unique = deduplicate(vec![newer.clone(), other.clone(), older.clone()]);
        assert_eq!(unique, vec![newer.clone(), other.clone()]);

        let tie =
            Draft::from_value(json!({"id": "a", "offer_id": "o", "status": "done", "etag": "3", "updated_at": 20}))
                .unwrap();
        let unique = deduplicate(vec![newer, tie.clone()]);
        assert_eq!(unique, vec![tie], "on a tie the later copy wins");
    }
}
