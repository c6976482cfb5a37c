//! Polling for a condition with a deadline.

use std::time::{Duration, Instant};

/// Polls `condition` every 10 ms until it returns `Some`, or panics after `timeout` naming
/// `what`. Returns the value and the time it took.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> Option<T>,
) -> (T, Duration) {
    let start = Instant::now();
    loop {
        if let Some(value) = condition() {
            return (value, start.elapsed());
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts that `condition` stays false for the whole of `period` (polled every 10 ms).
pub fn assert_never(what: &str, period: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < period {
        assert!(!condition(), "{what} happened after {:?}", start.elapsed());
        std::thread::sleep(Duration::from_millis(10));
    }
}
