//! The two ways to drive cycles: `run` forever until shutdown, and `once`.
//!
//! A cycle is a sweep followed by a delivery round. Between sweeps, `run` wakes for
//! pending notifications as they fall due, so a retry does not wait for the next sweep.

use std::time::Duration;

use rand::Rng;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::app::App;
use crate::delivery::DeliveryReport;
use crate::pipeline::SweepReport;
use crate::reload::Reload;
use crate::shutdown::Shutdown;
use crate::state::StoreError;

/// How long in-flight deliveries may take to finish once shutdown is requested. What is
/// still in flight after that stays pending for the next start.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The maximum wait `once` sits out for a notification that falls due soon, such as one
/// with a short `Retry-After`. A later one is left pending.
pub const ONCE_MAX_WAIT: Duration = Duration::from_secs(5);

/// How often an idle delivery loop looks at the outbox without being woken. Sweeps wake
/// it whenever they queue something, so this only bounds the cost of a missed wake-up.
const IDLE_DELIVERY_CHECK: Duration = Duration::from_secs(60);

/// Upper bound for the wait between sweeps after repeated total failures.
const MAX_FAILURE_BACKOFF: Duration = Duration::from_secs(300);

/// Polls and delivers until `shutdown` triggers, then flushes the state.
///
/// Sweeps and deliveries run side by side: the delivery loop drains the outbox as entries
/// fall due and is woken as soon as a sweep has committed new ones.
///
/// With `reload`, a request re-reads the configuration while both loops go on. Only a
/// valid one stops them (in-flight deliveries get [`SHUTDOWN_GRACE`]), is swapped into
/// `app`, and starts them again, beginning with a sweep.
pub async fn run(app: &mut App, shutdown: Shutdown, mut reload: Option<Reload>) -> anyhow::Result<()> {
    tracing::info!(
        state = %app.store.path().display(),
        interval = %humantime::format_duration(app.config.poll.interval),
        sinks = app.config.sinks.len(),
        rules = app.config.rules.len(),
        "draftwatch started"
    );

    while !shutdown.is_triggered() {
        let generation = shutdown.child();
        let reloaded = {
            let running: &App = app;
            let loops = run_loops(running, &generation);
            tokio::pin!(loops);
            loop {
                tokio::select! {
                    result = &mut loops => {
                        result?;
                        break None;
                    }
                    _ = reload_requested(&mut reload) => {
                        let Some(config) = reload.as_ref().and_then(|reload| reload.prepare(&running.config)) else {
                            continue;
                        };
                        generation.trigger();
                        (&mut loops).await?;
                        break Some(config);
                    }
                }
            }
        };
        if let (Some(config), Some(reload)) = (reloaded, &reload) {
            reload.apply(app, config);
        }
    }

    app.store.flush()?;
    tracing::info!("draftwatch stopped");
    Ok(())
}

/// Runs the sweep loop and the delivery loop until `shutdown` triggers.
async fn run_loops(app: &App, shutdown: &Shutdown) -> anyhow::Result<()> {
    let wake = Notify::new();
    let delivered = std::sync::Mutex::new(DeliveryReport::default());

    let (sweeps, deliveries) =
        tokio::join!(sweep_loop(app, shutdown, &wake, &delivered), delivery_loop(app, shutdown, &wake, &delivered));
    if let Err(error) = &deliveries {
        // N.B. pending entries stay in the outbox, so the next start delivers them.
        tracing::error!(error = %error, "delivery loop stopped; pending notifications wait for a restart");
        shutdown.trigger();
    }
    sweeps?;
    deliveries?;
    Ok(())
}

/// Completes at the next reload request of `reload`, and never without one.
async fn reload_requested(reload: &mut Option<Reload>) {
    match reload {
        Some(reload) => reload.requested().await,
        None => std::future::pending().await,
    }
}

async fn sweep_loop(
    app: &App,
    shutdown: &Shutdown,
    wake: &Notify,
    delivered: &std::sync::Mutex<DeliveryReport>,
) -> anyhow::Result<()> {
    let mut failures: u32 = 0;
    while !shutdown.is_triggered() {
        let sweep = tokio::select! {
            report = app.watcher.sweep() => report,
            _ = shutdown.wait() => break,
        };
        if sweep.notifications > 0 {
            wake.notify_one();
        }
        let since_last = std::mem::take(&mut *delivered.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        log_cycle(&sweep, &since_last);
        crate::status::global().sweep_finished(&sweep, app.clock.now());

        failures = if sweep.is_total_failure() { failures.saturating_add(1) } else { 0 };
        tokio::select! {
            _ = tokio::time::sleep(next_sweep_delay(app, failures)) => {}
            _ = shutdown.wait() => break,
        }
    }
    Ok(())
}

async fn delivery_loop(
    app: &App,
    shutdown: &Shutdown,
    wake: &Notify,
    delivered: &std::sync::Mutex<DeliveryReport>,
) -> Result<(), StoreError> {
    while !shutdown.is_triggered() {
        let round = deliver_round(app, shutdown).await?;
        if round.attempted > 0 || round.dead > 0 {
            delivered.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).add(&round);
        }

        let mut next = next_delivery_instant(app)?.unwrap_or_else(|| Instant::now() + IDLE_DELIVERY_CHECK);
        if round.attempted == 0 && next <= Instant::now() {
            // N.B. something is due but nothing could be attempted; never spin on it.
            next = Instant::now() + Duration::from_secs(1);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = wake.notified() => {}
            _ = shutdown.wait() => break,
        }
    }
    Ok(())
}

/// The result of `once`, which decides its exit code.
#[derive(Debug)]
pub struct OnceOutcome {
    pub sweep: SweepReport,
    pub delivery: DeliveryReport,
    /// Entries still pending after the last round, from this run or earlier ones.
    pub pending: usize,
}

impl OnceOutcome {
    /// Success means every offer was listed completely, nothing is left pending and
    /// nothing was dead-lettered in this run.
    pub fn is_success(&self) -> bool {
        self.sweep.is_complete() && self.pending == 0 && self.delivery.dead == 0
    }
}

/// Runs one sweep, then delivery rounds until nothing is due within [`ONCE_MAX_WAIT`].
pub async fn once(app: &App) -> anyhow::Result<OnceOutcome> {
    let sweep = app.watcher.sweep().await;
    let mut delivery = DeliveryReport::default();
    let shutdown = Shutdown::new();

    loop {
        let round = deliver_round(app, &shutdown).await?;
        let attempted = round.attempted;
        delivery.add(&round);

        let Some(due) = next_delivery_instant(app)? else { break };
        let wait = due.saturating_duration_since(Instant::now());
        if wait > ONCE_MAX_WAIT || (attempted == 0 && wait.is_zero()) {
            break;
        }
        tokio::time::sleep_until(due).await;
    }

    log_cycle(&sweep, &delivery);
    crate::status::global().sweep_finished(&sweep, app.clock.now());
    app.store.flush()?;
    let (pending, _) = app.store.outbox_counts()?;
    Ok(OnceOutcome { sweep, delivery, pending })
}

/// Runs one delivery round. Once shutdown is requested, the round gets
/// [`SHUTDOWN_GRACE`] to finish; what is still in flight then stays pending.
async fn deliver_round(app: &App, shutdown: &Shutdown) -> Result<DeliveryReport, StoreError> {
    let round = app.deliverer.deliver_due();
    tokio::pin!(round);
    tokio::select! {
        report = &mut round => report,
        _ = shutdown.wait() => match tokio::time::timeout(SHUTDOWN_GRACE, &mut round).await {
            Ok(report) => report,
            Err(_) => {
                tracing::warn!(grace = ?SHUTDOWN_GRACE, "deliveries still in flight at shutdown are left pending");
                Ok(DeliveryReport::default())
            }
        },
    }
}

fn next_delivery_instant(app: &App) -> Result<Option<Instant>, StoreError> {
    let Some(due) = app.deliverer.next_due()? else { return Ok(None) };
    let wait = due.duration_since(app.clock.now()).unwrap_or(Duration::ZERO);
    Ok(Some(Instant::now() + wait))
}

/// Returns the wait before the next sweep: the interval plus jitter, or a doubling
/// backoff after sweeps that could list nothing at all.
fn next_sweep_delay(app: &App, failures: u32) -> Duration {
    let poll = &app.config.poll;
    let base = if failures == 0 {
        poll.interval
    } else {
        let cap = MAX_FAILURE_BACKOFF.max(poll.interval);
        poll.interval.saturating_mul(1 << failures.min(16)).min(cap)
    };
    let jitter_ms = u64::try_from(poll.jitter.as_millis()).unwrap_or(u64::MAX);
    if jitter_ms == 0 {
        return base;
    }
    base + Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
}

fn log_cycle(sweep: &SweepReport, delivery: &DeliveryReport) {
    tracing::info!(
        offers = sweep.offers,
        failed_offers = sweep.failed.len() + usize::from(sweep.offers_error.is_some()),
        pages = sweep.pages,
        drafts = sweep.drafts,
        events = sweep.events,
        removed = sweep.removed,
        full_offers = sweep.full_offers,
        restarts = sweep.restarts,
        requests = sweep.requests,
        queued = sweep.notifications,
        delivered = delivery.delivered,
        retrying = delivery.retrying,
        dead = delivery.dead,
        duration_ms = sweep.duration.as_millis() as u64,
        "sweep finished"
    );
}
