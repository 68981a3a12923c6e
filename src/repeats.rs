//! Rate limiting of repeated failures in the log.
//!
//! When an offer fails with the same error every cycle, the first failure is logged, then
//! a reminder every [`REMINDER_EVERY`] with the count so far, and one line when it
//! recovers. [`Repeats`] only decides; the caller writes the log line. It has no notion of
//! offers or sinks: a failure is a key and an error text.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// How often a failure that keeps repeating with the same error is logged again.
pub const REMINDER_EVERY: Duration = Duration::from_secs(15 * 60);

/// The decision about one failure's log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Log it: the first failure of a run, or the error changed.
    New,
    /// Log it as a reminder: the same error, `failures` times in a row since `since`.
    Reminder { failures: u64, since: SystemTime },
    /// Already logged recently with the same error.
    Quiet,
}

/// A run of consecutive failures under one key.
#[derive(Clone, Debug)]
struct Run {
    /// The error text of the last failure; a different text starts a new run.
    error: String,
    since: SystemTime,
    failures: u64,
    logged_at: SystemTime,
}

/// The end of a run of failures, reported once when the key succeeds again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovery {
    pub failures: u64,
    pub since: SystemTime,
}

/// Runs of consecutive failures, by key.
#[derive(Debug, Default)]
pub struct Repeats {
    runs: BTreeMap<String, Run>,
}

impl Repeats {
    /// Records a failure of `key` with `error` at `at` and returns whether to log it.
    pub fn failure(&mut self, key: &str, error: &str, at: SystemTime) -> Verdict {
        let Some(run) = self.runs.get_mut(key) else {
            let run = Run { error: error.to_owned(), since: at, failures: 1, logged_at: at };
            self.runs.insert(key.to_owned(), run);
            return Verdict::New;
        };

        run.failures += 1;
        if run.error != error {
            *run = Run { error: error.to_owned(), since: at, failures: 1, logged_at: at };
            return Verdict::New;
        }
        let since_logged = at.duration_since(run.logged_at).unwrap_or(Duration::ZERO);
        if since_logged < REMINDER_EVERY {
            return Verdict::Quiet;
        }
        run.logged_at = at;
        Verdict::Reminder { failures: run.failures, since: run.since }
    }

    /// Records a success of `key`; returns the run it ends, if `key` was failing.
    pub fn success(&mut self, key: &str) -> Option<Recovery> {
        self.runs.remove(key).map(|run| Recovery { failures: run.failures, since: run.since })
    }

    /// Forgets every key for which `keep` returns false, such as offers no longer watched.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.runs.retain(|key, _| keep(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    #[test]
    fn repeats_same_error_goes_quiet() {
        let mut repeats = Repeats::default();
        assert_eq!(repeats.failure("offer_1", "http 500", at(0)), Verdict::New);
        assert_eq!(repeats.failure("offer_1", "http 500", at(30)), Verdict::Quiet);
        assert_eq!(repeats.failure("offer_1", "http 500", at(60)), Verdict::Quiet);

        let reminder = repeats.failure("offer_1", "http 500", at(REMINDER_EVERY.as_secs() + 1));
        assert_eq!(reminder, Verdict::Reminder { failures: 4, since: at(0) });
        assert_eq!(repeats.failure("offer_1", "http 500", at(REMINDER_EVERY.as_secs() + 31)), Verdict::Quiet);
    }

    #[test]
    fn repeats_changed_error_is_new() {
        let mut repeats = Repeats::default();
        assert_eq!(repeats.failure("offer_1", "http 500", at(0)), Verdict::New);
        assert_eq!(repeats.failure("offer_1", "http 401", at(30)), Verdict::New);
        assert_eq!(repeats.failure("offer_2", "http 401", at(30)), Verdict::New, "keys are independent");
        assert_eq!(repeats.failure("offer_1", "http 401", at(60)), Verdict::Quiet);
    }

    #[test]
    fn repeats_recovery_reported_once() {
        let mut repeats = Repeats::default();
        assert_eq!(repeats.success("offer_1"), None, "a key that never failed has nothing to recover");
        repeats.failure("offer_1", "http 500", at(0));
        repeats.failure("offer_1", "http 500", at(30));
        assert_eq!(repeats.success("offer_1"), Some(Recovery { failures: 2, since: at(0) }));
        assert_eq!(repeats.success("offer_1"), None);
        assert_eq!(repeats.failure("offer_1", "http 500", at(90)), Verdict::New, "a new run logs again");
    }
}
