//! The HTTP client for the Akua API.

/// Lists offers and order drafts.
pub struct AkuaClient;
