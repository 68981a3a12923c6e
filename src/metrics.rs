//! Prometheus metrics: every name draftwatch exports, and the calls that record them.
//!
//! Recording goes through the `metrics` facade. Until [`install`] sets the Prometheus
//! recorder (only `run` with a `[server]` does), every call here is a cheap no-op, so
//! `once`, the demo and the tests in this crate record nothing. This module owns the names
//! and labels; it does not serve them (that is [`crate::server`]) and decides nothing.
//!
//! Gauges that can be read from the store or [`crate::status`] at any time (outbox depth,
//! snapshot size, failing offers) are set by [`refresh_gauges`] just before each scrape
//! rather than kept up to date at every change.

use std::time::SystemTime;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::akua::ApiError;
use crate::clock::unix_secs;
use crate::event::EventKind;
use crate::pipeline::SweepReport;
use crate::sinks::DeliveryError;

pub const SWEEPS: &str = "draftwatch_sweeps_total";
pub const SWEEP_DURATION: &str = "draftwatch_sweep_duration_seconds";
pub const LAST_COMPLETE_SWEEP: &str = "draftwatch_last_complete_sweep_timestamp_seconds";
pub const DRAFTS_SEEN: &str = "draftwatch_drafts_seen_total";
pub const SNAPSHOT_DRAFTS: &str = "draftwatch_snapshot_drafts";
pub const OFFERS_FAILING: &str = "draftwatch_offers_failing";
pub const EVENTS: &str = "draftwatch_events_total";
pub const DELIVERIES: &str = "draftwatch_deliveries_total";
pub const DEAD_LETTERS: &str = "draftwatch_dead_letters_total";
pub const OUTBOX_ENTRIES: &str = "draftwatch_outbox_entries";
pub const API_ERRORS: &str = "draftwatch_api_errors_total";
pub const CONFIG_RELOADS: &str = "draftwatch_config_reloads_total";
pub const BUILD_INFO: &str = "draftwatch_build_info";

/// Histogram buckets of the sweep duration, in seconds: a sweep of a few offers takes well
/// under a second, a large first baseline can take minutes.
const SWEEP_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// Installs the process-wide Prometheus recorder and describes every metric.
///
/// The handle only renders; draftwatch's own server serves the text.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(SWEEP_DURATION.to_owned()), SWEEP_BUCKETS)?
        .install_recorder()?;

    describe_counter!(SWEEPS, "Sweeps finished, by result: complete, partial or failed.");
    describe_histogram!(SWEEP_DURATION, metrics::Unit::Seconds, "How long one sweep of every offer took.");
    describe_gauge!(LAST_COMPLETE_SWEEP, "Unix time of the last sweep that listed every offer completely.");
    describe_counter!(DRAFTS_SEEN, "Drafts listed, summed over sweeps.");
    describe_gauge!(SNAPSHOT_DRAFTS, "Drafts in the snapshot, across offers.");
    describe_gauge!(OFFERS_FAILING, "Offers whose last sweep failed.");
    describe_counter!(EVENTS, "Events detected, by type.");
    describe_counter!(DELIVERIES, "Delivery attempts, by sink and outcome: delivered, retryable or permanent.");
    describe_counter!(DEAD_LETTERS, "Notifications dead-lettered, by sink.");
    describe_gauge!(OUTBOX_ENTRIES, "Outbox entries, by state: pending or dead.");
    describe_counter!(API_ERRORS, "Failed Akua API requests, by HTTP status, or transport/invalid_response.");
    describe_counter!(CONFIG_RELOADS, "Configuration reloads on SIGHUP, by result: applied or rejected.");
    describe_gauge!(BUILD_INFO, "Always 1; the version label names the running build.");

    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(handle)
}

/// Records a finished sweep: its result, duration and drafts, and the time of the last
/// complete one.
pub fn sweep_finished(report: &SweepReport, at: SystemTime) {
    let result = if report.is_complete() {
        "complete"
    } else if report.is_total_failure() {
        "failed"
    } else {
        "partial"
    };
    counter!(SWEEPS, "result" => result).increment(1);
    histogram!(SWEEP_DURATION).record(report.duration.as_secs_f64());
    counter!(DRAFTS_SEEN).increment(report.drafts as u64);
    if report.is_complete() {
        gauge!(LAST_COMPLETE_SWEEP).set(unix_secs(at) as f64);
    }
}

pub fn event_detected(kind: EventKind) {
    counter!(EVENTS, "type" => kind.short_name()).increment(1);
}

pub fn delivery_attempted(sink: &str, outcome: &Result<(), DeliveryError>) {
    let outcome = match outcome {
        Ok(()) => "delivered",
        Err(DeliveryError::Retryable { .. }) => "retryable",
        Err(DeliveryError::Permanent { .. }) => "permanent",
    };
    counter!(DELIVERIES, "sink" => sink.to_owned(), "outcome" => outcome).increment(1);
}

pub fn dead_lettered(sink: &str) {
    counter!(DEAD_LETTERS, "sink" => sink.to_owned()).increment(1);
}

/// Counts a failed API request under its HTTP status, or its kind when there was none.
pub fn api_error(error: &ApiError) {
    let status = match error {
        ApiError::Unauthorized { status, .. } | ApiError::Status { status, .. } => status.to_string(),
        ApiError::Transport { .. } => "transport".to_owned(),
        ApiError::InvalidResponse { .. } => "invalid_response".to_owned(),
        ApiError::RunawayListing { .. } => "runaway_listing".to_owned(),
    };
    counter!(API_ERRORS, "status" => status).increment(1);
}

pub fn config_reloaded(applied: bool) {
    counter!(CONFIG_RELOADS, "result" => if applied { "applied" } else { "rejected" }).increment(1);
}

/// Values read at scrape time, for [`refresh_gauges`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Gauges {
    pub pending: usize,
    pub dead: usize,
    pub snapshot_drafts: usize,
    pub offers_failing: usize,
}

/// Sets the gauges that are read from the store and the status rather than counted.
pub fn refresh_gauges(values: Gauges) {
    gauge!(OUTBOX_ENTRIES, "state" => "pending").set(values.pending as f64);
    gauge!(OUTBOX_ENTRIES, "state" => "dead").set(values.dead as f64);
    gauge!(SNAPSHOT_DRAFTS).set(values.snapshot_drafts as f64);
    gauge!(OFFERS_FAILING).set(values.offers_failing as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[&str] = &[
        SWEEPS,
        SWEEP_DURATION,
        LAST_COMPLETE_SWEEP,
        DRAFTS_SEEN,
        SNAPSHOT_DRAFTS,
        OFFERS_FAILING,
        EVENTS,
        DELIVERIES,
        DEAD_LETTERS,
        OUTBOX_ENTRIES,
        API_ERRORS,
        CONFIG_RELOADS,
        BUILD_INFO,
    ];

    #[test]
    fn metric_names_are_prefixed() {
        for name in ALL {
            assert!(name.starts_with("draftwatch_"), "{name}");
        }
    }

    #[test]
    fn example_alerts_use_known_metrics() {
        let alerts = include_str!("../deploy/prometheus/draftwatch-alerts.yaml");
        let mut used = 0;
        for (start, _) in alerts.match_indices("draftwatch_") {
            let name: String = alerts[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            assert!(ALL.contains(&name.as_str()), "the alert rules use {name}, which draftwatch does not export");
            used += 1;
        }
        assert!(used >= 4, "expected the alert rules to use draftwatch metrics");
    }
}
