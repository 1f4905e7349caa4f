//! [`Throttle`], for errors that can repeat once per batch (a broker outage) on the publisher
//! threads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Lets one message through per period and counts the rest, so an error that repeats per
/// batch (a broker outage) does not flood the log. Lock-free; shared by the threads that log it.
#[derive(Debug)]
pub(crate) struct Throttle {
    start: Instant,
    period_ms: u64,
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl Throttle {
    /// One message per second.
    pub(crate) fn new() -> Self {
        Self::with_period(Duration::from_secs(1))
    }

    /// One message per `period`.
    pub(crate) fn with_period(period: Duration) -> Self {
        Throttle {
            start: Instant::now(),
            period_ms: period.as_millis() as u64,
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when this message may be logged, `n` being how many were held back since the
    /// last one; `None` when it must be dropped (and is counted).
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = self.start.elapsed().as_millis() as u64;
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self.next_ms.compare_exchange(next, now + self.period_ms, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_message_per_period_and_the_rest_counted() {
        let throttle = Throttle::with_period(Duration::from_millis(200));
        assert_eq!(throttle.allow(), Some(0));
        assert_eq!(throttle.allow(), None);
        assert_eq!(throttle.allow(), None);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(throttle.allow(), Some(2));
    }
}
