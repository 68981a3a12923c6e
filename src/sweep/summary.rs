//! The compact summary of a snapshot entry that lets a sweep skip unchanged drafts, and the
//! hashes it is keyed and compared by.
//!
//! The store keeps one [`EntrySummary`] per known draft in memory and on disk, keyed by
//! [`id_hash`], so that a sweep of a large offer reads no entry of a draft that did not
//! change. The hashes are part of the stored format: changing either function means a new
//! store format.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::{DiffContext, SnapshotEntry, stuck_due_at};
use crate::akua::DraftStatus;

/// The part of a snapshot entry that decides whether a listed draft needs a diff at all.
/// 16 bytes, so that 100,000 of them with their keys fit in about 3 MiB.
///
/// A summary may only err towards "changed": a draft it calls changed is diffed against
/// its full entry, which decides, while one it calls unchanged is skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntrySummary {
    /// [`state_hash`] of the entry's status and etag.
    pub state_hash: u64,
    /// [`SnapshotEntry::status_since`] by [`since_seconds`].
    pub status_since: u32,
    pub status: StatusCode,
    pub stuck_announced: bool,
    /// Whether the entry keeps the draft object (entries from older builds do not).
    pub has_draft: bool,
}

impl EntrySummary {
    pub fn of(entry: &SnapshotEntry) -> EntrySummary {
        EntrySummary {
            state_hash: state_hash(&entry.status, &entry.etag),
            status_since: since_seconds(entry.status_since),
            status: StatusCode::of(&entry.status),
            stuck_announced: entry.stuck_announced,
            has_draft: entry.draft.is_some(),
        }
    }

    /// Returns whether [`super::diff_draft`] would write nothing and report nothing for a
    /// draft listed with this status and etag.
    pub fn is_unchanged(&self, status: &DraftStatus, etag: &str, cx: &DiffContext<'_>) -> bool {
        self.has_draft
            && self.state_hash == state_hash(status, etag)
            && !stuck_due_at(status, i64::from(self.status_since), self.stuck_announced, cx)
    }
}

/// Narrows a unix time in seconds to 32 bits. A time outside 1970 to 2106 becomes 0, the
/// earliest, which makes a stay look long: a stuck check then reads the full entry.
pub fn since_seconds(unix_seconds: i64) -> u32 {
    u32::try_from(unix_seconds).unwrap_or(0)
}

/// A draft status in one byte: its position in [`DraftStatus::KNOWN`], or [`StatusCode::OTHER`]
/// for a status this build does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusCode(u8);

impl StatusCode {
    /// Any status missing from [`DraftStatus::KNOWN`].
    pub const OTHER: StatusCode = StatusCode(u8::MAX);

    pub fn of(status: &DraftStatus) -> StatusCode {
        DraftStatus::KNOWN
            .iter()
            .position(|known| *known == status.as_str())
            .and_then(|position| u8::try_from(position).ok())
            .map_or(StatusCode::OTHER, StatusCode)
    }

    pub fn from_byte(byte: u8) -> StatusCode {
        StatusCode(byte)
    }

    pub fn as_byte(self) -> u8 {
        self.0
    }

    /// As [`DraftStatus::is_terminal`]; an unknown status is not terminal.
    pub fn is_terminal(self) -> bool {
        DraftStatus::KNOWN.get(usize::from(self.0)).is_some_and(|text| DraftStatus::parse(text).is_terminal())
    }
}

/// Hashes a status and an etag together: equal hashes mean neither changed.
///
/// N.B. two different etags of one draft with the same 64-bit hash would hide an etag-only
/// or field change; at 64 bits that is negligible.
pub fn state_hash(status: &DraftStatus, etag: &str) -> u64 {
    let hash = fnv1a_64(FNV_OFFSET, status.as_str().as_bytes());
    fnv1a_64(fnv1a_64(hash, &[0]), etag.as_bytes())
}

/// Hashes a draft id for the summaries and the listing's set of seen ids: 64-bit FNV-1a,
/// mixed so that every bit of the result depends on every bit of the id.
///
/// N.B. two ids of one offer with the same hash would count as one draft; at 64 bits that
/// is negligible.
pub fn id_hash(id: &str) -> u64 {
    let mut hash = fnv1a_64(FNV_OFFSET, id.as_bytes());
    // The finalizer of MurmurHash3: FNV-1a's low bits depend weakly on the last bytes.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// The offset basis of 64-bit FNV-1a: the start value for [`fnv1a_64`].
pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Continues the 64-bit FNV-1a hash `start` over `bytes`.
pub(crate) fn fnv1a_64(start: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(start, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

/// A map keyed by [`id_hash`], which needs no further hashing.
pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Passes a `u64` key through: the keys of an [`IdMap`] are well-mixed hashes already.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = fnv1a_64(self.0 ^ FNV_OFFSET, bytes);
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn status_codes_round_trip_known_statuses() {
        for text in DraftStatus::KNOWN {
            let status = DraftStatus::parse(text);
            let code = StatusCode::of(&status);
            assert_ne!(code, StatusCode::OTHER, "{text}");
            assert_eq!(code.is_terminal(), status.is_terminal(), "{text}");
            assert_eq!(StatusCode::from_byte(code.as_byte()), code);
        }
        let unknown = StatusCode::of(&DraftStatus::parse("paused"));
        assert_eq!(unknown, StatusCode::OTHER);
        assert!(!unknown.is_terminal(), "an unknown status stays watched");
    }

    #[test]
    fn state_hash_tells_status_and_etag_apart() {
        let done = DraftStatus::Done;
        assert_eq!(state_hash(&done, "e1"), state_hash(&done, "e1"));
        assert_ne!(state_hash(&done, "e1"), state_hash(&done, "e2"));
        assert_ne!(state_hash(&done, "e1"), state_hash(&DraftStatus::Install, "e1"));
        assert_ne!(state_hash(&DraftStatus::parse("a"), "b"), state_hash(&DraftStatus::parse("ab"), ""));
    }

    #[test]
    fn summary_is_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<EntrySummary>(), 16);
    }

    #[test]
    fn since_outside_range_reads_as_earliest() {
        assert_eq!(since_seconds(1_764_000_000), 1_764_000_000);
        assert_eq!(since_seconds(-5), 0);
        assert_eq!(since_seconds(i64::from(u32::MAX) + 1), 0);
    }

    /// A summary whose stay start was out of range reports a stuck draft as changed.
    #[test]
    fn out_of_range_since_errs_towards_changed() {
        let stuck = BTreeMap::from([(DraftStatus::Configure, std::time::Duration::from_secs(60))]);
        let cx = DiffContext { now: 1_000, announce_new: true, stuck: &stuck };
        let mut entry = SnapshotEntry {
            etag: "e".into(),
            status: DraftStatus::Configure,
            termination_reason: None,
            offer_id: "o".into(),
            first_seen: 0,
            status_since: -1,
            stuck_announced: false,
            draft: Some(serde_json::json!({})),
        };
        assert!(!EntrySummary::of(&entry).is_unchanged(&DraftStatus::Configure, "e", &cx));
        entry.status_since = 990;
        assert!(EntrySummary::of(&entry).is_unchanged(&DraftStatus::Configure, "e", &cx));
    }

    /// The hashes are stored; these values pin them.
    #[test]
    fn hashes_are_stable() {
        assert_eq!(id_hash("odft_1"), 0x158e_67ed_d9e0_b5b3);
        assert_eq!(fnv1a_64(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(state_hash(&DraftStatus::Done, ""), fnv1a_64(FNV_OFFSET, b"done\0"));
    }
}
