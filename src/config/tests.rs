//! Tests of loading and validating whole configuration files.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::akua::DraftStatus;
use crate::event::EventKind;
use crate::rules::StatusMatcher;

const TOKEN: &str = "sk_akua_live_TOKEN_SENTINEL";
const SLACK_URL: &str = "https://hooks.slack.com/services/T0/B0/SLACK_SENTINEL";
/// The Standard Webhooks reference secret: 24 bytes once decoded.
const WEBHOOK_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const HEADER_VALUE: &str = "HEADER_SENTINEL";
const ENV_STATUS: &str = "paymnt_ENV_SENTINEL";

/// Every value that must never show up in an error or in `Debug` output.
const SENTINELS: &[&str] =
    &["TOKEN_SENTINEL", "SLACK_SENTINEL", "C2FVsBQIhrscChlQIMV", "HEADER_SENTINEL", "URL_SENTINEL", "ENV_SENTINEL"];

fn env(name: &str) -> Option<String> {
    let value = match name {
        "AKUA_API_TOKEN" => TOKEN,
        "SLACK_WEBHOOK_URL" => SLACK_URL,
        "DRAFTWATCH_WEBHOOK_SECRET" => WEBHOOK_SECRET,
        "TEAM_HEADER" => HEADER_VALUE,
        "STATUS" => ENV_STATUS,
        "EMPTY" => "",
        _ => return None,
    };
    Some(value.to_owned())
}

/// A valid configuration to which each test appends or in which it replaces one line.
const BASE: &str = r#"
[akua]
token = "${AKUA_API_TOKEN}"

[sinks.sales]
type = "slack"
webhook_url = "${SLACK_WEBHOOK_URL}"

[sinks.ops]
type = "webhook"
url = "https://ops.example.com/hooks/URL_SENTINEL"
secret = "${DRAFTWATCH_WEBHOOK_SECRET}"
headers = { "X-Team" = "${TEAM_HEADER}" }

[[rules]]
name = "paid"
from = "payment"
to = "install"
sinks = ["sales", "ops"]
"#;

fn parse_in(text: &str, base_dir: &Path) -> Result<LoadedConfig, ConfigError> {
    parse(text, &env, base_dir)
}

fn parse_text(text: &str) -> Result<LoadedConfig, ConfigError> {
    parse_in(text, Path::new("."))
}

fn valid(text: &str) -> LoadedConfig {
    parse_text(text).unwrap_or_else(|error| panic!("expected a valid configuration, got: {error}"))
}

/// Returns `BASE` with `old` replaced by `new`, failing when `old` is not in it.
fn base_with(old: &str, new: &str) -> String {
    assert!(BASE.contains(old), "BASE has no {old:?}");
    BASE.replacen(old, new, 1)
}

/// Parses `text`, expects an error about `key` whose message contains `fragment`, and
/// checks the properties every error shares.
fn assert_error(text: &str, key: &str, fragment: &str) -> ConfigError {
    let error = match parse_text(text) {
        Ok(_) => panic!("expected an error about `{key}`, but the configuration is valid"),
        Err(error) => error,
    };
    check_error_shape(&error);
    assert_eq!(error.key.as_deref(), Some(key), "wrong key in: {error}");
    assert!(error.message.contains(fragment), "{fragment:?} missing from: {error}");
    assert!(error.to_string().starts_with(&format!("`{key}`: ")), "{error}");
    error
}

fn check_error_shape(error: &ConfigError) {
    let shown = error.to_string();
    assert!(!shown.ends_with('.'), "trailing period: {shown}");
    assert!(error.message.starts_with(|c: char| !c.is_uppercase()), "capitalized: {shown}");
    for sentinel in SENTINELS {
        assert!(!shown.contains(sentinel), "{sentinel} leaked into: {shown}");
    }
}

#[test]
fn example_file_parses() {
    let loaded = valid(include_str!("../../config.example.toml"));
    let config = &loaded.config;

    assert_eq!(loaded.warnings, Vec::<String>::new());
    assert_eq!(config.akua.token.expose(), TOKEN);
    assert_eq!(config.sinks.keys().collect::<Vec<_>>(), ["ops", "sales", "stdout"]);
    assert_eq!(config.rules.len(), 5);
    assert_eq!(config.rules[0].from, StatusMatcher::OneOf(vec![DraftStatus::Payment]));
    assert_eq!(config.rules[0].to, StatusMatcher::OneOf(vec![DraftStatus::Install]));
    assert_eq!(config.rules[1].to, StatusMatcher::OneOf(vec![DraftStatus::Terminated]));
    assert_eq!(config.rules[2].events, vec![EventKind::Created]);
    assert_eq!(config.rules[3].events, vec![EventKind::Stuck, EventKind::Removed]);
    assert_eq!(config.rules[4].events, vec![EventKind::Updated]);
    assert_eq!(config.rules[4].fields, ["delivery.status", "delivery.urls"]);
    assert_eq!(config.stuck.len(), 2);
    assert_eq!(config.sink_delivery["ops"].retry_for, Duration::from_secs(2 * 3600));
    let SinkConfig::Webhook(ops) = &config.sinks["ops"] else { panic!("ops is not a webhook sink") };
    assert!(ops.signing_key.is_some());
}

#[test]
fn minimal_config_gets_defaults() {
    let text = r#"
        [akua]
        token = "t"
        [sinks.out]
        type = "console"
        [[rules]]
        sinks = ["out"]
    "#;
    let config = valid(text).config;

    assert_eq!(config.akua.base_url.as_str(), "https://api.akua.dev/v1");
    assert_eq!(config.akua.page_size, 100);
    assert_eq!(config.akua.request_timeout, Duration::from_secs(15));
    assert_eq!(config.akua.context, None);
    assert_eq!(config.akua.offers, None);
    assert_eq!(config.poll.interval, Duration::from_secs(30));
    assert_eq!(config.poll.jitter, Duration::ZERO);
    assert!(!config.poll.notify_existing);
    assert_eq!(config.state.path, Path::new("draftwatch-state"));
    assert_eq!(config.delivery.retry_for, Duration::from_secs(24 * 3600));
    assert_eq!(config.delivery.max_backoff, Duration::from_secs(600));
    assert_eq!(config.sink_delivery["out"], config.delivery);

    let rule = &config.rules[0];
    assert_eq!(rule.name, None);
    assert_eq!(rule.events, vec![EventKind::StatusChanged, EventKind::Created]);
    assert_eq!(rule.from, StatusMatcher::Any);
    assert_eq!(rule.to, StatusMatcher::Any);
}

#[test]
fn webhook_defaults_and_values() {
    let config = valid(BASE).config;
    let SinkConfig::Webhook(ops) = &config.sinks["ops"] else { panic!("ops is not a webhook sink") };

    assert_eq!(ops.timeout, Duration::from_secs(15));
    assert_eq!(ops.url.expose().as_str(), "https://ops.example.com/hooks/URL_SENTINEL");
    assert_eq!(ops.signing_key.as_ref().map(|key| key.expose().len()), Some(24));
    assert_eq!(ops.headers.len(), 1);
    assert_eq!(ops.headers[0].0, "x-team");
    assert_eq!(ops.headers[0].1.expose(), HEADER_VALUE);
    let SinkConfig::Slack(sales) = &config.sinks["sales"] else { panic!("sales is not a slack sink") };
    assert_eq!(sales.webhook_url.expose().as_str(), SLACK_URL);
}

#[test]
fn explicit_values_are_read() {
    let text = base_with(
        "[akua]\ntoken = \"${AKUA_API_TOKEN}\"\n",
        r#"[akua]
token = "${AKUA_API_TOKEN}"
base_url = "http://127.0.0.1:8080/v1/"
context = "ws_123"
offers = ["offer_a", "offer_b"]
page_size = 25
request_timeout = "1m 30s"

[poll]
interval = "1s"
jitter = "500ms"
notify_existing = true

[state]
path = "/var/lib/draftwatch"

[delivery]
retry_for = "1h"
max_backoff = "30s"
"#,
    );
    let config = valid(&text).config;

    assert_eq!(config.akua.base_url.as_str(), "http://127.0.0.1:8080/v1");
    assert_eq!(config.akua.context.as_deref(), Some("ws_123"));
    assert_eq!(config.akua.offers, Some(vec!["offer_a".to_owned(), "offer_b".to_owned()]));
    assert_eq!(config.akua.page_size, 25);
    assert_eq!(config.akua.request_timeout, Duration::from_secs(90));
    assert_eq!(
        config.poll,
        PollConfig {
            interval: Duration::from_secs(1),
            jitter: Duration::from_millis(500),
            notify_existing: true,
            ..PollConfig::default()
        }
    );
    assert_eq!(config.state.path, Path::new("/var/lib/draftwatch"));
    assert_eq!(
        config.delivery,
        DeliveryConfig { retry_for: Duration::from_secs(3600), max_backoff: Duration::from_secs(30) }
    );
}

#[test]
fn sink_delivery_applies_overrides() {
    let text = format!(
        "{}\n[delivery]\nretry_for = \"6h\"\n",
        base_with("type = \"slack\"\n", "type = \"slack\"\nmax_backoff = \"1m\"\n")
    );
    let config = valid(&text).config;

    assert_eq!(
        config.sink_delivery["sales"],
        DeliveryConfig { retry_for: Duration::from_secs(6 * 3600), max_backoff: Duration::from_secs(60) }
    );
    assert_eq!(
        config.sink_delivery["ops"],
        DeliveryConfig { retry_for: Duration::from_secs(6 * 3600), max_backoff: Duration::from_secs(600) }
    );
    assert_eq!(config.sink_delivery.len(), config.sinks.len());
}

#[test]
fn rule_forms_are_read() {
    let text = format!(
        "{BASE}\n[[rules]]\nevents = [\"order_draft.created\", \"created\"]\nfrom = [\"payment\", \"install\", \"payment\"]\nto = [\"*\"]\nsinks = \"ops\"\n"
    );
    let rule = valid(&text).config.rules.remove(1);

    assert_eq!(rule.events, vec![EventKind::Created]);
    assert_eq!(rule.from, StatusMatcher::OneOf(vec![DraftStatus::Payment, DraftStatus::Install]));
    assert_eq!(rule.to, StatusMatcher::Any);
    assert_eq!(rule.sinks, vec!["ops".to_owned()]);
}

#[test]
fn unused_sink_is_warning() {
    let text = format!("{BASE}\n[sinks.spare]\ntype = \"console\"\n");
    let loaded = valid(&text);

    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].contains("`spare`"), "{:?}", loaded.warnings);
    assert!(loaded.config.sinks.contains_key("spare"));
}

#[test]
fn repeated_offer_is_warning() {
    let text = base_with("[akua]\n", "[akua]\noffers = [\"offer_a\", \"offer_a\"]\n");
    let loaded = valid(&text);

    assert_eq!(loaded.config.akua.offers, Some(vec!["offer_a".to_owned()]));
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].contains("akua.offers[1]"), "{:?}", loaded.warnings);
}

#[test]
fn page_size_error_message() {
    let error = assert_error(&base_with("[akua]\n", "[akua]\npage_size = 0\n"), "akua.page_size", "");
    assert_eq!(error.to_string(), "`akua.page_size`: 0 is outside 1..=100; set a whole number from 1 to 100");

    assert_error(&base_with("[akua]\n", "[akua]\npage_size = 101\n"), "akua.page_size", "101 is outside");
    assert_error(&base_with("[akua]\n", "[akua]\npage_size = 1.5\n"), "akua.page_size", "found a float");
    assert_error(&base_with("[akua]\n", "[akua]\npage_size = \"10\"\n"), "akua.page_size", "found a string");
}

#[test]
fn unknown_keys_get_suggestions() {
    assert_error(&base_with("[akua]\n", "[akua]\npage_sise = 5\n"), "akua.page_sise", "did you mean `page_size`?");
    assert_error(&format!("{BASE}\n[pol]\ninterval = \"1m\"\n"), "pol", "did you mean `poll`?");
    assert_error(&format!("{BASE}\n[poll]\nintervall = \"1m\"\n"), "poll.intervall", "did you mean `interval`?");
    assert_error(&format!("{BASE}\n[state]\ndir = \"x\"\n"), "state.dir", "expected one of `path`");
    assert_error(&format!("{BASE}\n[delivery]\nretry = \"1h\"\n"), "delivery.retry", "did you mean `retry_for`?");
    assert_error(&base_with("to = \"install\"", "too = \"install\""), "rules[0].too", "did you mean `to`?");
    assert_error(
        &base_with("webhook_url = ", "webhook_ur = "),
        "sinks.sales.webhook_ur",
        "did you mean `webhook_url`?",
    );
}

#[test]
fn sink_key_of_other_type() {
    let text = format!("{BASE}\n[sinks.spare]\ntype = \"console\"\ntimeout = \"1s\"\n");
    assert_error(&text, "sinks.spare.timeout", "only webhook sinks take this key");
}

#[test]
fn unknown_status_gets_suggestion() {
    let error = assert_error(
        &base_with("to = \"install\"", "to = \"instal\""),
        "rules[0].to",
        "`instal` is not a known status",
    );
    assert!(error.message.ends_with("did you mean `install`?"), "{error}");

    assert_error(
        &base_with("from = \"payment\"", "from = [\"payment\", \"paymnt\"]"),
        "rules[0].from[1]",
        "did you mean `payment`?",
    );
    assert_error(&base_with("to = \"install\"", "to = \"paused\""), "rules[0].to", "expected one of `auth`");
    assert_error(&base_with("to = \"install\"", "to = []"), "rules[0].to", "empty list");
    assert_error(&base_with("to = \"install\"", "to = [\"*\", \"done\"]"), "rules[0].to[0]", "alone");
    assert_error(&base_with("to = \"install\"", "to = 3"), "rules[0].to", "found an integer");
}

#[test]
fn unknown_event_gets_suggestion() {
    let text = base_with("name = \"paid\"", "events = [\"status_change\"]");
    assert_error(&text, "rules[0].events[0]", "did you mean `status_changed`?");

    let text = base_with("name = \"paid\"", "events = [\"order_draft.creatd\"]");
    assert_error(&text, "rules[0].events[0]", "did you mean `created`?");

    assert_error(&base_with("name = \"paid\"", "events = []"), "rules[0].events", "empty list");
}

#[test]
fn unknown_sink_gets_suggestion() {
    let error = assert_error(
        &base_with("sinks = [\"sales\", \"ops\"]", "sinks = [\"ops\", \"sale\"]"),
        "rules[0].sinks[1]",
        "",
    );
    assert!(error.message.contains("`sale` is not a configured sink; did you mean `sales`?"), "{error}");

    assert_error(
        &base_with("sinks = [\"sales\", \"ops\"]", "sinks = [\"pager\"]"),
        "rules[0].sinks[0]",
        "expected one of `ops`, `sales`",
    );
}

#[test]
fn rule_without_sinks_is_error() {
    assert_error(&base_with("sinks = [\"sales\", \"ops\"]", ""), "rules[0].sinks", "missing");
    assert_error(&base_with("sinks = [\"sales\", \"ops\"]", "sinks = []"), "rules[0].sinks", "empty list");
}

#[test]
fn missing_rules_is_error() {
    let without_rules = &BASE[..BASE.find("[[rules]]").unwrap()];
    assert_error(without_rules, "rules", "[[rules]]");
    assert_error(&format!("rules = []\n{without_rules}"), "rules", "[[rules]]");
    assert_error(&format!("{without_rules}[rules]\nsinks = [\"ops\"]\n"), "rules", "written as [[rules]]");
}

#[test]
fn misplaced_key_reported_first() {
    let text = base_with("token = \"${AKUA_API_TOKEN}\"\n", "[poll]\ntoken = \"${AKUA_API_TOKEN}\"\n");
    assert_error(&text, "poll.token", "expected one of `interval`");
}

#[test]
fn missing_sections_are_errors() {
    let without_akua = BASE.replacen("[akua]\ntoken = \"${AKUA_API_TOKEN}\"\n", "", 1);
    assert_error(&without_akua, "akua", "add an [akua] table");
    assert_error(&base_with("[akua]\ntoken = \"${AKUA_API_TOKEN}\"\n", "akua = 1\n"), "akua", "expected a table");
    assert_error(&base_with("type = \"slack\"\n", ""), "sinks.sales.type", "`slack`, `webhook`, `console`");
}

#[test]
fn bad_durations_name_key() {
    let error = assert_error(&format!("{BASE}\n[poll]\ninterval = \"30 parsecs\"\n"), "poll.interval", "\"30s\"");
    assert!(error.message.contains("`30 parsecs` is not a duration"), "{error}");

    assert_error(&format!("{BASE}\n[poll]\ninterval = 30\n"), "poll.interval", "found an integer");
    assert_error(&format!("{BASE}\n[poll]\njitter = \"soon\"\n"), "poll.jitter", "is not a duration");
    assert_error(
        &base_with("[akua]\n", "[akua]\nrequest_timeout = \"0s\"\n"),
        "akua.request_timeout",
        "longer than zero",
    );
    assert_error(&format!("{BASE}\n[delivery]\nmax_backoff = \"1 fortnight\"\n"), "delivery.max_backoff", "\"10m\"");
    assert_error(
        &base_with("type = \"slack\"\n", "type = \"slack\"\nretry_for = \"x\"\n"),
        "sinks.sales.retry_for",
        "\"24h\"",
    );
    assert_error(
        &base_with("type = \"webhook\"\n", "type = \"webhook\"\ntimeout = \"5\"\n"),
        "sinks.ops.timeout",
        "\"15s\"",
    );
}

#[test]
fn interval_below_one_second() {
    let error = assert_error(&format!("{BASE}\n[poll]\ninterval = \"500ms\"\n"), "poll.interval", "minimum of 1s");
    assert!(error.message.contains("`500ms`"), "{error}");
}

#[test]
fn bad_urls_are_errors() {
    assert_error(
        &base_with("[akua]\n", "[akua]\nbase_url = \"ftp://api.akua.dev\"\n"),
        "akua.base_url",
        "scheme `ftp`",
    );
    let error = assert_error(
        &base_with("[akua]\n", "[akua]\nbase_url = \"api.akua.dev\"\n"),
        "akua.base_url",
        "not a valid URL",
    );
    assert!(error.message.contains("`api.akua.dev`"), "{error}");
    assert_error(&base_with("[akua]\n", "[akua]\nbase_url = \"https://h/v1?x=1\"\n"), "akua.base_url", "query");

    let text = base_with("https://ops.example.com/hooks/URL_SENTINEL", "ops.example.com/URL_SENTINEL");
    let error = assert_error(&text, "sinks.ops.url", "not a valid URL");
    assert!(error.message.contains("not shown"), "{error}");

    let text = base_with("https://ops.example.com/hooks/URL_SENTINEL", "ftp://ops.example.com/URL_SENTINEL");
    assert_error(&text, "sinks.ops.url", "scheme `ftp`");
}

#[test]
fn secret_url_from_env_hidden() {
    let text = base_with("\"${SLACK_WEBHOOK_URL}\"", "\"hooks/${SLACK_WEBHOOK_URL}\"");
    assert_error(&text, "sinks.sales.webhook_url", "not a valid URL");
}

#[test]
fn unknown_sink_type_suggests() {
    assert_error(&base_with("type = \"slack\"", "type = \"slak\""), "sinks.sales.type", "did you mean `slack`?");
    assert_error(&base_with("type = \"slack\"", "type = \"email\""), "sinks.sales.type", "expected one of `slack`");
}

#[test]
fn invalid_sink_name_rejected() {
    let text = format!("{BASE}\n[sinks.\"a:b\"]\ntype = \"console\"\n");
    assert_error(&text, "sinks.\"a:b\"", "invalid sink name");
}

#[test]
fn reserved_headers_rejected() {
    for name in ["content-type", "Content-Type", "USER-AGENT", "webhook-signature", "Webhook-Id", "host"] {
        let text = base_with("{ \"X-Team\" = \"${TEAM_HEADER}\" }", &format!("{{ \"{name}\" = \"v\" }}"));
        assert_error(&text, &format!("sinks.ops.headers.{name}"), "draftwatch sets this header itself");
    }
}

#[test]
fn invalid_headers_rejected() {
    let text = base_with("{ \"X-Team\" = \"${TEAM_HEADER}\" }", "{ \"X Team\" = \"v\" }");
    assert_error(&text, "sinks.ops.headers.\"X Team\"", "not a valid HTTP header name");

    let text = base_with("{ \"X-Team\" = \"${TEAM_HEADER}\" }", "{ \"X-Team\" = \"HEADER_SENTINEL\\nx\" }");
    let error = assert_error(&text, "sinks.ops.headers.X-Team", "not allowed in an HTTP header");
    assert!(error.message.contains("not shown"), "{error}");

    let text = base_with("{ \"X-Team\" = \"${TEAM_HEADER}\" }", "{ \"X-Team\" = \"a\", \"x-team\" = \"b\" }");
    assert_error(&text, "sinks.ops.headers.x-team", "already set");

    let text = base_with("{ \"X-Team\" = \"${TEAM_HEADER}\" }", "{ \"X-Team\" = 1 }");
    assert_error(&text, "sinks.ops.headers.X-Team", "expected a string");
}

#[test]
fn signing_secret_validated() {
    let cases = [
        ("C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "does not start with `whsec_`"),
        ("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7o!", "not valid standard base64"),
        // 16 bytes.
        ("whsec_C2FVsBQIhrscChlQIMV+bw==", "decodes to 16 bytes"),
    ];
    for (secret, fragment) in cases {
        let text = base_with("\"${DRAFTWATCH_WEBHOOK_SECRET}\"", &format!("\"{secret}\""));
        assert_error(&text, "sinks.ops.secret", fragment);
    }

    let long = format!("whsec_{}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 65]));
    let text = base_with("\"${DRAFTWATCH_WEBHOOK_SECRET}\"", &format!("\"{long}\""));
    assert_error(&text, "sinks.ops.secret", "decodes to 65 bytes");

    let longest = format!("whsec_{}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 64]));
    let config = valid(&base_with("\"${DRAFTWATCH_WEBHOOK_SECRET}\"", &format!("\"{longest}\""))).config;
    let SinkConfig::Webhook(ops) = &config.sinks["ops"] else { panic!("ops is not a webhook sink") };
    assert_eq!(ops.signing_key.as_ref().unwrap().expose(), &vec![7u8; 64]);
}

#[test]
fn context_length_checked() {
    let at_limit = "w".repeat(53);
    let config = valid(&base_with("[akua]\n", &format!("[akua]\ncontext = \"{at_limit}\"\n"))).config;
    assert_eq!(config.akua.context.as_deref(), Some(at_limit.as_str()));

    let too_long = "w".repeat(54);
    assert_error(
        &base_with("[akua]\n", &format!("[akua]\ncontext = \"{too_long}\"\n")),
        "akua.context",
        "is 54 characters",
    );
    assert_error(&base_with("[akua]\n", "[akua]\ncontext = \"\"\n"), "akua.context", "empty");
}

#[test]
fn offers_list_checked() {
    assert_error(&base_with("[akua]\n", "[akua]\noffers = []\n"), "akua.offers", "empty list");
    assert_error(&base_with("[akua]\n", "[akua]\noffers = \"offer_a\"\n"), "akua.offers", "expected an array");
    assert_error(&base_with("[akua]\n", "[akua]\noffers = [\"\"]\n"), "akua.offers[0]", "is 0 characters");
}

#[test]
fn secret_pairs_exclusive() {
    let both = base_with("token = \"${AKUA_API_TOKEN}\"", "token = \"${AKUA_API_TOKEN}\"\ntoken_file = \"t\"");
    assert_error(&both, "akua.token", "not both");
    assert_error(&base_with("token = \"${AKUA_API_TOKEN}\"", ""), "akua.token", "`token_file");

    let both = base_with("webhook_url = ", "webhook_url_file = \"u\"\nwebhook_url = ");
    assert_error(&both, "sinks.sales.webhook_url", "not both");
    assert_error(&base_with("webhook_url = \"${SLACK_WEBHOOK_URL}\"", ""), "sinks.sales.webhook_url", "missing");

    let both = base_with("url = \"https", "url_file = \"u\"\nurl = \"https");
    assert_error(&both, "sinks.ops.url", "not both");
    assert_error(&base_with("url = \"https://ops.example.com/hooks/URL_SENTINEL\"", ""), "sinks.ops.url", "missing");

    let both = base_with("secret = ", "secret_file = \"s\"\nsecret = ");
    assert_error(&both, "sinks.ops.secret", "not both");
}

#[test]
fn empty_secret_names_variable() {
    let error = assert_error(&base_with("${AKUA_API_TOKEN}", "${EMPTY}"), "akua.token", "empty");
    assert!(error.message.contains("`${EMPTY}`"), "{error}");
}

#[test]
fn interpolation_fills_any_string() {
    let text = base_with("name = \"paid\"", "name = \"cost $$${x} and $5 for ${STATUS}\"");
    let config = valid(&text).config;
    assert_eq!(config.rules[0].name.as_deref(), Some("cost $${x} and $5 for paymnt_ENV_SENTINEL"));

    let text = base_with("name = \"paid\"", "name = \"$${AKUA_API_TOKEN}\"");
    assert_eq!(valid(&text).config.rules[0].name.as_deref(), Some("${AKUA_API_TOKEN}"));
}

#[test]
fn interpolation_errors_name_key() {
    let error = assert_error(&base_with("${AKUA_API_TOKEN}", "${NOT_SET}"), "akua.token", "`NOT_SET` is not set");
    assert!(error.message.contains("$${"), "{error}");

    assert_error(&base_with("name = \"paid\"", "name = \"${STATUS\""), "rules[0].name", "no closing `}`");
    assert_error(&base_with("\"${TEAM_HEADER}\"", "\"${NOT_SET}\""), "sinks.ops.headers.X-Team", "`NOT_SET`");
    assert_error(
        &base_with("sinks = [\"sales\", \"ops\"]", "sinks = [\"sales\", \"${NOT_SET}\"]"),
        "rules[0].sinks[1]",
        "`NOT_SET`",
    );
}

#[test]
fn env_values_hidden_in_errors() {
    let error = assert_error(&base_with("to = \"install\"", "to = \"${STATUS}\""), "rules[0].to", "not a known status");
    assert!(error.message.starts_with("the value of `${STATUS}`"), "{error}");

    let error =
        assert_error(&base_with("[akua]\n", "[akua]\nbase_url = \"${STATUS}\"\n"), "akua.base_url", "`${STATUS}`");
    assert!(error.message.contains("not a valid URL"), "{error}");

    assert_error(&format!("{BASE}\n[poll]\ninterval = \"${{STATUS}}\"\n"), "poll.interval", "`${STATUS}`");
    assert_error(&base_with("type = \"slack\"", "type = \"${STATUS}\""), "sinks.sales.type", "`${STATUS}`");
    assert_error(&base_with("name = \"paid\"", "events = [\"${STATUS}\"]"), "rules[0].events[0]", "`${STATUS}`");
    assert_error(&base_with("sinks = [\"sales\", \"ops\"]", "sinks = \"${STATUS}\""), "rules[0].sinks", "`${STATUS}`");
    assert_error(
        &base_with("[akua]\n", "[akua]\ncontext = \"${STATUS}${STATUS}${STATUS}\"\n"),
        "akua.context",
        "`${STATUS}`",
    );
}

#[test]
fn secret_values_hidden_in_errors() {
    let bad_secrets = [
        base_with("\"${DRAFTWATCH_WEBHOOK_SECRET}\"", "\"${AKUA_API_TOKEN}\""),
        base_with("\"${DRAFTWATCH_WEBHOOK_SECRET}\"", "\"whsec_TOKEN_SENTINEL\""),
        base_with("\"${SLACK_WEBHOOK_URL}\"", "\"ftp://SLACK_SENTINEL\""),
        base_with("\"${SLACK_WEBHOOK_URL}\"", "\"${AKUA_API_TOKEN}\""),
        base_with("https://ops.example.com/hooks/URL_SENTINEL", "https://URL_SENTINEL:99999/"),
        base_with("${AKUA_API_TOKEN}", "TOKEN_SENTINEL\\n"),
        base_with("\"${TEAM_HEADER}\"", "\"HEADER_SENTINEL\\r\""),
        base_with("\"${DRAFTWATCH_WEBHOOK_SECRET}\"", "\"${DRAFTWATCH_WEBHOOK_SECRET}=\""),
    ];
    for text in &bad_secrets {
        let error = parse_text(text).expect_err("the configuration should be invalid");
        check_error_shape(&error);
    }
}

#[test]
fn debug_output_hides_secrets() {
    let loaded = valid(BASE);
    let debug = format!("{loaded:?}");

    for sentinel in SENTINELS {
        assert!(!debug.contains(sentinel), "{sentinel} leaked into: {debug}");
    }
    assert!(debug.contains("[redacted]"));
}

#[test]
fn syntax_error_keeps_position() {
    let text = "[akua]\ntoken = \"TOKEN_SENTINEL\"\npage_size = = 5\n";
    let error = parse_text(text).expect_err("the syntax is invalid");
    check_error_shape(&error);
    assert_eq!(error.key, None);
    assert!(error.message.starts_with("invalid TOML at line 3, column 13"), "{error}");

    let text = "[akua]\ntoken = \"TOKEN_SENTINEL\n";
    let error = parse_text(text).expect_err("the string is unterminated");
    check_error_shape(&error);
    assert!(error.message.contains("line 2"), "{error}");

    let text = "[akua]\ntoken = \"a\"\ntoken = \"TOKEN_SENTINEL\"\n";
    let error = parse_text(text).expect_err("the key is duplicated");
    check_error_shape(&error);
    assert!(error.message.contains("line 3"), "{error}");
}

#[test]
fn secret_files_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "  sk_from_file\n\n").unwrap();
    let absolute = dir.path().join("slack");
    std::fs::write(&absolute, "https://hooks.slack.com/services/FILE\n").unwrap();
    std::fs::write(dir.path().join("secret"), format!("{WEBHOOK_SECRET}\n")).unwrap();

    let text = BASE
        .replacen("token = \"${AKUA_API_TOKEN}\"", "token_file = \"token\"", 1)
        .replacen(
            "webhook_url = \"${SLACK_WEBHOOK_URL}\"",
            &format!("webhook_url_file = {:?}", absolute.display().to_string()),
            1,
        )
        .replacen("secret = \"${DRAFTWATCH_WEBHOOK_SECRET}\"", "secret_file = \"secret\"", 1)
        .replacen("url = \"https://ops.example.com/hooks/URL_SENTINEL\"", "url_file = \"slack\"", 1);
    let config = parse_in(&text, dir.path()).unwrap().config;

    assert_eq!(config.akua.token.expose(), "sk_from_file");
    let SinkConfig::Slack(sales) = &config.sinks["sales"] else { panic!("sales is not a slack sink") };
    assert_eq!(sales.webhook_url.expose().as_str(), "https://hooks.slack.com/services/FILE");
    let SinkConfig::Webhook(ops) = &config.sinks["ops"] else { panic!("ops is not a webhook sink") };
    assert_eq!(ops.url.expose().as_str(), "https://hooks.slack.com/services/FILE");
    assert_eq!(ops.signing_key.as_ref().unwrap().expose().len(), 24);
}

#[test]
fn secret_file_errors_name_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blank"), " \n").unwrap();
    std::fs::write(dir.path().join("bad_url"), "URL_SENTINEL\n").unwrap();

    let text = base_with("token = \"${AKUA_API_TOKEN}\"", "token_file = \"absent\"");
    let error = parse_in(&text, dir.path()).unwrap_err();
    check_error_shape(&error);
    assert_eq!(error.key.as_deref(), Some("akua.token_file"));
    assert!(error.message.contains(&dir.path().join("absent").display().to_string()), "{error}");

    let text = base_with("token = \"${AKUA_API_TOKEN}\"", "token_file = \"blank\"");
    let error = parse_in(&text, dir.path()).unwrap_err();
    assert_eq!(error.key.as_deref(), Some("akua.token_file"));
    assert!(error.message.starts_with("empty"), "{error}");

    let text = base_with("url = \"https://ops.example.com/hooks/URL_SENTINEL\"", "url_file = \"bad_url\"");
    let error = parse_in(&text, dir.path()).unwrap_err();
    check_error_shape(&error);
    assert_eq!(error.key.as_deref(), Some("sinks.ops.url_file"));
}

#[test]
fn load_reads_file_and_dir() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "sk_loaded\n").unwrap();
    let text = "[akua]\ntoken_file = \"token\"\n[sinks.out]\ntype = \"console\"\n[[rules]]\nsinks = [\"out\"]\n";
    let path = dir.path().join("draftwatch.toml");
    std::fs::write(&path, text).unwrap();

    let config = load(&path).unwrap().config;

    assert_eq!(config.akua.token.expose(), "sk_loaded");
}

#[test]
fn load_missing_file_explains() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.toml");

    let error = load(&path).unwrap_err();

    check_error_shape(&error);
    assert_eq!(error.key, None);
    let shown = error.to_string();
    assert!(shown.contains(&path.display().to_string()), "{shown}");
    assert!(shown.contains("--config PATH"), "{shown}");
    assert!(shown.contains("DRAFTWATCH_CONFIG"), "{shown}");
}

#[test]
fn stuck_table_reads_durations() {
    let config = valid(&format!("{BASE}\n[stuck]\nconfigure = \"1h\"\npayment = \"30m\"\n")).config;
    assert_eq!(config.stuck.get(&crate::akua::DraftStatus::Configure), Some(&Duration::from_secs(3600)));
    assert_eq!(config.stuck.get(&crate::akua::DraftStatus::Payment), Some(&Duration::from_secs(1800)));
    assert!(valid(BASE).config.stuck.is_empty());
}

#[test]
fn stuck_rejects_bad_entries() {
    assert_error(&format!("{BASE}\n[stuck]\nconfigur = \"1h\"\n"), "stuck.configur", "did you mean `configure`?");
    assert_error(&format!("{BASE}\n[stuck]\ndone = \"1h\"\n"), "stuck.done", "never leaves");
    assert_error(&format!("{BASE}\n[stuck]\npayment = \"soon\"\n"), "stuck.payment", "not a duration");
    assert_error(&format!("{BASE}\n[stuck]\npayment = \"0s\"\n"), "stuck.payment", "longer than zero");
}

#[test]
fn poll_mode_and_full_every() {
    let config = valid(&format!("{BASE}\n[poll]\nmode = \"active\"\nfull_every = \"2h\"\n")).config;
    assert_eq!(config.poll.mode, super::PollMode::Active);
    assert_eq!(config.poll.full_every, Duration::from_secs(7200));
    assert_eq!(valid(BASE).config.poll.mode, super::PollMode::Full);
    assert_error(&format!("{BASE}\n[poll]\nmode = \"activ\"\n"), "poll.mode", "did you mean `active`?");
}

#[test]
fn rule_fields_default_to_updated() {
    let text = format!("{BASE}\n[[rules]]\nfields = [\"delivery.status\"]\nsinks = [\"ops\"]\n");
    let rule = valid(&text).config.rules.pop().unwrap();
    assert_eq!(rule.events, [crate::event::EventKind::Updated]);
    assert_eq!(rule.fields, ["delivery.status"]);

    let text = format!("{BASE}\n[[rules]]\nfields = [\"delivery.staus\"]\nsinks = [\"ops\"]\n");
    assert_error(&text, "rules[1].fields[0]", "did you mean `delivery.status`?");
}

#[test]
fn server_listen_is_read() {
    assert_eq!(valid(BASE).config.server, None);
    let loaded = valid(&format!("{BASE}\n[server]\nlisten = \"0.0.0.0:9090\"\n"));
    assert_eq!(loaded.config.server, Some(ServerConfig { listen: "0.0.0.0:9090".parse().unwrap() }));
}

#[test]
fn server_listen_rejects_hostname() {
    assert_error(&format!("{BASE}\n[server]\nlisten = \"localhost:9090\"\n"), "server.listen", "127.0.0.1:9090");
    assert_error(&format!("{BASE}\n[server]\nlisen = \"127.0.0.1:9090\"\n"), "server.lisen", "did you mean `listen`");
}
