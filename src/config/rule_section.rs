//! `[[rules]]` entries: which events go to which sinks.
//!
//! Every status, event name and sink name is checked here, so a [`Rule`] always names
//! known statuses and configured sinks. Matching events against rules is
//! [`crate::rules`]' job.

use std::collections::BTreeMap;

use super::error::ConfigError;
use super::fields::{KeyPath, Section};
use super::{SinkConfig, suggest};
use crate::akua::DraftStatus;
use crate::event::EventKind;
use crate::rules::{Rule, StatusMatcher};
use crate::sweep::TRACKED_FIELDS;

const RULE_KEYS: &[&str] = &["name", "events", "from", "to", "fields", "sinks"];

/// The events a rule hears of when it sets no `events`.
const DEFAULT_EVENTS: &[EventKind] = &[EventKind::StatusChanged, EventKind::Created];

/// The events a rule with `fields` hears of when it sets no `events`.
const DEFAULT_FIELD_EVENTS: &[EventKind] = &[EventKind::Updated];

/// Reads every `[[rules]]` entry, in file order. At least one is required.
pub(super) fn read_rules(root: &Section, sinks: &BTreeMap<String, SinkConfig>) -> Result<Vec<Rule>, ConfigError> {
    let rules = root.tables("rules", "an array of tables, written as [[rules]]")?.unwrap_or_default();
    if rules.is_empty() {
        let message = "no rules are configured, so no event would be sent; \
                       add a [[rules]] table with `sinks = [\"NAME\"]`";
        return Err(ConfigError::at(&KeyPath::root().key("rules"), message));
    }
    rules.iter().map(|rule| read_rule(rule, sinks)).collect()
}

fn read_rule(rule: &Section, sinks: &BTreeMap<String, SinkConfig>) -> Result<Rule, ConfigError> {
    rule.check_keys(RULE_KEYS)?;

    let name = rule.non_empty_string("name")?.map(|name| name.value);
    let fields = read_fields(rule)?;
    let defaults = if fields.is_empty() { DEFAULT_EVENTS } else { DEFAULT_FIELD_EVENTS };
    let events = read_events(rule, defaults)?;
    let from = read_status_matcher(rule, "from")?;
    let to = read_status_matcher(rule, "to")?;
    let sinks = read_rule_sinks(rule, sinks)?;

    Ok(Rule { name, events, from, to, fields, sinks })
}

/// Reads `fields`: tracked field names, each kept once. Absent means no field filter.
fn read_fields(rule: &Section) -> Result<Vec<String>, ConfigError> {
    let Some(texts) = rule.strings("fields")? else {
        return Ok(Vec::new());
    };
    if texts.is_empty() {
        let message = "empty list; list tracked fields such as \"delivery.status\", or remove the key";
        return Err(ConfigError::at(&rule.path.key("fields"), message));
    }

    let mut fields: Vec<String> = Vec::with_capacity(texts.len());
    for text in texts {
        if !TRACKED_FIELDS.contains(&text.value.as_str()) {
            let shown = rule.ctx.shown(&text.path, &text.value);
            let hint = suggest::hint(&text.value, TRACKED_FIELDS);
            return Err(ConfigError::at(&text.path, format!("{shown} is not a tracked field{hint}")));
        }
        if !fields.contains(&text.value) {
            fields.push(text.value);
        }
    }
    Ok(fields)
}

/// Reads `events`: names with or without the `order_draft.` prefix, each kept once.
fn read_events(rule: &Section, defaults: &[EventKind]) -> Result<Vec<EventKind>, ConfigError> {
    let Some(texts) = rule.strings("events")? else {
        return Ok(defaults.to_vec());
    };
    if texts.is_empty() {
        let message = "empty list; list event types such as \"status_changed\", or remove the key for the default";
        return Err(ConfigError::at(&rule.path.key("events"), message));
    }

    let mut events = Vec::with_capacity(texts.len());
    for text in texts {
        let Some(kind) = EventKind::from_short_name(&text.value) else {
            let short_names: Vec<&str> = EventKind::ALL.iter().map(|kind| kind.short_name()).collect();
            let typed = text.value.strip_prefix("order_draft.").unwrap_or(&text.value);
            let hint = suggest::hint(typed, &short_names);
            let shown = rule.ctx.shown(&text.path, &text.value);
            return Err(ConfigError::at(&text.path, format!("{shown} is not an event type{hint}")));
        };
        if !events.contains(&kind) {
            events.push(kind);
        }
    }
    Ok(events)
}

/// Reads `from` or `to`: `"*"` (also the default), one status, or a list of statuses.
fn read_status_matcher(rule: &Section, key: &str) -> Result<StatusMatcher, ConfigError> {
    let Some(texts) = rule.strings(key)? else {
        return Ok(StatusMatcher::Any);
    };
    if texts.is_empty() {
        let message = "empty list; list at least one status, or write \"*\" for any status";
        return Err(ConfigError::at(&rule.path.key(key), message));
    }
    if texts.len() == 1 && texts[0].value == "*" {
        return Ok(StatusMatcher::Any);
    }

    let mut statuses = Vec::with_capacity(texts.len());
    for text in texts {
        if text.value == "*" {
            let message = format!("\"*\" already matches every status; write `{key} = \"*\"` alone");
            return Err(ConfigError::at(&text.path, message));
        }
        if !DraftStatus::KNOWN.contains(&text.value.as_str()) {
            let shown = rule.ctx.shown(&text.path, &text.value);
            let hint = suggest::hint(&text.value, DraftStatus::KNOWN);
            return Err(ConfigError::at(&text.path, format!("{shown} is not a known status{hint}")));
        }
        let status = DraftStatus::parse(&text.value);
        if !statuses.contains(&status) {
            statuses.push(status);
        }
    }
    Ok(StatusMatcher::OneOf(statuses))
}

/// Reads the rule's `sinks`: required, not empty, each a configured sink, each kept once.
fn read_rule_sinks(rule: &Section, sinks: &BTreeMap<String, SinkConfig>) -> Result<Vec<String>, ConfigError> {
    let path = rule.path.key("sinks");
    let Some(texts) = rule.strings("sinks")? else {
        return Err(ConfigError::at(
            &path,
            "missing; name the sinks this rule sends to, such as `sinks = [\"sales\"]`",
        ));
    };
    if texts.is_empty() {
        return Err(ConfigError::at(&path, "empty list; name at least one sink, such as `sinks = [\"sales\"]`"));
    }

    let configured: Vec<&str> = sinks.keys().map(String::as_str).collect();
    let mut names: Vec<String> = Vec::with_capacity(texts.len());
    for text in texts {
        if !sinks.contains_key(&text.value) {
            let shown = rule.ctx.shown(&text.path, &text.value);
            let message = if configured.is_empty() {
                format!("{shown} is not a configured sink, and no sinks are configured; add a [sinks.NAME] table")
            } else {
                format!("{shown} is not a configured sink{}", suggest::hint(&text.value, &configured))
            };
            return Err(ConfigError::at(&text.path, message));
        }
        if !names.contains(&text.value) {
            names.push(text.value);
        }
    }
    Ok(names)
}
