//! Active sweeps and offer selection: what is listed, and that nothing is lost by it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use draftwatch::akua::DraftStatus;
use draftwatch::app::App;
use draftwatch::clock::{Clock, ManualClock};
use draftwatch::sim::{DraftSpec, OfferSpec, RequestRecord};

use crate::support::Harness;

const ALL_EVENTS: &str = r#"
[[rules]]
events = ["removed", "status_changed", "created"]
sinks = ["ops"]
"#;

fn build_app(harness: &Harness, mode: &str, clock: Arc<dyn Clock>) -> App {
    let poll = format!("interval = \"1s\"\nmode = \"{mode}\"\nfull_every = \"1h\"");
    let text = harness.config_text(ALL_EVENTS).replacen("interval = \"1s\"", &poll, 1);
    let loaded = draftwatch::config::parse(&text, &|_| None, harness.dir.path()).expect("test config is valid");
    App::build(loaded.config, clock).unwrap()
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)))
}

/// Runs one sweep and returns the draft requests it made: `status` filters of listings
/// (`""` for none) and the number of reads by id.
async fn sweep_requests(harness: &Harness, app: &App) -> (Vec<String>, usize) {
    harness.sim.with_world(|world| world.request_log_mut().clear());
    let sweep = app.watcher.sweep().await;
    assert!(sweep.is_complete(), "{sweep:?}");
    app.deliverer.deliver_due().await.unwrap();

    let records: Vec<RequestRecord> = harness.sim.requests();
    let listings = records
        .iter()
        .filter(|record| record.path.ends_with("/order_drafts"))
        .map(|record| record.query_param("status").unwrap_or_default())
        .collect();
    let reads = records.iter().filter(|record| record.path.contains("/order_drafts/")).count();
    (listings, reads)
}

#[tokio::test(flavor = "multi_thread")]
async fn active_lists_open_statuses() {
    let harness = Harness::start().await;
    let open = harness.add_draft(DraftStatus::Configure, "a@example.com");
    harness.add_draft(DraftStatus::Done, "b@example.com");
    let clock = clock();
    let app = build_app(&harness, "active", clock.clone());

    let (listings, _) = sweep_requests(&harness, &app).await;
    assert_eq!(listings, [""], "the first sweep of an offer is full");

    let (listings, reads) = sweep_requests(&harness, &app).await;
    let expected: Vec<&str> =
        DraftStatus::KNOWN.iter().copied().filter(|s| !["done", "terminated"].contains(s)).collect();
    assert_eq!(listings, expected);
    assert_eq!(reads, 0, "nothing left the open set");

    harness.set_status(&open, DraftStatus::Done);
    let (_, reads) = sweep_requests(&harness, &app).await;
    assert_eq!(reads, 1, "the draft that left the open set is read by id");
    let hooks = harness.hook.received();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].json()["data"]["status"], "done");

    drop(app);
    clock.advance(Duration::from_secs(1800));
    let app = build_app(&harness, "active", clock.clone());
    let (listings, _) = sweep_requests(&harness, &app).await;
    assert_eq!(listings.len(), expected.len(), "the time of the last full sweep survives a restart");

    clock.advance(Duration::from_secs(1800));
    let (listings, _) = sweep_requests(&harness, &app).await;
    assert_eq!(listings, [""], "a full sweep every full_every");
}

#[tokio::test(flavor = "multi_thread")]
async fn active_finds_new_and_removed() {
    let harness = Harness::start().await;
    let open = harness.add_draft(DraftStatus::Payment, "a@example.com");
    let app = build_app(&harness, "active", clock());
    sweep_requests(&harness, &app).await;

    let new = harness.add_draft(DraftStatus::Configure, "n@example.com");
    harness.sim.with_world(|world| world.remove(&open).unwrap());
    sweep_requests(&harness, &app).await;

    let kinds: Vec<(String, String)> = harness
        .hook
        .received()
        .iter()
        .map(|hook| {
            let body = hook.json();
            (body["type"].as_str().unwrap().to_owned(), body["data"]["draft_id"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(kinds.contains(&("order_draft.created".into(), new)), "{kinds:?}");
    assert!(kinds.contains(&("order_draft.removed".into(), open)), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_offers_listed_while_open() {
    let harness = Harness::start().await;
    let draft = harness.add_draft(DraftStatus::Payment, "a@example.com");
    let other = harness.sim.with_world(|world| world.add_offer(OfferSpec::paid()).unwrap());
    let app = build_app(&harness, "full", clock());
    sweep_requests(&harness, &app).await;

    harness.sim.with_world(|world| {
        world.set_offer_status(&harness.offer, "expired").unwrap();
        world.set_offer_status(&other, "archived").unwrap();
    });
    let (listings, _) = sweep_requests(&harness, &app).await;
    assert_eq!(listings.len(), 1, "only the expired offer with an open draft is listed");

    harness.set_status(&draft, DraftStatus::Terminated);
    sweep_requests(&harness, &app).await;
    let (listings, _) = sweep_requests(&harness, &app).await;
    assert!(listings.is_empty(), "closed offers without open drafts are not listed");
    assert_eq!(harness.hook.received().len(), 1);

    let late = harness.sim.with_world(|world| world.add_offer(OfferSpec::paid()).unwrap());
    harness.sim.with_world(|world| world.add_draft(DraftSpec::new(&late).status(DraftStatus::Configure)).unwrap());
    let sweep = app.watcher.sweep().await;
    assert_eq!(sweep.baselined, 1, "a new offer is baselined on its next cycle");
    assert_eq!(sweep.events, 0);

    harness.sim.with_world(|world| world.remove_offer(&late).unwrap());
    let sweep = app.watcher.sweep().await;
    assert_eq!(sweep.removed, 0, "an offer that disappears declares nothing removed");
    assert_eq!(sweep.offers, 0);
}
