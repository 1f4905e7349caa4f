//! Latency histograms (HDR, microseconds, 3 significant digits) and their percentiles.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Largest latency kept exactly: a minute; longer ones count as a minute.
const MAX_MICROS: u64 = 60_000_000;

/// A histogram of latencies in microseconds.
#[derive(Debug, Clone)]
pub(crate) struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Latencies {
        // The bounds are constants that hdrhistogram accepts; this cannot fail.
        Latencies(Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds"))
    }
}

impl Latencies {
    /// Records one latency.
    pub(crate) fn record(&mut self, latency: Duration) {
        self.0.saturating_record((latency.as_micros() as u64).clamp(1, MAX_MICROS));
    }

    /// Values recorded.
    pub(crate) fn count(&self) -> u64 {
        self.0.len()
    }

    /// The value at `quantile` (0..=1), milliseconds; 0 when empty.
    pub(crate) fn ms(&self, quantile: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// The largest value, milliseconds.
    pub(crate) fn max_ms(&self) -> f64 {
        self.0.max() as f64 / 1000.0
    }

    /// Adds every value of `other` (same bounds: cannot fail).
    pub(crate) fn merge(&mut self, other: &Latencies) {
        let _ = self.0.add(&other.0);
    }

    /// Forgets every value.
    pub(crate) fn clear(&mut self) {
        self.0.reset();
    }

    /// `{count, mean, p50, p90, p99, p999, max}`, milliseconds.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "count": self.count(),
            "mean_ms": if self.0.is_empty() { 0.0 } else { self.0.mean() / 1000.0 },
            "p50_ms": self.ms(0.5),
            "p90_ms": self.ms(0.9),
            "p99_ms": self.ms(0.99),
            "p999_ms": self.ms(0.999),
            "max_ms": self.max_ms(),
        })
    }

    /// `p50 1.2 p99 3.4 max 5.6 ms`, for the terminal.
    pub(crate) fn line(&self) -> String {
        format!(
            "p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2} ms",
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.ms(0.999),
            self.max_ms()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_ordered_and_in_ms() {
        let mut h = Latencies::default();
        assert_eq!(h.ms(0.5), 0.0);
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        h.record(Duration::from_secs(3600));
        let (p50, p99, max) = (h.ms(0.5), h.ms(0.99), h.max_ms());
        assert!((49.0..=52.0).contains(&p50), "{p50}");
        assert!(p50 <= p99 && p99 <= max);
        assert!((59_000.0..=61_000.0).contains(&max), "clamped to a minute: {max}");
        assert_eq!(h.clone().count(), 101);
        h.clear();
        assert_eq!(h.count(), 0);
    }
}
