//! Injected failures: which requests they match and what the API responds with instead.
//!
//! A [`Fault`] is queued on the world and consumed by the first matching requests, once,
//! a set number of times, or until cleared. Faults are checked after authentication and the
//! `akua-context` check, so they model how the API responds to an otherwise valid request.
//! This module decides matching only; the request handler builds the response.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

/// The endpoints of the simulated API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `GET /v1/offers`
    ListOffers,
    /// `GET /v1/order_drafts`
    ListDrafts,
    /// `GET /v1/order_drafts/{id}`
    GetDraft,
    /// `GET /v1/operations/{id}`
    GetOperation,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Endpoint::ListOffers => "GET /v1/offers",
            Endpoint::ListDrafts => "GET /v1/order_drafts",
            Endpoint::GetDraft => "GET /v1/order_drafts/{id}",
            Endpoint::GetOperation => "GET /v1/operations/{id}",
        };
        f.write_str(text)
    }
}

/// The body of a fault's response.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultBody {
    /// The world's error shape with this message.
    Error(String),
    /// Any JSON value, sent as `application/json`.
    Json(Value),
    /// Any text with its content type, such as an HTML page from a gateway.
    Raw { content_type: String, body: String },
}

/// The number of matching requests a fault affects before it is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// At least one; the fault is removed after this many matches.
    Times(u32),
    /// Until [`crate::sim::World::clear_faults`] or [`crate::sim::World::clear_faults_for`].
    UntilCleared,
}

/// One injected failure.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub(super) endpoint: Endpoint,
    /// For `ListDrafts`, the `offer` query value; for `GetDraft`, the draft's `offer_id`.
    /// A fault with an offer never matches the other endpoints.
    pub(super) offer: Option<String>,
    /// The 0-based page within one listing: 0 without a cursor, else the page the cursor
    /// points to. A request with an unreadable cursor matches no page.
    pub(super) page: Option<u32>,
    /// The id in the path of `GetDraft` or `GetOperation`.
    pub(super) id: Option<String>,
    /// `None` responds normally after `delay`.
    pub(super) status: Option<u16>,
    pub(super) body: FaultBody,
    pub(super) headers: Vec<(String, String)>,
    pub(super) delay: Option<Duration>,
    pub(super) repeat: Repeat,
}

impl Fault {
    /// Creates a fault that responds to the next request to `endpoint` with `status` and an
    /// error body in the world's shape.
    pub fn new(endpoint: Endpoint, status: u16) -> Self {
        Fault {
            endpoint,
            offer: None,
            page: None,
            id: None,
            status: Some(status),
            body: FaultBody::Error(format!("simulated failure with status {status}")),
            headers: Vec::new(),
            delay: None,
            repeat: Repeat::Times(1),
        }
    }

    /// Creates a fault that delays the next request to `endpoint` by `delay`, then responds
    /// normally. Useful for client timeouts.
    pub fn slow(endpoint: Endpoint, delay: Duration) -> Self {
        Fault { status: None, delay: Some(delay), ..Fault::new(endpoint, 200) }
    }

    /// Matches only requests about this offer.
    pub fn for_offer(mut self, offer_id: impl Into<String>) -> Self {
        self.offer = Some(offer_id.into());
        self
    }

    /// Matches only this 0-based page of a listing.
    pub fn on_page(mut self, page: u32) -> Self {
        self.page = Some(page);
        self
    }

    /// Matches only requests for this draft or operation id.
    pub fn for_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Responds with the world's error shape carrying this message.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.body = FaultBody::Error(message.into());
        self
    }

    /// Responds with this JSON body.
    pub fn with_json(mut self, body: Value) -> Self {
        self.body = FaultBody::Json(body);
        self
    }

    /// Responds with this body and content type.
    pub fn with_raw_body(mut self, content_type: impl Into<String>, body: impl Into<String>) -> Self {
        self.body = FaultBody::Raw { content_type: content_type.into(), body: body.into() };
        self
    }

    /// Adds a response header, such as `retry-after`.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Waits this long before responding.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Affects this many matching requests, at least one.
    pub fn times(mut self, count: u32) -> Self {
        self.repeat = Repeat::Times(count.max(1));
        self
    }

    /// Affects every matching request until the faults are cleared.
    pub fn until_cleared(mut self) -> Self {
        self.repeat = Repeat::UntilCleared;
        self
    }

    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    fn matches(&self, request: &FaultTarget<'_>) -> bool {
        if self.endpoint != request.endpoint {
            return false;
        }
        if self.offer.is_some() && self.offer.as_deref() != request.offer {
            return false;
        }
        if self.page.is_some() && self.page != request.page {
            return false;
        }
        if self.id.is_some() && self.id.as_deref() != request.id {
            return false;
        }
        true
    }
}

/// The parts of a request that faults match on.
pub(super) struct FaultTarget<'a> {
    pub(super) endpoint: Endpoint,
    pub(super) offer: Option<&'a str>,
    pub(super) page: Option<u32>,
    pub(super) id: Option<&'a str>,
}

/// Queued faults in injection order; the first match wins.
#[derive(Debug, Default)]
pub(super) struct FaultQueue {
    faults: Vec<Fault>,
}

impl FaultQueue {
    pub(super) fn push(&mut self, fault: Fault) {
        self.faults.push(fault);
    }

    pub(super) fn len(&self) -> usize {
        self.faults.len()
    }

    pub(super) fn clear(&mut self) {
        self.faults.clear();
    }

    pub(super) fn clear_endpoint(&mut self, endpoint: Endpoint) {
        self.faults.retain(|fault| fault.endpoint != endpoint);
    }

    /// Returns the first fault matching `request` and uses up one of its repeats.
    pub(super) fn take(&mut self, request: &FaultTarget<'_>) -> Option<Fault> {
        let index = self.faults.iter().position(|fault| fault.matches(request))?;

        match &mut self.faults[index].repeat {
            Repeat::UntilCleared => Some(self.faults[index].clone()),
            Repeat::Times(remaining) if *remaining > 1 => {
                *remaining -= 1;
                Some(self.faults[index].clone())
            }
            Repeat::Times(_) => Some(self.faults.remove(index)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(endpoint: Endpoint, offer: Option<&'static str>, page: Option<u32>) -> FaultTarget<'static> {
        FaultTarget { endpoint, offer, page, id: None }
    }

    #[test]
    fn fault_matches_offer_and_page() {
        let mut queue = FaultQueue::default();
        queue.push(Fault::new(Endpoint::ListDrafts, 500).for_offer("offer_a").on_page(1));

        assert!(queue.take(&target(Endpoint::ListDrafts, Some("offer_b"), Some(1))).is_none());
        assert!(queue.take(&target(Endpoint::ListDrafts, Some("offer_a"), Some(0))).is_none());
        assert!(queue.take(&target(Endpoint::ListOffers, None, Some(1))).is_none());
        assert!(queue.take(&target(Endpoint::ListDrafts, Some("offer_a"), Some(1))).is_some());
        assert!(queue.take(&target(Endpoint::ListDrafts, Some("offer_a"), Some(1))).is_none());
    }

    #[test]
    fn fault_repeats_count_down() {
        let mut queue = FaultQueue::default();
        queue.push(Fault::new(Endpoint::GetDraft, 503).times(2));

        assert!(queue.take(&target(Endpoint::GetDraft, None, None)).is_some());
        assert_eq!(queue.len(), 1);
        assert!(queue.take(&target(Endpoint::GetDraft, None, None)).is_some());
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn sticky_fault_stays_until_cleared() {
        let mut queue = FaultQueue::default();
        queue.push(Fault::new(Endpoint::ListOffers, 503).until_cleared());
        for _ in 0..5 {
            assert!(queue.take(&target(Endpoint::ListOffers, None, Some(0))).is_some());
        }

        queue.clear_endpoint(Endpoint::ListOffers);
        assert!(queue.take(&target(Endpoint::ListOffers, None, Some(0))).is_none());
    }
}
