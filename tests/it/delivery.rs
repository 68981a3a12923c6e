//! Durable delivery with the real binary: dead letters, restarts, crashes and signals.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use draftwatch::akua::DraftStatus;
use rand::{Rng, SeedableRng};

use crate::receiver::Answer;
use crate::support::{Harness, Running, draftwatch, eventually, stderr};

#[tokio::test(flavor = "multi_thread")]
async fn no_service_dead_letters_then_retry_all() {
    let harness = Harness::start().await;
    let drafts: Vec<String> = (0..5).map(|_| harness.add_draft(DraftStatus::Payment, "c@example.com")).collect();
    let config = harness.write_config("");
    assert!(draftwatch(&config, &["once"]).await.status.success());

    harness.slack.answer_always(Answer::status(404).with_body("no_service"));
    for draft in &drafts {
        harness.set_status(draft, DraftStatus::Install);
    }
    let failed = draftwatch(&config, &["once"]).await;
    let log = stderr(&failed);
    assert_eq!(failed.status.code(), Some(1), "{log}");
    assert_eq!(harness.slack.received().len(), 5, "one attempt each: {log}");
    assert_eq!(log.matches("notification dead-lettered").count(), 5, "{log}");
    assert!(log.contains("no_service"), "{log}");

    let listed = draftwatch(&config, &["outbox", "list"]).await;
    let table = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(
        table.starts_with("id\tsink\tevent type\tdraft id\tattempts\tstate\tnext attempt\tlast error\n"),
        "{table}"
    );
    assert_eq!(table.lines().filter(|line| line.contains("\tdead\t")).count(), 5, "{table}");

    let quiet = draftwatch(&config, &["once"]).await;
    assert_eq!(quiet.status.code(), Some(0), "dead letters of earlier runs do not fail once: {}", stderr(&quiet));
    assert_eq!(harness.slack.received().len(), 5, "dead letters are not resent");

    harness.slack.answer_always(Answer::status(200).with_body("ok"));
    let retried = draftwatch(&config, &["outbox", "retry", "--all"]).await;
    assert!(retried.status.success(), "{}", stderr(&retried));
    let delivered = draftwatch(&config, &["once"]).await;
    assert!(delivered.status.success(), "{}", stderr(&delivered));
    assert_eq!(harness.slack.received().len(), 10, "each dead letter is delivered once after retry");

    let listed = draftwatch(&config, &["outbox", "list"]).await;
    assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 1, "the outbox is empty");
}

#[tokio::test(flavor = "multi_thread")]
async fn outbox_drop_forgets_entry() {
    let (harness, draft, config) = Harness::baselined(DraftStatus::Payment).await;

    harness.hook.answer_always(Answer::status(400));
    harness.set_status(&draft, DraftStatus::Install);
    assert_eq!(draftwatch(&config, &["once"]).await.status.code(), Some(1));
    let event_id = harness.hook.received()[0].header("webhook-id").unwrap();

    let unknown = draftwatch(&config, &["outbox", "drop", "evt_nope:ops"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("outbox list"), "{}", stderr(&unknown));

    let dropped = draftwatch(&config, &["outbox", "drop", &format!("{event_id}:ops")]).await;
    assert!(dropped.status.success(), "{}", stderr(&dropped));
    let listed = draftwatch(&config, &["outbox", "list"]).await;
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&event_id));
}

#[tokio::test(flavor = "multi_thread")]
async fn second_process_is_refused() {
    let harness = Harness::start().await;
    let config = harness.write_config("");
    let _running = Running::start(&config);
    let lock = harness.state_path().join("draftwatch.lock");
    eventually("run holds the state", || std::fs::read_to_string(&lock).is_ok_and(|pid| !pid.is_empty())).await;

    for args in [&["once"][..], &["outbox", "list"][..]] {
        let output = draftwatch(&config, args).await;
        let log = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {log}");
        assert!(log.contains(&harness.state_path().display().to_string()), "names the directory: {log}");
        assert!(log.contains("another draftwatch process"), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_run_cleanly() {
    let harness = Harness::start().await;
    harness.add_draft(DraftStatus::Payment, "c@example.com");
    let config = harness.write_config("");
    let mut running = Running::start(&config);
    eventually("run swept once", || harness.sim.counters().list_drafts > 0).await;

    running.signal("TERM").await;
    let status = running.wait_exit(Duration::from_secs(10)).await.expect("run exits within seconds");
    assert!(status.success(), "{status:?}");

    let after = draftwatch(&config, &["once"]).await;
    assert!(after.status.success(), "the state is usable after the stop: {}", stderr(&after));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_request_redelivers_same_id() {
    let (harness, draft, config) = Harness::baselined(DraftStatus::Payment).await;

    harness.hook.script([Answer::status(200).after(Duration::from_secs(60))]);
    harness.set_status(&draft, DraftStatus::Install);
    let mut running = Running::start(&config);
    eventually("the webhook request is in flight", || !harness.hook.received().is_empty()).await;
    running.child.start_kill().unwrap();
    running.wait_exit(Duration::from_secs(10)).await.expect("killed");

    let restarted = draftwatch(&config, &["once"]).await;
    assert!(restarted.status.success(), "{}", stderr(&restarted));
    let hooks = harness.hook.received();
    assert_eq!(hooks.len(), 2, "delivered again after the crash");
    assert_eq!(hooks[0].header("webhook-id"), hooks[1].header("webhook-id"), "under the same id");
}

/// Moves a draft one step along the paid path, or ends it.
fn advance(harness: &Harness, draft: &str, rng: &mut impl Rng) {
    let next = match harness.sim.with_world(|world| world.draft_status(draft)).unwrap() {
        DraftStatus::Auth => DraftStatus::Workspace,
        DraftStatus::Workspace => DraftStatus::Compute,
        DraftStatus::Compute => DraftStatus::Configure,
        DraftStatus::Configure => DraftStatus::Payment,
        DraftStatus::Payment if rng.random_bool(0.3) => DraftStatus::Terminated,
        DraftStatus::Payment => DraftStatus::Install,
        DraftStatus::Install => DraftStatus::Done,
        _ => return,
    };
    harness.set_status(draft, next);
}

#[tokio::test(flavor = "multi_thread")]
async fn random_kills_lose_nothing() {
    let harness = Harness::start().await;
    let drafts: Vec<String> = (0..8).map(|_| harness.add_draft(DraftStatus::Auth, "c@example.com")).collect();
    let config = harness.write_config("");
    assert!(draftwatch(&config, &["once"]).await.status.success());
    harness.hook.answer_always(Answer::status(200).after(Duration::from_millis(30)));

    let mut rng = rand::rngs::StdRng::seed_from_u64(20261204);
    for _ in 0..10 {
        for draft in &drafts {
            if rng.random_bool(0.7) {
                advance(&harness, draft, &mut rng);
            }
        }
        let mut running = Running::start(&config);
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..1200))).await;
        running.child.start_kill().unwrap();
        running.wait_exit(Duration::from_secs(10)).await.expect("killed");
    }
    for _ in 0..5 {
        if draftwatch(&config, &["once"]).await.status.success() {
            break;
        }
    }

    let hooks = harness.hook.received();
    let mut ids_by_change: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for request in &hooks {
        let body = request.json();
        let draft = body["data"]["draft_id"].as_str().unwrap().to_owned();
        let etag = body["data"]["draft"]["etag"].as_str().unwrap().to_owned();
        ids_by_change.entry((draft, etag)).or_default().insert(request.header("webhook-id").unwrap());
    }
    for (change, ids) in &ids_by_change {
        assert_eq!(ids.len(), 1, "every copy of {change:?} shares its id: {ids:?}");
    }
    for draft in &drafts {
        let served = harness.sim.with_world(|world| world.draft_status(draft)).unwrap();
        if served == DraftStatus::Auth {
            continue;
        }
        let announced = harness.hook.received().iter().any(|request| {
            let body = request.json();
            body["data"]["draft_id"] == draft.as_str() && body["data"]["status"] == served.as_str()
        });
        assert!(announced, "{draft} reached {served} and that was delivered");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn once_leaves_long_retry_after_pending() {
    let (harness, draft, config) = Harness::baselined(DraftStatus::Payment).await;

    harness.hook.answer_always(Answer::status(503).with_header("retry-after", "120"));
    harness.set_status(&draft, DraftStatus::Install);
    let started = std::time::Instant::now();
    let output = draftwatch(&config, &["once"]).await;

    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(started.elapsed() < Duration::from_secs(30), "once does not sleep through the retry-after");
    assert!(stderr(&output).contains("still pending"), "{}", stderr(&output));
    assert_eq!(harness.hook.received().len(), 1);
    let listed = draftwatch(&config, &["outbox", "list"]).await;
    let table = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(table.lines().any(|line| line.contains("\tpending\t") && line.contains("503")), "{table}");
}

#[tokio::test(flavor = "multi_thread")]
async fn removed_sink_dead_letters_pending() {
    let (harness, draft, config) = Harness::baselined(DraftStatus::Payment).await;

    harness.hook.answer_always(Answer::status(503).with_header("retry-after", "120"));
    harness.set_status(&draft, DraftStatus::Install);
    assert_eq!(draftwatch(&config, &["once"]).await.status.code(), Some(1));

    let without_ops = harness
        .config_text("")
        .replace("[sinks.ops]\ntype = \"webhook\"", "[sinks.unused]\ntype = \"webhook\"")
        .replace("sinks = [\"ops\"]", "sinks = [\"unused\"]");
    std::fs::write(&config, without_ops).unwrap();
    let output = draftwatch(&config, &["once"]).await;
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(log.contains("sink `ops` is no longer configured"), "{log}");
    let listed = draftwatch(&config, &["outbox", "list"]).await;
    let table = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        table.lines().any(|line| line.contains(":ops\t") && line.contains("\tdead\t")),
        "kept, not dropped: {table}"
    );
}
