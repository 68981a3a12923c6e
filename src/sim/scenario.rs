//! A seeded scenario that moves drafts through realistic lifecycles, one step at a time.
//!
//! Each [`Scenario::step`] may open new drafts and advance open ones. Paid offers follow
//! auth → workspace → compute → configure → payment → install → done, and free offers go
//! from configure straight to install. A new managed cluster adds `compute_bootstrap`
//! after `compute`. Drafts end with every documented termination reason, sometimes through
//! `cleaning_up`. Some writes change fields but not the status, and now and then a whole
//! offer expires. The scenario never changes the clock, so the caller decides how much
//! time a step represents.
//! [`World::demo`] builds the starting world the demo uses.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::akua::{DraftStatus, TerminationReason};
use crate::sim::records::{phase_rank, set_url_status};
use crate::sim::spec::{DraftSpec, OfferSpec};
use crate::sim::world::{SimError, World};

/// A step opens a draft with this chance while fewer than [`MAX_OPEN_DRAFTS`] are open.
const NEW_DRAFT_CHANCE: f64 = 0.35;
/// Below this many open drafts, a step always opens one.
const MIN_OPEN_DRAFTS: usize = 2;
const MAX_OPEN_DRAFTS: usize = 12;
/// The chance that a step does something to a given open draft.
const OPEN_DRAFT_ACTIVITY: f64 = 0.4;
/// The chance that a step changes a field of a given `done` draft.
const DONE_DRAFT_ACTIVITY: f64 = 0.03;
/// The chance that a step expires one active offer.
const OFFER_EXPIRY_CHANCE: f64 = 0.01;
/// The chance that a draft holding a cluster passes through `cleaning_up` when it ends.
const CLEANUP_CHANCE: f64 = 0.5;

/// A change a step makes to one draft.
#[derive(Clone, Debug, PartialEq)]
enum Action {
    /// Moves to the next phase.
    Advance(DraftStatus),
    Terminate(TerminationReason),
    /// Writes the draft without changing its status.
    Write(Write),
}

/// A write that changes the etag but not the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Write {
    /// A change the seller cannot see, such as a form field the listing omits.
    Unseen,
    ClusterReady,
    ServerJoined,
    /// The customer reopened checkout, which creates a new session.
    CheckoutRenewed,
    /// The install started running: order, delivery and URL move on.
    DeliveryRunning,
    /// A live URL turns `not_ready` or recovers.
    UrlHealthChanged,
}

/// A seeded generator of lifecycle changes.
pub struct Scenario {
    rng: StdRng,
    /// Reasons chosen for drafts now in `cleaning_up`, applied when they reach `terminated`.
    pending_reasons: BTreeMap<String, TerminationReason>,
}

impl Scenario {
    pub fn new(seed: u64) -> Scenario {
        Scenario { rng: StdRng::seed_from_u64(seed), pending_reasons: BTreeMap::new() }
    }

    /// Applies one step of changes to `world` and returns one short line per change.
    ///
    /// The same seed applied to the same world at the same clock readings gives the same
    /// changes.
    pub fn step(&mut self, world: &mut World) -> Vec<String> {
        let mut changes = Vec::new();

        let mut ended_with_offer = Vec::new();
        if self.rng.random_bool(OFFER_EXPIRY_CHANCE) {
            ended_with_offer = self.expire_offer(world, &mut changes);
        }

        // Drafts opened or ended above are left alone for the rest of the step, so each
        // draft changes at most once per step.
        let existing = world.draft_ids();
        let open = existing.iter().filter(|id| is_open(world.draft_status(id).as_ref())).count();
        let wants_draft = open < MIN_OPEN_DRAFTS || (open < MAX_OPEN_DRAFTS && self.rng.random_bool(NEW_DRAFT_CHANCE));
        if wants_draft {
            self.open_draft(world, &mut changes);
        }

        for id in existing {
            if ended_with_offer.contains(&id) {
                continue;
            }
            let Some(status) = world.draft_status(&id) else {
                continue;
            };
            if let Some(change) = self.act_on(world, &id, &status) {
                changes.push(change);
            }
        }
        changes
    }

    fn open_draft(&mut self, world: &mut World, changes: &mut Vec<String>) {
        let offers = active_offers(world);
        let Some(offer_id) = offers.choose(&mut self.rng) else {
            return;
        };
        if let Ok(id) = world.add_draft(DraftSpec::new(offer_id)) {
            changes.push(format!("{id}: new draft of {offer_id} in auth"));
        }
    }

    /// Expires one active offer, ends its drafts that have not reached `install`, and adds
    /// an active offer of the same product so the world keeps producing drafts. Returns the
    /// ids of the drafts it ended.
    fn expire_offer(&mut self, world: &mut World, changes: &mut Vec<String>) -> Vec<String> {
        let offers = active_offers(world);
        let Some(offer_id) = offers.choose(&mut self.rng).cloned() else {
            return Vec::new();
        };
        if world.set_offer_status(&offer_id, "expired").is_err() {
            return Vec::new();
        }

        let offer = world.offer(&offer_id).cloned().unwrap_or(Value::Null);
        let mut spec = if world.offer_is_paid(&offer_id) { OfferSpec::paid() } else { OfferSpec::free() };
        if let Some(product_id) = offer["product_id"].as_str() {
            spec = spec.product_id(product_id);
        }
        if let Some(name) = offer["product_name"].as_str() {
            spec = spec.product_name(name);
        }
        match world.add_offer(spec) {
            Ok(replacement) => changes.push(format!("{offer_id}: offer expired, replaced by {replacement}")),
            Err(_) => changes.push(format!("{offer_id}: offer expired")),
        }

        let mut ended = Vec::new();
        for id in world.draft_ids() {
            let Some(status) = world.draft_status(&id) else {
                continue;
            };
            let before_install = phase_rank(&status).is_some_and(|rank| rank < 6);
            let of_offer = world.draft(&id).is_some_and(|draft| draft["offer_id"] == offer_id.as_str());
            if before_install && of_offer {
                changes.push(self.terminate(world, &id, &status, TerminationReason::OfferExpired));
                ended.push(id);
            }
        }
        ended
    }

    /// Picks and applies what happens to one draft in this step, if anything.
    fn act_on(&mut self, world: &mut World, id: &str, status: &DraftStatus) -> Option<String> {
        if matches!(status, DraftStatus::Terminated | DraftStatus::Other(_)) {
            return None;
        }
        let draft = world.draft(id)?.clone();

        let ttl_passed = draft["ttl_expires_at"].as_i64().is_some_and(|deadline| world.now() >= deadline);
        let can_time_out = matches!(status, DraftStatus::Configure | DraftStatus::Payment);
        if ttl_passed && can_time_out {
            return Some(self.terminate(world, id, status, TerminationReason::Timeout));
        }

        let activity = match status {
            DraftStatus::Done => DONE_DRAFT_ACTIVITY,
            _ => OPEN_DRAFT_ACTIVITY,
        };
        if !self.rng.random_bool(activity) {
            return None;
        }

        let paid = world.offer_is_paid(draft["offer_id"].as_str().unwrap_or_default());
        let action = self.choose_action(status, &draft, paid)?;
        let result = match action {
            Action::Advance(next) => {
                world.set_status(id, next.clone(), None).map(|()| format!("{id}: {status} → {next}"))
            }
            Action::Terminate(reason) => Ok(self.terminate(world, id, status, reason)),
            Action::Write(write) => apply_write(world, id, write).map(|what| format!("{id}: {what}, still {status}")),
        };
        result.ok()
    }

    /// Picks an action for a draft in `status` by weighted chance.
    fn choose_action(&mut self, status: &DraftStatus, draft: &Value, paid: bool) -> Option<Action> {
        use Action::{Advance, Terminate, Write as W};
        use DraftStatus as S;
        use TerminationReason as R;

        let choices: Vec<(Action, u32)> = match status {
            S::Auth => vec![(Advance(S::Workspace), 85), (Terminate(R::Revoked), 5), (W(Write::Unseen), 10)],
            S::Workspace => vec![
                (Advance(S::Compute), 80),
                (Terminate(R::QuotaExceeded), 8),
                (Terminate(R::Revoked), 5),
                (W(Write::Unseen), 7),
            ],
            S::Compute => vec![
                (Advance(S::Configure), 50),
                (Advance(S::ComputeBootstrap), 25),
                (Terminate(R::ClusterAllocationFailed), 10),
                (Terminate(R::QuotaExceeded), 8),
                (Terminate(R::Revoked), 7),
            ],
            S::ComputeBootstrap => {
                let progress = if draft["cluster_ready"] != true {
                    W(Write::ClusterReady)
                } else if draft["server_joined"] != true {
                    W(Write::ServerJoined)
                } else {
                    Advance(S::Configure)
                };
                vec![(progress, 80), (Terminate(R::ClusterAllocationFailed), 12), (Terminate(R::Revoked), 8)]
            }
            S::Configure => {
                let next = if paid { S::Payment } else { S::Install };
                vec![
                    (Advance(next), 55),
                    (W(Write::Unseen), 20),
                    (Terminate(R::Timeout), 15),
                    (Terminate(R::Revoked), 10),
                ]
            }
            S::Payment => vec![
                (Advance(S::Install), 55),
                (W(Write::CheckoutRenewed), 15),
                (Terminate(R::Timeout), 20),
                (Terminate(R::Revoked), 10),
            ],
            S::Install => {
                let progress =
                    if draft["delivery"]["status"] == "pending" { W(Write::DeliveryRunning) } else { Advance(S::Done) };
                vec![(progress, 75), (Terminate(R::InstallFailed), 25)]
            }
            S::CleaningUp => {
                let id = draft["id"].as_str().unwrap_or_default();
                let written = draft["termination_reason"].as_str().map(R::parse);
                let reason = self.pending_reasons.get(id).cloned().or(written).unwrap_or(R::Revoked);
                vec![(Terminate(reason), 1)]
            }
            S::Done => vec![(W(Write::UrlHealthChanged), 1)],
            S::Terminated | S::Other(_) => return None,
        };

        let total: u32 = choices.iter().map(|(_, weight)| weight).sum();
        let mut pick = self.rng.random_range(0..total);
        for (action, weight) in choices {
            if pick < weight {
                return Some(action);
            }
            pick -= weight;
        }
        None
    }

    /// Ends a draft with `reason` and returns the line describing it. A draft with a
    /// `cluster_id` passes through `cleaning_up` with [`CLEANUP_CHANCE`].
    fn terminate(&mut self, world: &mut World, id: &str, from: &DraftStatus, reason: TerminationReason) -> String {
        if *from == DraftStatus::CleaningUp {
            self.pending_reasons.remove(id);
            return match world.set_status(id, DraftStatus::Terminated, Some(reason.clone())) {
                Ok(()) => format!("{id}: cleaning_up → terminated ({reason})"),
                Err(error) => error.to_string(),
            };
        }

        if reason == TerminationReason::Timeout {
            let now = world.now();
            let _ = world.draft_mut(id).map(|draft| {
                let deadline = draft["ttl_expires_at"].as_i64().unwrap_or(now).min(now);
                // N.B. the scenario compresses time, so a timeout pulls the deadline in
                // instead of waiting out the offer's TTL. The etag changes with the status
                // write below.
                draft["ttl_expires_at"] = json!(deadline);
            });
        }

        let holds_cluster = world.draft(id).is_some_and(|draft| draft.get("cluster_id").is_some());
        let written = if holds_cluster && self.rng.random_bool(CLEANUP_CHANCE) {
            self.pending_reasons.insert(id.to_owned(), reason.clone());
            let failed_install = reason == TerminationReason::InstallFailed;
            world
                .write_draft(id, |world, draft| {
                    if failed_install {
                        let message = world.ids.install_error();
                        world.fail_install_fields(draft, &message);
                    }
                    world.apply_status(draft, &DraftStatus::CleaningUp, None);
                })
                .map(|()| format!("{id}: {from} → cleaning_up ({reason})"))
        } else {
            world
                .set_status(id, DraftStatus::Terminated, Some(reason.clone()))
                .map(|()| format!("{id}: {from} → terminated ({reason})"))
        };
        written.unwrap_or_else(|error: SimError| error.to_string())
    }
}

fn is_open(status: Option<&DraftStatus>) -> bool {
    status.is_some_and(|status| status.is_known() && !status.is_terminal())
}

/// Returns the ids of offers whose status is `active`, oldest first.
fn active_offers(world: &World) -> Vec<String> {
    let mut ids = world.offer_ids();
    ids.reverse();
    ids.retain(|id| world.offer(id).is_some_and(|offer| offer["status"] == "active"));
    ids
}

/// Applies a write that keeps the status, and returns what it changed.
fn apply_write(world: &mut World, id: &str, write: Write) -> Result<&'static str, SimError> {
    let now = world.now();
    match write {
        Write::Unseen => world.touch(id).map(|()| "etag changed"),
        Write::ClusterReady => {
            world.update_draft(id, |draft| draft["cluster_ready"] = json!(true)).map(|()| "cluster ready")
        }
        Write::ServerJoined => {
            world.update_draft(id, |draft| draft["server_joined"] = json!(true)).map(|()| "server joined")
        }
        Write::CheckoutRenewed => world
            .write_draft(id, |world, draft| {
                let revision = draft["current_checkout_session"]["draft_revision"].as_u64().unwrap_or(0) + 1;
                draft["current_checkout_session"] = world.checkout_session(revision);
            })
            .map(|()| "checkout session renewed"),
        Write::DeliveryRunning => world
            .write_draft(id, |world, draft| {
                if let Some(order) = draft.get_mut("order").and_then(Value::as_object_mut) {
                    order.insert("status".into(), json!("delivery_running"));
                }
                if let Some(delivery) = draft.get_mut("delivery").and_then(Value::as_object_mut) {
                    delivery.insert("status".into(), json!("running"));
                    set_url_status(delivery, "provisioning", None, now);
                }
                let operation = draft["install_operation_id"].as_str().and_then(|id| world.operations.get_mut(id));
                if let Some(steps) = operation.and_then(|operation| operation["steps"].as_array_mut()) {
                    for step in steps.iter_mut().filter(|step| step["status"] == "running") {
                        step["status"] = json!("completed");
                        step["completed_at"] = json!(now);
                    }
                    if let Some(next) = steps.iter_mut().find(|step| step["status"] == "pending") {
                        next["status"] = json!("running");
                        next["started_at"] = json!(now);
                    }
                }
            })
            .map(|()| "delivery running, url provisioning"),
        Write::UrlHealthChanged => world.write_draft(id, |_, draft| {
            let Some(delivery) = draft.get_mut("delivery").and_then(Value::as_object_mut) else {
                return "etag changed";
            };
            if delivery["urls"][0]["status"] == "active" {
                set_url_status(delivery, "not_ready", Some("health check failed: upstream returned 503"), now);
                "url not ready"
            } else {
                set_url_status(delivery, "active", None, now);
                "url active again"
            }
        }),
    }
}

impl World {
    /// Builds the demo's starting world on the system clock: a paid and a free offer, and
    /// drafts of both spread over the phases, created within the last two hours.
    pub fn demo(seed: u64) -> World {
        let mut world = World::with_seed(seed);
        world.add_demo_records();
        world
    }

    /// Builds the same world as [`World::demo`] with the clock stopped at `now`.
    pub fn demo_at(seed: u64, now: i64) -> World {
        let mut world = World::with_seed(seed);
        world.set_now(now);
        world.add_demo_records();
        world
    }

    fn add_demo_records(&mut self) {
        let world = self;
        let now = world.now();
        let day = 24 * 60 * 60;

        let paid_spec = OfferSpec::paid().product_name("Grafana Stack").created_at(now - 30 * day);
        let paid = world.add_offer(paid_spec).expect("a new world has no offers");
        let free_spec = OfferSpec::free().product_name("Postgres HA").created_at(now - 7 * day);
        let free = world.add_offer(free_spec).expect("generated offer ids are unique");

        let drafts = [
            (&paid, DraftStatus::Terminated, Some(TerminationReason::Timeout), 110),
            (&paid, DraftStatus::Done, None, 95),
            (&free, DraftStatus::Done, None, 80),
            (&paid, DraftStatus::Install, None, 40),
            (&paid, DraftStatus::Payment, None, 25),
            (&free, DraftStatus::ComputeBootstrap, None, 15),
            (&paid, DraftStatus::Configure, None, 12),
            (&free, DraftStatus::Configure, None, 6),
            (&paid, DraftStatus::Auth, None, 1),
        ];
        for (offer, status, reason, minutes_ago) in drafts {
            let mut spec = DraftSpec::new(offer.as_str()).status(status).created_at(now - minutes_ago * 60);
            if let Some(reason) = reason {
                spec = spec.reason(reason);
            }
            world.add_draft(spec).expect("generated draft ids are unique");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    const START: i64 = 1_764_000_000;

    /// Returns whether Akua's documented lifecycle allows `from` → `to`.
    fn documented(from: &DraftStatus, to: &DraftStatus, paid: bool) -> bool {
        use DraftStatus as S;
        let ends = matches!(to, S::Terminated | S::CleaningUp);
        match from {
            S::Auth => *to == S::Workspace || ends,
            S::Workspace => *to == S::Compute || ends,
            S::Compute => matches!(to, S::ComputeBootstrap | S::Configure) || ends,
            S::ComputeBootstrap => *to == S::Configure || ends,
            S::Configure if paid => *to == S::Payment || ends,
            S::Configure => *to == S::Install || ends,
            S::Payment => paid && (*to == S::Install || ends),
            S::Install => *to == S::Done || ends,
            S::CleaningUp => *to == S::Terminated,
            S::Done | S::Terminated | S::Other(_) => false,
        }
    }

    /// Returns whether a draft may end with `reason` from phase `from`.
    fn reason_fits(reason: &TerminationReason, from: &DraftStatus) -> bool {
        use DraftStatus as S;
        use TerminationReason as R;
        let before_install =
            matches!(from, S::Auth | S::Workspace | S::Compute | S::ComputeBootstrap | S::Configure | S::Payment);
        match reason {
            R::Timeout => matches!(from, S::Configure | S::Payment),
            R::Revoked | R::OfferExpired => before_install,
            R::InstallFailed => *from == S::Install,
            R::ClusterAllocationFailed => matches!(from, S::Compute | S::ComputeBootstrap),
            R::QuotaExceeded => matches!(from, S::Workspace | S::Compute),
            R::Other(_) => false,
        }
    }

    #[test]
    fn scenario_makes_documented_transitions() {
        let mut world = World::demo_at(11, START);
        let mut scenario = Scenario::new(11);

        let mut previous: HashMap<String, Value> = HashMap::new();
        let mut etags_seen: HashMap<String, HashSet<String>> = HashMap::new();
        let mut cleanup_from: HashMap<String, DraftStatus> = HashMap::new();
        let mut reasons = HashSet::new();
        let mut reached_done = 0;
        let mut etag_only_writes = 0;
        for id in world.draft_ids() {
            let draft = world.draft(&id).unwrap().clone();
            etags_seen.entry(id.clone()).or_default().insert(draft["etag"].as_str().unwrap().to_owned());
            previous.insert(id, draft);
        }

        for step in 0..1500 {
            world.advance(30);
            let changes = scenario.step(&mut world);

            for id in world.draft_ids() {
                let draft = world.draft(&id).unwrap();
                if previous.get(&id) == Some(draft) {
                    continue;
                }
                let draft = draft.clone();
                let etag = draft["etag"].as_str().expect("etag is a string").to_owned();
                let status = DraftStatus::parse(draft["status"].as_str().unwrap());
                let paid = world.offer_is_paid(draft["offer_id"].as_str().unwrap());

                let Some(before) = previous.get(&id) else {
                    assert_eq!(status, DraftStatus::Auth, "step {step}: new draft {id} starts in auth");
                    assert!(changes.iter().any(|change| change.starts_with(&id)), "step {step}: {id} not reported");
                    etags_seen.entry(id.clone()).or_default().insert(etag);
                    previous.insert(id, draft);
                    continue;
                };

                assert!(
                    etags_seen.entry(id.clone()).or_default().insert(etag.clone()),
                    "step {step}: {id} changed but reused etag {etag}"
                );
                assert!(changes.iter().any(|change| change.contains(id.as_str())), "step {step}: {id} not reported");

                let from = DraftStatus::parse(before["status"].as_str().unwrap());
                if from == status {
                    etag_only_writes += 1;
                } else {
                    assert!(documented(&from, &status, paid), "step {step}: {id} moved {from} → {status}, paid {paid}");
                }

                if status == DraftStatus::CleaningUp && from != status {
                    cleanup_from.insert(id.clone(), from.clone());
                }
                if status == DraftStatus::Terminated && from != status {
                    let reason = TerminationReason::parse(
                        draft["termination_reason"].as_str().expect("terminated draft has a reason"),
                    );
                    let phase = if from == DraftStatus::CleaningUp { cleanup_from[&id].clone() } else { from.clone() };
                    assert!(reason_fits(&reason, &phase), "step {step}: {id} ended {reason} from {phase}");
                    if reason == TerminationReason::InstallFailed {
                        let operation = world.operation(draft["install_operation_id"].as_str().unwrap()).unwrap();
                        assert_eq!(operation["state"], json!("FAILED"));
                        assert!(operation["error"]["message"].as_str().is_some_and(|message| !message.is_empty()));
                    }
                    reasons.insert(reason);
                }
                if status == DraftStatus::Done && from != status {
                    reached_done += 1;
                }
                previous.insert(id, draft);
            }
        }

        for reason in TerminationReason::KNOWN {
            assert!(reasons.contains(&TerminationReason::parse(reason)), "never ended with {reason}");
        }
        assert!(reached_done > 0, "no draft reached done");
        assert!(etag_only_writes > 0, "no etag-only writes");
        assert!(!cleanup_from.is_empty(), "no draft went through cleaning_up");
    }

    #[test]
    fn scenario_repeats_for_seed() {
        let run = |seed: u64| {
            let mut world = World::with_seed(seed);
            world.set_now(START);
            world.add_offer(OfferSpec::paid()).unwrap();
            world.add_offer(OfferSpec::free()).unwrap();
            let mut scenario = Scenario::new(seed);
            let mut lines = Vec::new();
            for _ in 0..200 {
                world.advance(30);
                lines.extend(scenario.step(&mut world));
            }
            let drafts: Vec<Value> = world.draft_ids().iter().map(|id| world.draft(id).unwrap().clone()).collect();
            (lines, drafts)
        };

        let first = run(5);
        assert!(!first.0.is_empty());
        assert_eq!(first, run(5));
        assert_ne!(first.0, run(6).0);
    }

    #[test]
    fn demo_world_spans_phases() {
        let world = World::demo(1);
        let statuses: HashSet<String> =
            world.draft_ids().iter().map(|id| world.draft_status(id).unwrap().as_str().to_owned()).collect();

        assert_eq!(world.offer_ids().len(), 2);
        assert!(statuses.len() >= 6, "{statuses:?}");
        let paid = world.offer_ids().into_iter().filter(|id| world.offer_is_paid(id)).count();
        assert_eq!(paid, 1);
    }
}
