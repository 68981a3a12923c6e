//! The state of the simulated Akua API: offers, drafts, operations, options, faults and log.
//!
//! Tests and the scenario change the world through the methods here; the HTTP server reads
//! it under a lock for each request. How a draft's fields follow its phase lives in
//! `records`, and building responses lives in `handler`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::akua::{DraftStatus, TerminationReason};
use crate::sim::fault::{Endpoint, Fault, FaultQueue};
use crate::sim::ids::IdSource;
use crate::sim::log::RequestLog;
use crate::sim::records::default_ended_from;
use crate::sim::spec::{DraftSpec, EmailChoice, OfferSpec};
use crate::sim::table::Table;

/// The shape of error bodies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ErrorShape {
    /// `{"success": false, "errors": [{"code", "message", "path"?}], "result": {}}`, the shape
    /// of Akua's OpenAPI document.
    #[default]
    Envelope,
    /// `{"error": {"code", "message"}}`, the older shape one Akua reference page shows.
    Legacy,
}

/// The position a cursor stores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pagination {
    /// A cursor remembers the last row returned, so rows added or removed between pages
    /// shift nothing: no row is returned twice and no row that stays is skipped.
    #[default]
    Keyset,
    /// A cursor remembers how many rows were returned, so rows added or removed between
    /// pages make the next page repeat or skip rows.
    Offset,
}

/// A failed change to the world.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("no draft with id `{0}` in the simulated world; add it first with add_draft")]
    UnknownDraft(String),
    #[error("no offer with id `{0}` in the simulated world; add it first with add_offer")]
    UnknownOffer(String),
    #[error("no operation with id `{0}` in the simulated world")]
    UnknownOperation(String),
    #[error("id `{0}` is already used in the simulated world; choose another id")]
    DuplicateId(String),
    #[error("draft `{0}` has no install operation; move it to `install` first")]
    NoInstallOperation(String),
    #[error("operation has no string `id` field; set one before storing it")]
    OperationWithoutId,
}

/// Everything the simulated API serves, and how it misbehaves.
pub struct World {
    pub(super) ids: IdSource,
    /// The bearer token requests must carry.
    pub(super) token: String,
    pub(super) error_shape: ErrorShape,
    /// When set, a request whose `akua-context` header names another workspace gets 403.
    pub(super) required_context: Option<String>,
    pub(super) pagination: Pagination,
    /// Whether `created_at`, `updated_at` and `ttl_expires_at` of drafts are served in
    /// milliseconds instead of seconds.
    pub(super) millisecond_timestamps: bool,
    /// `None` reads the system clock.
    pub(super) fixed_now: Option<i64>,
    /// Part of every cursor; changing it makes all earlier cursors stale.
    pub(super) cursor_salt: String,
    /// The seller's workspace, which owns the offers.
    pub(super) seller_workspace: String,
    pub(super) seller_user: String,
    pub(super) offers: Table,
    pub(super) drafts: Table,
    /// Install operations by id, created when a draft enters `install`.
    pub(super) operations: std::collections::BTreeMap<String, Value>,
    pub(super) faults: FaultQueue,
    pub(super) log: RequestLog,
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

impl World {
    /// Creates an empty world with seed 0, the system clock and a generated token.
    pub fn new() -> World {
        World::with_seed(0)
    }

    /// Creates an empty world whose ids, etags and token follow from `seed`.
    pub fn with_seed(seed: u64) -> World {
        let mut ids = IdSource::new(seed);
        let token = format!("sk_akua_sim_{}", ids.base62(32));
        let cursor_salt = ids.base62(8);
        let seller_workspace = ids.id("ws");
        let seller_user = ids.id("usr");
        World {
            ids,
            token,
            error_shape: ErrorShape::default(),
            required_context: None,
            pagination: Pagination::default(),
            millisecond_timestamps: false,
            fixed_now: None,
            cursor_salt,
            seller_workspace,
            seller_user,
            offers: Table::default(),
            drafts: Table::default(),
            operations: Default::default(),
            faults: FaultQueue::default(),
            log: RequestLog::default(),
        }
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn set_token(&mut self, token: impl Into<String>) {
        self.token = token.into();
    }

    pub fn error_shape(&self) -> ErrorShape {
        self.error_shape
    }

    pub fn set_error_shape(&mut self, shape: ErrorShape) {
        self.error_shape = shape;
    }

    /// Returns the workspace id that owns the offers, which is what `akua-context` names.
    pub fn seller_workspace(&self) -> &str {
        &self.seller_workspace
    }

    /// Requires requests that send `akua-context` to send this value; `None` accepts any.
    /// A request without the header is always accepted, as a workspace token implies its
    /// workspace.
    pub fn require_context(&mut self, context: Option<String>) {
        self.required_context = context;
    }

    pub fn set_pagination(&mut self, pagination: Pagination) {
        self.pagination = pagination;
    }

    /// Serves draft timestamps in milliseconds, as one Akua example does.
    pub fn set_millisecond_timestamps(&mut self, enabled: bool) {
        self.millisecond_timestamps = enabled;
    }

    /// Makes every cursor issued so far stale, so a request that sends one gets 400.
    pub fn invalidate_cursors(&mut self) {
        self.cursor_salt = self.ids.base62(8);
    }

    /// Returns the world's current time in Unix seconds.
    pub fn now(&self) -> i64 {
        match self.fixed_now {
            Some(now) => now,
            None => SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs() as i64),
        }
    }

    /// Stops the clock at `unix_seconds`.
    pub fn set_now(&mut self, unix_seconds: i64) {
        self.fixed_now = Some(unix_seconds);
    }

    /// Moves the clock forward; a running system clock is stopped at the new time.
    pub fn advance(&mut self, seconds: i64) {
        self.fixed_now = Some(self.now() + seconds);
    }

    pub fn use_system_clock(&mut self) {
        self.fixed_now = None;
    }

    /// Adds an offer as the newest one and returns its id.
    pub fn add_offer(&mut self, spec: OfferSpec) -> Result<String, SimError> {
        let id = spec.id.clone().unwrap_or_else(|| self.ids.id("offer"));
        if self.offers.get(&id).is_some() {
            return Err(SimError::DuplicateId(id));
        }

        let json = self.build_offer(&id, &spec);
        self.offers.insert(id.clone(), json);
        Ok(id)
    }

    pub fn offer(&self, id: &str) -> Option<&Value> {
        self.offers.get(id).map(|row| &row.json)
    }

    /// Returns the stored offer for direct edits, which change neither etag nor `updated_at`.
    pub fn offer_mut(&mut self, id: &str) -> Option<&mut Value> {
        self.offers.get_mut(id).map(|row| &mut row.json)
    }

    /// Returns every offer id, newest first.
    pub fn offer_ids(&self) -> Vec<String> {
        self.offers.newest_first().map(|row| row.id.clone()).collect()
    }

    /// Changes an offer with `change`, then gives it a new etag and `updated_at`.
    pub fn update_offer(&mut self, id: &str, change: impl FnOnce(&mut Value)) -> Result<(), SimError> {
        let now = self.now();
        let row = self.offers.get_mut(id).ok_or_else(|| SimError::UnknownOffer(id.to_owned()))?;

        change(&mut row.json);
        let etag = self.ids.etag();
        if let Some(object) = row.json.as_object_mut() {
            object.insert("etag".into(), json!(etag));
            object.insert("updated_at".into(), json!(now));
        }
        Ok(())
    }

    /// Sets an offer's `status`; `archived` and `expired` also set `archived_at` or `expires_at`.
    pub fn set_offer_status(&mut self, id: &str, status: &str) -> Result<(), SimError> {
        let now = self.now();
        self.update_offer(id, |offer| {
            offer["status"] = json!(status);
            match status {
                "archived" => offer["archived_at"] = json!(now),
                "expired" => offer["expires_at"] = json!(now),
                _ => {}
            }
        })
    }

    pub fn remove_offer(&mut self, id: &str) -> Result<Value, SimError> {
        self.offers.remove(id).map(|row| row.json).ok_or_else(|| SimError::UnknownOffer(id.to_owned()))
    }

    /// Returns whether drafts of this offer go through `payment`. Unknown offers count as paid.
    pub fn offer_is_paid(&self, id: &str) -> bool {
        self.offer_facts(id).paid
    }

    /// Adds a draft as the newest one, with the fields its phase has, and returns its id.
    pub fn add_draft(&mut self, spec: DraftSpec) -> Result<String, SimError> {
        let id = spec.id.clone().unwrap_or_else(|| self.ids.id("odft"));
        if self.drafts.get(&id).is_some() {
            return Err(SimError::DuplicateId(id));
        }

        let created_at = spec.created_at.unwrap_or_else(|| self.now());
        let mut json = self.build_draft(&id, &spec.offer_id, created_at);
        if let EmailChoice::Given(email) = &spec.email {
            json["customer_email"] = json!(email);
        }

        let ended = matches!(spec.status, DraftStatus::Terminated | DraftStatus::CleaningUp);
        if ended {
            let from = spec.ended_from.clone().unwrap_or_else(|| default_ended_from(spec.reason.as_ref()));
            self.fill_phase(&mut json, &from);
        }
        self.apply_status(&mut json, &spec.status, spec.reason.as_ref());

        if spec.email == EmailChoice::Omitted {
            json.as_object_mut().expect("a built draft is an object").remove("customer_email");
        }
        self.drafts.insert(id.clone(), json);
        Ok(id)
    }

    pub fn draft(&self, id: &str) -> Option<&Value> {
        self.drafts.get(id).map(|row| &row.json)
    }

    /// Returns the stored draft for direct edits, which change neither etag nor `updated_at`.
    /// Use it to serve shapes the world would never produce.
    pub fn draft_mut(&mut self, id: &str) -> Option<&mut Value> {
        self.drafts.get_mut(id).map(|row| &mut row.json)
    }

    /// Returns a draft's `status`, or `None` when the draft does not exist or has no string
    /// status.
    pub fn draft_status(&self, id: &str) -> Option<DraftStatus> {
        self.draft(id)?.get("status")?.as_str().map(DraftStatus::parse)
    }

    /// Returns every draft id, oldest first.
    pub fn draft_ids(&self) -> Vec<String> {
        self.drafts.ids_oldest_first()
    }

    pub fn draft_count(&self) -> usize {
        self.drafts.len()
    }

    /// Changes a draft with `change`, then gives it a new etag and `updated_at`, as every
    /// write to a draft row does.
    pub fn update_draft(&mut self, id: &str, change: impl FnOnce(&mut Value)) -> Result<(), SimError> {
        self.write_draft(id, |_, draft| change(draft))
    }

    /// Moves a draft to `status` and fills in the fields that phase has. A reason is stored
    /// as `termination_reason`; moving to a phase other than `cleaning_up` or `terminated`
    /// removes any earlier reason. `install_failed` also fails the install operation.
    pub fn set_status(
        &mut self,
        id: &str,
        status: DraftStatus,
        reason: Option<TerminationReason>,
    ) -> Result<(), SimError> {
        self.write_draft(id, |world, draft| world.apply_status(draft, &status, reason.as_ref()))
    }

    /// Gives a draft a new etag and `updated_at` and changes nothing else, like a write to a
    /// field the seller cannot see.
    pub fn touch(&mut self, id: &str) -> Result<(), SimError> {
        self.write_draft(id, |_, _| ())
    }

    /// Deletes a draft, so it leaves listings and `GET` by id returns 404.
    pub fn remove(&mut self, id: &str) -> Result<Value, SimError> {
        self.drafts.remove(id).map(|row| row.json).ok_or_else(|| SimError::UnknownDraft(id.to_owned()))
    }

    /// Hides a draft from this token without deleting it: listings leave it out and `GET`
    /// by id returns 403.
    pub fn set_hidden(&mut self, id: &str, hidden: bool) -> Result<(), SimError> {
        let row = self.drafts.get_mut(id).ok_or_else(|| SimError::UnknownDraft(id.to_owned()))?;
        row.hidden = hidden;
        Ok(())
    }

    /// Fails a draft's install operation with `message` and marks its order, delivery and
    /// URLs failed, in one write. The status stays as it is.
    pub fn fail_install(&mut self, id: &str, message: &str) -> Result<(), SimError> {
        let has_operation =
            self.draft(id).ok_or_else(|| SimError::UnknownDraft(id.to_owned()))?.get("install_operation_id").is_some();
        if !has_operation {
            return Err(SimError::NoInstallOperation(id.to_owned()));
        }
        self.write_draft(id, |world, draft| world.fail_install_fields(draft, message))
    }

    /// Runs `change` on a draft taken out of the table, then stores it with a new etag and
    /// `updated_at`. `change` may use the rest of the world, such as ids and operations.
    pub(super) fn write_draft<R>(
        &mut self,
        id: &str,
        change: impl FnOnce(&mut World, &mut Value) -> R,
    ) -> Result<R, SimError> {
        let row = self.drafts.get_mut(id).ok_or_else(|| SimError::UnknownDraft(id.to_owned()))?;
        let mut draft = std::mem::take(&mut row.json);

        let result = change(self, &mut draft);

        let etag = self.ids.etag();
        let now = self.now();
        if let Some(object) = draft.as_object_mut() {
            object.insert("etag".into(), json!(etag));
            object.insert("updated_at".into(), json!(now));
        }
        self.drafts.get_mut(id).expect("change cannot remove the draft it was given").json = draft;
        Ok(result)
    }

    pub fn operation(&self, id: &str) -> Option<&Value> {
        self.operations.get(id)
    }

    /// Returns the stored operation for direct edits.
    pub fn operation_mut(&mut self, id: &str) -> Option<&mut Value> {
        self.operations.get_mut(id)
    }

    /// Stores an operation under its `id` field, replacing any operation with that id.
    pub fn put_operation(&mut self, operation: Value) -> Result<String, SimError> {
        let id = operation.get("id").and_then(Value::as_str).map(str::to_owned);
        let Some(id) = id else {
            return Err(SimError::OperationWithoutId);
        };
        self.operations.insert(id.clone(), operation);
        Ok(id)
    }

    /// Queues a fault behind the ones already queued.
    pub fn inject(&mut self, fault: Fault) {
        self.faults.push(fault);
    }

    /// Responds to every request to `endpoint` with `status` until the faults are cleared.
    pub fn fail_endpoint(&mut self, endpoint: Endpoint, status: u16) {
        self.faults.push(Fault::new(endpoint, status).until_cleared());
    }

    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    pub fn clear_faults_for(&mut self, endpoint: Endpoint) {
        self.faults.clear_endpoint(endpoint);
    }

    /// Returns how many faults are still queued, sticky ones included.
    pub fn pending_faults(&self) -> usize {
        self.faults.len()
    }

    pub fn request_log(&self) -> &RequestLog {
        &self.log
    }

    pub fn request_log_mut(&mut self) -> &mut RequestLog {
        &mut self.log
    }
}
