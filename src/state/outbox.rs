//! The outbox rows: one notification for one sink, from detection until it is delivered,
//! dead-lettered or dropped.
//!
//! Rows are read lazily in seq order, one decoded entry at a time ([`Store::outbox_iter`],
//! [`Store::pending_iter`]) or a bounded page at a time ([`Store::pending_page`]), because a
//! decoded entry carries the draft object and dead letters are kept until an operator acts.
//! Only [`Store::outbox_entries`] collects the whole outbox; it is meant for tests.

use std::borrow::Cow;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, encode};
use crate::sinks::Notification;

/// Whether an outbox entry will still be attempted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    Pending,
    /// Given up: a permanent rejection, `retry_for` ran out, or the sink is gone.
    Dead,
}

/// One notification for one sink, from detection until it is delivered or dropped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The outbox key; assigned by [`Store::commit_sweep`], ascending in detection order.
    #[serde(default)]
    pub seq: u64,
    pub sink: String,
    pub notification: Notification,
    /// Unix milliseconds when the entry was created, or re-armed by `outbox retry`.
    pub created_ms: i64,
    pub attempts: u32,
    pub state: EntryState,
    /// Unix milliseconds before which the entry is not attempted again.
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
}

/// The sink and state of an outbox row, decoded without the notification so that readers
/// skip rows cheaply.
#[derive(Deserialize)]
struct RowHead<'a> {
    #[serde(borrow)]
    sink: Cow<'a, str>,
    state: EntryState,
}

impl OutboxEntry {
    /// Builds a pending entry that is due at once.
    pub fn new(sink: String, notification: Notification, now_ms: i64) -> OutboxEntry {
        OutboxEntry {
            seq: 0,
            sink,
            notification,
            created_ms: now_ms,
            attempts: 0,
            state: EntryState::Pending,
            next_attempt_ms: now_ms,
            last_error: None,
        }
    }

    /// Returns `<event id>:<sink>`, the id `outbox` commands take.
    pub fn id(&self) -> String {
        format!("{}:{}", self.notification.event.id, self.sink)
    }
}

impl Store {
    /// Stores `bytes` as the outbox row `seq`, as written, for tests of unreadable rows.
    #[cfg(test)]
    pub(crate) fn insert_raw_outbox_row(&self, seq: u64, bytes: &[u8]) {
        self.outbox.insert(seq.to_be_bytes(), bytes).unwrap();
    }

    /// Iterates over every outbox entry, pending and dead, in detection order. Each step
    /// decodes one row, so a caller that keeps only what it needs reads in bounded memory.
    pub fn outbox_iter(&self) -> impl Iterator<Item = Result<OutboxEntry, StoreError>> {
        self.outbox.iter().map(|row| {
            let (key, value) = row?;
            decode_entry(&key, &value)
        })
    }

    /// Iterates over the pending entries whose sink `include_sink` accepts, in detection order,
    /// starting after seq `after` (at the first entry with `None`).
    ///
    /// Dead rows and rows of other sinks are skipped after decoding only their sink and
    /// state, not the notification, so dead letters cost little to pass over.
    pub fn pending_iter(
        &self,
        after: Option<u64>,
        mut include_sink: impl FnMut(&str) -> bool,
    ) -> impl Iterator<Item = Result<OutboxEntry, StoreError>> {
        let rows = match after {
            Some(seq) => self.outbox.range((Bound::Excluded(seq.to_be_bytes()), Bound::Unbounded)),
            None => self.outbox.iter(),
        };
        rows.filter_map(move |row| {
            let (key, value) = match row {
                Ok(row) => row,
                Err(error) => return Some(Err(error.into())),
            };
            match decode_row::<RowHead>(&key, &value) {
                Ok(head) if head.state == EntryState::Pending && include_sink(&head.sink) => {
                    Some(decode_entry(&key, &value))
                }
                Ok(_) => None,
                Err(error) => Some(Err(error)),
            }
        })
    }

    /// Reads up to `limit` pending entries of `sink` with a seq above `after` (from the
    /// first entry with `None`), in detection order. Fewer than `limit` means none is left.
    pub fn pending_page(&self, sink: &str, after: Option<u64>, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.pending_iter(after, |name| name == sink).take(limit).collect()
    }

    /// Returns every outbox entry, pending and dead, in detection order.
    ///
    /// N.B. this keeps the whole outbox in memory, roughly 5 KiB per entry with a typical
    /// draft object. Code that runs in `run` uses [`Store::outbox_iter`] or
    /// [`Store::pending_iter`] instead.
    pub fn outbox_entries(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.outbox_iter().collect()
    }

    /// Returns the entries an `outbox` command names: `<event id>:<sink>` names one entry,
    /// a bare event id every entry of that event.
    pub fn find_entries(&self, id: &str) -> Result<Vec<OutboxEntry>, StoreError> {
        let named = |entry: &OutboxEntry| {
            if id.contains(':') { entry.id() == id } else { entry.notification.event.id == id }
        };
        // Errors pass the filter, so `collect` stops at the first unreadable row.
        self.outbox_iter().filter(|entry| entry.as_ref().map_or(true, named)).collect()
    }

    /// Counts outbox entries by state: `(pending, dead)`. Reads only the state of each row.
    pub fn outbox_counts(&self) -> Result<(usize, usize), StoreError> {
        let (mut pending, mut dead) = (0, 0);
        for row in self.outbox.iter() {
            let (key, value) = row?;
            match decode_row::<RowHead>(&key, &value)?.state {
                EntryState::Pending => pending += 1,
                EntryState::Dead => dead += 1,
            }
        }
        Ok((pending, dead))
    }

    /// Replaces an outbox entry after an attempt. Not flushed: see [`Store::flush`].
    pub fn update_entry(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        self.outbox.insert(entry.seq.to_be_bytes(), encode(entry))?;
        Ok(())
    }

    /// Removes a delivered or dropped entry. Not flushed: see [`Store::flush`].
    pub fn remove_entry(&self, seq: u64) -> Result<(), StoreError> {
        self.outbox.remove(seq.to_be_bytes())?;
        Ok(())
    }
}

/// Decodes an outbox row, taking the seq from its key: rows written before the entry
/// stored its own seq have none.
fn decode_entry(key: &[u8], value: &[u8]) -> Result<OutboxEntry, StoreError> {
    let mut entry: OutboxEntry = decode_row(key, value)?;
    entry.seq = key.try_into().map(u64::from_be_bytes).unwrap_or(entry.seq);
    Ok(entry)
}

/// Decodes an outbox row, or all or part of its entry. An error names the row
/// `outbox/<seq>`, as its key is a binary number.
fn decode_row<'de, T: Deserialize<'de>>(key: &[u8], value: &'de [u8]) -> Result<T, StoreError> {
    serde_json::from_slice(value).map_err(|source| {
        let seq = key.try_into().map(u64::from_be_bytes).map_or_else(|_| hex::encode(key), |seq| seq.to_string());
        StoreError::Corrupt { key: format!("outbox/{seq}"), source }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixture;

    /// Builds an entry of event `evt_<seq>` for `draft` at `sink`, stored under `seq`.
    fn entry(seq: u64, sink: &str, draft: &str, state: EntryState) -> OutboxEntry {
        let mut notification = fixture::status_changed();
        notification.event.id = format!("evt_{seq}");
        notification.event.draft_id = draft.to_owned();
        let mut entry = OutboxEntry::new(sink.to_owned(), notification, 1_000);
        entry.seq = seq;
        entry.state = state;
        entry
    }

    fn seqs(entries: &[OutboxEntry]) -> Vec<u64> {
        entries.iter().map(|entry| entry.seq).collect()
    }

    #[test]
    fn outbox_iter_follows_seq_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for seq in [300, 1, 256, 0] {
            store.update_entry(&entry(seq, "a", "odft_1", EntryState::Pending)).unwrap();
        }

        let entries: Vec<OutboxEntry> = store.outbox_iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(seqs(&entries), [0, 1, 256, 300], "big-endian keys sort numerically");
        assert_eq!(entries[2].notification.event.id, "evt_256");
    }

    #[test]
    fn outbox_iter_takes_seq_from_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let unnumbered = entry(0, "a", "odft_1", EntryState::Pending);
        store.outbox.insert(42u64.to_be_bytes(), encode(&unnumbered)).unwrap();

        let read = store.outbox_iter().next().unwrap().unwrap();
        assert_eq!(read.seq, 42);
        let pending = store.pending_page("a", None, 10).unwrap();
        assert_eq!(seqs(&pending), [42], "pending pages take it from the key too");
    }

    #[test]
    fn pending_page_resumes_after_seq() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let rows = [
            (0, "a", EntryState::Pending),
            (1, "b", EntryState::Pending),
            (2, "a", EntryState::Dead),
            (3, "a", EntryState::Pending),
            (4, "a", EntryState::Pending),
            (5, "b", EntryState::Dead),
            (6, "a", EntryState::Pending),
        ];
        for (seq, sink, state) in rows {
            store.update_entry(&entry(seq, sink, "odft_1", state)).unwrap();
        }

        let first = store.pending_page("a", None, 2).unwrap();
        assert_eq!(seqs(&first), [0, 3], "dead rows and other sinks are skipped");
        let second = store.pending_page("a", Some(3), 2).unwrap();
        assert_eq!(seqs(&second), [4, 6]);
        let third = store.pending_page("a", Some(6), 2).unwrap();
        assert!(third.is_empty(), "{third:?}");
        assert_eq!(seqs(&store.pending_page("b", None, 5).unwrap()), [1]);
        assert_eq!(seqs(&store.pending_page("a", Some(0), 1).unwrap()), [3], "`after` itself is excluded");
    }

    #[test]
    fn pending_iter_reports_corrupt_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.update_entry(&entry(1, "a", "odft_1", EntryState::Pending)).unwrap();
        store.outbox.insert(2u64.to_be_bytes(), &b"{not json"[..]).unwrap();

        let read: Vec<_> = store.pending_iter(None, |_| true).collect();
        assert_eq!(read.len(), 2, "{read:?}");
        assert!(read[0].is_ok());
        assert!(matches!(read[1], Err(StoreError::Corrupt { .. })), "{:?}", read[1]);
        assert!(store.pending_page("b", None, 10).is_err(), "another sink's page does not skip it");
        assert!(store.outbox_counts().is_err());
    }

    #[test]
    fn corrupt_row_error_names_seq() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.outbox.insert(258u64.to_be_bytes(), &b"{not json"[..]).unwrap();

        let errors = [
            store.outbox_iter().next().unwrap().unwrap_err(),
            store.pending_page("a", None, 10).unwrap_err(),
            store.outbox_counts().unwrap_err(),
        ];
        for error in errors {
            let text = error.to_string();
            assert!(text.contains("`outbox/258`"), "{text}");
            assert!(!text.chars().any(char::is_control), "{text:?}");
        }
    }

    #[test]
    fn outbox_counts_by_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.outbox_counts().unwrap(), (0, 0));
        let (pending, dead) = (EntryState::Pending, EntryState::Dead);
        for (seq, state) in (0..).zip([pending, dead, pending, dead, pending]) {
            store.update_entry(&entry(seq, "a", "odft_1", state)).unwrap();
        }

        assert_eq!(store.outbox_counts().unwrap(), (3, 2));
    }

    #[test]
    fn find_entries_by_event_or_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut shared_event = entry(2, "b", "odft_1", EntryState::Dead);
        shared_event.notification.event.id = "evt_1".to_owned();
        store.update_entry(&entry(1, "a", "odft_1", EntryState::Pending)).unwrap();
        store.update_entry(&shared_event).unwrap();
        store.update_entry(&entry(3, "a", "odft_2", EntryState::Pending)).unwrap();

        assert_eq!(seqs(&store.find_entries("evt_1").unwrap()), [1, 2], "a bare event id names every sink");
        assert_eq!(seqs(&store.find_entries("evt_1:b").unwrap()), [2]);
        assert!(store.find_entries("evt_1:c").unwrap().is_empty());
        assert!(store.find_entries("evt_9").unwrap().is_empty());
    }
}
