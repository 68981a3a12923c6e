//! A token bucket that paces requests to one receiver.
//!
//! Slack accepts about one message per second per incoming webhook and tolerates short
//! bursts. The bucket contains up to `burst` tokens, refills one per `period`, and returns to the caller
//! how long to wait for the next token. Time is passed in, so the logic is tested without
//! sleeping.

use std::time::Duration;

use tokio::time::Instant;

/// The pace of one receiver.
#[derive(Debug)]
pub struct Pacer {
    /// Tokens available now, at most `burst`. Fractional while refilling.
    tokens: f64,
    burst: f64,
    period: Duration,
    /// When `tokens` was last brought up to date.
    updated: Instant,
}

impl Pacer {
    /// Creates a full bucket of `burst` tokens (at least one) that refills one per `period`.
    pub fn new(burst: u32, period: Duration, now: Instant) -> Pacer {
        let burst = f64::from(burst.max(1));
        Pacer { tokens: burst, burst, period, updated: now }
    }

    /// Takes one token and returns how long to wait before using it (zero when one was
    /// available).
    pub fn reserve(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.updated);
        self.updated = now.max(self.updated);
        self.tokens = (self.tokens + elapsed.as_secs_f64() / self.period.as_secs_f64()).min(self.burst);

        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            return Duration::ZERO;
        }
        self.period.mul_f64(-self.tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_allows_burst_then_paces() {
        let start = Instant::now();
        let mut pacer = Pacer::new(3, Duration::from_secs(1), start);
        assert_eq!(pacer.reserve(start), Duration::ZERO);
        assert_eq!(pacer.reserve(start), Duration::ZERO);
        assert_eq!(pacer.reserve(start), Duration::ZERO);
        assert_eq!(pacer.reserve(start), Duration::from_secs(1));
        assert_eq!(pacer.reserve(start), Duration::from_secs(2));
    }

    #[test]
    fn pacer_refills_over_time() {
        let start = Instant::now();
        let mut pacer = Pacer::new(2, Duration::from_secs(1), start);
        pacer.reserve(start);
        pacer.reserve(start);
        let later = start + Duration::from_millis(1500);
        assert_eq!(pacer.reserve(later), Duration::ZERO);
        let wait = pacer.reserve(later);
        assert!(wait > Duration::from_millis(400), "{wait:?}");
        assert!(wait <= Duration::from_millis(500), "{wait:?}");
        let much_later = later + Duration::from_secs(60);
        assert_eq!(pacer.reserve(much_later), Duration::ZERO, "a long pause refills, up to the burst");
        assert_eq!(pacer.reserve(much_later), Duration::ZERO);
        assert!(pacer.reserve(much_later) > Duration::ZERO);
    }
}
