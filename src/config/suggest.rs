//! "Did you mean" hints for misspelled keys, statuses, event names and sink names.
//!
//! Only the comparison lives here. Each caller decides which names are valid where.

/// Jaro-Winkler similarity from which a candidate counts as a likely misspelling.
///
/// N.B. chosen by trying common typos (`page_sise`, `paymnt`, `slak`, `intervall`); it lets
/// a one- or two-letter slip through and keeps unrelated short words such as `to` and `ops`
/// apart.
const MIN_SIMILARITY: f64 = 0.8;

/// Returns the candidate closest to `input`, if one is close enough to be a likely typo.
///
/// Case and the choice between `-` and `_` are ignored, so `Page-Size` finds `page_size`.
pub(crate) fn closest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let input = normalize(input);
    let mut best: Option<(f64, &'a str)> = None;
    for candidate in candidates {
        let score = strsim::jaro_winkler(&input, &normalize(candidate));
        if score >= MIN_SIMILARITY && best.is_none_or(|(best_score, _)| score > best_score) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Returns `; did you mean `x`?` for a close candidate, or else the list of valid names.
pub(super) fn hint(input: &str, candidates: &[&str]) -> String {
    if let Some(candidate) = closest(input, candidates.iter().copied()) {
        return format!("; did you mean `{candidate}`?");
    }
    if candidates.is_empty() {
        return String::new();
    }
    format!("; expected one of {}", list(candidates))
}

/// Formats names as a comma-separated list of code spans.
pub(super) fn list(names: &[&str]) -> String {
    names.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
}

fn normalize(text: &str) -> String {
    text.to_lowercase().replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[&str] = &["base_url", "token", "token_file", "context", "offers", "page_size", "request_timeout"];

    #[test]
    fn closest_finds_typos() {
        assert_eq!(closest("page_sise", KEYS.iter().copied()), Some("page_size"));
        assert_eq!(closest("Page-Size", KEYS.iter().copied()), Some("page_size"));
        assert_eq!(closest("tokenfile", KEYS.iter().copied()), Some("token_file"));
        assert_eq!(closest("baseurl", KEYS.iter().copied()), Some("base_url"));
        assert_eq!(closest("paymnt", ["payment", "install"]), Some("payment"));
        assert_eq!(closest("slak", ["slack", "webhook", "console"]), Some("slack"));
        assert_eq!(closest("intervall", ["interval", "jitter", "notify_existing"]), Some("interval"));
        assert_eq!(closest("status_change", ["status_changed", "created"]), Some("status_changed"));
    }

    #[test]
    fn closest_skips_unrelated() {
        assert_eq!(closest("colour", KEYS.iter().copied()), None);
        assert_eq!(closest("ops", ["sales", "stdout"]), None);
        assert_eq!(closest("x", ["to", "from"]), None);
    }

    #[test]
    fn hint_lists_names_without_match() {
        assert_eq!(hint("slak", &["slack", "webhook"]), "; did you mean `slack`?");
        assert_eq!(hint("email", &["slack", "webhook"]), "; expected one of `slack`, `webhook`");
        assert_eq!(hint("email", &[]), "");
    }
}
