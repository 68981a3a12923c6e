//! The outbox rows: one notification for one sink, from detection until it is delivered,
//! dead-lettered or dropped.

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
    /// Returns every outbox entry, pending and dead, in detection order.
    pub fn outbox_entries(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.outbox
            .iter()
            .map(|row| {
                let (key, value) = row?;
                let mut entry: OutboxEntry = decode(&key, &value)?;
                entry.seq = key.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(entry.seq);
                Ok(entry)
            })
            .collect()
    }

    /// Returns the entries an `outbox` command names: `<event id>:<sink>` names one entry,
    /// a bare event id every entry of that event.
    pub fn find_entries(&self, id: &str) -> Result<Vec<OutboxEntry>, StoreError> {
        let entries = self.outbox_entries()?;
        Ok(entries
            .into_iter()
            .filter(|entry| if id.contains(':') { entry.id() == id } else { entry.notification.event.id == id })
            .collect())
    }

    /// Counts outbox entries by state: `(pending, dead)`.
    pub fn outbox_counts(&self) -> Result<(usize, usize), StoreError> {
        let entries = self.outbox_entries()?;
        let dead = entries.iter().filter(|entry| entry.state == EntryState::Dead).count();
        Ok((entries.len() - dead, dead))
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
