//! The outbox rows: one notification for one sink, from detection until it is delivered,
//! dead-lettered or dropped.

use std::borrow::Cow;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, decode, encode};
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

/// The fields of an outbox row that decide whether a reader wants it, decoded without
/// the notification.
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
    /// Iterates over every outbox entry, pending and dead, in detection order. Each step
    /// decodes one row, so a caller that keeps only what it needs reads in bounded memory.
    pub fn outbox_iter(&self) -> impl Iterator<Item = Result<OutboxEntry, StoreError>> {
        self.outbox.iter().map(|row| {
            let (key, value) = row?;
            decode_entry(&key, &value)
        })
    }

    /// Iterates over the pending entries whose sink `wanted` accepts, in detection order,
    /// starting after seq `after` (at the first entry with `None`).
    ///
    /// Dead rows and rows of unwanted sinks are skipped after decoding only their sink and
    /// state, not the notification, so dead letters cost little to pass over.
    pub fn pending_iter(
        &self,
        after: Option<u64>,
        mut wanted: impl FnMut(&str) -> bool,
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
            match decode::<RowHead>(&key, &value) {
                Ok(head) if head.state == EntryState::Pending && wanted(&head.sink) => Some(decode_entry(&key, &value)),
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
    /// N.B. this holds the whole outbox in memory, about 5 KiB per entry. Code that runs
    /// in `run` uses [`Store::outbox_iter`] or [`Store::pending_iter`] instead.
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
            match decode::<RowHead>(&key, &value)?.state {
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
    let mut entry: OutboxEntry = decode(key, value)?;
    entry.seq = key.try_into().map(u64::from_be_bytes).unwrap_or(entry.seq);
    Ok(entry)
}
