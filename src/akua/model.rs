//! Types for what the Akua API returns: order drafts, offers and list pages.
//!
//! Parsing is tolerant by design. Unknown fields are ignored for the typed view but kept in
//! [`Draft::raw`], optional fields may be missing, an unknown `status` or
//! `termination_reason` is carried as its string, and millisecond timestamps are accepted.
//! This module does no I/O.

use std::fmt;

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use super::scan::ScannedItem;

/// Defines a string enum that keeps values it does not know as `Other(String)`.
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $($variant:ident => $text:literal,)* }
    ) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($variant,)*
            /// A value this version of draftwatch does not know, carried as sent.
            Other(String),
        }

        impl $name {
            /// Every value Akua documents, in lifecycle order.
            pub const KNOWN: &'static [&'static str] = &[$($text,)*];

            /// Maps any string to a value; unknown strings become `Other`.
            pub fn parse(text: &str) -> Self {
                match text {
                    $($text => Self::$variant,)*
                    other => Self::Other(other.to_owned()),
                }
            }

            /// Returns the wire spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)*
                    Self::Other(text) => text,
                }
            }

            /// Returns whether the value is one Akua documents.
            pub fn is_known(&self) -> bool {
                !matches!(self, Self::Other(_))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Ok(Self::parse(&text))
            }
        }
    };
}

open_enum! {
    /// The wizard phase of an order draft. `done` and `terminated` are terminal.
    pub enum DraftStatus {
        Auth => "auth",
        Workspace => "workspace",
        Compute => "compute",
        ComputeBootstrap => "compute_bootstrap",
        Configure => "configure",
        Payment => "payment",
        Install => "install",
        Done => "done",
        CleaningUp => "cleaning_up",
        Terminated => "terminated",
    }
}

impl DraftStatus {
    /// Returns whether a draft in this status can still change status.
    ///
    /// N.B. an unknown status counts as non-terminal, so a draft in it stays watched.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Done | Self::Terminated)
    }
}

open_enum! {
    /// The reason a draft ended, set when its status is `terminated`.
    pub enum TerminationReason {
        Timeout => "timeout",
        Revoked => "revoked",
        OfferExpired => "offer_expired",
        InstallFailed => "install_failed",
        ClusterAllocationFailed => "cluster_allocation_failed",
        QuotaExceeded => "quota_exceeded",
    }
}

/// Unix timestamps at or above this value are read as milliseconds.
///
/// 10^11 seconds is in the year 5138, while 10^11 milliseconds is in March 1973, so no
/// real draft timestamp is ambiguous.
const MILLISECOND_THRESHOLD: i64 = 100_000_000_000;

/// Converts a Unix timestamp in seconds or milliseconds to seconds.
pub fn normalize_unix_seconds(value: i64) -> i64 {
    if value.abs() >= MILLISECOND_THRESHOLD { value / 1000 } else { value }
}

/// An order draft as listed, with the typed fields draftwatch needs and the whole object.
#[derive(Clone, Debug, PartialEq)]
pub struct Draft {
    /// `odft_...`, never empty.
    pub id: String,
    /// The offer the draft redeems, never empty.
    pub offer_id: String,
    pub status: DraftStatus,
    /// Changes whenever Akua writes the row. An empty string when the API omitted it.
    pub etag: String,
    pub termination_reason: Option<TerminationReason>,
    pub customer_email: Option<String>,
    /// Unix seconds, already converted from milliseconds where needed.
    pub updated_at: Option<i64>,
    /// The object exactly as the API returned it, unknown fields included.
    pub raw: Value,
}

/// An error reading a listed object as a draft.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DraftParseError {
    #[error("listed item is not a JSON object")]
    NotAnObject,
    #[error("draft has no string field `{field}`")]
    MissingField { field: &'static str },
}

impl Draft {
    /// Reads the typed view of one listed draft and keeps the whole object.
    ///
    /// Only `id`, `offer_id` and `status` are required. A missing `etag` becomes the empty
    /// string, so every later write still shows up as an etag change.
    pub fn from_value(raw: Value) -> Result<Self, DraftParseError> {
        let object = raw.as_object().ok_or(DraftParseError::NotAnObject)?;

        let required = |field: &'static str| -> Result<String, DraftParseError> {
            match object.get(field).and_then(Value::as_str) {
                Some(text) if !text.is_empty() => Ok(text.to_owned()),
                _ => Err(DraftParseError::MissingField { field }),
            }
        };
        let id = required("id")?;
        let offer_id = required("offer_id")?;
        let status = DraftStatus::parse(&required("status")?);

        let optional_str =
            |field: &str| object.get(field).and_then(Value::as_str).filter(|text| !text.is_empty()).map(str::to_owned);
        let etag = match object.get("etag") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Number(number)) => number.to_string(),
            _ => String::new(),
        };
        let termination_reason = optional_str("termination_reason").map(|text| TerminationReason::parse(&text));
        let customer_email = optional_str("customer_email");
        let updated_at = object.get("updated_at").and_then(Value::as_i64).map(normalize_unix_seconds);

        Ok(Draft { id, offer_id, status, etag, termination_reason, customer_email, updated_at, raw })
    }
}

/// A listed draft that a sweep keeps for a diff: its head and its JSON text, copied out of
/// the page by [`ListedHead::into_owned`].
///
/// Reading the whole object into a [`Draft`] costs most of a sweep's CPU, so a listing
/// reads only the head of each item ([`ListedHead`]), and [`ListedDraft::into_draft`]
/// parses the rest for the few drafts that changed.
#[derive(Clone, Debug)]
pub struct ListedDraft {
    /// Never empty.
    pub id: String,
    pub status: DraftStatus,
    /// As in [`Draft::etag`].
    pub etag: String,
    /// As in [`Draft::updated_at`].
    pub updated_at: Option<i64>,
    /// The item's JSON text, checked for its structure only until [`ListedDraft::into_draft`].
    raw: Box<str>,
}

/// The fields [`ListedHead`] reads, borrowed from the page.
#[derive(Deserialize)]
struct DraftFields<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    offer_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    etag: Option<&'a RawValue>,
    #[serde(borrow, default)]
    updated_at: Option<&'a RawValue>,
}

/// A listed draft's head, borrowed from its page: what a sweep reads of every listed
/// draft. [`ListedHead::into_owned`] copies the item out for the drafts that changed.
#[derive(Clone, Debug)]
pub struct ListedHead<'a> {
    /// Never empty.
    pub id: Cow<'a, str>,
    pub status: DraftStatus,
    /// As in [`Draft::etag`].
    pub etag: Cow<'a, str>,
    /// As in [`Draft::updated_at`].
    pub updated_at: Option<i64>,
    /// The item's JSON text.
    raw: &'a str,
}

impl<'a> ListedHead<'a> {
    /// Reads the head of one item that [`super::scan::scan_page`] found, applying the same
    /// rules as [`Draft::from_value`].
    pub fn from_scanned(item: ScannedItem<'a>) -> Result<ListedHead<'a>, DraftParseError> {
        if let Some(spans) = item.head
            && let (Some(id), Some(offer_id), Some(status)) = (spans.id, spans.offer_id, spans.status)
            && !id.is_empty()
            && !offer_id.is_empty()
            && !status.is_empty()
        {
            return Ok(ListedHead {
                id: Cow::Borrowed(id),
                status: DraftStatus::parse(status),
                etag: spans.etag.map_or(Cow::Borrowed(""), etag_text),
                updated_at: spans.updated_at.and_then(unix_time).map(normalize_unix_seconds),
                raw: item.text,
            });
        }
        Self::parse(item.text)
    }

    /// Reads the head of one listed item, the JSON text `raw`, with serde_json, applying
    /// the same rules as [`Draft::from_value`].
    pub fn parse(raw: &'a str) -> Result<ListedHead<'a>, DraftParseError> {
        // serde also reads a struct from an array, so the object check comes first.
        if !raw.trim_start().starts_with('{') {
            return Err(DraftParseError::NotAnObject);
        }
        let fields: DraftFields<'a> = match serde_json::from_str(raw) {
            Ok(fields) => fields,
            // N.B. an item whose fields have unexpected types is read whole, which yields
            // the same outcome and error as the full reading would.
            Err(_) => {
                let value = serde_json::from_str(raw).map_err(|_| DraftParseError::NotAnObject)?;
                let draft = Draft::from_value(value)?;
                return Ok(ListedHead {
                    id: Cow::Owned(draft.id),
                    status: draft.status,
                    etag: Cow::Owned(draft.etag),
                    updated_at: draft.updated_at,
                    raw,
                });
            }
        };

        let required = |value: Option<Cow<'a, str>>, field: &'static str| match value {
            Some(text) if !text.is_empty() => Ok(text),
            _ => Err(DraftParseError::MissingField { field }),
        };
        let id = required(fields.id, "id")?;
        required(fields.offer_id, "offer_id")?;
        let status = DraftStatus::parse(&required(fields.status, "status")?);
        let etag = fields.etag.map_or(Cow::Borrowed(""), |raw| etag_text(raw.get()));
        let updated_at =
            fields.updated_at.and_then(|raw| serde_json::from_str::<i64>(raw.get()).ok()).map(normalize_unix_seconds);

        Ok(ListedHead { id, status, etag, updated_at, raw })
    }

    /// Copies the item out of its page.
    pub fn into_owned(self) -> ListedDraft {
        ListedDraft {
            id: self.id.into_owned(),
            status: self.status,
            etag: self.etag.into_owned(),
            updated_at: self.updated_at,
            raw: self.raw.into(),
        }
    }
}

/// Reads an `updated_at` the way serde_json reads an `i64`: plain digits directly, and
/// anything else through serde_json, since `str::parse` reads `-0` as 0 where serde_json
/// reads a float.
fn unix_time(text: &str) -> Option<i64> {
    let plain = text.bytes().all(|byte| byte.is_ascii_digit()) && (text.len() == 1 || !text.starts_with('0'));
    match plain && !text.is_empty() {
        true => text.parse().ok(),
        false => serde_json::from_str(text).ok(),
    }
}

/// Reads an `etag` the way [`Draft::from_value`] does: a string as is, a number as its
/// decimal text, anything else as the empty string.
fn etag_text(text: &str) -> Cow<'_, str> {
    if let Some(inner) = text.strip_prefix('"').and_then(|rest| rest.strip_suffix('"'))
        && !inner.contains('\\')
    {
        return Cow::Borrowed(inner);
    }
    if text.starts_with('"') {
        if let Ok(borrowed) = serde_json::from_str::<&str>(text) {
            return Cow::Borrowed(borrowed);
        }
        return serde_json::from_str::<String>(text).map_or(Cow::Borrowed(""), Cow::Owned);
    }
    match serde_json::from_str::<serde_json::Number>(text) {
        Ok(number) => Cow::Owned(number.to_string()),
        Err(_) => Cow::Borrowed(""),
    }
}

impl ListedDraft {
    /// Reads the head of one listed item, the JSON text `raw`, and keeps the item.
    pub fn from_raw(raw: &str) -> Result<ListedDraft, DraftParseError> {
        ListedHead::parse(raw).map(ListedHead::into_owned)
    }

    /// Wraps a draft that was read whole, such as one read by id.
    pub fn from_draft(draft: Draft) -> ListedDraft {
        let raw = draft.raw.to_string().into_boxed_str();
        ListedDraft { id: draft.id, status: draft.status, etag: draft.etag, updated_at: draft.updated_at, raw }
    }

    /// Reads the whole object. It fails for an item whose head read but whose other parts
    /// are not valid JSON, which only a page scan lets through.
    pub fn into_draft(self) -> Result<Draft, DraftParseError> {
        let value: Value = serde_json::from_str(&self.raw).map_err(|_| DraftParseError::NotAnObject)?;
        Draft::from_value(value)
    }
}

/// An offer as listed by `GET /offers`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Offer {
    pub id: String,
    /// `active`, `archived`, `expired` or `redeemed`; absent in older API shapes.
    #[serde(default)]
    pub status: Option<String>,
}

/// One page of a cursor-paginated listing.
#[derive(Clone, Debug, Deserialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn status_unknown_value_round_trips() {
        let status: DraftStatus = serde_json::from_value(json!("awaiting_approval")).unwrap();
        assert_eq!(status, DraftStatus::Other("awaiting_approval".into()));
        assert_eq!(serde_json::to_value(&status).unwrap(), json!("awaiting_approval"));
        assert!(!status.is_terminal());
    }

    #[test]
    fn status_known_values_parse() {
        for text in DraftStatus::KNOWN {
            let status = DraftStatus::parse(text);
            assert!(status.is_known(), "{text}");
            assert_eq!(status.as_str(), *text);
        }
    }

    #[test]
    fn draft_keeps_unknown_fields() {
        let raw = json!({"id": "odft_1", "offer_id": "offer_1", "status": "payment", "etag": "7", "future": {"x": 1}});
        let draft = Draft::from_value(raw.clone()).unwrap();
        assert_eq!(draft.raw, raw);
        assert_eq!(draft.status, DraftStatus::Payment);
        assert_eq!(draft.etag, "7");
        assert_eq!(draft.customer_email, None);
    }

    #[test]
    fn draft_accepts_millisecond_timestamps() {
        let raw = json!({"id": "odft_1", "offer_id": "o", "status": "done", "etag": "1", "updated_at": 1_764_000_000_123_i64});
        assert_eq!(Draft::from_value(raw).unwrap().updated_at, Some(1_764_000_000));
        let raw =
            json!({"id": "odft_1", "offer_id": "o", "status": "done", "etag": "1", "updated_at": 1_764_000_000_i64});
        assert_eq!(Draft::from_value(raw).unwrap().updated_at, Some(1_764_000_000));
    }

    #[test]
    fn draft_without_id_is_rejected() {
        let raw = json!({"offer_id": "o", "status": "done"});
        assert_eq!(Draft::from_value(raw), Err(DraftParseError::MissingField { field: "id" }));
        assert_eq!(Draft::from_value(json!([1])), Err(DraftParseError::NotAnObject));
    }

    /// Reads one item both ways a listing does: with the page scanner and with serde_json.
    fn listed_both_ways(value: &Value) -> [Result<ListedDraft, DraftParseError>; 2] {
        let page = json!({"data": [value]}).to_string();
        let scanned = crate::akua::scan::scan_page(&page).expect("a valid page is scanned");
        let item = scanned.items[0];
        [ListedHead::from_scanned(item).map(ListedHead::into_owned), ListedDraft::from_raw(&value.to_string())]
    }

    #[test]
    fn listed_head_matches_full_read() {
        let cases = [
            json!({"id": "odft_1", "offer_id": "o", "status": "payment", "etag": "7", "updated_at": 1_764_000_000_123_i64, "x": [1]}),
            json!({"id": "odft_1", "offer_id": "o", "status": "payment", "etag": 12, "updated_at": "soon"}),
            json!({"id": "odft_1", "offer_id": "o", "status": "rolling_back"}),
            json!({"id": "odft_\"q", "offer_id": "o", "status": "done", "etag": "a\nb", "updated_at": 1.5}),
            json!({"id": "odft_1", "offer_id": "o", "status": "done", "etag": null, "updated_at": 12}),
        ];
        for value in cases {
            for listed in listed_both_ways(&value) {
                let listed = listed.unwrap();
                let full = Draft::from_value(value.clone()).unwrap();
                assert_eq!(
                    (&listed.id, &listed.status, &listed.etag, listed.updated_at),
                    (&full.id, &full.status, &full.etag, full.updated_at),
                    "{value}"
                );
                assert_eq!(listed.into_draft().unwrap(), full);
            }
        }
    }

    /// Numbers whose spelling `str::parse` and serde_json read differently.
    #[test]
    fn listed_head_reads_numbers_like_serde() {
        for number in [
            "-0",
            "0",
            "-1",
            "1e5",
            "1.0",
            "1764000000123",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551616",
        ] {
            let item = format!(
                r#"{{"id": "odft_1", "offer_id": "o", "status": "done", "etag": {number}, "updated_at": {number}}}"#
            );
            let page = format!(r#"{{"data": [{item}]}}"#);
            let scanned = crate::akua::scan::scan_page(&page).expect("a valid page is scanned");
            let listed = ListedHead::from_scanned(scanned.items[0]).unwrap();
            let full = Draft::from_value(serde_json::from_str(&item).unwrap()).unwrap();
            assert_eq!(listed.updated_at, full.updated_at, "updated_at {number}");
            assert_eq!(listed.etag, full.etag, "etag {number}");
        }
    }

    #[test]
    fn listed_head_rejects_like_full_read() {
        let cases = [
            json!({"offer_id": "o", "status": "done"}),
            json!({"id": 5, "offer_id": "o", "status": "done"}),
            json!([1]),
        ];
        for value in cases {
            for listed in listed_both_ways(&value) {
                assert_eq!(listed.unwrap_err(), Draft::from_value(value.clone()).unwrap_err(), "{value}");
            }
        }
    }

    #[test]
    fn termination_reason_unknown_is_kept() {
        let raw = json!({"id": "a", "offer_id": "o", "status": "terminated", "termination_reason": "fraud"});
        let draft = Draft::from_value(raw).unwrap();
        assert_eq!(draft.termination_reason, Some(TerminationReason::Other("fraud".into())));
        assert_eq!(draft.etag, "");
    }
}
