//! `check-config`: a readable account of what a configuration will do, without secrets.

use std::fmt::Write;

use anyhow::Context;

use crate::akua::AkuaClient;
use crate::config::{Config, PollMode, SinkConfig};
use crate::event::EventKind;
use crate::rules::{Rule, StatusMatcher};

/// Describes the offers, sinks and rules, one line each. Prints hosts, never full URLs.
pub fn describe(config: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "configuration is valid");
    let _ = writeln!(out, "api: {}", host_of(&config.akua.base_url));
    match &config.akua.offers {
        Some(offers) => {
            let _ = writeln!(out, "offers: {}", offers.join(", "));
        }
        None => {
            let _ = writeln!(out, "offers: every offer from GET /offers");
        }
    }
    let mode = match config.poll.mode {
        PollMode::Full => "full sweeps".to_owned(),
        PollMode::Active => {
            format!("active sweeps, a full one every {}", humantime::format_duration(config.poll.full_every))
        }
    };
    let _ = writeln!(
        out,
        "poll: every {}, {mode}{}, state in {}",
        humantime::format_duration(config.poll.interval),
        if config.poll.notify_existing { ", existing drafts reported" } else { "" },
        std::path::absolute(&config.state.path).unwrap_or_else(|_| config.state.path.clone()).display()
    );
    if !config.stuck.is_empty() {
        let thresholds: Vec<String> = config
            .stuck
            .iter()
            .map(|(status, after)| format!("{status} after {}", humantime::format_duration(*after)))
            .collect();
        let _ = writeln!(out, "stuck: {}", thresholds.join(", "));
    }

    match &config.server {
        Some(server) => {
            let _ = writeln!(out, "server: {} (/healthz, /readyz, /status, /metrics)", server.listen);
        }
        None => {
            let _ = writeln!(out, "server: none");
        }
    }

    let _ = writeln!(out, "sinks:");
    for (name, sink) in &config.sinks {
        let target = match sink {
            SinkConfig::Slack(slack) => format!(" → {}", host_of(slack.webhook_url.expose())),
            SinkConfig::Webhook(webhook) => {
                let signed = if webhook.signing_key.is_some() { ", signed" } else { "" };
                format!(" → {}{signed}", host_of(webhook.url.expose()))
            }
            SinkConfig::Console => " → stdout".to_owned(),
        };
        let _ = writeln!(out, "  {name}: {}{target}", sink.type_name());
    }

    let _ = writeln!(out, "rules:");
    for (index, rule) in config.rules.iter().enumerate() {
        let _ = writeln!(out, "  {}", describe_rule(index, rule));
    }
    out
}

fn describe_rule(index: usize, rule: &Rule) -> String {
    let name = rule.name.clone().unwrap_or_else(|| format!("#{}", index + 1));
    // N.B. created and stuck events have no previous status and removed events no current
    // one, so a rule with a `from` or `to` list never matches them; listing them there
    // would mislead.
    let events: Vec<&str> = rule
        .events
        .iter()
        .filter(|kind| match kind {
            EventKind::Created | EventKind::Stuck => rule.from == StatusMatcher::Any,
            EventKind::Removed => rule.to == StatusMatcher::Any,
            _ => true,
        })
        .map(|kind| kind.short_name())
        .collect();
    let fields = match rule.fields.is_empty() {
        true => String::new(),
        false => format!(" when {} changed", rule.fields.join(" or ")),
    };
    format!(
        "{name}: [{}] {} → {}{fields} ⇒ {}",
        events.join(", "),
        describe_matcher(&rule.from),
        describe_matcher(&rule.to),
        rule.sinks.join(", ")
    )
}

fn describe_matcher(matcher: &StatusMatcher) -> String {
    match matcher {
        StatusMatcher::Any => "*".to_owned(),
        StatusMatcher::OneOf(statuses) => statuses.iter().map(|status| status.as_str()).collect::<Vec<_>>().join("|"),
    }
}

fn host_of(url: &url::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => "(no host)".to_owned(),
    }
}

/// Checks the token against the API and prints the offers that would be watched.
pub async fn check_online(config: &Config) -> anyhow::Result<()> {
    let client = AkuaClient::new(&config.akua).context("cannot build the akua client")?;

    match &config.akua.offers {
        Some(offers) => {
            for offer in offers {
                let page = client
                    .list_drafts_page(offer, None, None)
                    .await
                    .with_context(|| format!("online check of offer {offer} failed"))?;
                println!("offer {offer}: reachable, {} draft(s) on the first page", page.data.len());
            }
        }
        None => {
            let offers = client.list_offers().await.context("online check failed")?;
            if offers.is_empty() {
                println!("the token is accepted, but it sees no offers");
            }
            for offer in offers {
                println!("offer {}: {}", offer.id, offer.status.as_deref().unwrap_or("status unknown"));
            }
        }
    }
    println!("online check passed");
    Ok(())
}
