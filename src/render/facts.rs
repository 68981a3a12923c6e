//! The facts a human-readable message shows, chosen once so that Slack and the terminal
//! show the same thing.
//!
//! [`Summary`] contains plain text: API strings are made single-line here, but escaping for a
//! particular medium and length limits belong to the renderer that uses the summary.

use crate::akua::{DraftStatus, TerminationReason};
use crate::event::EventKind;
use crate::render::escape::single_line;
use crate::sinks::Notification;

/// The human-readable facts of one notification, in display order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// `payment → install`, `new order draft in payment` for a created draft, and a
    /// phrase naming the removal, the stay or the changed fields for the other kinds.
    pub headline: String,
    /// One line naming the draft, the offer and the transition.
    pub sentence: String,
    /// Label and value pairs, present facts only.
    pub fields: Vec<(String, String)>,
    /// The rule and the event id.
    pub footer: String,
}

impl Summary {
    /// Collects the facts of `n`, replacing control characters in API strings.
    pub fn of(n: &Notification) -> Summary {
        let event = &n.event;
        let draft_id = single_line(&event.draft_id);
        let offer_id = single_line(&event.offer_id);
        let status = event.status.as_ref().map_or_else(|| "removed".to_owned(), status_text);
        let previous = match (event.kind, &event.previous_status) {
            (EventKind::StatusChanged | EventKind::Removed, Some(previous)) => Some(status_text(previous)),
            _ => None,
        };
        let changed =
            event.details.changed_fields.iter().map(|field| single_line(field)).collect::<Vec<_>>().join(", ");
        let stuck_for = humanize_secs(event.details.stuck_for.unwrap_or(0));

        let (headline, mut sentence) = match (event.kind, &previous) {
            (EventKind::Removed, _) => (
                format!("order draft removed in {}", previous.as_deref().unwrap_or("unknown status")),
                format!(
                    "order draft {draft_id} in offer {offer_id} was removed (last seen in {})",
                    previous.as_deref().unwrap_or("unknown status")
                ),
            ),
            (EventKind::Stuck, _) => (
                format!("stuck in {status} for {stuck_for}"),
                format!("order draft {draft_id} in offer {offer_id} has been in {status} for {stuck_for}"),
            ),
            (EventKind::Updated, _) => (
                format!("{status}: {changed} changed"),
                format!("order draft {draft_id} in offer {offer_id} in {status}: {changed} changed"),
            ),
            (_, Some(previous)) => (
                format!("{previous} → {status}"),
                format!("order draft {draft_id} in offer {offer_id}: {previous} → {status}"),
            ),
            (_, None) => (
                format!("new order draft in {status}"),
                format!("new order draft {draft_id} in offer {offer_id} in status {status}"),
            ),
        };
        if event.draft_id == super::TEST_DRAFT_ID {
            sentence = format!("{}: {sentence}", super::TEST_MARKER);
        }
        if let Some(reason) = &event.termination_reason {
            sentence.push_str(&format!(" ({})", single_line(reason.as_str())));
        }

        let mut fields = vec![("Draft".to_owned(), draft_id), ("Offer".to_owned(), offer_id)];
        if let Some(email) = &event.customer_email {
            fields.push(("Customer".to_owned(), single_line(email)));
        }
        if let (Some(previous), Some(secs)) = (&previous, event.previous_status_secs) {
            fields.push((format!("Time in {previous}"), humanize_secs(secs)));
        }
        if !changed.is_empty() {
            fields.push(("Changed".to_owned(), changed));
        }
        if let Some(reason) = &event.termination_reason {
            fields.push(("Termination reason".to_owned(), termination_text(reason)));
        }
        if let Some(error) = &event.details.install_error {
            fields.push(("Install error".to_owned(), single_line(error)));
        }

        let rule = match &n.rule {
            Some(name) => format!("rule {}", single_line(name)),
            None => "unnamed rule".to_owned(),
        };
        let footer = format!("{rule} · {}", single_line(&event.id));

        Summary { headline, sentence, fields, footer }
    }
}

fn status_text(status: &DraftStatus) -> String {
    single_line(status.as_str())
}

/// Returns the reason as sent, followed by what it means when Akua documents it.
fn termination_text(reason: &TerminationReason) -> String {
    let sent = single_line(reason.as_str());
    match termination_gloss(reason) {
        Some(gloss) => format!("{sent}: {gloss}"),
        None => sent,
    }
}

/// Returns a short explanation of a documented termination reason, or `None` for a reason
/// this version does not know.
pub fn termination_gloss(reason: &TerminationReason) -> Option<&'static str> {
    let gloss = match reason {
        TerminationReason::Timeout => "the draft was not completed before it expired",
        TerminationReason::Revoked => "the draft was revoked",
        TerminationReason::OfferExpired => "the offer expired",
        TerminationReason::InstallFailed => "installing the product failed",
        TerminationReason::ClusterAllocationFailed => "no cluster could be allocated",
        TerminationReason::QuotaExceeded => "a quota was exceeded",
        TerminationReason::Other(_) => return None,
    };
    Some(gloss)
}

/// Formats a whole number of seconds with its two largest units, such as `2h 5m`,
/// `1d 3h`, `4m 10s` or `45s`. A zero second unit is left out (`2h`).
pub fn humanize_secs(secs: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];

    let Some(first) = UNITS.iter().position(|&(size, _)| secs >= size) else {
        return "0s".to_owned();
    };

    let (size, unit) = UNITS[first];
    let mut out = format!("{}{unit}", secs / size);
    if let Some(&(next_size, next_unit)) = UNITS.get(first + 1) {
        let rest = (secs % size) / next_size;
        if rest > 0 {
            out.push_str(&format!(" {rest}{next_unit}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanize_two_units() {
        assert_eq!(humanize_secs(0), "0s");
        assert_eq!(humanize_secs(45), "45s");
        assert_eq!(humanize_secs(250), "4m 10s");
        assert_eq!(humanize_secs(7_500), "2h 5m");
        assert_eq!(humanize_secs(7_200), "2h");
        assert_eq!(humanize_secs(7_259), "2h");
        assert_eq!(humanize_secs(97_200), "1d 3h");
        assert_eq!(humanize_secs(86_400 * 400), "400d");
    }

    #[test]
    fn gloss_covers_documented_reasons() {
        for text in TerminationReason::KNOWN {
            let reason = TerminationReason::parse(text);
            assert!(termination_gloss(&reason).is_some(), "{text} has no gloss");
        }
        assert_eq!(termination_gloss(&TerminationReason::Other("fraud".into())), None);
    }
}
