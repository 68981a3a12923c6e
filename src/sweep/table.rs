//! [`SummaryIndex`]: the in-memory summaries of one offer's drafts, keyed by [`id_hash`],
//! in an open-addressing hash table built for the sweep's one lookup per listed draft.
//!
//! With the standard hash map, each lookup missed the CPU cache twice, once for the
//! control bytes and once for the entry. At 200,000 drafts that was about a fifth of the
//! CPU of a sweep that found no change (measured with perf). Here each key is stored
//! beside its summary, and the slot to look at first follows from the key alone, so a
//! sweep can prefetch the slots of a whole page before it looks any of them up.
//!
//! Storage and persistence are not this module's concern; it is a plain data structure.
//!
//! [`id_hash`]: super::id_hash

use super::{EntrySummary, StatusCode};

/// The key that marks a free slot. The summary of a draft whose id hash is this value is
/// kept in [`SummaryIndex::zero`].
const FREE: u64 = 0;

/// The smallest number of slots of a table that is not empty.
const MIN_SLOTS: usize = 16;

/// A map from [`super::id_hash`] to [`EntrySummary`], with linear probing.
#[derive(Clone, Default)]
pub struct SummaryIndex {
    /// Empty, or a power of two in length, and never more than four fifths occupied, so that
    /// every probe sequence reaches a free slot.
    slots: Vec<Slot>,
    /// How many slots are occupied.
    occupied: usize,
    /// The summary for the key [`FREE`], which cannot be stored in a slot.
    zero: Option<EntrySummary>,
}

#[derive(Clone, Copy)]
struct Slot {
    key: u64,
    summary: EntrySummary,
}

const FREE_SLOT: Slot = Slot {
    key: FREE,
    summary: EntrySummary {
        state_hash: 0,
        status_since: 0,
        status: StatusCode::OTHER,
        stuck_announced: false,
        has_draft: false,
    },
};

impl SummaryIndex {
    /// Returns an index with room for `drafts` summaries before it grows.
    pub fn with_capacity(drafts: usize) -> SummaryIndex {
        let mut index = SummaryIndex::default();
        if drafts > 0 {
            index.slots = vec![FREE_SLOT; slots_for(drafts)];
        }
        index
    }

    pub fn len(&self) -> usize {
        self.occupied + usize::from(self.zero.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, key: &u64) -> Option<&EntrySummary> {
        if *key == FREE {
            return self.zero.as_ref();
        }
        let position = self.find(*key)?;
        Some(&self.slots[position].summary)
    }

    pub fn contains_key(&self, key: &u64) -> bool {
        self.get(key).is_some()
    }

    /// Inserts or replaces the summary for `key` and returns the one it replaced.
    pub fn insert(&mut self, key: u64, summary: EntrySummary) -> Option<EntrySummary> {
        if key == FREE {
            return self.zero.replace(summary);
        }
        if (self.occupied + 1) * 5 > self.slots.len() * 4 {
            self.grow();
        }

        let mask = self.slots.len() - 1;
        let mut position = home(key, mask);
        loop {
            let slot = &mut self.slots[position];
            if slot.key == key {
                return Some(std::mem::replace(&mut slot.summary, summary));
            }
            if slot.key == FREE {
                *slot = Slot { key, summary };
                self.occupied += 1;
                return None;
            }
            position = (position + 1) & mask;
        }
    }

    /// Removes the summary for `key` and returns it.
    ///
    /// The slots after it are shifted back where their probe sequences allow, so lookups
    /// never need markers for removed keys.
    pub fn remove(&mut self, key: &u64) -> Option<EntrySummary> {
        if *key == FREE {
            return self.zero.take();
        }
        let mut hole = self.find(*key)?;
        let removed = self.slots[hole].summary;

        let mask = self.slots.len() - 1;
        let mut next = (hole + 1) & mask;
        while self.slots[next].key != FREE {
            // The slot at `next` may fill the hole unless its home lies after the hole, up to
            // `next`, where lookups would then no longer find it.
            let from_home = next.wrapping_sub(home(self.slots[next].key, mask)) & mask;
            let from_hole = next.wrapping_sub(hole) & mask;
            if from_home >= from_hole {
                self.slots[hole] = self.slots[next];
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.slots[hole] = FREE_SLOT;
        self.occupied -= 1;
        Some(removed)
    }

    /// Iterates over every key and summary, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&u64, &EntrySummary)> {
        let slots = self.slots.iter().filter(|slot| slot.key != FREE).map(|slot| (&slot.key, &slot.summary));
        slots.chain(self.zero.as_ref().map(|summary| (&FREE, summary)))
    }

    pub fn values(&self) -> impl Iterator<Item = &EntrySummary> {
        self.iter().map(|(_, summary)| summary)
    }

    /// Asks the CPU to start loading the slot where a lookup of `key` begins. A hint only:
    /// it changes no result.
    pub fn prefetch(&self, key: u64) {
        if self.slots.is_empty() {
            return;
        }
        let slot: *const Slot = &self.slots[home(key, self.slots.len() - 1)];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: prefetching has no effect on memory or program state, and `slot` points
        // into `self.slots` besides.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(slot.cast());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = slot;
    }

    /// Returns the position of the slot whose key is `key`, which is not [`FREE`].
    fn find(&self, key: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut position = home(key, mask);
        loop {
            let found = self.slots[position].key;
            if found == key {
                return Some(position);
            }
            if found == FREE {
                return None;
            }
            position = (position + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![FREE_SLOT; size]);
        self.occupied = 0;
        for slot in old.into_iter().filter(|slot| slot.key != FREE) {
            self.insert(slot.key, slot.summary);
        }
    }
}

impl std::ops::Index<&u64> for SummaryIndex {
    type Output = EntrySummary;

    fn index(&self, key: &u64) -> &EntrySummary {
        self.get(key).expect("no summary for this id hash")
    }
}

impl std::fmt::Debug for SummaryIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(u64, EntrySummary)> for SummaryIndex {
    fn from_iter<I: IntoIterator<Item = (u64, EntrySummary)>>(items: I) -> SummaryIndex {
        let mut index = SummaryIndex::default();
        for (key, summary) in items {
            index.insert(key, summary);
        }
        index
    }
}

/// Returns the slot where the probe sequence of `key` starts. The keys are well-mixed
/// hashes, so their low bits serve.
fn home(key: u64, mask: usize) -> usize {
    key as usize & mask
}

/// Returns the number of slots that keeps `drafts` keys within the load limit.
fn slots_for(drafts: usize) -> usize {
    (drafts * 5 / 4 + 1).next_power_of_two().max(MIN_SLOTS)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn summary(since: u32) -> EntrySummary {
        EntrySummary { status_since: since, ..FREE_SLOT.summary }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64, u32),
        Remove(u64),
    }

    /// Keys from a small range collide often in a small table, and 0 is among them.
    fn op() -> impl Strategy<Value = Op> {
        let key = prop_oneof![0u64..64, any::<u64>()];
        prop_oneof![
            (key.clone(), any::<u32>()).prop_map(|(key, since)| Op::Insert(key, since)),
            key.prop_map(Op::Remove),
        ]
    }

    proptest! {
        #[test]
        fn index_agrees_with_hash_map(ops in proptest::collection::vec(op(), 0..400)) {
            let mut index = SummaryIndex::default();
            let mut model: HashMap<u64, EntrySummary> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(key, since) => {
                        prop_assert_eq!(index.insert(key, summary(since)), model.insert(key, summary(since)));
                    }
                    Op::Remove(key) => prop_assert_eq!(index.remove(&key), model.remove(&key)),
                }
                prop_assert_eq!(index.len(), model.len());
            }
            for (key, expected) in &model {
                prop_assert_eq!(index.get(key), Some(expected));
            }
            for key in 0u64..64 {
                prop_assert_eq!(index.contains_key(&key), model.contains_key(&key));
            }
            let mut listed: Vec<(u64, EntrySummary)> = index.iter().map(|(key, summary)| (*key, *summary)).collect();
            let mut expected: Vec<(u64, EntrySummary)> = model.into_iter().collect();
            listed.sort_by_key(|(key, _)| *key);
            expected.sort_by_key(|(key, _)| *key);
            prop_assert_eq!(listed, expected);
        }
    }

    /// Keys that share their home slot and wrap around the end of the table.
    #[test]
    fn removal_keeps_wrapped_chain_reachable() {
        let mut index = SummaryIndex::with_capacity(1);
        let size = index.slots.len() as u64;
        let keys = [size - 1, 2 * size - 1, 3 * size - 1, size + 1];
        for (since, key) in keys.iter().enumerate() {
            index.insert(*key, summary(since as u32));
        }

        assert_eq!(index.remove(&(size - 1)), Some(summary(0)));
        assert_eq!(index.get(&(2 * size - 1)), Some(&summary(1)));
        assert_eq!(index.get(&(3 * size - 1)), Some(&summary(2)));
        assert_eq!(index.get(&(size + 1)), Some(&summary(3)));
        assert_eq!(index.len(), 3);
    }

    #[test]
    fn load_stays_below_limit() {
        let mut index = SummaryIndex::default();
        for key in 1..=10_000u64 {
            index.insert(key.wrapping_mul(0x9e37_79b9_7f4a_7c15), summary(1));
            assert!(index.occupied * 5 <= index.slots.len() * 4, "{} of {}", index.occupied, index.slots.len());
        }
        assert_eq!(index.len(), 10_000);
        assert_eq!(SummaryIndex::with_capacity(100_000).slots.len(), 131_072);
    }
}
