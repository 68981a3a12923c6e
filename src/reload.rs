//! Reloading the configuration on SIGHUP.
//!
//! [`Reload`] waits for the signal. [`Reload::prepare`] re-reads and validates the file,
//! secrets from `*_file` included, and keeps what needs a restart as it was. An invalid
//! file is logged and the running configuration kept. [`Reload::apply`] swaps the new one
//! into the [`App`] and logs what changed, never a secret value. When to apply is the
//! runner's call: it stops its loops first, so no sweep sees half of each.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::app::App;
use crate::config::{self, Config};

/// A source of reload requests for `run`: SIGHUP, and the file to re-read.
pub struct Reload {
    path: PathBuf,
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

impl Reload {
    /// Listens for SIGHUP from now on; `path` is the configuration file to re-read.
    pub fn on_sighup(path: PathBuf) -> std::io::Result<Reload> {
        Ok(Reload {
            path,
            #[cfg(unix)]
            hangup: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?,
        })
    }

    /// Completes at the next SIGHUP. Without signals (not unix), never.
    pub async fn requested(&mut self) {
        #[cfg(unix)]
        if self.hangup.recv().await.is_some() {
            return;
        }
        std::future::pending::<()>().await;
    }

    /// Re-reads and validates the file. Returns the new configuration, with the keys that
    /// need a restart kept as `running` has them, or `None` after logging why it is invalid.
    pub fn prepare(&self, running: &Config) -> Option<Config> {
        let path = self.path.display();
        tracing::info!(config = %path, "reloading the configuration (SIGHUP)");
        let loaded = match config::load(&self.path) {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::error!(config = %path, "configuration reload rejected, keeping the running configuration: {error}");
                crate::metrics::config_reloaded(false);
                return None;
            }
        };
        for warning in &loaded.warnings {
            tracing::warn!(config = %path, "{warning}");
        }

        let mut config = loaded.config;
        keep_restart_only_keys(running, &mut config);
        Some(config)
    }

    /// Swaps a configuration from [`Reload::prepare`] into `app` and logs what changed.
    /// Returns whether it was applied; on failure `app` keeps its configuration.
    pub fn apply(&self, app: &mut App, config: Config) -> bool {
        let path = self.path.display();
        let changes = changes(&app.config, &config);
        if let Err(error) = app.reconfigure(config) {
            tracing::error!(config = %path, "configuration reload failed, keeping the running configuration: {error:#}");
            crate::metrics::config_reloaded(false);
            return false;
        }
        crate::status::global().configured(&app.config);
        crate::metrics::config_reloaded(true);

        let summary = if changes.is_empty() { "none".to_owned() } else { changes.join("; ") };
        tracing::info!(config = %path, changes = %summary, "configuration reloaded");
        true
    }
}

/// Copies `state.path` and `server` from the running configuration into `new`, with a
/// warning for each that the file changed: they take effect only at the next start.
fn keep_restart_only_keys(running: &Config, new: &mut Config) {
    if new.state.path != running.state.path {
        tracing::warn!(
            running = %running.state.path.display(),
            configured = %new.state.path.display(),
            "state.path changed; it takes effect at the next start, the running process keeps its state directory"
        );
        new.state.path = running.state.path.clone();
    }
    if new.server != running.server {
        let shown = |server: &Option<config::ServerConfig>| match server {
            Some(server) => server.listen.to_string(),
            None => "none".to_owned(),
        };
        tracing::warn!(
            running = %shown(&running.server),
            configured = %shown(&new.server),
            "server.listen changed; it takes effect at the next start"
        );
        new.server = running.server.clone();
    }
}

/// Describes what differs between two configurations, one short phrase per change,
/// naming keys and ids but never a secret value.
pub fn changes(old: &Config, new: &Config) -> Vec<String> {
    let mut changes = Vec::new();

    match (&old.akua.offers, &new.akua.offers) {
        (Some(old_offers), Some(new_offers)) => {
            changes.extend(set_changes("offers", old_offers.iter(), new_offers.iter()));
        }
        (None, Some(offers)) => changes.push(format!("offers: now only {}", offers.join(", "))),
        (Some(_), None) => changes.push("offers: now every offer from GET /offers".to_owned()),
        (None, None) => {}
    }
    if old.akua.base_url != new.akua.base_url {
        changes.push(format!("akua.base_url: {} → {}", old.akua.base_url, new.akua.base_url));
    }
    if old.akua.token != new.akua.token {
        changes.push("akua.token: changed".to_owned());
    }
    if old.akua.context != new.akua.context {
        changes.push("akua.context: changed".to_owned());
    }

    changes.extend(set_changes("sinks", old.sinks.keys(), new.sinks.keys()));
    for (name, sink) in &new.sinks {
        if let Some(previous) = old.sinks.get(name)
            && previous.type_name() != sink.type_name()
        {
            changes.push(format!("sink {name}: type {} → {}", previous.type_name(), sink.type_name()));
        }
    }
    if old.rules != new.rules {
        changes.push(format!("rules: {} → {} (contents changed)", old.rules.len(), new.rules.len()));
    }

    let (old_poll, new_poll) = (&old.poll, &new.poll);
    if old_poll.interval != new_poll.interval {
        changes.push(format!(
            "poll.interval: {} → {}",
            humantime::format_duration(old_poll.interval),
            humantime::format_duration(new_poll.interval)
        ));
    }
    if old_poll.jitter != new_poll.jitter {
        changes.push(format!(
            "poll.jitter: {} → {}",
            humantime::format_duration(old_poll.jitter),
            humantime::format_duration(new_poll.jitter)
        ));
    }
    if old_poll.notify_existing != new_poll.notify_existing {
        changes.push(format!("poll.notify_existing: {} → {}", old_poll.notify_existing, new_poll.notify_existing));
    }
    if old.delivery != new.delivery || old.sink_delivery != new.sink_delivery {
        changes.push("delivery: retry settings changed".to_owned());
    }
    changes
}

/// Returns `"{what}: added a, b"` and `"{what}: removed c"` for the differences.
fn set_changes<'a>(
    what: &str,
    old: impl Iterator<Item = &'a String>,
    new: impl Iterator<Item = &'a String>,
) -> Vec<String> {
    let old: BTreeSet<&String> = old.collect();
    let new: BTreeSet<&String> = new.collect();
    let mut changes = Vec::new();
    let added: Vec<&str> = new.difference(&old).map(|name| name.as_str()).collect();
    if !added.is_empty() {
        changes.push(format!("{what}: added {}", added.join(", ")));
    }
    let removed: Vec<&str> = old.difference(&new).map(|name| name.as_str()).collect();
    if !removed.is_empty() {
        changes.push(format!("{what}: removed {}", removed.join(", ")));
    }
    changes
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const TOKEN: &str = "sk_akua_SECRET_SENTINEL";

    fn config(extra_offer: &str, sink: &str, interval: &str) -> Config {
        let text = format!(
            r#"
[akua]
token = "{TOKEN}"
offers = ["offer_a"{extra_offer}]

[poll]
interval = "{interval}"

[sinks.{sink}]
type = "webhook"
url = "https://hooks.example.com/URL_SENTINEL"

[[rules]]
sinks = ["{sink}"]
"#
        );
        config::parse(&text, &|_| None, Path::new(".")).unwrap().config
    }

    #[test]
    fn changes_names_each_difference() {
        let old = config("", "ops", "30s");
        let mut new = config(", \"offer_b\"", "alerts", "1m");
        new.akua.token = crate::secret::Secret::new("sk_akua_OTHER_SENTINEL".into());

        let changes = changes(&old, &new);
        assert!(changes.contains(&"offers: added offer_b".to_owned()), "{changes:?}");
        assert!(changes.contains(&"sinks: added alerts".to_owned()), "{changes:?}");
        assert!(changes.contains(&"sinks: removed ops".to_owned()), "{changes:?}");
        assert!(changes.contains(&"poll.interval: 30s → 1m".to_owned()), "{changes:?}");
        assert!(changes.contains(&"akua.token: changed".to_owned()), "{changes:?}");
        assert!(changes.iter().any(|change| change.starts_with("rules: 1 → 1")), "{changes:?}");
        let joined = changes.join("; ");
        assert!(!joined.contains("SENTINEL"), "a secret leaked: {joined}");
    }

    #[test]
    fn changes_empty_for_same_file() {
        assert!(changes(&config("", "ops", "30s"), &config("", "ops", "30s")).is_empty());
    }
}
