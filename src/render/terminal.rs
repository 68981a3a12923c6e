//! A multi-line rendering for a terminal that shows what the Slack message shows.
//!
//! `draftwatch demo` prints it. Both renderings come from the same
//! [`Summary`], so they cannot drift apart. Control characters in API strings are
//! escaped, so a value cannot move the cursor or change colors.

use crate::render::facts::Summary;
use crate::sinks::Notification;

/// Renders the headline, the fallback sentence, one aligned line per fact and the
/// rule/event footer, without a trailing newline.
pub fn render(n: &Notification) -> String {
    let summary = Summary::of(n);
    let label_width = summary.fields.iter().map(|(label, _)| label.chars().count()).max().unwrap_or(0);

    let mut lines = vec![summary.headline, summary.sentence];
    for (label, value) in &summary.fields {
        lines.push(format!("  {label:<label_width$}  {value}"));
    }
    lines.push(summary.footer);
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixture;

    #[test]
    fn render_status_changed() {
        let expected = "\
payment → install
order draft odft_1 in offer offer_1: payment → install
  Draft            odft_1
  Offer            offer_1
  Customer         buyer@example.com
  Time in payment  2h 5m
rule paid · evt_0123456789abcdef0123456789abcdef";
        assert_eq!(render(&fixture::status_changed()), expected);
    }

    #[test]
    fn render_terminated_shows_reason() {
        let text = render(&fixture::terminated("cluster_allocation_failed"));
        assert!(
            text.contains("Termination reason  cluster_allocation_failed: no cluster could be allocated"),
            "{text}"
        );
        assert!(text.starts_with("install → terminated\n"), "{text}");
    }

    #[test]
    fn render_escapes_terminal_controls() {
        let mut n = fixture::status_changed();
        n.event.customer_email = Some("\u{1b}[2Jx@example.com\r\nrule admin".to_owned());
        let text = render(&n);
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(!text.contains('\r'), "{text:?}");
        assert_eq!(text.lines().count(), 7, "{text}");
    }

    #[test]
    fn render_install_error_escaped() {
        let mut n = fixture::terminated("install_failed");
        n.event.details.install_error = Some("helm: \u{1b}[31mchart\nnot found".to_owned());
        let text = render(&n);
        assert!(text.contains("Install error"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(text.lines().any(|line| line.contains("helm:") && line.contains("not found")), "{text}");
    }

    #[test]
    fn render_removed_and_stuck() {
        let mut n = fixture::status_changed();
        n.event.kind = crate::event::EventKind::Removed;
        n.event.status = None;
        assert!(render(&n).contains("was removed (last seen in payment)"), "{}", render(&n));

        let mut n = fixture::status_changed();
        n.event.kind = crate::event::EventKind::Stuck;
        n.event.previous_status = None;
        n.event.details.stuck_for = Some(5400);
        assert!(render(&n).starts_with("stuck in install for 1h 30m"), "{}", render(&n));
    }
}
