//! Polling for a condition with a deadline.

use std::time::{Duration, Instant};

/// Polls `condition` every `every` until it returns `Some`; gives up (`None`) once `timeout`
/// has passed. Returns the value and the time it took.
pub fn poll_until<T>(
    timeout: Duration,
    every: Duration,
    mut condition: impl FnMut() -> Option<T>,
) -> Option<(T, Duration)> {
    let start = Instant::now();
    loop {
        if let Some(value) = condition() {
            return Some((value, start.elapsed()));
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Polls `condition` every 10 ms until it returns `Some`, or panics after `timeout` naming
/// `what`. Returns the value and the time it took.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    condition: impl FnMut() -> Option<T>,
) -> (T, Duration) {
    poll_until(timeout, Duration::from_millis(10), condition)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Asserts that `condition` stays false for the whole of `period` (polled every 10 ms).
pub fn assert_never(what: &str, period: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < period {
        assert!(!condition(), "{what} happened after {:?}", start.elapsed());
        std::thread::sleep(Duration::from_millis(10));
    }
}
