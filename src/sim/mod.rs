//! A simulated Akua API on loopback, for the demo and the tests.
//!
//! A [`World`] contains offers, order drafts and install operations shaped like the real API's,
//! plus options (token, error shape, required `akua-context`, pagination style), injected
//! [`Fault`]s and a request log. [`SimApi`] serves a world over HTTP on 127.0.0.1, and a
//! [`Scenario`] moves its drafts through realistic lifecycles step by step. Nothing here
//! talks to the real Akua API or to any host other than loopback.

mod cursor;
pub mod fault;
mod handler;
mod ids;
pub mod log;
mod records;
pub mod scenario;
pub mod server;
pub mod spec;
mod table;
pub mod world;

pub use fault::{Endpoint, Fault, FaultBody, Repeat};
pub use log::{AuthCheck, Counters, RequestLog, RequestRecord};
pub use scenario::Scenario;
pub use server::{SharedWorld, SimApi};
pub use spec::{DraftSpec, OfferSpec};
pub use world::{ErrorShape, Pagination, SimError, World};

#[cfg(test)]
mod tests;
