//! A wrapper that keeps secrets out of logs, errors and `Debug` output.
//!
//! Tokens, webhook URLs, signing keys and extra webhook header values are all held in
//! [`Secret`]. Reading the value takes an explicit [`Secret::expose`] call, which makes every
//! place that sends a secret over the wire easy to find.

use std::fmt;

/// A value that prints as `[redacted]` in both `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// Returns the secret value. Call it only where the value is sent, never to log it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_is_redacted() {
        let secret = Secret::new("sk_akua_live_123".to_owned());
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(secret.expose(), "sk_akua_live_123");
    }
}
