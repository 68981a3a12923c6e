//! The delivery worker: drains the outbox into the sinks and records every outcome.
//!
//! Each sink is drained on its own task, so one failing receiver neither blocks nor
//! duplicates the others. Within a sink, entries go out in detection order, and a
//! draft's later notification never overtakes an earlier one that is still pending. What
//! counts as retryable is the sink's call; how long to wait is decided here.
//!
//! Each sink's task reads its pending entries from the outbox `PAGE` (64) at a time, so a
//! round keeps at most one page of decoded entries per sink in memory, however many
//! entries and dead letters the outbox has.

mod pace;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::sync::{Mutex, Semaphore};

pub use pace::Pacer;

use crate::clock::{Clock, from_unix_ms, unix_ms};
use crate::config::DeliveryConfig;
use crate::sinks::{DeliveryError, Sink};
use crate::state::{EntryState, OutboxEntry, Store, StoreError};

/// The first retry waits up to this long; each later one doubles the bound.
const BASE_BACKOFF: Duration = Duration::from_secs(1);

/// Requests in flight at once across all sinks. Within one sink, requests go one at a time.
pub const MAX_IN_FLIGHT: usize = 8;

/// Pending entries a sink's task reads from the outbox at a time. A decoded entry carries
/// its draft object, roughly 5 KiB for a typical draft, so a page takes an estimated 320 KiB.
const PAGE: usize = 64;

/// Slack's pace: about one message per second per incoming webhook, with short bursts.
const SLACK_BURST: u32 = 3;
const SLACK_PERIOD: Duration = Duration::from_secs(1);

/// Counts from one delivery round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub attempted: usize,
    pub delivered: usize,
    /// Failed attempts that will be retried.
    pub retrying: usize,
    /// Entries dead-lettered in this round.
    pub dead: usize,
}

impl DeliveryReport {
    /// Adds another round's counts to these.
    pub fn add(&mut self, other: &DeliveryReport) {
        self.attempted += other.attempted;
        self.delivered += other.delivered;
        self.retrying += other.retrying;
        self.dead += other.dead;
    }
}

/// A configured sink with the retry settings that apply to it.
struct SinkSlot {
    sink: Sink,
    policy: DeliveryConfig,
    /// Set for receivers with a documented rate limit (Slack); shared by every round.
    pacer: Option<Mutex<Pacer>>,
    /// Unix milliseconds before which the sink gets no request at all, set by a retryable
    /// failure so a receiver that is down sees one request per backoff, not one per entry.
    /// Zero when the sink is not paused. Kept in memory only: a restart tries at once.
    paused_until_ms: AtomicI64,
}

/// Sends due outbox entries and records the outcome of each attempt.
pub struct Deliverer {
    store: Arc<Store>,
    /// Keyed by sink name. An outbox entry whose sink is missing here is dead-lettered.
    sinks: BTreeMap<String, Arc<SinkSlot>>,
    clock: Arc<dyn Clock>,
    /// Bounds the requests in flight across all sinks to [`MAX_IN_FLIGHT`].
    in_flight: Arc<Semaphore>,
    /// [`PAGE`]; tests lower it to cross page boundaries with a few entries.
    page: usize,
}

impl Deliverer {
    /// Builds the worker from the configured sinks and their retry settings.
    pub fn new(store: Arc<Store>, sinks: Vec<(Sink, DeliveryConfig)>, clock: Arc<dyn Clock>) -> Deliverer {
        let sinks = sinks
            .into_iter()
            .map(|(sink, policy)| {
                let pacer = (sink.kind() == "slack")
                    .then(|| Mutex::new(Pacer::new(SLACK_BURST, SLACK_PERIOD, tokio::time::Instant::now())));
                (sink.name().to_owned(), Arc::new(SinkSlot { sink, policy, pacer, paused_until_ms: AtomicI64::new(0) }))
            })
            .collect();
        Deliverer { store, sinks, clock, in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)), page: PAGE }
    }

    /// Attempts every pending entry that is due now, then flushes the outbox.
    ///
    /// Entries of sinks that are no longer configured are dead-lettered first. Then each
    /// configured sink's task reads its own pending entries in pages, so a round keeps at
    /// most one page of decoded entries per sink in memory, whatever the size of the
    /// outbox. Entries queued while the round runs may be attempted in it too.
    pub async fn deliver_due(&self) -> Result<DeliveryReport, StoreError> {
        let now_ms = unix_ms(self.clock.now());
        let mut report = DeliveryReport::default();

        for entry in self.store.pending_iter(None, |sink| !self.sinks.contains_key(sink)) {
            let entry = entry?;
            let reason = format!("sink `{}` is no longer configured", entry.sink);
            dead_letter(&self.store, entry, reason)?;
            report.dead += 1;
        }

        let mut tasks = tokio::task::JoinSet::new();
        for slot in self.sinks.values() {
            let slot = Arc::clone(slot);
            let store = Arc::clone(&self.store);
            let clock = Arc::clone(&self.clock);
            let in_flight = Arc::clone(&self.in_flight);
            let page = self.page;
            tasks.spawn(async move { drain_sink(&slot, &store, clock.as_ref(), &in_flight, page, now_ms).await });
        }
        // A store error in one sink's task lets the others finish their round, and the
        // outcomes recorded so far are flushed: dropping the tasks would abort requests in
        // flight and send those notifications again.
        let mut failed = None;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(sink_report)) => report.add(&sink_report),
                Ok(Err(error)) => {
                    failed.get_or_insert(error);
                }
                Err(error) => tracing::error!(error = %error, "delivery task failed"),
            }
        }

        self.store.flush()?;
        match failed {
            Some(error) => Err(error),
            None => Ok(report),
        }
    }

    /// Returns when the next attempt can be made, if any entry is pending.
    ///
    /// Only the oldest pending entry of each (sink, draft) pair can go next, and not
    /// before its sink's pause ends. Entries behind it are not counted as due.
    pub fn next_due(&self) -> Result<Option<SystemTime>, StoreError> {
        let mut heads: HashSet<(String, String)> = HashSet::new();
        let mut earliest: Option<i64> = None;
        for entry in self.store.pending_iter(None, |_| true) {
            let entry = entry?;
            if !heads.insert((entry.sink.clone(), entry.notification.event.draft_id.clone())) {
                continue;
            }
            let paused_until =
                self.sinks.get(&entry.sink).map_or(0, |slot| slot.paused_until_ms.load(Ordering::Relaxed));
            let due = entry.next_attempt_ms.max(paused_until);
            earliest = Some(earliest.map_or(due, |current| current.min(due)));
        }
        Ok(earliest.map(from_unix_ms))
    }
}

/// The step after an attempt in a sink's round.
enum Next {
    Continue,
    EndRound,
}

/// Sends one sink's due entries in order and records each outcome.
///
/// Reads the sink's pending entries `page` at a time, in seq order. The round for this
/// sink ends at the first retryable failure: the receiver is likely down or throttling,
/// and hammering it with the rest would only fail the same way.
async fn drain_sink(
    slot: &SinkSlot,
    store: &Store,
    clock: &dyn Clock,
    in_flight: &Semaphore,
    page: usize,
    now_ms: i64,
) -> Result<DeliveryReport, StoreError> {
    let mut report = DeliveryReport::default();
    if slot.paused_until_ms.load(Ordering::Relaxed) > now_ms {
        return Ok(report);
    }

    // Drafts with an entry that is not due, or that waits behind one. Their later entries
    // wait too. The set is kept across pages, so the order is kept at page boundaries.
    let mut waiting_drafts: HashSet<String> = HashSet::new();
    let mut after = None;
    loop {
        let entries = store.pending_page(slot.sink.name(), after, page)?;
        let last_page = entries.len() < page;
        after = entries.last().map(|entry| entry.seq).or(after);

        for entry in entries {
            let draft_id = &entry.notification.event.draft_id;
            if entry.next_attempt_ms > now_ms || waiting_drafts.contains(draft_id) {
                waiting_drafts.insert(draft_id.clone());
                continue;
            }
            if let Next::EndRound = attempt(slot, store, clock, in_flight, entry, &mut report).await? {
                return Ok(report);
            }
        }

        if last_page {
            return Ok(report);
        }
    }
}

/// Makes one paced attempt of a due entry and records its outcome in the store and in
/// `report`.
async fn attempt(
    slot: &SinkSlot,
    store: &Store,
    clock: &dyn Clock,
    in_flight: &Semaphore,
    mut entry: OutboxEntry,
    report: &mut DeliveryReport,
) -> Result<Next, StoreError> {
    if let Some(pacer) = &slot.pacer {
        let wait = pacer.lock().await.reserve(tokio::time::Instant::now());
        tokio::time::sleep(wait).await;
    }
    let permit = in_flight.acquire().await.expect("the in-flight semaphore is never closed");
    report.attempted += 1;
    entry.attempts += 1;
    let outcome = slot.sink.deliver(&entry.notification, clock.now()).await;
    drop(permit);
    let attempt_ms = unix_ms(clock.now());
    crate::status::global().delivery_attempted(&entry.sink, &outcome, clock.now());
    let draft_id = entry.notification.event.draft_id.clone();

    match outcome {
        Ok(()) => {
            tracing::info!(outbox_id = %entry.id(), sink = %entry.sink, draft_id = %draft_id, attempts = entry.attempts, "notification delivered");
            store.remove_entry(entry.seq)?;
            slot.paused_until_ms.store(0, Ordering::Relaxed);
            report.delivered += 1;
            Ok(Next::Continue)
        }
        Err(DeliveryError::Permanent { reason }) => {
            dead_letter(store, entry, reason)?;
            report.dead += 1;
            Ok(Next::Continue)
        }
        Err(DeliveryError::Retryable { reason, retry_after }) => {
            let deadline_ms = entry.created_ms.saturating_add(duration_ms(slot.policy.retry_for));
            if attempt_ms >= deadline_ms {
                let reason = format!("{reason} (gave up after {} attempts)", entry.attempts);
                dead_letter(store, entry, reason)?;
                report.dead += 1;
                return Ok(Next::EndRound);
            }

            let wait = retry_delay(entry.attempts, retry_after, slot.policy.max_backoff, &mut rand::rng());
            entry.next_attempt_ms = attempt_ms.saturating_add(duration_ms(wait));
            entry.last_error = Some(reason.clone());
            tracing::warn!(
                outbox_id = %entry.id(),
                sink = %entry.sink,
                draft_id = %draft_id,
                attempts = entry.attempts,
                retry_in = %humantime::format_duration(round_to_ms(wait)),
                error = %reason,
                "delivery failed; will retry"
            );
            store.update_entry(&entry)?;
            slot.paused_until_ms.store(entry.next_attempt_ms, Ordering::Relaxed);
            report.retrying += 1;
            Ok(Next::EndRound)
        }
    }
}

fn dead_letter(store: &Store, mut entry: OutboxEntry, reason: String) -> Result<(), StoreError> {
    crate::metrics::dead_lettered(&entry.sink);
    tracing::error!(
        outbox_id = %entry.id(),
        sink = %entry.sink,
        draft_id = %entry.notification.event.draft_id,
        attempts = entry.attempts,
        reason = %reason,
        "notification dead-lettered"
    );
    entry.state = EntryState::Dead;
    entry.last_error = Some(reason);
    store.update_entry(&entry)
}

/// Returns how long to wait before the next attempt.
///
/// Exponential backoff with full jitter: a uniform wait between zero and
/// `BASE_BACKOFF · 2^(attempts-1)`, capped at `max_backoff`. A receiver's own hint
/// replaces the jittered wait, capped at `max_backoff` too.
pub fn retry_delay(attempts: u32, hint: Option<Duration>, max_backoff: Duration, rng: &mut impl Rng) -> Duration {
    if let Some(hint) = hint {
        return hint.min(max_backoff);
    }
    let exponent = attempts.saturating_sub(1).min(30);
    let bound = BASE_BACKOFF.saturating_mul(1 << exponent).min(max_backoff);
    let bound_ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rng.random_range(0..=bound_ms))
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn round_to_ms(duration: Duration) -> Duration {
    Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Mutex as StdMutex;

    use axum::Router;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, Uri, header};
    use axum::response::{IntoResponse, Response};
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use tempfile::TempDir;
    use tokio::net::TcpListener;
    use url::Url;

    use super::*;
    use crate::clock::ManualClock;
    use crate::config::{SinkConfig, WebhookSinkConfig};
    use crate::render::fixture;
    use crate::secret::Secret;

    /// Unix milliseconds of the test clock's start; every entry is created then.
    const START_MS: i64 = 1_800_000_000_000;

    /// Requests as a [`Receiver`] saw them: the sink name (first path segment) and the
    /// `webhook-id`, which is the event id `evt_<seq>`.
    type Log = Arc<StdMutex<Vec<(String, String)>>>;

    /// A webhook receiver on a free loopback port. It records every request and responds by
    /// the path `/<sink>/<behavior>`: `ok` with 200, `fail` with 503 and `Retry-After: 30`,
    /// and `wait-for-<sink>-<n>` with 200 once `<sink>` got `n` requests, or 503 after
    /// 5 seconds.
    struct Receiver {
        addr: SocketAddr,
        log: Log,
    }

    impl Receiver {
        async fn start() -> Receiver {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
            let addr = listener.local_addr().unwrap();
            let log = Log::default();
            let app = Router::new().fallback(answer).with_state(Arc::clone(&log));
            tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver runs") });
            Receiver { addr, log }
        }

        /// Returns the event ids `sink` received, in arrival order.
        fn received(&self, sink: &str) -> Vec<String> {
            let log = self.log.lock().unwrap();
            log.iter().filter(|(name, _)| name == sink).map(|(_, id)| id.clone()).collect()
        }

        /// Builds the webhook sink `name`, posting to `/<name>/<behavior>` on this receiver.
        fn sink(&self, name: &str, behavior: &str) -> (Sink, DeliveryConfig) {
            let url = Url::parse(&format!("http://{}/{name}/{behavior}", self.addr)).unwrap();
            let config = WebhookSinkConfig {
                url: Secret::new(url),
                signing_key: None,
                headers: Vec::new(),
                timeout: Duration::from_secs(10),
            };
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            (Sink::from_config(name, &SinkConfig::Webhook(config), client), DeliveryConfig::default())
        }
    }

    async fn answer(State(log): State<Log>, uri: Uri, headers: HeaderMap) -> Response {
        let mut segments = uri.path().trim_start_matches('/').splitn(2, '/');
        let sink = segments.next().unwrap_or_default().to_owned();
        let behavior = segments.next().unwrap_or_default().to_owned();
        let id = headers.get("webhook-id").and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
        log.lock().unwrap().push((sink, id));

        if let Some(wait) = behavior.strip_prefix("wait-for-") {
            let (other, count) = wait.rsplit_once('-').expect("wait-for-<sink>-<n>");
            let count: usize = count.parse().unwrap();
            for _ in 0..500 {
                if log.lock().unwrap().iter().filter(|(name, _)| name == other).count() >= count {
                    return (StatusCode::OK, "ok").into_response();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        match behavior.as_str() {
            "ok" => (StatusCode::OK, "ok").into_response(),
            "fail" => (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "30")], "down").into_response(),
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    }

    /// A store, a clock standing at [`START_MS`] and a receiver.
    struct Setup {
        store: Arc<Store>,
        clock: Arc<ManualClock>,
        receiver: Receiver,
        _dir: TempDir,
    }

    impl Setup {
        async fn start() -> Setup {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(Store::open(dir.path()).unwrap());
            let clock = Arc::new(ManualClock::new(from_unix_ms(START_MS)));
            Setup { store, clock, receiver: Receiver::start().await, _dir: dir }
        }

        /// Builds a deliverer of `sinks`, given as (name, behavior), reading `page` entries at a time.
        fn deliverer(&self, sinks: &[(&str, &str)], page: usize) -> Deliverer {
            let sinks = sinks.iter().map(|(name, behavior)| self.receiver.sink(name, behavior)).collect();
            let clock: Arc<dyn Clock> = Arc::clone(&self.clock) as Arc<dyn Clock>;
            let mut deliverer = Deliverer::new(Arc::clone(&self.store), sinks, clock);
            deliverer.page = page;
            deliverer
        }

        /// Stores event `evt_<seq>` of `draft` for `sink` under `seq`, pending and due now.
        fn queue(&self, seq: u64, sink: &str, draft: &str) -> OutboxEntry {
            let mut notification = fixture::status_changed();
            notification.event.id = format!("evt_{seq}");
            notification.event.draft_id = draft.to_owned();
            let mut entry = OutboxEntry::new(sink.to_owned(), notification, START_MS);
            entry.seq = seq;
            self.store.update_entry(&entry).unwrap();
            entry
        }

        /// Stores event `evt_<seq>` of draft `odft_<seq>` for each seq in `seqs`, for `even`
        /// at even seqs and for `odd` at odd ones.
        fn queue_alternating(&self, seqs: std::ops::Range<u64>, even: &str, odd: &str) {
            for seq in seqs {
                let sink = if seq % 2 == 0 { even } else { odd };
                self.queue(seq, sink, &format!("odft_{seq}"));
            }
        }

        /// Stores a dead letter of `sink` under `seq`, with one attempt made.
        fn queue_dead(&self, seq: u64, sink: &str, draft: &str) -> OutboxEntry {
            let mut entry = self.queue(seq, sink, draft);
            entry.state = EntryState::Dead;
            entry.attempts = 1;
            entry.last_error = Some("rejected earlier".to_owned());
            self.store.update_entry(&entry).unwrap();
            entry
        }

        fn entry(&self, seq: u64) -> Option<OutboxEntry> {
            self.store.find_entries(&format!("evt_{seq}")).unwrap().pop()
        }
    }

    fn event_ids(seqs: impl IntoIterator<Item = u64>) -> Vec<String> {
        seqs.into_iter().map(|seq| format!("evt_{seq}")).collect()
    }

    fn report(attempted: usize, delivered: usize, retrying: usize, dead: usize) -> DeliveryReport {
        DeliveryReport { attempted, delivered, retrying, dead }
    }

    #[tokio::test]
    async fn store_error_lets_other_sinks_finish() {
        let setup = Setup::start().await;
        let deliverer = setup.deliverer(&[("chat", "ok"), ("hook", "ok")], 4);
        // Its sink and state read, its notification does not.
        setup.store.insert_raw_outbox_row(0, br#"{"sink":"chat","state":"pending"}"#);
        for seq in 1..6 {
            setup.queue(seq, "hook", "odft_1");
        }

        let error = deliverer.deliver_due().await.unwrap_err().to_string();

        assert!(error.contains("outbox/0"), "{error}");
        assert_eq!(setup.receiver.received("hook"), event_ids(1..6));
        assert!(setup.store.pending_page("hook", None, 10).unwrap().is_empty(), "delivered entries are removed");
    }

    #[tokio::test]
    async fn delivery_crosses_page_boundaries() {
        let setup = Setup::start().await;
        let deliverer = setup.deliverer(&[("chat", "ok"), ("hook", "ok")], 4);
        for seq in 0..22 {
            let sink = if seq % 2 == 0 { "chat" } else { "hook" };
            setup.queue(seq, sink, &format!("odft_{}", seq % 3));
        }

        let round = deliverer.deliver_due().await.unwrap();

        assert_eq!(round, report(22, 22, 0, 0));
        assert_eq!(setup.receiver.received("chat"), event_ids((0..22).step_by(2)), "once each, in seq order");
        assert_eq!(setup.receiver.received("hook"), event_ids((1..22).step_by(2)), "once each, in seq order");
        assert_eq!(setup.store.outbox_counts().unwrap(), (0, 0));
        assert_eq!(deliverer.next_due().unwrap(), None);
    }

    #[tokio::test]
    async fn waiting_draft_holds_across_pages() {
        let setup = Setup::start().await;
        let deliverer = setup.deliverer(&[("hook", "ok")], 2);
        setup.queue(0, "hook", "odft_x");
        let mut later = setup.queue(1, "hook", "odft_a");
        later.next_attempt_ms = START_MS + 60_000;
        setup.store.update_entry(&later).unwrap();
        setup.queue(2, "hook", "odft_y");
        setup.queue(3, "hook", "odft_a");
        setup.queue(4, "hook", "odft_z");

        let first = deliverer.deliver_due().await.unwrap();

        assert_eq!(first, report(3, 3, 0, 0));
        assert_eq!(setup.receiver.received("hook"), event_ids([0, 2, 4]), "evt_3 waits behind evt_1 on page 1");
        assert!(setup.entry(3).is_some(), "the later entry of odft_a stays pending");
        let next = deliverer.next_due().unwrap();
        assert_eq!(next, Some(from_unix_ms(START_MS + 60_000)), "only the head of odft_a counts");

        setup.clock.advance(Duration::from_secs(61));
        let second = deliverer.deliver_due().await.unwrap();
        assert_eq!(second, report(2, 2, 0, 0));
        assert_eq!(setup.receiver.received("hook"), event_ids([0, 2, 4, 1, 3]));
    }

    #[tokio::test]
    async fn paused_sink_leaves_other_draining() {
        let setup = Setup::start().await;
        let deliverer = setup.deliverer(&[("down", "fail"), ("hook", "ok")], 2);
        setup.queue_alternating(0..10, "down", "hook");

        let first = deliverer.deliver_due().await.unwrap();
        assert_eq!(first, report(6, 5, 1, 0));
        assert_eq!(setup.receiver.received("down"), event_ids([0]), "the round ends at the first retryable failure");
        assert_eq!(setup.receiver.received("hook"), event_ids([1, 3, 5, 7, 9]));

        setup.queue_alternating(10..16, "down", "hook");
        let second = deliverer.deliver_due().await.unwrap();
        assert_eq!(second, report(3, 3, 0, 0));
        assert_eq!(setup.receiver.received("down"), event_ids([0]), "a paused sink gets no request");
        assert_eq!(setup.receiver.received("hook"), event_ids([1, 3, 5, 7, 9, 11, 13, 15]));
        assert_eq!(setup.store.outbox_counts().unwrap(), (8, 0));
        assert_eq!(deliverer.next_due().unwrap(), Some(from_unix_ms(START_MS + 30_000)), "the pause ends it");
    }

    #[tokio::test]
    async fn slow_sink_holds_back_no_other() {
        let setup = Setup::start().await;
        // `chat` comes first in name order and responds only after `hook` got all 5 entries,
        // so it is delivered only if the two sinks are drained side by side.
        let deliverer = setup.deliverer(&[("chat", "wait-for-hook-5"), ("hook", "ok")], 2);
        setup.queue(0, "chat", "odft_0");
        for seq in 1..6 {
            setup.queue(seq, "hook", &format!("odft_{seq}"));
        }

        let round = deliverer.deliver_due().await.unwrap();

        assert_eq!(round, report(6, 6, 0, 0));
        assert_eq!(setup.receiver.received("hook"), event_ids(1..6));
    }

    #[tokio::test]
    async fn dead_letters_are_skipped() {
        let setup = Setup::start().await;
        let deliverer = setup.deliverer(&[("hook", "ok")], 2);
        let mut dead = Vec::new();
        for seq in 0..8 {
            if seq % 3 == 1 {
                setup.queue(seq, "hook", "odft_1");
            } else {
                dead.push(setup.queue_dead(seq, "hook", "odft_1"));
            }
        }

        let round = deliverer.deliver_due().await.unwrap();

        assert_eq!(round, report(3, 3, 0, 0));
        assert_eq!(setup.receiver.received("hook"), event_ids([1, 4, 7]), "dead letters do not hold odft_1 back");
        for letter in &dead {
            assert_eq!(setup.entry(letter.seq).as_ref(), Some(letter), "dead letters stay untouched");
        }
        assert_eq!(deliverer.next_due().unwrap(), None, "dead letters are never due");
    }

    #[tokio::test]
    async fn unconfigured_sink_dead_lettered() {
        let setup = Setup::start().await;
        let deliverer = setup.deliverer(&[("hook", "ok")], 2);
        let earlier = setup.queue_dead(0, "gone", "odft_0");
        setup.queue_alternating(1..7, "gone", "hook");

        let round = deliverer.deliver_due().await.unwrap();

        assert_eq!(round, report(3, 3, 0, 3));
        assert_eq!(setup.receiver.received("hook"), event_ids([1, 3, 5]));
        assert!(setup.receiver.received("gone").is_empty());
        for seq in [2, 4, 6] {
            let entry = setup.entry(seq).expect("a dead letter is kept");
            assert_eq!(entry.state, EntryState::Dead, "evt_{seq}");
            assert_eq!(entry.last_error.as_deref(), Some("sink `gone` is no longer configured"), "evt_{seq}");
            assert_eq!(entry.attempts, 0, "evt_{seq} was never sent");
        }
        assert_eq!(setup.entry(0), Some(earlier), "an earlier dead letter is not dead-lettered again");
        assert_eq!(setup.store.outbox_counts().unwrap(), (0, 4));
    }

    #[test]
    fn retry_delay_honours_hint_capped() {
        let mut rng = StdRng::seed_from_u64(1);
        let max = Duration::from_secs(600);
        assert_eq!(retry_delay(1, Some(Duration::from_secs(7)), max, &mut rng), Duration::from_secs(7));
        assert_eq!(retry_delay(1, Some(Duration::from_secs(7200)), max, &mut rng), max);
    }

    #[test]
    fn retry_delay_grows_and_caps() {
        let mut rng = StdRng::seed_from_u64(2);
        let max = Duration::from_secs(60);
        for attempts in 1..40 {
            let bound = BASE_BACKOFF.saturating_mul(1 << (attempts - 1).min(30)).min(max);
            for _ in 0..50 {
                let wait = retry_delay(attempts, None, max, &mut rng);
                assert!(wait <= bound, "attempt {attempts}: {wait:?} > {bound:?}");
            }
        }
        let late: Vec<Duration> = (0..200).map(|_| retry_delay(20, None, max, &mut rng)).collect();
        assert!(late.iter().any(|wait| *wait > Duration::from_secs(30)), "full jitter spans the capped range");
    }
}
