//! Change detection when the API misbehaves: removed, hidden and skipped drafts, stuck
//! drafts, tracked field changes, install errors, duplicates and broken cursors.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use draftwatch::akua::{AkuaClient, ApiError, DraftStatus, TerminationReason};
use draftwatch::app::App;
use draftwatch::clock::{Clock, ManualClock, SystemClock};
use draftwatch::pipeline::OfferError;
use draftwatch::sim::{Endpoint, Fault};
use serde_json::json;

use crate::support::Harness;

/// A rule that sends every event kind to the signed webhook, added to the shared config.
const ALL_EVENTS: &str = r#"
[[rules]]
name = "all kinds"
events = ["removed", "stuck", "updated", "status_changed", "created"]
sinks = ["ops"]
"#;

fn build_app(harness: &Harness, extra: &str, clock: Arc<dyn Clock>) -> App {
    let text = harness.config_text(extra);
    let loaded = draftwatch::config::parse(&text, &|_| None, harness.dir.path()).expect("test config is valid");
    App::build(loaded.config, clock).unwrap()
}

async fn cycle(app: &App) -> draftwatch::pipeline::SweepReport {
    let sweep = app.watcher.sweep().await;
    assert!(sweep.is_complete(), "{sweep:?}");
    app.deliverer.deliver_due().await.unwrap();
    sweep
}

/// The webhook bodies received so far, as JSON.
fn hooks(harness: &Harness) -> Vec<serde_json::Value> {
    harness.hook.received().iter().map(|request| request.json()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_draft_removed_once() {
    let harness = Harness::start().await;
    let draft = harness.add_draft(DraftStatus::Payment, "buyer@example.com");
    let app = build_app(&harness, ALL_EVENTS, Arc::new(SystemClock));
    cycle(&app).await;
    let last_etag = app.store.snapshot(&harness.offer, &draft).unwrap().unwrap().etag;

    harness.sim.with_world(|world| world.remove(&draft).unwrap());
    let sweep = cycle(&app).await;
    cycle(&app).await;

    assert_eq!(sweep.removed, 1);
    let bodies = hooks(&harness);
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(bodies[0]["type"], "order_draft.removed");
    assert_eq!(bodies[0]["data"]["status"], serde_json::Value::Null);
    assert_eq!(bodies[0]["data"]["previous_status"], "payment");
    assert_eq!(bodies[0]["data"]["draft"]["id"], draft.as_str());
    assert_eq!(bodies[0]["data"]["draft"]["customer_email"], "buyer@example.com");
    let expected_id = draftwatch::event::event_id(&[&draft, "order_draft.removed", &last_etag]);
    assert_eq!(harness.hook.received()[0].header("webhook-id").unwrap(), expected_id);
    assert!(harness.slack.received().is_empty(), "a rule naming statuses does not hear of removals");
    assert_eq!(app.store.snapshot(&harness.offer, &draft).unwrap(), None, "the entry is dropped");
}

#[tokio::test(flavor = "multi_thread")]
async fn hidden_draft_is_not_removed() {
    let harness = Harness::start().await;
    let draft = harness.add_draft(DraftStatus::Configure, "c@example.com");
    let app = build_app(&harness, ALL_EVENTS, Arc::new(SystemClock));
    cycle(&app).await;

    harness.sim.with_world(|world| world.set_hidden(&draft, true).unwrap());
    cycle(&app).await;
    assert!(hooks(&harness).is_empty());
    assert!(app.store.snapshot(&harness.offer, &draft).unwrap().is_some(), "the entry is kept");

    harness.sim.with_world(|world| world.set_hidden(&draft, false).unwrap());
    harness.set_status(&draft, DraftStatus::Payment);
    cycle(&app).await;
    let bodies = hooks(&harness);
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["type"], "order_draft.status_changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_glitch_reads_by_id() {
    let harness = Harness::start().await;
    let draft = harness.add_draft(DraftStatus::Payment, "c@example.com");
    let app = build_app(&harness, ALL_EVENTS, Arc::new(SystemClock));
    cycle(&app).await;

    harness.set_status(&draft, DraftStatus::Install);
    let empty = json!({"data": [], "has_more": false, "next_cursor": null});
    harness.sim.with_world(|world| world.inject(Fault::new(Endpoint::ListDrafts, 200).with_json(empty)));
    let sweep = cycle(&app).await;

    assert_eq!(sweep.removed, 0);
    let bodies = hooks(&harness);
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(bodies[0]["type"], "order_draft.status_changed", "the draft read by id is diffed");
    assert_eq!(bodies[0]["data"]["status"], "install");
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_listing_never_removes() {
    let harness = Harness::start().await;
    let ids: Vec<String> = (0..150).map(|_| harness.add_draft(DraftStatus::Payment, "c@example.com")).collect();
    let app = build_app(&harness, ALL_EVENTS, Arc::new(SystemClock));
    cycle(&app).await;

    harness.sim.with_world(|world| {
        world.remove(&ids[0]).unwrap();
        world.inject(Fault::new(Endpoint::ListDrafts, 503).on_page(1));
    });
    let sweep = app.watcher.sweep().await;
    app.deliverer.deliver_due().await.unwrap();
    assert!(!sweep.is_complete());
    assert_eq!(sweep.removed, 0);
    assert!(hooks(&harness).is_empty());
    assert_eq!(harness.sim.counters().get_draft, 0, "an incomplete listing reads nothing by id");

    cycle(&app).await;
    let bodies = hooks(&harness);
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["type"], "order_draft.removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_items_diffed_once() {
    let harness = Harness::start().await;
    let draft = harness.add_draft(DraftStatus::Payment, "c@example.com");
    let app = build_app(&harness, ALL_EVENTS, Arc::new(SystemClock));
    cycle(&app).await;

    harness.set_status(&draft, DraftStatus::Install);
    let served = harness.sim.with_world(|world| world.draft(&draft).unwrap().clone());
    let page = json!({"data": [served.clone(), served], "has_more": false, "next_cursor": null});
    harness.sim.with_world(|world| world.inject(Fault::new(Endpoint::ListDrafts, 200).with_json(page)));
    let sweep = cycle(&app).await;

    assert_eq!(sweep.drafts, 1);
    assert_eq!(sweep.events, 1);
    assert_eq!(hooks(&harness).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn cursor_loop_fails_offer() {
    let harness = Harness::start().await;
    let draft = harness.add_draft(DraftStatus::Payment, "c@example.com");
    let app = build_app(&harness, ALL_EVENTS, Arc::new(SystemClock));
    cycle(&app).await;

    let looping = json!({"data": [], "has_more": true, "next_cursor": "again"});
    harness.sim.with_world(|world| {
        world.remove(&draft).unwrap();
        world.inject(Fault::new(Endpoint::ListDrafts, 200).with_json(looping).until_cleared());
    });
    let sweep = app.watcher.sweep().await;
    harness.sim.with_world(|world| world.clear_faults());

    assert!(matches!(sweep.failed[..], [(_, OfferError::Api(ApiError::RunawayListing { .. }))]), "{sweep:?}");
    assert_eq!(sweep.removed, 0);
    assert!(app.store.snapshot(&harness.offer, &draft).unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn page_bound_stops_listing() {
    let harness = Harness::start().await;
    for _ in 0..5 {
        harness.add_draft(DraftStatus::Payment, "c@example.com");
    }
    let text = harness.config_text("").replace("page_size = 100", "page_size = 1");
    let config = draftwatch::config::parse(&text, &|_| None, harness.dir.path()).unwrap().config;
    let client = AkuaClient::new(&config.akua).unwrap().with_max_pages(3);

    let error = client.list_drafts(&harness.offer).await.unwrap_err();
    assert!(matches!(error, ApiError::RunawayListing { .. }), "{error}");
    assert!(error.to_string().contains("3 pages"), "{error}");
    assert_eq!(client.with_max_pages(5).list_drafts(&harness.offer).await.unwrap().drafts.len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_cursor_restarts_once() {
    let harness = Harness::start().await;
    let ids: Vec<String> = (0..250).map(|_| harness.add_draft(DraftStatus::Payment, "c@example.com")).collect();
    let app = build_app(&harness, ALL_EVENTS, Arc::new(SystemClock));
    cycle(&app).await;
    harness.set_status(&ids[0], DraftStatus::Install);

    // The response to page 1 is delayed. Meanwhile every cursor goes stale, so the request
    // for page 2 is rejected.
    harness
        .sim
        .with_world(|world| world.inject(Fault::slow(Endpoint::ListDrafts, Duration::from_millis(600)).on_page(1)));
    let world = harness.sim.world();
    let invalidate = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(250)).await;
        world.lock().unwrap().invalidate_cursors();
    });
    let sweep = cycle(&app).await;
    invalidate.await.unwrap();

    assert_eq!(sweep.restarts, 1, "{sweep:?}");
    assert_eq!(sweep.drafts, 250);
    assert_eq!(sweep.removed, 0);
    assert_eq!(hooks(&harness).len(), 1, "the change is reported once");

    harness.sim.with_world(|world| world.inject(Fault::new(Endpoint::ListDrafts, 400).on_page(1).times(2)));
    let sweep = app.watcher.sweep().await;
    assert_eq!(sweep.failed.len(), 1, "a second refusal fails the offer: {sweep:?}");
}

/// A draft listed before a rejected cursor and gone from the restarted listing must still
/// be looked up, though the two attempts together listed every known draft.
#[tokio::test(flavor = "multi_thread")]
async fn restarted_listing_finds_removed_draft() {
    let harness = Harness::start().await;
    let kept = harness.add_draft(DraftStatus::Payment, "c@example.com");
    let gone = harness.add_draft(DraftStatus::Payment, "c@example.com");
    harness.add_draft(DraftStatus::Payment, "c@example.com");
    let app = build_app(&harness, ALL_EVENTS, Arc::new(SystemClock));
    cycle(&app).await;

    let first_page = harness.sim.with_world(|world| {
        let data = [world.draft(&gone).unwrap().clone(), world.draft(&kept).unwrap().clone()];
        json!({"data": data, "has_more": true, "next_cursor": "rejected-cursor"})
    });
    harness.sim.with_world(|world| {
        world.remove(&gone).unwrap();
        world.inject(Fault::new(Endpoint::ListDrafts, 200).with_json(first_page));
    });
    let sweep = cycle(&app).await;

    assert_eq!(sweep.restarts, 1, "{sweep:?}");
    assert_eq!(sweep.removed, 1, "{sweep:?}");
    assert_eq!(sweep.drafts, 2, "only the restarted listing counts");
    assert_eq!(app.store.snapshot(&harness.offer, &gone).unwrap(), None);
    let bodies = hooks(&harness);
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(bodies[0]["type"], "order_draft.removed");
    assert_eq!(bodies[0]["data"]["draft"]["id"], gone.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn stuck_once_per_stay_across_restarts() {
    let harness = Harness::start().await;
    let draft = harness.add_draft(DraftStatus::Configure, "c@example.com");
    let clock = Arc::new(ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)));
    let extra = format!("{ALL_EVENTS}\n[stuck]\nconfigure = \"1h\"\n");
    {
        let app = build_app(&harness, &extra, clock.clone());
        cycle(&app).await;
        clock.advance(Duration::from_secs(1800));
        cycle(&app).await;
        assert!(hooks(&harness).is_empty(), "not stuck yet");
    }

    clock.advance(Duration::from_secs(1900));
    let app = build_app(&harness, &extra, clock.clone());
    cycle(&app).await;
    let bodies = hooks(&harness);
    assert_eq!(bodies.len(), 1, "the stay survives a restart");
    assert_eq!(bodies[0]["type"], "order_draft.stuck");
    assert_eq!(bodies[0]["data"]["stuck_for"], 3700);
    assert_eq!(bodies[0]["data"]["previous_status"], serde_json::Value::Null);
    assert_eq!(bodies[0]["data"]["status"], "configure");
    let first_id = harness.hook.received()[0].header("webhook-id").unwrap();
    let expected = draftwatch::event::event_id(&[&draft, "order_draft.stuck", "configure", "1800000000"]);
    assert_eq!(first_id, expected);

    clock.advance(Duration::from_secs(7200));
    cycle(&app).await;
    drop(app);
    let app = build_app(&harness, &extra, clock.clone());
    cycle(&app).await;
    assert_eq!(hooks(&harness).len(), 1, "once per stay, restarts included");

    harness.set_status(&draft, DraftStatus::Payment);
    cycle(&app).await;
    harness.set_status(&draft, DraftStatus::Configure);
    cycle(&app).await;
    clock.advance(Duration::from_secs(3600));
    cycle(&app).await;
    let kinds: Vec<String> = hooks(&harness).iter().map(|body| body["type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        kinds,
        ["order_draft.stuck", "order_draft.status_changed", "order_draft.status_changed", "order_draft.stuck"],
        "a new stay re-arms"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn install_failure_updates_with_error() {
    let harness = Harness::start().await;
    let draft = harness.add_draft(DraftStatus::Install, "c@example.com");
    let extra = r#"
[[rules]]
name = "delivery"
fields = ["delivery.status"]
sinks = ["sales"]
"#;
    let app = build_app(&harness, &format!("{ALL_EVENTS}{extra}"), Arc::new(SystemClock));
    cycle(&app).await;

    harness.sim.with_world(|world| world.fail_install(&draft, "helm: <!here> chart not found").unwrap());
    cycle(&app).await;

    let bodies = hooks(&harness);
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(bodies[0]["type"], "order_draft.updated");
    let changed: Vec<&str> =
        bodies[0]["data"]["changed_fields"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert!(changed.contains(&"delivery.status"), "{changed:?}");
    assert_eq!(bodies[0]["data"]["previous_status"], bodies[0]["data"]["status"]);
    assert_eq!(bodies[0]["data"]["install_error"], "helm: <!here> chart not found");

    let slack = harness.slack.received();
    assert_eq!(slack.len(), 1, "the fields rule hears the update");
    let text = String::from_utf8(slack[0].body.to_vec()).unwrap();
    assert!(text.contains("Install error"), "{text}");
    assert!(text.contains("&lt;!here&gt;"), "{text}");
    assert!(!text.contains("<!here>"), "{text}");

    harness.sim.with_world(|world| {
        world.set_status(&draft, DraftStatus::Terminated, Some(TerminationReason::InstallFailed)).unwrap();
    });
    cycle(&app).await;
    assert_eq!(harness.sim.counters().get_operation, 1, "the operation is read once per failure");
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_operation_never_blocks() {
    let harness = Harness::start().await;
    let draft = harness.add_draft(DraftStatus::Install, "c@example.com");
    let app = build_app(&harness, ALL_EVENTS, Arc::new(SystemClock));
    cycle(&app).await;

    harness.sim.with_world(|world| {
        world.inject(Fault::new(Endpoint::GetOperation, 500));
        world.set_status(&draft, DraftStatus::Terminated, Some(TerminationReason::InstallFailed)).unwrap();
    });
    cycle(&app).await;
    let bodies = hooks(&harness);
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["data"]["termination_reason"], "install_failed");
    assert!(bodies[0]["data"].get("install_error").is_none(), "a failed read leaves it out");

    let second = harness.add_draft(DraftStatus::Install, "d@example.com");
    cycle(&app).await;
    harness.sim.with_world(|world| {
        world.inject(Fault::slow(Endpoint::GetOperation, Duration::from_secs(30)));
        world.set_status(&second, DraftStatus::Terminated, Some(TerminationReason::InstallFailed)).unwrap();
    });
    let sweep = cycle(&app).await;
    assert!(sweep.duration < Duration::from_secs(8), "the read is bounded: {:?}", sweep.duration);
    assert_eq!(hooks(&harness).len(), 3, "created, then terminated without an error");
}
