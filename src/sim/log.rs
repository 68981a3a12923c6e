//! The request log and counters of the simulated API.
//!
//! Tests read them to check what a client sent: which endpoints, which queries, which
//! `akua-context`, and whether authentication passed. The bearer token itself is never
//! stored. The log keeps the newest [`MAX_RECORDS`] requests; the counters count all of them.

use std::collections::VecDeque;

use crate::sim::fault::Endpoint;

/// The number of requests the log keeps, so a long demo run does not grow without bound.
pub const MAX_RECORDS: usize = 10_000;

/// The result of checking a request's `Authorization` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthCheck {
    /// The header carried the world's token.
    Passed,
    /// There was no `Authorization` header, or it was not a bearer token.
    Missing,
    /// The bearer token was not the world's token.
    Rejected,
}

/// One request as the simulated API received it, with the response status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    /// The path as sent, such as `/v1/order_drafts`.
    pub path: String,
    /// The raw query string without `?`, if the request had one.
    pub query: Option<String>,
    /// The `akua-context` header, if present and valid UTF-8.
    pub context: Option<String>,
    pub auth: AuthCheck,
    /// `None` for a path the simulated API does not serve.
    pub endpoint: Option<Endpoint>,
    /// The HTTP status of the response.
    pub status: u16,
    /// Whether the request matched an injected fault, including one that only delayed it.
    pub fault: bool,
}

impl RequestRecord {
    /// Returns the decoded value of a query parameter, taking the first if repeated.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        url::form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
    }
}

/// Totals over every request since the world was created or the log was cleared.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub requests: u64,
    /// Requests rejected with 401 because of the `Authorization` header.
    pub unauthorized: u64,
    /// Requests rejected with 403 because of the `akua-context` header or a hidden draft.
    pub forbidden: u64,
    /// Requests that matched an injected fault.
    pub faults: u64,
    pub list_offers: u64,
    pub list_drafts: u64,
    pub get_draft: u64,
    pub get_operation: u64,
}

impl Counters {
    /// Returns how many requests reached the given endpoint.
    pub fn to_endpoint(&self, endpoint: Endpoint) -> u64 {
        match endpoint {
            Endpoint::ListOffers => self.list_offers,
            Endpoint::ListDrafts => self.list_drafts,
            Endpoint::GetDraft => self.get_draft,
            Endpoint::GetOperation => self.get_operation,
        }
    }
}

/// The newest requests in arrival order, with totals.
#[derive(Debug, Default)]
pub struct RequestLog {
    records: VecDeque<RequestRecord>,
    counters: Counters,
}

impl RequestLog {
    pub(super) fn record(&mut self, record: RequestRecord) {
        let counters = &mut self.counters;
        counters.requests += 1;
        match record.status {
            401 if !record.fault => counters.unauthorized += 1,
            403 if !record.fault => counters.forbidden += 1,
            _ => {}
        }
        if record.fault {
            counters.faults += 1;
        }
        match record.endpoint {
            Some(Endpoint::ListOffers) => counters.list_offers += 1,
            Some(Endpoint::ListDrafts) => counters.list_drafts += 1,
            Some(Endpoint::GetDraft) => counters.get_draft += 1,
            Some(Endpoint::GetOperation) => counters.get_operation += 1,
            None => {}
        }

        if self.records.len() == MAX_RECORDS {
            self.records.pop_front();
        }
        self.records.push_back(record);
    }

    /// Returns the kept requests, oldest first.
    pub fn records(&self) -> impl Iterator<Item = &RequestRecord> {
        self.records.iter()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Forgets every record and resets the counters.
    pub fn clear(&mut self) {
        self.records.clear();
        self.counters = Counters::default();
    }
}
