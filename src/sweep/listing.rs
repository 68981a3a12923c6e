//! Collecting one offer's listing: one copy of each draft id, and only the drafts that
//! need a diff kept in memory. Pure, like the rest of the diff.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::{IdMap, id_hash};
use crate::akua::model::ListedHead;
use crate::akua::{Draft, ListedDraft};

/// Collects one offer's listing page by page, keeping only the drafts that need a diff.
///
/// A listing without a consistency promise can return a draft twice when rows move between
/// pages. As in [`deduplicate`], the copy with the greater `updated_at` counts, and on a tie
/// the one listed later. Drafts that need no diff are remembered by id only, so a large
/// unchanged offer costs little memory.
#[derive(Debug)]
pub struct ListingCollector<T = ListedDraft> {
    /// [`id_hash`] of every listed id, with the `updated_at` of the copy that counts, or
    /// `i64::MIN` where it had none. Hashes instead of ids keep a 100k-draft listing to
    /// about 2 MiB here.
    seen: IdMap<i64>,
    /// How many of the ids in `seen` have a snapshot entry.
    known: usize,
    /// Drafts that need a diff, in first-listed order; `None` where a fresher copy needed none.
    pending: Vec<Option<T>>,
    /// Maps the [`id_hash`] of each draft in `pending` to its position.
    positions: IdMap<usize>,
}

/// The parts of a listed draft that the collector reads.
pub trait Listed {
    fn id(&self) -> &str;
    /// Unix seconds.
    fn updated_at(&self) -> Option<i64>;
}

impl Listed for Draft {
    fn id(&self) -> &str {
        &self.id
    }

    fn updated_at(&self) -> Option<i64> {
        self.updated_at
    }
}

impl Listed for ListedDraft {
    fn id(&self) -> &str {
        &self.id
    }

    fn updated_at(&self) -> Option<i64> {
        self.updated_at
    }
}

impl Listed for ListedHead<'_> {
    fn id(&self) -> &str {
        &self.id
    }

    fn updated_at(&self) -> Option<i64> {
        self.updated_at
    }
}

impl<T> Default for ListingCollector<T> {
    fn default() -> Self {
        ListingCollector::with_capacity(0)
    }
}

impl<T> ListingCollector<T> {
    /// Returns a collector with room for `drafts` distinct ids.
    pub fn with_capacity(drafts: usize) -> Self {
        ListingCollector {
            seen: IdMap::with_capacity_and_hasher(drafts, Default::default()),
            known: 0,
            pending: Vec::new(),
            positions: IdMap::default(),
        }
    }
}

impl<T: Listed> ListingCollector<T> {
    /// Takes one listed draft. `needs_diff` is true when it differs from its summary.
    pub fn offer(&mut self, draft: T, needs_diff: bool) {
        self.offer_with(draft, needs_diff, |draft| draft);
    }

    /// Takes one listed draft in another form, converting it with `keep` only when it is
    /// kept for a diff, so unchanged drafts are never copied.
    pub fn offer_with<L: Listed>(&mut self, draft: L, needs_diff: bool, keep: impl FnOnce(L) -> T) {
        self.offer_hashed(id_hash(draft.id()), draft, false, needs_diff, keep);
    }

    /// Takes one listed draft whose [`id_hash`] is `hash`, as [`Self::offer_with`] does.
    /// `known` is whether the snapshot has an entry for the draft, for [`Self::known_len`].
    pub fn offer_hashed<L: Listed>(
        &mut self,
        hash: u64,
        draft: L,
        known: bool,
        needs_diff: bool,
        keep: impl FnOnce(L) -> T,
    ) {
        // A missing `updated_at` is older than any.
        let updated_at = draft.updated_at().unwrap_or(i64::MIN);
        match self.seen.entry(hash) {
            Entry::Occupied(mut counted) => {
                if updated_at < *counted.get() {
                    return;
                }
                counted.insert(updated_at);
            }
            Entry::Vacant(slot) => {
                slot.insert(updated_at);
                self.known += usize::from(known);
            }
        }

        match (self.positions.get(&hash).copied(), needs_diff) {
            (Some(position), true) => self.pending[position] = Some(keep(draft)),
            (Some(position), false) => self.pending[position] = None,
            (None, true) => {
                self.positions.insert(hash, self.pending.len());
                self.pending.push(Some(keep(draft)));
            }
            (None, false) => {}
        }
    }

    /// Returns whether the listing so far contains `draft_id`.
    pub fn contains(&self, draft_id: &str) -> bool {
        self.contains_hash(id_hash(draft_id))
    }

    /// Returns whether the listing so far contains the draft whose [`id_hash`] is `hash`.
    pub fn contains_hash(&self, hash: u64) -> bool {
        self.seen.contains_key(&hash)
    }

    /// Counts distinct listed drafts.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Counts distinct listed drafts that have a snapshot entry, as passed to
    /// [`Self::offer_hashed`]. When it equals the number of entries, none is missing.
    pub fn known_len(&self) -> usize {
        self.known
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Returns the drafts that need a diff, each once, in first-listed order.
    pub fn into_pending(self) -> Vec<T> {
        self.pending.into_iter().flatten().collect()
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
