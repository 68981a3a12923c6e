//! The `outbox` commands: list, retry and drop notifications while `run` is stopped.
//!
//! They open the state directory like `run` does, so they take the same lock and fail
//! with a clear message while another process holds it.

use std::fmt::Write;
use std::time::SystemTime;

use anyhow::bail;

use crate::clock::{from_unix_ms, unix_ms};
use crate::state::{EntryState, OutboxEntry, Store};

/// Formats every entry as tab-separated lines under a header.
pub fn list(store: &Store) -> anyhow::Result<String> {
    let mut out = String::from("id\tsink\tevent type\tdraft id\tattempts\tstate\tnext attempt\tlast error\n");
    for entry in store.outbox_entries()? {
        let state = match entry.state {
            EntryState::Pending => "pending",
            EntryState::Dead => "dead",
        };
        let next_attempt = match entry.state {
            EntryState::Pending => humantime::format_rfc3339_seconds(from_unix_ms(entry.next_attempt_ms)).to_string(),
            EntryState::Dead => "-".to_owned(),
        };
        let last_error = entry.last_error.as_deref().map(single_field).unwrap_or_else(|| "-".to_owned());
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{state}\t{next_attempt}\t{last_error}",
            entry.id(),
            entry.sink,
            entry.notification.event.kind,
            entry.notification.event.draft_id,
            entry.attempts
        );
    }
    Ok(out)
}

/// Puts the named entries (or every dead one, with `id` `None`) back to pending, due now,
/// with `retry_for` counted from now. Returns how many entries changed.
pub fn retry(store: &Store, id: Option<&str>, now: SystemTime) -> anyhow::Result<usize> {
    let entries = match id {
        Some(id) => named(store, id)?,
        None => store.outbox_entries()?.into_iter().filter(|entry| entry.state == EntryState::Dead).collect(),
    };

    let now_ms = unix_ms(now);
    for mut entry in entries.iter().cloned() {
        entry.state = EntryState::Pending;
        entry.created_ms = now_ms;
        entry.next_attempt_ms = now_ms;
        entry.attempts = 0;
        store.update_entry(&entry)?;
        tracing::info!(outbox_id = %entry.id(), sink = %entry.sink, "notification queued again");
    }
    store.flush()?;
    Ok(entries.len())
}

/// Forgets the named entries. Returns how many were removed.
pub fn drop(store: &Store, id: &str) -> anyhow::Result<usize> {
    let entries = named(store, id)?;
    for entry in &entries {
        store.remove_entry(entry.seq)?;
        tracing::info!(outbox_id = %entry.id(), sink = %entry.sink, "notification dropped");
    }
    store.flush()?;
    Ok(entries.len())
}

fn named(store: &Store, id: &str) -> anyhow::Result<Vec<OutboxEntry>> {
    let entries = store.find_entries(id)?;
    if entries.is_empty() {
        bail!("no outbox entry `{id}`; run `draftwatch outbox list` to see the ids");
    }
    Ok(entries)
}

/// Keeps a free-text value on one tab-separated field.
fn single_field(text: &str) -> String {
    text.chars().map(|character| if character.is_control() { ' ' } else { character }).collect()
}
