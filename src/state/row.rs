//! The `drafts` rows: how one [`SnapshotEntry`] is laid out in bytes, and read back.
//!
//! A row is the entry as JSON with the draft object inline, compressed with deflate and
//! led by [`DEFLATED`]. Rows written before compression are plain JSON, which starts with
//! `{`, and are read as they are until the draft changes and the row is written again.
//!
//! Compression is here for memory more than for disk. sled keeps every leaf a sweep reads
//! or writes in memory for a while, up to 16 rows per leaf, and a sweep that changes 1,000
//! drafts touches about 1,000 leaves. Draft objects of about 1 KiB deflate to about half.
//!
//! Trees and transactions belong to [`super::Store`], not to this module.

use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::akua::{DraftStatus, TerminationReason};
use crate::sweep::{EntrySummary, SnapshotEntry};

/// The first byte of a compressed row. A JSON row never starts with it.
const DEFLATED: u8 = 1;

/// The deflate level: the fastest. On the simulator's draft objects, level 6 saved under
/// 3% more, and every level above 1 costs more CPU on a large baseline.
const LEVEL: u8 = 1;

/// The largest row this build inflates. A draft object is a few KiB, and a damaged row
/// must not make a read allocate without bound.
const MAX_ROW: usize = 16 * 1024 * 1024;

/// A [`SnapshotEntry`] as the `drafts` tree stores it, with the draft object as `D`:
/// [`serde_json::Value`] to read an entry, [`serde::de::IgnoredAny`] to read only its
/// summary.
///
/// Format 1 kept draft objects in a tree of their own and marked the rows that had one
/// with `has_draft`. Rows older still have neither field.
#[derive(Deserialize)]
pub(super) struct EntryRow<D> {
    etag: String,
    status: DraftStatus,
    termination_reason: Option<TerminationReason>,
    offer_id: String,
    first_seen: i64,
    status_since: i64,
    #[serde(default)]
    stuck_announced: bool,
    /// Format 1 only: whether `draft_objects` has this entry's draft object.
    #[serde(default)]
    pub(super) has_draft: bool,
    #[serde(default = "Option::default")]
    pub(super) draft: Option<D>,
}

/// An [`EntryRow`] as written, borrowing from the entry.
#[derive(Serialize)]
struct EntryRowOut<'a> {
    etag: &'a str,
    status: &'a DraftStatus,
    termination_reason: &'a Option<TerminationReason>,
    offer_id: &'a str,
    first_seen: i64,
    status_since: i64,
    stuck_announced: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    draft: Option<&'a serde_json::Value>,
}

/// Encodes an entry as its compressed `drafts` row.
pub(super) fn encode_entry(entry: &SnapshotEntry) -> Vec<u8> {
    let json = super::encode(&EntryRowOut {
        etag: &entry.etag,
        status: &entry.status,
        termination_reason: &entry.termination_reason,
        offer_id: &entry.offer_id,
        first_seen: entry.first_seen,
        status_since: entry.status_since,
        stuck_announced: entry.stuck_announced,
        draft: entry.draft.as_ref(),
    });

    let mut row = Vec::with_capacity(json.len() / 2 + 16);
    row.push(DEFLATED);
    row.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(&json, LEVEL));
    row
}

/// Decodes a `drafts` row, compressed or plain JSON.
pub(super) fn decode_row<D: for<'de> Deserialize<'de>>(key: &[u8], bytes: &[u8]) -> Result<EntryRow<D>, StoreError> {
    let Some((&DEFLATED, packed)) = bytes.split_first() else {
        return super::decode(key, bytes);
    };

    let json =
        miniz_oxide::inflate::decompress_to_vec_with_limit(packed, MAX_ROW).map_err(|error| StoreError::Damaged {
            key: super::printable_key(key),
            reason: format!("its compressed bytes do not inflate ({error})"),
        })?;
    super::decode(key, &json)
}

impl EntryRow<serde_json::Value> {
    pub(super) fn into_entry(self) -> SnapshotEntry {
        SnapshotEntry {
            etag: self.etag,
            status: self.status,
            termination_reason: self.termination_reason,
            offer_id: self.offer_id,
            first_seen: self.first_seen,
            status_since: self.status_since,
            stuck_announced: self.stuck_announced,
            draft: self.draft,
        }
    }
}

impl<D> EntryRow<D> {
    pub(super) fn summary(&self) -> EntrySummary {
        EntrySummary {
            state_hash: crate::sweep::state_hash(&self.status, &self.etag),
            status: crate::sweep::StatusCode::of(&self.status),
            status_since: crate::sweep::since_seconds(self.status_since),
            stuck_announced: self.stuck_announced,
            has_draft: self.draft.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::de::IgnoredAny;
    use serde_json::json;

    use super::*;

    fn entry(draft: Option<serde_json::Value>) -> SnapshotEntry {
        SnapshotEntry {
            etag: "3ae05b8998fab80a".into(),
            status: DraftStatus::Payment,
            termination_reason: None,
            offer_id: "offer_1".into(),
            first_seen: 1_796_431_632,
            status_since: 1_796_431_700,
            stuck_announced: true,
            draft,
        }
    }

    fn draft_object() -> serde_json::Value {
        json!({
            "id": "odft_ve1z8j08tzcat6fg0x1mvb52",
            "offer_id": "offer_1",
            "status": "payment",
            "cluster_ready": true,
            "server_joined": true,
            "payment_completed": false,
            "created_at": 1_796_431_632,
            "updated_at": 1_796_431_632,
            "etag": "3ae05b8998fab80a",
            "customer_email": "ivan21@umbrella.example.com",
            "workspace_id": "ws_6xw2krfach6asgc684e3dadh",
            "cluster_id": "clu_xabzdg5krs87g784v7b3r2gr",
            "current_checkout_session": {
                "stripe_environment": "live",
                "id": "cs_live_9sCYDtniAcfKVbUwo4icrEzBFbXaMXgi8pgTZDAE",
                "url": "https://checkout.stripe.com/c/pay/cs_live_9sCYDtniAcfKVbUwo4icrEzBFbXaMXgi8pgTZDAE",
                "expires_at": 1_796_518_032
            }
        })
    }

    #[test]
    fn row_round_trips_compressed() {
        let original = entry(Some(draft_object()));
        let row = encode_entry(&original);
        let json = serde_json::to_vec(&draft_object()).unwrap();

        assert_eq!(row[0], DEFLATED);
        assert!(row.len() < json.len() * 3 / 4, "{} bytes for a draft object of {}", row.len(), json.len());
        let read: EntryRow<serde_json::Value> = decode_row(b"offer_1\0odft_1", &row).unwrap();
        assert_eq!(read.into_entry(), original);
    }

    #[test]
    fn plain_json_row_still_reads() {
        let original = entry(Some(draft_object()));
        let plain = br#"{"etag":"3ae05b8998fab80a","status":"payment","termination_reason":null,
            "offer_id":"offer_1","first_seen":1796431632,"status_since":1796431700,
            "stuck_announced":true,"draft":DRAFT}"#;
        let plain = String::from_utf8_lossy(plain).replace("DRAFT", &draft_object().to_string());

        let read: EntryRow<serde_json::Value> = decode_row(b"offer_1\0odft_1", plain.as_bytes()).unwrap();
        assert_eq!(read.into_entry(), original);
    }

    #[test]
    fn summary_read_skips_draft() {
        let original = entry(Some(draft_object()));
        let row = encode_entry(&original);

        let read: EntryRow<IgnoredAny> = decode_row(b"offer_1\0odft_1", &row).unwrap();
        let summary = read.summary();
        assert!(summary.has_draft);
        assert!(summary.stuck_announced);
        assert_eq!(summary.state_hash, crate::sweep::state_hash(&DraftStatus::Payment, "3ae05b8998fab80a"));
    }

    #[test]
    fn damaged_row_names_key() {
        let mut row = encode_entry(&entry(Some(draft_object())));
        row.truncate(row.len() / 2);

        let error = decode_row::<serde_json::Value>(b"offer_1\0odft_1", &row).err().unwrap().to_string();
        assert!(error.contains("offer_1/odft_1"), "{error}");
        assert!(error.contains("inflate"), "{error}");
    }

    #[test]
    fn unknown_row_names_key_and_fix() {
        let rows: [&[u8]; 4] = [b"", &[2, b'{'], b"[1]", &[DEFLATED, 0xff]];

        for row in rows {
            let error = decode_row::<serde_json::Value>(b"offer_1\0odft_3", row).err().unwrap().to_string();
            assert!(error.contains("`offer_1/odft_3`"), "{row:?}: {error}");
            assert!(error.contains("restore the state directory from a backup"), "{row:?}: {error}");
            assert!(error.contains("move it aside"), "{row:?}: {error}");
        }
    }

    #[test]
    fn garbage_after_tag_is_damaged() {
        let row = [DEFLATED, 0xff, 0xff, 0xff, 0xff];

        let error = decode_row::<serde_json::Value>(b"offer_1\0odft_2", &row).err().unwrap();
        assert!(matches!(error, StoreError::Damaged { .. }), "{error}");
    }
}
