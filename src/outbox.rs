//! The `outbox` commands: list, retry and drop notifications while `run` is stopped.
//!
//! They open the state directory like `run` does, so they take the same lock and fail
//! with a clear message while another process holds it.

use std::fmt::Write;
use std::time::SystemTime;

use anyhow::bail;

use crate::clock::{from_unix_ms, unix_ms};
use crate::state::{EntryState, OutboxEntry, Store};

/// Formats every entry as tab-separated lines under a header, decoding one entry at a time.
pub fn list(store: &Store) -> anyhow::Result<String> {
    let mut out = String::from("id\tsink\tevent type\tdraft id\tattempts\tstate\tnext attempt\tlast error\n");
    for entry in store.outbox_iter() {
        let entry = entry?;
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
    let now_ms = unix_ms(now);
    let mut changed = 0;
    match id {
        Some(id) => {
            for entry in named(store, id)? {
                requeue(store, entry, now_ms)?;
                changed += 1;
            }
        }
        // Each dead entry is rewritten as the walk reaches it, so `--all` holds one entry
        // at a time however many dead letters there are.
        None => {
            for entry in store.outbox_iter() {
                let entry = entry?;
                if entry.state == EntryState::Dead {
                    requeue(store, entry, now_ms)?;
                    changed += 1;
                }
            }
        }
    }
    store.flush()?;
    Ok(changed)
}

/// Makes one entry pending and due at `now_ms`, with no attempts made.
fn requeue(store: &Store, mut entry: OutboxEntry, now_ms: i64) -> anyhow::Result<()> {
    entry.state = EntryState::Pending;
    entry.created_ms = now_ms;
    entry.next_attempt_ms = now_ms;
    entry.attempts = 0;
    store.update_entry(&entry)?;
    tracing::info!(outbox_id = %entry.id(), sink = %entry.sink, "notification queued again");
    Ok(())
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
