//! The on-disk form of the entry summaries: each offer's summaries split into [`SHARDS`]
//! shards by id hash, one sled value per shard.
//!
//! A sweep needs the summary of every known draft of an offer, and loading them from one
//! row per draft made sled page in the whole `drafts` tree, about 30 MiB of memory at
//! 100,000 drafts. A few hundred shard values of packed records hold the same facts in
//! about 5 MiB, and a commit rewrites only the shards of the drafts it changed. The shards
//! are derived data: [`super::Store`] rebuilds them from the `drafts` tree when the layout
//! calls for it.
//!
//! A shard value is a sequence of records:
//!
//! | bytes | field |
//! | --- | --- |
//! | 2 | id length n, little-endian |
//! | n | draft id, UTF-8 |
//! | 8 | [`EntrySummary::state_hash`], little-endian |
//! | 8 | [`EntrySummary::status_since`], little-endian |
//! | 1 | [`EntrySummary::status`] |
//! | 1 | flags: 1 stuck announced, 2 has the draft object |

use std::collections::BTreeMap;

use crate::sweep::{EntrySummary, StatusCode, since_seconds};

/// How many shards an offer's summaries are split into. Part of the stored format.
pub const SHARDS: u16 = 1024;

const STUCK_ANNOUNCED: u8 = 1;
const HAS_DRAFT: u8 = 2;

/// Returns the shard of the draft whose [`crate::sweep::id_hash`] is `id_hash`.
pub fn shard_of(id_hash: u64) -> u16 {
    // The top bits: `SHARDS` is a power of two, and the hash is well mixed.
    (id_hash >> (64 - SHARDS.trailing_zeros())) as u16
}

/// Returns the key of one shard of one offer: the offer id, a zero byte, the shard number
/// in big-endian order, so that one offer's shards share a prefix.
pub fn shard_key(offer_id: &str, shard: u16) -> Vec<u8> {
    let mut key = offer_prefix(offer_id);
    key.extend_from_slice(&shard.to_be_bytes());
    key
}

/// Returns the prefix shared by every shard key of one offer.
pub fn offer_prefix(offer_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(offer_id.len() + 3);
    key.extend_from_slice(offer_id.as_bytes());
    key.push(0);
    key
}

/// A shard value that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("summary record at byte {offset} is cut short or not UTF-8")]
pub struct ShardError {
    offset: usize,
}

/// Iterates over the records of one shard value.
pub fn records(value: &[u8]) -> impl Iterator<Item = Result<(&str, EntrySummary), ShardError>> {
    let mut offset = 0;
    std::iter::from_fn(move || {
        if offset >= value.len() {
            return None;
        }
        let record = read_record(value, offset);
        match &record {
            Ok((next, _, _)) => offset = *next,
            Err(_) => offset = value.len(),
        }
        Some(record.map(|(_, id, summary)| (id, summary)))
    })
}

fn read_record(value: &[u8], offset: usize) -> Result<(usize, &str, EntrySummary), ShardError> {
    let error = ShardError { offset };
    let take = |from: usize, length: usize| value.get(from..from + length).ok_or(ShardError { offset });

    let length = usize::from(u16::from_le_bytes(take(offset, 2)?.try_into().map_err(|_| ShardError { offset })?));
    let id = std::str::from_utf8(take(offset + 2, length)?).map_err(|_| error)?;
    let fixed = take(offset + 2 + length, 18)?;
    let summary = EntrySummary {
        state_hash: u64::from_le_bytes(fixed[0..8].try_into().expect("8 bytes")),
        status_since: since_seconds(i64::from_le_bytes(fixed[8..16].try_into().expect("8 bytes"))),
        status: StatusCode::from_byte(fixed[16]),
        stuck_announced: fixed[17] & STUCK_ANNOUNCED != 0,
        has_draft: fixed[17] & HAS_DRAFT != 0,
    };
    Ok((offset + 2 + length + 18, id, summary))
}

/// Appends one record to a shard value.
///
/// N.B. an id longer than 65,535 bytes is cut to that length; Akua's ids are about 30.
pub fn push_record(value: &mut Vec<u8>, id: &str, summary: &EntrySummary) {
    let mut length = id.len().min(usize::from(u16::MAX));
    while !id.is_char_boundary(length) {
        length -= 1;
    }
    value.extend_from_slice(&(length as u16).to_le_bytes());
    value.extend_from_slice(&id.as_bytes()[..length]);
    value.extend_from_slice(&summary.state_hash.to_le_bytes());
    value.extend_from_slice(&i64::from(summary.status_since).to_le_bytes());
    value.push(summary.status.as_byte());
    let flags =
        if summary.stuck_announced { STUCK_ANNOUNCED } else { 0 } | if summary.has_draft { HAS_DRAFT } else { 0 };
    value.push(flags);
}

/// Returns `old` with `changes` applied: each id's record replaced by the given summary, or
/// dropped for `None`.
pub fn apply(old: &[u8], changes: &BTreeMap<String, Option<EntrySummary>>) -> Result<Vec<u8>, ShardError> {
    let mut value = Vec::with_capacity(old.len() + changes.len() * 48);
    for record in records(old) {
        let (id, summary) = record?;
        if !changes.contains_key(id) {
            push_record(&mut value, id, &summary);
        }
    }
    for (id, summary) in changes {
        if let Some(summary) = summary {
            push_record(&mut value, id, summary);
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::akua::DraftStatus;
    use crate::sweep::{id_hash, state_hash};

    fn summary(etag: &str, since: u32, stuck_announced: bool) -> EntrySummary {
        EntrySummary {
            state_hash: state_hash(&DraftStatus::Configure, etag),
            status_since: since,
            status: StatusCode::of(&DraftStatus::Configure),
            stuck_announced,
            has_draft: true,
        }
    }

    #[test]
    fn shard_records_round_trip() {
        let mut value = Vec::new();
        push_record(&mut value, "odft_1", &summary("a", 0, true));
        push_record(&mut value, "odft_é", &summary("b", u32::MAX, false));
        let read: Vec<(&str, EntrySummary)> = records(&value).collect::<Result<_, _>>().unwrap();
        assert_eq!(read, [("odft_1", summary("a", 0, true)), ("odft_é", summary("b", u32::MAX, false))]);
    }

    #[test]
    fn apply_replaces_adds_and_drops() {
        let mut old = Vec::new();
        push_record(&mut old, "odft_1", &summary("a", 1, false));
        push_record(&mut old, "odft_2", &summary("a", 1, false));
        let changes = BTreeMap::from([
            ("odft_2".to_owned(), None),
            ("odft_1".to_owned(), Some(summary("b", 2, false))),
            ("odft_3".to_owned(), None),
        ]);
        let new = apply(&old, &changes).unwrap();
        let read: Vec<(&str, EntrySummary)> = records(&new).collect::<Result<_, _>>().unwrap();
        assert_eq!(read, [("odft_1", summary("b", 2, false))]);
    }

    #[test]
    fn truncated_shard_is_an_error() {
        let mut value = Vec::new();
        push_record(&mut value, "odft_1", &summary("a", 1, false));
        value.pop();
        let read: Vec<_> = records(&value).collect();
        assert_eq!(read.len(), 1);
        assert!(read[0].is_err());
        assert!(records(&[0xff]).next().unwrap().is_err());
    }

    #[test]
    fn shards_spread_ids() {
        let mut counts = vec![0u32; usize::from(SHARDS)];
        for index in 0..20_480 {
            counts[usize::from(shard_of(id_hash(&format!("odft_{index:024}"))))] += 1;
        }
        // 20 per shard on average; a shard with none or with three times that would mean a
        // poor hash.
        assert!(counts.iter().all(|count| (1..60).contains(count)), "{:?}", counts.iter().max());
    }
}
