//! One sweep: list every watched offer, diff it against the snapshot, route the events and
//! commit the result, offer by offer.
//!
//! An offer whose listing fails part-way is not diffed at all: its drafts keep their old
//! snapshot entries, so the next complete listing reports what changed meanwhile, once.
//! Sending is not done here; it is the delivery worker's job, from the outbox.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::akua::{AkuaClient, ApiError};
use crate::clock::{Clock, unix_ms, unix_secs};
use crate::config::Config;
use crate::rules::route;
use crate::sinks::Notification;
use crate::state::{DraftCommit, OfferState, OutboxEntry, Store, StoreError, SweepCommit};
use crate::sweep::{deduplicate, diff_draft};

/// Why one offer could not be swept.
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

/// What one offer's sweep found.
#[derive(Debug, Default)]
struct OfferSweep {
    pages: usize,
    drafts: usize,
    events: usize,
    notifications: usize,
    baselined: bool,
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

    /// Sweeps every watched offer once.
    pub async fn sweep(&self) -> SweepReport {
        let started = Instant::now();
        let mut report = SweepReport::default();

        let offers = match self.watched_offers().await {
            Ok(offers) => offers,
            Err(error) => {
                crate::status::global().offers_failed(&error, self.clock.now());
                report.offers_error = Some(error);
                report.duration = started.elapsed();
                return report;
            }
        };

        for offer in &offers {
            report.offers += 1;
            match self.sweep_offer(offer).await {
                Ok(sweep) => {
                    report.pages += sweep.pages;
                    report.drafts += sweep.drafts;
                    report.events += sweep.events;
                    report.notifications += sweep.notifications;
                    report.baselined += usize::from(sweep.baselined);
                    crate::status::global().offer_swept(offer, self.clock.now());
                }
                Err(error) => {
                    crate::status::global().offer_failed(offer, &error, self.clock.now());
                    report.failed.push((offer.clone(), error));
                }
            }
        }

        report.duration = started.elapsed();
        report
    }

    async fn watched_offers(&self) -> Result<Vec<String>, ApiError> {
        if let Some(offers) = &self.config.akua.offers {
            return Ok(offers.clone());
        }
        let offers = self.client.list_offers().await?;
        crate::status::global().offers_listed(self.clock.now());
        Ok(offers.into_iter().map(|offer| offer.id).collect())
    }

    async fn sweep_offer(&self, offer_id: &str) -> Result<OfferSweep, OfferError> {
        let listing = self.client.list_drafts(offer_id).await?;
        for (position, error) in &listing.skipped {
            tracing::error!(offer_id, position, error = %error, "listed item is not a readable draft; skipped");
        }

        let now_time = self.clock.now();
        let now = unix_secs(now_time);
        let now_ms = unix_ms(now_time);
        let offer_state = self.store.offer_state(offer_id)?;
        let announce_new = offer_state.is_some() || self.config.poll.notify_existing;
        let drafts = deduplicate(listing.drafts);

        let mut sweep = OfferSweep { pages: listing.pages, drafts: drafts.len(), ..OfferSweep::default() };
        let mut commit = SweepCommit { offer_id: offer_id.to_owned(), ..SweepCommit::default() };
        for draft in &drafts {
            let previous = self.store.snapshot(offer_id, &draft.id)?;
            let diff = diff_draft(previous.as_ref(), draft, now, announce_new);
            let Some(entry) = diff.write else { continue };

            let mut notifications = Vec::new();
            if let Some(event) = diff.event {
                sweep.events += 1;
                crate::metrics::event_detected(event.kind);
                let routes = route(&self.config.rules, &event);
                if routes.is_empty() {
                    tracing::debug!(event_id = %event.id, draft_id = %event.draft_id, kind = %event.kind, "no rule matches the event; not sent");
                }
                for target in routes {
                    tracing::info!(event_id = %event.id, draft_id = %event.draft_id, offer_id, kind = %event.kind, sink = %target.sink, "notification queued");
                    let notification = Notification { event: event.clone(), rule: target.rule };
                    notifications.push(OutboxEntry::new(target.sink, notification, now_ms));
                }
            }
            sweep.notifications += notifications.len();
            commit.drafts.push(DraftCommit { draft_id: draft.id.clone(), entry, notifications });
        }

        if offer_state.is_none() {
            commit.baselined = Some(OfferState { baselined_at: now });
            sweep.baselined = true;
            tracing::info!(
                offer_id,
                drafts = sweep.drafts,
                notify_existing = self.config.poll.notify_existing,
                "offer baselined"
            );
        }
        self.store.commit_sweep(commit)?;
        Ok(sweep)
    }
}
