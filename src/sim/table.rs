//! An id-indexed table of JSON records that remembers insertion order.
//!
//! Offers and drafts are listed newest first, and keyset cursors point into this order by
//! sequence number. The table does not interpret the records.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

/// One stored record.
#[derive(Clone, Debug)]
pub(super) struct Row {
    pub(super) id: String,
    /// Position in insertion order. Unique in the table and never reused after removal.
    pub(super) seq: u64,
    pub(super) json: Value,
    /// A hidden record is left out of listings and gets 403 by id, like a draft the token
    /// can no longer see.
    pub(super) hidden: bool,
}

#[derive(Debug, Default)]
pub(super) struct Table {
    rows: BTreeMap<u64, Row>,
    /// Maps each id in `rows` to its sequence number.
    index: HashMap<String, u64>,
    next_seq: u64,
}

impl Table {
    /// Appends a record as the newest one. Returns `false`, and stores nothing, when the id
    /// is already present.
    pub(super) fn insert(&mut self, id: String, json: Value) -> bool {
        if self.index.contains_key(&id) {
            return false;
        }

        let seq = self.next_seq;
        self.next_seq += 1;
        self.index.insert(id.clone(), seq);
        self.rows.insert(seq, Row { id, seq, json, hidden: false });
        true
    }

    pub(super) fn get(&self, id: &str) -> Option<&Row> {
        self.rows.get(self.index.get(id)?)
    }

    pub(super) fn get_mut(&mut self, id: &str) -> Option<&mut Row> {
        self.rows.get_mut(self.index.get(id)?)
    }

    pub(super) fn remove(&mut self, id: &str) -> Option<Row> {
        let seq = self.index.remove(id)?;
        self.rows.remove(&seq)
    }

    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Iterates from the newest record to the oldest.
    pub(super) fn newest_first(&self) -> impl Iterator<Item = &Row> {
        self.rows.values().rev()
    }

    /// Iterates, newest first, over the records inserted before sequence number `seq`.
    pub(super) fn newest_first_before(&self, seq: u64) -> impl Iterator<Item = &Row> {
        self.rows.range(..seq).rev().map(|(_, row)| row)
    }

    /// Returns every id, oldest first.
    pub(super) fn ids_oldest_first(&self) -> Vec<String> {
        self.rows.values().map(|row| row.id.clone()).collect()
    }
}
