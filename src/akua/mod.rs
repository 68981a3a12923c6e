//! The Akua API: its data model and the HTTP client that lists offers and order drafts.

pub mod client;
pub mod error;
pub mod model;
pub mod scan;

pub use client::AkuaClient;
pub use error::ApiError;
pub use model::{Draft, DraftStatus, ListedDraft, Offer, TerminationReason};
