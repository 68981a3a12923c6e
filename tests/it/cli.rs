//! The real binary: exit codes, restarts on the same state, and error messages.

use draftwatch::akua::{DraftStatus, TerminationReason};
use draftwatch::sinks::signature::sign;

use crate::support::{Harness, WEBHOOK_SECRET, draftwatch, stderr};

fn signing_key() -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(WEBHOOK_SECRET.trim_start_matches("whsec_")).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn once_payment_to_install_delivered_once() {
    let harness = Harness::start().await;
    let draft = harness.add_draft(DraftStatus::Payment, "buyer@example.com");
    let config = harness.write_config("");

    let baseline = draftwatch(&config, &["once"]).await;
    assert!(baseline.status.success(), "{}", stderr(&baseline));
    assert!(harness.slack.received().is_empty(), "the baseline sends nothing");
    assert!(harness.hook.received().is_empty(), "the baseline sends nothing");

    harness.set_status(&draft, DraftStatus::Install);
    let sweep = draftwatch(&config, &["once"]).await;
    assert!(sweep.status.success(), "{}", stderr(&sweep));

    let slack = harness.slack.received();
    assert_eq!(slack.len(), 1, "slack gets exactly one message");
    let text = slack[0].json()["text"].as_str().unwrap().to_owned();
    assert!(text.contains(&draft), "{text}");
    assert!(text.contains("payment → install"), "{text}");

    let hooks = harness.hook.received();
    assert_eq!(hooks.len(), 1, "the webhook gets exactly one request");
    let request = &hooks[0];
    let id = request.header("webhook-id").unwrap();
    let timestamp: i64 = request.header("webhook-timestamp").unwrap().parse().unwrap();
    let signature = request.header("webhook-signature").unwrap();
    assert_eq!(signature, sign(&signing_key(), &id, timestamp, &request.body), "signature covers the bytes sent");
    assert!(id.starts_with("evt_"), "{id}");

    let body = request.json();
    assert_eq!(body["type"], "order_draft.status_changed");
    assert_eq!(body["data"]["draft_id"], draft.as_str());
    assert_eq!(body["data"]["previous_status"], "payment");
    assert_eq!(body["data"]["status"], "install");
    assert_eq!(body["data"]["rule"], "everything");
    assert_eq!(body["data"]["draft"]["id"], draft.as_str());

    let again = draftwatch(&config, &["once"]).await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(harness.slack.received().len(), 1, "a new process on the same state re-sends nothing");
    assert_eq!(harness.hook.received().len(), 1, "a new process on the same state re-sends nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn once_terminated_carries_reason() {
    let (harness, draft, config) = Harness::baselined(DraftStatus::Configure).await;

    harness.sim.with_world(|world| {
        world.set_status(&draft, DraftStatus::Terminated, Some(TerminationReason::QuotaExceeded)).unwrap()
    });
    let output = draftwatch(&config, &["once"]).await;
    assert!(output.status.success(), "{}", stderr(&output));

    let slack = harness.slack.received();
    assert_eq!(slack.len(), 1);
    assert!(String::from_utf8_lossy(&slack[0].body).contains("quota_exceeded"));
    let hook = harness.hook.received();
    assert_eq!(hook.len(), 1);
    assert_eq!(hook[0].json()["data"]["termination_reason"], "quota_exceeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn once_wrong_token_is_clear_error() {
    let harness = Harness::start().await;
    let config_path = harness.dir.path().join("bad-token.toml");
    let text = harness.config_text("").replace(&harness.sim.token(), "sk_akua_wrong_secret_value");
    std::fs::write(&config_path, text).unwrap();

    let output = draftwatch(&config_path, &["once"]).await;
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    assert!(stderr.contains("akua.token"), "{stderr}");
    assert!(!stderr.contains("sk_akua_wrong_secret_value"), "the token leaked: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains("ERROR"), "the last line says what failed: {last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn once_redirect_is_not_delivery() {
    let (harness, draft, config) = Harness::baselined(DraftStatus::Payment).await;

    let target = harness.hook.url("/moved-here");
    harness.hook.answer_always(crate::receiver::Answer::status(301).with_header("location", &target));
    harness.set_status(&draft, DraftStatus::Install);
    let output = draftwatch(&config, &["once"]).await;
    let stderr = stderr(&output);

    assert_eq!(output.status.code(), Some(1), "a dead letter fails once: {stderr}");
    let paths: Vec<String> = harness.hook.received().iter().map(|request| request.path.clone()).collect();
    assert_eq!(paths, ["/hooks/akua"], "the redirect is not followed");
    assert!(stderr.contains("dead-lettered"), "{stderr}");
    assert_eq!(harness.slack.received().len(), 1, "the other sink is unaffected");
}

#[tokio::test(flavor = "multi_thread")]
async fn config_errors_exit_two_naming_key() {
    let harness = Harness::start().await;
    let cases = [
        ("[akua]\npage_size = 0", "page_size", "page_size = 100"),
        ("[[rules]]\nto = \"instal\"\nsinks = [\"sales\"]", "instal", ""),
        ("[[rules]]\nsinks = [\"slaes\"]", "slaes", ""),
    ];
    for (index, (snippet, expected, replaced)) in cases.iter().enumerate() {
        let mut text = harness.config_text("");
        if replaced.is_empty() {
            text.push_str(snippet);
        } else {
            text = text.replace(replaced, snippet.trim_start_matches("[akua]\n"));
        }
        let path = harness.dir.path().join(format!("case-{index}.toml"));
        std::fs::write(&path, text).unwrap();

        let output = draftwatch(&path, &["check-config"]).await;
        let stderr = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "case {index}: {stderr}");
        assert!(stderr.contains(expected), "case {index} names `{expected}`: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn check_config_prints_summary() {
    let harness = Harness::start().await;
    let extra = "\n[[rules]]\nname = \"urls\"\nfields = [\"delivery.urls\"]\nsinks = [\"ops\"]\n\n[stuck]\nconfigure = \"1h\"\n";
    let config = harness.write_config(extra);
    let output = draftwatch(&config, &["check-config"]).await;
    assert!(output.status.success(), "{}", stderr(&output));

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("stuck: configure after 1h"), "{stdout}");
    assert!(stdout.contains("urls: [updated] * → * when delivery.urls changed ⇒ ops"), "{stdout}");
    assert!(stdout.contains("full sweeps"), "{stdout}");
    assert!(stdout.contains("sales: slack"), "{stdout}");
    assert!(stdout.contains("ops: webhook"), "{stdout}");
    assert!(!stdout.contains("/services/T000"), "the slack url is a secret: {stdout}");
    assert!(!stdout.contains(&harness.sim.token()), "the token is a secret: {stdout}");

    let online = draftwatch(&config, &["check-config", "--online"]).await;
    assert!(online.status.success(), "{}", stderr(&online));
    assert!(String::from_utf8_lossy(&online.stdout).contains(&harness.offer));
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_three_cycles_exits_zero() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_draftwatch"))
        .args(["demo", "--cycles", "3", "--interval", "100ms"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout.contains("── cycle 3 ──"), "{stdout}");
    assert!(!stdout.contains("── cycle 4 ──"), "{stdout}");
    assert!(stdout.contains("baseline"), "{stdout}");
    assert!(stdout.contains("notification(s) shown"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn once_honours_short_retry_after() {
    let (harness, draft, config) = Harness::baselined(DraftStatus::Payment).await;

    harness.hook.script([crate::receiver::Answer::status(429).with_header("retry-after", "1")]);
    harness.set_status(&draft, DraftStatus::Install);
    let output = draftwatch(&config, &["once"]).await;
    let hooks = harness.hook.received();

    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(hooks.len(), 2, "one throttled attempt, one delivery");
    let ids: Vec<String> = hooks.iter().map(|request| request.header("webhook-id").unwrap()).collect();
    assert!(ids.iter().all(|id| id == &ids[0]), "every attempt has the same id: {ids:?}");
    for request in &hooks {
        let timestamp: i64 = request.header("webhook-timestamp").unwrap().parse().unwrap();
        let signature = request.header("webhook-signature").unwrap();
        assert_eq!(signature, sign(&signing_key(), &ids[0], timestamp, &request.body), "each attempt is signed anew");
    }
    assert!(hooks[1].at - hooks[0].at >= std::time::Duration::from_secs(1));
}
