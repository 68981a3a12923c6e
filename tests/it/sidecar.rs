//! `run` as a sidecar: the HTTP endpoint, JSON logs, reload on SIGHUP, secrets from files
//! and `test-sink`, all against the real binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use draftwatch::akua::DraftStatus;
use draftwatch::sim::{Endpoint, Fault, OfferSpec};
use serde_json::Value;

use crate::receiver::Answer;
use crate::support::{Harness, draftwatch, stderr};

/// How long any condition may take to become true.
const PATIENCE: Duration = Duration::from_secs(10);
const POLL_EVERY: Duration = Duration::from_millis(50);

/// A `draftwatch run` child process with JSON logs in a file. Dropping it kills the child.
struct Sidecar {
    child: Child,
    log: PathBuf,
    addr: SocketAddr,
    http: reqwest::Client,
}

impl Sidecar {
    /// Starts `run` on `config` and waits for the server's address in the log.
    async fn start(config: &Path) -> Sidecar {
        let log = config.with_extension("log");
        let child = Command::new(env!("CARGO_BIN_EXE_draftwatch"))
            .args(["--log-format", "json", "--config"])
            .arg(config)
            .arg("run")
            .env_remove("RUST_LOG")
            .env_remove("DRAFTWATCH_CONFIG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().unwrap();
        let mut sidecar = Sidecar { child, log, addr: SocketAddr::from(([127, 0, 0, 1], 0)), http };

        let listening = sidecar.wait_log("http server listening").await;
        sidecar.addr = listening["address"].as_str().unwrap().parse().unwrap();
        sidecar
    }

    /// Returns every complete log line, each parsed as one JSON object.
    fn logs(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap();
        let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
        complete
            .lines()
            .map(|line| {
                let value: Value =
                    serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
                assert!(value.is_object(), "not an object: {line}");
                value
            })
            .collect()
    }

    fn messages(&self, fragment: &str) -> Vec<Value> {
        self.logs().into_iter().filter(|line| line["message"].as_str().unwrap_or("").contains(fragment)).collect()
    }

    async fn wait_log(&self, fragment: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(line) = self.messages(fragment).pop() {
                return line;
            }
            assert!(Instant::now() < deadline, "no log line with {fragment:?}; log:\n{}", self.log_text());
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self.http.get(format!("http://{}{path}", self.addr)).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Polls `/status` until `ready` holds for it, and returns it.
    async fn wait_status(&self, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (code, body) = self.get("/status").await;
            assert_eq!(code, 200, "{body}");
            let status: Value = serde_json::from_str(&body).unwrap();
            if ready(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; last status: {status:#}");
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    async fn metrics(&self) -> String {
        let (code, body) = self.get("/metrics").await;
        assert_eq!(code, 200, "{body}");
        body
    }

    fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) with the id of a child this test spawned and has not reaped yet.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill failed");
    }

    /// Sends SIGTERM and waits for the exit.
    async fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "run did not stop on SIGTERM; log:\n{}", self.log_text());
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SERVER: &str = "\n[server]\nlisten = \"127.0.0.1:0\"\n";

/// Builds a configuration for `harness` with `auth` in `[akua]` and `sinks_and_rules` after it.
fn config_with(harness: &Harness, auth: &str, sinks_and_rules: &str) -> String {
    format!(
        "[akua]\nbase_url = \"{}\"\n{auth}\nrequest_timeout = \"5s\"\n\n[poll]\ninterval = \"1s\"\n\n\
         [state]\npath = \"{}\"\n{SERVER}\n{sinks_and_rules}",
        harness.sim.base_url(),
        harness.state_path().display(),
    )
}

fn webhook_sink(harness: &Harness, name: &str) -> String {
    format!("[sinks.{name}]\ntype = \"webhook\"\nurl = \"{}\"\ntimeout = \"5s\"\n", harness.hook.url("/hooks/akua"))
}

fn write(harness: &Harness, text: &str) -> PathBuf {
    let path = harness.dir.path().join("draftwatch.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Returns the value of the sample `name{labels}` in Prometheus text, if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn sidecar_probes_status_metrics() {
    let harness = Harness::start().await;
    let draft = harness.add_draft(DraftStatus::Payment, "buyer@example.com");
    let config = harness.write_config(SERVER);
    let mut sidecar = Sidecar::start(&config).await;

    assert_eq!(sidecar.get("/healthz").await.0, 200);
    let offer = harness.offer.clone();
    sidecar.wait_status("a complete sweep", |status| status["last_complete_sweep_at"].is_string()).await;
    assert_eq!(sidecar.get("/readyz").await.0, 200);

    harness.set_status(&draft, DraftStatus::Install);
    let status = sidecar
        .wait_status("two deliveries", |status| {
            status["sinks"]["ops"]["last_delivered_at"].is_string()
                && status["sinks"]["sales"]["last_delivered_at"].is_string()
        })
        .await;
    assert_eq!(status["ready"], true);
    assert_eq!(status["offers"][&offer]["result"], "ok", "{status:#}");
    assert_eq!(status["offers"][&offer]["error"], Value::Null);
    assert_eq!(status["outbox"]["pending"], 0);
    assert_eq!(status["outbox"]["dead"], 0);
    assert_eq!(status["sinks"]["ops"]["type"], "webhook");
    assert_eq!(status["sinks"]["ops"]["last_error"], Value::Null);

    let metrics = sidecar.metrics().await;
    for line in metrics.lines().filter(|line| !line.is_empty()) {
        let name = line.trim_start_matches("# HELP ").trim_start_matches("# TYPE ");
        assert!(name.starts_with("draftwatch_"), "unprefixed metric: {line}");
    }
    assert!(sample(&metrics, "draftwatch_sweeps_total{result=\"complete\"}").unwrap() >= 1.0, "{metrics}");
    let last_sweep = sample(&metrics, "draftwatch_last_complete_sweep_timestamp_seconds").unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - last_sweep).abs() < 60.0, "last sweep {last_sweep}, now {now}");
    assert_eq!(sample(&metrics, "draftwatch_events_total{type=\"status_changed\"}"), Some(1.0), "{metrics}");
    let delivered = "draftwatch_deliveries_total{sink=\"ops\",outcome=\"delivered\"}";
    assert_eq!(sample(&metrics, delivered), Some(1.0), "{metrics}");
    assert_eq!(sample(&metrics, "draftwatch_outbox_entries{state=\"pending\"}"), Some(0.0), "{metrics}");
    assert!(metrics.contains("draftwatch_sweep_duration_seconds_bucket"), "{metrics}");

    let exit = sidecar.stop().await;
    assert!(exit.success(), "{exit:?}");
    assert!(sidecar.http.get(format!("http://{}/healthz", sidecar.addr)).send().await.is_err(), "server stopped");
    let logs = sidecar.logs();
    assert!(logs.iter().any(|line| line["message"] == "sweep finished" && line["level"] == "INFO"));
    assert!(logs.iter().any(|line| line["message"] == "draftwatch stopped"), "{}", sidecar.log_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn api_failure_keeps_ready() {
    let harness = Harness::start().await;
    let healthy = harness.sim.with_world(|world| world.add_offer(OfferSpec::paid()).unwrap());
    let failing = harness.offer.clone();
    harness.sim.with_world(|world| {
        world.inject(Fault::new(Endpoint::ListDrafts, 500).for_offer(failing.as_str()).until_cleared())
    });
    let config = harness.write_config(SERVER);
    let sidecar = Sidecar::start(&config).await;

    let status = sidecar
        .wait_status("three failed sweeps", |status| {
            status["offers"][&failing]["consecutive_failures"].as_u64().unwrap_or(0) >= 3
        })
        .await;
    assert_eq!(status["offers"][&failing]["result"], "failed");
    let error = status["offers"][&failing]["error"].as_str().unwrap();
    assert!(error.contains("HTTP 500"), "{error}");
    assert_eq!(status["offers"][&healthy]["result"], "ok");
    assert_eq!(sidecar.get("/readyz").await.0, 200, "an api outage never makes the pod unready");

    let metrics = sidecar.metrics().await;
    assert!(sample(&metrics, "draftwatch_api_errors_total{status=\"500\"}").unwrap() >= 3.0, "{metrics}");
    // N.B. a sweep is counted when it ends, after its offers were reported to /status.
    assert!(sample(&metrics, "draftwatch_sweeps_total{result=\"partial\"}").unwrap() >= 2.0, "{metrics}");
    assert_eq!(sample(&metrics, "draftwatch_offers_failing"), Some(1.0), "{metrics}");
    assert_eq!(sample(&metrics, "draftwatch_last_complete_sweep_timestamp_seconds"), None, "{metrics}");

    let failures = sidecar.messages("offer sweep failed");
    assert_eq!(failures.len(), 1, "the same error is logged once: {failures:?}");
    assert_eq!(failures[0]["level"], "ERROR");
    assert_eq!(failures[0]["offer_id"], failing.as_str());

    harness.sim.with_world(|world| world.clear_faults());
    let recovered = sidecar.wait_log("offer sweep recovered").await;
    assert_eq!(recovered["offer_id"], failing.as_str());
    assert!(recovered["failures"].as_u64().unwrap() >= 3, "{recovered}");
    sidecar.wait_status("recovery", |status| status["offers"][&failing]["result"] == "ok").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_applies_rule_survives_invalid() {
    let harness = Harness::start().await;
    let draft = harness.add_draft(DraftStatus::Payment, "buyer@example.com");
    let auth = format!("token = \"{}\"", harness.sim.token());
    let only_terminated =
        format!("{}\n[[rules]]\nto = \"terminated\"\nsinks = [\"ops\"]\n", webhook_sink(&harness, "ops"));
    let config = write(&harness, &config_with(&harness, &auth, &only_terminated));
    let sidecar = Sidecar::start(&config).await;
    sidecar.wait_status("a baseline", |status| status["last_complete_sweep_at"].is_string()).await;

    std::fs::write(&config, "[akua]\ntokn = \"x\"\n").unwrap();
    sidecar.signal(libc::SIGHUP);
    let rejected = sidecar.wait_log("configuration reload rejected").await;
    assert_eq!(rejected["level"], "ERROR");
    assert!(rejected["message"].as_str().unwrap().contains("akua.tokn"), "{rejected}");
    assert_eq!(sidecar.get("/healthz").await.0, 200, "an invalid file does not stop the process");

    let to_install = format!("{}\n[[rules]]\nto = \"install\"\nsinks = [\"ops\"]\n", webhook_sink(&harness, "ops"));
    std::fs::write(&config, config_with(&harness, &auth, &to_install)).unwrap();
    sidecar.signal(libc::SIGHUP);
    let reloaded = sidecar.wait_log("configuration reloaded").await;
    assert!(reloaded["changes"].as_str().unwrap().contains("rules: 1 → 1"), "{reloaded}");

    harness.set_status(&draft, DraftStatus::Install);
    let deadline = Instant::now() + PATIENCE;
    while harness.hook.received().is_empty() {
        assert!(Instant::now() < deadline, "the new rule sent nothing; log:\n{}", sidecar.log_text());
        tokio::time::sleep(POLL_EVERY).await;
    }
    let body = harness.hook.received()[0].json();
    assert_eq!(body["data"]["status"], "install");
    assert_eq!(body["data"]["draft_id"], draft.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_dead_letters_removed_sink() {
    let harness = Harness::start().await;
    let draft = harness.add_draft(DraftStatus::Payment, "buyer@example.com");
    harness.hook.answer_always(Answer::status(503));
    let auth = format!("token = \"{}\"", harness.sim.token());
    let rules = "\n[[rules]]\nto = \"install\"\nsinks = [\"ops\"]\n";
    let config = write(&harness, &config_with(&harness, &auth, &format!("{}{rules}", webhook_sink(&harness, "ops"))));
    let sidecar = Sidecar::start(&config).await;
    sidecar.wait_status("a baseline", |status| status["last_complete_sweep_at"].is_string()).await;

    harness.set_status(&draft, DraftStatus::Install);
    let status =
        sidecar.wait_status("a failing delivery", |status| status["sinks"]["ops"]["last_error"].is_string()).await;
    assert_eq!(status["outbox"]["pending"], 1, "{status:#}");
    assert!(status["sinks"]["ops"]["last_error"].as_str().unwrap().contains("503"), "{status:#}");

    let console = "[sinks.stdout]\ntype = \"console\"\n\n[[rules]]\nto = \"install\"\nsinks = [\"stdout\"]\n";
    std::fs::write(&config, config_with(&harness, &auth, console)).unwrap();
    sidecar.signal(libc::SIGHUP);
    let status = sidecar.wait_status("a dead letter", |status| status["outbox"]["dead"] == 1).await;
    assert_eq!(status["outbox"]["pending"], 0, "{status:#}");
    let letter = &status["outbox"]["dead_letters"][0];
    assert_eq!(letter["sink"], "ops");
    assert_eq!(letter["draft_id"], draft.as_str());
    assert!(letter["reason"].as_str().unwrap().contains("no longer configured"), "{letter}");
    assert!(!status["sinks"].as_object().unwrap().contains_key("ops"), "removed sinks leave /status");

    let metrics = sidecar.metrics().await;
    assert_eq!(sample(&metrics, "draftwatch_dead_letters_total{sink=\"ops\"}"), Some(1.0), "{metrics}");
    assert_eq!(sample(&metrics, "draftwatch_outbox_entries{state=\"dead\"}"), Some(1.0), "{metrics}");
    let dead = sidecar.messages("notification dead-lettered");
    assert_eq!(dead.len(), 1, "{}", sidecar.log_text());
    assert_eq!(dead[0]["level"], "ERROR");
}

#[tokio::test(flavor = "multi_thread")]
async fn token_file_read_and_reread() {
    let harness = Harness::start().await;
    let token_path = harness.dir.path().join("token");
    std::fs::write(&token_path, "sk_akua_not_the_right_token\n").unwrap();
    let rules = format!("{}\n[[rules]]\nsinks = [\"ops\"]\n", webhook_sink(&harness, "ops"));
    let config = write(&harness, &config_with(&harness, "token_file = \"token\"", &rules));
    let sidecar = Sidecar::start(&config).await;

    let status = sidecar.wait_status("a rejected token", |status| status["offer_listing"]["result"] == "failed").await;
    let error = status["offer_listing"]["error"].as_str().unwrap();
    assert!(error.contains("HTTP 401"), "{error}");
    assert_eq!(sidecar.get("/readyz").await.0, 200, "a bad token never makes the pod unready");
    assert!(!sidecar.log_text().contains("sk_akua_not_the_right_token"), "the token leaked into the log");

    std::fs::write(&token_path, format!("  {}\n", harness.sim.token())).unwrap();
    sidecar.signal(libc::SIGHUP);
    let reloaded = sidecar.wait_log("configuration reloaded").await;
    assert_eq!(reloaded["changes"], "akua.token: changed", "{reloaded}");
    let offer = harness.offer.clone();
    sidecar
        .wait_status("a sweep with the new token", |status| {
            status["offer_listing"]["result"] == "ok" && status["offers"][&offer]["result"] == "ok"
        })
        .await;
    sidecar.wait_log("listing offers works again").await;
    assert!(!sidecar.log_text().contains(&harness.sim.token()), "the token leaked into the log");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_and_rust_log() {
    let harness = Harness::start().await;
    let config = harness.write_config("");

    let quiet = tokio::process::Command::new(env!("CARGO_BIN_EXE_draftwatch"))
        .args(["--log-format", "json", "--config"])
        .arg(&config)
        .arg("once")
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(quiet.status.success(), "{}", stderr(&quiet));
    assert!(quiet.stderr.is_empty(), "RUST_LOG=warn hides info lines: {}", stderr(&quiet));

    harness.sim.with_world(|world| world.fail_endpoint(Endpoint::ListOffers, 503));
    let failed = draftwatch(&config, &["--log-format", "json", "once"]).await;
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    let lines: Vec<Value> = stderr(&failed)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}")))
        .collect();
    assert!(lines.iter().any(|line| line["message"] == "sweep finished"), "{lines:?}");
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "ERROR");
    assert!(last["message"].as_str().unwrap().starts_with("once finished with problems"), "{last}");

    let usage = draftwatch(&config, &["--log-format", "json", "bogus"]).await;
    assert_eq!(usage.status.code(), Some(2));
    let line: Value = serde_json::from_str(stderr(&usage).trim()).unwrap();
    assert!(line["message"].as_str().unwrap().contains("bogus"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn test_sink_accepted_rejected_unknown() {
    let harness = Harness::start().await;
    let config = harness.write_config("");

    let accepted = draftwatch(&config, &["test-sink", "sales"]).await;
    assert!(accepted.status.success(), "{}", stderr(&accepted));
    let slack = harness.slack.received();
    assert_eq!(slack.len(), 1);
    let text = slack[0].json()["text"].as_str().unwrap().to_owned();
    assert!(text.starts_with("test notification from draftwatch"), "{text}");
    assert!(text.contains("odft_draftwatch_test"), "{text}");

    let signed = draftwatch(&config, &["test-sink", "ops"]).await;
    assert!(signed.status.success(), "{}", stderr(&signed));
    let hook = &harness.hook.received()[0];
    assert!(hook.header("webhook-signature").unwrap().starts_with("v1,"));
    let body = hook.json();
    assert_eq!(body["data"]["draft_id"], "odft_draftwatch_test");
    assert_eq!(body["data"]["rule"], "test notification from draftwatch");

    harness.hook.answer_always(Answer::status(500).with_body("receiver broke"));
    let rejected = draftwatch(&config, &["test-sink", "ops"]).await;
    assert_eq!(rejected.status.code(), Some(1), "{}", stderr(&rejected));
    assert!(stderr(&rejected).contains("500"), "{}", stderr(&rejected));

    let unknown = draftwatch(&config, &["test-sink", "slaes"]).await;
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("did you mean `sales`?"), "{}", stderr(&unknown));
    assert!(!harness.state_path().exists(), "test-sink leaves the state directory alone");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_config_shows_server_not_secrets() {
    let harness = Harness::start().await;
    std::fs::write(harness.dir.path().join("token"), "sk_akua_FILE_TOKEN_SENTINEL\n").unwrap();
    let sinks = format!(
        "[sinks.ops]\ntype = \"webhook\"\nurl = \"{}\"\nsecret = \"{}\"\nheaders = {{ \"X-Team\" = \"HEADER_SENTINEL\" }}\n\n\
         [[rules]]\nsinks = [\"ops\"]\n",
        harness.hook.url("/hooks/PATH_SENTINEL"),
        crate::support::WEBHOOK_SECRET,
    );
    let config = write(&harness, &config_with(&harness, "token_file = \"token\"", &sinks));

    let output = draftwatch(&config, &["check-config"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("server: 127.0.0.1:0 (/healthz, /readyz, /status, /metrics)"), "{stdout}");
    assert!(stdout.contains(&format!("ops: webhook → {}, signed", harness.hook.addr)), "{stdout}");
    let secret_key = crate::support::WEBHOOK_SECRET.trim_start_matches("whsec_");
    for secret in ["FILE_TOKEN_SENTINEL", "PATH_SENTINEL", "HEADER_SENTINEL", secret_key] {
        assert!(!stdout.contains(secret), "{secret} printed: {stdout}");
        assert!(!stderr(&output).contains(secret), "{secret} logged: {}", stderr(&output));
    }
}

/// Returns the lines of the YAML block scalar that follows `key: |`, unindented.
fn yaml_block(yaml: &str, key: &str) -> String {
    let mut lines = yaml.lines().skip_while(|line| line.trim() != format!("{key}: |")).skip(1).peekable();
    let indent = lines.peek().map(|line| line.len() - line.trim_start().len()).unwrap();
    let block: Vec<&str> =
        lines.take_while(|line| line.trim().is_empty() || line.starts_with(&" ".repeat(indent))).collect();
    block.iter().map(|line| line.get(indent..).unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Returns the quoted value of `key: "value"` in `yaml`.
fn yaml_string(yaml: &str, key: &str) -> String {
    let line = yaml.lines().find(|line| line.trim_start().starts_with(&format!("{key}: \""))).unwrap();
    line.split('"').nth(1).unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn kubernetes_example_config_valid() {
    let manifest = include_str!("../../deploy/kubernetes/draftwatch.yaml");
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    for key in ["akua-token", "slack-webhook-url", "webhook-secret"] {
        std::fs::write(secrets.join(key), yaml_string(manifest, key)).unwrap();
    }
    let toml = yaml_block(manifest, "draftwatch.toml")
        .replace("/etc/draftwatch/secrets", &secrets.display().to_string())
        .replace("/var/lib/draftwatch", &dir.path().display().to_string());
    let config = dir.path().join("draftwatch.toml");
    std::fs::write(&config, toml).unwrap();

    let output = draftwatch(&config, &["check-config"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("server: 0.0.0.0:9090"), "{stdout}");
    assert!(stdout.contains("ops: webhook → ops.example.com, signed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn second_run_ends_with_json_error() {
    let harness = Harness::start().await;
    let config = harness.write_config(SERVER);
    let sidecar = Sidecar::start(&config).await;
    sidecar.wait_status("a baseline", |status| status["last_complete_sweep_at"].is_string()).await;

    let second = draftwatch(&config, &["--log-format", "json", "run"]).await;
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    let text = stderr(&second);
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "ERROR");
    let message = last["message"].as_str().unwrap();
    assert!(message.contains("in use by another draftwatch process"), "{message}");
    assert!(message.contains(&harness.state_path().display().to_string()), "{message}");
    assert_eq!(sidecar.get("/readyz").await.0, 200, "the first process keeps running");
}
