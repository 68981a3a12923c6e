//! Errors from the Akua API.

/// A failed API request.
#[derive(Debug, thiserror::Error)]
#[error("akua api request failed")]
pub struct ApiError;
