//! Finding the head fields of one listed draft without parsing the whole object.
//!
//! A sweep reads `id`, `offer_id`, `status`, `etag` and `updated_at` of every listed draft
//! and nothing else until a draft changed. serde_json has already checked that the page is
//! valid JSON when the items reach this module, so the scanner only needs to find where
//! each top-level member starts and ends: it skips strings and nested values without
//! checking them again.
//!
//! It is not a JSON parser and gives up on anything it does not need to understand: an
//! escaped key, a head field given twice, a head field that is not a plain string where
//! one is expected. The caller then reads the item with serde_json, which decides. So the
//! outcome for every item is the one serde_json would give; this module only makes the
//! common case cheap.

/// The raw text of the head fields of one draft object, each `None` when absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeadSpans<'a> {
    /// The string's content; the scanner gives up on a string with escapes.
    pub id: Option<&'a str>,
    /// As `id`.
    pub offer_id: Option<&'a str>,
    /// As `id`.
    pub status: Option<&'a str>,
    /// The value's JSON text, whatever its type.
    pub etag: Option<&'a str>,
    /// The value's JSON text, whatever its type.
    pub updated_at: Option<&'a str>,
}

/// Finds the head fields of `item`, the text of one valid JSON value.
///
/// Returns `None` when `item` is not an object or is one of the unusual cases the module
/// doc lists; the caller must then read it with serde_json.
pub fn head_spans(item: &str) -> Option<HeadSpans<'_>> {
    let bytes = item.as_bytes();
    let mut spans = HeadSpans::default();
    let mut at = skip_whitespace(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_whitespace(bytes, at + 1);
    if bytes.get(at) == Some(&b'}') {
        return Some(spans);
    }

    loop {
        if bytes.get(at) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(bytes, at)?;
        let key = &bytes[at + 1..key_end - 1];
        if key.contains(&b'\\') {
            return None;
        }

        at = skip_whitespace(bytes, key_end);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        let value_start = skip_whitespace(bytes, at + 1);
        let value_end = value_end(bytes, value_start)?;
        let value = item.get(value_start..value_end)?;

        let slot = match key {
            b"id" => Some((&mut spans.id, true)),
            b"offer_id" => Some((&mut spans.offer_id, true)),
            b"status" => Some((&mut spans.status, true)),
            b"etag" => Some((&mut spans.etag, false)),
            b"updated_at" => Some((&mut spans.updated_at, false)),
            _ => None,
        };
        if let Some((slot, plain_string)) = slot {
            if slot.is_some() {
                return None;
            }
            *slot = Some(if plain_string { plain_string_content(value)? } else { value });
        }

        at = skip_whitespace(bytes, value_end);
        match bytes.get(at) {
            Some(b',') => at = skip_whitespace(bytes, at + 1),
            Some(b'}') => return Some(spans),
            _ => return None,
        }
    }
}

/// Returns the content of a JSON string without escapes, or `None` for any other value.
fn plain_string_content(value: &str) -> Option<&str> {
    let inner = value.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('\\')).then_some(inner)
}

fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(at) {
        at += 1;
    }
    at
}

/// Returns the position just past the string that starts with the quote at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut at = start + 1;
    loop {
        at += memchr::memchr2(b'"', b'\\', bytes.get(at..)?)?;
        match bytes[at] {
            b'\\' => at += 2,
            _ => return Some(at + 1),
        }
    }
}

/// Returns the position just past the value that starts at `start`.
fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    match bytes.get(start)? {
        b'"' => string_end(bytes, start),
        b'{' | b'[' => container_end(bytes, start),
        _ => {
            let length = bytes[start..]
                .iter()
                .position(|byte| matches!(byte, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(bytes.len() - start);
            Some(start + length)
        }
    }
}

/// Returns the position just past the object or array that starts at `start`.
fn container_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut at = start;
    while let Some(byte) = bytes.get(at) {
        match byte {
            b'"' => {
                at = string_end(bytes, at)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(at + 1);
                }
            }
            _ => {}
        }
        at += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn scan_finds_head_fields_among_nested_values() {
        let item = r#" { "nested": {"id": "inner", "list": [1, {"status": "x"}, "]}\"{"]},
            "id" : "odft_1", "offer_id":"offer_1","status":"install",
            "etag": 42, "updated_at": 1700000000123, "tail": [] } "#;
        let spans = head_spans(item).unwrap();
        assert_eq!(spans.id, Some("odft_1"));
        assert_eq!(spans.offer_id, Some("offer_1"));
        assert_eq!(spans.status, Some("install"));
        assert_eq!(spans.etag, Some("42"));
        assert_eq!(spans.updated_at, Some("1700000000123"));
    }

    #[test]
    fn scan_gives_up_on_unusual_heads() {
        for item in [
            r#"{"id": "a", "id": "b"}"#,
            r#"{"\u0069d": "a"}"#,
            r#"{"id": "a\"b"}"#,
            r#"{"id": null}"#,
            r#"{"status": 5}"#,
            r#"["id", "a"]"#,
            r#""id""#,
        ] {
            assert_eq!(head_spans(item), None, "{item}");
        }
    }

    #[test]
    fn scan_keeps_missing_fields_absent() {
        assert_eq!(head_spans("{}"), Some(HeadSpans::default()));
        let spans = head_spans(r#"{"etag": null, "other": "id"}"#).unwrap();
        assert_eq!(spans, HeadSpans { etag: Some("null"), ..HeadSpans::default() });
    }

    /// Any JSON value, with keys drawn mostly from the head field names.
    fn json_value() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("id".to_owned()),
            Just("offer_id".to_owned()),
            Just("status".to_owned()),
            Just("etag".to_owned()),
            Just("updated_at".to_owned()),
            "[a-z\"\\\\ ]{0,4}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |n| n.is_finite()).prop_map(Value::from),
            "[a-z_\"\\\\{}\\[\\], \u{e9}]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::vec((key.clone(), inner), 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Whatever the scanner reports agrees with a full parse of the same text.
        #[test]
        fn scan_agrees_with_serde(value in json_value(), pretty in any::<bool>()) {
            let text = if pretty { serde_json::to_string_pretty(&value) } else { serde_json::to_string(&value) }.unwrap();
            let Some(spans) = head_spans(&text) else { return Ok(()) };
            // Floats compare as serde_json reads them back, not as generated.
            let parsed: Value = serde_json::from_str(&text).unwrap();
            let object = parsed.as_object().expect("only objects are scanned");
            for (field, span) in [("id", spans.id), ("offer_id", spans.offer_id), ("status", spans.status)] {
                prop_assert_eq!(span, object.get(field).map(|value| value.as_str().expect("a plain string")));
            }
            for (field, span) in [("etag", spans.etag), ("updated_at", spans.updated_at)] {
                let parsed = span.map(|text| serde_json::from_str::<Value>(text).unwrap());
                prop_assert_eq!(parsed.as_ref(), object.get(field));
            }
        }
    }

    proptest! {
        /// A draft-like object, head fields anywhere among nested members, is always read.
        #[test]
        fn scan_reads_drafts_among_nested_members(
            id in "[a-z0-9_]{1,12}",
            status in "[a-z_]{1,12}",
            etag in json_value(),
            others in prop::collection::vec(("[a-z_]{1,6}", json_value()), 0..8),
            position in 0usize..8,
            pretty in any::<bool>(),
        ) {
            let mut members: Vec<(String, Value)> = others
                .into_iter()
                .filter(|(key, _)| !["id", "offer_id", "status", "etag", "updated_at"].contains(&key.as_str()))
                .collect();
            let at = position.min(members.len());
            members.insert(at, ("id".into(), Value::from(id.clone())));
            members.push(("offer_id".into(), Value::from("offer_1")));
            members.insert(at / 2, ("status".into(), Value::from(status.clone())));
            members.push(("etag".into(), etag));
            let value = Value::Object(members.into_iter().collect());
            let text = if pretty { serde_json::to_string_pretty(&value) } else { serde_json::to_string(&value) }.unwrap();

            let spans = head_spans(&text).expect("a plain draft is always read");
            let parsed: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(spans.id, Some(id.as_str()));
            prop_assert_eq!(spans.status, Some(status.as_str()));
            prop_assert_eq!(spans.offer_id, Some("offer_1"));
            prop_assert_eq!(serde_json::from_str::<Value>(spans.etag.unwrap()).unwrap(), parsed["etag"].clone());
            prop_assert_eq!(spans.updated_at, None);
        }
    }

    #[test]
    fn scan_reads_plain_objects() {
        let value = json!({"id": "odft_1", "offer_id": "o", "status": "done", "etag": "e", "updated_at": 5});
        let text = value.to_string();
        let spans = head_spans(&text).unwrap();
        assert_eq!((spans.id, spans.etag), (Some("odft_1"), Some("\"e\"")));
    }
}
