//! One sweep: list every watched offer, diff it against the snapshot, route the events and
//! commit the result, offer by offer.
//!
//! An offer whose listing fails part-way is not diffed at all: its drafts keep their old
//! snapshot entries, so the next complete listing reports what changed meanwhile, once.
//! A known draft missing from a complete listing is read by id before anything is
//! concluded: only a 404 makes it removed. Sending is not done here; it is the delivery
//! worker's job, from the outbox.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;

use crate::akua::client::ListingStep;
use crate::akua::model::ListedHead;
use crate::akua::{AkuaClient, ApiError, Draft, DraftStatus, ListedDraft};
use crate::clock::{Clock, unix_ms, unix_secs};
use crate::config::{Config, PollMode};
use crate::event::{Event, EventKind};
use crate::rules::route;
use crate::sinks::Notification;
use crate::state::{DraftCommit, OfferState, OutboxEntry, Store, StoreError, SweepCommit};
use crate::sweep::{DiffContext, ListingCollector, diff_draft, id_hash, new_install_failure, removed_event};

/// How many offers one sweep lists at the same time.
pub const OFFER_CONCURRENCY: usize = 4;

/// How long reading an install operation may delay the notification that needs it.
pub const OPERATION_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How many drafts are diffed and committed together; bounds a sweep's memory. Each batch
/// pages in the sled nodes of its drafts, so smaller batches let sled drop them sooner.
const COMMIT_BATCH: usize = 100;

/// How many drafts missing from a listing are read by id at the same time.
const READ_CONCURRENCY: usize = 4;

/// Offer statuses whose drafts can no longer be created.
const CLOSED_OFFER_STATUSES: &[&str] = &["archived", "expired", "redeemed"];

/// An error that stopped one offer's sweep.
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The outcome of one sweep, for the log line and `once`'s exit code.
#[derive(Debug, Default)]
pub struct SweepReport {
    /// Offers attempted.
    pub offers: usize,
    /// Set when the offers themselves could not be listed.
    pub offers_error: Option<ApiError>,
    /// Offers whose listing or commit failed, with why.
    pub failed: Vec<(String, OfferError)>,
    pub pages: usize,
    pub drafts: usize,
    pub events: usize,
    /// Outbox entries created: one per event and routed sink.
    pub notifications: usize,
    /// Offers listed for the first time, whose drafts were recorded silently.
    pub baselined: usize,
    /// Drafts recorded as removed.
    pub removed: usize,
    /// Offers listed in full; the others were listed in active mode.
    pub full_offers: usize,
    /// Listings restarted from the first page after a rejected cursor.
    pub restarts: usize,
    /// Requests made to the Akua API, offers listing included.
    pub requests: usize,
    pub duration: Duration,
}

impl SweepReport {
    /// Returns whether every offer was listed and committed completely.
    pub fn is_complete(&self) -> bool {
        self.offers_error.is_none() && self.failed.is_empty()
    }

    /// Returns whether nothing at all could be swept.
    pub fn is_total_failure(&self) -> bool {
        self.offers_error.is_some() || (self.offers > 0 && self.failed.len() == self.offers)
    }
}

/// Counts from one offer's sweep.
#[derive(Debug, Default)]
struct OfferSweep {
    pages: usize,
    drafts: usize,
    events: usize,
    notifications: usize,
    baselined: bool,
    removed: usize,
    full: bool,
    restarts: usize,
    requests: usize,
}

/// Sweeps offers and commits what changed.
pub struct Watcher {
    config: Arc<Config>,
    client: AkuaClient,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
}

impl Watcher {
    pub fn new(config: Arc<Config>, client: AkuaClient, store: Arc<Store>, clock: Arc<dyn Clock>) -> Watcher {
        Watcher { config, client, store, clock }
    }

    /// Sweeps every watched offer once, up to [`OFFER_CONCURRENCY`] at a time.
    pub async fn sweep(&self) -> SweepReport {
        let started = Instant::now();
        let mut report = SweepReport::default();

        let offers = match self.watched_offers(&mut report).await {
            Ok(offers) => offers,
            Err(error) => {
                crate::status::global().offers_failed(&error, self.clock.now());
                report.offers_error = Some(error);
                report.duration = started.elapsed();
                return report;
            }
        };

        let mut results = futures_util::stream::iter(offers)
            .map(|offer| async move {
                let result = self.sweep_offer(&offer).await;
                (offer, result)
            })
            .buffered(OFFER_CONCURRENCY);
        while let Some((offer, result)) = results.next().await {
            report.offers += 1;
            match result {
                Ok(sweep) => {
                    report.pages += sweep.pages;
                    report.drafts += sweep.drafts;
                    report.events += sweep.events;
                    report.notifications += sweep.notifications;
                    report.baselined += usize::from(sweep.baselined);
                    report.removed += sweep.removed;
                    report.full_offers += usize::from(sweep.full);
                    report.restarts += sweep.restarts;
                    report.requests += sweep.requests;
                    crate::status::global().offer_swept(&offer, self.clock.now());
                }
                Err((error, requests)) => {
                    report.requests += requests;
                    crate::status::global().offer_failed(&offer, &error, self.clock.now());
                    report.failed.push((offer, error));
                }
            }
        }

        report.duration = started.elapsed();
        report
    }

    /// Returns the offers to sweep: the configured ones, or those from `GET /offers`
    /// without the closed ones whose drafts have all finished.
    async fn watched_offers(&self, report: &mut SweepReport) -> Result<Vec<String>, ApiError> {
        if let Some(offers) = &self.config.akua.offers {
            return Ok(offers.clone());
        }
        report.requests += 1;
        let offers = self.client.list_offers().await?;
        crate::status::global().offers_listed(self.clock.now());

        let mut watched = Vec::with_capacity(offers.len());
        for offer in offers {
            let closed = offer.status.as_deref().is_some_and(|status| CLOSED_OFFER_STATUSES.contains(&status));
            if closed && !self.has_open_drafts(&offer.id) {
                tracing::debug!(offer_id = %offer.id, status = ?offer.status, "closed offer has no open drafts; not listed");
                continue;
            }
            watched.push(offer.id);
        }
        Ok(watched)
    }

    /// Returns whether the snapshot contains a non-terminal draft of `offer_id`. A store error
    /// counts as yes, so the offer stays watched.
    fn has_open_drafts(&self, offer_id: &str) -> bool {
        self.store
            .with_offer_index(offer_id, |index| index.values().any(|summary| !summary.status.is_terminal()))
            .unwrap_or(true)
    }

    async fn sweep_offer(&self, offer_id: &str) -> Result<OfferSweep, (OfferError, usize)> {
        let mut sweep = OfferSweep::default();
        match self.sweep_offer_inner(offer_id, &mut sweep).await {
            Ok(()) => Ok(sweep),
            Err(error) => Err((error, sweep.requests)),
        }
    }

    async fn sweep_offer_inner(&self, offer_id: &str, sweep: &mut OfferSweep) -> Result<(), OfferError> {
        let now_time = self.clock.now();
        let now = unix_secs(now_time);
        let now_ms = unix_ms(now_time);
        let offer_state = self.store.offer_state(offer_id)?;
        let cx = DiffContext {
            now,
            announce_new: offer_state.is_some() || self.config.poll.notify_existing,
            stuck: &self.config.stuck,
        };
        sweep.full = self.is_full_sweep_due(offer_state.as_ref(), now);

        let statuses: Vec<Option<DraftStatus>> = if sweep.full {
            vec![None]
        } else {
            DraftStatus::KNOWN
                .iter()
                .map(|text| DraftStatus::parse(text))
                .filter(|s| !s.is_terminal())
                .map(Some)
                .collect()
        };
        // N.B. until the listing is complete, the collector keeps the JSON text of every
        // draft that needs a diff, so a baseline's memory grows with the offer (about
        // 140 MiB at 100,000 drafts, see docs/benchmarks.md).
        let known = self.store.with_offer_index(offer_id, |index| index.len())?;
        let mut collector = ListingCollector::with_capacity(if sweep.full { known } else { 0 });
        for status in &statuses {
            self.collect_listing(offer_id, status.as_ref(), &cx, &mut collector, sweep).await?;
        }
        sweep.drafts = collector.len();

        // Known drafts the listing should have shown and did not: every one after a full
        // listing, the non-terminal ones after an active listing.
        let missing: Vec<u64> = self.store.with_offer_index(offer_id, |index| {
            // Every known draft was listed: the common case, which needs no search.
            if sweep.full && collector.known_len() == index.len() {
                return Vec::new();
            }
            index
                .iter()
                .filter(|(hash, summary)| {
                    (sweep.full || !summary.status.is_terminal()) && !collector.contains_hash(**hash)
                })
                .map(|(hash, _)| *hash)
                .collect()
        })?;
        let missing = match missing.is_empty() {
            true => Vec::new(),
            false => self.store.draft_ids(offer_id, &missing)?,
        };
        let mut removed = Vec::new();
        for (draft_id, outcome) in self.read_missing(offer_id, missing, sweep).await {
            match outcome {
                Missing::Found(draft) => collector.offer(ListedDraft::from_draft(*draft), true),
                Missing::Gone => removed.push(draft_id),
                Missing::Kept => {}
            }
        }

        // Drafts are diffed, routed and committed a batch at a time, so a large baseline
        // never keeps every parsed draft and its outbox entries in memory at once.
        let mut work: Vec<Pending> = collector.into_pending().into_iter().map(Pending::Listed).collect();
        work.extend(removed.into_iter().map(Pending::Removed));
        let mut work = work.into_iter().peekable();
        let mut committed = false;
        while work.peek().is_some() {
            let batch: Vec<Pending> = work.by_ref().take(COMMIT_BATCH).collect();
            let drafts = self.diff_batch(offer_id, batch, &cx, now_ms, sweep).await?;
            self.store.commit(SweepCommit { offer_id: offer_id.to_owned(), drafts, offer_state: None })?;
            committed = true;
        }
        if committed {
            self.store.finish(offer_id)?;
        }

        if offer_state.is_none() {
            sweep.baselined = true;
            tracing::info!(
                offer_id,
                drafts = sweep.drafts,
                notify_existing = self.config.poll.notify_existing,
                "offer baselined"
            );
        }
        // The time of the last full listing matters only in active mode, so a full-mode
        // sweep that changed nothing writes nothing.
        let record_full = self.config.poll.mode == PollMode::Active || offer_state.is_none();
        if sweep.full && record_full {
            let baselined_at = offer_state.as_ref().map_or(now, |state| state.baselined_at);
            let state = OfferState { baselined_at, last_full_sweep: Some(now) };
            let commit = SweepCommit { offer_id: offer_id.to_owned(), drafts: Vec::new(), offer_state: Some(state) };
            self.store.commit_sweep(commit)?;
        }
        Ok(())
    }

    /// Diffs one batch of drafts, reads the install errors it needs and routes its events.
    async fn diff_batch(
        &self,
        offer_id: &str,
        batch: Vec<Pending>,
        cx: &DiffContext<'_>,
        now_ms: i64,
        sweep: &mut OfferSweep,
    ) -> Result<Vec<DraftCommit>, OfferError> {
        // Each draft's write, with its events until they are routed.
        let mut drafts = Vec::with_capacity(batch.len());
        let mut events: Vec<Vec<Event>> = Vec::with_capacity(batch.len());
        let mut operations = Vec::new();
        for pending in batch {
            let listed = match pending {
                Pending::Listed(listed) => listed,
                Pending::Removed(draft_id) => {
                    let Some(previous) = self.store.snapshot(offer_id, &draft_id)? else { continue };
                    tracing::info!(offer_id, draft_id, "draft removed");
                    events.push(vec![removed_event(&draft_id, &previous, cx.now)]);
                    drafts.push(DraftCommit { draft_id, entry: None, notifications: Vec::new() });
                    sweep.removed += 1;
                    continue;
                }
            };
            let draft = match listed.into_draft() {
                Ok(draft) => draft,
                Err(error) => {
                    tracing::error!(offer_id, error = %error, "listed item is not a readable draft; skipped");
                    continue;
                }
            };
            let previous = self.store.snapshot(offer_id, &draft.id)?;
            let diff = diff_draft(previous.as_ref(), &draft, cx);
            let Some(entry) = diff.write else { continue };

            let changed = diff.events.iter().any(|event| event.kind != EventKind::Stuck);
            if let Some(operation_id) = new_install_failure(previous.as_ref(), &draft).filter(|_| changed) {
                operations.push((drafts.len(), operation_id));
            }
            drafts.push(DraftCommit { draft_id: draft.id.clone(), entry: Some(entry), notifications: Vec::new() });
            events.push(diff.events);
        }

        for (position, message) in self.read_install_errors(operations, sweep).await {
            for event in events[position].iter_mut().filter(|event| event.kind != EventKind::Stuck) {
                event.details.install_error = Some(message.clone());
            }
        }
        for (draft_commit, draft_events) in drafts.iter_mut().zip(events) {
            for event in draft_events {
                sweep.events += 1;
                crate::metrics::event_detected(event.kind);
                draft_commit.notifications.extend(self.route_event(event, now_ms));
            }
            sweep.notifications += draft_commit.notifications.len();
        }
        Ok(drafts)
    }

    /// Returns whether this offer is listed in full: always in full mode, and in active
    /// mode for its first sweep and once `full_every` has passed since the last full one.
    fn is_full_sweep_due(&self, state: Option<&OfferState>, now: i64) -> bool {
        if self.config.poll.mode == PollMode::Full {
            return true;
        }
        let Some(last) = state.and_then(|state| state.last_full_sweep) else {
            return true;
        };
        let every = i64::try_from(self.config.poll.full_every.as_secs()).unwrap_or(i64::MAX);
        now.saturating_sub(last) >= every
    }

    /// Lists one offer, optionally one status only, into `collector`, which keeps only the
    /// drafts that differ from their summaries.
    async fn collect_listing(
        &self,
        offer_id: &str,
        status: Option<&DraftStatus>,
        cx: &DiffContext<'_>,
        collector: &mut ListingCollector,
        sweep: &mut OfferSweep,
    ) -> Result<(), OfferError> {
        let mut store_error = None;
        let walked = self
            .client
            .walk_drafts(offer_id, status, |step| match step {
                ListingStep::Restarted => {
                    sweep.requests += 1;
                    *collector = ListingCollector::default();
                }
                ListingStep::Page { drafts, skipped } => {
                    sweep.requests += 1;
                    for (position, error) in &skipped {
                        tracing::error!(offer_id, position, error = %error, "listed item is not a readable draft; skipped");
                    }
                    let hashes: Vec<u64> = drafts.iter().map(|draft| id_hash(&draft.id)).collect();
                    let result = self.store.with_offer_index(offer_id, |index| {
                        // The lookups miss the CPU cache at random: loading every slot of
                        // the page first lets those misses overlap.
                        for hash in &hashes {
                            index.prefetch(*hash);
                        }
                        for (draft, hash) in drafts.into_iter().zip(hashes) {
                            let summary = index.get(&hash);
                            let unchanged =
                                summary.is_some_and(|summary| summary.is_unchanged(&draft.status, &draft.etag, cx));
                            collector.offer_hashed(hash, draft, summary.is_some(), !unchanged, ListedHead::into_owned);
                        }
                    });
                    if let Err(error) = result {
                        store_error.get_or_insert(error);
                    }
                }
            })
            .await;
        match walked {
            Ok(stats) => {
                sweep.pages += stats.pages;
                sweep.restarts += stats.restarts;
            }
            Err(error) => {
                sweep.requests += 1;
                return Err(error.into());
            }
        }
        match store_error {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }

    /// Reads by id each known draft a listing left out, a few at a time.
    ///
    /// N.B. there is no cap: a listing that leaves out most of a large offer (an empty page
    /// with `has_more: false`, say) costs one read per known draft in that sweep.
    async fn read_missing(
        &self,
        offer_id: &str,
        missing: Vec<String>,
        sweep: &mut OfferSweep,
    ) -> Vec<(String, Missing)> {
        sweep.requests += missing.len();
        let reads = futures_util::stream::iter(missing)
            .map(|draft_id| async move {
                let outcome = match self.client.get_draft(&draft_id).await {
                    Ok(Some(draft)) => {
                        tracing::warn!(offer_id, draft_id, "draft missing from a complete listing is still there; the listing left it out");
                        Missing::Found(Box::new(draft))
                    }
                    Ok(None) => Missing::Gone,
                    Err(error) if error.status() == Some(403) => {
                        tracing::info!(offer_id, draft_id, "draft is no longer visible to this token; not counted as removed");
                        Missing::Kept
                    }
                    Err(error) => {
                        tracing::warn!(offer_id, draft_id, error = %error, "cannot read a draft missing from the listing; checked again next sweep");
                        Missing::Kept
                    }
                };
                (draft_id, outcome)
            })
            .buffered(READ_CONCURRENCY);
        reads.collect().await
    }

    /// Reads the install operations of newly failed installs, each within
    /// [`OPERATION_READ_TIMEOUT`], and returns the error messages found by position.
    async fn read_install_errors(
        &self,
        operations: Vec<(usize, String)>,
        sweep: &mut OfferSweep,
    ) -> Vec<(usize, String)> {
        sweep.requests += operations.len();
        let reads = futures_util::stream::iter(operations)
            .map(|(position, operation_id)| async move {
                let read = tokio::time::timeout(OPERATION_READ_TIMEOUT, self.client.get_operation(&operation_id)).await;
                let message = match read {
                    Ok(Ok(operation)) => operation_error(&operation),
                    Ok(Err(error)) => {
                        tracing::warn!(operation_id, error = %error, "cannot read the install operation; notifying without its error");
                        None
                    }
                    Err(_) => {
                        tracing::warn!(operation_id, timeout = ?OPERATION_READ_TIMEOUT, "install operation read timed out; notifying without its error");
                        None
                    }
                };
                message.map(|message| (position, message))
            })
            .buffered(READ_CONCURRENCY);
        reads.filter_map(|found| async move { found }).collect().await
    }

    /// Routes one event and builds its outbox entries.
    fn route_event(&self, event: Event, now_ms: i64) -> Vec<OutboxEntry> {
        let routes = route(&self.config.rules, &event);
        if routes.is_empty() {
            tracing::debug!(event_id = %event.id, draft_id = %event.draft_id, kind = %event.kind, "no rule matches the event; not sent");
        }
        routes
            .into_iter()
            .map(|target| {
                tracing::info!(event_id = %event.id, draft_id = %event.draft_id, offer_id = %event.offer_id, kind = %event.kind, sink = %target.sink, "notification queued");
                let notification = Notification { event: event.clone(), rule: target.rule };
                OutboxEntry::new(target.sink, notification, now_ms)
            })
            .collect()
    }
}

/// A draft that needs a diff: listed or read by id, or found removed.
#[derive(Debug)]
enum Pending {
    Listed(ListedDraft),
    /// The id of a draft whose read by id returned 404.
    Removed(String),
}

/// The result of reading a draft that was missing from a listing.
#[derive(Debug)]
enum Missing {
    /// 200: the listing glitched; the draft is diffed as read.
    Found(Box<Draft>),
    /// 404: the draft is gone.
    Gone,
    /// 403 or a failed read: nothing is concluded and the entry stays.
    Kept,
}

/// Returns an operation's `error.message`, else its `last_error.message`.
fn operation_error(operation: &Value) -> Option<String> {
    ["/error/message", "/last_error/message"]
        .iter()
        .find_map(|path| operation.pointer(path).and_then(Value::as_str))
        .filter(|message| !message.trim().is_empty())
        .map(str::to_owned)
}
