//! A state-machine property test: random API histories against a simple model.
//!
//! Each case drives the real pipeline (client, collector, diff, store) against the
//! simulated API through drafts being created, moved, touched, deleted and hidden, failed
//! pages, listings with duplicate and missing items, failed reads by id and process
//! restarts. The outbox of a catch-all sink is the record of what was announced.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use draftwatch::akua::DraftStatus;
use draftwatch::app::App;
use draftwatch::clock::SystemClock;
use draftwatch::event::EventKind;
use draftwatch::sim::{DraftSpec, Endpoint, Fault};
use proptest::prelude::*;
use serde_json::json;

use crate::support::Harness;

const STATUSES: &[DraftStatus] =
    &[DraftStatus::Configure, DraftStatus::Payment, DraftStatus::Install, DraftStatus::Done, DraftStatus::Terminated];

#[derive(Clone, Debug)]
enum Step {
    Create(usize),
    SetStatus(usize, usize),
    Touch(usize),
    Delete(usize),
    Hide(usize, bool),
    /// The next listing fails on its first page.
    FailPage,
    /// The next listing is one page that repeats the drafts picked by `dup` and leaves
    /// out those picked by `skip` (bit masks over the visible drafts).
    Glitch {
        dup: u32,
        skip: u32,
    },
    /// The next read by id fails with 503.
    FailRead,
    Restart,
    Sweep,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (0..STATUSES.len()).prop_map(Step::Create),
        3 => (any::<usize>(), 0..STATUSES.len()).prop_map(|(d, s)| Step::SetStatus(d, s)),
        1 => any::<usize>().prop_map(Step::Touch),
        1 => any::<usize>().prop_map(Step::Delete),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(d, h)| Step::Hide(d, h)),
        1 => Just(Step::FailPage),
        1 => (any::<u32>(), any::<u32>()).prop_map(|(dup, skip)| Step::Glitch { dup, skip }),
        1 => Just(Step::FailRead),
        1 => Just(Step::Restart),
        4 => Just(Step::Sweep),
    ]
}

const CATCH_ALL: &str = r#"
[[rules]]
events = ["created", "status_changed", "removed", "updated", "stuck"]
sinks = ["ops"]
"#;

fn build_app(harness: &Harness) -> App {
    let text = harness.config_text(CATCH_ALL);
    let config = draftwatch::config::parse(&text, &|_| None, harness.dir.path()).unwrap().config;
    App::build(config, Arc::new(SystemClock)).unwrap()
}

/// One announced fact about a draft, in detection order.
#[derive(Debug)]
struct Announced {
    id: String,
    draft_id: String,
    kind: EventKind,
    previous: Option<DraftStatus>,
    status: Option<DraftStatus>,
}

fn announced(app: &App) -> Vec<Announced> {
    let entries = app.store.outbox_entries().unwrap();
    entries
        .into_iter()
        .filter(|entry| entry.sink == "ops")
        .map(|entry| {
            let event = entry.notification.event;
            Announced {
                id: event.id,
                draft_id: event.draft_id,
                kind: event.kind,
                previous: event.previous_status,
                status: event.status,
            }
        })
        .collect()
}

async fn run_history(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let harness = Harness::start().await;
    let mut app = build_app(&harness);
    // Every draft ever created, with whether it still exists.
    let mut created: Vec<String> = Vec::new();
    let mut deleted: HashSet<String> = HashSet::new();
    let mut baseline: Option<BTreeMap<String, DraftStatus>> = None;

    let pick = |created: &Vec<String>, deleted: &HashSet<String>, index: usize| -> Option<String> {
        let alive: Vec<&String> = created.iter().filter(|id| !deleted.contains(*id)).collect();
        (!alive.is_empty()).then(|| alive[index % alive.len()].clone())
    };

    for step in steps.into_iter().chain([Step::Sweep]) {
        match step {
            Step::Create(status) => {
                let spec = DraftSpec::new(&harness.offer).status(STATUSES[status].clone());
                created.push(harness.sim.with_world(|world| world.add_draft(spec).unwrap()));
            }
            Step::SetStatus(index, status) => {
                if let Some(id) = pick(&created, &deleted, index) {
                    harness.sim.with_world(|world| world.set_status(&id, STATUSES[status].clone(), None).unwrap());
                }
            }
            Step::Touch(index) => {
                if let Some(id) = pick(&created, &deleted, index) {
                    harness.sim.with_world(|world| world.touch(&id).unwrap());
                }
            }
            Step::Delete(index) => {
                if let Some(id) = pick(&created, &deleted, index) {
                    harness.sim.with_world(|world| world.remove(&id).unwrap());
                    deleted.insert(id);
                }
            }
            Step::Hide(index, hidden) => {
                if let Some(id) = pick(&created, &deleted, index) {
                    harness.sim.with_world(|world| world.set_hidden(&id, hidden).unwrap());
                }
            }
            Step::FailPage => {
                harness.sim.with_world(|world| world.inject(Fault::new(Endpoint::ListDrafts, 503).on_page(0)));
            }
            Step::Glitch { dup, skip } => {
                let page = harness.sim.with_world(|world| {
                    let mut data = Vec::new();
                    let visible = created.iter().filter(|id| !deleted.contains(*id));
                    for (bit, id) in visible.enumerate() {
                        let Some(draft) = world.draft(id) else { continue };
                        let mask = 1u32 << (bit % 32);
                        if skip & mask == 0 {
                            data.push(draft.clone());
                        }
                        if dup & mask != 0 {
                            data.push(draft.clone());
                        }
                    }
                    json!({"data": data, "has_more": false, "next_cursor": null})
                });
                harness.sim.with_world(|world| world.inject(Fault::new(Endpoint::ListDrafts, 200).with_json(page)));
            }
            Step::FailRead => {
                harness.sim.with_world(|world| world.inject(Fault::new(Endpoint::GetDraft, 503)));
            }
            Step::Restart => {
                drop(app);
                app = build_app(&harness);
            }
            Step::Sweep => {
                let sweep = app.watcher.sweep().await;
                if sweep.is_complete() && baseline.is_none() {
                    let statuses = created
                        .iter()
                        .filter_map(|id| {
                            let entry = app.store.snapshot(&harness.offer, id).unwrap()?;
                            Some((id.clone(), entry.status))
                        })
                        .collect();
                    baseline = Some(statuses);
                }
            }
        }
    }

    // A final good sweep: no faults, nothing hidden.
    harness.sim.with_world(|world| {
        world.clear_faults();
        for id in created.iter().filter(|id| !deleted.contains(*id)) {
            world.set_hidden(id, false).unwrap();
        }
    });
    let sweep = app.watcher.sweep().await;
    prop_assert!(sweep.is_complete(), "{:?}", sweep);
    if baseline.is_none() {
        return Ok(());
    }
    let baseline = baseline.unwrap();

    let events = announced(&app);
    let mut ids = HashSet::new();
    for event in &events {
        prop_assert!(ids.insert(event.id.clone()), "event id {} announced twice", event.id);
    }

    for draft_id in &created {
        let mine: Vec<&Announced> = events.iter().filter(|event| &event.draft_id == draft_id).collect();

        // The chain of announced statuses starts at the baseline or a created event and
        // each status change continues from the one before.
        let mut current: Option<DraftStatus> = baseline.get(draft_id).cloned();
        for event in &mine {
            match event.kind {
                EventKind::Created => {
                    prop_assert!(current.is_none(), "{draft_id} created twice: {mine:?}");
                    current = event.status.clone();
                }
                EventKind::StatusChanged => {
                    prop_assert_eq!(&event.previous, &current, "{} chain broken: {:?}", draft_id, mine);
                    prop_assert_ne!(&event.previous, &event.status);
                    current = event.status.clone();
                }
                EventKind::Removed => {
                    prop_assert!(deleted.contains(draft_id), "{draft_id} removed while it exists");
                    prop_assert_eq!(&event.previous, &current);
                    current = None;
                }
                EventKind::Updated | EventKind::Stuck => {}
            }
        }

        let now = harness.sim.with_world(|world| world.draft_status(draft_id));
        match now {
            Some(status) => prop_assert_eq!(current, Some(status), "{} final status missed: {:?}", draft_id, mine),
            None => prop_assert_eq!(current, None, "{} deletion missed: {:?}", draft_id, mine),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn histories_match_model(steps in proptest::collection::vec(step(), 1..30)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(run_history(steps))?;
    }
}
