//! The pipeline in process: sweeps and delivery rounds against the simulated API.

use std::sync::Arc;

use draftwatch::akua::DraftStatus;
use draftwatch::app::App;
use draftwatch::clock::SystemClock;
use draftwatch::sim::{DraftSpec, Endpoint, Fault};
use draftwatch::state::EntryState;

use crate::receiver::Answer;
use crate::support::Harness;

fn build_app(harness: &Harness, extra: &str) -> App {
    let text = harness.config_text(extra);
    let loaded = draftwatch::config::parse(&text, &|_| None, harness.dir.path()).expect("test config is valid");
    App::build(loaded.config, Arc::new(SystemClock)).unwrap()
}

/// Runs one sweep and one delivery round.
async fn cycle(app: &App) {
    let sweep = app.watcher.sweep().await;
    assert!(sweep.is_complete(), "{sweep:?}");
    app.deliverer.deliver_due().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn etag_only_change_is_silent() {
    let harness = Harness::start().await;
    let draft = harness.add_draft(DraftStatus::Install, "buyer@example.com");
    let app = build_app(&harness, "");
    cycle(&app).await;

    harness.sim.with_world(|world| world.touch(&draft).unwrap());
    cycle(&app).await;

    assert!(harness.hook.received().is_empty());
    assert!(harness.slack.received().is_empty());
    let stored = app.store.snapshot(&harness.offer, &draft).unwrap().unwrap();
    let served = harness.sim.with_world(|world| world.draft(&draft).unwrap()["etag"].as_str().unwrap().to_owned());
    assert_eq!(stored.etag, served, "the snapshot follows the etag");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_email_arrives_inert() {
    let hostile = "<!channel> a&b <https://x.example|y>";
    let harness = Harness::start().await;
    let draft = harness.add_draft(DraftStatus::Payment, hostile);
    let app = build_app(&harness, "");
    cycle(&app).await;

    harness.set_status(&draft, DraftStatus::Install);
    cycle(&app).await;

    let slack = harness.slack.received();
    assert_eq!(slack.len(), 1);
    let body = String::from_utf8(slack[0].body.to_vec()).unwrap();
    assert!(!body.contains("<!channel>"), "{body}");
    assert!(!body.contains("<https://"), "{body}");
    assert!(body.contains("&lt;!channel&gt; a&amp;b &lt;https://x.example|y&gt;"), "{body}");

    let payload = slack[0].json();
    let blocks = payload["blocks"].as_array().unwrap();
    let email_object = blocks
        .iter()
        .flat_map(|block| {
            block["fields"].as_array().cloned().unwrap_or_default().into_iter().chain(block.get("text").cloned())
        })
        .find(|object| object["text"].as_str().is_some_and(|text| text.contains("&lt;!channel&gt;")))
        .expect("the email is shown");
    assert!(
        email_object["type"] == "plain_text" || email_object["verbatim"] == true,
        "the email is kept from Slack's parsing: {email_object}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_status_flows_through() {
    let harness = Harness::start().await;
    let draft = harness.add_draft(DraftStatus::Install, "buyer@example.com");
    let app = build_app(&harness, "");
    cycle(&app).await;

    harness.sim.with_world(|world| {
        world.update_draft(&draft, |value| value["status"] = "rolling_back".into()).unwrap();
    });
    cycle(&app).await;

    let hooks = harness.hook.received();
    assert_eq!(hooks.len(), 1, "the catch-all rule hears the unknown status");
    assert_eq!(hooks[0].json()["data"]["status"], "rolling_back");
    assert_eq!(hooks[0].json()["data"]["previous_status"], "install");
    assert!(harness.slack.received().is_empty(), "a rule naming statuses does not match it");
}

#[tokio::test(flavor = "multi_thread")]
async fn many_drafts_over_pages_tracked() {
    let harness = Harness::start().await;
    let ids: Vec<String> = (0..250).map(|_| harness.add_draft(DraftStatus::Configure, "c@example.com")).collect();
    let app = build_app(&harness, "");

    let baseline = app.watcher.sweep().await;
    assert_eq!(baseline.pages, 3);
    assert_eq!(baseline.drafts, 250);
    for id in &ids {
        assert!(app.store.snapshot(&harness.offer, id).unwrap().is_some(), "{id} is tracked");
    }

    for id in [&ids[0], &ids[125], &ids[249]] {
        harness.set_status(id, DraftStatus::Payment);
    }
    let sweep = app.watcher.sweep().await;
    assert_eq!(sweep.events, 3, "a change on every page is found");
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_page_sends_nothing_then_once() {
    let harness = Harness::start().await;
    let ids: Vec<String> = (0..150).map(|_| harness.add_draft(DraftStatus::Payment, "c@example.com")).collect();
    let app = build_app(&harness, "");
    cycle(&app).await;

    // N.B. `done` is routed to the webhook only, because Slack's pacing makes 150 messages slow.
    for id in &ids {
        harness.set_status(id, DraftStatus::Done);
    }
    harness
        .sim
        .with_world(|world| world.inject(Fault::new(Endpoint::ListDrafts, 500).for_offer(&harness.offer).on_page(1)));
    let failed = app.watcher.sweep().await;
    app.deliverer.deliver_due().await.unwrap();
    assert_eq!(failed.failed.len(), 1, "{failed:?}");
    assert_eq!(failed.events, 0);
    assert!(harness.hook.received().is_empty(), "a partial listing sends nothing");
    let untouched = app.store.snapshot(&harness.offer, &ids[0]).unwrap().unwrap();
    assert_eq!(untouched.status, DraftStatus::Payment, "drafts from the good page keep their snapshot");

    cycle(&app).await;
    cycle(&app).await;
    let hooks = harness.hook.received();
    assert_eq!(hooks.len(), 150, "the next good sweep reports every change once");
    let mut seen: Vec<String> = hooks.iter().map(|request| request.header("webhook-id").unwrap()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 150, "no duplicates");
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_webhook_leaves_slack_once() {
    let harness = Harness::start().await;
    let draft = harness.add_draft(DraftStatus::Payment, "c@example.com");
    let app = build_app(&harness, "");
    cycle(&app).await;

    harness.hook.answer_always(Answer::status(503));
    harness.set_status(&draft, DraftStatus::Install);
    cycle(&app).await;
    cycle(&app).await;

    assert_eq!(harness.slack.received().len(), 1, "slack is not held back or repeated");
    let entries = app.store.outbox_entries().unwrap();
    assert_eq!(entries.len(), 1, "only the webhook entry is left: {entries:?}");
    assert_eq!(entries[0].sink, "ops");
    assert_eq!(entries[0].state, EntryState::Pending);
    assert!(entries[0].last_error.as_deref().unwrap_or_default().contains("503"));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_rules_one_sink_sends_once() {
    let harness = Harness::start().await;
    let draft = harness.add_draft(DraftStatus::Payment, "c@example.com");
    let extra = "[[rules]]\nname = \"installs\"\nto = \"install\"\nsinks = [\"ops\", \"sales\"]\n";
    let app = build_app(&harness, extra);
    cycle(&app).await;

    harness.set_status(&draft, DraftStatus::Install);
    cycle(&app).await;

    assert_eq!(harness.slack.received().len(), 1);
    let hooks = harness.hook.received();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].json()["data"]["rule"], "everything", "the first matching rule in file order is named");
}

#[tokio::test(flavor = "multi_thread")]
async fn created_after_baseline_is_announced() {
    let harness = Harness::start().await;
    let app = build_app(&harness, "");
    cycle(&app).await;

    let draft = harness
        .sim
        .with_world(|world| world.add_draft(DraftSpec::new(&harness.offer).status(DraftStatus::Auth)).unwrap());
    cycle(&app).await;

    let hooks = harness.hook.received();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].json()["type"], "order_draft.created");
    assert_eq!(hooks[0].json()["data"]["draft_id"], draft.as_str());
    assert_eq!(hooks[0].json()["data"]["previous_status"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn context_header_and_page_size_sent() {
    let harness = Harness::start().await;
    harness.add_draft(DraftStatus::Payment, "c@example.com");
    let workspace = harness.sim.with_world(|world| world.seller_workspace().to_owned());
    let text = harness.config_text("").replace("page_size = 100", &format!("page_size = 7\ncontext = \"{workspace}\""));
    let loaded = draftwatch::config::parse(&text, &|_| None, harness.dir.path()).unwrap();
    let app = App::build(loaded.config, Arc::new(SystemClock)).unwrap();
    cycle(&app).await;

    let requests = harness.sim.requests();
    let listing = requests.iter().find(|request| request.path.ends_with("/order_drafts")).expect("drafts were listed");
    assert_eq!(listing.context.as_deref(), Some(workspace.as_str()));
    assert_eq!(listing.query_param("limit").as_deref(), Some("7"));
    assert_eq!(listing.query_param("offer").as_deref(), Some(harness.offer.as_str()));
    assert!(requests.iter().all(|request| request.context.as_deref() == Some(workspace.as_str())));
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_error_shape_is_read() {
    let harness = Harness::start().await;
    harness.sim.with_world(|world| {
        world.set_error_shape(draftwatch::sim::ErrorShape::Legacy);
        world.fail_endpoint(Endpoint::ListOffers, 503);
    });
    let app = build_app(&harness, "");
    let sweep = app.watcher.sweep().await;
    let error = sweep.offers_error.expect("listing offers failed").to_string();
    assert!(error.contains("503"), "{error}");
    assert!(error.contains("GET /offers"), "{error}");
    assert!(!error.contains("{\"error\""), "the message is read out of the body: {error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_receiver_paused_not_stormed() {
    let harness = Harness::start().await;
    let drafts: Vec<String> = (0..4).map(|_| harness.add_draft(DraftStatus::Payment, "c@example.com")).collect();
    let app = build_app(&harness, "");
    cycle(&app).await;

    harness.hook.answer_always(Answer::status(503).with_header("retry-after", "30"));
    for draft in &drafts {
        harness.set_status(draft, DraftStatus::Done);
    }
    cycle(&app).await;
    assert_eq!(harness.hook.received().len(), 1, "the round stops at the first retryable failure");

    for _ in 0..3 {
        app.deliverer.deliver_due().await.unwrap();
    }
    assert_eq!(harness.hook.received().len(), 1, "the sink is paused until its retry is due");
    let next = app.deliverer.next_due().unwrap().expect("entries are pending");
    let wait = next.duration_since(std::time::SystemTime::now()).unwrap_or_default();
    assert!(wait > std::time::Duration::from_secs(20), "the next attempt waits for the retry-after: {wait:?}");
}
