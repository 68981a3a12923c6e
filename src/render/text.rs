//! The one-line plain-text fallback of a notification.
//!
//! Slack shows it in notifications and clients that cannot draw blocks, and the console
//! sink prints it. It is plain text: a renderer that needs escaping applies it on top.

use crate::render::facts::Summary;
use crate::sinks::Notification;

/// Returns one line naming the draft id, the offer id and the transition, such as
/// `order draft odft_1 in offer offer_1: payment → install`, or
/// `new order draft odft_1 in offer offer_1 in status payment` for a created draft.
///
/// A termination reason, when the draft has one, follows in parentheses. Control
/// characters in API strings are escaped, so the result never spans several lines.
pub fn fallback(n: &Notification) -> String {
    Summary::of(n).sentence
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixture;

    #[test]
    fn fallback_status_changed() {
        assert_eq!(fallback(&fixture::status_changed()), "order draft odft_1 in offer offer_1: payment → install");
    }

    #[test]
    fn fallback_created() {
        assert_eq!(fallback(&fixture::created()), "new order draft odft_1 in offer offer_1 in status payment");
    }

    #[test]
    fn fallback_terminated_names_reason() {
        assert_eq!(
            fallback(&fixture::terminated("quota_exceeded")),
            "order draft odft_1 in offer offer_1: install → terminated (quota_exceeded)"
        );
    }

    #[test]
    fn fallback_marks_test_sample() {
        let mut n = fixture::status_changed();
        n.event.draft_id = crate::render::TEST_DRAFT_ID.to_owned();
        assert!(fallback(&n).starts_with("test notification from draftwatch: order draft odft_draftwatch_test"));
    }

    #[test]
    fn fallback_stays_one_line() {
        let mut n = fixture::status_changed();
        n.event.draft_id = "odft_1\nforged line".to_owned();
        let line = fallback(&n);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("odft_1\\nforged line"), "{line}");
    }
}
