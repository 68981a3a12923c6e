//! draftwatch watches Akua order drafts and tells sellers when they change state.
//!
//! The data flows through the modules in this order: [`config`] → [`akua`] (the client)
//! → [`sweep`] (the pure diff) → [`state`] (the sled snapshot and outbox) → [`rules`] →
//! [`render`] → [`sinks`]. [`pipeline`] drives one poll cycle and [`runner`] repeats it.

pub mod akua;
pub mod config;
pub mod event;
pub mod render;
pub mod rules;
pub mod secret;
pub mod sim;
pub mod sinks;
pub mod state;
pub mod sweep;
