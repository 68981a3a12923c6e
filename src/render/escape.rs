//! Text hygiene shared by the renderers: Slack escaping, length limits and display-safe
//! strings.
//!
//! Lengths here are counted in Unicode scalar values (`char`s), which is how Slack counts
//! its text limits. Every cut lands on a char boundary and ends with [`ELLIPSIS`]. Events
//! and message layout are not handled here.

/// Appended to every shortened text so a reader sees that something was cut.
pub const ELLIPSIS: char = '…';

/// Escapes the three characters Slack treats as markup: `&`, `<` and `>`.
///
/// After escaping, no part of the text can form a mention (`<!channel>`, `<@U…>`) or a
/// link (`<https://…|label>`).
pub fn slack_escape(text: &str) -> String {
    slack_escape_within(text, usize::MAX)
}

/// Escapes `text` for Slack and cuts the escaped result to at most `max_chars` chars.
///
/// The cut never splits an entity such as `&amp;`, so a shortened text stays inert. When
/// the text is cut, the result ends with [`ELLIPSIS`], which counts toward `max_chars`.
/// A `max_chars` of zero returns an empty string.
pub fn slack_escape_within(text: &str, max_chars: usize) -> String {
    let escaped_len: usize = text.chars().map(|c| slack_entity(c).map_or(1, str::len)).sum();
    if escaped_len <= max_chars {
        return escape_all(text);
    }
    if max_chars == 0 {
        return String::new();
    }

    let budget = max_chars - 1;
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let piece_len = slack_entity(c).map_or(1, str::len);
        if used + piece_len > budget {
            break;
        }
        match slack_entity(c) {
            Some(entity) => out.push_str(entity),
            None => out.push(c),
        }
        used += piece_len;
    }
    out.push(ELLIPSIS);
    out
}

fn escape_all(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match slack_entity(c) {
            Some(entity) => out.push_str(entity),
            None => out.push(c),
        }
    }
    out
}

/// Returns the entity Slack expects in place of `c`, if `c` is markup. Entities are ASCII,
/// so their byte length is their char count.
fn slack_entity(c: char) -> Option<&'static str> {
    match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        _ => None,
    }
}

/// Cuts `text` to at most `max_chars` chars, ending a shortened text with [`ELLIPSIS`].
///
/// A `max_chars` of zero returns an empty string.
pub fn truncate_chars(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    if max_chars == 0 {
        return String::new();
    }

    let mut out: String = text.chars().take(max_chars - 1).collect();
    out.push(ELLIPSIS);
    out
}

/// Makes an API-supplied string safe to show on one line of a terminal or a chat message.
///
/// Control characters (line breaks, ESC and the rest) and the Unicode bidirectional
/// overrides are replaced by their Rust escape form, such as `\n` or `\u{1b}`. A value then
/// cannot start a new line, send terminal escape sequences or reorder the text around it.
/// Everything else is kept.
pub fn single_line(text: &str) -> String {
    if !text.chars().any(needs_escape) {
        return text.to_owned();
    }

    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_replaces_markup() {
        assert_eq!(
            slack_escape("<!channel> a&b <https://x.example|y>"),
            "&lt;!channel&gt; a&amp;b &lt;https://x.example|y&gt;"
        );
        assert_eq!(slack_escape("plain"), "plain");
    }

    #[test]
    fn escape_within_keeps_short_text() {
        assert_eq!(slack_escape_within("a&b", 7), "a&amp;b");
    }

    #[test]
    fn escape_within_never_splits_entity() {
        // "a&amp;" is 6 chars; with the ellipsis the entity would need 7.
        let cut = slack_escape_within("a&bcdef", 6);
        assert_eq!(cut, "a…");
        assert!(!cut.contains('&'));
    }

    #[test]
    fn escape_within_counts_chars() {
        let text = "é".repeat(10);
        let cut = slack_escape_within(&text, 4);
        assert_eq!(cut, "ééé…");
        assert_eq!(cut.chars().count(), 4);
    }

    #[test]
    fn truncate_multibyte_boundary() {
        let text = "日本語のテキスト";
        assert_eq!(truncate_chars(text, 4), "日本語…");
        assert_eq!(truncate_chars(text, 8), text);
        assert_eq!(truncate_chars(text, 0), "");
        assert_eq!(truncate_chars("🦀🦀🦀", 2), "🦀…");
    }

    #[test]
    fn single_line_escapes_controls() {
        assert_eq!(single_line("a\nb"), "a\\nb");
        assert_eq!(single_line("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(single_line("x\u{202E}y"), "x\\u{202e}y");
        assert_eq!(single_line("café → ok"), "café → ok");
    }
}
