//! Reading, interpolating and validating the TOML file.
//!
//! [`load`] reads the file and [`parse`] does the rest: TOML syntax, `${NAME}`
//! substitution, then one reader per section that checks every key and fills in defaults.
//! Sinks and rules have their own modules. Nothing here touches the network.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::HeaderValue;
use toml::Table;

use super::error::ConfigError;
use super::fields::{Context, KeyPath, Section, Text, http_url, wrong_type};
use super::interpolate::interpolate_table;
use super::{
    AkuaConfig, Config, DEFAULT_BASE_URL, DeliveryConfig, PollConfig, PollMode, ServerConfig, StateConfig,
    rule_section, sink_section, suggest,
};
use crate::akua::DraftStatus;
use crate::secret::Secret;

/// A configuration that loaded, with the warnings found while validating it.
#[derive(Debug)]
pub struct LoadedConfig {
    pub config: Config,
    /// Not errors, but worth a log line each, such as a sink that no rule uses.
    pub warnings: Vec<String>,
}

const TOP_LEVEL_KEYS: &[&str] = &["akua", "poll", "state", "delivery", "sinks", "rules", "stuck", "server"];
const AKUA_KEYS: &[&str] = &["base_url", "token", "token_file", "context", "offers", "page_size", "request_timeout"];
const POLL_KEYS: &[&str] = &["interval", "jitter", "notify_existing", "mode", "full_every"];
const STATE_KEYS: &[&str] = &["path"];
const DELIVERY_KEYS: &[&str] = &["retry_for", "max_backoff"];
const SERVER_KEYS: &[&str] = &["listen"];

const DEFAULT_PAGE_SIZE: u8 = 100;
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Maximum length of `akua.context`, as the API documents for the `akua-context` header.
const MAX_CONTEXT_CHARS: usize = 53;
/// Maximum length of an offer id, as the API accepts it in the `offer` query parameter.
const MAX_OFFER_ID_CHARS: usize = 56;

/// Reads and validates the configuration file at `path`.
///
/// Relative `*_file` paths inside it are resolved against the file's directory.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        let fix = "pass --config PATH or set DRAFTWATCH_CONFIG";
        let message = match error.kind() {
            io::ErrorKind::NotFound => format!("configuration file `{}` not found; {fix}", path.display()),
            _ => format!("cannot read configuration file `{}`: {error}; {fix}", path.display()),
        };
        ConfigError::file(message)
    })?;

    let base_dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    parse(&text, &|name| std::env::var(name).ok(), &base_dir)
}

/// Validates configuration text.
///
/// `env` looks up the variables that `${NAME}` refers to, and `base_dir` is the directory
/// that relative `*_file` paths are resolved against.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>, base_dir: &Path) -> Result<LoadedConfig, ConfigError> {
    let mut document = parse_toml(text)?;
    let env_sources = interpolate_table(&mut document, env)?;
    let ctx = Context { env_sources, base_dir: base_dir.to_owned() };
    let root = Section::new(KeyPath::root(), &document, &ctx);
    let mut warnings = Vec::new();

    // Unknown keys first, so a key placed under the wrong table is reported as such
    // rather than as a missing key of the table it belongs in.
    root.check_keys(TOP_LEVEL_KEYS)?;
    let akua = root.table("akua")?;
    let poll = root.table("poll")?;
    let state = root.table("state")?;
    let delivery = root.table("delivery")?;
    let server = root.table("server")?;
    let fixed_sections = [
        (&akua, AKUA_KEYS),
        (&poll, POLL_KEYS),
        (&state, STATE_KEYS),
        (&delivery, DELIVERY_KEYS),
        (&server, SERVER_KEYS),
    ];
    for (section, keys) in fixed_sections {
        if let Some(section) = section {
            section.check_keys(keys)?;
        }
    }

    let Some(akua) = akua else {
        let message = "missing; add an [akua] table with at least `token = \"${AKUA_API_TOKEN}\"`";
        return Err(ConfigError::at(&KeyPath::root().key("akua"), message));
    };
    let akua = read_akua(&akua, &mut warnings)?;
    let poll = poll.map(|poll| read_poll(&poll)).transpose()?.unwrap_or_default();
    let state = state.map(|state| read_state(&state)).transpose()?.unwrap_or_default();
    let delivery = delivery.map(|delivery| read_delivery(&delivery, &DeliveryConfig::default())).transpose()?;
    let delivery = delivery.unwrap_or_default();
    let stuck = root.table("stuck")?.map(|stuck| read_stuck(&stuck)).transpose()?.unwrap_or_default();
    let server = server.map(|server| read_server(&server)).transpose()?.flatten();

    let sinks = sink_section::read_sinks(&root, &delivery)?;
    let rules = rule_section::read_rules(&root, &sinks.sinks)?;

    for name in sinks.sinks.keys() {
        if !rules.iter().any(|rule| rule.sinks.contains(name)) {
            let path = KeyPath::root().key("sinks").key(name);
            warnings
                .push(format!("sink `{name}` is not used by any rule; add it to a rule's `sinks` or remove [{path}]"));
        }
    }

    let config =
        Config { akua, poll, state, delivery, sinks: sinks.sinks, sink_delivery: sinks.delivery, rules, stuck, server };
    Ok(LoadedConfig { config, warnings })
}

/// Parses TOML syntax, reporting the line and column of an error.
///
/// N.B. toml's own `Display` quotes the offending source line, which may contain a token, so
/// the message is rebuilt from its description and position only.
fn parse_toml(text: &str) -> Result<Table, ConfigError> {
    text.parse::<Table>().map_err(|error| {
        let position = match error.span() {
            Some(span) => {
                let (line, column) = line_and_column(text, span.start);
                format!(" at line {line}, column {column}")
            }
            None => String::new(),
        };
        let description = error.message().trim_end().trim_end_matches('.');
        ConfigError::file(format!("invalid TOML{position}: {description}"))
    })
}

/// Returns the 1-based line and character column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn read_akua(section: &Section, warnings: &mut Vec<String>) -> Result<AkuaConfig, ConfigError> {
    let base_url = match section.non_empty_string("base_url")? {
        Some(text) => read_base_url(section, &text)?,
        None => DEFAULT_BASE_URL.parse().expect("the default base URL is valid"),
    };
    if !base_url.path().ends_with("/v1") {
        warnings.push(format!(
            "`akua.base_url` has the path `{}`, but Akua's API is served under `/v1`; requests will likely answer 404 unless the URL ends in /v1",
            base_url.path()
        ));
    }

    let token = section.required_secret("token", "${AKUA_API_TOKEN}")?;
    if HeaderValue::from_str(&format!("Bearer {}", token.value)).is_err() {
        let message = "contains characters not allowed in an HTTP header (such as a line break); check the token";
        return Err(ConfigError::at(&token.path, message));
    }

    let context = section.non_empty_string("context")?.map(|context| read_context(section, context)).transpose()?;
    let offers = read_offers(section, warnings)?;

    let page_size = section.integer_in("page_size", 1..=100)?;
    let page_size = page_size.map_or(DEFAULT_PAGE_SIZE, |size| u8::try_from(size).expect("checked to be 1..=100"));
    let request_timeout = section.positive_duration("request_timeout", "15s")?.unwrap_or(DEFAULT_REQUEST_TIMEOUT);

    Ok(AkuaConfig { base_url, token: Secret::new(token.value), context, offers, page_size, request_timeout })
}

/// Parses `akua.base_url` and drops a trailing slash, so paths can be appended to it.
fn read_base_url(section: &Section, text: &Text) -> Result<url::Url, ConfigError> {
    let mut url = http_url(section.ctx, text, false, DEFAULT_BASE_URL)?;
    if url.query().is_some() || url.fragment().is_some() {
        let message = format!(
            "{} has a query or fragment; remove it, because request paths are appended to this URL",
            section.ctx.shown(&text.path, &text.value)
        );
        return Err(ConfigError::at(&text.path, message));
    }

    // N.B. `url` always writes at least `/` as the path of an http URL, so a base URL
    // without a path keeps that one slash.
    let trimmed = url.path().trim_end_matches('/').to_owned();
    url.set_path(&trimmed);
    Ok(url)
}

fn read_context(section: &Section, context: Text) -> Result<String, ConfigError> {
    let length = context.value.chars().count();
    if length > MAX_CONTEXT_CHARS {
        let message = format!(
            "{} is {length} characters long; a context is 1 to {MAX_CONTEXT_CHARS} characters, such as \"ws_...\"",
            section.ctx.shown(&context.path, &context.value)
        );
        return Err(ConfigError::at(&context.path, message));
    }
    if HeaderValue::from_str(&context.value).is_err() {
        let message = "contains characters not allowed in an HTTP header; a context looks like \"ws_...\"";
        return Err(ConfigError::at(&context.path, message));
    }
    Ok(context.value)
}

/// Reads `akua.offers`: absent means every offer, present means a non-empty list.
/// Repeated ids are listed once, with a warning.
fn read_offers(section: &Section, warnings: &mut Vec<String>) -> Result<Option<Vec<String>>, ConfigError> {
    let Some((path, value)) = section.get("offers") else {
        return Ok(None);
    };
    if !value.is_array() {
        return Err(wrong_type(&path, "an array of offer ids", value));
    }
    let texts = section.strings("offers")?.unwrap_or_default();
    if texts.is_empty() {
        let message = "empty list; list at least one offer id, or remove the key to watch every offer";
        return Err(ConfigError::at(&path, message));
    }

    let mut offers: Vec<String> = Vec::with_capacity(texts.len());
    for text in texts {
        let length = text.value.chars().count();
        if !(1..=MAX_OFFER_ID_CHARS).contains(&length) {
            let shown = section.ctx.shown(&text.path, &text.value);
            let message = format!(
                "{shown} is {length} characters long; an offer id is 1 to {MAX_OFFER_ID_CHARS} characters, such as \"offer_...\""
            );
            return Err(ConfigError::at(&text.path, message));
        }
        if !text.value.starts_with("offer_") {
            let shown = section.ctx.shown(&text.path, &text.value);
            warnings.push(format!(
                "`{}`: {shown} does not look like an offer id (`offer_...`); draft ids (`odft_...`) are not offers",
                text.path
            ));
        }
        if offers.contains(&text.value) {
            let shown = section.ctx.shown(&text.path, &text.value);
            warnings.push(format!("`{}`: offer {shown} is listed more than once; it is watched once", text.path));
            continue;
        }
        offers.push(text.value);
    }
    Ok(Some(offers))
}

fn read_poll(section: &Section) -> Result<PollConfig, ConfigError> {
    let defaults = PollConfig::default();

    let interval = section.duration("interval", "30s")?.unwrap_or(defaults.interval);
    if interval < Duration::from_secs(1) {
        let path = section.path.key("interval");
        let shown = section.ctx.shown(&path, &humantime::format_duration(interval).to_string());
        let message = format!("{shown} is shorter than the minimum of 1s; write a duration such as \"30s\"");
        return Err(ConfigError::at(&path, message));
    }
    let jitter = section.duration("jitter", "3s")?.unwrap_or(defaults.jitter);
    let notify_existing = section.bool("notify_existing")?.unwrap_or(defaults.notify_existing);
    let mode = match section.non_empty_string("mode")? {
        None => defaults.mode,
        Some(text) => match text.value.as_str() {
            "full" => PollMode::Full,
            "active" => PollMode::Active,
            other => {
                let shown = section.ctx.shown(&text.path, other);
                let hint = suggest::hint(other, &["full", "active"]);
                return Err(ConfigError::at(&text.path, format!("{shown} is not a poll mode{hint}")));
            }
        },
    };
    let full_every = section.positive_duration("full_every", "1h")?.unwrap_or(defaults.full_every);

    Ok(PollConfig { interval, jitter, notify_existing, mode, full_every })
}

/// Reads `[stuck]`: documented non-terminal status names, each with a duration of at least
/// one second.
fn read_stuck(section: &Section) -> Result<std::collections::BTreeMap<DraftStatus, Duration>, ConfigError> {
    let mut stuck = std::collections::BTreeMap::new();
    for name in section.table.keys() {
        let path = section.path.key(name);
        if !DraftStatus::KNOWN.contains(&name.as_str()) {
            let hint = suggest::hint(name, DraftStatus::KNOWN);
            return Err(ConfigError::at(&path, format!("`{name}` is not a known status{hint}")));
        }
        let status = DraftStatus::parse(name);
        if status.is_terminal() {
            let message = format!("a draft never leaves `{name}`, so it cannot be stuck there; remove the key");
            return Err(ConfigError::at(&path, message));
        }
        let duration = section.positive_duration(name, "1h")?.expect("the key is present");
        if duration < Duration::from_secs(1) {
            return Err(ConfigError::at(&path, "shorter than the minimum of 1s; write a duration such as \"1h\""));
        }
        stuck.insert(status, duration);
    }
    Ok(stuck)
}

fn read_state(section: &Section) -> Result<StateConfig, ConfigError> {
    let path = section.non_empty_string("path")?;
    Ok(path.map_or_else(StateConfig::default, |path| StateConfig { path: PathBuf::from(path.value) }))
}

/// Reads `[server]`; a table without `listen` means no server, like no table at all.
fn read_server(section: &Section) -> Result<Option<ServerConfig>, ConfigError> {
    let Some(listen) = section.non_empty_string("listen")? else {
        return Ok(None);
    };
    let address = listen.value.parse().map_err(|_| {
        let shown = section.ctx.shown(&listen.path, &listen.value);
        let message = format!(
            "{shown} is not an IP address and port; write \"127.0.0.1:9090\" (this host only) or \"0.0.0.0:9090\" \
             (every interface, as a pod needs for its probes)"
        );
        ConfigError::at(&listen.path, message)
    })?;
    Ok(Some(ServerConfig { listen: address }))
}

/// Reads `retry_for` and `max_backoff` from `[delivery]` or from one sink, over `defaults`.
pub(super) fn read_delivery(section: &Section, defaults: &DeliveryConfig) -> Result<DeliveryConfig, ConfigError> {
    let retry_for = section.positive_duration("retry_for", "24h")?.unwrap_or(defaults.retry_for);
    let max_backoff = section.positive_duration("max_backoff", "10m")?.unwrap_or(defaults.max_backoff);
    Ok(DeliveryConfig { retry_for, max_backoff })
}
