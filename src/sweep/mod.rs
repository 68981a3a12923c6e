//! The diff: from the snapshot and a fresh listing to snapshot writes and events.
//!
//! Everything here is pure. It reads no clock (the caller passes `now`), touches no store
//! and sends nothing, which is what lets the property and unit tests cover it exhaustively.
//! Deciding whether a listing is complete enough to diff is the caller's job.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::akua::{Draft, DraftStatus, TerminationReason};
use crate::event::{Event, EventDetails, EventKind, event_id};

mod fields;
mod listing;
mod summary;
mod table;

pub use fields::{TRACKED_FIELDS, changed_fields, new_install_failure};
pub use listing::{Listed, ListingCollector, deduplicate};
pub use summary::{EntrySummary, IdMap, StatusCode, id_hash, since_seconds, state_hash};
pub(crate) use summary::{FNV_OFFSET, fnv1a_64};
pub use table::SummaryIndex;

/// The snapshot's record of one draft.
///
/// Fields added after the first release have serde defaults, so entries written by older
/// builds still read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEntry {
    pub etag: String,
    pub status: DraftStatus,
    pub termination_reason: Option<TerminationReason>,
    pub offer_id: String,
    /// Unix seconds of the sweep that first listed the draft.
    pub first_seen: i64,
    /// Unix seconds since when draftwatch has seen the draft in `status`: the start of the
    /// current stay.
    pub status_since: i64,
    /// Whether a stuck event was recorded for the stay that began at `status_since`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub stuck_announced: bool,
    /// The draft object as last listed or read, for field comparisons and the removed
    /// event. `None` in entries written before it was kept. Left out of this type's
    /// serialized form: the store writes entries through a row type of its own.
    #[serde(default, skip_serializing)]
    pub draft: Option<Value>,
}

fn is_false(flag: &bool) -> bool {
    !*flag
}

/// Everything the diff needs besides the draft and its entry.
#[derive(Clone, Copy, Debug)]
pub struct DiffContext<'a> {
    /// Unix seconds of this sweep.
    pub now: i64,
    /// Whether a draft missing from the snapshot is reported as created (the offer is
    /// baselined, or `notify_existing` is on) or silently recorded.
    pub announce_new: bool,
    /// How long a draft may stay in a status before it is stuck. Every duration is positive.
    pub stuck: &'a BTreeMap<DraftStatus, Duration>,
}

/// The diff's result for one listed draft.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DraftDiff {
    /// The new snapshot entry, or `None` when nothing needs to be written.
    pub write: Option<SnapshotEntry>,
    /// At most one change event (created, status_changed or updated), then at most one
    /// stuck event.
    pub events: Vec<Event>,
}

/// Diffs one listed draft against its snapshot entry.
pub fn diff_draft(previous: Option<&SnapshotEntry>, draft: &Draft, cx: &DiffContext<'_>) -> DraftDiff {
    let Some(previous) = previous else {
        let mut entry = SnapshotEntry {
            etag: draft.etag.clone(),
            status: draft.status.clone(),
            termination_reason: draft.termination_reason.clone(),
            offer_id: draft.offer_id.clone(),
            first_seen: cx.now,
            status_since: cx.now,
            stuck_announced: false,
            draft: Some(draft.raw.clone()),
        };
        let mut events: Vec<Event> = cx
            .announce_new
            .then(|| change_event(EventKind::Created, None, "", draft, cx.now, None))
            .into_iter()
            .collect();
        events.extend(stuck_event(&mut entry, draft, cx));
        return DraftDiff { write: Some(entry), events };
    };

    if previous.etag == draft.etag && previous.status == draft.status {
        let needs_stuck = stuck_due(previous, cx);
        if !needs_stuck && previous.draft.is_some() {
            return DraftDiff::default();
        }
        // N.B. an entry from an older build gets the draft object once, on its first sweep.
        let mut entry = previous.clone();
        entry.draft = Some(draft.raw.clone());
        let events = stuck_event(&mut entry, draft, cx).into_iter().collect();
        return DraftDiff { write: Some(entry), events };
    }

    let status_changed = previous.status != draft.status;
    let mut entry = SnapshotEntry {
        etag: draft.etag.clone(),
        status: draft.status.clone(),
        termination_reason: draft.termination_reason.clone(),
        offer_id: previous.offer_id.clone(),
        first_seen: previous.first_seen,
        status_since: if status_changed { cx.now } else { previous.status_since },
        stuck_announced: !status_changed && previous.stuck_announced,
        draft: Some(draft.raw.clone()),
    };

    let mut events = Vec::new();
    if status_changed {
        let stay = u64::try_from(cx.now.saturating_sub(previous.status_since)).unwrap_or(0);
        let previous_status = Some(previous.status.clone());
        events.push(change_event(EventKind::StatusChanged, previous_status, &previous.etag, draft, cx.now, Some(stay)));
    } else if let Some(before) = &previous.draft {
        let changed = changed_fields(before, &draft.raw);
        if !changed.is_empty() {
            let status = Some(previous.status.clone());
            let mut event = change_event(EventKind::Updated, status, &previous.etag, draft, cx.now, None);
            event.details.changed_fields = changed;
            events.push(event);
        }
    }
    events.extend(stuck_event(&mut entry, draft, cx));
    DraftDiff { write: Some(entry), events }
}

/// Returns whether `entry`'s current stay has passed its threshold without a stuck event.
fn stuck_due(entry: &SnapshotEntry, cx: &DiffContext<'_>) -> bool {
    stuck_due_at(&entry.status, entry.status_since, entry.stuck_announced, cx)
}

pub(crate) fn stuck_due_at(status: &DraftStatus, since: i64, announced: bool, cx: &DiffContext<'_>) -> bool {
    if announced {
        return false;
    }
    let Some(threshold) = cx.stuck.get(status) else {
        return false;
    };
    let stayed = u64::try_from(cx.now.saturating_sub(since)).unwrap_or(0);
    stayed >= threshold.as_secs().max(1)
}

/// Builds the stuck event for `entry` when it is due, and marks the stay announced.
fn stuck_event(entry: &mut SnapshotEntry, draft: &Draft, cx: &DiffContext<'_>) -> Option<Event> {
    if !stuck_due(entry, cx) {
        return None;
    }
    entry.stuck_announced = true;

    let kind = EventKind::Stuck;
    let since = entry.status_since.to_string();
    let stayed = u64::try_from(cx.now.saturating_sub(entry.status_since)).unwrap_or(0);
    Some(Event {
        id: event_id(&[&draft.id, kind.wire_name(), entry.status.as_str(), &since]),
        kind,
        draft_id: draft.id.clone(),
        offer_id: draft.offer_id.clone(),
        previous_status: None,
        status: Some(entry.status.clone()),
        termination_reason: draft.termination_reason.clone(),
        customer_email: draft.customer_email.clone(),
        detected_at: cx.now,
        previous_status_secs: None,
        draft: draft.raw.clone(),
        details: EventDetails { stuck_for: Some(stayed), ..EventDetails::default() },
    })
}

/// Builds the removed event of a draft whose last snapshot entry is `entry`.
///
/// The event carries the last draft object seen, or, for an entry from an older build that
/// kept none, an object with the facts the entry has.
pub fn removed_event(draft_id: &str, entry: &SnapshotEntry, now: i64) -> Event {
    let kind = EventKind::Removed;
    let draft = entry.draft.clone().unwrap_or_else(|| {
        json!({"id": draft_id, "offer_id": entry.offer_id, "status": entry.status, "etag": entry.etag,
               "termination_reason": entry.termination_reason})
    });
    let customer_email = draft.get("customer_email").and_then(Value::as_str).map(str::to_owned);
    let stay = u64::try_from(now.saturating_sub(entry.status_since)).unwrap_or(0);
    Event {
        id: event_id(&[draft_id, kind.wire_name(), &entry.etag]),
        kind,
        draft_id: draft_id.to_owned(),
        offer_id: entry.offer_id.clone(),
        previous_status: Some(entry.status.clone()),
        status: None,
        termination_reason: entry.termination_reason.clone(),
        customer_email,
        detected_at: now,
        previous_status_secs: Some(stay),
        draft,
        details: EventDetails::default(),
    }
}

fn change_event(
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
        status: Some(draft.status.clone()),
        termination_reason: draft.termination_reason.clone(),
        customer_email: draft.customer_email.clone(),
        detected_at: now,
        previous_status_secs,
        draft: draft.raw.clone(),
        details: EventDetails::default(),
    }
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
            status: status.clone(),
            termination_reason: None,
            offer_id: "offer_1".into(),
            first_seen: 100,
            status_since: since,
            stuck_announced: false,
            draft: Some(json!({"id": "odft_1", "offer_id": "offer_1", "status": status, "etag": etag})),
        }
    }

    fn diff(previous: Option<&SnapshotEntry>, listed: &Draft, now: i64, announce_new: bool) -> DraftDiff {
        let stuck = BTreeMap::new();
        diff_draft(previous, listed, &DiffContext { now, announce_new, stuck: &stuck })
    }

    fn stuck_after(status: DraftStatus, secs: u64) -> BTreeMap<DraftStatus, Duration> {
        BTreeMap::from([(status, Duration::from_secs(secs))])
    }

    #[test]
    fn diff_baseline_is_silent() {
        let diff = diff(None, &draft("odft_1", "payment", "1"), 500, false);
        let write = diff.write.unwrap();
        assert_eq!(write.first_seen, 500);
        assert_eq!(write.status_since, 500);
        assert!(write.draft.is_some());
        assert!(diff.events.is_empty());
    }

    #[test]
    fn diff_new_draft_announced() {
        let diff = diff(None, &draft("odft_1", "terminated", "1"), 500, true);
        let event = &diff.events[0];
        assert_eq!(event.kind, EventKind::Created);
        assert_eq!(event.previous_status, None);
        assert_eq!(event.id, event_id(&["odft_1", "order_draft.created", "", "1"]));
    }

    #[test]
    fn diff_unchanged_writes_nothing() {
        let previous = entry(DraftStatus::Payment, "1", 100);
        assert_eq!(diff(Some(&previous), &draft("odft_1", "payment", "1"), 500, true), DraftDiff::default());
    }

    #[test]
    fn diff_old_entry_gains_draft() {
        let mut previous = entry(DraftStatus::Payment, "1", 100);
        previous.draft = None;
        let diff = diff(Some(&previous), &draft("odft_1", "payment", "1"), 500, true);
        assert!(diff.events.is_empty());
        assert!(diff.write.unwrap().draft.is_some());
    }

    #[test]
    fn diff_etag_only_is_silent() {
        let previous = entry(DraftStatus::Payment, "1", 100);
        let diff = diff(Some(&previous), &draft("odft_1", "payment", "2"), 500, true);
        assert!(diff.events.is_empty());
        let write = diff.write.unwrap();
        assert_eq!(write.etag, "2");
        assert_eq!(write.status_since, 100, "an etag change does not restart the stay");
    }

    #[test]
    fn diff_status_change_event() {
        let previous = entry(DraftStatus::Payment, "1", 100);
        let diff = diff(Some(&previous), &draft("odft_1", "install", "2"), 460, false);
        let event = &diff.events[0];
        assert_eq!(event.kind, EventKind::StatusChanged);
        assert_eq!(event.previous_status, Some(DraftStatus::Payment));
        assert_eq!(event.status, Some(DraftStatus::Install));
        assert_eq!(event.previous_status_secs, Some(360));
        assert_eq!(event.id, event_id(&["odft_1", "order_draft.status_changed", "1", "2"]));
        let write = diff.write.unwrap();
        assert_eq!(write.status_since, 460);
        assert_eq!(write.first_seen, 100);
    }

    #[test]
    fn diff_unknown_status_flows() {
        let previous = entry(DraftStatus::Install, "1", 100);
        let diff = diff(Some(&previous), &draft("odft_1", "rolling_back", "2"), 200, false);
        assert_eq!(diff.events[0].status, Some(DraftStatus::Other("rolling_back".into())));
    }

    #[test]
    fn diff_tracked_field_updates() {
        let mut previous = entry(DraftStatus::Install, "1", 100);
        previous.draft = Some(json!({"id": "odft_1", "status": "install", "payment_completed": false,
            "delivery": {"status": "running", "urls": [{"route_key": "web", "status": "provisioning", "updated_at": 1}]}}));
        let listed = Draft::from_value(json!({"id": "odft_1", "offer_id": "offer_1", "status": "install", "etag": "2",
            "payment_completed": true,
            "delivery": {"status": "running", "urls": [{"route_key": "web", "status": "active", "updated_at": 2}]}}))
        .unwrap();
        let diff = diff(Some(&previous), &listed, 300, true);
        let event = &diff.events[0];
        assert_eq!(event.kind, EventKind::Updated);
        assert_eq!(event.details.changed_fields, ["payment_completed", "delivery.urls"]);
        assert_eq!(event.previous_status, event.status);
        assert_eq!(event.id, event_id(&["odft_1", "order_draft.updated", "1", "2"]));
    }

    #[test]
    fn url_timestamp_alone_is_silent() {
        let before = json!({"delivery": {"urls": [{"url": "https://a", "status": "active", "updated_at": 1}]}});
        let after = json!({"delivery": {"urls": [{"url": "https://a", "status": "active", "updated_at": 9}]}});
        assert!(changed_fields(&before, &after).is_empty());
        let gone = json!({"delivery": {"urls": []}});
        assert_eq!(changed_fields(&before, &gone), ["delivery.urls"]);
        let errored = json!({"delivery": {"urls": [{"url": "https://a", "status": "active", "error": "dns"}]}});
        assert_eq!(changed_fields(&before, &errored), ["delivery.urls"]);
    }

    #[test]
    fn checkout_session_id_counts() {
        let before = json!({"current_checkout_session": {"id": "cs_1", "url": "https://pay/1"}});
        let same_id = json!({"current_checkout_session": {"id": "cs_1", "url": "https://pay/2"}});
        let new_id = json!({"current_checkout_session": {"id": "cs_2"}});
        assert!(changed_fields(&before, &same_id).is_empty());
        assert_eq!(changed_fields(&before, &new_id), ["current_checkout_session"]);
    }

    #[test]
    fn stuck_once_per_stay() {
        let stuck = stuck_after(DraftStatus::Configure, 3600);
        let cx = |now| DiffContext { now, announce_new: true, stuck: &stuck };
        let previous = entry(DraftStatus::Configure, "1", 1000);
        let listed = draft("odft_1", "configure", "1");

        assert_eq!(diff_draft(Some(&previous), &listed, &cx(4599)), DraftDiff::default(), "not yet");
        let due = diff_draft(Some(&previous), &listed, &cx(4600));
        let event = &due.events[0];
        assert_eq!(event.kind, EventKind::Stuck);
        assert_eq!(event.previous_status, None);
        assert_eq!(event.status, Some(DraftStatus::Configure));
        assert_eq!(event.details.stuck_for, Some(3600));
        assert_eq!(event.id, event_id(&["odft_1", "order_draft.stuck", "configure", "1000"]));
        let announced = due.write.unwrap();
        assert!(announced.stuck_announced);

        assert_eq!(diff_draft(Some(&announced), &listed, &cx(9000)), DraftDiff::default(), "once per stay");
        let touched = diff_draft(Some(&announced), &draft("odft_1", "configure", "2"), &cx(9000));
        assert!(touched.events.is_empty(), "an etag change keeps the stay");
        assert!(touched.write.unwrap().stuck_announced);
    }

    #[test]
    fn stuck_rearms_on_status_change() {
        let stuck = stuck_after(DraftStatus::Configure, 60);
        let cx = |now| DiffContext { now, announce_new: true, stuck: &stuck };
        let mut previous = entry(DraftStatus::Configure, "1", 0);
        previous.stuck_announced = true;

        let moved = diff_draft(Some(&previous), &draft("odft_1", "payment", "2"), &cx(100)).write.unwrap();
        assert!(!moved.stuck_announced);
        let back = diff_draft(Some(&moved), &draft("odft_1", "configure", "3"), &cx(200)).write.unwrap();
        let again = diff_draft(Some(&back), &draft("odft_1", "configure", "3"), &cx(260));
        assert_eq!(again.events.len(), 1);
        assert_eq!(again.events[0].id, event_id(&["odft_1", "order_draft.stuck", "configure", "200"]));
    }

    #[test]
    fn removed_event_shape() {
        let previous = entry(DraftStatus::Payment, "7", 100);
        let event = removed_event("odft_1", &previous, 400);
        assert_eq!(event.kind, EventKind::Removed);
        assert_eq!(event.previous_status, Some(DraftStatus::Payment));
        assert_eq!(event.status, None);
        assert_eq!(event.draft, previous.draft.clone().unwrap());
        assert_eq!(event.id, event_id(&["odft_1", "order_draft.removed", "7"]));

        let mut old = previous;
        old.draft = None;
        assert_eq!(removed_event("odft_1", &old, 400).draft["status"], "payment");
    }

    #[test]
    fn install_failure_found_once() {
        let failed = Draft::from_value(json!({"id": "odft_1", "offer_id": "o", "status": "install", "etag": "2",
            "install_operation_id": "op_1", "delivery": {"status": "failed"}}))
        .unwrap();
        let previous = entry(DraftStatus::Install, "1", 0);
        assert_eq!(new_install_failure(Some(&previous), &failed), Some("op_1".into()));

        let mut already = previous;
        already.draft = Some(failed.raw.clone());
        assert_eq!(new_install_failure(Some(&already), &failed), None);

        let terminated = Draft::from_value(json!({"id": "odft_1", "offer_id": "o", "status": "terminated",
            "termination_reason": "install_failed", "delivery": {"install_operation_id": "op_2"}}))
        .unwrap();
        assert_eq!(new_install_failure(None, &terminated), Some("op_2".into()));
    }

    #[test]
    fn collector_keeps_fresher_copy() {
        let copy = |etag: &str, updated_at: i64| {
            Draft::from_value(
                json!({"id": "a", "offer_id": "o", "status": "payment", "etag": etag, "updated_at": updated_at}),
            )
            .unwrap()
        };
        let mut collector = ListingCollector::<Draft>::default();
        collector.offer(copy("2", 20), true);
        collector.offer(copy("1", 10), false);
        collector.offer(draft("b", "done", "1"), false);
        assert_eq!(collector.len(), 2);
        assert!(collector.contains("b"));
        assert_eq!(collector.into_pending(), vec![copy("2", 20)], "the older copy is ignored");

        let mut collector = ListingCollector::<Draft>::default();
        collector.offer(copy("1", 10), true);
        collector.offer(copy("1", 10), false);
        assert!(collector.into_pending().is_empty(), "a later unchanged copy wins the tie");
    }

    #[test]
    fn collector_counts_known_drafts_once() {
        let mut collector = ListingCollector::<Draft>::default();
        let known = draft("a", "done", "1");
        for _ in 0..2 {
            collector.offer_hashed(id_hash("a"), known.clone(), true, false, |draft| draft);
        }
        collector.offer_hashed(id_hash("new"), draft("new", "done", "1"), false, true, |draft| draft);
        assert_eq!(collector.len(), 2);
        assert_eq!(collector.known_len(), 1, "a repeated id counts once and a new one not at all");
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
