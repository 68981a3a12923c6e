//! The error an invalid or unreadable configuration produces.
//!
//! This module only defines the type and how it prints. The checks that build these errors
//! live with the section they validate.

use std::fmt;

use super::fields::KeyPath;

/// An invalid or unreadable configuration: which key, what is wrong and how to fix it.
///
/// Neither field ever contains a secret or the value of an environment variable, so the error
/// may be logged and printed as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending key as a TOML path, such as `akua.page_size`, `sinks.ops.secret` or
    /// `rules[1].to`. `None` when the error concerns the whole file (unreadable, bad syntax).
    pub key: Option<String>,
    /// The problem and its fix, without the key: a lowercase start, no final period.
    pub message: String,
}

impl ConfigError {
    /// Creates an error about one key.
    pub(super) fn at(key: &KeyPath, message: impl Into<String>) -> Self {
        ConfigError { key: Some(key.to_string()), message: message.into() }
    }

    /// Creates an error about the file as a whole.
    pub(super) fn file(message: impl Into<String>) -> Self {
        ConfigError { key: None, message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "`{key}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}
