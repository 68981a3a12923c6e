//! The Slack incoming-webhook payload: a plain `text` fallback and Block Kit `blocks`.
//!
//! Every string that comes from the API, and every name from the configuration, is
//! escaped with [`slack_escape_within`] and placed in a `plain_text` object or a `mrkdwn`
//! object with `"verbatim": true`. Escaping stops mentions and links written in Slack's
//! `<…>` syntax, and `verbatim` stops Slack from turning bare URLs, channel names and
//! `@here` into links or mentions. Only the field labels, which this module writes, use
//! mrkdwn formatting.
//!
//! Slack rejects a payload over its limits, so each text is cut to fit: 150 chars for a
//! header, 3000 for a section text, 2000 for a section field, and 50 blocks per message.

use serde_json::{Value, json};

use crate::render::escape::{slack_escape_within, truncate_chars};
use crate::render::facts::Summary;
use crate::render::text;
use crate::sinks::Notification;

/// Slack's maximum length of a header block's text.
pub const HEADER_TEXT_MAX: usize = 150;
/// Slack's maximum length of a section's text, also applied to context texts.
pub const SECTION_TEXT_MAX: usize = 3000;
/// Slack's maximum length of one section field.
pub const FIELD_TEXT_MAX: usize = 2000;
/// Slack's maximum number of fields in one section.
pub const MAX_FIELDS: usize = 10;
/// Slack's maximum number of blocks in one message.
pub const MAX_BLOCKS: usize = 50;
/// The length the top-level `text` is cut to. Slack recommends staying under 4000.
pub const FALLBACK_TEXT_MAX: usize = 3000;

/// Builds the payload: `{"text": …, "blocks": […]}`.
///
/// The blocks are a header with the transition, a section, and a context line naming the
/// rule and the event. The section shows the fallback sentence and one field per fact:
/// draft, offer, customer email, time in the previous status, the changed fields, the
/// termination reason with its meaning and the install error, each when the event has it.
///
/// N.B. incoming webhooks ignore the `parse` option, so Slack may still turn a bare URL
/// inside the top-level `text` into a link. Escaping keeps `<…>` mentions and links out.
pub fn payload(n: &Notification) -> Value {
    let summary = Summary::of(n);
    let fallback = slack_escape_within(&text::fallback(n), FALLBACK_TEXT_MAX);

    let mut blocks = vec![
        json!({
            "type": "header",
            "text": plain_text(&summary.headline, HEADER_TEXT_MAX),
        }),
        section(&summary),
        json!({
            "type": "context",
            "elements": [verbatim(&slack_escape_within(&summary.footer, SECTION_TEXT_MAX))],
        }),
    ];
    blocks = limit_blocks(blocks);

    json!({ "text": fallback, "blocks": blocks })
}

fn section(summary: &Summary) -> Value {
    let mut section = json!({
        "type": "section",
        "text": verbatim(&slack_escape_within(&summary.sentence, SECTION_TEXT_MAX)),
    });

    let fields: Vec<Value> = summary.fields.iter().take(MAX_FIELDS).map(|(label, value)| field(label, value)).collect();
    if !fields.is_empty() {
        section["fields"] = Value::Array(fields);
    }
    section
}

/// Renders one fact as a bold label above its value, within [`FIELD_TEXT_MAX`].
fn field(label: &str, value: &str) -> Value {
    let label = format!("*{}*\n", slack_escape_within(label, FIELD_TEXT_MAX / 2));
    let budget = FIELD_TEXT_MAX - label.chars().count();
    verbatim(&format!("{label}{}", slack_escape_within(value, budget)))
}

/// Wraps already escaped text in a `mrkdwn` object that Slack does not auto-parse.
fn verbatim(escaped: &str) -> Value {
    json!({ "type": "mrkdwn", "text": escaped, "verbatim": true })
}

fn plain_text(text: &str, max_chars: usize) -> Value {
    json!({ "type": "plain_text", "text": slack_escape_within(text, max_chars), "emoji": false })
}

/// Keeps at most [`MAX_BLOCKS`] blocks. When there are more, the last kept block is a
/// context line saying how many were left out.
pub fn limit_blocks(mut blocks: Vec<Value>) -> Vec<Value> {
    if blocks.len() <= MAX_BLOCKS {
        return blocks;
    }

    let left_out = blocks.len() - (MAX_BLOCKS - 1);
    blocks.truncate(MAX_BLOCKS - 1);
    let note = truncate_chars(&format!("… {left_out} more blocks left out"), SECTION_TEXT_MAX);
    blocks.push(json!({ "type": "context", "elements": [verbatim(&note)] }));
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::escape::ELLIPSIS;
    use crate::render::fixture;

    /// Collects every string in `value`, keys excluded.
    fn strings(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(text) => out.push(text.clone()),
            Value::Array(items) => items.iter().for_each(|item| strings(item, out)),
            Value::Object(map) => map.values().for_each(|item| strings(item, out)),
            _ => {}
        }
    }

    /// Collects every text object (an object with `type` and `text`) in `value`.
    fn text_objects<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
        match value {
            Value::Array(items) => items.iter().for_each(|item| text_objects(item, out)),
            Value::Object(map) => {
                if map.get("text").is_some_and(Value::is_string) && map.contains_key("type") {
                    out.push(value);
                }
                map.values().for_each(|item| text_objects(item, out));
            }
            _ => {}
        }
    }

    fn hostile_email() -> Notification {
        let mut n = fixture::status_changed();
        n.event.customer_email = Some("<!channel> a&b <https://x.example|y>".to_owned());
        n
    }

    #[test]
    fn payload_escapes_hostile_email() {
        let payload = payload(&hostile_email());

        let mut all = Vec::new();
        strings(&payload, &mut all);
        for text in &all {
            assert!(!text.contains('<'), "unescaped < in {text:?}");
            assert!(!text.contains('>'), "unescaped > in {text:?}");
        }

        let escaped = "&lt;!channel&gt; a&amp;b &lt;https://x.example|y&gt;";
        let mut objects = Vec::new();
        text_objects(&payload["blocks"], &mut objects);
        let email_object = objects
            .iter()
            .find(|object| object["text"].as_str().unwrap().contains(escaped))
            .expect("a text object shows the escaped email");
        assert_eq!(email_object["type"], "mrkdwn");
        assert_eq!(email_object["verbatim"], true);
    }

    #[test]
    fn payload_text_objects_inert() {
        let mut objects = Vec::new();
        let payload = payload(&hostile_email());
        text_objects(&payload["blocks"], &mut objects);
        assert!(!objects.is_empty());
        for object in objects {
            match object["type"].as_str() {
                Some("mrkdwn") => assert_eq!(object["verbatim"], true, "{object}"),
                Some("plain_text") => {}
                other => panic!("unexpected text object type {other:?}"),
            }
        }
    }

    #[test]
    fn payload_fallback_text() {
        let payload = payload(&fixture::status_changed());
        assert_eq!(payload["text"], "order draft odft_1 in offer offer_1: payment → install");
        assert_eq!(payload["blocks"][0]["type"], "header");
        assert_eq!(payload["blocks"][0]["text"]["text"], "payment → install");
    }

    #[test]
    fn payload_fallback_escaped() {
        let mut n = fixture::status_changed();
        n.event.draft_id = "<@U123>".to_owned();
        let payload = payload(&n);
        assert_eq!(payload["text"], "order draft &lt;@U123&gt; in offer offer_1: payment → install");
    }

    #[test]
    fn payload_shows_facts() {
        let payload = payload(&fixture::status_changed());
        let fields = payload["blocks"][1]["fields"].as_array().unwrap();
        let texts: Vec<&str> = fields.iter().map(|field| field["text"].as_str().unwrap()).collect();
        assert_eq!(
            texts,
            ["*Draft*\nodft_1", "*Offer*\noffer_1", "*Customer*\nbuyer@example.com", "*Time in payment*\n2h 5m",]
        );
        let context = payload["blocks"][2]["elements"][0]["text"].as_str().unwrap();
        assert_eq!(context, "rule paid · evt_0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn payload_created_omits_absent_facts() {
        let payload = payload(&fixture::created());
        assert_eq!(payload["blocks"][0]["text"]["text"], "new order draft in payment");
        let fields = payload["blocks"][1]["fields"].as_array().unwrap();
        assert_eq!(fields.len(), 2);
        let context = payload["blocks"][2]["elements"][0]["text"].as_str().unwrap();
        assert!(context.starts_with("unnamed rule · "), "{context}");
    }

    #[test]
    fn payload_terminated_carries_reason() {
        let payload = payload(&fixture::terminated("install_failed"));
        let fields = payload["blocks"][1]["fields"].as_array().unwrap();
        let last = fields.last().unwrap()["text"].as_str().unwrap();
        assert_eq!(last, "*Termination reason*\ninstall_failed: installing the product failed");
        assert!(payload["text"].as_str().unwrap().ends_with("install → terminated (install_failed)"));
    }

    #[test]
    fn payload_unknown_reason_as_sent() {
        let payload = payload(&fixture::terminated("fraud_suspected"));
        let fields = payload["blocks"][1]["fields"].as_array().unwrap();
        assert_eq!(fields.last().unwrap()["text"], "*Termination reason*\nfraud_suspected");
    }

    #[test]
    fn payload_cuts_multibyte_text() {
        let mut n = fixture::status_changed();
        n.event.draft_id = "ドラフト".repeat(2_000);
        n.event.status = Some(crate::akua::DraftStatus::Other("状態".repeat(200)));
        let payload = payload(&n);

        let section = payload["blocks"][1]["text"]["text"].as_str().unwrap();
        assert_eq!(section.chars().count(), SECTION_TEXT_MAX);
        assert!(section.ends_with(ELLIPSIS));

        let header = payload["blocks"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(header.chars().count(), HEADER_TEXT_MAX);
        assert!(header.ends_with(ELLIPSIS));

        for field in payload["blocks"][1]["fields"].as_array().unwrap() {
            let text = field["text"].as_str().unwrap();
            assert!(text.chars().count() <= FIELD_TEXT_MAX, "field of {} chars", text.chars().count());
        }
        let draft_field = payload["blocks"][1]["fields"][0]["text"].as_str().unwrap();
        assert!(draft_field.ends_with(ELLIPSIS));

        assert!(payload["text"].as_str().unwrap().chars().count() <= FALLBACK_TEXT_MAX);
    }

    #[test]
    fn payload_block_count_within_limit() {
        let payload = payload(&fixture::terminated("timeout"));
        let blocks = payload["blocks"].as_array().unwrap();
        assert!(blocks.len() <= MAX_BLOCKS);
        assert_eq!(blocks.len(), 3);
    }

    #[test]
    fn limit_blocks_caps_at_fifty() {
        let blocks: Vec<Value> = (0..60).map(|i| json!({ "type": "divider", "n": i })).collect();
        let limited = limit_blocks(blocks);
        assert_eq!(limited.len(), MAX_BLOCKS);
        assert_eq!(limited[MAX_BLOCKS - 2]["n"], 48);
        assert_eq!(limited[MAX_BLOCKS - 1]["elements"][0]["text"], "… 11 more blocks left out");

        let few: Vec<Value> = (0..3).map(|i| json!({ "n": i })).collect();
        assert_eq!(limit_blocks(few.clone()), few);
    }

    #[test]
    fn payload_is_deterministic() {
        let n = fixture::terminated("revoked");
        assert_eq!(payload(&n), payload(&n));
    }
}
