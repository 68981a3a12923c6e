//! Reading, interpolating and validating the TOML file.

use std::fmt;

use super::Config;

/// A configuration that loaded, with the warnings found while validating it.
#[derive(Debug)]
pub struct LoadedConfig {
    pub config: Config,
    /// Not errors, but worth a log line each, such as a sink that no rule uses.
    pub warnings: Vec<String>,
}

/// An invalid configuration: names the key, what is wrong and how to fix it.
#[derive(Debug)]
pub struct ConfigError {
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}
