//! Routing: which sinks hear of an event, and under which rule name.
//!
//! Every matching rule fires, and a sink receives an event once even when several rules
//! route it there. The rule credited for a sink is the first matching one in file order.
//! This module only decides; it neither stores nor sends.

use crate::akua::DraftStatus;
use crate::event::{Event, EventKind};

/// The statuses one side of a rule (`from` or `to`) accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusMatcher {
    /// `"*"`: every status, and also the `null` side of a created event.
    Any,
    /// A non-empty list of statuses. Never matches `null`.
    OneOf(Vec<DraftStatus>),
}

impl StatusMatcher {
    fn matches(&self, status: Option<&DraftStatus>) -> bool {
        match (self, status) {
            (StatusMatcher::Any, _) => true,
            (StatusMatcher::OneOf(_), None) => false,
            (StatusMatcher::OneOf(statuses), Some(status)) => statuses.contains(status),
        }
    }
}

/// One validated `[[rules]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: Option<String>,
    /// Non-empty.
    pub events: Vec<EventKind>,
    pub from: StatusMatcher,
    pub to: StatusMatcher,
    /// Names from [`crate::sweep::TRACKED_FIELDS`]. When not empty, an `updated` event
    /// matches only if it changed at least one of them.
    pub fields: Vec<String>,
    /// Non-empty, and every name is a configured sink.
    pub sinks: Vec<String>,
}

impl Rule {
    pub fn matches(&self, event: &Event) -> bool {
        self.events.contains(&event.kind)
            && self.from.matches(event.previous_status.as_ref())
            && self.to.matches(event.status.as_ref())
            && self.fields_match(event)
    }

    fn fields_match(&self, event: &Event) -> bool {
        if self.fields.is_empty() || event.kind != EventKind::Updated {
            return true;
        }
        event.details.changed_fields.iter().any(|field| self.fields.contains(field))
    }
}

/// One sink an event goes to, with the rule credited for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub sink: String,
    /// The name of the first matching rule that names this sink, if that rule has a name.
    pub rule: Option<String>,
}

/// Returns the sinks an event goes to, each once, in the order rules first name them.
pub fn route(rules: &[Rule], event: &Event) -> Vec<Route> {
    let mut routes: Vec<Route> = Vec::new();
    for rule in rules.iter().filter(|rule| rule.matches(event)) {
        for sink in &rule.sinks {
            if routes.iter().any(|route| &route.sink == sink) {
                continue;
            }
            routes.push(Route { sink: sink.clone(), rule: rule.name.clone() });
        }
    }
    routes
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(kind: EventKind, from: Option<DraftStatus>, to: DraftStatus) -> Event {
        let mut event = event_to(kind, from, Some(to));
        event.details.changed_fields = vec!["order.status".into()];
        event
    }

    fn event_to(kind: EventKind, from: Option<DraftStatus>, to: Option<DraftStatus>) -> Event {
        Event {
            id: "evt_1".into(),
            kind,
            draft_id: "odft_1".into(),
            offer_id: "offer_1".into(),
            previous_status: from,
            status: to,
            termination_reason: None,
            customer_email: None,
            detected_at: 0,
            previous_status_secs: None,
            draft: json!({}),
            details: Default::default(),
        }
    }

    fn rule(name: Option<&str>, from: StatusMatcher, to: StatusMatcher, sinks: &[&str]) -> Rule {
        Rule {
            name: name.map(str::to_owned),
            events: EventKind::ALL.to_vec(),
            from,
            to,
            fields: Vec::new(),
            sinks: sinks.iter().map(|sink| sink.to_string()).collect(),
        }
    }

    #[test]
    fn route_deduplicates_sinks() {
        let rules = [
            rule(Some("paid"), StatusMatcher::OneOf(vec![DraftStatus::Payment]), StatusMatcher::Any, &["sales"]),
            rule(Some("all"), StatusMatcher::Any, StatusMatcher::Any, &["sales", "ops"]),
        ];
        let routes = route(&rules, &event(EventKind::StatusChanged, Some(DraftStatus::Payment), DraftStatus::Install));
        assert_eq!(
            routes,
            vec![
                Route { sink: "sales".into(), rule: Some("paid".into()) },
                Route { sink: "ops".into(), rule: Some("all".into()) },
            ]
        );
    }

    #[test]
    fn route_null_from_matches_only_any() {
        let rules = [rule(None, StatusMatcher::OneOf(vec![DraftStatus::Payment]), StatusMatcher::Any, &["a"])];
        assert!(route(&rules, &event(EventKind::Created, None, DraftStatus::Payment)).is_empty());

        let rules = [rule(None, StatusMatcher::Any, StatusMatcher::OneOf(vec![DraftStatus::Terminated]), &["a"])];
        let routes = route(&rules, &event(EventKind::Created, None, DraftStatus::Terminated));
        assert_eq!(routes, vec![Route { sink: "a".into(), rule: None }]);
    }

    #[test]
    fn route_filters_event_kind() {
        let mut only_created = rule(None, StatusMatcher::Any, StatusMatcher::Any, &["a"]);
        only_created.events = vec![EventKind::Created];
        let changed = event(EventKind::StatusChanged, Some(DraftStatus::Payment), DraftStatus::Install);
        assert!(route(&[only_created], &changed).is_empty());
    }

    #[test]
    fn route_unknown_status_matches_any() {
        let rules = [rule(None, StatusMatcher::Any, StatusMatcher::Any, &["a"])];
        let unknown = event(EventKind::StatusChanged, Some(DraftStatus::Payment), DraftStatus::Other("paused".into()));
        assert_eq!(route(&rules, &unknown).len(), 1);
    }

    #[test]
    fn route_removed_null_to_side() {
        let removed = event_to(EventKind::Removed, Some(DraftStatus::Payment), None);
        let named = [rule(None, StatusMatcher::Any, StatusMatcher::OneOf(vec![DraftStatus::Terminated]), &["a"])];
        assert!(route(&named, &removed).is_empty());
        let any = [rule(None, StatusMatcher::Any, StatusMatcher::Any, &["a"])];
        assert_eq!(route(&any, &removed).len(), 1);
    }

    #[test]
    fn route_fields_filter_updates() {
        let mut watch = rule(None, StatusMatcher::Any, StatusMatcher::Any, &["a"]);
        watch.fields = vec!["delivery.status".into()];
        let updated = event(EventKind::Updated, Some(DraftStatus::Install), DraftStatus::Install);
        assert!(route(std::slice::from_ref(&watch), &updated).is_empty(), "order.status is not watched");

        watch.fields.push("order.status".into());
        assert_eq!(route(&[watch], &updated).len(), 1);
    }
}
