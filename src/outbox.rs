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
        // Each dead entry is rewritten as the walk reaches it, so `--all` keeps one entry in
        // memory at a time however many dead letters there are.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixture;

    /// Stores event `evt_<seq>` for `sink` under `seq`: created at 1,000 ms with 3 attempts.
    fn store_entry(store: &Store, seq: u64, sink: &str, state: EntryState) -> OutboxEntry {
        let mut notification = fixture::status_changed();
        notification.event.id = format!("evt_{seq}");
        let mut entry = OutboxEntry::new(sink.to_owned(), notification, 1_000);
        entry.seq = seq;
        entry.state = state;
        entry.attempts = 3;
        entry.last_error = Some("receiver\tanswered\n503".to_owned());
        store.update_entry(&entry).unwrap();
        entry
    }

    #[test]
    fn list_shows_every_entry_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for (seq, state) in [(5, EntryState::Dead), (1, EntryState::Pending), (3, EntryState::Dead)] {
            store_entry(&store, seq, "ops", state);
        }

        let table = list(&store).unwrap();
        let lines: Vec<&str> = table.lines().collect();

        assert_eq!(lines.len(), 4, "{table}");
        let ids: Vec<&str> = lines[1..].iter().map(|line| line.split('\t').next().unwrap()).collect();
        assert_eq!(ids, ["evt_1:ops", "evt_3:ops", "evt_5:ops"]);
        assert!(lines[1].contains("\tpending\t1970-01-01T00:00:01Z\t"), "{}", lines[1]);
        assert!(lines[2].contains("\tdead\t-\t"), "{}", lines[2]);
        assert!(lines[2].ends_with("\treceiver answered 503"), "the error stays on one field: {}", lines[2]);
    }

    #[test]
    fn retry_all_requeues_only_dead() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let pending = store_entry(&store, 0, "ops", EntryState::Pending);
        for seq in 1..6 {
            store_entry(&store, seq, if seq % 2 == 0 { "ops" } else { "sales" }, EntryState::Dead);
        }
        let now = from_unix_ms(90_000);

        assert_eq!(retry(&store, None, now).unwrap(), 5);

        let entries = store.outbox_entries().unwrap();
        assert_eq!(entries[0], pending, "a pending entry is left as it was");
        for entry in &entries[1..] {
            assert_eq!(entry.state, EntryState::Pending, "{}", entry.id());
            assert_eq!(
                (entry.created_ms, entry.next_attempt_ms, entry.attempts),
                (90_000, 90_000, 0),
                "{}",
                entry.id()
            );
        }
        assert_eq!(retry(&store, None, now).unwrap(), 0, "nothing is dead any more");
    }

    #[test]
    fn retry_and_drop_named_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store_entry(&store, 1, "ops", EntryState::Dead);
        store_entry(&store, 2, "ops", EntryState::Dead);

        assert_eq!(retry(&store, Some("evt_2:ops"), from_unix_ms(90_000)).unwrap(), 1);
        let states: Vec<EntryState> = store.outbox_iter().map(|entry| entry.unwrap().state).collect();
        assert_eq!(states, [EntryState::Dead, EntryState::Pending]);

        assert_eq!(drop(&store, "evt_1").unwrap(), 1);
        assert_eq!(store.outbox_counts().unwrap(), (1, 0));
        let error = drop(&store, "evt_1").unwrap_err().to_string();
        assert!(error.contains("no outbox entry `evt_1`"), "{error}");
    }
}
