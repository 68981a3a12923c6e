//! draftwatch watches Akua order drafts and tells sellers when they change state.
//!
//! The data flows through the modules in this order: [`config`] → [`akua`] (the client)
//! → [`sweep`] (the pure diff) → [`state`] (the sled snapshot and outbox) → [`rules`] →
//! [`render`] → [`sinks`]. [`pipeline`] drives one sweep, [`delivery`] drains the outbox,
//! [`runner`] repeats both, and [`app`] assembles them from a configuration.

pub mod akua;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod event;
pub mod metrics;
pub mod outbox;
pub mod pipeline;
pub mod reload;
pub mod render;
pub mod repeats;
pub mod rules;
pub mod runner;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod sim;
pub mod sinks;
pub mod state;
pub mod status;
pub mod summary;
pub mod sweep;
pub mod testsink;
