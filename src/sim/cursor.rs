//! Pagination cursors: opaque to clients, readable by the simulated API.
//!
//! A cursor is URL-safe base64 of a small JSON object. It records the world's cursor salt,
//! the listing it continues and how far that listing got. This module only encodes and
//! decodes; the listing code decides what a cursor means and when it is stale.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// A decoded cursor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Cursor {
    /// The world's salt when the cursor was issued. A different salt makes the cursor stale.
    #[serde(rename = "s")]
    pub(super) salt: String,
    /// The endpoint and filters of the listing, such as `order_drafts?offer=offer_1&status=`.
    #[serde(rename = "l")]
    pub(super) listing: String,
    /// The 0-based page this cursor fetches.
    #[serde(rename = "p")]
    pub(super) page: u32,
    /// With keyset pagination, the sequence number of the last row already returned. With
    /// offset pagination, the number of rows already returned.
    #[serde(rename = "k")]
    pub(super) position: u64,
}

impl Cursor {
    pub(super) fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("a cursor always serializes");
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Reads a cursor, or returns `None` for anything this module did not encode.
    pub(super) fn decode(text: &str) -> Option<Cursor> {
        let json = URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()?;
        serde_json::from_slice(&json).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let cursor = Cursor { salt: "x1".into(), listing: "order_drafts?offer=o".into(), page: 2, position: 41 };
        let text = cursor.encode();
        assert!(text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{text}");
        assert_eq!(Cursor::decode(&text), Some(cursor));
    }

    #[test]
    fn cursor_rejects_garbage() {
        assert_eq!(Cursor::decode("not a cursor"), None);
        assert_eq!(Cursor::decode(""), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode(b"{\"s\":1}")), None);
    }
}
