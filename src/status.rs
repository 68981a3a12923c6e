//! The record of what the running process observed, for `/readyz`, `/status` and the failure log.
//!
//! The sweep and the delivery worker report here with one call per fact, such as an offer
//! swept or failed, or a delivery attempt. This module keeps the latest of each behind a
//! mutex and forwards it to [`crate::metrics`]. It also writes the rate-limited log lines
//! about failing offers (see [`crate::repeats`]). Outbox counts are read from the store on
//! each request, so they are never stale. It decides nothing about sweeping or delivering.
//!
//! There is one [`Status`] per process, reached through [`global`], like the metrics
//! recorder: the workers that report are rebuilt on every reload, while what they observed
//! must outlive them. Tests of this module build their own with [`Status::new`].

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Display;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::akua::ApiError;
use crate::config::Config;
use crate::pipeline::SweepReport;
use crate::repeats::{Repeats, Verdict};
use crate::sinks::DeliveryError;
use crate::state::{EntryState, Store};

/// How many dead letters `/status` lists, newest first.
pub const DEAD_LETTERS_SHOWN: usize = 20;

/// The [`Repeats`] key of the offers listing itself, which cannot clash with an offer id.
const OFFER_LISTING_KEY: &str = "GET /offers";

static GLOBAL: LazyLock<Status> = LazyLock::new(Status::new);

/// Returns the process's status, which every worker reports to.
pub fn global() -> &'static Status {
    &GLOBAL
}

/// Shared observable state of one process.
pub struct Status {
    started_at: SystemTime,
    inner: Mutex<Inner>,
    /// Set once the state store is open; readiness means this is set.
    store: OnceLock<Arc<Store>>,
}

#[derive(Default)]
struct Inner {
    last_sweep_at: Option<SystemTime>,
    last_complete_sweep_at: Option<SystemTime>,
    /// The last `GET /offers`, when the offers come from the API rather than the file.
    offer_listing: Option<Outcome>,
    offers: BTreeMap<String, Outcome>,
    /// Keyed by sink name. Contains exactly the configured sinks.
    sinks: BTreeMap<String, SinkState>,
    repeats: Repeats,
}

/// The last result of one offer's sweep, or of the offers listing.
#[derive(Clone, Debug)]
struct Outcome {
    at: SystemTime,
    error: Option<String>,
    /// When the current run of failures began; `None` while it succeeds.
    failing_since: Option<SystemTime>,
    consecutive_failures: u64,
}

#[derive(Clone, Debug, Default)]
struct SinkState {
    kind: &'static str,
    last_delivered_at: Option<SystemTime>,
    last_error: Option<(SystemTime, String)>,
}

/// The `/status` document.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub version: &'static str,
    pub ready: bool,
    pub started_at: String,
    pub last_sweep_at: Option<String>,
    /// The last sweep that listed every offer completely.
    pub last_complete_sweep_at: Option<String>,
    /// `GET /offers`, when the offers are not listed in the configuration.
    pub offer_listing: Option<OutcomeReport>,
    pub offers: BTreeMap<String, OutcomeReport>,
    pub outbox: OutboxReport,
    pub sinks: BTreeMap<String, SinkReport>,
}

#[derive(Debug, Serialize)]
pub struct OutcomeReport {
    pub last_sweep_at: String,
    /// `ok` or `failed`.
    pub result: &'static str,
    pub error: Option<String>,
    pub failing_since: Option<String>,
    pub consecutive_failures: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct OutboxReport {
    pub pending: usize,
    pub dead: usize,
    /// Newest first, at most [`DEAD_LETTERS_SHOWN`].
    pub dead_letters: Vec<DeadLetter>,
    /// Set when the store is not open yet or could not be read.
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DeadLetter {
    /// `<event id>:<sink>`, as `outbox retry` takes it.
    pub id: String,
    pub sink: String,
    pub draft_id: String,
    pub event_type: String,
    pub attempts: u32,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SinkReport {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub last_delivered_at: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

impl Default for Status {
    fn default() -> Self {
        Status::new()
    }
}

impl Status {
    pub fn new() -> Status {
        Status { started_at: SystemTime::now(), inner: Mutex::new(Inner::default()), store: OnceLock::new() }
    }

    /// Marks the process ready: the configuration is loaded and `store` is open.
    pub fn set_ready(&self, store: Arc<Store>) {
        let _ = self.store.set(store);
    }

    pub fn is_ready(&self) -> bool {
        self.store.get().is_some()
    }

    /// Takes note of a new configuration: its sinks, and the offers it still watches.
    ///
    /// N.B. when the offers come from `GET /offers`, an offer that leaves that list keeps
    /// its last entry in `/status` until the process restarts.
    pub fn configured(&self, config: &Config) {
        let mut inner = self.lock();
        let previous = std::mem::take(&mut inner.sinks);
        for (name, sink) in &config.sinks {
            let mut state = previous.get(name).cloned().unwrap_or_default();
            state.kind = sink.type_name();
            inner.sinks.insert(name.clone(), state);
        }

        if let Some(offers) = &config.akua.offers {
            inner.offers.retain(|offer, _| offers.contains(offer));
            inner.offer_listing = None;
            let Inner { repeats, .. } = &mut *inner;
            repeats.retain(|key| key == OFFER_LISTING_KEY || offers.iter().any(|offer| offer == key));
        }
    }

    /// Records that `GET /offers` succeeded.
    pub fn offers_listed(&self, at: SystemTime) {
        let mut inner = self.lock();
        if let Some(recovery) = inner.repeats.success(OFFER_LISTING_KEY) {
            tracing::info!(
                failures = recovery.failures,
                failing_for = %format_span(recovery.since, at),
                "listing offers works again"
            );
        }
        inner.offer_listing = Some(Outcome::ok(at));
    }

    /// Records that `GET /offers` failed, and logs it unless the same error was logged recently.
    pub fn offers_failed(&self, error: &ApiError, at: SystemTime) {
        let message = error.to_string();
        let mut inner = self.lock();
        match inner.repeats.failure(OFFER_LISTING_KEY, &message, at) {
            Verdict::New => tracing::error!(error = %message, "cannot list offers; sweep skipped"),
            Verdict::Reminder { failures, since } => tracing::error!(
                error = %message,
                failures,
                failing_for = %format_span(since, at),
                "still cannot list offers; sweeps skipped"
            ),
            Verdict::Quiet => {}
        }
        let previous = inner.offer_listing.take();
        inner.offer_listing = Some(Outcome::failed(previous, message, at));
    }

    /// Records that `offer` was listed and committed completely.
    pub fn offer_swept(&self, offer: &str, at: SystemTime) {
        let mut inner = self.lock();
        if let Some(recovery) = inner.repeats.success(offer) {
            tracing::info!(
                offer_id = offer,
                failures = recovery.failures,
                failing_for = %format_span(recovery.since, at),
                "offer sweep recovered"
            );
        }
        inner.offers.insert(offer.to_owned(), Outcome::ok(at));
    }

    /// Records that `offer` could not be swept, and logs it unless the same error was
    /// logged for this offer recently.
    pub fn offer_failed(&self, offer: &str, error: &dyn Display, at: SystemTime) {
        let message = error.to_string();
        let mut inner = self.lock();
        match inner.repeats.failure(offer, &message, at) {
            Verdict::New => tracing::error!(
                offer_id = offer,
                error = %message,
                "offer sweep failed; its drafts keep their snapshot until the next complete listing"
            ),
            Verdict::Reminder { failures, since } => tracing::error!(
                offer_id = offer,
                error = %message,
                failures,
                failing_for = %format_span(since, at),
                "offer sweep still failing with the same error"
            ),
            Verdict::Quiet => {}
        }
        let previous = inner.offers.remove(offer);
        inner.offers.insert(offer.to_owned(), Outcome::failed(previous, message, at));
    }

    /// Records a whole sweep, for `/status` and the metrics.
    pub fn sweep_finished(&self, report: &SweepReport, at: SystemTime) {
        crate::metrics::sweep_finished(report, at);
        let mut inner = self.lock();
        inner.last_sweep_at = Some(at);
        if report.is_complete() {
            inner.last_complete_sweep_at = Some(at);
        }
    }

    /// Records one delivery attempt to `sink`.
    pub fn delivery_attempted(&self, sink: &str, outcome: &Result<(), DeliveryError>, at: SystemTime) {
        crate::metrics::delivery_attempted(sink, outcome);
        let mut inner = self.lock();
        let state = inner.sinks.entry(sink.to_owned()).or_default();
        match outcome {
            Ok(()) => state.last_delivered_at = Some(at),
            Err(error) => state.last_error = Some((at, error.to_string())),
        }
    }

    /// Returns how many offers failed their last sweep.
    pub fn offers_failing(&self) -> usize {
        self.lock().offers.values().filter(|outcome| outcome.error.is_some()).count()
    }

    /// Returns the open store, once the process is ready.
    pub fn store(&self) -> Option<&Arc<Store>> {
        self.store.get()
    }

    /// Builds the `/status` document. Reads the outbox from the store.
    pub fn report(&self) -> StatusReport {
        let outbox = match self.store.get() {
            Some(store) => outbox_report(store),
            None => {
                OutboxReport { error: Some("the state store is not open yet".to_owned()), ..OutboxReport::default() }
            }
        };

        let inner = self.lock();
        StatusReport {
            version: env!("CARGO_PKG_VERSION"),
            ready: self.is_ready(),
            started_at: rfc3339(self.started_at),
            last_sweep_at: inner.last_sweep_at.map(rfc3339),
            last_complete_sweep_at: inner.last_complete_sweep_at.map(rfc3339),
            offer_listing: inner.offer_listing.as_ref().map(Outcome::report),
            offers: inner.offers.iter().map(|(offer, outcome)| (offer.clone(), outcome.report())).collect(),
            outbox,
            sinks: inner
                .sinks
                .iter()
                .map(|(name, state)| {
                    let report = SinkReport {
                        kind: state.kind,
                        last_delivered_at: state.last_delivered_at.map(rfc3339),
                        last_error: state.last_error.as_ref().map(|(_, error)| error.clone()),
                        last_error_at: state.last_error.as_ref().map(|(at, _)| rfc3339(*at)),
                    };
                    (name.clone(), report)
                })
                .collect(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // N.B. a panic while holding the lock leaves plain data behind, still worth showing.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Outcome {
    fn ok(at: SystemTime) -> Outcome {
        Outcome { at, error: None, failing_since: None, consecutive_failures: 0 }
    }

    fn failed(previous: Option<Outcome>, error: String, at: SystemTime) -> Outcome {
        let (since, failures) = match previous {
            Some(Outcome { failing_since: Some(since), consecutive_failures, .. }) => (since, consecutive_failures + 1),
            _ => (at, 1),
        };
        Outcome { at, error: Some(error), failing_since: Some(since), consecutive_failures: failures }
    }

    fn report(&self) -> OutcomeReport {
        OutcomeReport {
            last_sweep_at: rfc3339(self.at),
            result: if self.error.is_some() { "failed" } else { "ok" },
            error: self.error.clone(),
            failing_since: self.failing_since.map(rfc3339),
            consecutive_failures: self.consecutive_failures,
        }
    }
}

fn outbox_report(store: &Store) -> OutboxReport {
    let mut report = OutboxReport::default();
    let mut newest_dead = VecDeque::with_capacity(DEAD_LETTERS_SHOWN + 1);
    for entry in store.outbox_iter() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => return OutboxReport { error: Some(error.to_string()), ..OutboxReport::default() },
        };
        if entry.state == EntryState::Pending {
            report.pending += 1;
            continue;
        }

        report.dead += 1;
        newest_dead.push_front(DeadLetter {
            id: entry.id(),
            sink: entry.sink,
            draft_id: entry.notification.event.draft_id,
            event_type: entry.notification.event.kind.to_string(),
            attempts: entry.attempts,
            reason: entry.last_error,
        });
        newest_dead.truncate(DEAD_LETTERS_SHOWN);
    }
    report.dead_letters = newest_dead.into();
    report
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Formats the time from `since` to `until` for a log field, such as `15m 3s`.
fn format_span(since: SystemTime, until: SystemTime) -> String {
    let span = until.duration_since(since).unwrap_or(Duration::ZERO);
    humantime::format_duration(Duration::from_secs(span.as_secs())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::akua::error::RequestContext;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn status_offer_failure_then_recovery() {
        let status = Status::new();
        status.offer_failed("offer_1", &"akua answered HTTP 500", at(0));
        status.offer_failed("offer_1", &"akua answered HTTP 500", at(30));
        status.offer_swept("offer_2", at(30));

        let report = status.report();
        let failing = &report.offers["offer_1"];
        assert_eq!(failing.result, "failed");
        assert_eq!(failing.error.as_deref(), Some("akua answered HTTP 500"));
        assert_eq!(failing.consecutive_failures, 2);
        assert_eq!(failing.failing_since.as_deref(), Some(rfc3339(at(0)).as_str()));
        assert_eq!(report.offers["offer_2"].result, "ok");
        assert_eq!(status.offers_failing(), 1);

        status.offer_swept("offer_1", at(60));
        let recovered = &status.report().offers["offer_1"];
        assert_eq!((recovered.result, recovered.consecutive_failures), ("ok", 0));
        assert_eq!(status.offers_failing(), 0);
    }

    #[test]
    fn status_sink_keeps_last_error() {
        let status = Status::new();
        let refused = Err(DeliveryError::Retryable { reason: "connection refused".into(), retry_after: None });
        status.delivery_attempted("ops", &refused, at(5));
        status.delivery_attempted("ops", &Ok(()), at(9));

        let sink = &status.report().sinks["ops"];
        assert_eq!(sink.last_error.as_deref(), Some("connection refused"));
        assert_eq!(sink.last_error_at.as_deref(), Some(rfc3339(at(5)).as_str()));
        assert_eq!(sink.last_delivered_at.as_deref(), Some(rfc3339(at(9)).as_str()));
    }

    #[test]
    fn status_lists_newest_dead_letters() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let total = DEAD_LETTERS_SHOWN as u64 + 5;
        for seq in 0..total {
            let mut entry = crate::state::OutboxEntry::new("ops".into(), crate::render::fixture::status_changed(), 0);
            entry.notification.event.id = format!("evt_{seq}");
            entry.seq = seq;
            if seq != 3 {
                entry.state = EntryState::Dead;
            }
            store.update_entry(&entry).unwrap();
        }

        let report = outbox_report(&store);

        assert_eq!((report.pending, report.dead), (1, total as usize - 1));
        let ids: Vec<&str> = report.dead_letters.iter().map(|letter| letter.id.as_str()).collect();
        let newest: Vec<String> =
            (0..total).rev().take(DEAD_LETTERS_SHOWN).map(|seq| format!("evt_{seq}:ops")).collect();
        assert_eq!(ids, newest, "the newest first, at most {DEAD_LETTERS_SHOWN}");
    }

    #[test]
    fn status_not_ready_without_store() {
        let status = Status::new();
        let error = ApiError::Transport {
            context: RequestContext { endpoint: "GET /offers", offer: None },
            detail: "connection refused".into(),
        };
        status.offers_failed(&error, at(0));

        let report = status.report();
        assert!(!report.ready);
        assert!(report.outbox.error.is_some());
        assert_eq!(report.offer_listing.unwrap().result, "failed");

        let dir = tempfile::tempdir().unwrap();
        status.set_ready(Arc::new(Store::open(&dir.path().join("state")).unwrap()));
        let report = status.report();
        assert!(report.ready);
        assert_eq!((report.outbox.pending, report.outbox.dead, report.outbox.error), (0, 0, None));
    }
}
