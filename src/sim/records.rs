//! The JSON of offers, drafts and install operations, and how a draft's fields follow its phase.
//!
//! A draft gains fields as it moves through the wizard. The customer's user id and email
//! appear after `auth`, a workspace after `workspace` and a cluster after `compute`. A
//! checkout session appears in `payment`, and an order, a delivery and an install operation
//! in `install`. These functions write fields but never bump etags, because
//! `World::write_draft` does that once per write.

use serde_json::{Map, Value, json};

use crate::akua::{DraftStatus, TerminationReason};
use crate::sim::spec::OfferSpec;
use crate::sim::world::World;

/// The order draft TTL an offer has when it does not set `order_ttl_minutes`.
const DEFAULT_ORDER_TTL_MINUTES: i64 = 120;

/// How long a Stripe Checkout Session stays open by default.
const CHECKOUT_SESSION_SECONDS: i64 = 24 * 60 * 60;

/// How long resources of a non-billable test order live before cleanup.
const TEST_ORDER_CLEANUP_SECONDS: i64 = 7 * 24 * 60 * 60;

/// The steps of an install operation, in order. The second is the one that fails.
const INSTALL_STEPS: [&str; 3] = ["Prepare cluster", "Deploy package", "Expose URLs"];

const PRODUCT_NAMES: &[&str] = &["Grafana Stack", "Postgres HA", "Airbyte", "Metabase", "n8n", "Plausible"];

/// The offer fields that shape its drafts.
pub(super) struct OfferFacts {
    pub(super) paid: bool,
    pub(super) ttl_minutes: i64,
    pub(super) product_id: Option<String>,
}

/// Returns the phase whose fields an ended draft keeps when its spec names none.
pub(super) fn default_ended_from(reason: Option<&TerminationReason>) -> DraftStatus {
    match reason {
        Some(TerminationReason::InstallFailed) => DraftStatus::Install,
        Some(TerminationReason::ClusterAllocationFailed | TerminationReason::QuotaExceeded) => DraftStatus::Compute,
        _ => DraftStatus::Configure,
    }
}

/// Returns the position of a wizard phase in the paid path, or `None` for `cleaning_up`,
/// `terminated` and unknown values.
pub(super) fn phase_rank(status: &DraftStatus) -> Option<u8> {
    let rank = match status {
        DraftStatus::Auth => 0,
        DraftStatus::Workspace => 1,
        DraftStatus::Compute => 2,
        DraftStatus::ComputeBootstrap => 3,
        DraftStatus::Configure => 4,
        DraftStatus::Payment => 5,
        DraftStatus::Install => 6,
        DraftStatus::Done => 7,
        DraftStatus::CleaningUp | DraftStatus::Terminated | DraftStatus::Other(_) => return None,
    };
    Some(rank)
}

fn object(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    value.as_object_mut().expect("value was just made an object")
}

fn has(value: &Value, field: &str) -> bool {
    value.get(field).is_some_and(|field| !field.is_null())
}

fn text(value: &Value, field: &str) -> Option<String> {
    value.get(field).and_then(Value::as_str).map(str::to_owned)
}

impl World {
    pub(super) fn build_offer(&mut self, id: &str, spec: &OfferSpec) -> Value {
        let now = self.now();
        let created_at = spec.created_at.unwrap_or(now);
        let product_index = self.offers.len() % PRODUCT_NAMES.len();
        let product_name = spec.product_name.clone().unwrap_or_else(|| PRODUCT_NAMES[product_index].to_owned());
        let product_id = spec.product_id.clone().unwrap_or_else(|| self.ids.id("prod"));
        let commercial_mode = if spec.paid { "paid" } else { "non_billable_test" };

        let mut policy = json!({
            "offer_channel_id": self.ids.id("och"),
            "channel_policy_id": self.ids.id("chpol"),
            "channel_policy_version": 1,
            "commercial_mode": commercial_mode,
            "approval_required": false,
            "checkout_required": spec.paid,
            "support_scope": {"type": "scoped_support_relationship", "visibility": ["install_state", "app_urls"]},
            "blocking_reasons": [],
        });
        if spec.paid {
            policy["pricing_summary"] =
                json!({"currency": "usd", "unit_amount": 4900, "interval": "month", "source": "channel_policy"});
        }

        let mut offer = json!({
            "id": id,
            "short_hash": self.ids.base62(8),
            "workspace_id": self.seller_workspace,
            "created_by": self.seller_user,
            "product_id": product_id,
            "package_id": self.ids.id("pkg"),
            "package_version_id": self.ids.id("pkgv"),
            "product_name": product_name,
            "seller_name": "Example Seller",
            "commercial_mode": commercial_mode,
            "approval_state": "not_required",
            "approved_policy_snapshot": policy,
            "order_ttl_minutes": spec.order_ttl_minutes.map_or(DEFAULT_ORDER_TTL_MINUTES, i64::from),
            "used_count": 0,
            "status": spec.status,
            "created_at": created_at,
            "updated_at": created_at.max(now),
            "etag": self.ids.etag(),
        });
        match spec.status.as_str() {
            "archived" => offer["archived_at"] = json!(now),
            "expired" => offer["expires_at"] = json!(now),
            _ => {}
        }
        offer
    }

    /// Reads what drafts need from an offer; an unknown offer is a paid one with the default TTL.
    pub(super) fn offer_facts(&self, offer_id: &str) -> OfferFacts {
        let Some(offer) = self.offer(offer_id) else {
            return OfferFacts { paid: true, ttl_minutes: DEFAULT_ORDER_TTL_MINUTES, product_id: None };
        };

        let checkout_required = offer.pointer("/approved_policy_snapshot/checkout_required").and_then(Value::as_bool);
        let paid = checkout_required
            .unwrap_or_else(|| offer.get("commercial_mode").and_then(Value::as_str) != Some("non_billable_test"));
        let ttl_minutes =
            offer.get("order_ttl_minutes").and_then(Value::as_i64).unwrap_or(DEFAULT_ORDER_TTL_MINUTES).clamp(1, 1440);
        OfferFacts { paid, ttl_minutes, product_id: text(offer, "product_id") }
    }

    /// Builds a draft in `auth` with only the required fields.
    pub(super) fn build_draft(&mut self, id: &str, offer_id: &str, created_at: i64) -> Value {
        let ttl_minutes = self.offer_facts(offer_id).ttl_minutes;
        json!({
            "id": id,
            "offer_id": offer_id,
            "status": "auth",
            "cluster_ready": false,
            "server_joined": false,
            "payment_completed": false,
            "created_at": created_at,
            "updated_at": created_at.max(self.now()),
            "etag": self.ids.etag(),
            "ttl_expires_at": created_at + ttl_minutes * 60,
        })
    }

    /// Sets `status` and `termination_reason`, and the fields the new phase has.
    pub(super) fn apply_status(&mut self, draft: &mut Value, status: &DraftStatus, reason: Option<&TerminationReason>) {
        let ended = matches!(status, DraftStatus::Terminated | DraftStatus::CleaningUp);
        if ended && reason == Some(&TerminationReason::InstallFailed) {
            self.fill_phase(draft, &DraftStatus::Install);
            let failed = draft
                .get("install_operation_id")
                .and_then(Value::as_str)
                .and_then(|id| self.operations.get(id))
                .is_some_and(|operation| operation["state"] == "FAILED");
            if !failed {
                let message = self.ids.install_error();
                self.fail_install_fields(draft, &message);
            }
        } else {
            self.fill_phase(draft, status);
        }

        let draft = object(draft);
        draft.insert("status".into(), json!(status.as_str()));
        match reason {
            Some(reason) => {
                draft.insert("termination_reason".into(), json!(reason.as_str()));
            }
            None if !ended => {
                draft.remove("termination_reason");
            }
            None => {}
        }
    }

    /// Adds the fields a draft has once it reached `target`, keeping those it already has.
    pub(super) fn fill_phase(&mut self, draft: &mut Value, target: &DraftStatus) {
        let Some(rank) = phase_rank(target) else {
            return;
        };
        let offer_id = text(draft, "offer_id").unwrap_or_default();
        let facts = self.offer_facts(&offer_id);

        if rank >= 1 && !has(draft, "user_id") {
            object(draft).insert("user_id".into(), json!(self.ids.id("usr")));
            if !has(draft, "customer_email") {
                object(draft).insert("customer_email".into(), json!(self.ids.email()));
            }
        }

        if rank >= 2 && !has(draft, "workspace_id") {
            object(draft).insert("workspace_id".into(), json!(self.ids.id("ws")));
        }

        if *target == DraftStatus::ComputeBootstrap {
            self.ensure_cluster(draft);
            object(draft).insert("cluster_ready".into(), json!(false));
            object(draft).insert("server_joined".into(), json!(false));
        }

        if rank >= 4 {
            self.ensure_cluster(draft);
            object(draft).insert("cluster_ready".into(), json!(true));
            object(draft).insert("server_joined".into(), json!(true));
        }

        let needs_checkout = *target == DraftStatus::Payment || (rank >= 5 && facts.paid);
        if needs_checkout && !has(draft, "current_checkout_session") {
            let session = self.checkout_session(1);
            object(draft).insert("current_checkout_session".into(), session);
        }

        if rank >= 6 {
            object(draft).insert("payment_completed".into(), json!(facts.paid));
            if !has(draft, "install_operation_id") {
                self.start_install(draft, &facts);
            }
        }

        if rank == 7 {
            self.finish_install(draft);
        }
    }

    fn ensure_cluster(&mut self, draft: &mut Value) {
        if !has(draft, "cluster_id") {
            object(draft).insert("cluster_id".into(), json!(self.ids.id("clu")));
        }
    }

    /// Builds a checkout session for the given draft revision.
    pub(super) fn checkout_session(&mut self, draft_revision: u64) -> Value {
        let id = format!("cs_live_{}", self.ids.base62(40));
        json!({
            "stripe_environment": "live",
            "id": id,
            "draft_revision": draft_revision,
            "url": format!("https://checkout.stripe.com/c/pay/{id}"),
            "expires_at": self.now() + CHECKOUT_SESSION_SECONDS,
        })
    }

    /// Adds an order (paid offers only), a pending delivery and a running install operation.
    fn start_install(&mut self, draft: &mut Value, facts: &OfferFacts) {
        let now = self.now();
        let operation_id = self.ids.id("op");
        let install_id = self.ids.id("inst");
        let workspace_id = text(draft, "workspace_id");
        let draft_id = text(draft, "id").unwrap_or_default();

        let operation = self.install_operation(&operation_id, &install_id, workspace_id, &draft_id, facts);
        self.operations.insert(operation_id.clone(), operation);

        let draft = object(draft);
        draft.insert("install_operation_id".into(), json!(operation_id));

        let test_cleanup = json!({
            "kind": "temporal_actor_ttl",
            "cleanup_at": now + TEST_ORDER_CLEANUP_SECONDS,
            "removable_by": "platform_policy",
            "conversion_required": "paid_order",
        });
        let cleanup_policy = if facts.paid { json!({"kind": "none"}) } else { test_cleanup };

        // N.B. the order summary requires a Stripe checkout id, so only paid drafts get one.
        // Whether Akua creates an order for a non-billable test delivery is not documented.
        if facts.paid {
            let session = draft.get("current_checkout_session").cloned().unwrap_or(Value::Null);
            let order = json!({
                "id": self.ids.id("ord"),
                "status": "delivery_pending",
                "stripe_environment": session.get("stripe_environment").cloned().unwrap_or(json!("live")),
                "stripe_checkout_id": session.get("id").cloned().unwrap_or(json!("")),
                "draft_revision": session.get("draft_revision").cloned().unwrap_or(json!(1)),
                "cleanup_policy": cleanup_policy,
                "committed_at": now,
            });
            draft.insert("order".into(), order);
        }

        let hostname = format!("{}.apps.example.com", &install_id["inst_".len()..]);
        let delivery = json!({
            "id": self.ids.id("dlv"),
            "kind": "install",
            "authorization_kind": if facts.paid { "paid_order" } else { "non_billable_test_order" },
            "status": "pending",
            "cleanup_policy": cleanup_policy,
            "install_id": install_id,
            "urls": [{
                "route_key": "web",
                "hostname": hostname,
                "url": format!("https://{hostname}"),
                "protocol": "http",
                "routing_mode": "through_dispatcher",
                "status": "pending",
                "updated_at": now,
            }],
            "install_operation_id": operation_id,
            "started_at": now,
        });
        draft.insert("delivery".into(), delivery);
    }

    fn install_operation(
        &mut self,
        operation_id: &str,
        install_id: &str,
        workspace_id: Option<String>,
        draft_id: &str,
        facts: &OfferFacts,
    ) -> Value {
        let now = self.now();
        let steps: Vec<Value> = INSTALL_STEPS
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let status = ["completed", "running", "pending"][index];
                json!({
                    "name": name,
                    "status": status,
                    "execution_type": "system",
                    "started_at": now,
                    "completed_at": if status == "completed" { json!(now) } else { Value::Null },
                    "error_message": null,
                    "retryable": true,
                    "skippable": false,
                })
            })
            .collect();

        let mut metadata = json!({
            "type": "install.create",
            "idempotency_key": draft_id,
            "workspace_id": workspace_id,
        });
        if let Some(product_id) = &facts.product_id {
            metadata["product_id"] = json!(product_id);
        }

        json!({
            "id": operation_id,
            "workspace_id": workspace_id,
            "organization_id": null,
            "owner_type": "install",
            "owner_id": install_id,
            "parent_operation_id": null,
            "state": "RUNNING",
            "done": false,
            "html_url": format!("https://akua.dev/installs/{install_id}?tab=operations"),
            "metadata": metadata,
            "response": null,
            "error": null,
            "last_error": null,
            "started_at": now,
            "completed_at": null,
            "steps": steps,
        })
    }

    /// Marks the order delivered, the delivery succeeded, its URLs active and the install
    /// operation succeeded.
    fn finish_install(&mut self, draft: &mut Value) {
        let now = self.now();
        if let Some(order) = draft.get_mut("order").and_then(Value::as_object_mut) {
            order.insert("status".into(), json!("delivered"));
        }
        if let Some(delivery) = draft.get_mut("delivery").and_then(Value::as_object_mut) {
            delivery.insert("status".into(), json!("succeeded"));
            delivery.insert("completed_at".into(), json!(now));
            set_url_status(delivery, "active", None, now);
        }

        let Some(operation) = self.install_operation_of(draft) else {
            return;
        };
        let install_id = operation["owner_id"].clone();
        let namespace = operation["workspace_id"].as_str().unwrap_or("default").replace('_', "-");
        operation["state"] = json!("SUCCEEDED");
        operation["done"] = json!(true);
        operation["completed_at"] = json!(now);
        operation["response"] = json!({
            "type": "install.create",
            "install_id": install_id,
            "argo_app_name": install_id.as_str().unwrap_or_default().replace('_', "-"),
            "argo_app_namespace": namespace,
        });
        for step in operation["steps"].as_array_mut().into_iter().flatten() {
            step["status"] = json!("completed");
            step["completed_at"] = json!(now);
        }
    }

    /// Marks the install operation failed with `message`, and the order, delivery and URLs
    /// failed with it.
    pub(super) fn fail_install_fields(&mut self, draft: &mut Value, message: &str) {
        let now = self.now();
        if let Some(order) = draft.get_mut("order").and_then(Value::as_object_mut) {
            order.insert("status".into(), json!("delivery_failed"));
        }
        if let Some(delivery) = draft.get_mut("delivery").and_then(Value::as_object_mut) {
            delivery.insert("status".into(), json!("failed"));
            delivery.insert("completed_at".into(), json!(now));
            set_url_status(delivery, "failed", Some("install failed before the route became ready"), now);
        }

        let Some(operation) = self.install_operation_of(draft) else {
            return;
        };
        let failed_step = INSTALL_STEPS[1];
        operation["state"] = json!("FAILED");
        operation["done"] = json!(true);
        operation["completed_at"] = json!(now);
        operation["error"] = json!({"message": message});
        operation["last_error"] = json!({"message": message, "step_name": failed_step});
        for step in operation["steps"].as_array_mut().into_iter().flatten() {
            if step["name"] == failed_step {
                step["status"] = json!("failed");
                step["completed_at"] = json!(now);
                step["error_message"] = json!(message);
            } else if step["status"] != "completed" {
                step["status"] = json!("skipped");
            }
        }
    }

    fn install_operation_of(&mut self, draft: &Value) -> Option<&mut Value> {
        let id = draft.get("install_operation_id")?.as_str()?;
        self.operations.get_mut(id)
    }
}

/// Sets the status of every URL of a delivery, with an error or without one.
pub(super) fn set_url_status(delivery: &mut Map<String, Value>, status: &str, error: Option<&str>, now: i64) {
    let urls = delivery.get_mut("urls").and_then(Value::as_array_mut);
    for url in urls.into_iter().flatten().filter_map(Value::as_object_mut) {
        url.insert("status".into(), json!(status));
        url.insert("updated_at".into(), json!(now));
        url.insert("last_observed_at".into(), json!(now));
        match error {
            Some(error) => url.insert("error".into(), json!(error)),
            None => url.remove("error"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::spec::DraftSpec;

    fn world_with_offers() -> (World, String, String) {
        let mut world = World::with_seed(1);
        world.set_now(1_764_000_000);
        let paid = world.add_offer(OfferSpec::paid()).unwrap();
        let free = world.add_offer(OfferSpec::free()).unwrap();
        (world, paid, free)
    }

    #[test]
    fn draft_has_required_fields() {
        let (mut world, paid, _) = world_with_offers();
        let id = world.add_draft(DraftSpec::new(&paid)).unwrap();
        let draft = world.draft(&id).unwrap();

        for field in [
            "id",
            "offer_id",
            "status",
            "cluster_ready",
            "server_joined",
            "payment_completed",
            "created_at",
            "updated_at",
            "etag",
            "ttl_expires_at",
        ] {
            assert!(draft.get(field).is_some(), "missing {field}");
        }
        assert!(draft["etag"].is_string());
        assert_eq!(draft["ttl_expires_at"], json!(1_764_000_000 + 120 * 60));
        assert!(draft.get("customer_email").is_none(), "no email before sign-in");
    }

    #[test]
    fn paid_install_has_order_and_delivery() {
        let (mut world, paid, _) = world_with_offers();
        let id = world.add_draft(DraftSpec::new(&paid).status(DraftStatus::Install)).unwrap();
        let draft = world.draft(&id).unwrap().clone();

        assert_eq!(draft["payment_completed"], json!(true));
        assert_eq!(draft["order"]["status"], json!("delivery_pending"));
        assert_eq!(draft["order"]["stripe_checkout_id"], draft["current_checkout_session"]["id"]);
        assert_eq!(draft["delivery"]["status"], json!("pending"));
        assert_eq!(draft["delivery"]["install_operation_id"], draft["install_operation_id"]);
        assert_eq!(draft["delivery"]["urls"][0]["status"], json!("pending"));

        let operation_id = draft["install_operation_id"].as_str().unwrap();
        assert_eq!(world.operation(operation_id).unwrap()["state"], json!("RUNNING"));
    }

    #[test]
    fn free_install_skips_payment_fields() {
        let (mut world, _, free) = world_with_offers();
        let id = world.add_draft(DraftSpec::new(&free).status(DraftStatus::Install)).unwrap();
        let draft = world.draft(&id).unwrap();

        assert_eq!(draft["payment_completed"], json!(false));
        assert!(draft.get("current_checkout_session").is_none());
        assert!(draft.get("order").is_none());
        assert_eq!(draft["delivery"]["authorization_kind"], json!("non_billable_test_order"));
        assert_eq!(draft["delivery"]["cleanup_policy"]["kind"], json!("temporal_actor_ttl"));
    }

    #[test]
    fn done_marks_everything_delivered() {
        let (mut world, paid, _) = world_with_offers();
        let id = world.add_draft(DraftSpec::new(&paid).status(DraftStatus::Install)).unwrap();
        world.set_status(&id, DraftStatus::Done, None).unwrap();
        let draft = world.draft(&id).unwrap().clone();

        assert_eq!(draft["status"], json!("done"));
        assert_eq!(draft["order"]["status"], json!("delivered"));
        assert_eq!(draft["delivery"]["status"], json!("succeeded"));
        assert_eq!(draft["delivery"]["urls"][0]["status"], json!("active"));
        let operation = world.operation(draft["install_operation_id"].as_str().unwrap()).unwrap();
        assert_eq!(operation["state"], json!("SUCCEEDED"));
        assert_eq!(operation["done"], json!(true));
    }

    #[test]
    fn install_failed_fails_operation() {
        let (mut world, paid, _) = world_with_offers();
        let id = world
            .add_draft(DraftSpec::new(&paid).status(DraftStatus::Terminated).reason(TerminationReason::InstallFailed))
            .unwrap();
        let draft = world.draft(&id).unwrap().clone();

        assert_eq!(draft["status"], json!("terminated"));
        assert_eq!(draft["termination_reason"], json!("install_failed"));
        assert_eq!(draft["delivery"]["status"], json!("failed"));
        let operation = world.operation(draft["install_operation_id"].as_str().unwrap()).unwrap();
        assert_eq!(operation["state"], json!("FAILED"));
        assert!(operation["error"]["message"].as_str().is_some_and(|message| !message.is_empty()));
    }

    #[test]
    fn bootstrap_cluster_not_ready() {
        let (mut world, paid, _) = world_with_offers();
        let id = world.add_draft(DraftSpec::new(&paid).status(DraftStatus::ComputeBootstrap)).unwrap();
        let draft = world.draft(&id).unwrap();

        assert!(draft["cluster_id"].as_str().is_some_and(|id| id.starts_with("clu_")));
        assert_eq!(draft["cluster_ready"], json!(false));
        assert_eq!(draft["server_joined"], json!(false));
    }

    #[test]
    fn every_write_changes_etag() {
        let (mut world, paid, _) = world_with_offers();
        let id = world.add_draft(DraftSpec::new(&paid).email("a@example.com")).unwrap();
        let mut etags = vec![world.draft(&id).unwrap()["etag"].clone()];

        world.touch(&id).unwrap();
        etags.push(world.draft(&id).unwrap()["etag"].clone());
        world.set_status(&id, DraftStatus::Workspace, None).unwrap();
        etags.push(world.draft(&id).unwrap()["etag"].clone());
        world.update_draft(&id, |draft| draft["cluster_ready"] = json!(true)).unwrap();
        etags.push(world.draft(&id).unwrap()["etag"].clone());

        etags.dedup();
        assert_eq!(etags.len(), 4);
        assert_eq!(world.draft(&id).unwrap()["customer_email"], json!("a@example.com"));
    }

    #[test]
    fn leaving_ended_phase_drops_reason() {
        let (mut world, paid, _) = world_with_offers();
        let id = world.add_draft(DraftSpec::new(&paid).status(DraftStatus::Configure)).unwrap();
        world.set_status(&id, DraftStatus::Terminated, Some(TerminationReason::Timeout)).unwrap();
        assert_eq!(world.draft(&id).unwrap()["termination_reason"], json!("timeout"));

        world.set_status(&id, DraftStatus::Configure, None).unwrap();
        assert!(world.draft(&id).unwrap().get("termination_reason").is_none());
    }
}
