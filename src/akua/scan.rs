//! Reading a page of listed drafts in one pass: where each item is, and the head fields of
//! each draft, without parsing the rest.
//!
//! A sweep reads `id`, `offer_id`, `status`, `etag` and `updated_at` of every listed draft
//! and nothing else until a draft changed, so the rest of a page is only skipped. Strings
//! are searched for their closing quote, and nested values for their closing bracket. Of
//! the parts it skips, the scanner checks only this structure, not the grammar of numbers
//! and literals nor the escapes inside strings. A draft's whole text is parsed by
//! serde_json when the draft changed.
//!
//! It is not a JSON parser and gives up on anything it does not need to understand. At the
//! page level (a structural error, an escaped or repeated key) it returns `None`, and the
//! caller parses the page with serde_json, which decides and reports. For one item (an
//! escaped key, a head field given twice, a head field that is not a plain string where
//! one is expected) it leaves the item's head to serde_json. So every outcome that depends
//! on the parts a sweep reads is the one serde_json would give.

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

/// One element of a page's `data` array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScannedItem<'a> {
    /// The element's JSON text.
    pub text: &'a str,
    /// The head of an object, or `None` when the element is not an object or its head
    /// must be read by serde_json.
    pub head: Option<HeadSpans<'a>>,
}

/// The members of a listing page that a sweep reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScannedPage<'a> {
    pub items: Vec<ScannedItem<'a>>,
    /// The JSON text of `has_more`, when present.
    pub has_more: Option<&'a str>,
    /// The JSON text of `next_cursor`, when present.
    pub next_cursor: Option<&'a str>,
}

/// Scans one listing page: an object with a `data` array.
///
/// Returns `None` when the page is not of that shape or is one of the unusual cases the
/// module doc lists. The caller must then parse it with serde_json.
pub fn scan_page(page: &str) -> Option<ScannedPage<'_>> {
    let bytes = page.as_bytes();
    let mut scanned = ScannedPage::default();
    let mut has_data = false;
    let mut at = skip_whitespace(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_whitespace(bytes, at + 1);

    if bytes.get(at) != Some(&b'}') {
        loop {
            let (key, value_start, escaped) = member_key(bytes, at)?;
            if escaped {
                return None;
            }
            let value_end = match key {
                b"data" if !has_data => {
                    has_data = true;
                    scan_items(page, value_start, &mut scanned.items)?
                }
                b"has_more" | b"next_cursor" | b"data" => {
                    let slot = if key == b"has_more" { &mut scanned.has_more } else { &mut scanned.next_cursor };
                    let end = value_end(bytes, value_start, 1)?.0;
                    if key == b"data" || slot.is_some() {
                        return None;
                    }
                    *slot = Some(page.get(value_start..end)?);
                    end
                }
                _ => value_end(bytes, value_start, 1)?.0,
            };

            at = skip_whitespace(bytes, value_end);
            match bytes.get(at) {
                Some(b',') => at = skip_whitespace(bytes, at + 1),
                Some(b'}') => break,
                _ => return None,
            }
        }
    }

    let rest = skip_whitespace(bytes, at + 1);
    (has_data && rest == bytes.len()).then_some(scanned)
}

/// Scans the `data` array that starts at `start` into `items`, and returns the position
/// just past it.
fn scan_items<'a>(page: &'a str, start: usize, items: &mut Vec<ScannedItem<'a>>) -> Option<usize> {
    let bytes = page.as_bytes();
    if bytes.get(start) != Some(&b'[') {
        return None;
    }
    let mut at = skip_whitespace(bytes, start + 1);
    if bytes.get(at) == Some(&b']') {
        return Some(at + 1);
    }

    loop {
        let (end, head) = match bytes.get(at)? {
            b'{' => object_head(page, at)?,
            _ => (value_end(bytes, at, 2)?.0, None),
        };
        items.push(ScannedItem { text: page.get(at..end)?, head });

        at = skip_whitespace(bytes, end);
        match bytes.get(at) {
            Some(b',') => at = skip_whitespace(bytes, at + 1),
            Some(b']') => return Some(at + 1),
            _ => return None,
        }
    }
}

/// Reads the key of the object member at `at` and its colon, and returns the key's bytes,
/// where the value starts and whether the key contains an escape.
fn member_key(bytes: &[u8], at: usize) -> Option<(&[u8], usize, bool)> {
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let (key_end, escaped) = string_end(bytes, at)?;
    let colon = skip_whitespace(bytes, key_end);
    if bytes.get(colon) != Some(&b':') {
        return None;
    }
    Some((&bytes[at + 1..key_end - 1], skip_whitespace(bytes, colon + 1), escaped))
}

/// Scans the object that starts at `start`, and returns the position just past it with
/// its head fields, or with `None` where serde_json must read the head.
fn object_head(page: &str, start: usize) -> Option<(usize, Option<HeadSpans<'_>>)> {
    let bytes = page.as_bytes();
    let mut spans = HeadSpans::default();
    // Cleared by anything that leaves the head to serde_json.
    let mut usual = true;
    let mut at = skip_whitespace(bytes, start + 1);
    if bytes.get(at) == Some(&b'}') {
        return Some((at + 1, Some(spans)));
    }

    loop {
        let (key, value_start, key_escaped) = member_key(bytes, at)?;
        let (value_end, escaped) = value_end(bytes, value_start, 3)?;
        let value = page.get(value_start..value_end)?;
        usual &= !key_escaped;

        let slot = match key {
            b"id" => Some((&mut spans.id, true)),
            b"offer_id" => Some((&mut spans.offer_id, true)),
            b"status" => Some((&mut spans.status, true)),
            b"etag" => Some((&mut spans.etag, false)),
            b"updated_at" => Some((&mut spans.updated_at, false)),
            _ => None,
        };
        match slot {
            Some((slot, _)) if slot.is_some() => usual = false,
            Some((slot, false)) => *slot = Some(value),
            Some((slot, true)) if value.starts_with('"') && !escaped => *slot = Some(&value[1..value.len() - 1]),
            Some((_, true)) => usual = false,
            None => {}
        }

        at = skip_whitespace(bytes, value_end);
        match bytes.get(at) {
            Some(b',') => at = skip_whitespace(bytes, at + 1),
            Some(b'}') => return Some((at + 1, usual.then_some(spans))),
            _ => return None,
        }
    }
}

/// The deepest nesting of objects and arrays the scanner reads. serde_json rejects a page
/// nested 128 deep (its recursion limit), and the scanner leaves such a page to it.
const MAX_DEPTH: u32 = 127;

fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(at) {
        at += 1;
    }
    at
}

/// Returns the position just past the string that starts with the quote at `start`, and
/// whether the string contains an escape.
fn string_end(bytes: &[u8], start: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    let mut at = start + 1;
    loop {
        at += quote_or_backslash(bytes.get(at..)?)?;
        match bytes[at] {
            b'\\' => {
                escaped = true;
                at += 2;
            }
            _ => return Some((at + 1, escaped)),
        }
    }
}

/// Returns the position of the first `"` or `\\` in `bytes`.
///
/// Eight bytes at a time: most strings in a draft are short, and this beats the set-up of
/// a vectorized search for those.
fn quote_or_backslash(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let quotes = word ^ (ONES * u64::from(b'"'));
        let backslashes = word ^ (ONES * u64::from(b'\\'));
        // A byte of `quotes` or `backslashes` is zero where the byte matches.
        let found = (quotes.wrapping_sub(ONES) & !quotes | backslashes.wrapping_sub(ONES) & !backslashes) & HIGHS;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks.remainder().iter().position(|byte| matches!(byte, b'"' | b'\\')).map(|found| offset + found)
}

/// Returns the position just past the value that starts at `start`, inside `outer` open
/// objects and arrays, and whether it is a string with an escape.
fn value_end(bytes: &[u8], start: usize, outer: u32) -> Option<(usize, bool)> {
    match bytes.get(start)? {
        b'"' => string_end(bytes, start),
        b'{' | b'[' => container_end(bytes, start, outer).map(|end| (end, false)),
        _ => {
            let length = bytes[start..]
                .iter()
                .position(|byte| matches!(byte, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(bytes.len() - start);
            (length > 0).then_some((start + length, false))
        }
    }
}

/// Returns the position just past the object or array that starts at `start`, inside
/// `outer` open objects and arrays, or `None` when a bracket closes a container of the
/// other kind or the page nests deeper than [`MAX_DEPTH`].
fn container_end(bytes: &[u8], start: usize, outer: u32) -> Option<usize> {
    // Bit `depth - 1` is set where the open container at that depth is an object.
    let mut objects = 0u128;
    let mut depth = 0u32;
    let mut at = start;
    while let Some(byte) = bytes.get(at) {
        match byte {
            b'"' => {
                at = string_end(bytes, at)?.0;
                continue;
            }
            b'{' | b'[' => {
                if outer + depth == MAX_DEPTH {
                    return None;
                }
                objects = objects & !(1 << depth) | u128::from(*byte == b'{') << depth;
                depth += 1;
            }
            b'}' | b']' => {
                depth -= 1;
                if (objects >> depth & 1 == 1) != (*byte == b'}') {
                    return None;
                }
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

    /// Scans one item as the only element of a page.
    fn head_spans(item: &str) -> Option<HeadSpans<'_>> {
        let start = skip_whitespace(item.as_bytes(), 0);
        let (end, head) = match item.as_bytes().get(start)? {
            b'{' => object_head(item, start)?,
            _ => return None,
        };
        assert_eq!(skip_whitespace(item.as_bytes(), end), item.len(), "the whole item is scanned");
        head
    }

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
            r#"{"id": 5, "offer_id": "o"}"#,
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
            (0i64..10).prop_map(Value::from),
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

    proptest! {
        /// A page serde_json wrote is always scanned, and each item is the text of one
        /// element of `data`.
        #[test]
        fn scan_page_agrees_with_serde(
            data in prop::collection::vec(json_value(), 0..6),
            has_more in proptest::option::of(any::<bool>()),
            next_cursor in proptest::option::of("[a-z0-9=\"]{0,12}"),
            extra in proptest::option::of(json_value()),
            pretty in any::<bool>(),
        ) {
            let mut page = serde_json::Map::new();
            if let Some(extra) = extra {
                page.insert("extra".into(), extra);
            }
            page.insert("data".into(), Value::from(data));
            if let Some(has_more) = has_more {
                page.insert("has_more".into(), Value::from(has_more));
            }
            if let Some(next_cursor) = &next_cursor {
                page.insert("next_cursor".into(), Value::from(next_cursor.as_str()));
            }
            let page = Value::Object(page);
            let text = if pretty { serde_json::to_string_pretty(&page) } else { serde_json::to_string(&page) }.unwrap();
            let parsed: Value = serde_json::from_str(&text).unwrap();

            let scanned = scan_page(&text).expect("a valid page is always scanned");
            let items: Vec<Value> = scanned.items.iter().map(|item| serde_json::from_str(item.text).unwrap()).collect();
            prop_assert_eq!(&Value::from(items), &parsed["data"]);
            prop_assert_eq!(scanned.has_more.map(|text| serde_json::from_str::<bool>(text).unwrap()), has_more);
            prop_assert_eq!(scanned.next_cursor.map(|text| serde_json::from_str::<String>(text).unwrap()), next_cursor);

            // Every cut-short page fails the scan.
            for end in (0..text.len()).filter(|end| text.is_char_boundary(*end)) {
                prop_assert!(scan_page(&text[..end]).is_none(), "{}", &text[..end]);
            }
        }
    }

    #[test]
    fn scan_page_leaves_odd_pages_to_serde() {
        for page in [
            r#"[]"#,
            r#"{}"#,
            r#"{"data": {}}"#,
            r#"{"data": [], "data": []}"#,
            r#"{"data": [], "has_more": true, "has_more": false}"#,
            r#"{"d\u0061ta": []}"#,
            r#"{"data": [1,]}"#,
            r#"{"data": [1 2]}"#,
            r#"{"data": [{"id": "a",}]}"#,
            r#"{"data": [{"id" "a"}]}"#,
            r#"{"data": []} x"#,
            r#"{"data": [], }"#,
            r#"{"data": [], "x": }"#,
        ] {
            assert_eq!(scan_page(page), None, "{page}");
        }
    }

    #[test]
    fn scan_page_keeps_odd_items() {
        let page = r#"{"data": [{"id": "a"}, 5, {"id": "b", "id": "c"}, {"st\u0061tus": "x"}], "has_more": false}"#;
        let scanned = scan_page(page).unwrap();
        let heads: Vec<Option<HeadSpans<'_>>> = scanned.items.iter().map(|item| item.head).collect();
        assert_eq!(heads, [Some(HeadSpans { id: Some("a"), ..HeadSpans::default() }), None, None, None]);
        assert_eq!(scanned.items[1].text, "5");
        assert_eq!(scanned.has_more, Some("false"));
    }

    #[test]
    fn scan_page_rejects_mismatched_brackets() {
        for page in [
            r#"{"data": [{"id": "a", "offer_id": "o", "status": "done", "x": {"y": [1}]}]}"#,
            r#"{"data": [{"id": "a", "offer_id": "o", "status": "done", "x": [{]}]}"#,
            r#"{"data": [[1}], "has_more": false}"#,
            r#"{"data": [], "extra": {"a": [}]}"#,
        ] {
            assert!(serde_json::from_str::<Value>(page).is_err(), "{page}");
            assert_eq!(scan_page(page), None, "{page}");
        }
    }

    #[test]
    fn scan_page_leaves_deep_nesting_to_serde() {
        for depth in 120..132 {
            let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            for page in [
                format!(r#"{{"data": [{{"id": "a", "offer_id": "o", "status": "done", "x": {nested}}}]}}"#),
                format!(r#"{{"data": [{nested}]}}"#),
                format!(r#"{{"extra": {nested}, "data": []}}"#),
            ] {
                let parsed = serde_json::from_str::<Value>(&page);
                assert_eq!(scan_page(&page).is_some(), parsed.is_ok(), "depth {depth}: {page}");
            }
        }
    }

    #[test]
    fn scan_page_reads_spaced_text() {
        let page = " \r\n{ \"data\"\t:\n[ \"{\\\"id\\\": [}\" , { \"id\" :\"\u{e9}\u{1f600}\" ,\"offer_id\"\n:\"o\",\
            \"status\":\"done\" , \"etag\" : -0 , \"updated_at\" :\t1e5, \"n\": [[], {}, [{}], \"\\\\\"] } ,\r\n[ ] , {} ] ,\
            \"has_more\" : false , \"next_cursor\" : null } \n";
        let parsed: Value = serde_json::from_str(page).unwrap();
        let scanned = scan_page(page).expect("a valid page is scanned");

        let items: Vec<Value> = scanned.items.iter().map(|item| serde_json::from_str(item.text).unwrap()).collect();
        assert_eq!(Value::from(items), parsed["data"]);
        assert_eq!(scanned.items[0].head, None, "a string item has no head");
        let head = scanned.items[1].head.expect("a plain draft has a head");
        assert_eq!(head.id, Some("\u{e9}\u{1f600}"));
        assert_eq!(head.etag, Some("-0"));
        assert_eq!(head.updated_at, Some("1e5"));
        assert_eq!(scanned.items[3].head, Some(HeadSpans::default()));
        assert_eq!((scanned.has_more, scanned.next_cursor), (Some("false"), Some("null")));
    }

    proptest! {
        /// The word-at-a-time search finds the same byte as a plain one.
        #[test]
        fn quote_search_agrees_with_plain(text in "[a-z\"\\\\\u{e9}\u{80}-\u{ff}]{0,40}") {
            let bytes = text.as_bytes();
            let plain = bytes.iter().position(|byte| matches!(byte, b'"' | b'\\'));
            prop_assert_eq!(quote_or_backslash(bytes), plain);
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
