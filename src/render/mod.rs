//! Rendering notifications into what each sink sends or prints.
//!
//! Everything here is pure: no I/O, no clock, no configuration. The same notification
//! always renders to the same bytes, which keeps webhook bodies stable across retries.
//! Delivering the result, and deciding what to do when that fails, belong to
//! [`crate::sinks`].
//!
//! - [`webhook`]: the generic webhook JSON body.
//! - [`slack`]: the Slack incoming-webhook payload (Block Kit).
//! - [`text`]: the one-line plain fallback, also printed by the console sink.
//! - [`terminal`]: a multi-line rendering that mirrors the Slack message.
//! - [`facts`] and [`escape`]: what the human-readable renderings show, and how text is
//!   escaped and shortened.

/// The draft id of the sample notification that `draftwatch test-sink` sends. No Akua
/// draft has it: Akua's ids are random.
pub const TEST_DRAFT_ID: &str = "odft_draftwatch_test";

/// The words that open every human-readable rendering of the `test-sink` sample.
pub const TEST_MARKER: &str = "test notification from draftwatch";

pub mod escape;
pub mod facts;
pub mod slack;
pub mod terminal;
pub mod text;
pub mod webhook;

#[cfg(test)]
pub(crate) mod fixture;
